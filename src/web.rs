//! The JavaScript face of the library (wasm32 only). Thin: it converts
//! between JS values and the library's types and calls the same functions the
//! command line uses.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The library version, so the page can show which build it runs.
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_string()
}

/// Reads a MIDI or MusicXML file (by its name's extension) and returns the
/// polyphonic event sequences it yields, in the text form of `polyphony events`.
#[wasm_bindgen(js_name = eventsText)]
pub fn events_text(file_name: &str, bytes: &[u8]) -> Result<String, JsError> {
    let seq = crate::music_file::read_music_bytes(file_name, bytes)
        .map_err(|e| JsError::new(&format!("{file_name}: {e}")))?;
    Ok(crate::pipeline::events_report(&seq, 0, false).map_err(|e| JsError::new(&format!("{file_name}: {e}")))?)
}
