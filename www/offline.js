// Offline use: in a folder made by `./build.sh dist`, index.html names its
// build (<meta name="polyphony-build">, written by tools/dist.mjs) and the
// page registers the service worker (sw.js), which caches the page for
// offline use and swaps in a new deploy on the next visit.
//
// The dev tree (./build.sh serve, `Cache-Control: no-store`) has no build
// name and never runs under a service worker, so every reload shows the
// working tree; a worker left at the same origin by `./build.sh serve-dist`
// is unregistered, or it would answer for the dev tree's files.

const SW_URL = new URL('./sw.js', import.meta.url);

/** This build's name, or null in the dev tree. */
export const buildVersion = () => document.querySelector('meta[name="polyphony-build"]')?.content ?? null;

/**
 * Registers the service worker in a dist build, unregisters any in the dev
 * tree. Called once the page is ready, so the worker's downloads (mostly
 * answered by the HTTP cache) never slow the first notes. Never throws.
 */
export async function setUpOffline() {
  const version = buildVersion();
  window.polyphonyBuild = version ?? 'dev';
  if (!('serviceWorker' in navigator)) return;
  try {
    if (version) {
      const hadWorker = Boolean(navigator.serviceWorker.controller);
      const registration = await navigator.serviceWorker.register(SW_URL);
      // register() does not look for a new sw.js when one is installed, and
      // Chromium defers the check it makes on navigation: ask now, so a new
      // deploy is installed (and the old cache deleted) during this visit.
      if (hadWorker) await registration.update();
    } else {
      for (const registration of await navigator.serviceWorker.getRegistrations()) await registration.unregister();
    }
  } catch (err) {
    console.warn(`service worker: ${err instanceof Error ? err.message : err}`);
  }
}
