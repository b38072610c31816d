// Polyphony's service worker: after one visit the page works offline, and a
// new deploy replaces the old files on the next visit. Registered by
// offline.js only in a folder made by `./build.sh dist` (tools/dist.mjs),
// which fills in BUILD below: the build's version (a hash of every file) and
// its files, relative to this script. The dev tree keeps `version: 'dev'`
// and no files, and is never served through a worker (see offline.js).
//
// - install: caches the page, its JS, the CPU package, the model and the
//   score library (`precache`) in a cache named after the build;
// - activate: deletes the caches of other builds, takes over open pages;
// - fetch: a page load goes to the network first (so a new deploy shows at
//   once) and falls back to the cached page offline; the build's files
//   (content-hashed names, never changed in place) come from the cache, and
//   the WebGPU package (`lazy`, fetched only where WebGPU exists) is cached
//   the first time it is fetched. Anything else is left to the browser.

const BUILD = { version: 'dev', precache: [], lazy: [] };

const PREFIX = 'polyphony-';
const CACHE = `${PREFIX}${BUILD.version}`;
const url = (name) => new URL(name, self.location).href;
const FILES = new Set([...BUILD.precache, ...BUILD.lazy].map(url));
const PAGE = url('./');

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // The page has just loaded most of these: the HTTP cache (immutable
      // names) answers, so they are not downloaded twice.
      await cache.addAll(BUILD.precache);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  if (request.mode === 'navigate') event.respondWith(pageFirstFromNetwork(request));
  else {
    const file = withoutQuery(request.url);
    if (FILES.has(file)) event.respondWith(fromCache(request, file));
  }
});

/**
 * A build file's URL without its query: a restarted engine imports its glue
 * again as `…?instance=N` (a new module instance), which is the same file.
 */
function withoutQuery(url) {
  const u = new URL(url);
  u.search = '';
  return u.href;
}

/**
 * The network's page, else (offline) the page cached with this build. The
 * cached copy is never replaced by a newer page: that one may name files
 * this build's cache lacks.
 */
async function pageFirstFromNetwork(request) {
  try {
    return await fetch(request);
  } catch (err) {
    const cached = await caches.match(PAGE, { cacheName: CACHE });
    if (cached) return cached;
    throw err;
  }
}

/** Build file `file` (the request's URL without its query) from the cache, else from the network (and kept). */
async function fromCache(request, file) {
  const cache = await caches.open(CACHE);
  // ignoreVary: the server varies on Accept-Encoding, which the cache never needs to.
  const cached = await cache.match(file, { ignoreVary: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(file, response.clone());
  return response;
}
