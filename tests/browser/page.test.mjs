// Headless-browser tests of the Polyphony page (www/ + the wasm package in pkg/).
//
//   node tests/browser/page.test.mjs        (./build.sh test builds pkg/ first)
//
// Uses Debian's Chromium (/usr/bin/chromium, override with CHROMIUM=...)
// through playwright-core, which never downloads a browser. Serves the
// repository root itself on a free localhost port. Writes a screenshot to
// tests/browser/out/page.png. The last line of output is `N passed, M failed`;
// the exit status is non-zero when anything failed.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStaticServer } from './static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const OUT = path.join(HERE, 'out');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const LOAD_TIMEOUT_MS = 60_000;
const TOTAL_TIMEOUT_MS = 180_000;
const CHROMIUM_ARGS = [
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

// --- a tiny test runner -----------------------------------------------------

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let passed = 0;
let failed = 0;

function report(name, error) {
  if (error) {
    failed += 1;
    console.log(`not ok - ${name}\n  ${String(error?.stack ?? error).replaceAll('\n', '\n  ')}`);
  } else {
    passed += 1;
    console.log(`ok - ${name}`);
  }
}

function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

// --- browser session shared by the tests ------------------------------------

const consoleErrors = []; // console.error messages and failed requests
const pageErrors = []; // uncaught exceptions and unhandled rejections
let server;
let context;
let userDataDir;
let page;

async function setUp() {
  server = await startStaticServer(ROOT);
  userDataDir = await mkdtemp(path.join(tmpdir(), 'polyphony-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 640 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    const line = `[browser ${msg.type()}] ${msg.text()}`;
    if (process.env.VERBOSE || msg.type() === 'error' || msg.type() === 'warning') console.log(`  ${line}`);
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => {
    console.log(`  [browser pageerror] ${err.message}`);
    pageErrors.push(err.message);
  });
  page.on('requestfailed', (req) => consoleErrors.push(`request failed: ${req.url()} (${req.failure()?.errorText})`));
  page.on('response', (res) => {
    if (res.status() >= 400) consoleErrors.push(`HTTP ${res.status()} for ${res.url()}`);
  });
}

async function tearDown() {
  await context?.close().catch(() => {});
  await server?.close().catch(() => {});
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

// --- the tests --------------------------------------------------------------

test('the page loads the wasm module and shows its version', async () => {
  await page.goto(`${server.url}/www/`);
  assert.equal(await page.title(), 'Polyphony — Bach chorale composer');
  await page.waitForFunction(() => window.polyphonyReady === true || window.polyphonyError !== undefined, null, {
    timeout: LOAD_TIMEOUT_MS,
  });
  await mkdir(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, 'page.png'), fullPage: true });
  const error = await page.evaluate(() => window.polyphonyError);
  assert.equal(error, undefined, `the page reported an error: ${error}`);
  const status = await page.textContent('#status');
  assert.match(status, /^Polyphony v\d+\.\d+\.\d+\S* — wasm module loaded$/);
});

test('loading the page logs no console errors and throws no page errors', async () => {
  assert.deepEqual(pageErrors, [], 'page errors');
  assert.deepEqual(consoleErrors, [], 'console errors / failed requests');
});

test("eventsText('x.mid', <garbage>) throws a JS Error naming the file", async () => {
  const errorsBefore = consoleErrors.length + pageErrors.length;
  const result = await page.evaluate(async () => {
    // The same module instance app.js initialised (same URL).
    const wasm = await import('/pkg/polyphony.js');
    try {
      const value = wasm.eventsText('x.mid', new Uint8Array([1, 2, 3]));
      return { threw: false, value };
    } catch (e) {
      return { threw: true, isError: e instanceof Error, name: e?.name, message: String(e?.message ?? e) };
    }
  });
  assert.equal(result.threw, true, `expected a throw, got ${JSON.stringify(result.value)}`);
  assert.equal(result.isError, true, `expected an Error, got ${JSON.stringify(result)}`);
  assert.match(result.message, /x\.mid/, `message should name the file; got ${result.name}: ${result.message}`);
  await page.waitForTimeout(200); // console events arrive asynchronously
  assert.equal(consoleErrors.length + pageErrors.length, errorsBefore, 'the failing call logged errors (a panic?)');
});

// --- main ---------------------------------------------------------------------

const watchdog = setTimeout(() => {
  report(`all tests finish within ${TOTAL_TIMEOUT_MS / 1000} s`, new Error('timed out'));
  finish();
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
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
  report(`set-up (static server, Chromium at ${CHROMIUM})`, err);
} finally {
  await tearDown();
}
finish();
