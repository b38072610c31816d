// What the headless-browser test files share: the browser and its flags,
// waiting on the page, and a tiny test runner (TAP-like lines, a watchdog,
// set-up and tear-down around the tests in order).

import assert from 'node:assert/strict';

/** How long the page may take to load, or to finish a generation. */
export const LOAD_TIMEOUT_MS = 60_000;

/** Waits until page `p` has its model (or has said why not). */
export const waitReady = (p) =>
  p.waitForFunction(() => window.polyphonyReady === true || window.polyphonyError !== undefined, null, { timeout: LOAD_TIMEOUT_MS });

/** Waits until page `p` has tried WebGPU and timed the backends. */
export const waitBackends = (p) =>
  p.waitForFunction(() => window.polyphonyBackendsReady === true || window.polyphonyError !== undefined, null, { timeout: LOAD_TIMEOUT_MS });

/**
 * Collects what page `p` logs as errors into `consoleErrors` and what it
 * throws into `pageErrors` (printed as they come; all console lines with
 * VERBOSE set).
 */
export function watchErrors(p, consoleErrors, pageErrors) {
  p.on('console', (msg) => {
    const line = `[browser ${msg.type()}] ${msg.text()}`;
    if (process.env.VERBOSE || msg.type() === 'error' || msg.type() === 'warning') console.log(`  ${line}`);
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  p.on('pageerror', (err) => {
    console.log(`  [browser pageerror] ${err.message}`);
    pageErrors.push(err.message);
  });
}

/** Clicks Generate on page `p` and waits for the outcome; returns the status line. */
export async function generateAndWait(p) {
  await p.click('#generate');
  await p.waitForFunction(
    () => document.querySelector('#gen-status')?.dataset.seconds !== undefined || !document.querySelector('#gen-error').hidden,
    null,
    { timeout: LOAD_TIMEOUT_MS },
  );
  const error = await p.evaluate(() => (document.querySelector('#gen-error').hidden ? null : document.querySelector('#gen-error').textContent));
  assert.equal(error, null, 'no generation error');
  return p.textContent('#gen-status');
}

/** Debian's Chromium, driven by playwright-core (which never downloads one). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Quiet, and WebGPU on SwiftShader (a GPU emulated on the CPU: correctness, not speed). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
];

/**
 * A runner: `test(name, fn)` registers a test; `run({setUp, tearDown,
 * timeoutMs, what})` runs set-up, every test in order (a failure does not
 * stop the others), tear-down, prints `ok`/`not ok` lines and the count, and
 * sets the exit code. `what` names the set-up in its failure line.
 */
export function runner() {
  const tests = [];
  let passed = 0;
  let failed = 0;
  const report = (name, error) => {
    if (error) {
      failed += 1;
      console.log(`not ok - ${name}\n  ${String(error?.stack ?? error).replaceAll('\n', '\n  ')}`);
    } else {
      passed += 1;
      console.log(`ok - ${name}`);
    }
  };
  const finish = () => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed > 0 ? 1 : 0;
  };
  const test = (name, fn) => tests.push({ name, fn });
  const run = async ({ setUp, tearDown, timeoutMs, what }) => {
    const watchdog = setTimeout(() => {
      report(`all tests finish within ${timeoutMs / 1000} s`, new Error('timed out'));
      finish();
      process.exit(1);
    }, timeoutMs);
    watchdog.unref();
    try {
      await setUp();
      for (const { name, fn } of tests) {
        try {
          await fn();
          report(name);
        } catch (err) {
          report(name, err);
        }
      }
    } catch (err) {
      report(`set-up (${what})`, err);
    } finally {
      await tearDown();
    }
    finish();
  };
  return { test, run };
}
