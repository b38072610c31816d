//! The JavaScript face of the library (wasm32 only). Thin: it converts
//! between JS values and the library's types and calls the same functions the
//! command line uses. Every failure comes back as a JS `Error` with a readable
//! message (never a trap), so the page can show it and carry on.
//!
//! Notes cross the boundary on the step grid (`{pitch, start, end}`, in
//! sixteenth-note steps), because that is what the page draws and edits; the
//! library's seconds-based [`NoteSequence`] stays on this side.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::bundle::{self, Bundle, BundleMetadata};
use crate::note_sequence::{Note, NoteSequence, Tempo, TimeSignature};

/// The model's time grid: sixteenth notes.
const STEPS_PER_QUARTER: u32 = 4;
/// Velocity of notes the page writes (the decoder's, so files match the CLI's).
const VELOCITY: u8 = crate::encoding::DECODE_VELOCITY;

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

/// One note on the step grid, as the page sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepNote {
    pub pitch: i32,
    pub start: i64,
    pub end: i64,
}

/// A loaded, validated model bundle. Loading checks everything (format,
/// checksum, shapes), so the page can try a dropped file and keep its old
/// model when this throws.
#[wasm_bindgen]
pub struct Model {
    bundle: Bundle,
}

/// What the page shows about a model: the bundle's metadata plus the
/// figures a reader wants without adding them up (parameter count).
#[derive(Serialize)]
struct ModelCard<'a> {
    #[serde(flatten)]
    metadata: &'a BundleMetadata,
    parameters: usize,
    backend: &'static str,
}

#[wasm_bindgen]
impl Model {
    /// Loads a bundle from its bytes; throws with the reason when it is not a
    /// usable polyphony bundle.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, JsError> {
        let bundle = bundle::from_bytes(bytes).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Model { bundle })
    }

    /// The model card: description, training data, hparams, metrics, ...
    pub fn card(&self) -> Result<JsValue, JsError> {
        let card = ModelCard {
            metadata: &self.bundle.metadata,
            parameters: self.bundle.tensors.iter().map(|t| t.data.len()).sum(),
            backend: "CPU (wasm)",
        };
        to_js(&card)
    }
}

/// Writes step-grid notes as a Standard MIDI File at `qpm`, exactly as the
/// CLI writes decoded events (unisons on separate channels).
#[wasm_bindgen(js_name = notesToMidi)]
pub fn notes_to_midi(notes: JsValue, qpm: f64) -> Result<Vec<u8>, JsError> {
    let notes: Vec<StepNote> = from_js(notes, "notes")?;
    if !(qpm.is_finite() && qpm > 0.0) {
        return Err(JsError::new(&format!("tempo must be a positive number of quarters per minute, got {qpm}")));
    }
    let mut seq = sequence_from_steps(&notes, qpm);
    crate::midi::separate_unisons(&mut seq);
    Ok(crate::midi::write_midi(&seq))
}

/// Reads a MIDI file as a primer: quantized to sixteenths as the training
/// pipeline does, returned as step-grid notes.
#[wasm_bindgen(js_name = primerFromMidi)]
pub fn primer_from_midi(file_name: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
    let fail = |e: &dyn std::fmt::Display| JsError::new(&format!("{file_name}: {e}"));
    let seq = crate::midi::read_midi(bytes).map_err(|e| fail(&e))?;
    let quantized = crate::pipeline::quantize(&seq, STEPS_PER_QUARTER).map_err(|e| fail(&e))?;
    to_js(&steps_from_sequence(&quantized))
}

/// A quantized sequence of step-grid notes at `qpm`.
pub(crate) fn sequence_from_steps(notes: &[StepNote], qpm: f64) -> NoteSequence {
    let seconds_per_step = 60.0 / qpm / STEPS_PER_QUARTER as f64;
    let notes: Vec<Note> = notes
        .iter()
        .map(|n| {
            let mut note = Note::new(n.pitch, VELOCITY, n.start as f64 * seconds_per_step, n.end as f64 * seconds_per_step);
            note.quantized_start_step = n.start;
            note.quantized_end_step = n.end;
            note
        })
        .collect();
    let total_steps = notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0);
    NoteSequence {
        total_time: total_steps as f64 * seconds_per_step,
        notes,
        tempos: vec![Tempo { time: 0.0, qpm }],
        time_signatures: vec![TimeSignature { time: 0.0, numerator: 4, denominator: 4 }],
        steps_per_quarter: Some(STEPS_PER_QUARTER),
        total_quantized_steps: total_steps,
        ..NoteSequence::default()
    }
}

/// The step-grid notes of a quantized sequence, drums left out (the model
/// knows only pitched notes).
pub(crate) fn steps_from_sequence(seq: &NoteSequence) -> Vec<StepNote> {
    seq.notes
        .iter()
        .filter(|n| !n.is_drum && (0..=127).contains(&n.pitch))
        .map(|n| StepNote { pitch: n.pitch, start: n.quantized_start_step, end: n.quantized_end_step })
        .collect()
}

/// Plain JS objects (maps as objects, not `Map`s), so the page can read
/// fields directly and `JSON.stringify` them.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("could not pass a value to JavaScript: {e}")))
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("bad {what}: {e}")))
}
