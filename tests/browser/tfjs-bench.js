// TensorFlow.js 4.22's wasm backend running the page's network step, for
// bench-vs-tfjs.mjs. `tf` and `tf.wasm` are the UMD bundles tfjs-bench.html
// loads from node_modules.
//
// The network is the page's (src/fused.rs): three TensorFlow BasicLSTMCell
// layers of 256 units, per layer z = [x, h] · W + b (W [in + 256, 1024]),
// gates i, j, f, o in that order, c' = c·σ(f + 1) + σ(i)·tanh(j),
// h' = tanh(c')·σ(o), the first layer's input a 259-wide one-hot, then a
// dense layer 256 -> 259 to logits. Random weights (speed does not depend on
// them), created once; the state is carried from step to step; each step
// reads its logits back with dataSync(), as a generator must.
//
// Query parameters:
//   steps=640       timed steps per batch size (after 16 warm-up steps, as ?bench)
//   batches=1,10
//   threads=1       use tfjs's threaded SIMD binary when the page is
//                   cross-origin isolated; threads=0 forces the SIMD-only one
//   nthreads=N      tf.wasm.setThreadsCount(N) (default: tfjs's own choice).
//                   tfjs caps its pool at navigator.hardwareConcurrency / 2
//                   (it assumes two hyperthreads per core), so on a 2-core
//                   machine it runs one thread whatever is asked;
//   cores=N         makes navigator.hardwareConcurrency N first, so that
//                   cores=4&nthreads=2 gets a pool of 2 threads here
//   layer0=gather   the first layer picks the one-hot's row of W (a gather)
//                   and multiplies only the hidden part, as our fused step
//                   does (fused matMul + bias, rank-1); layer0=full is
//                   Magenta.js's way: tf.multiRNNCell of tf.basicLSTMCell,
//                   the one-hot concatenated and multiplied by all of W.
//
// Sets window.tfjsBenchResult = [{backend, batch, steps, total_ms,
// ms_per_step, layer0}] and window.tfjsBenchInfo (versions, flags, the
// gather/full agreement check), or window.tfjsBenchError.

/* global tf */

const CLASSES = 259;
const UNITS = 256;
const LAYERS = 3;
const FORGET_BIAS = 1.0;
const WARMUP_STEPS = 16;

const params = new URLSearchParams(location.search);
const STEPS = Number(params.get('steps')) || 640;
const BATCHES = (params.get('batches') ?? '1,10').split(',').map(Number);
const WANT_THREADS = params.get('threads') !== '0';
const NTHREADS = Number(params.get('nthreads')) || 0;
const CORES = Number(params.get('cores')) || 0;
const LAYER0 = params.get('layer0') === 'full' ? 'full' : 'gather';

/** The weights, created once: full kernels (for `full`) and the first one split (for `gather`). */
function makeWeights() {
  return tf.tidy(() => {
    const uniform = (shape, seed) => tf.randomUniform(shape, -0.08, 0.08, 'float32', seed);
    const kernels = [];
    const biases = [];
    for (let l = 0; l < LAYERS; l++) {
      const input = l === 0 ? CLASSES : UNITS;
      kernels.push(tf.variable(uniform([input + UNITS, 4 * UNITS], 10 + l), false, `lstm${l}/kernel`));
      biases.push(tf.variable(uniform([4 * UNITS], 20 + l), false, `lstm${l}/bias`));
    }
    const dense = tf.variable(uniform([UNITS, CLASSES], 30), false, 'dense/kernel');
    const denseBias = tf.variable(uniform([CLASSES], 31), false, 'dense/bias');
    // The first kernel's one-hot rows and hidden rows, apart (as our fused step keeps them).
    const firstInput = tf.keep(tf.slice(kernels[0], [0, 0], [CLASSES, 4 * UNITS]));
    const firstHidden = tf.keep(tf.slice(kernels[0], [CLASSES, 0], [UNITS, 4 * UNITS]));
    const forgetBias = tf.keep(tf.scalar(FORGET_BIAS));
    return { kernels, biases, dense, denseBias, firstInput, firstHidden, forgetBias };
  });
}

/** BasicLSTMCell's gates on pre-activations z [batch, 1024]: [c', h']. */
function gates(z, c) {
  const [i, j, f, o] = tf.split(z, 4, 1);
  const newC = tf.add(tf.mul(c, tf.sigmoid(tf.add(f, FORGET_BIAS))), tf.mul(tf.sigmoid(i), tf.tanh(j)));
  return [newC, tf.mul(tf.tanh(newC), tf.sigmoid(o))];
}

/** One step, the one-hot as a row lookup (gather) plus the hidden part's product. */
function stepGather(w, classes, state) {
  const c = [];
  const h = [];
  let x = null;
  for (let l = 0; l < LAYERS; l++) {
    let z;
    if (l === 0) {
      z = tf.add(tf.fused.matMul({ a: state.h[0], b: w.firstHidden, bias: w.biases[0] }), tf.gather(w.firstInput, classes));
    } else {
      z = tf.fused.matMul({ a: tf.concat([x, state.h[l]], 1), b: w.kernels[l], bias: w.biases[l] });
    }
    const [cl, hl] = gates(z, state.c[l]);
    c.push(cl);
    h.push(hl);
    x = hl;
  }
  const logits = tf.fused.matMul({ a: x, b: w.dense, bias: w.denseBias });
  return { logits, c, h };
}

/** One step as Magenta.js does it: tf.multiRNNCell of tf.basicLSTMCell, the one-hot multiplied. */
function stepFull(w, classes, state) {
  const cells = w.kernels.map((kernel, l) => (data, c, h) => tf.basicLSTMCell(w.forgetBias, kernel, w.biases[l], data, c, h));
  // An int32 one-hot cast to float, as Magenta.js does: 4.22's wasm OneHot ignores a
  // float32 dtype argument and writes int32 bits into the float tensor (all ~1e-45).
  const input = tf.cast(tf.oneHot(classes, CLASSES), 'float32');
  const [c, h] = tf.multiRNNCell(cells, input, state.c, state.h);
  const logits = tf.add(tf.matMul(h[LAYERS - 1], w.dense), w.denseBias);
  return { logits, c, h };
}

const zeroState = (batch) => ({
  c: Array.from({ length: LAYERS }, () => tf.zeros([batch, UNITS])),
  h: Array.from({ length: LAYERS }, () => tf.zeros([batch, UNITS])),
});
const disposeState = (s) => tf.dispose([...s.c, ...s.h]);

/**
 * A generator's loop: `steps` steps at `batch`, each feeding a class per row
 * (step % 259, as our ?bench does) and reading the logits. Returns the state
 * and the last logits (a Float32Array) after `run(n)` calls.
 */
function stepper(w, mode, batch) {
  const step = mode === 'full' ? stepFull : stepGather;
  const classes = new Int32Array(batch);
  let state = zeroState(batch);
  let t = 0;
  let last = null;
  return {
    run(n) {
      for (let s = 0; s < n; s++, t++) {
        classes.fill(t % CLASSES);
        const out = tf.tidy(() => step(w, tf.tensor1d(classes, 'int32'), state));
        last = out.logits.dataSync();
        out.logits.dispose();
        disposeState(state);
        state = { c: out.c, h: out.h };
      }
      return last;
    },
    free() {
      disposeState(state);
    },
  };
}

const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Largest |a - b| between the two modes' logits after a few steps (batch 3, classes vary). */
function agreement(w) {
  const a = stepper(w, 'gather', 3);
  const b = stepper(w, 'full', 3);
  const la = a.run(5);
  const lb = b.run(5);
  a.free();
  b.free();
  let max = 0;
  for (let i = 0; i < la.length; i++) max = Math.max(max, Math.abs(la[i] - lb[i]));
  return max;
}

async function main() {
  if (!WANT_THREADS) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  // Read by the wasm module's static initialiser, which runs at setBackend.
  if (CORES > 0) Object.defineProperty(navigator, 'hardwareConcurrency', { value: CORES, configurable: true });
  if (NTHREADS > 0) tf.wasm.setThreadsCount(NTHREADS);
  tf.wasm.setWasmPaths(new URL('node_modules/@tensorflow/tfjs-backend-wasm/dist/', location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const threadsCount = tf.wasm.getThreadsCount();
  const label = `TF.js wasm (${simd ? 'simd' : 'no simd'}${threads ? '+threads' : ''})`;

  const w = makeWeights();
  const info = {
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    simd,
    threads,
    threadsCount,
    hardwareConcurrency: navigator.hardwareConcurrency,
    crossOriginIsolated: self.crossOriginIsolated === true,
    layer0: LAYER0,
    gatherVsFullMaxAbsDiff: agreement(w),
  };
  window.tfjsBenchInfo = info;

  const rows = [];
  for (const batch of BATCHES) {
    const run = stepper(w, LAYER0, batch);
    run.run(WARMUP_STEPS);
    await yieldToBrowser();
    const tensorsBefore = tf.memory().numTensors;
    const t0 = performance.now();
    run.run(STEPS);
    const total_ms = performance.now() - t0;
    const leaked = tf.memory().numTensors - tensorsBefore;
    run.free();
    if (leaked !== 0) throw new Error(`${leaked} tensors leaked per ${STEPS} steps`);
    rows.push({ backend: label, batch, steps: STEPS, total_ms, ms_per_step: total_ms / STEPS, layer0: LAYER0, threadsCount });
    await yieldToBrowser();
  }

  const table = document.getElementById('result');
  table.innerHTML = '<tr><th>Backend</th><th>first layer</th><th>Batch</th><th>Steps</th><th>Total (ms)</th><th>ms / step</th></tr>';
  for (const r of rows) {
    const tr = table.insertRow();
    for (const v of [r.backend, r.layer0, r.batch, r.steps, r.total_ms.toFixed(1), r.ms_per_step.toFixed(3)]) tr.insertCell().textContent = String(v);
  }
  document.getElementById('status').textContent =
    `tfjs ${info.tfjs}, backend ${info.backend}, simd ${simd}, threads ${threads} (${threadsCount}), ` +
    `crossOriginIsolated ${info.crossOriginIsolated}; gather vs full logits differ by ${info.gatherVsFullMaxAbsDiff.toExponential(2)}`;
  window.tfjsBenchResult = rows;
}

main().catch((err) => {
  window.tfjsBenchError = String(err?.stack ?? err);
  document.getElementById('status').textContent = `Failed: ${window.tfjsBenchError}`;
});
