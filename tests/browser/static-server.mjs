// A small static file server for the repository root, used by the browser
// tests and by `./build.sh serve`. Node's http module only; no dependencies.
//
//   node tests/browser/static-server.mjs [--root DIR] [--host 127.0.0.1] [--port 8000]
//
// It serves files with the MIME types browsers insist on (application/wasm
// for WebAssembly streaming compilation, text/javascript for ES modules),
// sends `Cache-Control: no-store` so a rebuilt pkg/ is always picked up,
// redirects directories to their slash form (so www/'s `../pkg/` resolves)
// and `/` to `/www/`.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
};

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

/**
 * Serves `root` on `host:port` (port 0 picks a free one).
 * Resolves to `{ server, url, close() }` once listening; `url` has no trailing slash.
 */
export async function startStaticServer(root, { host = '127.0.0.1', port = 0, log = false } = {}) {
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
    if (pathname === '/') return send(res, 302, 'See /www/\n', { Location: '/www/' });

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
      res.writeHead(200, {
        'Content-Type': MIME_TYPES[path.extname(target).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': info.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(target).on('error', () => res.destroy()).pipe(res);
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
  return { server, url, close: () => new Promise((resolve) => server.close(resolve)) };
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
  try {
    const { url } = await startStaticServer(root, { host, port, log: true });
    console.log(`Serving ${root} at ${url}/`);
    console.log(`Open ${url}/www/ (Ctrl-C to stop)`);
  } catch (err) {
    console.error(`static-server: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
}
