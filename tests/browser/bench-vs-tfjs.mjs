// Our CPU wasm LSTM step next to TensorFlow.js's wasm backend running the same
// network step, in one headless Chromium (./build.sh bench-page). Not a test:
// it prints numbers and fails only when a page does.
//
//   node tests/browser/bench-vs-tfjs.mjs [--rounds 3] [--steps 640]
//
// Per round: the page's `/www/?bench&backends=cpu&steps=N` (window.benchResult),
// then tfjs-bench.html (window.tfjsBenchResult) with tfjs's threaded SIMD binary
// (when the page is cross-origin isolated, which static-server.mjs's COOP/COEP
// make it), with SIMD alone and with a pool of 2 threads, the first layer as a
// gather (the fair equivalent of our fused step), and as Magenta.js's full
// one-hot product. Then one markdown table of every round: ms/step and
// ours / TF.js (below 1: ours is faster), and one of each row's best and
// median round.
//
// Needs pkg/ (./build.sh wasm) and tests/browser's npm packages (npm ci).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './harness.mjs';
import { startStaticServer } from './static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TIMEOUT_MS = 300_000;

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : fallback;
};
const ROUNDS = opt('rounds', 3);
const STEPS = opt('steps', 640);

/**
 * TF.js configurations per round: [query, how the first layer is done]. Under
 * cross-origin isolation tfjs loads its threaded SIMD binary, but its pool is
 * navigator.hardwareConcurrency / 2 threads (1 on this 2-core machine); the
 * last run fakes 4 logical cores to see a pool of 2 threads.
 */
const TFJS_RUNS = [
  ['threads=1&layer0=gather', 'gather'],
  ['threads=0&layer0=gather', 'gather'],
  ['threads=1&layer0=full', 'full one-hot matMul (Magenta.js)'],
  ['threads=1&nthreads=2&cores=4&layer0=gather', 'gather'],
];

async function waitFor(page, done, error) {
  await page.waitForFunction(`${done} !== undefined || ${error} !== undefined || window.polyphonyError !== undefined`, null, {
    timeout: TIMEOUT_MS,
  });
  const [result, err] = await page.evaluate(`[${done}, ${error} ?? window.polyphonyError]`);
  if (err !== undefined && err !== null) throw new Error(`${page.url()}: ${err}`);
  return result;
}

const server = await startStaticServer(ROOT);
const userDataDir = await mkdtemp(path.join(tmpdir(), 'polyphony-bench-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 640 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => console.log(`  [browser pageerror] ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.log(`  [browser error] ${msg.text()}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) console.log(`  [HTTP ${res.status()}] ${res.url()}`);
  });

  const rows = [];
  const infos = new Map();
  for (let round = 1; round <= ROUNDS; round++) {
    await page.goto(`${server.url}/www/?bench&backends=cpu&steps=${STEPS}`);
    const ours = await waitFor(page, 'window.benchResult', 'window.benchError');
    const isolated = await page.evaluate(() => self.crossOriginIsolated);
    for (const r of ours) rows.push({ round, ...r, mine: true, note: 'row lookup', threadsCount: 1 });
    console.log(`round ${round}: our page crossOriginIsolated ${isolated}`);
    for (const [query, note] of TFJS_RUNS) {
      await page.goto(`${server.url}/tests/browser/tfjs-bench.html?${query}&steps=${STEPS}`);
      const result = await waitFor(page, 'window.tfjsBenchResult', 'window.tfjsBenchError');
      const info = await page.evaluate(() => window.tfjsBenchInfo);
      infos.set(query, info);
      for (const r of result) rows.push({ round, ...r, note, ours: ours.find((o) => o.batch === r.batch) });
    }
    console.log(`round ${round} done (load average ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
  }

  console.log('');
  for (const [query, info] of infos) {
    console.log(
      `tfjs-bench.html?${query}: tfjs ${info.tfjs}, backend ${info.backend}, simd ${info.simd}, threads ${info.threads}` +
        ` (a pool of ${info.threadsCount}; hardwareConcurrency ${info.hardwareConcurrency}), crossOriginIsolated ${info.crossOriginIsolated},` +
        ` gather vs full logits max |diff| ${info.gatherVsFullMaxAbsDiff.toExponential(2)}`,
    );
  }
  console.log(`\n${STEPS} timed steps per row (after 16 warm-up steps); TF.js reads its logits back (dataSync) every step.\n`);
  console.log('| round | backend | threads | first layer | batch | ms/step | ours / TF.js |');
  console.log('|---:|---|---:|---|---:|---:|---:|');
  for (const r of rows) {
    const ratio = r.mine ? '' : (r.ours.ms_per_step / r.ms_per_step).toFixed(2);
    console.log(`| ${r.round} | ${r.backend}${r.mine ? ' (ours)' : ''} | ${r.threadsCount} | ${r.note} | ${r.batch} | ${r.ms_per_step.toFixed(3)} | ${ratio} |`);
  }
  if (ROUNDS > 1) {
    // Other work on the machine only ever adds time: the best round is the steadiest figure.
    const groups = new Map();
    for (const r of rows) {
      const key = `${r.backend}${r.mine ? ' (ours)' : ''} | ${r.threadsCount} | ${r.note} | ${r.batch}`;
      if (!groups.has(key)) groups.set(key, { mine: r.mine, batch: r.batch, ms: [] });
      groups.get(key).ms.push(r.ms_per_step);
    }
    const best = (g) => Math.min(...g.ms);
    const median = (g) => [...g.ms].sort((a, b) => a - b)[Math.floor(g.ms.length / 2)];
    const oursBest = new Map([...groups.values()].filter((g) => g.mine).map((g) => [g.batch, best(g)]));
    console.log(`\nBest and median of ${ROUNDS} rounds (ratio: best / best):\n`);
    console.log('| backend | threads | first layer | batch | best ms/step | median ms/step | ours / TF.js |');
    console.log('|---|---:|---|---:|---:|---:|---:|');
    for (const [key, g] of groups) {
      const ratio = g.mine ? '' : (oursBest.get(g.batch) / best(g)).toFixed(2);
      console.log(`| ${key} | ${best(g).toFixed(3)} | ${median(g).toFixed(3)} | ${ratio} |`);
    }
  }
} finally {
  await context?.close().catch(() => {});
  await server.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}
