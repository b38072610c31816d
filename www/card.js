// The model card: what the loaded bundle says about itself (name,
// description, training data, hyper-parameters, metrics), from its metadata.

/** A short name for the model: the file's, without its extension. */
export function modelName(fileName) {
  // A dist build's model has its content hash in its name (tools/dist.mjs): not part of the name.
  return fileName.replace(/^.*\//, '').replace(/(\.[0-9a-f]{10})?\.(bundle|safetensors|mag)$/i, '');
}

export function renderCard(card, fileName, { title, facts }) {
  title.textContent = modelName(fileName);
  const p = card.provenance;
  const h = card.hparams ?? {};
  const rows = [
    ['Description', card.description || '—'],
    ['Network', `LSTM ${(h.rnn_layer_sizes ?? []).join(' × ')}, ${grouped(card.parameters)} parameters`],
    ['Hyper-parameters', Object.entries(h).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v}]` : v}`).join(', ')],
    ['Training data', p ? `${p.dataset.replace(/^.*[\\/]/, '')}${p.dataset_description ? ` — ${p.dataset_description}` : ''}` : 'not recorded'],
  ];
  if (p) {
    rows.push(['Training', `${grouped(p.training_steps)} steps, ${formatDuration(p.wall_time_seconds)}`]);
    const metrics = Object.entries(p.eval_metrics ?? {}).map(([k, v]) => `${k} ${formatNumber(v)}`);
    rows.push(['Evaluation', metrics.join(', ') || '—']);
  }
  if (card.origin) {
    const o = card.origin;
    rows.push(['Imported from', `${o.source} (${o.format}): generator “${o.generator_id}”${o.generator_description ? `, ${o.generator_description}` : ''}`]);
  }
  rows.push(['Made', `${card.created || '?'} by ${card.generator} ${card.library_version}, encoding ${card.encoding}`]);
  facts.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}

/**
 * A whole number with thousands separators (1,645,571). Not toLocaleString:
 * its first call loads the locale data, 10-15 ms on the way to the first note.
 */
function grouped(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function formatNumber(v) {
  return typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v);
}

function formatDuration(s) {
  if (!Number.isFinite(s)) return '?';
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
