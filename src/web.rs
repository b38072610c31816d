//! The JavaScript face of the library (wasm32 only). Thin: it converts
//! between JS values and the library's types and calls the same functions the
//! command line uses. Every failure comes back as a JS `Error` with a readable
//! message (never a trap), so the page can show it and carry on.
//!
//! Notes cross the boundary on the step grid (`{pitch, start, end}`, in
//! sixteenth-note steps), because that is what the page draws and edits; the
//! library's seconds-based [`NoteSequence`] stays on this side.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::bundle::{self, Bundle, BundleMetadata};
use crate::encoding;
use crate::fused::FusedLstm;
use crate::generate::{BurnStep, GenerateOptions, Primer, Session};
use crate::note_sequence::{Note, NoteSequence, Tempo, TimeSignature};
use crate::pipeline::STEPS_PER_QUARTER;

/// Velocity of notes the page writes (the decoder's, so files match the CLI's).
const VELOCITY: u8 = crate::encoding::DECODE_VELOCITY;

unsafe extern "C" {
    /// The module's static constructors, made by wasm-ld (burn's GPU
    /// compiler registers its operations through the `inventory` crate).
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
pub fn start() {
    // Run the constructors once, here, when the module starts. Without an
    // explicit call wasm-ld links the module as a "command" and wraps every
    // export in a call to them: each call from JavaScript then re-ran them
    // all (~0.5 ms, and a generation's drawing of partial notes went from
    // milliseconds to seconds). build.sh refuses a package with those wrappers.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
    // cubecl reports WGSL compilation and device errors only through `log`.
    let _ = console_log::init_with_level(log::Level::Warn);
}

thread_local! {
    /// The WebGPU device: burn's wgpu runtime starts once per page.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, once [`init_webgpu`] has started it.
fn webgpu() -> Option<Device> {
    WEBGPU.with(|d| d.borrow().clone())
}

/// Starts burn's wgpu runtime on the browser's WebGPU (once per page; later
/// calls return at once). Rejects with the reason when the browser has no
/// WebGPU or no adapter, so the page can stay on the CPU and say why.
#[wasm_bindgen(js_name = initWebGpu)]
pub async fn init_webgpu() -> Result<(), JsValue> {
    if webgpu().is_some() {
        return Ok(());
    }
    let has_gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|nav| js_sys::Reflect::get(&nav, &"gpu".into()))
        .is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null());
    if !has_gpu {
        return Err(JsError::new("this browser has no WebGPU (navigator.gpu is missing)").into());
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device));
    Ok(())
}

/// A network ready to step: the CPU one, or the WebGPU one with its device
/// sampling ([`BurnStep::sample`]).
enum Net {
    Cpu { net: FusedLstm, logits: Vec<f32> },
    WebGpu(BurnStep),
}

impl Net {
    fn reset(&mut self, batch: usize) {
        match self {
            Net::Cpu { net, .. } => net.reset(batch),
            Net::WebGpu(step) => step.reset(batch),
        }
    }

    /// One model step of `session` (CPU: logits here, sampled by the
    /// session; WebGPU: sampled there, only the choices read back).
    async fn advance(&mut self, session: &RefCell<Option<Session>>) -> Result<(), JsError> {
        let finished = || JsError::new("this generation has finished");
        match self {
            Net::Cpu { net, logits } => {
                let mut session = session.borrow_mut();
                let session = session.as_mut().ok_or_else(finished)?;
                let Some(inputs) = session.inputs() else { return Ok(()) };
                net.step_into(inputs, logits);
                if let Some(rows) = session.feed(logits) {
                    net.select_rows(&rows);
                }
                Ok(())
            }
            Net::WebGpu(step) => {
                let chosen = {
                    let session = session.borrow();
                    let Some(chosen) = step.sample_next(session.as_ref().ok_or_else(finished)?) else { return Ok(()) };
                    chosen
                };
                let data = chosen.into_data_async().await.map_err(|e| JsError::new(&format!("WebGPU failed: {e:?}")))?;
                let mut session = session.borrow_mut();
                step.feed_back(session.as_mut().ok_or_else(finished)?, data).map_err(|e| JsError::new(&e.to_string()))
            }
        }
    }
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
    /// The fast CPU network, built once from the bundle's host values (no
    /// device reads, which wasm could not do synchronously).
    cpu: FusedLstm,
    /// burn's model on WebGPU, once [`Model::use_webgpu`] has uploaded it.
    webgpu: Option<crate::model::Model>,
}

/// What the page shows about a model: the bundle's metadata plus the
/// figures a reader wants without adding them up (parameter count).
#[derive(Serialize)]
struct ModelCard<'a> {
    #[serde(flatten)]
    metadata: &'a BundleMetadata,
    parameters: usize,
}

#[wasm_bindgen]
impl Model {
    /// Loads a bundle from its bytes; throws with the reason when it is not a
    /// usable polyphony bundle.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, JsError> {
        let bundle = bundle::from_bytes(bytes).map_err(|e| JsError::new(&e.to_string()))?;
        let cpu = FusedLstm::from_bundle(&bundle).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Model { bundle, cpu, webgpu: None })
    }

    /// Uploads the weights to the WebGPU device ([`init_webgpu`] first), so
    /// that `"webgpu"` becomes a backend of this model.
    #[wasm_bindgen(js_name = useWebGpu)]
    pub fn use_webgpu(&mut self) -> Result<(), JsError> {
        let device = webgpu().ok_or_else(|| JsError::new("WebGPU has not been started (initWebGpu)"))?;
        let model = crate::model::Model::from_bundle(&self.bundle, &device).map_err(|e| JsError::new(&e.to_string()))?;
        self.webgpu = Some(model);
        Ok(())
    }

    /// A fresh network on `backend` ("cpu" or "webgpu") for `batch` rows.
    fn net(&self, backend: &str, batch: usize) -> Result<Net, JsError> {
        let mut net = match backend {
            "cpu" => Net::Cpu { net: self.cpu.clone(), logits: Vec::new() },
            "webgpu" => {
                let model = self.webgpu.clone().ok_or_else(|| JsError::new("this model is not on WebGPU (useWebGpu)"))?;
                Net::WebGpu(BurnStep::new(model))
            }
            _ => return Err(JsError::new(&format!("unknown backend {backend:?} (expected \"cpu\" or \"webgpu\")"))),
        };
        net.reset(batch);
        Ok(net)
    }

    /// Starts a generation on `backend` ("cpu", the default, or "webgpu") with the CLI's
    /// options (`GenerateOptions`, snake case; missing fields take the
    /// original's defaults) and a primer of step-grid notes, `primer_steps`
    /// long (0: up to its last note's end). The page drives it with
    /// [`Generation::advance`] so it can draw and cancel between slices.
    pub fn generate(&self, options: JsValue, primer: JsValue, primer_steps: usize, backend: Option<String>) -> Result<Generation, JsError> {
        let mut options: GenerateOptions = from_js(options, "generation options")?;
        let notes: Vec<StepNote> = from_js(primer, "primer notes")?;
        options.primer = primer_of(&notes, primer_steps, options.qpm)?;
        let session = Session::new(&options).map_err(|e| JsError::new(&e.to_string()))?;
        let net = self.net(backend.as_deref().unwrap_or("cpu"), session.batch())?;
        if let Net::WebGpu(step) = &net {
            step.model.device().seed(session.seed());
        }
        Ok(Generation { session: Rc::new(RefCell::new(Some(session))), net: Rc::new(RefCell::new(Some(net))) })
    }

    /// Runs `steps` model steps on `backend` for a fresh batch of `batch`
    /// rows with fixed inputs (class `step % 259` in every row) and resolves
    /// to the steps run, for the page's timing of backends. On WebGPU each
    /// step samples on the device and reads the choices back, as a
    /// generation does.
    #[wasm_bindgen(js_name = runSteps)]
    pub fn run_steps(&self, backend: &str, batch: usize, steps: usize) -> Result<js_sys::Promise, JsError> {
        if batch == 0 {
            return Err(JsError::new("batch must be at least 1"));
        }
        let mut net = self.net(backend, batch)?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut inputs = vec![0; batch];
            let forced = vec![None; batch];
            let allowed = vec![true; batch * encoding::NUM_CLASSES];
            for step in 0..steps {
                inputs.fill(step % encoding::NUM_CLASSES);
                match &mut net {
                    Net::Cpu { net, logits } => net.step_into(&inputs, logits),
                    Net::WebGpu(gpu) => {
                        gpu.sample(&inputs, &forced, &allowed, 1.0)
                            .into_data_async()
                            .await
                            .map_err(|e| JsError::new(&format!("WebGPU failed: {e:?}")))?;
                    }
                }
            }
            Ok(JsValue::from(steps as u32))
        }))
    }

    /// The model card: description, training data, hparams, metrics, ...
    pub fn card(&self) -> Result<JsValue, JsError> {
        let card = ModelCard {
            metadata: &self.bundle.metadata,
            parameters: self.bundle.tensors.iter().map(|t| t.data.len()).sum(),
        };
        to_js(&card)
    }
}

/// The primer for the generator: the page's notes as an event stream of
/// `steps` steps (at least up to the last note's end), or none.
fn primer_of(notes: &[StepNote], steps: usize, qpm: f64) -> Result<Primer, JsError> {
    if let Some(n) = notes.iter().find(|n| !(0..=127).contains(&n.pitch) || n.start < 0 || n.end <= n.start) {
        return Err(JsError::new(&format!("bad primer note: pitch {} from step {} to {}", n.pitch, n.start, n.end)));
    }
    if notes.is_empty() && steps == 0 {
        return Ok(Primer::None);
    }
    let mut seq = sequence_from_steps(notes, if qpm > 0.0 && qpm.is_finite() { qpm } else { 120.0 });
    seq.total_quantized_steps = seq.total_quantized_steps.max(steps as i64);
    Ok(Primer::Events(encoding::encode(&seq)))
}

/// A generation in progress: the library's [`Session`] and its own network,
/// advanced a slice at a time so the page stays responsive. Everything it
/// reports (progress, partial notes) comes from the session's own
/// accessors; nothing of the generator's logic is repeated here. Both live
/// behind `Rc<RefCell>` because [`Generation::advance`] runs on after it
/// returns its promise (WebGPU reads are awaited); no borrow is held across
/// an await, so the page may ask for progress meanwhile.
#[wasm_bindgen]
pub struct Generation {
    session: Rc<RefCell<Option<Session>>>,
    /// `None` while an `advance` is running.
    net: Rc<RefCell<Option<Net>>>,
}

/// How far a generation is, for the progress bar.
#[derive(Serialize)]
struct Progress {
    done: bool,
    fraction: f64,
    model_steps: usize,
}

/// One finished output, as the page uses it.
#[derive(Serialize)]
struct OutputJs {
    notes: Vec<StepNote>,
    steps: usize,
    log_likelihood: f64,
    #[serde(with = "serde_bytes_js")]
    midi: Vec<u8>,
}

/// MIDI bytes as a `Uint8Array`, not an array of numbers.
mod serde_bytes_js {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }
}

#[wasm_bindgen]
impl Generation {
    /// Runs up to `model_steps` steps of the network; resolves to true when
    /// the generation has finished. One advance at a time.
    pub fn advance(&self, model_steps: usize) -> js_sys::Promise {
        let (session, net_slot) = (self.session.clone(), self.net.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let mut net = net_slot.borrow_mut().take().ok_or_else(|| JsError::new("this generation is already advancing"))?;
            let mut result = Ok(());
            for _ in 0..model_steps {
                if session.borrow().as_ref().is_none_or(|s| s.inputs().is_none()) {
                    break;
                }
                result = net.advance(&session).await;
                if result.is_err() {
                    break;
                }
            }
            *net_slot.borrow_mut() = Some(net);
            result?;
            Ok(JsValue::from_bool(session.borrow().as_ref().is_none_or(|s| s.inputs().is_none())))
        })
    }

    /// `{done, fraction, model_steps}`.
    pub fn progress(&self) -> Result<JsValue, JsError> {
        let progress = match &*self.session.borrow() {
            Some(s) => {
                let done = s.inputs().is_none();
                Progress { done, fraction: if done { 1.0 } else { s.progress() }, model_steps: s.model_steps() }
            }
            None => Progress { done: true, fraction: 1.0, model_steps: 0 },
        };
        to_js(&progress)
    }

    /// The notes output `index` has so far, for drawing while generating:
    /// the model stream of the first row of its group. With beam search
    /// that is not necessarily the row [`Session::finish`] will pick (the
    /// session does not expose row scores), only one of its candidates; the
    /// finished outputs replace these notes.
    #[wasm_bindgen(js_name = partialNotes)]
    pub fn partial_notes(&self, index: usize) -> Result<JsValue, JsError> {
        let session = self.session.borrow();
        let session = session.as_ref().ok_or_else(|| JsError::new("this generation has finished"))?;
        let row = index * session.rows_per_output();
        if row >= session.batch() {
            return Err(JsError::new(&format!("no output {index}")));
        }
        let seq = encoding::decode(session.row_events(row), STEPS_PER_QUARTER, session.qpm());
        to_js(&decoded_steps(&seq)?)
    }

    /// The outputs, once [`Generation::advance`] has said it is done: notes,
    /// steps, log-likelihood and the MIDI file (as the CLI writes it).
    pub fn finish(&self) -> Result<JsValue, JsError> {
        if self.session.borrow().as_ref().is_some_and(|s| s.inputs().is_some()) {
            return Err(JsError::new("the generation has not finished"));
        }
        let session = self.session.borrow_mut().take().ok_or_else(|| JsError::new("this generation has finished"))?;
        let outputs = session
            .finish()
            .into_iter()
            .map(|o| {
                let mut seq = o.sequence;
                let notes = decoded_steps(&seq)?;
                crate::midi::separate_unisons(&mut seq);
                Ok(OutputJs {
                    notes,
                    steps: encoding::num_steps(&o.events),
                    log_likelihood: o.log_likelihood,
                    midi: crate::midi::write_midi(&seq),
                })
            })
            .collect::<Result<Vec<_>, JsError>>()?;
        to_js(&outputs)
    }
}

/// Step-grid notes of a decoded (seconds-based) sequence, quantized as the
/// pipeline does (exact here: decoded times lie on the grid).
fn decoded_steps(seq: &NoteSequence) -> Result<Vec<StepNote>, JsError> {
    let quantized = crate::pipeline::quantize(seq, STEPS_PER_QUARTER).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(steps_from_sequence(&quantized))
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

/// Reads a music file (MIDI, MusicXML or compressed MusicXML, by its name's
/// extension) as a primer: quantized to sixteenths as the training pipeline
/// does, returned as step-grid notes.
#[wasm_bindgen(js_name = primerFromFile)]
pub fn primer_from_file(file_name: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
    let fail = |e: &dyn std::fmt::Display| JsError::new(&format!("{file_name}: {e}"));
    let seq = crate::music_file::read_music_bytes(file_name, bytes).map_err(|e| fail(&e))?;
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
/// fields directly; bytes become a `Uint8Array`.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
        .map_err(|e| JsError::new(&format!("could not pass a value to JavaScript: {e}")))
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("bad {what}: {e}")))
}
