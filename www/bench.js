// Benchmark mode (`?bench` in the page's address; `&steps=N` and
// `&backends=cpu,webgpu` narrow it): times the loaded model's network steps
// on each available backend at batch 1 and batch 10, and the
// time from navigation start to the first generated note. Results go to a
// table on the page and to `window.benchResult` (an array of {backend,
// batch, steps, total_ms, ms_per_step}) and `window.benchFirstNoteMs`.

import { LABELS, timeSteps, yieldToBrowser } from './backend.js';

/** Model steps timed per (backend, batch). */
export const BENCH_STEPS = 640;
/** Batch sizes timed on each backend. */
export const BENCH_BATCHES = [1, 10];
/** Steps run before timing (warm-up: JIT tiers, first allocations). */
const WARMUP_STEPS = 16;

/**
 * Milliseconds from navigation start until a tiny generation (one output,
 * no primer, on the CPU) has its first note: the generator is advanced one
 * model step at a time and its partial notes checked after each.
 */
export async function firstNoteMs(model) {
  const run = model.generate({ num_outputs: 1, num_steps: 16, seed: 1 }, [], 0, 'cpu');
  try {
    let done = false;
    while (!done) {
      done = await run.advance(1);
      if (run.partialNotes(0).length > 0) return performance.now();
    }
    return run.finish()[0].notes.length > 0 ? performance.now() : null;
  } finally {
    run.free();
  }
}

/**
 * Times each backend (`backends`: names, default every available one;
 * `modelFor(backend)` the model that runs there;
 * WebGPU only when `webgpu` says the model is on it) at every batch size.
 * WebGPU steps include sampling on the device and reading the choices back,
 * as in a generation; CPU steps are the network alone.
 */
export async function runBench(modelFor, { steps = BENCH_STEPS, batches = BENCH_BATCHES, backends = ['cpu', 'webgpu'], webgpu = false } = {}) {
  const rows = [];
  for (const backend of backends) {
    if (!(backend in LABELS) || (backend === 'webgpu' && !webgpu)) continue;
    for (const batch of batches) {
      const total_ms = await timeSteps(modelFor(backend), backend, batch, WARMUP_STEPS, steps);
      rows.push({ backend: LABELS[backend], batch, steps, total_ms, ms_per_step: total_ms / steps });
      await yieldToBrowser();
    }
  }
  return rows;
}

/** The results as a table (the element returned is added by the caller). */
export function benchTable(rows, firstNote) {
  const table = document.createElement('table');
  table.id = 'bench-table';
  table.className = 'bench';
  const caption = table.createCaption();
  caption.textContent =
    `Benchmark: ${rows[0]?.steps ?? BENCH_STEPS} model steps per row` +
    (firstNote == null ? '' : ` — first note ${firstNote.toFixed(0)} ms after navigation start`);
  const head = table.createTHead().insertRow();
  for (const label of ['Backend', 'Batch', 'Steps', 'Total (ms)', 'ms / step']) {
    const th = document.createElement('th');
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const v of [r.backend, r.batch, r.steps, r.total_ms.toFixed(1), r.ms_per_step.toFixed(3)]) {
      tr.insertCell().textContent = String(v);
    }
  }
  return table;
}
