//! The JavaScript face of the library (wasm32 only). Thin: it converts
//! between JS values and the library's types and calls the same functions
//! the command line uses. Every failure comes back as a JS `Error` with a
//! readable message (never a trap), so the page can show it and carry on.
//!
//! Notes cross the boundary on the step grid ([`StepNote`]: `{pitch, start,
//! end}` in sixteenth-note steps), because that is what the page draws and
//! edits.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::bundle::{self, BundleMetadata};
use crate::encoding::{self, DECODE_VELOCITY};
use crate::export::{self, Format};
use crate::generate::{self, Backend, Engine, GenerateOptions, Net, Primer, PrimerNotes, Session};
use crate::step_grid::{self, StepNote};

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

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Starts burn's wgpu runtime on the browser's WebGPU (once per page; later
/// calls return at once). Rejects with the reason when the browser has no
/// WebGPU or no adapter, so the page can stay on the CPU and say why.
/// Only in the WebGPU package (`--features webgpu`), which the page loads
/// after its first notes.
#[cfg(feature = "webgpu")]
#[wasm_bindgen(js_name = initWebGpu)]
pub async fn init_webgpu() -> Result<(), JsValue> {
    let has_gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|nav| js_sys::Reflect::get(&nav, &"gpu".into()))
        .is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null());
    if !has_gpu {
        return Err(JsError::new("this browser has no WebGPU (navigator.gpu is missing)").into());
    }
    generate::device::start_webgpu().await.map_err(|e| js_error(e).into())
}

/// Panics: a wasm trap on purpose, for the browser test of the page's
/// recovery (a fresh instance of the module, the model loaded again).
#[wasm_bindgen(js_name = trapForTests)]
pub fn trap_for_tests() {
    panic!("a trap the tests asked for");
}

/// The library version, so the page can show which build it runs.
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_string()
}

/// Whether a file's name marks it as music we read (MIDI or MusicXML).
#[wasm_bindgen(js_name = isMusicFileName)]
pub fn is_music_file_name(file_name: &str) -> bool {
    crate::music_file::is_music_file_name(file_name)
}

/// Reads a MIDI or MusicXML file (by its name's extension) and returns the
/// polyphonic event sequences it yields, in the text form of `polyphony events`.
#[wasm_bindgen(js_name = eventsText)]
pub fn events_text(file_name: &str, bytes: &[u8]) -> Result<String, JsError> {
    let seq = crate::music_file::read_music_bytes(file_name, bytes).map_err(|e| JsError::new(&format!("{file_name}: {e}")))?;
    crate::pipeline::events_report(&seq, 0, false).map_err(|e| JsError::new(&format!("{file_name}: {e}")))
}

/// A primer as the page edits it: notes, length in steps, and the tempo a
/// file sets.
#[derive(Serialize)]
struct PrimerJs {
    notes: Vec<StepNote>,
    steps: usize,
    qpm: Option<f64>,
}

impl From<PrimerNotes> for PrimerJs {
    fn from(p: PrimerNotes) -> Self {
        PrimerJs { notes: p.notes, steps: p.steps, qpm: p.qpm }
    }
}

/// Any primer the command line takes (`{"Melody": [60, -2, ...]}`,
/// `{"Pitches": [67, 64, 60]}`) as step-grid notes, read by the library's
/// rules.
#[wasm_bindgen(js_name = primerNotes)]
pub fn primer_notes(primer: JsValue) -> Result<JsValue, JsError> {
    let primer: Primer = from_js(primer, "primer")?;
    to_js(&PrimerJs::from(generate::primer_notes(&primer).map_err(js_error)?))
}

/// Reads a music file (MIDI, MusicXML or compressed MusicXML, by its name's
/// extension) as a primer, as `--primer_midi` does: quantized to sixteenths,
/// with the file's tempo.
#[wasm_bindgen(js_name = primerFromFile)]
pub fn primer_from_file(file_name: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
    let fail = |e: &dyn std::fmt::Display| JsError::new(&format!("{file_name}: {e}"));
    let seq = crate::music_file::read_music_bytes(file_name, bytes).map_err(|e| fail(&e))?;
    to_js(&PrimerJs::from(generate::primer_notes(&Primer::Sequence(seq)).map_err(|e| fail(&e))?))
}

/// Writes step-grid notes at `qpm` as the CLI writes outputs, in `format`:
/// "midi" (a named track per voice), "musicxml" (a part per voice),
/// "closed-score" (two staves, for reading), "mxl", "midi-single"; `title`
/// names the work.
#[wasm_bindgen(js_name = notesToFile)]
pub fn notes_to_file(notes: JsValue, qpm: f64, format: &str, title: &str) -> Result<Vec<u8>, JsError> {
    let notes: Vec<StepNote> = from_js(notes, "notes")?;
    generate::request::check_qpm(qpm).map_err(js_error)?;
    let format = Format::parse(format).map_err(|e| JsError::new(&e))?;
    Ok(export::write(&step_grid::to_sequence(&notes, qpm, DECODE_VELOCITY, 0), format, title))
}

/// Each note's voice (0 Soprano, 1 Alto, 2 Tenor, 3 Bass, 4 and up more), as
/// every writer assigns them.
#[wasm_bindgen(js_name = voicesOf)]
pub fn voices_of(notes: JsValue) -> Result<Vec<u32>, JsError> {
    let notes: Vec<StepNote> = from_js(notes, "notes")?;
    Ok(crate::voices::assign(&notes).into_iter().map(|v| v as u32).collect())
}

/// Whether notes make a single line (a melody to harmonize).
#[wasm_bindgen(js_name = isMelody)]
pub fn is_melody(notes: JsValue) -> Result<bool, JsError> {
    let notes: Vec<StepNote> = from_js(notes, "notes")?;
    Ok(!notes.is_empty() && step_grid::is_single_line(&notes))
}

/// A loaded, checked model bundle and its networks. Loading checks
/// everything (format, checksum, shapes, values), so the page can try a
/// dropped file and keep its old model when this throws.
#[wasm_bindgen]
pub struct Model {
    engine: Engine,
}

/// What the page shows about a model: the bundle's metadata plus the
/// figures a reader wants without adding them up (parameter count).
#[derive(Serialize)]
struct ModelCard<'a> {
    #[serde(flatten)]
    metadata: &'a BundleMetadata,
    parameters: usize,
}

fn backend_named(name: Option<String>) -> Result<Backend, JsError> {
    name.as_deref().unwrap_or("cpu").parse().map_err(js_error)
}

#[wasm_bindgen]
impl Model {
    /// Loads a bundle from its bytes; throws with the reason when it is not a
    /// usable polyphony bundle.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, JsError> {
        Ok(Model { engine: Engine::new(bundle::from_bytes(bytes).map_err(js_error)?) })
    }

    /// Imports the original's `.mag` bundle from its bytes (converted here,
    /// no server); throws naming what is wrong (another generator, a
    /// damaged file, a layer that cannot be mapped).
    #[wasm_bindgen(js_name = fromMag)]
    pub fn from_mag(bytes: &[u8], file_name: &str) -> Result<Model, JsError> {
        let created = String::from(js_sys::Date::new_0().to_iso_string());
        let bundle = crate::magenta::import_mag(bytes, file_name, &created).map_err(js_error)?;
        Ok(Model { engine: Engine::new(bundle) })
    }

    /// Uploads the weights to the WebGPU device ([`init_webgpu`] first), so
    /// that `"webgpu"` becomes a backend of this model (WebGPU package only).
    #[cfg(feature = "webgpu")]
    #[wasm_bindgen(js_name = useWebGpu)]
    pub fn use_webgpu(&mut self) -> Result<(), JsError> {
        self.engine.put_on_gpu().map_err(js_error)
    }

    /// Starts a generation on `backend` ("cpu", the default, or "webgpu")
    /// with the CLI's options (`GenerateOptions`, snake case; missing fields
    /// take the original's defaults) and a primer of step-grid notes,
    /// `primer_steps` long (0: up to its last note's end). The page drives it
    /// with [`Generation::advance`] so it can draw and cancel between slices.
    pub fn generate(&self, options: JsValue, primer: JsValue, primer_steps: usize, backend: Option<String>) -> Result<Generation, JsError> {
        let mut options: GenerateOptions = from_js(options, "generation options")?;
        options.primer = Primer::Steps { notes: from_js(primer, "primer notes")?, steps: primer_steps };
        let (session, net) = self.engine.start(backend_named(backend)?, &options).map_err(js_error)?;
        Ok(Generation { session: Rc::new(RefCell::new(Some(session))), net: Rc::new(RefCell::new(Some(net))) })
    }

    /// Starts a live harmonization on the CPU with the CLI's options (see
    /// [`Model::generate`]; it always harmonizes).
    pub fn live(&self, options: JsValue) -> Result<LiveHarmony, JsError> {
        let options: GenerateOptions = from_js(options, "generation options")?;
        Ok(LiveHarmony { live: Some(generate::Live::new(&self.engine, &options).map_err(js_error)?) })
    }

    /// Runs `steps` model steps on `backend` for a fresh batch of `batch`
    /// rows with fixed inputs and resolves to the steps run, for the page's
    /// timing of backends. On WebGPU each step samples on the device and
    /// reads the choices back, as a generation does.
    #[wasm_bindgen(js_name = runSteps)]
    pub fn run_steps(&self, backend: &str, batch: usize, steps: usize) -> Result<js_sys::Promise, JsError> {
        if batch == 0 {
            return Err(JsError::new("batch must be at least 1"));
        }
        crate::limits::check("batch", batch, crate::limits::MAX_BATCH_ROWS).map_err(js_error)?;
        let mut net = self.engine.net(backend_named(Some(backend.to_string()))?, batch).map_err(js_error)?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            for step in 0..steps {
                if let Some(read) = net.time_step(step % encoding::NUM_CLASSES) {
                    read.read().await.map_err(js_error)?;
                }
            }
            Ok(JsValue::from(steps as u32))
        }))
    }

    /// The model card: description, training data, hparams, metrics, ...
    pub fn card(&self) -> Result<JsValue, JsError> {
        let bundle = self.engine.bundle();
        let parameters = bundle.weights().tensors().iter().map(|t| t.data.len()).sum();
        to_js(&ModelCard { metadata: &bundle.metadata, parameters })
    }

    /// [`crate::bundle::Bundle::identity`], which share links carry: a pass
    /// over every weight, so the page asks for it only when a link is made
    /// or opened, not on its way to the first note.
    pub fn identity(&self) -> String {
        self.engine.bundle().identity()
    }
}

/// A generation in progress: the library's [`Session`] and its own network,
/// advanced a slice at a time so the page stays responsive. Both live
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
    /// Each note's voice ([`voices_of`]).
    voices: Vec<usize>,
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

/// One model step of the session in `slot` on `net`: the device's answer,
/// if any, is awaited with no borrow held.
async fn advance_once(net: &mut Net, slot: &RefCell<Option<Session>>) -> Result<(), JsError> {
    let finished = || JsError::new("this generation has finished");
    let read = {
        let mut session = slot.borrow_mut();
        net.start_step(session.as_mut().ok_or_else(finished)?).map_err(js_error)?
    };
    if let Some(read) = read {
        let data = read.read().await.map_err(js_error)?;
        let mut session = slot.borrow_mut();
        net.finish_step(session.as_mut().ok_or_else(finished)?, data).map_err(js_error)?;
    }
    Ok(())
}

#[wasm_bindgen]
impl Generation {
    /// Runs up to `model_steps` steps of the network; resolves to true when
    /// the generation has finished. One advance at a time.
    pub fn advance(&self, model_steps: usize) -> js_sys::Promise {
        let (session, net_slot) = (self.session.clone(), self.net.clone());
        let done = move |s: &RefCell<Option<Session>>| s.borrow().as_ref().is_none_or(Session::is_done);
        wasm_bindgen_futures::future_to_promise(async move {
            let mut net = net_slot.borrow_mut().take().ok_or_else(|| JsError::new("this generation is already advancing"))?;
            let mut result = Ok(());
            for _ in 0..model_steps {
                if done(&session) {
                    break;
                }
                result = advance_once(&mut net, &session).await;
                if result.is_err() {
                    break;
                }
            }
            *net_slot.borrow_mut() = Some(net);
            result?;
            Ok(JsValue::from_bool(done(&session)))
        })
    }

    /// `{done, fraction, model_steps}`.
    pub fn progress(&self) -> Result<JsValue, JsError> {
        let progress = match &*self.session.borrow() {
            Some(s) => {
                let done = s.is_done();
                Progress { done, fraction: if done { 1.0 } else { s.progress() }, model_steps: s.model_steps() }
            }
            None => Progress { done: true, fraction: 1.0, model_steps: 0 },
        };
        to_js(&progress)
    }

    /// The notes output `index` has so far, for drawing while generating:
    /// the model stream of the first row of its group. With beam search
    /// that is not necessarily the row [`Session::finish`] will pick, only
    /// one of its candidates; the finished outputs replace these notes.
    #[wasm_bindgen(js_name = partialNotes)]
    pub fn partial_notes(&self, index: usize) -> Result<JsValue, JsError> {
        let session = self.session.borrow();
        let session = session.as_ref().ok_or_else(|| JsError::new("this generation has finished"))?;
        let row = index * session.rows_per_output();
        if row >= session.batch() {
            return Err(JsError::new(&format!("no output {index}")));
        }
        to_js(&session.row_notes(row))
    }

    /// The outputs, once [`Generation::advance`] has said it is done: notes,
    /// steps, log-likelihood and the MIDI file (as the CLI writes it).
    pub fn finish(&self) -> Result<JsValue, JsError> {
        if self.session.borrow().as_ref().is_some_and(|s| !s.is_done()) {
            return Err(JsError::new("the generation has not finished"));
        }
        let session = self.session.borrow_mut().take().ok_or_else(|| JsError::new("this generation has finished"))?;
        let outputs: Vec<OutputJs> = session.finish().into_iter().map(OutputJs::of).collect();
        to_js(&outputs)
    }
}

impl OutputJs {
    fn of(o: generate::Output) -> OutputJs {
        let (notes, _) = encoding::decode_steps(&o.events);
        OutputJs {
            voices: crate::voices::assign(&notes),
            notes,
            steps: encoding::num_steps(&o.events),
            log_likelihood: o.log_likelihood,
            midi: export::write(&o.sequence, Format::Midi, ""),
        }
    }
}

/// A live harmonization ([`generate::Live`]): the page gives each
/// sixteenth's melody as it is played and sounds the harmony that comes
/// back; Stop makes the take a result.
#[wasm_bindgen]
pub struct LiveHarmony {
    live: Option<generate::Live>,
}

/// One step's other voices, as the page sounds them.
#[derive(Serialize)]
struct HarmonyJs {
    sounding: Vec<u8>,
    struck: Vec<u8>,
}

#[wasm_bindgen]
impl LiveHarmony {
    /// Writes the next step: the melody's `pitch` (-1 for a rest), `struck`
    /// anew or held; returns the other voices of the step, `{sounding, struck}`.
    pub fn step(&mut self, pitch: i32, struck: bool) -> Result<JsValue, JsError> {
        let live = self.live.as_mut().ok_or_else(|| JsError::new("this live harmonization has finished"))?;
        let pitch = match pitch {
            -1 => None,
            p => Some(u8::try_from(p).ok().filter(|p| *p <= 127).ok_or_else(|| JsError::new(&format!("pitch {p} is outside the MIDI range 0-127")))?),
        };
        let harmony = live.step(pitch, struck).map_err(js_error)?;
        to_js(&HarmonyJs { sounding: harmony.sounding, struck: harmony.struck })
    }

    /// Steps written so far.
    pub fn steps(&self) -> usize {
        self.live.as_ref().map_or(0, generate::Live::steps)
    }

    /// The take as an output, like a generation's (notes, voices, MIDI).
    pub fn finish(&mut self) -> Result<JsValue, JsError> {
        let live = self.live.take().ok_or_else(|| JsError::new("this live harmonization has finished"))?;
        to_js(&OutputJs::of(live.finish()))
    }
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
