// Polyphony page: loads the wasm package (wasm-bindgen `--target web` output in
// ../pkg/, built by `./build.sh wasm`) and reports its state.
//
// For tests and tooling: `window.polyphonyReady` becomes true once the module
// is loaded; on failure `window.polyphonyError` holds the message.

const statusLine = document.getElementById('status');

function showStatus(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

async function main() {
  // A dynamic import, so a missing or broken pkg/ is reported on the page.
  const { default: init, version } = await import('../pkg/polyphony.js');
  await init();
  showStatus(`Polyphony v${version()} — wasm module loaded`, 'ready');
  window.polyphonyReady = true;
}

main().catch((err) => {
  const message = err instanceof Error ? err.message : String(err);
  showStatus(`Could not load the wasm module: ${message}`, 'error');
  window.polyphonyError = message;
});
