// Generation from the page: drives the wasm `Generation` (the library's one
// generator) a slice at a time, so the page can repaint, draw notes as they
// arrive and cancel between slices. JavaScript is single threaded: a
// blocking call with a progress callback could never repaint. Each advance
// is awaited: on WebGPU a step ends with an asynchronous read of the
// sampled events.

import { yieldToBrowser } from './backend.js';

/** Milliseconds of network work between repaints. */
const SLICE_MS = 30;
/** Partial notes are decoded for drawing at most this often (ms). */
const DRAW_EVERY_MS = 150;
/** Model steps per advance call: CPU steps take ~0.1 ms, WebGPU ones far more. */
const STEPS_PER_CALL = { cpu: 16, webgpu: 1 };

/** The backend failed while running (not a bad request): the page may retry elsewhere. */
export class BackendError extends Error {
  constructor(backend, cause) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = 'BackendError';
    this.backend = backend;
  }
}

/**
 * Runs a request to the end on `backend` ('cpu' or 'webgpu').
 * `onProgress({fraction, model_steps, partial})` gets `partial(i)` (output
 * i's notes so far) to draw with; `isCancelled()` is asked between slices.
 * Resolves to the outputs ({notes, steps, log_likelihood, midi}), or null
 * when cancelled; a bad request throws an Error, a failing backend a
 * BackendError.
 */
export async function generate(model, backend, options, primerNotes, primerSteps, { onProgress = () => {}, isCancelled = () => false } = {}) {
  const run = model.generate(options, primerNotes, primerSteps, backend);
  try {
    let done = false;
    let lastDraw = 0;
    while (!done) {
      if (isCancelled()) return null;
      const sliceEnd = performance.now() + SLICE_MS;
      try {
        while (!done && performance.now() < sliceEnd) done = await run.advance(STEPS_PER_CALL[backend]);
      } catch (err) {
        throw new BackendError(backend, err);
      }
      const now = performance.now();
      const progress = run.progress();
      const draw = done || now - lastDraw > DRAW_EVERY_MS;
      if (draw) lastDraw = now;
      onProgress({ ...progress, partial: draw ? (i) => run.partialNotes(i) : null });
      await yieldToBrowser();
    }
    if (isCancelled()) return null;
    return run.finish();
  } finally {
    run.free();
  }
}
