// Time from navigation to the page's first generated note, as a first visit
// sees it: one headless Chromium, a fresh context (empty cache) per run,
// `?bench&backends=cpu&steps=1` (window.benchFirstNoteMs). Not a test: it
// prints numbers (./build.sh bench-page runs it after the TF.js table).
//
//   node tests/browser/first-note.mjs [--runs 8] [--dist DIR | --url URL] [--timeline]
//
// --dist serves a `./build.sh dist` folder as a static host would (hashed,
// pre-compressed) instead of the dev tree; --url measures the page where it
// already is (a deployed copy, or `./build.sh serve-dist`: a server in a
// process of its own, not sharing this one's event loop); --timeline prints the last run's
// paint, resource and navigation timings and the page's own start-up marks
// (`polyphony:…`), in order. The output always ends with the median time of each
// start-up mark over the runs: on this shared 2-core machine one run's
// timeline varies by ±100 ms, a median of 12 far less.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, LOAD_TIMEOUT_MS } from './harness.mjs';
import { startStaticServer } from './static-server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const value = (name) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : undefined);
const runs = Number(value('runs') ?? 8);
const dist = value('dist');

const host = value('url');
const server = host ? null : dist ? await startStaticServer(dist, { dist: true }) : await startStaticServer(ROOT);
const url = `${host ?? `${server.url}${dist ? '/' : '/www/'}`}?bench&backends=cpu&steps=1`;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
const firsts = [];
const marks = new Map(); // mark name → its times, one per run
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.benchFirstNoteMs !== undefined || window.benchError !== undefined, null, { timeout: LOAD_TIMEOUT_MS });
    const r = await page.evaluate(() => ({
      error: window.benchError,
      first: window.benchFirstNoteMs,
      ready: window.polyphonyReadyMs,
      timeline: [
        ...['paint', 'resource', 'mark'].flatMap((type) => performance.getEntriesByType(type)).map((e) => [
          e.name.replace(/^\w+:\/\/[^/]+/, ''),
          Math.round(e.startTime),
          Math.round(e.responseEnd ?? e.startTime),
        ]),
        ...performance.getEntriesByType('navigation').map((e) => ['DOMContentLoaded', Math.round(e.domContentLoadedEventStart), Math.round(e.domContentLoadedEventEnd)]),
      ].sort((a, b) => a[1] - b[1]),
    }));
    await context.close();
    if (r.error) throw new Error(`run ${i + 1}: ${r.error}`);
    firsts.push(r.first);
    for (const [name, start] of r.timeline) if (name.startsWith('polyphony:') || name === 'first-contentful-paint') marks.set(name, [...(marks.get(name) ?? []), start]);
    console.log(`run ${i + 1}: first note ${r.first.toFixed(0)} ms, ready ${r.ready} ms after navigation`);
    if (args.includes('--timeline') && i === runs - 1) for (const [name, start, end] of r.timeline) console.log(`  ${start}-${end} ms  ${name}`);
  }
} finally {
  await browser.close();
  await server?.close();
}
firsts.sort((a, b) => a - b);
console.log(`\nmedian time of each start-up mark (ms after navigation): ${[...marks].map(([name, times]) => `${name.replace('polyphony:', '')} ${median(times)}`).join(', ')}`);
console.log(`first note after navigation, ${runs} fresh contexts (${host ?? (dist ? `dist ${dist}` : 'dev tree')}): best ${firsts[0].toFixed(0)} ms, median ${median(firsts).toFixed(0)} ms, worst ${firsts.at(-1).toFixed(0)} ms`);
