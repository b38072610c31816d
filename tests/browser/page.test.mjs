// Headless-browser tests of the Polyphony page (www/ + the wasm package in pkg/).
//
//   node tests/browser/page.test.mjs        (./build.sh test builds pkg/ first)
//
// Uses Debian's Chromium (/usr/bin/chromium, override with CHROMIUM=...)
// through playwright-core, which never downloads a browser. Serves the
// repository root itself on a free localhost port, so the page loads the
// bundled model (assets/bach-chorales.bundle). WebMIDI is replaced before
// load by a fake with one recording output and one input the tests play.
// The tests run in order on one page, each building on the last (primer →
// reload → generate → download → play → drops). Writes screenshots to
// tests/browser/out/*.png and prints the navigation-to-ready time (and, from
// the last page test, the `?bench` numbers). The last
// line of output is `N passed, M failed`; the exit status is non-zero when
// anything failed.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, LOAD_TIMEOUT_MS, generateAndWait as generateOn, runner, watchErrors, waitBackends as pageBackendsReady, waitReady as pageReady } from './harness.mjs';
import { startStaticServer } from './static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const OUT = path.join(HERE, 'out');
const TOTAL_TIMEOUT_MS = 300_000;

// --- the tests (runner: harness.mjs) ---------------------------------------

const { test, run } = runner();

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
  // A fake WebMIDI: one output that records what it is sent.
  await context.addInitScript(() => {
    window.__midiSent = [];
    const output = {
      id: 'fake-out',
      name: 'Fake MIDI Out',
      type: 'output',
      state: 'connected',
      send(data, timestamp) {
        window.__midiSent.push({ data: [...data], timestamp });
      },
    };
    // And one input the test plays through (window.__midiInput.onmidimessage).
    const input = { id: 'fake-in', name: 'Fake MIDI In', type: 'input', state: 'connected', onmidimessage: null };
    window.__midiInput = input;
    const access = { inputs: new Map([[input.id, input]]), outputs: new Map([[output.id, output]]), addEventListener() {} };
    navigator.requestMIDIAccess = async () => access;
    // Every WebGPU device the page gets, so a test can lose it on purpose.
    window.__gpuDevices = [];
    if (window.GPUAdapter) {
      const requestDevice = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await requestDevice.apply(this, args);
        window.__gpuDevices.push(device);
        return device;
      };
    }
  });
  page = context.pages()[0] ?? (await context.newPage());
  watchErrors(page, consoleErrors, pageErrors);
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

// --- helpers ----------------------------------------------------------------

const BUNDLE_URL = '/assets/bach-chorales.bundle';
const shot = async (name) => {
  await mkdir(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, name), fullPage: true });
};
const waitReady = (p = page) => pageReady(p);
const waitBackends = (p = page) => pageBackendsReady(p);
const generateAndWait = (p = page) => generateOn(p);
const primerNotes = () => page.evaluate(() => window.polyphonyApp.primerNotes());
/** Opens the fold of the original's options (the musical controls come first). */
const openAdvanced = (p = page) => p.evaluate(() => (document.querySelector('#advanced').open = true));
const sortNotes = (notes) => [...notes].sort((a, b) => a.start - b.start || a.pitch - b.pitch);

/**
 * Drops a file on the page, as a person dragging it from the desktop: either
 * `bytes`, or the file at `url` on the test server with its last `damage`
 * bytes flipped (big bundles need not cross the test protocol).
 */
async function dropFile(name, { bytes = null, url = null, damage = 0 }) {
  await page.evaluate(
    async ({ name, data, url, damage }) => {
      const content = url ? new Uint8Array(await (await fetch(url)).arrayBuffer()) : new Uint8Array(data);
      for (let i = Math.max(0, content.length - damage); i < content.length; i++) content[i] ^= 0x5a;
      const dt = new DataTransfer();
      dt.items.add(new File([content], name));
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    { name, data: bytes ? [...bytes] : null, url, damage },
  );
}

/**
 * Drops a file that the page should refuse and returns the refusal. The
 * message box is hidden first, so that an earlier refusal still showing is
 * not taken for this one (the page reads a dropped file asynchronously).
 */
async function dropRefused(name, options) {
  await page.evaluate(() => (document.querySelector('#model-error').hidden = true));
  await dropFile(name, options);
  await page.waitForSelector('#model-error:not([hidden])', { timeout: LOAD_TIMEOUT_MS });
  return page.textContent('#model-error');
}

/**
 * Parses a Standard MIDI File far enough to check it: the header, then every
 * track chunk's events (running status included). Returns {format, ntracks,
 * division, tracks: [{notes: [{pitch, on, off}], endTick}]}.
 */
function parseMidi(buf) {
  assert.equal(buf.subarray(0, 4).toString('latin1'), 'MThd', 'MThd header');
  assert.equal(buf.readUInt32BE(4), 6, 'header length');
  const format = buf.readUInt16BE(8);
  const ntracks = buf.readUInt16BE(10);
  const division = buf.readUInt16BE(12);
  let at = 14;
  const tracks = [];
  while (at < buf.length) {
    assert.equal(buf.subarray(at, at + 4).toString('latin1'), 'MTrk', `track chunk at byte ${at}`);
    const len = buf.readUInt32BE(at + 4);
    const end = at + 8 + len;
    assert.ok(end <= buf.length, 'track chunk inside the file');
    let p = at + 8;
    let tick = 0;
    let status = 0;
    let ended = false;
    const open = new Map();
    const notes = [];
    const varLen = () => {
      let v = 0;
      for (;;) {
        const b = buf[p++];
        v = (v << 7) | (b & 0x7f);
        if (!(b & 0x80)) return v;
      }
    };
    while (p < end) {
      tick += varLen();
      if (buf[p] & 0x80) status = buf[p++];
      if (status === 0xff) {
        const type = buf[p++];
        const n = varLen();
        p += n;
        if (type === 0x2f) ended = true;
      } else if (status === 0xf0 || status === 0xf7) {
        p += varLen();
      } else {
        const kind = status & 0xf0;
        const d1 = buf[p++];
        const d2 = kind === 0xc0 || kind === 0xd0 ? 0 : buf[p++];
        const key = `${status & 0x0f}:${d1}`;
        if (kind === 0x90 && d2 > 0) open.set(key, [...(open.get(key) ?? []), tick]);
        else if (kind === 0x80 || (kind === 0x90 && d2 === 0)) {
          const on = open.get(key)?.shift();
          assert.notEqual(on, undefined, `note-off without note-on (pitch ${d1})`);
          notes.push({ pitch: d1, on, off: tick });
        }
      }
    }
    assert.equal(p, end, 'track events fill the chunk exactly');
    assert.ok(ended, 'track ends with End of Track');
    tracks.push({ notes, endTick: tick });
    at = end;
  }
  assert.equal(tracks.length, ntracks, 'track count matches the header');
  return { format, ntracks, division, tracks };
}

// --- the tests --------------------------------------------------------------

let downloadedMidi = null;

test('the page loads the bundled model, shows its card, then times CPU and WebGPU', async () => {
  await page.goto(`${server.url}/www/`);
  assert.equal(await page.title(), 'Polyphony — Bach chorale composer');
  await waitReady();
  await shot('page.png');
  const error = await page.evaluate(() => window.polyphonyError);
  assert.equal(error, undefined, `the page reported an error: ${error}`);
  const status = await page.textContent('#status');
  assert.match(status, /bach-chorales/);
  assert.equal(await page.isVisible('#model-card'), true);
  assert.equal(await page.textContent('#model-name'), 'bach-chorales');
  assert.match(await page.textContent('#model-facts'), /Hyper-parameters/);
  const readyMs = await page.evaluate(() => window.polyphonyReadyMs);
  console.log(`  navigation to ready: ${readyMs} ms`);
  await waitBackends();
  // The first notes need only the CPU package: the WebGPU one comes after.
  const resources = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((r) => ({ url: r.name, start: r.startTime, bytes: r.encodedBodySize })),
  );
  const webgpu = resources.filter((r) => r.url.includes('/pkg-webgpu/'));
  assert.ok(webgpu.length > 0, 'the WebGPU package was fetched (this browser has WebGPU)');
  for (const r of webgpu) assert.ok(r.start >= readyMs, `${r.url} fetched at ${r.start} ms, before the page was ready (${readyMs} ms)`);
  const first = resources.filter((r) => r.start < readyMs);
  console.log(`  before ready: ${first.length} files, ${(first.reduce((a, r) => a + r.bytes, 0) / 1e6).toFixed(2)} MB uncompressed`);
  const backend = await page.textContent('#backend-status');
  console.log(`  ${backend}`);
  // Both timed; SwiftShader's WebGPU emulates a GPU on the CPU, so the CPU wins here.
  assert.match(backend, /CPU \(wasm\) \d+\.\d\d ms\/step, WebGPU \d+\.\d\d ms\/step at batch 1/);
  assert.match(backend, /^Backend: CPU \(wasm\) \(the faster here\)/);
  assert.equal(await page.isEnabled('#backend option[value=webgpu]'), true);
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

test('bad generation options throw a readable JS Error, not a trap', async () => {
  const result = await page.evaluate(async () => {
    const wasm = await import('/pkg/polyphony.js');
    const bytes = new Uint8Array(await (await fetch('/assets/bach-chorales.bundle')).arrayBuffer());
    const model = wasm.Model.fromBytes(bytes);
    try {
      model.generate({ num_outputs: 1, num_steps: 4, temperature: -1 }, [], 0);
      return { threw: false };
    } catch (e) {
      return { threw: true, isError: e instanceof Error, message: String(e?.message ?? e) };
    } finally {
      model.free();
    }
  });
  assert.equal(result.threw, true);
  assert.equal(result.isError, true);
  assert.match(result.message, /temperature/);
});

test('a primer typed with the computer keyboard appears in the roll', async () => {
  await page.click('#clear');
  await page.focus('#primer-roll');
  // C, E, rest, G, octave up, C: quarter notes (the default typed length).
  for (const key of ['a', 'd', ' ', 'g', 'x', 'a']) await page.keyboard.press(key === ' ' ? 'Space' : key);
  assert.deepEqual(sortNotes(await primerNotes()), [
    { pitch: 60, start: 0, end: 4 },
    { pitch: 64, start: 4, end: 8 },
    { pitch: 67, start: 12, end: 16 },
    { pitch: 72, start: 16, end: 20 },
  ]);
  assert.equal(await page.getAttribute('#primer-roll', 'data-notes'), '4');
  await page.keyboard.press('z');
});

test('clicks add, drag lengthens and a click deletes notes in the roll; undo restores', async () => {
  await page.locator('#primer-roll').scrollIntoViewIfNeeded();
  const point = (pitch, step) => page.evaluate(([p, s]) => window.polyphonyApp.rollPoint(p, s), [pitch, step]);
  let p = await point(71, 24);
  await page.mouse.click(p.x, p.y);
  p = await point(74, 28);
  const q = await point(74, 31);
  await page.mouse.move(p.x, p.y);
  await page.mouse.down();
  await page.mouse.move(q.x, q.y, { steps: 4 });
  await page.mouse.up();
  p = await point(64, 5); // on the typed E
  await page.mouse.click(p.x, p.y);
  assert.deepEqual(sortNotes(await primerNotes()), [
    { pitch: 60, start: 0, end: 4 },
    { pitch: 67, start: 12, end: 16 },
    { pitch: 72, start: 16, end: 20 },
    { pitch: 71, start: 24, end: 25 },
    { pitch: 74, start: 28, end: 32 },
  ]);
  await page.click('#undo');
  assert.equal((await primerNotes()).length, 6, 'undo brings the deleted note back');
  await shot('primer.png');
});

test('a MIDI keyboard (WebMIDI input) types into the primer at the cursor', async () => {
  const before = await primerNotes();
  const cursor = await page.evaluate(() => window.polyphonyApp.primerCursor());
  await page.evaluate(() => {
    const send = (data) => window.__midiInput.onmidimessage({ data: new Uint8Array(data) });
    send([0x90, 62, 90]); // note-on
    send([0x80, 62, 0]); // note-off: ignored
    send([0x90, 65, 0]); // note-on with velocity 0 is a note-off: ignored
  });
  const after = await primerNotes();
  assert.equal(after.length, before.length + 1);
  assert.ok(after.some((n) => n.pitch === 62 && n.start === cursor), JSON.stringify(after));
  assert.match(await page.textContent('#midi-in'), /1 input/);
  await page.click('#undo');
});

test('the primer and options survive a reload', async () => {
  await openAdvanced();
  await page.fill('#options input[name=num_outputs]', '3');
  await page.fill('#options input[name=num_steps]', '48');
  await page.fill('#options input[name=seed]', '7');
  assert.equal(await page.isChecked('#options input[name=mask_ignored_events]'), true, 'masking is on by default');
  await page.uncheck('#options input[name=mask_ignored_events]');
  await page.click('[data-preset=chord]');
  const before = await primerNotes();
  await page.reload();
  await waitReady();
  await openAdvanced();
  assert.deepEqual(await primerNotes(), before);
  assert.equal(await page.inputValue('#options input[name=num_outputs]'), '3');
  assert.equal(await page.inputValue('#options input[name=num_steps]'), '48');
  assert.equal(await page.inputValue('#options input[name=seed]'), '7');
  assert.equal(await page.isChecked('#options input[name=mask_ignored_events]'), false);
  await page.check('#options input[name=mask_ignored_events]');
});

test('a request the generator refuses shows its message on the page', async () => {
  await page.fill('#options input[name=num_steps]', '2'); // shorter than the 4-step chord primer
  await page.click('#generate');
  await page.waitForSelector('#gen-error:not([hidden])');
  assert.match(await page.textContent('#gen-error'), /num_steps \(2\) must be longer than the primer \(4 steps\)/);
  assert.equal(await page.isEnabled('#generate'), true);
  await page.fill('#options input[name=num_steps]', '48');
});

test('Generate produces the requested number of outputs of the requested length', async () => {
  assert.deepEqual(sortNotes(await primerNotes()), [60, 64, 67].map((pitch) => ({ pitch, start: 0, end: 4 })));
  await page.click('#generate');
  await page.waitForSelector('#gen-error', { state: 'hidden' });
  await page.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined, null, {
    timeout: LOAD_TIMEOUT_MS,
  });
  const results = await page.evaluate(() => window.polyphonyApp.results());
  assert.equal(results.length, 3);
  for (const r of results) assert.equal(r.steps, 48);
  assert.match(await page.textContent('#gen-status'), /^3 outputs in \d+\.\d\d s on CPU \(wasm\)$/);
  console.log(`  ${await page.textContent('#gen-status')}`);
  await shot('results.png');
});

test('Generate on WebGPU (chosen by hand) produces the requested outputs, sampled on the device', async () => {
  await waitBackends();
  await page.selectOption('#backend', 'webgpu');
  assert.match(await page.textContent('#backend-status'), /^Backend: WebGPU \(chosen by you\)/);
  await page.fill('#options input[name=num_outputs]', '2');
  await page.fill('#options input[name=num_steps]', '6'); // SwiftShader takes ~0.5 s a model step
  try {
    const status = await generateAndWait();
    console.log(`  ${status}`);
    assert.match(status, /^2 outputs in \d+\.\d\d s on WebGPU$/);
    const results = await page.evaluate(() => window.polyphonyApp.results());
    assert.equal(results.length, 2);
    for (const r of results) {
      assert.equal(r.steps, 6);
      assert.ok(r.notes >= 3, 'the primer chord at least');
    }
    await shot('results-webgpu.png');
  } finally {
    await page.selectOption('#backend', 'auto');
    await page.fill('#options input[name=num_outputs]', '3');
    await page.fill('#options input[name=num_steps]', '48');
  }
  // The next tests use the CPU's outputs.
  assert.match(await generateAndWait(), /on CPU \(wasm\)$/);
});

test('Download yields a MIDI file that parses and has the right length', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#results li:first-child a.download')]);
  assert.match(download.suggestedFilename(), /^bach-chorales-seed7-01\.mid$/);
  const file = await download.path();
  const { readFile } = await import('node:fs/promises');
  const buf = await readFile(file);
  downloadedMidi = buf;
  const midi = parseMidi(buf);
  assert.equal(midi.format, 1);
  assert.equal(midi.division, 220);
  const notes = midi.tracks.flatMap((t) => t.notes);
  const expected = await page.evaluate(() => window.polyphonyApp.results()[0].notes);
  assert.equal(notes.length, expected, 'every note of the output is in the file');
  const ticksPerStep = 220 / 4;
  const lastOff = Math.max(...notes.map((n) => n.off));
  assert.ok(lastOff <= 48 * ticksPerStep, `last note ends at tick ${lastOff}, past 48 steps`);
  assert.ok(lastOff > 4 * ticksPerStep, `last note ends at tick ${lastOff}, within the primer`);
  // The primer chord opens the piece (the model may add to its step).
  const opening = notes.filter((n) => n.on === 0).map((n) => n.pitch);
  for (const pitch of [60, 64, 67]) assert.ok(opening.includes(pitch), `${pitch} at tick 0: ${opening}`);
});

test('Play drives the chosen MIDI output; Stop sends all-notes-off on every channel', async () => {
  await page.selectOption('#midi-out', 'fake-out');
  await page.evaluate(() => (window.__midiSent.length = 0));
  await page.click('#results li:first-child button.play');
  await page.waitForFunction(() => window.__midiSent.some((m) => (m.data[0] & 0xf0) === 0x90 && m.data[2] > 0), null, {
    timeout: 5000,
  });
  assert.equal(await page.textContent('#results li:first-child button.play'), 'Stop');
  const before = await page.evaluate(() => window.__midiSent.length);
  await page.click('#stop-all');
  const sent = await page.evaluate(() => window.__midiSent.map((m) => m.data));
  const after = sent.slice(before);
  for (let ch = 0; ch < 16; ch++) {
    assert.ok(after.some((d) => d[0] === (0xb0 | ch) && d[1] === 123 && d[2] === 0), `all-notes-off on channel ${ch + 1}`);
  }
  assert.equal(await page.textContent('#results li:first-child button.play'), 'Play');
});

test('the built-in synth plays and stops without errors', async () => {
  await page.selectOption('#midi-out', '');
  await page.evaluate(() => (window.__midiSent.length = 0));
  const errorsBefore = consoleErrors.length + pageErrors.length;
  await page.click('#results li:nth-child(2) button.play');
  await page.waitForTimeout(300);
  assert.equal(await page.textContent('#results li:nth-child(2) button.play'), 'Stop');
  assert.equal(await page.evaluate(() => window.__midiSent.filter((m) => (m.data[0] & 0xf0) === 0x90).length), 0,
    'nothing goes to the MIDI output when the synth is chosen');
  await page.click('#results li:nth-child(2) button.play');
  assert.equal(await page.textContent('#results li:nth-child(2) button.play'), 'Play');
  assert.equal(consoleErrors.length + pageErrors.length, errorsBefore);
});

test('Cancel stops a long generation, drawing notes as they arrived', async () => {
  await page.fill('#options input[name=num_outputs]', '10');
  await page.fill('#options input[name=num_steps]', '512');
  await page.click('#generate');
  try {
    await page.waitForFunction(() => document.querySelector('#gen-progress').value > 0, null, { timeout: 20_000 });
    assert.equal(await page.locator('#results canvas').count(), 10);
    // Notes beyond the 3-note primer are drawn while generating.
    await page.waitForFunction(
      () => [...document.querySelectorAll('#results canvas')].some((c) => Number(c.dataset.notes) > 3),
      null,
      { timeout: 20_000 },
    );
    await shot('generating.png');
  } finally {
    // Cancelled whatever happened, so that the tests after this one start idle.
    await page.click('#cancel');
  }
  await page.waitForFunction(() => document.querySelector('#gen-status').textContent === 'Cancelled.');
  assert.equal(await page.isEnabled('#generate'), true);
  assert.equal(await page.isHidden('#cancel'), true);
  assert.equal(await page.locator('#results li').count(), 0);
  await page.fill('#options input[name=num_outputs]', '3');
  await page.fill('#options input[name=num_steps]', '48');
});

test('a damaged bundle dropped on the page shows an error and keeps the old model', async () => {
  const message = await dropRefused('damaged.bundle', { url: BUNDLE_URL, damage: 64 });
  assert.match(message, /damaged\.bundle/);
  assert.match(message, /stays loaded/);
  assert.equal(await page.evaluate(() => window.polyphonyApp.modelName()), 'bach-chorales');
  assert.equal(await page.isEnabled('#generate'), true);
  await shot('damaged-bundle.png');
  // A good bundle (the same one, renamed) is taken and clears the message.
  await dropFile('renamed.bundle', { url: BUNDLE_URL });
  await page.waitForSelector('#model-error', { state: 'hidden' });
  assert.equal(await page.evaluate(() => window.polyphonyApp.modelName()), 'renamed');
});

/** The shipped bundle with its hparams edited (the checksum covers the weights, so it still holds). */
async function bundleWithHparams(edit) {
  const bytes = await readFile(path.join(HERE, '../../assets/bach-chorales.bundle'));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
  header.__metadata__.hparams = JSON.stringify(edit(JSON.parse(header.__metadata__.hparams)));
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, Buffer.from(text), bytes.subarray(8 + headerLength)]);
}

/** Files a fuzzer or a hostile sender might give the page, and what the page must say of each. */
const HOSTILE = [
  { name: 'batch0.bundle', make: () => bundleWithHparams((h) => ({ ...h, batch_size: 0 })), says: /batch_size/ },
  { name: 'nolayers.bundle', make: () => bundleWithHparams((h) => ({ ...h, rnn_layer_sizes: [] })), says: /rnn_layer_sizes/ },
  { name: 'huge-layer.bundle', make: () => bundleWithHparams((h) => ({ ...h, rnn_layer_sizes: [1 << 30] })), says: /rnn_layer_sizes|parameters|limit/ },
  // A metre of 2147483647/1 is odd but readable: the note is taken as the primer.
  {
    name: 'metre.musicxml',
    make: () => Buffer.from(`<?xml version="1.0"?><score-partwise><part-list><score-part id="P1"/></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>2147483647</beats><beat-type>1</beat-type></time></attributes><note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration></note></measure></part></score-partwise>`),
    primer: [{ pitch: 60, start: 0, end: 4 }],
  },
  {
    name: 'long.musicxml',
    make: () => Buffer.from(`<?xml version="1.0"?><score-partwise><part-list><score-part id="P1"/></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes><note><pitch><step>C</step><octave>4</octave></pitch><duration>10000000</duration></note></measure></part></score-partwise>`),
    says: /long\.musicxml/,
  },
  { name: 'noise.mag', make: () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)), says: /noise\.mag/ },
];

test('hostile files (fuzz-style bundles, scores and a .mag) are refused with a message; the model stays', async () => {
  await mkdir(OUT, { recursive: true });
  for (const { name, make, says, primer } of HOSTILE) {
    await writeFile(path.join(OUT, name), await make());
    if (primer) {
      await page.click('#clear');
      await dropFile(name, { url: `/tests/browser/out/${name}` });
      await page.waitForFunction(() => window.polyphonyApp.primerNotes().length > 0, null, { timeout: LOAD_TIMEOUT_MS });
      assert.deepEqual(await primerNotes(), primer, `${name}: taken as the primer`);
      continue;
    }
    const message = await dropRefused(name, { url: `/tests/browser/out/${name}` });
    console.log(`  ${name}: ${message.slice(0, 140)}`);
    assert.match(message, says, name);
    assert.match(message, new RegExp(name.replace('.', '\\.')));
    assert.equal(await page.evaluate(() => window.polyphonyApp.modelName()), 'renamed', `${name}: the model stays`);
  }
  assert.equal(await page.isEnabled('#generate'), true);
});

test("the original's .mag dropped on the page is imported in wasm and says what it loaded", async () => {
  const MAG_URL = '/tests/data/magenta/tiny.mag';
  const refusal = await dropRefused('damaged.mag', { url: MAG_URL, damage: 4096 });
  assert.match(refusal, /damaged\.mag: (damaged file|not a Magenta \.mag bundle)/);
  assert.match(refusal, /stays loaded/);
  await dropFile('tiny.mag', { url: MAG_URL });
  await page.waitForSelector('#model-error', { state: 'hidden' });
  assert.equal(await page.evaluate(() => window.polyphonyApp.modelName()), 'tiny');
  assert.match(await page.textContent('#status'), /imported from the original's tiny\.mag: Polyphonic RNN/);
  assert.match(await page.textContent('#model-facts'), /Imported from.*Magenta \.mag.*generator “polyphony”/);
  assert.match(await page.textContent('#model-facts'), /UNTRAINED: default polyphony config/);
  await openAdvanced();
  await page.fill('#options input[name=num_outputs]', '1');
  await page.click('[data-preset=twinkle]');
  await page.click('#harmonize');
  await page.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined, null, { timeout: LOAD_TIMEOUT_MS });
  assert.equal((await page.evaluate(() => window.polyphonyApp.results())).length, 1);
  await shot('mag-imported.png');
  await dropFile('bach-chorales.bundle', { url: BUNDLE_URL });
  await page.waitForFunction(() => window.polyphonyApp.modelName() === 'bach-chorales');
  await page.fill('#options input[name=num_outputs]', '3');
  await page.click('[data-preset=chord]');
});

test('a dropped .mid file becomes the primer', async () => {
  assert.ok(downloadedMidi, 'needs the download test');
  await dropFile('generated.mid', { bytes: downloadedMidi });
  await page.waitForFunction(() => window.polyphonyApp.primerNotes().length > 3);
  const notes = await primerNotes();
  const opening = notes.filter((n) => n.start === 0).map((n) => n.pitch);
  for (const pitch of [60, 64, 67]) assert.ok(opening.includes(pitch), `${pitch} at step 0: ${opening}`);
});

test('when the WebGPU device is lost mid-generation, the CPU finishes and the page says so', async () => {
  await page.selectOption('#backend', 'webgpu');
  await page.click('[data-preset=chord]');
  await page.fill('#options input[name=num_outputs]', '2');
  await page.fill('#options input[name=num_steps]', '32');
  const logged = [consoleErrors.length, pageErrors.length];
  try {
    await page.click('#generate');
    await page.waitForFunction(() => /on WebGPU/.test(document.querySelector('#gen-status').textContent), null, {
      timeout: LOAD_TIMEOUT_MS,
    });
    const lost = await page.evaluate(() => {
      for (const device of window.__gpuDevices) device.destroy();
      return window.__gpuDevices.length;
    });
    assert.ok(lost > 0, 'the page had a WebGPU device');
    await page.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined, null, {
      timeout: LOAD_TIMEOUT_MS,
    });
    const status = await page.textContent('#gen-status');
    console.log(`  ${status}`);
    assert.match(status, /^2 outputs in \d+\.\d\d s on CPU \(wasm\) \(WebGPU failed, so the CPU took over\)$/);
    assert.match(await page.textContent('#backend-status'), /WebGPU failed during generation/);
    assert.equal(await page.isDisabled('#backend option[value=webgpu]'), true);
    const results = await page.evaluate(() => window.polyphonyApp.results());
    assert.deepEqual(results.map((r) => r.steps), [32, 32]);
    await shot('webgpu-lost.png');
  } finally {
    await page.selectOption('#backend', 'auto');
    // A lost device makes wgpu log errors: expected here, and only here.
    const during = [...consoleErrors.splice(logged[0]), ...pageErrors.splice(logged[1])];
    console.log(`  (${during.length} console errors from the lost device, expected)`);
  }
});

/** Each way a browser can lack WebGPU, and what the page must say. */
const NO_WEBGPU = [
  {
    what: 'no navigator.gpu',
    script: () => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }),
    says: /^Backend: CPU \(wasm\) \(WebGPU did not start: this browser has no WebGPU/,
    fetchesWebGpuPackage: false,
  },
  {
    what: 'no adapter',
    script: () => {
      if (window.GPU) GPU.prototype.requestAdapter = async () => null;
    },
    says: /^Backend: CPU \(wasm\) \(WebGPU did not start: \S/,
    fetchesWebGpuPackage: true,
  },
];

for (const { what, script, says, fetchesWebGpuPackage } of NO_WEBGPU) {
  test(`without WebGPU (${what}) the page says so, offers only the CPU and generates there`, async () => {
    const other = await context.newPage();
    const errors = [];
    other.on('pageerror', (err) => errors.push(err.message));
    other.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
    const webgpuPackage = [];
    other.on('request', (req) => /\/pkg-webgpu\//.test(req.url()) && webgpuPackage.push(req.url()));
    try {
      await other.addInitScript(script);
      await other.goto(`${server.url}/www/`);
      await waitReady(other);
      await waitBackends(other);
      const backend = await other.textContent('#backend-status');
      console.log(`  ${backend}`);
      assert.match(backend, says);
      assert.equal(await other.isDisabled('#backend option[value=webgpu]'), true);
      await other.click('[data-preset=chord]');
      await openAdvanced(other);
      await other.fill('#options input[name=num_outputs]', '2');
      await other.fill('#options input[name=num_steps]', '16');
      assert.match(await generateAndWait(other), /^2 outputs in \d+\.\d\d s on CPU \(wasm\)$/);
      assert.deepEqual(errors, []);
      // The WebGPU package (3 MB) is fetched only where there is WebGPU to try.
      assert.equal(webgpuPackage.length > 0, fetchesWebGpuPackage, webgpuPackage.join(', '));
    } finally {
      await other.close();
    }
  });
}

// --- the page for musicians ----------------------------------------------------

/** The result cards' notes with their voices. */
const resultNotes = (i) => page.evaluate((i) => window.polyphonyApp.resultNotes(i), i);
const TWINKLE = [60, 60, 67, 67, 69, 69, 67].map((pitch, k) => ({ pitch, start: 4 * k, end: 4 * k + (k === 6 ? 8 : 4) }));

test('a melody is harmonized by default: on top in every step, its own length, four voices in four colours', async () => {
  await page.click('[data-preset=twinkle]');
  assert.deepEqual(sortNotes(await primerNotes()), TWINKLE);
  assert.equal(await page.getAttribute('#harmonize', 'class'), 'primary', 'Harmonize is the default for a melody');
  assert.notEqual(await page.getAttribute('#generate', 'class'), 'primary');
  await page.fill('#options input[name=num_outputs]', '3');
  const clicked = await page.evaluate(() => {
    window.__firstDrawnMs = null;
    const t0 = performance.now();
    const watch = () => {
      const drawn = [...document.querySelectorAll('#results canvas')].some((c) => Number(c.dataset.notes) > 0);
      if (drawn) window.__firstDrawnMs = performance.now() - t0;
      else requestAnimationFrame(watch);
    };
    document.querySelector('#harmonize').click();
    requestAnimationFrame(watch);
    return true;
  });
  assert.ok(clicked);
  await page.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined, null, { timeout: LOAD_TIMEOUT_MS });
  const firstDrawn = await page.evaluate(() => window.__firstDrawnMs);
  console.log(`  ${await page.textContent('#gen-status')}; first notes drawn ${firstDrawn.toFixed(0)} ms after the click`);
  assert.ok(firstDrawn < 1000, `first notes drawn after ${firstDrawn} ms`);
  const results = await page.evaluate(() => window.polyphonyApp.results());
  assert.equal(results.length, 3);
  for (let i = 0; i < 3; i++) {
    assert.equal(results[i].steps, 32, "the melody's length, nothing prepended");
    const notes = await resultNotes(i);
    for (const m of TWINKLE) {
      for (let step = m.start; step < m.end; step++) {
        const top = Math.max(...notes.filter((n) => n.start <= step && step < n.end).map((n) => n.pitch));
        assert.equal(top, m.pitch, `output ${i + 1}: the melody on top at step ${step}`);
      }
      assert.ok(notes.some((n) => n.pitch === m.pitch && n.start === m.start && n.voice === 0), `output ${i + 1}: the melody's ${m.pitch} at ${m.start} is the soprano's: ${JSON.stringify(notes)}`);
    }
    assert.ok(new Set(notes.map((n) => n.voice)).size >= 3, 'voices under the melody');
  }
  assert.equal(await page.getAttribute('#results li:first-child canvas', 'data-voices'), String(new Set((await resultNotes(0)).map((n) => n.voice)).size));
  await shot('harmonized.png');
});

test('muting a voice (or hearing one alone) leaves it out of the playback', async () => {
  await page.selectOption('#midi-out', 'fake-out');
  await page.evaluate(() => (window.__midiSent.length = 0));
  await page.click('#results li:first-child button.voice[data-voice="0"]');
  assert.equal(await page.getAttribute('#results li:first-child button.voice[data-voice="0"]', 'aria-pressed'), 'false');
  await page.evaluate(() => (window.__midiSent.length = 0));
  await page.click('#results li:first-child button.play');
  await page.waitForTimeout(2200);
  await page.click('#stop-all');
  const ons = await page.evaluate(() => window.__midiSent.filter((m) => (m.data[0] & 0xf0) === 0x90 && m.data[2] > 0).map((m) => m.data));
  assert.ok(ons.length > 0, 'the other voices play');
  assert.equal(ons.filter((d) => (d[0] & 0x0f) === 0).length, 0, 'nothing on the soprano channel');
  assert.ok(ons.some((d) => (d[0] & 0x0f) === 3), 'the bass plays on its own channel');
  await page.click('#results li:first-child button.voice[data-voice="0"]');
  await page.selectOption('#results li:first-child select.solo', '3');
  await page.evaluate(() => (window.__midiSent.length = 0));
  await page.click('#results li:first-child button.play');
  await page.waitForTimeout(1500);
  await page.click('#stop-all');
  const solo = await page.evaluate(() => window.__midiSent.filter((m) => (m.data[0] & 0xf0) === 0x90 && m.data[2] > 0).map((m) => m.data[0] & 0x0f));
  assert.ok(solo.length > 0 && solo.every((ch) => ch === 3), `only the bass: channels ${solo}`);
  await page.selectOption('#results li:first-child select.solo', '');
  await page.selectOption('#midi-out', '');
});

test('Download MusicXML gives a score of four named parts with the notes of the MIDI file', async () => {
  const [xmlDownload] = await Promise.all([page.waitForEvent('download'), page.click('#results li:first-child a.download-xml')]);
  assert.match(xmlDownload.suggestedFilename(), /^[\w.-]+-seed\d+-01\.musicxml$/);
  const { readFile } = await import('node:fs/promises');
  const xml = await readFile(await xmlDownload.path(), 'utf8');
  const parts = [...xml.matchAll(/<part-name>([^<]*)<\/part-name>/g)].map((m) => m[1]);
  assert.deepEqual(parts, ['Soprano', 'Alto', 'Tenor', 'Bass']);
  const [midiDownload] = await Promise.all([page.waitForEvent('download'), page.click('#results li:first-child a.download')]);
  const midi = parseMidi(await readFile(await midiDownload.path()));
  const midiNotes = midi.tracks.flatMap((t) => t.notes).length;
  // Tied continuations are one note: count the notes that do not continue a tie.
  const scoreNotes = (xml.match(/<note><pitch>/g) ?? []).length - (xml.match(/<tie type="stop"\/>/g) ?? []).length;
  assert.equal(scoreNotes, midiNotes, 'the score holds every note of the MIDI file');
  assert.equal(midiNotes, (await resultNotes(0)).length);
});

test('the score view draws the result in notation, loading its library only when first asked', async () => {
  assert.equal(await page.evaluate(() => Boolean(window.opensheetmusicdisplay)), false, 'not loaded before it is asked for');
  await page.click('#results li:first-child button.score-toggle');
  await page.waitForFunction(() => document.querySelector('#results li:first-child .score')?.dataset.state !== 'loading', null, { timeout: LOAD_TIMEOUT_MS });
  assert.equal(await page.getAttribute('#results li:first-child .score', 'data-state'), 'ready', await page.textContent('#results li:first-child .score'));
  assert.ok(await page.locator('#results li:first-child .score svg').count() > 0, 'an SVG score');
  assert.equal(await page.evaluate(() => Boolean(window.opensheetmusicdisplay)), true);
  await page.locator('#results li:first-child').screenshot({ path: path.join(OUT, 'score.png') });
});

test('Rewrite from here keeps what comes before the clicked step and writes the rest again, with undo', async () => {
  const before = await resultNotes(1);
  await page.locator('#results li:nth-child(2) canvas').scrollIntoViewIfNeeded();
  const at = await page.evaluate(() => window.polyphonyApp.resultPoint(1, 16));
  await page.mouse.click(at.x, at.y);
  assert.match(await page.textContent('#results li:nth-child(2) button.rewrite'), /Rewrite from bar 2, step 1/);
  await page.click('#results li:nth-child(2) button.rewrite');
  await page.waitForFunction(() => document.querySelector('#results li:nth-child(2)').dataset.ready === 'true' && !document.querySelector('#results li:nth-child(2) button.undo').disabled, null, { timeout: LOAD_TIMEOUT_MS });
  const after = await resultNotes(1);
  const upTo = (notes, k) => sortNotes(notes.filter((n) => n.start < k).map((n) => ({ pitch: n.pitch, start: n.start, end: Math.min(n.end, k) })));
  assert.deepEqual(upTo(after, 16), upTo(before, 16), 'the first bar is kept');
  assert.notDeepEqual(sortNotes(after.map(({ voice, ...n }) => n)), sortNotes(before.map(({ voice, ...n }) => n)), 'the rest is new');
  for (const m of TWINKLE.filter((m) => m.start >= 16)) {
    assert.ok(after.some((n) => n.pitch === m.pitch && n.start === m.start), `the melody's ${m.pitch} at ${m.start} stays`);
  }
  await shot('rewritten.png');
  await page.click('#results li:nth-child(2) button.undo');
  assert.deepEqual(await resultNotes(1), before, 'undo brings the earlier version back');
});

test('Keep soprano writes the other voices again around the same soprano', async () => {
  const before = await resultNotes(2);
  const soprano = (notes) => sortNotes(notes.filter((n) => n.voice === 0).map(({ voice, ...n }) => n));
  await page.click('#results li:nth-child(3) button.keep-soprano');
  await page.waitForFunction(() => !document.querySelector('#results li:nth-child(3) button.undo').disabled, null, { timeout: LOAD_TIMEOUT_MS });
  const after = await resultNotes(2);
  assert.deepEqual(soprano(after), soprano(before), `after: ${JSON.stringify(after)}\nbefore: ${JSON.stringify(before)}`);
  assert.notDeepEqual(after, before);
});

test('on a phone-sized screen the composer comes first, the model card folded', async () => {
  const phone = await context.newPage();
  try {
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${server.url}/www/`);
    await waitReady(phone);
    const box = await phone.locator('#primer-section').boundingBox();
    assert.ok(box.y < 200, `the composer starts at ${box.y} px`);
    const harmonize = await phone.locator('#harmonize').boundingBox();
    assert.ok(harmonize.y + harmonize.height < 844, `Harmonize is on the first screen (at ${harmonize.y} px)`);
    assert.equal(await phone.evaluate(() => document.querySelector('#model-card').open), false, 'the model card is folded');
    assert.equal(await phone.evaluate(() => document.querySelector('#advanced').open), false, "the original's options are folded");
    assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 400), 'nothing wider than the screen');
    await phone.screenshot({ path: path.join(OUT, 'phone.png') });
  } finally {
    await phone.close();
  }
});

/** The native binary (build.sh passes POLYPHONY_BIN; else cargo's default target dir here). */
const POLYPHONY_BIN =
  process.env.POLYPHONY_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(homedir(), '.cache/polyphony/target'), 'release/polyphony');

test("the page's CPU engine in wasm writes the same MIDI files as the native binary (same seed)", async () => {
  await access(POLYPHONY_BIN).catch(() => assert.fail(`no native binary at ${POLYPHONY_BIN} (cargo build --release, or set POLYPHONY_BIN)`));
  const request = { num_outputs: 3, num_steps: 64, seed: 7 };
  const dir = await mkdtemp(path.join(tmpdir(), 'polyphony-native-'));
  try {
    const flags = Object.entries(request).flatMap(([k, v]) => [`--${k}`, String(v)]);
    await promisify(execFile)(POLYPHONY_BIN, ['generate', '--output_dir', dir, ...flags]);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.mid')).sort();
    assert.equal(files.length, request.num_outputs, `native outputs: ${files}`);
    const native = await Promise.all(files.map(async (f) => [...(await readFile(path.join(dir, f)))]));

    await page.goto(`${server.url}/www/`);
    await waitReady();
    await waitBackends();
    const inWasm = await page.evaluate(async (request) => {
      const wasm = await import('/pkg/polyphony.js');
      await wasm.default();
      const bytes = new Uint8Array(await (await fetch('/assets/bach-chorales.bundle')).arrayBuffer());
      const model = wasm.Model.fromBytes(bytes);
      const run = model.generate(request, [], 0, 'cpu');
      while (!(await run.advance(1000)));
      const outputs = run.finish();
      run.free();
      model.free();
      return outputs.map((o) => [...o.midi]);
    }, request);
    for (let i = 0; i < native.length; i++) assert.deepEqual(inWasm[i], native[i], `output ${i + 1}: the same bytes in wasm as natively`);
    console.log(`  ${native.length} outputs of ${request.num_steps} steps, seed ${request.seed}: byte for byte the native binary's`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('?bench times the model at batch 1 and 10 and shows a table', async () => {
  await page.goto(`${server.url}/www/?bench&backends=cpu`);
  await page.waitForFunction(
    () => window.benchResult !== undefined || window.benchError !== undefined || window.polyphonyError !== undefined,
    null,
    { timeout: LOAD_TIMEOUT_MS },
  );
  const { result, firstNote, error } = await page.evaluate(() => ({
    result: window.benchResult,
    firstNote: window.benchFirstNoteMs,
    error: window.benchError ?? window.polyphonyError,
  }));
  assert.equal(error, undefined, 'no benchmark error');
  assert.equal(result.length, 2, `one row per batch size: ${JSON.stringify(result)}`);
  assert.deepEqual(result.map((r) => r.batch), [1, 10]);
  for (const r of result) {
    assert.equal(typeof r.backend, 'string');
    assert.equal(r.steps, 640);
    assert.ok(r.total_ms > 0 && r.ms_per_step > 0, `positive times: ${JSON.stringify(r)}`);
    assert.ok(Math.abs(r.ms_per_step * r.steps - r.total_ms) < 1e-6 * r.total_ms + 1e-9, 'ms_per_step = total / steps');
  }
  assert.ok(firstNote > 0, `first note time: ${firstNote}`);
  assert.ok(await page.locator('#bench-table').isVisible(), 'the table is visible');
  assert.equal(await page.locator('#bench-table tbody tr').count(), 2);
  await shot('bench.png');
  const per = result.map((r) => `batch ${r.batch}: ${r.ms_per_step.toFixed(3)} ms/step`).join('; ');
  console.log(`  bench: ${result[0].backend} ${per}; first note ${firstNote.toFixed(0)} ms`);
});

test('?bench&backends=webgpu times WebGPU at batch 1 and 10 (a few steps: SwiftShader is slow)', async () => {
  await page.goto(`${server.url}/www/?bench&backends=webgpu&steps=4`);
  await page.waitForFunction(() => window.benchResult !== undefined || window.benchError !== undefined, null, {
    timeout: LOAD_TIMEOUT_MS,
  });
  const { result, error } = await page.evaluate(() => ({ result: window.benchResult, error: window.benchError }));
  assert.equal(error, undefined, 'no benchmark error');
  assert.deepEqual(result.map((r) => [r.backend, r.batch, r.steps]), [['WebGPU', 1, 4], ['WebGPU', 10, 4]]);
  console.log(`  bench: WebGPU ${result.map((r) => `batch ${r.batch}: ${r.ms_per_step.toFixed(1)} ms/step`).join('; ')}`);
});

test('Copy link makes a link that writes the same notes with the same model, and says so with another', async () => {
  await page.goto(`${server.url}/www/`);
  await waitReady();
  await waitBackends();
  await openAdvanced();
  await page.selectOption('#backend', 'cpu');
  await page.click('[data-preset=chord]');
  await page.fill('#options input[name=num_outputs]', '2');
  await page.fill('#options input[name=num_steps]', '32');
  await generateAndWait();
  const made = [await resultNotes(0), await resultNotes(1)];
  await page.click('#share');
  await page.waitForFunction(() => document.querySelector('#share-link').value.includes('#share='));
  const link = await page.inputValue('#share-link');
  console.log(`  share link: ${link.length} characters`);

  const other = await context.newPage();
  try {
    await other.goto(link);
    await other.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined || !document.querySelector('#gen-error').hidden, null, { timeout: LOAD_TIMEOUT_MS });
    const again = await other.evaluate(() => [0, 1].map((i) => window.polyphonyApp.resultNotes(i)));
    assert.deepEqual(again, made, 'the same notes, note for note');
    assert.match(await other.textContent('#gen-status'), /on CPU \(wasm\)$/);

    // Made with another model: said, and offered on this one.
    const url = new URL(link);
    const payload = JSON.parse(Buffer.from(url.hash.slice('#share='.length), 'base64url').toString());
    url.hash = `share=${Buffer.from(JSON.stringify({ ...payload, model: 'crc32:00000000', model_name: 'someone-elses' })).toString('base64url')}`;
    await other.goto('about:blank');
    await other.goto(url.href);
    await other.waitForSelector('#shared-note:not([hidden])', { timeout: LOAD_TIMEOUT_MS });
    assert.match(await other.textContent('#shared-note'), /made with the model “someone-elses” \(crc32:00000000\)/);
    await other.click('#shared-run');
    await other.waitForFunction(() => document.querySelector('#gen-status')?.dataset.seconds !== undefined, null, { timeout: LOAD_TIMEOUT_MS });
    assert.deepEqual(await other.evaluate(() => window.polyphonyApp.resultNotes(0)), made[0], 'this model, the same request');

    // A damaged link is refused with a message; the page stays usable.
    await other.goto('about:blank');
    await other.goto(`${server.url}/www/#share=not-a-link`);
    await other.waitForSelector('#gen-error:not([hidden])', { timeout: LOAD_TIMEOUT_MS });
    assert.match(await other.textContent('#gen-error'), /Cannot open the shared link: the link is damaged/);
    await waitReady(other);
    assert.equal(await other.isEnabled('#generate'), true);
  } finally {
    await other.close();
  }
});

test('Play live: each melody note from a MIDI keyboard is harmonized as it is played (64 notes at 120 qpm), and the take becomes a result', async () => {
  await page.goto(`${server.url}/www/`);
  await waitReady();
  await page.selectOption('#midi-out', 'fake-out');
  await openAdvanced();
  await page.fill('#options input[name=qpm]', '120');
  await page.dispatchEvent('#options input[name=qpm]', 'input');
  await page.click('#live');
  assert.equal(await page.textContent('#live'), 'Stop');
  const scale = [60, 62, 64, 65, 67, 65, 64, 62];
  const played = await page.evaluate(async (scale) => {
    const take = window.polyphonyLive;
    const input = window.__midiInput;
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
    const stepMs = 60000 / (120 * 4);
    window.__midiSent.length = 0;
    const notes = [];
    // Eighth notes from the end of the count-in, each released just before the next.
    for (let i = 0; i < 64; i++) {
      await wait(take.origin + i * 2 * stepMs - performance.now());
      const pitch = scale[i % scale.length];
      const t = performance.now();
      input.onmidimessage({ data: new Uint8Array([0x90, pitch, 100]), timeStamp: t });
      notes.push({ pitch, t });
      await wait(take.origin + (i * 2 + 1.8) * stepMs - performance.now());
      input.onmidimessage({ data: new Uint8Array([0x80, pitch, 0]), timeStamp: performance.now() });
    }
    return { notes, latencies: take.latencies, sent: window.__midiSent.map((m) => ({ data: m.data, timestamp: m.timestamp })) };
  }, scale);
  // What the fake output received: the harmony's note-ons (channels 1-3) after each melody note.
  const harmonyOns = played.sent.filter((m) => [0x91, 0x92, 0x93].includes(m.data[0]) && m.data[2] > 0);
  const observed = played.notes
    .map(({ t }) => harmonyOns.filter((m) => m.timestamp >= t && m.timestamp < t + 50).map((m) => m.timestamp - t))
    .filter((after) => after.length > 0)
    .map((after) => Math.min(...after));
  const sorted = [...played.latencies].sort((a, b) => a - b);
  const median = sorted[32];
  const worst = sorted[63];
  console.log(`  live: harmony ${median.toFixed(2)} ms after the note (median of 64), worst ${worst.toFixed(2)} ms; ${observed.length} of 64 notes struck new harmony notes, at most ${Math.max(...observed).toFixed(2)} ms after`);
  assert.equal(played.latencies.length, 64);
  assert.ok(worst <= 20, `worst latency ${worst} ms`);
  assert.ok(observed.length >= 16 && observed.every((ms) => ms <= 20), `harmony note-ons after the melody's: ${observed.join(', ')}`);
  assert.match(await page.textContent('#live-status'), /harmony \d+\.\d ms after each note/);

  await page.click('#live');
  assert.equal(await page.textContent('#live'), 'Play live');
  const results = await page.evaluate(() => window.polyphonyApp.results());
  assert.equal(results.length, 1);
  assert.ok(results[0].steps >= 128, `${results[0].steps} steps`);
  const take = await resultNotes(0);
  // Every note played is in the take, in order, on the step it was played
  // on, and is the soprano's (a step the melody left silent, if a note came
  // late, may give the soprano another voice's note).
  const melody = await page.evaluate(() => window.polyphonyLive.melody);
  assert.deepEqual(melody.map((n) => n.pitch), played.notes.map((n) => n.pitch), 'every note played, in order');
  for (const m of melody) {
    assert.ok(take.some((n) => n.voice === 0 && n.pitch === m.pitch && n.start === m.start), `the melody's ${m.pitch} at step ${m.start} is the soprano's`);
  }
  assert.ok(new Set(take.map((n) => n.voice)).size >= 3, 'voices under it');
  assert.match(await page.textContent('#live-status'), /^Take of \d+ steps; harmony/);
  await shot('live-take.png');
});

test('a wasm trap is caught: the page restarts its engine, reloads the model and generates again', async () => {
  const other = await context.newPage();
  try {
    await other.goto(`${server.url}/www/`);
    await waitReady(other);
    // The app's own instance of the module traps (a panic in Rust).
    await other.evaluate(() => setTimeout(async () => (await import('/pkg/polyphony.js')).trapForTests()));
    await other.waitForFunction(() => window.polyphonyRestarts === 1, null, { timeout: LOAD_TIMEOUT_MS });
    const status = await other.textContent('#status');
    console.log(`  ${status}`);
    assert.match(status, /The engine stopped \(unreachable[^)]*\) and was restarted; the model “bach-chorales” is loaded again/);
    await other.click('[data-preset=chord]');
    await openAdvanced(other);
    await other.fill('#options input[name=num_outputs]', '2');
    await other.fill('#options input[name=num_steps]', '16');
    assert.match(await generateAndWait(other), /^2 outputs in \d+\.\d\d s on /);
  } finally {
    await other.close();
  }
});

test('the whole session logged no console errors and threw no page errors', async () => {
  assert.deepEqual(pageErrors, [], 'page errors');
  assert.deepEqual(consoleErrors, [], 'console errors / failed requests');
});

// --- main ---------------------------------------------------------------------

await run({ setUp, tearDown, timeoutMs: TOTAL_TIMEOUT_MS, what: `static server, Chromium at ${CHROMIUM}` });
