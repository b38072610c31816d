// Which backend runs the model: the fused CPU step in wasm, or burn's model
// on WebGPU. Stepping an LSTM one event at a time is dispatch-bound on a GPU,
// so WebGPU is not assumed faster: once the page is ready, both are timed on
// a few warm steps and the faster is used, unless the person picks one.
// WebGPU that is missing, fails to start or fails mid-generation leaves the
// CPU in charge, and the page says why.
//
// The page's first package (pkg/) is the fused CPU step alone, so the first
// notes need only it. burn's WebGPU runtime is a second package
// (pkg-webgpu/, with a copy of the model of its own), downloaded after the
// page is ready and only when the browser has WebGPU.

export const LABELS = { cpu: 'CPU (wasm)', webgpu: 'WebGPU' };

/** Steps before timing (the first WebGPU steps compile their kernels). */
const WARMUP_STEPS = 3;
/** Steps timed per backend, at batch 1. */
const TIMED_STEPS = 8;
/** How long WebGPU may take to start before the page gives up on it. */
const START_TIMEOUT_MS = 30_000;

const WEBGPU_PACKAGE = new URL('../pkg-webgpu/polyphony.js', import.meta.url);
const WEBGPU_WASM = new URL('../pkg-webgpu/polyphony_bg.wasm', import.meta.url);

/**
 * A package's model of bundle bytes, or of the original's `.mag` (converted
 * in wasm); throws naming what is wrong with the file.
 */
export function makeModel(wasm, bytes, fileName) {
  return /\.mag$/i.test(fileName) ? wasm.Model.fromMag(bytes, fileName) : wasm.Model.fromBytes(bytes);
}

/** Resolves after the browser has had a turn (repaint, input, timers). */
export const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Milliseconds `steps` model steps take on `backend` at `batch` rows, after
 * `warmup` untimed ones (the first WebGPU steps compile their kernels).
 */
export async function timeSteps(model, backend, batch, warmup, steps) {
  await model.runSteps(backend, batch, warmup);
  await yieldToBrowser(); // let the page breathe before timing
  const t0 = performance.now();
  await model.runSteps(backend, batch, steps);
  return performance.now() - t0;
}

/**
 * The page's backend state: what is available, what timing found, what the
 * person asked for (`choice`: 'auto', 'cpu' or 'webgpu').
 */
export class Backends {
  constructor(choice = 'auto') {
    this.choice = ['auto', 'cpu', 'webgpu'].includes(choice) ? choice : 'auto';
    /** ms per step at batch 1, by backend, once timed. */
    this.msPerStep = {};
    /** Why WebGPU is not usable (null while it is, or not yet tried). */
    this.webgpuProblem = null;
    this.webgpuReady = false;
  }

  /** The faster of the timed backends ('cpu' until timing says more). */
  get fastest() {
    return Object.keys(this.msPerStep).reduce((a, b) => (this.msPerStep[b] < this.msPerStep[a] ? b : a), 'cpu');
  }

  /** The backend a generation uses now. */
  get current() {
    if (this.choice === 'webgpu' && this.webgpuReady) return 'webgpu';
    if (this.choice === 'cpu') return 'cpu';
    return this.fastest;
  }

  /**
   * Downloads the WebGPU package, starts WebGPU (once per page) and puts the
   * model of `bytes` on it; false, with `webgpuProblem` saying why, when that
   * fails. Without WebGPU in the browser nothing is downloaded.
   */
  async startWebGpu(bytes, fileName) {
    if (this.webgpuProblem) return false;
    try {
      if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      });
      const start = async () => {
        const gpuWasm = await import(WEBGPU_PACKAGE);
        await gpuWasm.default({ module_or_path: WEBGPU_WASM });
        await gpuWasm.initWebGpu();
        return gpuWasm;
      };
      this.gpuWasm = await Promise.race([start(), timeout]).finally(() => clearTimeout(timer));
      this.adopt(bytes, fileName);
      this.webgpuReady = true;
      return true;
    } catch (err) {
      this.lose(`WebGPU did not start: ${err instanceof Error ? err.message : err}`);
      return false;
    }
  }

  /** Puts the model of `bytes` on WebGPU in place of the one there (throws when it cannot). */
  adopt(bytes, fileName) {
    const next = makeModel(this.gpuWasm, bytes, fileName);
    next.useWebGpu();
    this.gpuModel?.free();
    this.gpuModel = next;
  }

  /** The model that runs on `backend`: the CPU package's, or the WebGPU package's copy. */
  modelFor(backend, cpuModel) {
    return backend === 'webgpu' ? this.gpuModel : cpuModel;
  }

  /** Times each usable backend (the CPU on `cpuModel`) and picks the faster. */
  async time(cpuModel) {
    const names = this.webgpuReady ? ['cpu', 'webgpu'] : ['cpu'];
    for (const name of names) {
      try {
        const model = this.modelFor(name, cpuModel);
        this.msPerStep[name] = (await timeSteps(model, name, 1, WARMUP_STEPS, TIMED_STEPS)) / TIMED_STEPS;
      } catch (err) {
        if (name === 'webgpu') this.lose(`WebGPU failed while timing: ${err instanceof Error ? err.message : err}`);
        else throw err;
      }
    }
  }

  /** WebGPU is gone (missing, failed, device lost): the CPU takes over. */
  lose(reason) {
    this.webgpuProblem = reason;
    this.webgpuReady = false;
    this.gpuModel?.free();
    this.gpuModel = null;
    delete this.msPerStep.webgpu;
  }

  /** One line for the page: which backend, and why. */
  describe() {
    const ms = (name) => (name in this.msPerStep ? `${this.msPerStep[name].toFixed(2)} ms/step` : null);
    const timings = ['cpu', 'webgpu']
      .filter((n) => ms(n))
      .map((n) => `${LABELS[n]} ${ms(n)}`)
      .join(', ');
    const why =
      this.choice !== 'auto' && this.current === this.choice
        ? 'chosen by you'
        : Object.keys(this.msPerStep).length > 1
          ? 'the faster here'
          : this.webgpuProblem ?? 'WebGPU not tried yet';
    return `Backend: ${LABELS[this.current]} (${why})${timings ? ` — ${timings} at batch 1` : ''}`;
  }
}
