// Generation from the page: drives the wasm `Generation` (the library's one
// generator, fused CPU model) a slice at a time, so the page can repaint,
// draw notes as they arrive and cancel between slices. JavaScript is single
// threaded: a blocking call with a progress callback could never repaint.

/** Milliseconds of network work between repaints. */
const SLICE_MS = 30;
/** Partial notes are decoded for drawing at most this often (ms). */
const DRAW_EVERY_MS = 150;

const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Runs a request to the end. `onProgress({fraction, model_steps, partial})`
 * gets `partial(i)` (output i's notes so far) to draw with; `isCancelled()`
 * is asked between slices. Resolves to the outputs ({notes, steps,
 * log_likelihood, midi}), or null when cancelled; a bad request throws.
 */
export async function generate(model, options, primerNotes, primerSteps, { onProgress = () => {}, isCancelled = () => false } = {}) {
  const run = model.generate(options, primerNotes, primerSteps);
  try {
    let done = false;
    let lastDraw = 0;
    while (!done) {
      if (isCancelled()) return null;
      const sliceEnd = performance.now() + SLICE_MS;
      while (!done && performance.now() < sliceEnd) done = run.advance(1);
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
