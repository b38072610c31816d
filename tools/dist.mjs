// The page as a folder for any static host (./build.sh dist). Node's standard
// library and esbuild (tools/package.json, installed by ./build.sh).
//
//   node tools/dist.mjs [--out DIR]      (default dist/; POLYPHONY_BUILD=label names the build)
//
// Starting from www/index.html it follows every reference the page makes (the
// HTML's src/href, CSS url(), JS `import`, `import()` and
// `new URL('…', import.meta.url)`, the manifest's icons), so the folder holds
// only what the page loads: www/ at the top, pkg/, pkg-webgpu/, the model in
// assets/ and the score library in lib/. The page's own modules are joined
// into app.js by esbuild (one request instead of fifteen: over HTTP/1.1 the
// browser fetches six at a time, and the first visit waited on the waves),
// and index.html's modulepreload links to them are dropped; what app.js
// fetches by URL (`new URL('…', import.meta.url)`) stays a file of its own.
// Each file but index.html, sw.js and
// manifest.webmanifest (whose names must not change) gets its content's hash
// in its name, and references are rewritten to those names: a host may then
// cache them forever. index.html names the build (<meta name="polyphony-build">,
// a hash of everything) and sw.js gets the build's file list (see www/sw.js).
// Beside every file lie its gzip (-9) and brotli (quality 11) forms, which
// are cached by content in ~/.cache/polyphony/compressed (brotli at 11 takes
// most of a minute for the WebGPU wasm).

import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'www/index.html';
/** The page's module: the others it imports are joined into it. */
const APP = 'www/app.js';
const SERVICE_WORKER = 'www/sw.js';
/** Names a host and the browser look up as they are: never hashed. */
const STABLE = new Set(['www/index.html', SERVICE_WORKER, 'www/manifest.webmanifest']);
/** Fetched only when the browser has WebGPU: cached by the service worker when fetched, not on install. */
const LAZY_PREFIX = 'pkg-webgpu/';
/** What the page needs before its first notes, besides index.html's static imports (app.js loads them). */
const FIRST_EXTRA = ['pkg/polyphony.js', 'pkg/polyphony_bg.wasm', 'assets/bach-chorales.bundle'];
const HASH_LENGTH = 10; // hex digits; tests/browser/static-server.mjs's HASHED_NAME matches them
const COMPRESSED_CACHE = path.join(process.env.POLYPHONY_CACHE_DIR ?? path.join(os.homedir(), '.cache/polyphony'), 'compressed');
const CACHE_DAYS = 30;

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Where a source file (path from the repository root) goes in the folder, before hashing. */
function placeOf(source) {
  if (source.startsWith('www/node_modules/')) return `lib/${path.posix.basename(source)}`;
  if (source.startsWith('www/')) return source.slice('www/'.length);
  return source;
}

/** `dir/name.ext` -> `dir/name.<hash>.ext`. */
function hashedName(place, hash) {
  const ext = path.posix.extname(place);
  return `${place.slice(0, place.length - ext.length)}.${hash.slice(0, HASH_LENGTH)}${ext}`;
}

// --- references ----------------------------------------------------------------

// Static imports only as statements at the start of a line, so that a string
// holding "from '" is not taken for one.
const JS_REFERENCES = [
  { pattern: /^(\s*(?:import|export)\s[^'"]*?\bfrom\s*)(['"])([^'"]+)\2/gm, kind: 'static' },
  { pattern: /^(\s*import\s*)(['"])([^'"]+)\2/gm, kind: 'static' },
  { pattern: /\b(import\(\s*)(['"])([^'"]+)\2(?=\s*\))/g, kind: 'dynamic' },
  { pattern: /\b(new URL\(\s*)(['"])([^'"]+)\2(?=\s*,\s*import\.meta\.url\s*\))/g, kind: 'url' },
];
const HTML_REFERENCES = [{ pattern: /\b((?:src|href)\s*=\s*)(")([^"]*)"/g, kind: 'static' }];
const CSS_REFERENCES = [{ pattern: /\b(url\(\s*)(['"]?)([^'")]+)\2(?=\s*\))/g, kind: 'static' }];

/** A URL with a scheme (https:, data:, blob:) or a fragment: not a file of ours. */
const isExternal = (ref) => /^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('#');

/** The reference patterns of a source file, or null when it is passed through untouched. */
function patternsOf(source) {
  // Third-party builds are self-contained classic scripts; their minified text
  // could look like an import, so it is left alone.
  if (source.includes('/node_modules/')) return null;
  if (source === SERVICE_WORKER) return null; // it gets the file list instead
  switch (path.posix.extname(source)) {
    case '.js':
    case '.mjs':
      return JS_REFERENCES;
    case '.html':
      return HTML_REFERENCES;
    case '.css':
      return CSS_REFERENCES;
    default:
      return null;
  }
}

// --- building ------------------------------------------------------------------

/**
 * Reads the page's files from `root`, follows and rewrites their references.
 * Returns the files as { source, place (name in the folder), bytes, edges }.
 */
async function collect(root) {
  const app = await joinModules(root);
  const files = new Map(); // source -> file, once done
  const busy = new Set(); // sources being processed (a cycle would need a name before its hash)

  async function visit(source) {
    if (files.has(source)) return files.get(source);
    if (busy.has(source)) throw new Error(`reference cycle through ${source}: hashed names need an acyclic graph`);
    busy.add(source);
    let bytes =
      source === APP
        ? app.bytes
        : await readFile(path.join(root, source)).catch(() => {
            throw new Error(`${source} is missing (run ./build.sh wasm for pkg/ and pkg-webgpu/, npm ci in www/)`);
          });
    if (source === ENTRY) bytes = withoutPreloadsOf(bytes, source, app.joined);
    const place = placeOf(source);
    const edges = []; // { target: source path, kind }
    const rewrite = async (text, patterns) => {
      for (const { pattern, kind } of patterns) text = await replaceAsync(text, pattern, async (match, lead, quote, ref) => {
        if (isExternal(ref)) return match;
        if (kind === 'static' && patterns === JS_REFERENCES && !/^\.{1,2}\//.test(ref)) {
          throw new Error(`${source}: bare import '${ref}' (no bundler here: use a relative path)`);
        }
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(source), ref));
        if (target.startsWith('../')) throw new Error(`${source}: '${ref}' is outside the repository`);
        edges.push({ target, kind });
        const to = (await visit(target)).place;
        let relative = path.posix.relative(path.posix.dirname(place), to);
        if (!relative.startsWith('.')) relative = `./${relative}`;
        return `${lead}${quote}${relative}${quote}`;
      });
      return text;
    };
    const patterns = patternsOf(source);
    if (patterns) bytes = Buffer.from(await rewrite(bytes.toString('utf8'), patterns));
    if (source.endsWith('.webmanifest')) bytes = Buffer.from(await rewriteManifest(bytes, source, visit, edges));
    const file = { source, place: STABLE.has(source) ? place : hashedName(place, sha256(bytes)), bytes, edges };
    busy.delete(source);
    files.set(source, file);
    return file;
  }

  await visit(ENTRY);
  if (!files.has(SERVICE_WORKER)) throw new Error(`nothing references ${SERVICE_WORKER} (www/offline.js registers it)`);
  return [...files.values()];
}

/**
 * www/app.js with the modules it imports joined in (esbuild, ES module
 * output). Returns { bytes, joined: the sources it took in, app.js too }.
 */
async function joinModules(root) {
  const result = await esbuild.build({
    entryPoints: [APP],
    absWorkingDir: path.resolve(root),
    bundle: true,
    format: 'esm',
    write: false,
    metafile: true,
    charset: 'utf8',
    logLevel: 'silent',
  }).catch((err) => {
    throw new Error(`joining ${APP}'s modules (esbuild): ${err.errors?.map((e) => `${e.location?.file ?? ''}:${e.location?.line ?? ''} ${e.text}`).join('; ') ?? err.message}`);
  });
  return { bytes: Buffer.from(result.outputFiles[0].contents), joined: new Set(Object.keys(result.metafile.inputs)) };
}

/** index.html without its modulepreload links to modules now inside app.js. */
function withoutPreloadsOf(bytes, source, joined) {
  const link = /^[ \t]*<link rel="modulepreload" href="([^"]+)">[ \t]*\r?\n/gm;
  const html = bytes.toString('utf8').replace(link, (line, ref) => {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(source), ref));
    return joined.has(target) ? '' : line;
  });
  return Buffer.from(html);
}

/** The manifest with its icons' names rewritten (it stays at the top, beside index.html). */
async function rewriteManifest(bytes, source, visit, edges) {
  const manifest = JSON.parse(bytes.toString('utf8'));
  for (const icon of manifest.icons ?? []) {
    const target = path.posix.join(path.posix.dirname(source), icon.src);
    edges.push({ target, kind: 'static' });
    icon.src = path.posix.relative(path.posix.dirname(placeOf(source)), (await visit(target)).place);
  }
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** String.replace with an async replacer, applied in order. */
async function replaceAsync(text, pattern, replacer) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    parts.push(text.slice(last, m.index), await replacer(...m));
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return parts.join('');
}

/** The build's name: a hash of every file's name and content (and the label, if any). */
function buildVersion(files, label) {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.source.localeCompare(b.source))) h.update(`${f.source}\0${sha256(f.bytes)}\0`);
  h.update(label ?? '');
  const hash = h.digest('hex').slice(0, HASH_LENGTH);
  return label ? `${label}-${hash}` : hash;
}

/** index.html names its build, for www/offline.js (registers the service worker) and tests. */
function stampIndex(file, version) {
  const html = file.bytes.toString('utf8');
  const meta = `<meta name="polyphony-build" content="${version}">`;
  if (!html.includes('<head>')) throw new Error(`${file.source} has no <head>`);
  file.bytes = Buffer.from(html.replace('<head>', `<head>\n  ${meta}`));
}

/** sw.js gets the build: its version and the files it caches, relative to itself. */
function stampServiceWorker(file, files, version) {
  const names = (lazy) =>
    files
      .filter((f) => f !== file && f.source.startsWith(LAZY_PREFIX) === lazy)
      .map((f) => (f.source === ENTRY ? './' : f.place))
      .sort();
  const build = { version, precache: names(false), lazy: names(true) };
  const text = file.bytes.toString('utf8');
  const line = /^const BUILD = .*;$/m;
  if (!line.test(text)) throw new Error(`${file.source} has no 'const BUILD = …;' line to fill in`);
  file.bytes = Buffer.from(text.replace(line, `const BUILD = ${JSON.stringify(build)};`));
}

// --- compression -----------------------------------------------------------------

const COMPRESSORS = {
  gz: (bytes) => promisify(zlib.gzip)(bytes, { level: 9 }),
  br: (bytes) =>
    promisify(zlib.brotliCompress)(bytes, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }),
};

/** `bytes` compressed as `kind` (gz, br), from the cache when it was done before. */
async function compress(bytes, kind) {
  const cached = path.join(COMPRESSED_CACHE, `${sha256(bytes)}.${kind}`);
  const hit = await readFile(cached).catch(() => null);
  if (hit) {
    const now = new Date();
    await utimes(cached, now, now).catch(() => {}); // still in use: keep it
    return hit;
  }
  const out = await COMPRESSORS[kind](bytes);
  await mkdir(COMPRESSED_CACHE, { recursive: true });
  await writeFile(cached, out);
  return out;
}

/** Drops cached compressions not used for CACHE_DAYS (old wasm builds). */
async function pruneCompressedCache() {
  const entries = await readdir(COMPRESSED_CACHE).catch(() => []);
  const cutoff = Date.now() - CACHE_DAYS * 86_400_000;
  for (const name of entries) {
    const file = path.join(COMPRESSED_CACHE, name);
    if ((await stat(file)).mtimeMs < cutoff) await rm(file, { force: true });
  }
}

// --- the folder --------------------------------------------------------------------

/** Folders of the repository a build must never be written into (it empties its folder). */
const SOURCE_DIRS = ['www', 'pkg', 'pkg-webgpu', 'assets', 'src', 'tests', 'tools', '.git'];

/**
 * Empties `out` for a new build, refusing anything that is not an earlier
 * build: a mistyped DIR must not delete the repository or its sources.
 */
async function emptyOutput(root, out) {
  const from = path.resolve(root);
  const to = path.resolve(out);
  const inside = (dir, parent) => dir === parent || dir.startsWith(parent + path.sep);
  if (inside(from, to) || SOURCE_DIRS.some((d) => inside(to, path.join(from, d)))) {
    throw new Error(`refusing to write into ${out}: it is, or holds, the page's sources`);
  }
  const entries = await readdir(to).catch(() => null);
  if (entries === null || entries.length === 0) return;
  const index = await readFile(path.join(to, 'index.html'), 'utf8').catch(() => '');
  if (!index.includes('<meta name="polyphony-build"')) {
    throw new Error(`refusing to empty ${out}: it is not a folder made by ./build.sh dist (its index.html names no build)`);
  }
  await rm(to, { recursive: true, force: true });
}

/**
 * Writes the page's folder to `out` (emptied first). `label` goes into the
 * build's name. Returns { version, out, files: [{ source, place, size, gz, br }] }.
 */
export async function buildDist({ root = ROOT, out = path.join(ROOT, 'dist'), label = process.env.POLYPHONY_BUILD || null } = {}) {
  const files = await collect(root);
  const version = buildVersion(files, label);
  stampIndex(files.find((f) => f.source === ENTRY), version);
  stampServiceWorker(files.find((f) => f.source === SERVICE_WORKER), files, version);

  await emptyOutput(root, out);
  const written = [];
  for (const f of files) {
    const target = path.join(out, f.place);
    await mkdir(path.dirname(target), { recursive: true });
    const [gz, br] = await Promise.all([compress(f.bytes, 'gz'), compress(f.bytes, 'br')]);
    // The original first: a server may prefer a sibling only when it is not older.
    await writeFile(target, f.bytes);
    await writeFile(`${target}.gz`, gz);
    await writeFile(`${target}.br`, br);
    written.push({ source: f.source, place: f.place, size: f.bytes.length, gz: gz.length, br: br.length, edges: f.edges });
  }
  await pruneCompressedCache();
  return { version, out, files: written };
}

/**
 * The downloads: `first` is what the page needs before its first notes
 * (index.html, its stylesheet and static JS imports, pkg/ and the model),
 * `webgpu` the WebGPU package, `score` the engraving library.
 */
export function payloads(files) {
  const bySource = new Map(files.map((f) => [f.source, f]));
  const first = new Set();
  const addStatic = (source) => {
    if (first.has(source)) return;
    const file = bySource.get(source);
    if (!file || file.source.endsWith('.webmanifest') || /\.(svg|png)$/.test(file.source)) return; // not the page
    first.add(source);
    for (const e of file.edges) if (e.kind === 'static') addStatic(e.target);
  };
  addStatic(ENTRY);
  for (const s of FIRST_EXTRA) first.add(s);
  const sum = (sources) => {
    const list = [...sources].map((s) => bySource.get(s)).filter(Boolean);
    return { files: list.length, size: list.reduce((a, f) => a + f.size, 0), gz: list.reduce((a, f) => a + f.gz, 0), br: list.reduce((a, f) => a + f.br, 0) };
  };
  return {
    first: sum(first),
    webgpu: sum(files.filter((f) => f.source.startsWith(LAZY_PREFIX)).map((f) => f.source)),
    score: sum(files.filter((f) => f.source.includes('/node_modules/')).map((f) => f.source)),
    cpuWasm: sum(['pkg/polyphony_bg.wasm']),
    webgpuWasm: sum(['pkg-webgpu/polyphony_bg.wasm']),
    model: sum(['assets/bach-chorales.bundle']),
  };
}

const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;

/** The table ./build.sh dist prints. */
export function describe({ version, out, files }) {
  const p = payloads(files);
  const row = (name, s) => `${name.padEnd(44)} ${String(s.files).padStart(3)}  ${mb(s.size).padStart(9)}  ${mb(s.gz).padStart(9)}  ${mb(s.br).padStart(9)}`;
  return [
    `${out}: build ${version}, ${files.length} files (each with .gz and .br)`,
    `${'download'.padEnd(44)} ${'files'}  ${'raw'.padStart(9)}  ${'gzip'.padStart(9)}  ${'brotli'.padStart(9)}`,
    row('first payload (page, JS, pkg/, model)', p.first),
    row('  of which the CPU wasm (pkg/)', p.cpuWasm),
    row('  of which the model', p.model),
    row('WebGPU package (pkg-webgpu/, if WebGPU)', p.webgpu),
    row('  of which its wasm', p.webgpuWasm),
    row('score library (on the first score)', p.score),
  ].join('\n');
}

// Command-line use (./build.sh dist).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--out');
  const out = path.resolve(i >= 0 ? args[i + 1] : path.join(ROOT, 'dist'));
  try {
    console.log(describe(await buildDist({ out })));
  } catch (err) {
    console.error(`tools/dist.mjs: ${err.message}`);
    process.exit(1);
  }
}
