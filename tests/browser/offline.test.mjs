// Tests of the page as a static site (./build.sh dist, tools/dist.mjs):
// the folder's compressed and content-hashed files, the server's encodings
// and headers, offline use through the service worker (www/sw.js), a new
// deploy replacing the old cache, and the web app manifest.
//
//   node tests/browser/offline.test.mjs     (./build.sh test runs it after page.test.mjs)
//
// Needs pkg/ and pkg-webgpu/ (./build.sh wasm). It builds two dist folders
// itself (into a temporary directory, labelled builds A and B, so their
// versions differ) and serves them with static-server.mjs --dist at one
// origin, as a host would before and after a deploy. The tests run in order
// in one browser profile, each building on the last (visit → offline →
// deploy). The last line of output is `N passed, M failed`; the exit status
// is non-zero when anything failed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, LOAD_TIMEOUT_MS, generateAndWait as generateOn, runner, watchErrors, waitBackends as pageBackendsReady, waitReady as pageReady } from './harness.mjs';
import { startStaticServer, HASHED_NAME } from './static-server.mjs';
import { buildDist } from '../../tools/dist.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
// Two dist builds: brotli at quality 11 takes most of a minute for the WebGPU
// wasm the first time (then it comes from ~/.cache/polyphony/compressed).
const TOTAL_TIMEOUT_MS = 420_000;
/** Names a host must serve as they are (everything else is content-hashed). */
const STABLE_NAMES = new Set(['index.html', 'sw.js', 'manifest.webmanifest']);

// --- the tests (runner: harness.mjs) -------------------------------------------

const { test, run } = runner();

// --- set-up: two builds, one server at a time on one port, one browser profile ---

let work; // temporary directory: the two dist folders and the browser profile
let buildA;
let buildB;
let server;
let port;
let context;
let page;
const pageErrors = [];
const consoleErrors = [];

async function setUp() {
  work = await mkdtemp(path.join(tmpdir(), 'polyphony-offline-'));
  let t0 = Date.now();
  buildA = await buildDist({ out: path.join(work, 'dist-a'), label: 'test-a' });
  console.log(`  dist A (${buildA.version}): ${buildA.files.length} files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t0 = Date.now();
  buildB = await buildDist({ out: path.join(work, 'dist-b'), label: 'test-b' });
  console.log(`  dist B (${buildB.version}): ${buildB.files.length} files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await serve(buildA);
  context = await chromium.launchPersistentContext(path.join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 640 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  watchErrors(page, consoleErrors, pageErrors);
}

/** Serves a build's folder, on the same port as the last one (the same origin: a deploy). */
async function serve(build) {
  await server?.close();
  server = await startStaticServer(build.out, { port: port ?? 0, dist: true, log: Boolean(process.env.VERBOSE) });
  port = Number(new URL(server.url).port);
}

async function tearDown() {
  await context?.close().catch(() => {});
  await server?.close().catch(() => {});
  if (work) await rm(work, { recursive: true, force: true }).catch(() => {});
}

// --- helpers --------------------------------------------------------------------

/** Every file under `dir`, as paths relative to it with forward slashes. */
async function listFiles(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'));
}

/** A GET with exactly the headers given (node's fetch would add and undo its own encodings). */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/** The body as sent, decoded by its Content-Encoding. */
function decoded({ headers, body }) {
  if (headers['content-encoding'] === 'br') return zlib.brotliDecompressSync(body);
  if (headers['content-encoding'] === 'gzip') return zlib.gunzipSync(body);
  return body;
}

/** The BUILD line tools/dist.mjs wrote into a build's sw.js. */
async function swBuild(build) {
  const text = await readFile(path.join(build.out, 'sw.js'), 'utf8');
  return JSON.parse(text.match(/^const BUILD = (.*);$/m)[1]);
}

const waitReady = (p = page) => pageReady(p);
const waitBackends = (p = page) => pageBackendsReady(p);
const generateAndWait = (p = page) => generateOn(p);
/** Polls `condition` (async, here in node) until it holds; fails with `what` after LOAD_TIMEOUT_MS. */
async function waitFor(condition, what) {
  for (const deadline = Date.now() + LOAD_TIMEOUT_MS; !(await condition()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
/** Waits until a service worker controls the page. */
const waitControlled = (p = page) =>
  p.waitForFunction(() => navigator.serviceWorker?.controller != null, null, { timeout: LOAD_TIMEOUT_MS });
/** The page's Cache Storage: { cacheName: [paths] }. */
const cacheContents = (p = page) =>
  p.evaluate(async () => {
    const out = {};
    for (const name of await caches.keys()) {
      out[name] = (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname).sort();
    }
    return out;
  });
/** The page is ready, said no error, and runs `build`. */
async function assertRuns(build) {
  await waitReady();
  assert.equal(await page.evaluate(() => window.polyphonyError), undefined, 'the page reported no error');
  assert.equal(await page.evaluate(() => window.polyphonyBuild), build.version, 'the page runs this build');
  assert.match(await page.textContent('#model-name'), /^bach-chorales$/, 'the model is named without its hash');
}

// --- the tests ------------------------------------------------------------------

test('dist: every file has .gz and .br beside it that decompress to it; names carry their content hash', async () => {
  const files = await listFiles(buildA.out);
  const originals = files.filter((f) => !/\.(gz|br)$/.test(f));
  assert.equal(files.length, originals.length * 3, 'exactly one .gz and one .br per file');
  for (const f of originals) {
    const bytes = await readFile(path.join(buildA.out, f));
    assert.deepEqual(zlib.gunzipSync(await readFile(path.join(buildA.out, `${f}.gz`))), bytes, `${f}.gz`);
    assert.deepEqual(zlib.brotliDecompressSync(await readFile(path.join(buildA.out, `${f}.br`))), bytes, `${f}.br`);
    const name = path.posix.basename(f);
    if (STABLE_NAMES.has(name)) continue;
    assert.match(name, HASHED_NAME, `${f} has a content hash in its name`);
    const hash = name.match(/\.([0-9a-f]{10})\.[a-z0-9]+$/)[1];
    assert.equal(createHash('sha256').update(bytes).digest('hex').slice(0, 10), hash, `${f}: the hash is its content's`);
  }
  for (const name of STABLE_NAMES) assert.ok(originals.includes(name), `${name} is there under its own name`);
  // Only what the page loads: the WebGPU package, the model and the score library, no .d.ts.
  assert.ok(originals.some((f) => /^pkg-webgpu\/polyphony_bg\.[0-9a-f]{10}\.wasm$/.test(f)), 'the WebGPU wasm');
  assert.ok(originals.some((f) => /^lib\/opensheetmusicdisplay\.min\.[0-9a-f]{10}\.js$/.test(f)), 'the score library');
  assert.ok(!originals.some((f) => f.endsWith('.d.ts') || f.includes('node_modules')), 'nothing the page does not load');
  // The page's modules are joined into app.js, and index.html preloads none of them.
  assert.deepEqual(originals.filter((f) => /^[^/]+\.js$/.test(f)).map((f) => f.replace(/\.[0-9a-f]{10}\./, '.')).sort(), ['app.js', 'sw.js']);
  const html = await readFile(path.join(buildA.out, 'index.html'), 'utf8');
  assert.deepEqual([...html.matchAll(/rel="modulepreload" href="([^"]+)"/g)].map((m) => m[1].replace(/\.[0-9a-f]{10}\./, '.')), ['./pkg/polyphony.js'], 'only the engine\'s glue is preloaded');
  console.log(`  ${originals.length} files, each with .gz and .br`);
});

test('the server sends the .br (or .gz) file when asked, with the right types, caching and isolation headers', async () => {
  const wasm = buildA.files.find((f) => f.source === 'pkg/polyphony_bg.wasm').place;
  const original = await readFile(path.join(buildA.out, wasm));
  const br = await get(`${server.url}/${wasm}`, { 'Accept-Encoding': 'gzip, deflate, br' });
  assert.equal(br.status, 200);
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.headers['content-type'], 'application/wasm');
  assert.match(br.headers.vary, /Accept-Encoding/);
  assert.equal(br.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(br.headers['cross-origin-opener-policy'], 'same-origin');
  assert.equal(br.headers['cross-origin-embedder-policy'], 'require-corp');
  assert.equal(Number(br.headers['content-length']), br.body.length);
  assert.deepEqual(br.body, await readFile(path.join(buildA.out, `${wasm}.br`)), 'the pre-compressed file itself');
  assert.deepEqual(decoded(br), original);
  const gz = await get(`${server.url}/${wasm}`, { 'Accept-Encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.deepEqual(decoded(gz), original);
  const plain = await get(`${server.url}/${wasm}`, { 'Accept-Encoding': 'br;q=0, identity' });
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.deepEqual(plain.body, original);
  // The names that never change are revalidated on every visit.
  for (const name of ['', 'index.html', 'sw.js', 'manifest.webmanifest']) {
    const res = await get(`${server.url}/${name}`, { 'Accept-Encoding': 'br' });
    assert.equal(res.status, 200, `/${name}`);
    assert.equal(res.headers['cache-control'], 'no-cache', `/${name}`);
  }
  const js = await get(`${server.url}/${buildA.files.find((f) => f.source === 'www/app.js').place}`, { 'Accept-Encoding': 'br' });
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
});

test('the dev tree is compressed on the fly (./build.sh serve), never cached', async () => {
  const dev = await startStaticServer(ROOT);
  try {
    const original = await readFile(path.join(ROOT, 'www/app.js'));
    for (const [accept, encoding] of [['br', 'br'], ['gzip', 'gzip']]) {
      const res = await get(`${dev.url}/www/app.js`, { 'Accept-Encoding': accept });
      assert.equal(res.headers['content-encoding'], encoding);
      assert.match(res.headers.vary, /Accept-Encoding/);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['cross-origin-embedder-policy'], 'require-corp');
      assert.deepEqual(decoded(res), original);
    }
    const redirect = await get(`${dev.url}/`);
    assert.equal(redirect.status, 302, 'the repository root still sends / to /www/');
  } finally {
    await dev.close();
  }
});

test('the manifest is linked, served as application/manifest+json and makes the page installable', async () => {
  await page.goto(`${server.url}/`);
  await assertRuns(buildA);
  const href = await page.evaluate(() => document.querySelector('link[rel=manifest]')?.href);
  assert.equal(href, `${server.url}/manifest.webmanifest`);
  const res = await get(href, { 'Accept-Encoding': 'br' });
  assert.equal(res.headers['content-type'], 'application/manifest+json');
  const manifest = JSON.parse(decoded(res).toString('utf8'));
  assert.equal(manifest.short_name, 'Polyphony');
  assert.match(manifest.name, /Polyphony/);
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, './');
  assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/);
  for (const icon of manifest.icons) {
    const r = await get(new URL(icon.src, href).href);
    assert.equal(r.status, 200, icon.src);
    assert.equal(r.headers['content-type'], icon.type, icon.src);
  }
  assert.ok(manifest.icons.some((i) => i.sizes === '512x512' && i.type === 'image/png'), 'a 512 px PNG icon');
  // Chromium's own reading of it.
  const cdp = await context.newCDPSession(page);
  const { errors, data } = await cdp.send('Page.getAppManifest');
  assert.deepEqual(errors, [], 'Chromium parses the manifest without errors');
  assert.equal(JSON.parse(data).short_name, 'Polyphony');
  await cdp.detach();
});

test('after one visit the service worker is active and has cached the page, its JS, pkg/, the model and the score library', async () => {
  await waitControlled();
  const { precache } = await swBuild(buildA);
  const cached = await cacheContents();
  assert.deepEqual(Object.keys(cached), [`polyphony-${buildA.version}`], 'one cache, named after the build');
  const want = precache.map((p) => new URL(p, `${server.url}/`).pathname).sort();
  for (const p of want) assert.ok(cached[`polyphony-${buildA.version}`].includes(p), `${p} is cached`);
  for (const source of ['www/app.js', 'pkg/polyphony_bg.wasm', 'assets/bach-chorales.bundle', 'www/node_modules/opensheetmusicdisplay/build/opensheetmusicdisplay.min.js']) {
    const place = buildA.files.find((f) => f.source === source).place;
    assert.ok(want.includes(`/${place}`), `${source} is in the precache list`);
  }
  await waitBackends();
});

test('offline, a reload is ready and a generation completes', async () => {
  await context.setOffline(true);
  try {
    await page.reload();
    await assertRuns(buildA);
    assert.equal(await page.evaluate(() => navigator.serviceWorker.controller != null), true, 'served by the service worker');
    await page.click('[data-preset=chord]');
    const status = await generateAndWait();
    console.log(`  offline: ${status}`);
    assert.ok((await page.evaluate(() => window.polyphonyApp.results().length)) > 0, 'results are shown');
    await waitBackends();
    console.log(`  offline: ${await page.textContent('#backend-status')}`);
    // A page the worker controls fetched the WebGPU package (from the HTTP cache here): now it is kept too.
    const webgpuWasm = `/${buildA.files.find((f) => f.source === 'pkg-webgpu/polyphony_bg.wasm').place}`;
    assert.ok((await cacheContents())[`polyphony-${buildA.version}`].includes(webgpuWasm), 'the WebGPU wasm is cached once fetched');
  } finally {
    await context.setOffline(false);
  }
});

test('offline, a wasm trap restarts the engine from the build\'s hashed glue (cached) and it generates again', async () => {
  await context.setOffline(true);
  // A page of its own: the trap is an uncaught error there, which this session's pages must not have.
  const other = await context.newPage();
  try {
    await other.goto(`${server.url}/`);
    await pageReady(other);
    const glue = `/${buildA.files.find((f) => f.source === 'pkg/polyphony.js').place}`;
    // The app's own instance of the module (the same URL) traps: a panic in Rust.
    await other.evaluate((url) => setTimeout(async () => (await import(url)).trapForTests()), glue);
    await other.waitForFunction(() => window.polyphonyRestarts === 1, null, { timeout: LOAD_TIMEOUT_MS });
    const status = await other.textContent('#status');
    console.log(`  offline: ${status}`);
    assert.match(status, /was restarted; the model “bach-chorales” is loaded again/);
    await other.click('[data-preset=chord]');
    await generateAndWait(other);
    assert.ok((await other.evaluate(() => window.polyphonyApp.results().length)) > 0, 'results are shown');
  } finally {
    await other.close();
    await context.setOffline(false);
  }
});

test('a new deploy at the same origin runs on the next visit and the old cache is deleted', async () => {
  await serve(buildB);
  await page.goto(`${server.url}/`);
  await assertRuns(buildB);
  await waitFor(async () => Object.keys(await cacheContents()).join() === `polyphony-${buildB.version}`, 'only the new build\'s cache is left');
  await waitControlled();
  const scriptUrl = await page.evaluate(async () => (await navigator.serviceWorker.ready).active.scriptURL);
  assert.equal(scriptUrl, `${server.url}/sw.js`);
  await waitBackends();
  // And the new build works offline from its own cache.
  await context.setOffline(true);
  try {
    await page.reload();
    await assertRuns(buildB);
  } finally {
    await context.setOffline(false);
  }
});

test('the whole session logged no console errors and threw no page errors', async () => {
  assert.deepEqual(pageErrors, [], 'page errors');
  assert.deepEqual(consoleErrors, [], 'console errors');
});

// --- main -----------------------------------------------------------------------

await run({ setUp, tearDown, timeoutMs: TOTAL_TIMEOUT_MS, what: `two dist builds, static server, Chromium at ${CHROMIUM}` });
