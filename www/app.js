// Polyphony page: wiring. Loads the wasm package (../pkg/, built by
// `./build.sh wasm`) and the bundled model, then connects the melody editor,
// the options, generation, the results and playback. Each part lives in its
// own module: roll.js (piano roll), primer.js (the primer and typing),
// results.js (result cards: voices, playback, downloads, score, rewriting),
// score.js (notation), player.js (WebAudio synth / WebMIDI out), midi-io.js
// (WebMIDI ports), generator.js (driving the wasm generator a slice at a
// time), backend.js (CPU or WebGPU, timed), card.js (model card), store.js
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
import { Results, element } from './results.js';
import { requestMidi, bindOutputs, bindInputs } from './midi-io.js';
import { renderCard, modelName } from './card.js';
import { loadState, saveState } from './store.js';
import { generate as generateOutputs, BackendError } from './generator.js';
import { Backends, LABELS, makeModel } from './backend.js';
import { shareLink, readShared, copyText } from './share.js';
import { LiveTake } from './live.js';
import { runBench, firstNoteMs, benchTable } from './bench.js';
import { setUpOffline } from './offline.js';

const BUNDLE_URL = new URL('../assets/bach-chorales.bundle', import.meta.url);
const WASM_URL = new URL('../pkg/polyphony_bg.wasm', import.meta.url);
/** The engine's JS glue (a URL, so that a dist build's hashed name reaches the restart too). */
const GLUE_URL = new URL('../pkg/polyphony.js', import.meta.url);
const STEPS_PER_BAR = 16;
const KEY_NAMES = ['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'];

/**
 * The CPU engine, from the first moment: its JS and its wasm compiled while
 * it downloads, beside the page's own start-up, not after it (they were the
 * first 0.1 s of the way to the first note). Awaited in main(), which reports
 * a failure; `.catch` here only keeps an early one from being "unhandled".
 */
const engineGlue = import(GLUE_URL.href);
const engineCode = compileEngine();
engineGlue.catch(() => {});
engineCode.catch(() => {});

async function compileEngine() {
  try {
    // index.html's inline script started it (the same URL); in a browser without
    // compileStreaming this throws, and the bytes are compiled below.
    return await (self.polyphonyEngineCode ?? WebAssembly.compileStreaming(fetch(WASM_URL)));
  } catch {
    // A host that serves .wasm with another MIME type than application/wasm
    // (streaming refuses it), or a failed download: from the bytes, which
    // says which.
    return WebAssembly.compile(await fetchWithProgress(WASM_URL));
  }
}

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
  harmonize: $('harmonize'),
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
  share: $('share'),
  live: $('live'),
  liveStatus: $('live-status'),
  shareLink: $('share-link'),
  sharedNote: $('shared-note'),
  overlay: $('drop-overlay'),
  adventureValue: $('adventure-value'),
};

let wasm = null; // the wasm module's exports
let model = null; // { model: the CPU package's Model, name, card, bytes, fileName }
let generation = null; // { cancelled } while generating
let lastRequest = null; // { req, backend } of the results shown, for share links
let liveTake = null; // the LiveTake while playing live
const player = new Player();
const saved = loadState();
const backends = new Backends(saved.backend);

// --- status -------------------------------------------------------------------

function showStatus(text, state) {
  els.status.textContent = text;
  els.status.dataset.state = state;
}

/**
 * Shows what went wrong; a wasm trap (a panic in the engine, which leaves
 * its instance unusable) also restarts the engine.
 */
function showFailure(el, text, err) {
  showError(el, `${text}: ${errorMessage(err)}`);
  if (isTrap(err)) restartEngine(err);
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
  showDefaultAction();
  persist();
}

/** A melody is harmonized by default, anything else continued. */
function showDefaultAction() {
  const melody = wasm ? wasm.isMelody(primer.notes) : true;
  els.harmonize.classList.toggle('primary', melody);
  els.generate.classList.toggle('primary', !melody);
}

function onKeyDown(event) {
  const target = event.target;
  if (event.key === 'Escape') {
    // Silence and stop, from anywhere on the page.
    player.stop();
    cancelGeneration();
    if (liveTake) stopLive();
    return;
  }
  if (target.closest?.('input, select, textarea')) return;
  if (liveTake) {
    // Playing live, the piano keys play the melody.
    const index = PIANO_KEYS.indexOf(event.key.toLowerCase());
    if (index >= 0 && !event.repeat) liveTake.noteOn(primer.keyPitch(index), event.timeStamp);
    if (index >= 0) event.preventDefault();
    return;
  }
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

function onKeyUp(event) {
  const index = PIANO_KEYS.indexOf(event.key.toLowerCase());
  if (liveTake && index >= 0) liveTake.noteOff(primer.keyPitch(index));
}

function wirePrimer() {
  document.addEventListener('keydown', onKeyDown);
  document.addEventListener('keyup', onKeyUp);
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
const NUMBER_FIELDS = ['temperature', 'qpm', 'key_prior', 'top_p'];
const CHECK_FIELDS = ['condition_on_primer', 'inject_primer_during_generation', 'primer_in_output', 'mask_ignored_events', 'descending', 'part_writing'];
/** Fields of the musical controls, kept with the options across reloads. */
const MUSICAL_FIELDS = ['bars', 'extra_bars', 'adventure'];

/** The form as the generator's options (GenerateOptions field names). */
function readOptions() {
  const f = els.options.elements;
  const options = {};
  for (const name of INTEGER_FIELDS) options[name] = Math.max(1, Math.round(Number(f[name].value) || 1));
  for (const name of NUMBER_FIELDS) options[name] = Number(f[name].value);
  for (const name of CHECK_FIELDS) options[name] = f[name].checked;
  options.max_voices = f.max_voices.value === '' ? null : Math.max(1, Math.round(Number(f.max_voices.value)));
  options.seed = Math.max(0, Math.round(Number(f.seed.value) || 0));
  options.key = f.key.value || null;
  return options;
}

function readMusical() {
  const f = els.options.elements;
  return Object.fromEntries(MUSICAL_FIELDS.map((name) => [name, Number(f[name].value)]));
}

function writeOptions(options) {
  const f = els.options.elements;
  for (const [name, value] of Object.entries(options ?? {})) {
    const field = f[name];
    if (!field) continue;
    if (field.type === 'checkbox') field.checked = Boolean(value);
    else if (name === 'key' || name === 'max_voices') field.value = value ?? '';
    else if (Number.isFinite(value)) field.value = String(value);
  }
  showAdventure();
}

/** Adventurousness 0–100 is a temperature of 0.5–1.5 (the advanced field holds it). */
const temperatureOf = (adventure) => 0.5 + adventure / 100;
const adventureOf = (temperature) => Math.round(Math.min(100, Math.max(0, (temperature - 0.5) * 100)));

function showAdventure() {
  els.adventureValue.textContent = Number(els.options.elements.temperature.value).toFixed(2);
}

function randomSeed() {
  return Math.floor(Math.random() * 2 ** 31);
}

function wireOptions() {
  const f = els.options.elements;
  for (const mode of ['major', 'minor']) {
    for (const name of KEY_NAMES) f.key.append(element('option', { value: `${name} ${mode}`, textContent: `${name.replace('#', '♯').replace('b', '♭')} ${mode}` }));
  }
  writeOptions(saved.options ?? { seed: randomSeed() });
  // The musical controls and the original's options hold the same values.
  f.bars.addEventListener('input', () => {
    f.num_steps.value = String(Math.max(1, Math.round(Number(f.bars.value) || 1)) * STEPS_PER_BAR);
  });
  f.num_steps.addEventListener('input', () => {
    f.bars.value = String(Math.max(1, Math.ceil(Number(f.num_steps.value) / STEPS_PER_BAR)));
  });
  f.adventure.addEventListener('input', () => {
    f.temperature.value = temperatureOf(Number(f.adventure.value)).toFixed(2);
    showAdventure();
  });
  f.temperature.addEventListener('input', () => {
    f.adventure.value = String(adventureOf(Number(f.temperature.value)));
    showAdventure();
  });
  els.options.addEventListener('input', persist);
  els.options.addEventListener('submit', (e) => e.preventDefault());
  $('reseed').addEventListener('click', () => {
    f.seed.value = String(randomSeed());
    persist();
  });
  f.qpm.addEventListener('change', () => setTempo(readOptions().qpm));
}

function persist() {
  saveState({ primer: primer.toJSON(), options: { ...readOptions(), ...readMusical() }, backend: backends.choice });
}

// --- loading a model ---------------------------------------------------------------

/**
 * Downloads with a progress bar (the model, the page's large download, and
 * the wasm where it cannot be compiled as it streams).
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
 * Makes a model of bundle bytes (or of the original's `.mag`, converted in
 * wasm) and, only if that works, swaps it in: a bad file throws and the old
 * model stays loaded.
 */
function useModel(bytes, fileName) {
  const next = makeModel(wasm, bytes, fileName);
  mark('model-made');
  const card = next.card();
  if (backends.webgpuReady) {
    try {
      backends.adopt(bytes, fileName);
    } catch (err) {
      backends.lose(`WebGPU could not take the model: ${errorMessage(err)}`);
      showBackends();
    }
  }
  if (generation) cancelGeneration();
  model?.model.free();
  model = {
    model: next,
    name: modelName(fileName),
    card,
    bytes,
    fileName,
    /** The model's identity for share links, computed when first needed (a pass over every weight). */
    get identity() {
      return (this.knownIdentity ??= next.identity());
    },
  };
  renderCard(card, fileName, { title: els.cardTitle, facts: els.cardFacts });
  els.card.hidden = false;
  setGenerating(false);
  const imported = card.origin ? ` (imported from the original's ${card.origin.source}: ${card.origin.generator_description || card.origin.generator_id})` : '';
  showStatus(`Model “${model.name}” ready${imported} — polyphony v${wasm.version()}`, 'ready');
}

// --- the engine after a trap ----------------------------------------------------------

const isTrap = (err) => err instanceof WebAssembly.RuntimeError;
let restarting = null; // the restart in progress

/**
 * A trap (a panic in the engine) leaves the wasm instance in an unknown
 * state: a fresh instance of the module, and the model loaded into it again.
 */
function restartEngine(err) {
  restarting ??= (async () => {
    cancelGeneration();
    if (liveTake) stopLive();
    const { bytes, fileName, name } = model;
    showStatus(`The engine stopped (${errorMessage(err)}); restarting it…`, 'loading');
    // A new module URL is a new instance of the glue, and the compiled code
    // is instantiated again.
    wasm = await import(`${GLUE_URL.href}?instance=${Date.now()}`);
    await wasm.default({ module_or_path: await engineCode });
    model = null; // its objects lived in the old instance
    useModel(bytes, fileName);
    showStatus(`The engine stopped (${errorMessage(err)}) and was restarted; the model “${name}” is loaded again.`, 'ready');
    window.polyphonyRestarts = (window.polyphonyRestarts ?? 0) + 1;
  })()
    .catch((e) => showStatus(`The engine stopped and could not be restarted: ${errorMessage(e)}; reload the page.`, 'error'))
    .finally(() => (restarting = null));
  return restarting;
}

window.addEventListener('error', (e) => isTrap(e.error) && restartEngine(e.error));
window.addEventListener('unhandledrejection', (e) => isTrap(e.reason) && restartEngine(e.reason));

// --- backends -------------------------------------------------------------------------

/** Tries WebGPU, times it against the CPU, and shows the outcome. */
async function setUpBackends() {
  els.backendStatus.textContent = 'Backend: CPU (wasm) — trying WebGPU…';
  if (await backends.startWebGpu(model.bytes, model.fileName)) {
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
      showFailure(els.modelError, `Could not use ${file.name} as a primer`, err);
    }
    return;
  }
  try {
    useModel(bytes, file.name);
    showError(els.modelError, '');
  } catch (err) {
    const still = model ? ` The model “${model.name}” stays loaded.` : '';
    showError(els.modelError, `Could not load ${file.name}: ${errorMessage(err)}.${still}`);
    if (isTrap(err)) restartEngine(err);
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

/**
 * Runs one request ({options, primer, primerSteps}) on the current backend,
 * falling back to the CPU when WebGPU fails; `draw(i, notes)` shows output
 * i's notes as they come. Resolves to {outputs, seconds, backend, fellBack}
 * (outputs null when cancelled); a refused request throws.
 */
async function run(request, draw, backend = backends.current) {
  const state = { cancelled: false };
  generation = state;
  setGenerating(true);
  const started = performance.now();
  const attempt = (backend) =>
    generateOutputs(backends.modelFor(backend, model.model), backend, request.options, request.primer, request.primerSteps, {
      isCancelled: () => state.cancelled,
      onProgress: ({ fraction, partial }) => {
        els.genProgress.value = fraction;
        els.genStatus.textContent = `Writing on ${LABELS[backend]}… ${Math.round(fraction * 100)}%`;
        if (partial) for (let i = 0; i < request.options.num_outputs; i++) draw(i, partial(i));
      },
    });
  try {
    let fellBack = '';
    let outputs;
    try {
      outputs = await attempt(backend);
    } catch (err) {
      if (!(err instanceof BackendError && err.backend === 'webgpu')) throw err;
      // The device is gone or broken: say so and finish on the CPU.
      backends.lose(`WebGPU failed during generation: ${err.message}`);
      showBackends();
      backend = 'cpu';
      fellBack = ' (WebGPU failed, so the CPU took over)';
      outputs = await attempt(backend);
    }
    return { outputs, seconds: (performance.now() - started) / 1000, backend, fellBack };
  } finally {
    if (generation === state) generation = null;
    setGenerating(false);
  }
}

/** The request of the Harmonize button (`harmonize`) or of Continue. */
function request(harmonize) {
  const options = { ...readOptions(), harmonize };
  if (harmonize) {
    // The melody's length, and as many more bars as asked.
    const extra = Math.max(0, Math.round(readMusical().extra_bars || 0)) * STEPS_PER_BAR;
    const melody = primer.notes.reduce((m, n) => Math.max(m, n.end), 0);
    options.num_steps = extra > 0 ? melody + extra : 0;
  }
  return { options, primer: primer.notes, primerSteps: primer.notes.reduce((m, n) => Math.max(m, n.end), 0) };
}

async function generate(harmonize) {
  if (!model || generation) return;
  await write(request(harmonize));
}

/**
 * Runs `req` and shows its outputs as results, on `backend` (a shared link
 * is run on the CPU, whose notes it reproduces) or the current one.
 */
async function write(req, backend) {
  showError(els.genError, '');
  delete els.genStatus.dataset.seconds;
  results.clear();
  els.share.hidden = true;
  let cards = [];
  const steps = req.options.num_steps || req.primerSteps;
  const draw = (i, notes) => {
    if (cards.length === 0) cards = results.start(req.options.num_outputs, steps, req.options.qpm, req.options.seed);
    results.draw(cards[i], notes);
  };
  try {
    const { outputs, seconds, backend: ran, fellBack } = await run(req, draw, backend);
    if (!outputs) {
      els.genStatus.textContent = 'Cancelled.';
      results.clear();
      return;
    }
    if (cards.length === 0) cards = results.start(outputs.length, outputs[0]?.steps ?? steps, req.options.qpm, req.options.seed);
    outputs.forEach((output, i) => results.fill(cards[i], output, req));
    const what = req.options.harmonize ? 'harmonization' : 'output';
    els.genStatus.textContent = `${outputs.length} ${what}${outputs.length === 1 ? '' : 's'} in ${seconds.toFixed(2)} s on ${LABELS[ran]}${fellBack}`;
    els.genStatus.dataset.seconds = seconds.toFixed(3);
    lastRequest = { req, backend: ran };
    els.share.hidden = false;
  } catch (err) {
    results.clear();
    showFailure(els.genError, 'Cannot generate', err);
    els.genStatus.textContent = '';
  }
}

// --- live harmonization --------------------------------------------------------------

/** Starts a live take: a metronome, and each melody note harmonized as it is played. */
function startLive() {
  if (!model || generation || liveTake) return;
  showError(els.genError, '');
  try {
    liveTake = new LiveTake(model.model, readOptions(), player.liveSink(), { onStep: showLive });
  } catch (err) {
    showFailure(els.genError, 'Cannot play live', err);
    return;
  }
  window.polyphonyLive = liveTake;
  els.live.textContent = 'Stop';
  els.live.classList.add('primary');
  setGenerating(false);
  els.liveStatus.textContent = 'Count-in… then play the melody (a MIDI keyboard, or the a w s e d … keys).';
}

/** The clock's bar and the latency so far, under the buttons. */
function showLive(step) {
  if (step <= 0) return;
  const latency = liveTake.latency();
  const text =
    `Live: bar ${Math.floor(step / STEPS_PER_BAR) + 1}` +
    (latency ? ` · harmony ${latency.median.toFixed(1)} ms after each note (worst ${latency.worst.toFixed(1)} ms, ${latency.notes} notes)` : '');
  if (els.liveStatus.textContent !== text) els.liveStatus.textContent = text;
}

/** Ends the take; what was played becomes a result. */
function stopLive() {
  const take = liveTake;
  liveTake = null;
  const output = take.stop();
  const latency = take.latency();
  els.live.textContent = 'Play live';
  els.live.classList.remove('primary');
  setGenerating(false);
  if (!output) {
    els.liveStatus.textContent = 'Nothing was played.';
    return;
  }
  const req = take.request();
  results.clear();
  els.share.hidden = true;
  const [card] = results.start(1, output.steps, req.options.qpm, req.options.seed);
  results.fill(card, output, req);
  els.liveStatus.textContent =
    `Take of ${output.steps} steps` +
    (latency ? `; harmony ${latency.median.toFixed(1)} ms after each note (median; worst ${latency.worst.toFixed(1)} ms, ${latency.notes} notes)` : '');
}

// --- share links -------------------------------------------------------------------

/** Puts a link to the last request (and the model that ran it) on the clipboard. */
async function copyShareLink() {
  if (!lastRequest || !model) return;
  const link = shareLink(lastRequest.req, { identity: model.identity, name: model.name }, lastRequest.backend);
  els.shareLink.value = link;
  els.shareLink.hidden = false;
  const copied = await copyText(link);
  els.genStatus.textContent = copied ? 'Link copied: it writes the same notes with this model.' : 'Copy the link below: it writes the same notes with this model.';
  if (!copied) els.shareLink.select();
}

/**
 * Opens the shared request in the address, if any: on the same model it is
 * run at once on the CPU (the same notes); made with another model the page
 * says so and offers to run it on this one.
 */
async function openShared() {
  let shared;
  try {
    shared = readShared();
  } catch (err) {
    showError(els.genError, `Cannot open the shared link: ${errorMessage(err)}`);
    return;
  }
  if (!shared) return;
  const { request: req } = shared;
  primer.replace(req.primer);
  writeOptions(req.options);
  if (shared.model === model.identity) {
    await write(req, 'cpu');
    // WebGPU samples with its own random numbers: the CPU's notes differ.
    if (shared.backend !== 'cpu') els.genStatus.textContent += ` (the link was written on ${LABELS[shared.backend] ?? shared.backend}, so these notes differ from its)`;
    return;
  }
  els.sharedNote.textContent = `This link was made with the model “${shared.modelName}” (${shared.model}); this page has “${model.name}” (${model.identity}), so the notes will differ. `;
  const button = element('button', { type: 'button', id: 'shared-run', textContent: 'Generate with this model' });
  button.addEventListener('click', () => {
    els.sharedNote.hidden = true;
    write(req, 'cpu');
  });
  els.sharedNote.append(button);
  els.sharedNote.hidden = false;
}

/** The notes of one voice of a result card. */
const voiceNotes = (card, voice) => card.notes.filter((_, i) => card.voices[i] === voice);

/**
 * A card written again in part: from its marked step on, or around its
 * soprano or bass; one output, a new seed, the card's own options.
 */
function rewriteRequest(card, kind) {
  const options = { ...card.request.options, num_outputs: 1, beam_size: 1, branch_factor: 1, seed: randomSeed(), num_steps: card.steps };
  if (kind === 'from-here') {
    const step = card.mark;
    if (options.harmonize) return { options: { ...options, keep_steps: step }, primer: card.notes, primerSteps: card.steps };
    const kept = card.notes.filter((n) => n.start < step).map((n) => ({ ...n, end: Math.min(n.end, step) }));
    return {
      options: { ...options, condition_on_primer: true, inject_primer_during_generation: false, primer_in_output: true },
      primer: kept,
      primerSteps: step,
    };
  }
  const bass = Math.max(...card.voices.filter((v) => v <= 3));
  const line = voiceNotes(card, kind === 'keep-bass' ? bass : 0);
  return { options: { ...options, harmonize: true, harmonize_bass: kind === 'keep-bass', keep_steps: 0 }, primer: line, primerSteps: card.steps };
}

/** Results' hook: writes a card again; resolves to {output, request} or null. */
async function rewrite(card, kind) {
  if (!model || generation) return null;
  showError(els.genError, '');
  const req = rewriteRequest(card, kind);
  try {
    const { outputs, seconds, backend } = await run(req, (_, notes) => results.draw(card, notes));
    if (!outputs) return null;
    els.genStatus.textContent = `Output ${card.index + 1} rewritten in ${seconds.toFixed(2)} s on ${LABELS[backend]}`;
    return { output: outputs[0], request: req };
  } catch (err) {
    showFailure(els.genError, 'Cannot rewrite', err);
    results.draw(card, card.notes);
    return null;
  }
}

function cancelGeneration() {
  if (generation) generation.cancelled = true;
}

function setGenerating(on) {
  els.generate.disabled = els.harmonize.disabled = on || !model || liveTake !== null;
  els.live.disabled = (on && !liveTake) || !model;
  els.cancel.hidden = !on;
  els.genProgress.hidden = !on;
  if (on) els.genProgress.value = 0;
}

// --- results and playback -------------------------------------------------------------

const results = new Results(els.results, {
  player,
  files: {
    midi: (notes, qpm, title) => wasm.notesToFile(notes, qpm, 'midi', title ?? ''),
    musicxml: (notes, qpm, title) => wasm.notesToFile(notes, qpm, 'musicxml', title ?? ''),
    score: (notes, qpm, title) => wasm.notesToFile(notes, qpm, 'closed-score', title ?? ''),
  },
  rewrite,
  name: () => model?.name ?? 'polyphony',
});

function setTempo(qpm) {
  if (!Number.isFinite(qpm) || qpm <= 0) return;
  player.setTempo(qpm);
  els.tempo.value = String(qpm);
  els.tempoValue.textContent = String(qpm);
}

async function wirePlayback() {
  els.harmonize.addEventListener('click', () => generate(true));
  els.generate.addEventListener('click', () => generate(false));
  els.cancel.addEventListener('click', cancelGeneration);
  els.stopAll.addEventListener('click', () => player.stop());
  els.tempo.addEventListener('input', () => setTempo(Number(els.tempo.value)));
  setTempo(readOptions().qpm);
  const access = await requestMidi();
  bindOutputs(access, els.midiOut, (output) => player.setOutput(output));
  const inputs = bindInputs(
    access,
    (pitch, time) => (liveTake ? liveTake.noteOn(pitch, time) : primer.addAtCursor(pitch)),
    (pitch) => liveTake?.noteOff(pitch),
  );
  els.live.addEventListener('click', () => (liveTake ? stopLive() : startLive()));
  els.midiIn.textContent = access ? `MIDI in: ${inputs} input${inputs === 1 ? '' : 's'}` : 'MIDI in: not available';
}

// --- main ---------------------------------------------------------------------------

window.polyphonyApp = {
  primerNotes: () => primer.notes.map((n) => ({ ...n })),
  primerCursor: () => primer.cursor,
  rollPoint: (pitch, step) => roll.pointFor(pitch, step),
  modelName: () => model?.name ?? null,
  results: () => results.cards.map((c) => ({ steps: c.steps, notes: c.notes.length })),
  resultNotes: (i) => results.cards[i].notes.map((n, k) => ({ ...n, voice: results.cards[i].voices[k] })),
  resultPoint: (i, step) => results.cards[i].roll.pointFor(60, step),
};

/** A point of the start-up on the performance timeline (first-note.mjs --timeline prints them). */
const mark = (name) => performance.mark(`polyphony:${name}`);

async function main() {
  mark('main');
  wirePrimer();
  wireOptions();
  wireBackends();
  wireFiles();
  const playback = wirePlayback();
  // The model downloads while the engine starts.
  const modelBytes = fetchWithProgress(BUNDLE_URL);
  modelBytes.catch(() => {});
  // A dynamic import, so a missing or broken pkg/ is reported on the page.
  showStatus('Loading the program (WebAssembly)…', 'loading');
  wasm = await engineGlue;
  const code = await engineCode;
  mark('engine-compiled');
  await wasm.default({ module_or_path: code });
  mark('engine');
  showDefaultAction();
  showStatus('Loading the model…', 'loading');
  const bytes = await modelBytes;
  mark('model-downloaded');
  useModel(bytes, BUNDLE_URL.pathname);
  mark('model-read');
  els.loadProgress.hidden = true;
  await playback;
  window.polyphonyReadyMs = Math.round(performance.now());
  mark('ready');
  window.polyphonyReady = true;
  setUpOffline(); // a dist build's service worker (offline use)
  els.share.addEventListener('click', copyShareLink);
  await openShared();
  // The first note is timed before the backends are, which takes seconds.
  const benchMode = new URLSearchParams(location.search).has('bench');
  const firstNote = benchMode ? await firstNoteMs(model.model) : null;
  if (benchMode) mark('first-note');
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
  els.generate.disabled = els.harmonize.disabled = true;
  try {
    const params = new URLSearchParams(location.search);
    const rows = await runBench((backend) => backends.modelFor(backend, model.model), {
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
    setGenerating(false);
  }
}

main().catch((err) => {
  const message = errorMessage(err);
  showStatus(`Could not start: ${message}`, 'error');
  window.polyphonyError = message;
});
