// Remembers the primer and the generation options across reloads
// (localStorage). Anything unreadable is ignored: a fresh page beats a broken one.

const KEY = 'polyphony.page.v1';

export function loadState() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return value && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

export function saveState(state) {
  try {
    localStorage.setItem(KEY, JSON.stringify(state));
  } catch {
    // Storage full or disabled: the page still works, it just forgets.
  }
}
