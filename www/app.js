// Polyphony page: wiring. Loads the wasm package (../pkg/, built by
// `./build.sh wasm`) and the bundled model, then connects the primer editor,
// the options, generation, the results and playback. Each part lives in its
// own module: roll.js (piano roll), primer.js (the primer and typing),
// player.js (WebAudio synth / WebMIDI out), midi-io.js (WebMIDI ports),
// generator.js (driving the wasm generator a slice at a time),
// backend.js (CPU or WebGPU, timed), card.js (model card), store.js
// (localStorage).
//
// For tests and tooling: `window.polyphonyReady` becomes true once the model
// is loaded (`window.polyphonyReadyMs`: milliseconds since navigation); on
// failure `window.polyphonyError` holds the message. `window.polyphonyBackendsReady`
// becomes true once WebGPU has been tried and the backends timed. `window.polyphonyApp`
// exposes the state the tests check. With `?bench` in the address the page
// then runs the benchmark (bench.js): `window.benchResult`,
// `window.benchFirstNoteMs`, or `window.benchError` on failure.

import { PianoRoll, pitchName } from './roll.js';
import { Primer, PRESETS, PIANO_KEYS } from './primer.js';
import { Player } from './player.js';
import { requestMidi, bindOutputs, bindInputs } from './midi-io.js';
import { renderCard, modelName } from './card.js';
import { loadState, saveState } from './store.js';
import { generate as generateOutputs, BackendError } from './generator.js';
import { Backends, LABELS } from './backend.js';
import { runBench, firstNoteMs, benchTable } from './bench.js';

const BUNDLE_URL = new URL('../assets/bach-chorales.bundle', import.meta.url);
const WASM_URL = new URL('../pkg/polyphony_bg.wasm', import.meta.url);

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'),
  loadProgress: $('load-progress'),
  modelError: $('model-error'),
  card: $('model-card'),
  cardTitle: $('model-name'),
  cardFacts: $('model-facts'),
  fileInput: $('file-input'),
  roll: $('primer-roll'),
  octave: $('octave'),
  midiIn: $('midi-in'),
  noteLength: $('note-length'),
  options: $('options'),
  generate: $('generate'),
  cancel: $('cancel'),
  genProgress: $('gen-progress'),
  genStatus: $('gen-status'),
  genError: $('gen-error'),
  backend: $('backend'),
  backendStatus: $('backend-status'),
  results: $('results'),
  midiOut: $('midi-out'),
  tempo: $('tempo'),
  tempoValue: $('tempo-value'),
  stopAll: $('stop-all'),
  overlay: $('drop-overlay'),
};

let wasm = null; // the wasm module's exports
let model = null; // { model: wasm Model, name, card }
let generation = null; // { cancelled } while generating
let results = []; // [{ notes, steps, midi, qpm, seed, roll, playButton }]
const player = new Player();
const saved = loadState();
const backends = new Backends(saved.backend);

// --- status -------------------------------------------------------------------

function showStatus(text, state) {
  els.status.textContent = text;
  els.status.dataset.state = state;
}

function showError(el, message) {
  el.textContent = message;
  el.hidden = !message;
}

const errorMessage = (err) => (err instanceof Error ? err.message : String(err));

// --- the primer -----------------------------------------------------------------

const primer = new Primer(saved.primer ?? {}, () => primerChanged());
const roll = new PianoRoll(els.roll, {
  editable: true,
  cell: 14,
  row: 8,
  minSteps: 64,
  onNote: (pitch) => player.preview(pitch),
  onChange: (notes, kind) => {
    if (kind === 'before') primer.checkpoint();
    else {
      primer.notes = notes.map((n) => ({ ...n }));
      primerChanged();
    }
  },
});

function primerChanged() {
  roll.setNotes(primer.notes);
  roll.setCursor(primer.cursor);
  els.octave.textContent = `Octave ${pitchName(primer.keyPitch(0))}–${pitchName(primer.keyPitch(12))}`;
  els.noteLength.value = String(primer.noteLength);
  persist();
}

function onKeyDown(event) {
  const target = event.target;
  if (event.key === 'Escape') {
    // Silence and stop, from anywhere on the page.
    stopAll();
    cancelGeneration();
    return;
  }
  if (target.closest?.('input, select, textarea')) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'z') {
    primer.undo();
    event.preventDefault();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.key === ' ' && target.closest?.('button, summary, a')) return;
  if (primer.handleKey(event.key)) {
    event.preventDefault();
    const index = PIANO_KEYS.indexOf(event.key.toLowerCase());
    if (index >= 0) player.preview(primer.keyPitch(index));
  }
}

function wirePrimer() {
  document.addEventListener('keydown', onKeyDown);
  for (const button of document.querySelectorAll('[data-preset]')) {
    button.addEventListener('click', () => {
      if (wasm) primer.replace(wasm.primerNotes(PRESETS[button.dataset.preset].primer).notes);
    });
  }
  $('undo').addEventListener('click', () => primer.undo());
  $('clear').addEventListener('click', () => primer.clear());
  els.noteLength.addEventListener('change', () => {
    primer.noteLength = Number(els.noteLength.value);
    persist();
  });
  primerChanged();
}

// --- options --------------------------------------------------------------------

const INTEGER_FIELDS = ['num_outputs', 'num_steps', 'beam_size', 'branch_factor', 'steps_per_iteration'];
const CHECK_FIELDS = ['condition_on_primer', 'inject_primer_during_generation', 'primer_in_output', 'mask_ignored_events'];

/** The form as the generator's options (GenerateOptions field names). */
function readOptions() {
  const f = els.options.elements;
  const options = {};
  for (const name of INTEGER_FIELDS) options[name] = Math.max(1, Math.round(Number(f[name].value) || 1));
  for (const name of CHECK_FIELDS) options[name] = f[name].checked;
  options.temperature = Number(f.temperature.value);
  options.qpm = Number(f.qpm.value);
  options.seed = Math.max(0, Math.round(Number(f.seed.value) || 0));
  return options;
}

function writeOptions(options) {
  const f = els.options.elements;
  for (const [name, value] of Object.entries(options ?? {})) {
    const field = f[name];
    if (!field) continue;
    if (field.type === 'checkbox') field.checked = Boolean(value);
    else if (Number.isFinite(value)) field.value = String(value);
  }
}

function randomSeed() {
  return Math.floor(Math.random() * 2 ** 31);
}

function wireOptions() {
  writeOptions(saved.options ?? { seed: randomSeed() });
  els.options.addEventListener('input', persist);
  els.options.addEventListener('submit', (e) => e.preventDefault());
  $('reseed').addEventListener('click', () => {
    els.options.elements.seed.value = String(randomSeed());
    persist();
  });
  els.options.elements.qpm.addEventListener('change', () => setTempo(readOptions().qpm));
}

function persist() {
  saveState({ primer: primer.toJSON(), options: readOptions(), backend: backends.choice });
}

// --- loading a model ---------------------------------------------------------------

/**
 * Downloads with a progress bar (the wasm module and the bundle are the
 * page's large downloads).
 * XMLHttpRequest, because its progress events need no stream reading.
 */
function fetchWithProgress(url) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('GET', url);
    xhr.responseType = 'arraybuffer';
    xhr.onprogress = (e) => {
      if (e.lengthComputable) els.loadProgress.value = e.loaded / e.total;
    };
    xhr.onload = () =>
      xhr.status === 200
        ? resolve(new Uint8Array(xhr.response))
        : reject(new Error(`${new URL(url).pathname}: HTTP ${xhr.status}`));
    xhr.onerror = () => reject(new Error(`${new URL(url).pathname}: network error`));
    xhr.send();
  });
}

/**
 * Makes a model of bundle bytes and, only if that works, swaps it in: a bad
 * file throws and the old model stays loaded.
 */
function useModel(bytes, fileName) {
  const next = wasm.Model.fromBytes(bytes);
  const card = next.card();
  if (backends.webgpuReady) {
    try {
      next.useWebGpu();
    } catch (err) {
      backends.lose(`WebGPU could not take the model: ${errorMessage(err)}`);
      showBackends();
    }
  }
  if (generation) cancelGeneration();
  model?.model.free();
  model = { model: next, name: modelName(fileName), card };
  renderCard(card, fileName, { title: els.cardTitle, facts: els.cardFacts });
  els.card.hidden = false;
  els.generate.disabled = false;
  showStatus(`Model “${model.name}” ready — polyphony v${wasm.version()}`, 'ready');
}

// --- backends -------------------------------------------------------------------------

/** Tries WebGPU, times it against the CPU, and shows the outcome. */
async function setUpBackends() {
  els.backendStatus.textContent = 'Backend: CPU (wasm) — trying WebGPU…';
  if (await backends.startWebGpu(wasm, model.model)) {
    els.backendStatus.textContent = 'Backend: CPU (wasm) — timing CPU and WebGPU…';
  }
  await backends.time(model.model);
  showBackends();
}

function showBackends() {
  els.backend.value = backends.choice;
  els.backend.querySelector('option[value="webgpu"]').disabled = !backends.webgpuReady;
  els.backendStatus.textContent = backends.describe();
  els.backendStatus.title = backends.webgpuProblem ?? '';
}

function wireBackends() {
  els.backend.addEventListener('change', () => {
    backends.choice = els.backend.value;
    showBackends();
    persist();
  });
  els.backend.value = backends.choice;
}

// --- dropped and picked files ---------------------------------------------------------

async function openFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (wasm.isMusicFileName(file.name)) {
    try {
      const { notes, qpm } = wasm.primerFromFile(file.name, bytes);
      primer.replace(notes);
      // The file's tempo comes with it, as with --primer_midi.
      if (qpm) {
        writeOptions({ qpm });
        setTempo(qpm);
        persist();
      }
      showError(els.modelError, '');
    } catch (err) {
      showError(els.modelError, `Could not use ${file.name} as a primer: ${errorMessage(err)}`);
    }
    return;
  }
  try {
    useModel(bytes, file.name);
    showError(els.modelError, '');
  } catch (err) {
    const still = model ? ` The model “${model.name}” stays loaded.` : '';
    showError(els.modelError, `Could not load ${file.name}: ${errorMessage(err)}.${still}`);
  }
}

function wireFiles() {
  let depth = 0;
  document.addEventListener('dragenter', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    depth += 1;
    els.overlay.hidden = false;
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) els.overlay.hidden = true;
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    els.overlay.hidden = true;
    const file = e.dataTransfer?.files?.[0];
    if (file && wasm) openFile(file);
  });
  els.fileInput.addEventListener('change', () => {
    const file = els.fileInput.files?.[0];
    if (file && wasm) openFile(file);
    els.fileInput.value = '';
  });
}

// --- generating -----------------------------------------------------------------

async function generate() {
  if (!model || generation) return;
  showError(els.genError, '');
  const options = readOptions();
  const primerSteps = primer.notes.reduce((m, n) => Math.max(m, n.end), 0);
  const state = { cancelled: false };
  generation = state;
  stopAll();
  clearResults();
  delete els.genStatus.dataset.seconds;
  setGenerating(true);
  let cards = [];
  const started = performance.now();
  const run = (backend) =>
    generateOutputs(model.model, backend, options, primer.notes, primerSteps, {
      isCancelled: () => state.cancelled,
      onProgress: ({ fraction, partial }) => {
        if (cards.length === 0) for (let i = 0; i < options.num_outputs; i++) cards.push(addResultCard(i, options));
        els.genProgress.value = fraction;
        els.genStatus.textContent = `Generating on ${LABELS[backend]}… ${Math.round(fraction * 100)}%`;
        if (partial) cards.forEach((card, i) => card.roll.setNotes(partial(i), options.num_steps));
      },
    });
  try {
    let backend = backends.current;
    let fellBack = '';
    let outputs;
    try {
      outputs = await run(backend);
    } catch (err) {
      if (!(err instanceof BackendError && err.backend === 'webgpu')) throw err;
      // The device is gone or broken: say so and finish on the CPU.
      backends.lose(`WebGPU failed during generation: ${err.message}`);
      showBackends();
      clearResults();
      cards = [];
      backend = 'cpu';
      fellBack = ' (WebGPU failed, so the CPU took over)';
      outputs = await run(backend);
    }
    if (!outputs) {
      els.genStatus.textContent = 'Cancelled.';
      clearResults();
      return;
    }
    const seconds = (performance.now() - started) / 1000;
    outputs.forEach((output, i) => fillResult(cards[i], output, options));
    els.genStatus.textContent = `${outputs.length} output${outputs.length === 1 ? '' : 's'} in ${seconds.toFixed(2)} s on ${LABELS[backend]}${fellBack}`;
    els.genStatus.dataset.seconds = seconds.toFixed(3);
  } catch (err) {
    clearResults();
    showError(els.genError, `Cannot generate: ${errorMessage(err)}`);
    els.genStatus.textContent = '';
  } finally {
    if (generation === state) generation = null;
    setGenerating(false);
  }
}

function cancelGeneration() {
  if (generation) generation.cancelled = true;
}

function setGenerating(on) {
  els.generate.disabled = on || !model;
  els.cancel.hidden = !on;
  els.genProgress.hidden = !on;
  if (on) els.genProgress.value = 0;
}

// --- results ------------------------------------------------------------------------

function clearResults() {
  results = [];
  els.results.replaceChildren();
}

/** A new element with the given properties (className, textContent, ...). */
function element(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

function addResultCard(index, options) {
  const li = element('li', { className: 'result' });
  const head = element('div', { className: 'result-head' });
  const title = element('span', { className: 'title', textContent: `Output ${index + 1}` });
  const info = element('span', { className: 'muted info' });
  const play = element('button', { type: 'button', className: 'play', textContent: 'Play', disabled: true });
  const download = element('a', { className: 'download', textContent: 'Download .mid', hidden: true });
  head.append(title, info, play, download);
  const scroll = element('div', { className: 'roll-scroll' });
  const canvas = element('canvas');
  scroll.append(canvas);
  li.append(head, scroll);
  els.results.append(li);
  // As wide as the page allows: the whole piece at a glance.
  const width = Math.max(320, els.results.clientWidth - 24);
  const cell = Math.max(2, Math.min(12, Math.floor((width - 26) / options.num_steps)));
  const roll = new PianoRoll(canvas, { cell, row: 3, pitchRange: [48, 76], minSteps: options.num_steps });
  roll.totalSteps = options.num_steps;
  const card = { index, li, info, play, download, roll, notes: [], steps: 0, midi: null, qpm: options.qpm, seed: options.seed };
  results.push(card);
  play.addEventListener('click', () => togglePlay(card));
  download.addEventListener('click', () => prepareDownload(card));
  return card;
}

function fillResult(card, output, options) {
  card.notes = output.notes;
  card.steps = output.steps;
  card.midi = output.midi;
  card.roll.setNotes(output.notes, output.steps);
  card.info.textContent = `${output.steps} steps, ${output.notes.length} notes, log-likelihood ${output.log_likelihood.toFixed(1)}`;
  card.play.disabled = false;
  card.download.hidden = false;
  const base = model.name.replace(/[^\w.-]+/g, '-');
  card.download.download = `${base}-seed${options.seed}-${String(card.index + 1).padStart(2, '0')}.mid`;
  prepareDownload(card);
}

/** Points the link at the MIDI file, written at the tempo now chosen. */
function prepareDownload(card) {
  const qpm = player.qpm;
  const bytes = qpm === card.qpm ? card.midi : wasm.notesToMidi(card.notes, qpm);
  if (card.download.href) URL.revokeObjectURL(card.download.href);
  card.download.href = URL.createObjectURL(new Blob([bytes], { type: 'audio/midi' }));
}

function togglePlay(card) {
  if (card.playing) {
    stopAll();
    return;
  }
  stopAll();
  card.playing = true;
  card.play.textContent = 'Stop';
  player.play(card.notes, {
    onStep: (step) => card.roll.setPlayhead(step),
    onEnd: () => {
      card.playing = false;
      card.play.textContent = 'Play';
      card.roll.setPlayhead(null);
    },
  });
}

function stopAll() {
  player.stop();
}

function setTempo(qpm) {
  if (!Number.isFinite(qpm) || qpm <= 0) return;
  player.setTempo(qpm);
  els.tempo.value = String(qpm);
  els.tempoValue.textContent = String(qpm);
}

async function wirePlayback() {
  els.generate.addEventListener('click', generate);
  els.cancel.addEventListener('click', cancelGeneration);
  els.stopAll.addEventListener('click', stopAll);
  els.tempo.addEventListener('input', () => setTempo(Number(els.tempo.value)));
  setTempo(readOptions().qpm);
  const access = await requestMidi();
  bindOutputs(access, els.midiOut, (output) => player.setOutput(output));
  const inputs = bindInputs(access, (pitch) => primer.addAtCursor(pitch));
  els.midiIn.textContent = access ? `MIDI in: ${inputs} input${inputs === 1 ? '' : 's'}` : 'MIDI in: not available';
}

// --- main ---------------------------------------------------------------------------

window.polyphonyApp = {
  primerNotes: () => primer.notes.map((n) => ({ ...n })),
  primerCursor: () => primer.cursor,
  rollPoint: (pitch, step) => roll.pointFor(pitch, step),
  modelName: () => model?.name ?? null,
  results: () => results.map((r) => ({ steps: r.steps, notes: r.notes.length })),
};

async function main() {
  wirePrimer();
  wireOptions();
  wireBackends();
  wireFiles();
  const playback = wirePlayback();
  // A dynamic import, so a missing or broken pkg/ is reported on the page.
  showStatus('Loading the program (WebAssembly)…', 'loading');
  wasm = await import('../pkg/polyphony.js');
  await wasm.default({ module_or_path: await fetchWithProgress(WASM_URL) });
  showStatus('Loading the model…', 'loading');
  els.loadProgress.value = 0;
  const bytes = await fetchWithProgress(BUNDLE_URL);
  useModel(bytes, BUNDLE_URL.pathname);
  els.loadProgress.hidden = true;
  await playback;
  window.polyphonyReadyMs = Math.round(performance.now());
  window.polyphonyReady = true;
  // The first note is timed before the backends are, which takes seconds.
  const benchMode = new URLSearchParams(location.search).has('bench');
  const firstNote = benchMode ? await firstNoteMs(model.model) : null;
  await setUpBackends();
  window.polyphonyBackendsReady = true;
  if (benchMode) await bench(firstNote);
}

// --- benchmark mode (?bench) -------------------------------------------------------

async function bench(firstNote) {
  const section = element('section', { id: 'bench-section' });
  const title = element('h2', { textContent: 'Benchmark' });
  const status = element('p', { className: 'muted', textContent: 'Running the benchmark…' });
  section.append(title, status);
  document.querySelector('main').prepend(section);
  els.generate.disabled = true;
  try {
    const params = new URLSearchParams(location.search);
    const rows = await runBench(model.model, {
      steps: Number(params.get('steps')) || undefined,
      backends: params.get('backends')?.split(','),
      webgpu: backends.webgpuReady,
    });
    status.remove();
    section.append(benchTable(rows, firstNote));
    window.benchFirstNoteMs = firstNote;
    window.benchResult = rows;
  } catch (err) {
    status.textContent = `Benchmark failed: ${errorMessage(err)}`;
    status.className = 'error';
    window.benchError = errorMessage(err);
  } finally {
    els.generate.disabled = false;
  }
}

main().catch((err) => {
  const message = errorMessage(err);
  showStatus(`Could not start: ${message}`, 'error');
  window.polyphonyError = message;
});
