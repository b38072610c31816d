// A small static file server for the repository root, used by the browser
// tests and by `./build.sh serve`. Node's http module only; no dependencies.
//
//   node tests/browser/static-server.mjs [--root DIR] [--host 127.0.0.1] [--port 8000]
//
//   node tests/browser/static-server.mjs --root dist --dist   (./build.sh serve-dist)
//
// It serves files with the MIME types browsers insist on (application/wasm
// for WebAssembly streaming compilation, text/javascript for ES modules),
// redirects directories to their slash form (so www/'s `../pkg/` resolves)
// and `/` to `/www/` when the root has no index.html of its own.
//
// Compressed, as a static host should: a `.br` or `.gz` file beside the one
// asked for (./build.sh dist writes them) is sent when Accept-Encoding allows,
// else the file is compressed here (once per version of the file, kept in
// memory), always with `Vary: Accept-Encoding`. Every response carries the
// cross-origin isolation headers (COOP/COEP), so wasm threads can come later.
//
// Caching: the dev tree gets `Cache-Control: no-store`, so a rebuilt pkg/ is
// always picked up. With --dist (a folder made by ./build.sh dist) the
// content-hashed names are immutable and the rest (index.html, sw.js, the
// manifest) `no-cache`, as README's "Putting the page on a static host" says.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

export const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8', // wasm-bindgen's .d.ts files
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.mid': 'audio/midi',
  '.midi': 'audio/midi',
  '.xml': 'application/xml',
  '.musicxml': 'application/vnd.recordare.musicxml+xml',
  '.mxl': 'application/vnd.recordare.musicxml',
  '.bin': 'application/octet-stream',
  '.webmanifest': 'application/manifest+json',
  '.bundle': 'application/octet-stream',
  '.gz': 'application/gzip',
  '.br': 'application/octet-stream',
};

/** Cross-origin isolation (SharedArrayBuffer, so wasm threads), on every response. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** A content-hashed name as tools/dist.mjs writes it: `app.0123456789.js`. */
export const HASHED_NAME = /\.[0-9a-f]{10}\.[a-z0-9]+$/;

/** Worth compressing on the fly (images and .mxl are compressed already). */
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.webmanifest', '.wasm', '.svg', '.ts', '.txt', '.md', '.xml', '.musicxml', '.mid', '.midi', '.bundle']);

/** The encodings we send, best first, with the pre-compressed sibling's suffix. */
const ENCODINGS = [
  { name: 'br', suffix: '.br', compress: promisify(zlib.brotliCompress), options: { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } } },
  { name: 'gzip', suffix: '.gz', compress: promisify(zlib.gzip), options: { level: 6 } },
];

/** Whether an Accept-Encoding header allows `name` (q=0 refuses it). */
export function acceptsEncoding(header, name) {
  let star = false;
  for (const part of (header ?? '').toLowerCase().split(',')) {
    const [token, ...params] = part.trim().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const allowed = !q || Number(q.slice(2)) > 0;
    if (token === name) return allowed;
    if (token === '*') star = allowed;
  }
  return star;
}

/** The file's stat, or null when there is none. */
const statOrNull = (file) => stat(file).then((s) => (s.isFile() ? s : null), () => null);

/** Bodies compressed on the fly: file -> { key, bodies: { encoding: Buffer } }. */
const compressed = new Map();

/** `target` compressed with `encoding`, done once per version of the file (size and mtime). */
async function compressOnce(target, info, encoding) {
  const key = `${info.size}:${info.mtimeMs}`;
  let entry = compressed.get(target);
  if (entry?.key !== key) compressed.set(target, (entry = { key, bodies: {} }));
  entry.bodies[encoding.name] ??= readFile(target).then((bytes) => encoding.compress(bytes, encoding.options));
  return entry.bodies[encoding.name];
}

/**
 * How to send `target`: a pre-compressed sibling, a body compressed here, or
 * the file as it is. Resolves to { encoding, file, size } or { encoding, body }.
 */
async function chooseBody(target, info, acceptEncoding) {
  const accepted = ENCODINGS.filter((e) => acceptsEncoding(acceptEncoding, e.name));
  for (const encoding of accepted) {
    const sibling = await statOrNull(target + encoding.suffix);
    if (sibling && sibling.mtimeMs >= info.mtimeMs) return { encoding: encoding.name, file: target + encoding.suffix, size: sibling.size };
  }
  if (accepted.length > 0 && COMPRESSIBLE.has(path.extname(target).toLowerCase())) {
    const body = await compressOnce(target, info, accepted[0]);
    return { encoding: accepted[0].name, body, size: body.length };
  }
  return { encoding: null, file: target, size: info.size };
}

/** Cache-Control for a file: never stored (dev tree), or immutable when content-hashed (dist). */
function cacheControl(file, dist) {
  if (!dist) return 'no-store';
  return HASHED_NAME.test(path.basename(file)) ? 'public, max-age=31536000, immutable' : 'no-cache';
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...ISOLATION_HEADERS, ...headers });
  res.end(body);
}

/**
 * Serves `root` on `host:port` (port 0 picks a free one); `dist`: the root is
 * a folder made by ./build.sh dist (long-lived caching of hashed names).
 * Resolves to `{ server, url, close() }` once listening; `url` has no trailing slash.
 */
export async function startStaticServer(root, { host = '127.0.0.1', port = 0, log = false, dist = false } = {}) {
  const rootDir = path.resolve(root);
  const server = createServer(async (req, res) => {
    const started = Date.now();
    if (log) res.on('finish', () => console.log(`${res.statusCode} ${req.method} ${req.url} (${Date.now() - started} ms)`));
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'Method Not Allowed\n', { Allow: 'GET, HEAD' });

    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      return send(res, 400, 'Bad Request\n');
    }
    if (pathname === '/' && !(await statOrNull(path.join(rootDir, 'index.html')))) {
      return send(res, 302, 'See /www/\n', { Location: '/www/' });
    }

    const file = path.join(rootDir, pathname);
    if (file !== rootDir && !file.startsWith(rootDir + path.sep)) return send(res, 403, 'Forbidden\n');

    try {
      let target = file;
      let info = await stat(target);
      if (info.isDirectory()) {
        if (!pathname.endsWith('/')) return send(res, 301, 'Moved\n', { Location: `${pathname}/` });
        target = path.join(target, 'index.html');
        info = await stat(target);
      }
      if (!info.isFile()) return send(res, 404, 'Not Found\n');
      const body = await chooseBody(target, info, req.headers['accept-encoding']);
      res.writeHead(200, {
        'Content-Type': MIME_TYPES[path.extname(target).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': body.size,
        'Cache-Control': cacheControl(target, dist),
        Vary: 'Accept-Encoding',
        ...(body.encoding ? { 'Content-Encoding': body.encoding } : {}),
        ...ISOLATION_HEADERS,
      });
      if (req.method === 'HEAD') return res.end();
      if (body.body) return res.end(body.body);
      createReadStream(body.file).on('error', () => res.destroy()).pipe(res);
    } catch {
      send(res, 404, 'Not Found\n');
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const { port: actual } = server.address();
  const url = `http://${host === '127.0.0.1' || host === '::1' ? 'localhost' : host}:${actual}`;
  // closeAllConnections: a browser's idle keep-alive sockets would hold close() up.
  const close = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
  return { server, url, close };
}

// Command-line use: serve until interrupted.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = opt('root', path.resolve(here, '../..'));
  const host = opt('host', '127.0.0.1');
  const port = Number(opt('port', process.env.PORT ?? 8000));
  const dist = args.includes('--dist');
  try {
    const { url } = await startStaticServer(root, { host, port, log: true, dist });
    console.log(`Serving ${root} at ${url}/${dist ? ' (a dist folder: hashed names cached as immutable)' : ''}`);
    console.log(`Open ${url}/${dist ? '' : 'www/'} (Ctrl-C to stop)`);
  } catch (err) {
    console.error(`static-server: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
}
