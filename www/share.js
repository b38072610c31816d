// Share links: a generation request (primer, options with its seed, mode)
// and the identity of the model that ran it, in the address's fragment, so
// nothing is sent to a server. Opened on the same model the page runs the
// request again on the CPU path, which gives the same notes; made with
// another model, the page says so and offers to run it on the loaded one.

/** The fragment's key: `#share=<base64url of JSON>`. */
const KEY = 'share';
/** Bumped when the payload's shape changes. */
const VERSION = 1;

const toBase64Url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const fromBase64Url = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

/**
 * The link for `request` ({options, primer, primerSteps}, the page's own
 * request object) written by `model` ({identity, name}) on `backend`.
 */
export function shareLink(request, model, backend, base = location.href) {
  const payload = { v: VERSION, model: model.identity, model_name: model.name, backend, ...request };
  const url = new URL(base);
  url.hash = `${KEY}=${toBase64Url(new TextEncoder().encode(JSON.stringify(payload)))}`;
  return url.href;
}

/**
 * The shared request in `hash` (location.hash), or null when there is none;
 * throws an Error saying what is wrong with a damaged link.
 */
export function readShared(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const text = params.get(KEY);
  if (text == null) return null;
  let payload;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromBase64Url(text)));
  } catch {
    throw new Error('the link is damaged (its data is not readable); ask for it again');
  }
  if (payload?.v !== VERSION) throw new Error(`the link is of another version (${payload?.v}); this page reads version ${VERSION}`);
  const { options, primer, primerSteps } = payload;
  if (typeof options !== 'object' || !Array.isArray(primer) || !Number.isInteger(primerSteps)) {
    throw new Error('the link is damaged (no request in it)');
  }
  return {
    model: String(payload.model ?? ''),
    modelName: String(payload.model_name ?? 'another model'),
    backend: String(payload.backend ?? 'cpu'),
    request: { options, primer, primerSteps },
  };
}

/** Copies `text`; false where the browser will not (the page then shows it to copy by hand). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
