//! Generation: one generator for `polyphony generate` and the browser.
//!
//! Given a model, a primer and [`GenerateOptions`], it returns event streams
//! and note sequences. All outputs (and, with beam search, all their beams
//! and branches) run as one batch through the model: each model step feeds
//! one event per row and reads back one `[rows, 259]` block of logits.
//!
//! The loop is a [`Session`] that asks for a model step and is fed its
//! logits, so that a driver may await the model between steps (the browser
//! cannot read a GPU synchronously); [`generate`] is the synchronous driver
//! over any [`StepModel`]. Two models: [`FusedLstm`] (plain Rust, the fast
//! one, natively and in wasm) and burn's [`Model`] on any device
//! ([`BurnStep`]), which samples on its device and feeds the session its
//! choices ([`Session::feed_choices`]) instead of logits.
//!
//! Behaviour follows the original's `PolyphonyRnnSequenceGenerator`:
//! - the primer becomes a polyphonic event stream (pitches: one chord a
//!   quarter note long; melody: one value a step, -2 hold, -1 off; MIDI: the
//!   file quantized at 4 steps a quarter, its tempo replacing qpm);
//! - with `condition_on_primer` the model reads the primer first and goes on
//!   from it; without, it starts from START alone and its output follows the
//!   primer;
//! - with `inject_primer_during_generation`, at each new step `k` of the
//!   model's stream the primer's events of step `k - s` are put into the
//!   stream (s = primer steps when conditioning, else 0), and the model
//!   fills in the rest of the step;
//! - END does not stop generation; every output is cut or padded to exactly
//!   `num_steps` steps (primer included);
//! - beam search: each output keeps `beam_size` beams, extends each
//!   `branch_factor` ways every `steps_per_iteration` model steps, and keeps
//!   the most likely by total log-probability (of the temperature-scaled
//!   softmax, as the original), then returns the best.
//!
//! Deliberate differences: the original starts generating one step after
//! the primer's end (its `quantize_cutoff=0` rounds an exact step count up,
//! leaving a silent sixteenth after every primer); here generation starts
//! right at the primer's end. The original asked the model for ~5 events a
//! step and threw the surplus away; here each row stops when it has its
//! steps, and beams are compared on exactly the events kept. A melody primer
//! with injection works (the original crashed with an IndexError).
//! `primer_in_output = false` leaves the primer's steps out of the output.
//! `mask_ignored_events` (on by default) samples only events that decoding
//! keeps: the original sampled all 259 classes, and a model that continues
//! a pitch that is not sounding (often a semitone off the one that is)
//! loses that voice when decoding drops the event; masked, the probability
//! goes to the events it may take, and the texture keeps its voices.

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::encoding::{self, Event, NUM_CLASSES};
use crate::fused::FusedLstm;
use crate::note_sequence::{DEFAULT_QPM, Note, NoteSequence};
use crate::pipeline::STEPS_PER_QUARTER;
use crate::rng::Rng;

/// A generation request's primer, at most one kind (the original's
/// `--primer_pitches`, `--primer_melody`, `--primer_midi`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Primer {
    /// No primer: generation starts from START (an empty sequence).
    #[default]
    None,
    /// One chord a quarter note long, e.g. `[67, 64, 60]`.
    Pitches(Vec<i32>),
    /// Melody values, one a step: -2 hold, -1 note off, 0..=127 note on.
    Melody(Vec<i32>),
    /// A piece (read from a MIDI file): quantized at 4 steps a quarter; its
    /// first tempo replaces `qpm`.
    Sequence(NoteSequence),
    /// Polyphonic events (as `encoding` writes them); a trailing END is
    /// ignored.
    Events(#[serde(with = "event_classes")] Vec<Event>),
}

/// Everything a generation request says, with the original's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateOptions {
    pub num_outputs: usize,
    /// Total length in sixteenth steps, primer included.
    pub num_steps: usize,
    pub primer: Primer,
    pub condition_on_primer: bool,
    pub inject_primer_during_generation: bool,
    /// Whether outputs begin with the primer's steps (the original always did).
    pub primer_in_output: bool,
    pub qpm: f64,
    pub temperature: f64,
    pub beam_size: usize,
    pub branch_factor: usize,
    pub steps_per_iteration: usize,
    /// Samples only events that decoding keeps ([`Session::allowed`]).
    /// The original sampled from all 259 and decoding dropped the
    /// CONTINUED_NOTEs of pitches not sounding, which thinned the texture;
    /// false samples as it did.
    pub mask_ignored_events: bool,
    /// Same seed, same inputs: same outputs. `None`: from the clock.
    pub seed: Option<u64>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            num_outputs: 10,
            num_steps: 128,
            primer: Primer::None,
            condition_on_primer: false,
            inject_primer_during_generation: true,
            primer_in_output: true,
            qpm: DEFAULT_QPM,
            temperature: 1.0,
            beam_size: 1,
            branch_factor: 1,
            steps_per_iteration: 1,
            mask_ignored_events: true,
            seed: None,
        }
    }
}

/// One generated piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// START, `num_steps` steps (fewer by the primer's without it), END.
    #[serde(with = "event_classes")]
    pub events: Vec<Event>,
    /// The events decoded at the request's tempo (the MIDI file's, for a
    /// MIDI primer).
    pub sequence: NoteSequence,
    /// Total log-probability of the generated events under the
    /// temperature-scaled softmax.
    pub log_likelihood: f64,
}

/// Events as their class indices (0..259) in serialized form.
mod event_classes {
    use super::Event;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(events: &[Event], s: S) -> Result<S::Ok, S::Error> {
        events.iter().map(|e| e.class()).collect::<Vec<usize>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
        Vec::<usize>::deserialize(d)?
            .into_iter()
            .map(|c| Event::from_class(c).ok_or_else(|| serde::de::Error::custom(format!("event class {c} is outside 0-258"))))
            .collect()
    }
}

/// Why a request cannot be served: one line for the user.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct GenerateError(pub String);

fn bad(message: impl Into<String>) -> GenerateError {
    GenerateError(message.into())
}

/// A primer (pitches or melody) written as a Python list, as the original's
/// flags take it: `"[60, -2, 60]"`, also `(60, 64)` or `60, 64`; a trailing
/// comma is allowed.
pub fn parse_python_list(text: &str) -> Result<Vec<i32>, GenerateError> {
    let t = text.trim();
    let inner = if (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')) {
        &t[1..t.len() - 1]
    } else {
        t
    };
    let mut items: Vec<&str> = inner.split(',').map(str::trim).collect();
    if items.last() == Some(&"") {
        items.pop();
    }
    if items.len() == 1 && items[0].is_empty() {
        items.clear();
    }
    items
        .iter()
        .map(|s| {
            s.replace('_', "")
                .parse::<i32>()
                .ok()
                .filter(|_| !s.is_empty() && !s.starts_with('_') && !s.ends_with('_'))
                .ok_or_else(|| bad(format!("{text:?} is not a list of integers like \"[60, 64, 67]\" ({s:?} is not an integer)")))
        })
        .collect()
}

/// The primer as a polyphonic event stream of exactly its steps: START then
/// the steps (no END), its number of steps, and the qpm it sets (MIDI).
pub fn primer_events(primer: &Primer) -> Result<(Vec<Event>, usize, Option<f64>), GenerateError> {
    let check_pitch = |p: i32, what: &str| -> Result<u8, GenerateError> {
        u8::try_from(p)
            .ok()
            .filter(|p| *p <= 127)
            .ok_or_else(|| bad(format!("{what}: pitch {p} is outside the MIDI range 0-127")))
    };
    // (pitch, start step, end step)
    let (notes, steps, qpm): (Vec<(u8, usize, usize)>, usize, Option<f64>) = match primer {
        Primer::None => (Vec::new(), 0, None),
        Primer::Pitches(pitches) => {
            if pitches.is_empty() {
                return Err(bad("primer_pitches is empty: give at least one pitch, e.g. \"[67, 64, 60]\""));
            }
            let steps = STEPS_PER_QUARTER as usize;
            let notes = pitches.iter().map(|&p| Ok((check_pitch(p, "primer_pitches")?, 0, steps))).collect::<Result<_, _>>()?;
            (notes, steps, None)
        }
        Primer::Melody(values) => {
            if values.is_empty() {
                return Err(bad("primer_melody is empty: give melody values, e.g. \"[60, -2, 60, -2]\""));
            }
            let mut notes = Vec::new();
            let mut current: Option<(u8, usize)> = None;
            for (step, &v) in values.iter().enumerate() {
                match v {
                    -2 => {}
                    -1 => {
                        if let Some((p, s)) = current.take() {
                            notes.push((p, s, step));
                        }
                    }
                    v if v < -2 => {
                        return Err(bad(format!(
                            "primer_melody: {v} is not a melody value (-2 = hold, -1 = note off, 0-127 = note on)"
                        )));
                    }
                    v => {
                        let p = check_pitch(v, "primer_melody")?;
                        if let Some((q, s)) = current.take() {
                            notes.push((q, s, step));
                        }
                        current = Some((p, step));
                    }
                }
            }
            if let Some((p, s)) = current {
                notes.push((p, s, values.len()));
            }
            // The original's primer ends with its last note.
            let steps = notes.iter().map(|n| n.2).max().unwrap_or(0);
            (notes, steps, None)
        }
        Primer::Sequence(seq) => {
            let qpm = seq.tempos.first().map(|t| t.qpm).filter(|q| *q > 0.0 && q.is_finite());
            let quantized = crate::pipeline::quantize(seq, STEPS_PER_QUARTER)
                .map_err(|d| bad(format!("primer_midi cannot be used as a primer: {d}")))?;
            let mut notes = Vec::new();
            for n in quantized.notes.iter().filter(|n| !n.is_drum) {
                let p = check_pitch(n.pitch, "primer_midi")?;
                notes.push((p, n.quantized_start_step.max(0) as usize, n.quantized_end_step.max(0) as usize));
            }
            let steps = notes.iter().map(|n| n.2).max().unwrap_or(0);
            (notes, steps, qpm)
        }
        Primer::Events(events) => {
            if let Some(p) = events.iter().find_map(|e| match *e {
                Event::NewNote(p) | Event::ContinuedNote(p) if p > 127 => Some(p),
                _ => None,
            }) {
                return Err(bad(format!("primer events: pitch {p} is outside the MIDI range 0-127")));
            }
            let mut events: Vec<Event> = events.clone();
            if events.first() != Some(&Event::Start) {
                events.insert(0, Event::Start);
            }
            while events.last() == Some(&Event::End) {
                events.pop();
            }
            // A partial last step counts as a step.
            if events.last().is_some_and(|e| *e != Event::StepEnd && *e != Event::Start) {
                events.push(Event::StepEnd);
            }
            let steps = encoding::num_steps(&events);
            return Ok((events, steps, None));
        }
    };
    let mut seq = NoteSequence { total_quantized_steps: steps as i64, steps_per_quarter: Some(STEPS_PER_QUARTER), ..NoteSequence::default() };
    for (p, s, e) in notes {
        let mut note = Note::new(p as i32, 100, 0.0, 0.0);
        note.quantized_start_step = s as i64;
        note.quantized_end_step = e as i64;
        seq.notes.push(note);
    }
    let mut events = encoding::encode(&seq);
    encoding::set_length(&mut events, steps);
    events.pop(); // END
    Ok((events, steps, qpm))
}

/// The events of each step of a stream that starts with START: `steps[k]`
/// holds step k's events without its STEP_END.
fn step_events(events: &[Event]) -> Vec<Vec<Event>> {
    let mut steps = vec![Vec::new()];
    for &e in events.iter().skip_while(|e| **e == Event::Start) {
        match e {
            Event::StepEnd => steps.push(Vec::new()),
            Event::Start | Event::End => {}
            e => steps.last_mut().expect("one").push(e),
        }
    }
    steps.pop(); // the unfinished step after the last STEP_END
    steps
}

/// Drops CONTINUED_NOTE events that continue nothing (decoding ignores
/// them), so that a stream reads back from its MIDI file unchanged.
pub fn drop_orphan_continuations(events: &[Event]) -> Vec<Event> {
    let mut sounding = Sounding::default();
    events.iter().copied().filter(|&e| sounding.accept(e)).collect()
}

/// What a CONTINUED_NOTE may continue, read event by event as decoding
/// reads a stream: the pitches sounding at the end of the last step that
/// this step has not continued yet (a multiset: two voices on one pitch may
/// both go on).
#[derive(Clone, Debug, Default)]
struct Sounding {
    previous: Vec<u8>,
    current: Vec<u8>,
}

impl Sounding {
    /// Takes the stream's next event; false (and no change) for a
    /// CONTINUED_NOTE that continues nothing.
    fn accept(&mut self, e: Event) -> bool {
        match e {
            Event::NewNote(p) => self.current.push(p),
            Event::ContinuedNote(p) => match self.previous.iter().position(|&q| q == p) {
                Some(i) => {
                    self.previous.swap_remove(i);
                    self.current.push(p);
                }
                None => return false,
            },
            Event::StepEnd => self.previous = std::mem::take(&mut self.current),
            Event::Start | Event::End => {}
        }
        true
    }

    /// Marks in `allowed` (259 wide) the events that decoding keeps if they
    /// come next: STEP_END, any NEW_NOTE, a CONTINUED_NOTE of a pitch still
    /// to be continued; not START or END, which it ignores mid-stream.
    fn allowed(&self, allowed: &mut [bool]) {
        allowed.fill(false);
        allowed[Event::StepEnd.class()] = true;
        for p in 0..=127 {
            allowed[Event::NewNote(p).class()] = true;
        }
        for &p in &self.previous {
            allowed[Event::ContinuedNote(p).class()] = true;
        }
    }
}

/// A model that advances a batch of sequences by one event.
pub trait StepModel {
    /// All-zero state for `batch` sequences.
    fn reset(&mut self, batch: usize);
    /// One input class per sequence; `[batch, 259]` logits, row-major.
    fn step(&mut self, inputs: &[usize]) -> Vec<f32>;
    /// New row `i` takes old row `rows[i]`'s state (beam search).
    fn select_rows(&mut self, rows: &[usize]);
}

impl StepModel for FusedLstm {
    fn reset(&mut self, batch: usize) {
        FusedLstm::reset(self, batch);
    }
    fn step(&mut self, inputs: &[usize]) -> Vec<f32> {
        let mut logits = Vec::with_capacity(inputs.len() * NUM_CLASSES);
        self.step_into(inputs, &mut logits);
        logits
    }
    fn select_rows(&mut self, rows: &[usize]) {
        FusedLstm::select_rows(self, rows);
    }
}

/// Burn's [`Model`] on any device (the CPU backend, or a GPU through wgpu
/// natively and WebGPU in the browser).
///
/// Two ways to step it: [`BurnStep::sample`] keeps everything on the device
/// and yields only each row's chosen class and its log-probability (what
/// generation on a GPU uses, see [`generate_on_device`]); the [`StepModel`]
/// impl reads all the logits back (natively), for comparisons and benchmarks.
///
/// [`Model`]: crate::model::Model
pub struct BurnStep {
    pub model: crate::model::Model,
    state: Option<crate::model::State>,
}

impl BurnStep {
    pub fn new(model: crate::model::Model) -> BurnStep {
        BurnStep { model, state: None }
    }

    /// One step's logits, `[batch, 259]`, left on the device.
    fn logits(&mut self, inputs: &[usize]) -> burn::tensor::Tensor<2> {
        let x = self.int_column(inputs.iter().map(|&c| c as i64));
        let state = self.state.take().expect("reset first");
        let (logits, state) = self.model.forward(x, state, None);
        self.state = Some(state);
        logits.reshape([inputs.len(), NUM_CLASSES])
    }

    /// A `[n, 1]` integer tensor on the model's device.
    fn int_column(&self, values: impl Iterator<Item = i64>) -> burn::tensor::Tensor<2, burn::tensor::Int> {
        use burn::tensor::{Tensor, TensorData};
        let values: Vec<i64> = values.collect();
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n, 1]), &self.model.device())
    }

    /// One step with the next event chosen on the device: the `forced`
    /// class where there is one ([`Session::forced`]), else a sample from the
    /// softmax at `temperature` over the `allowed` classes (`[batch, 259]`,
    /// [`Session::allowed`]; Gumbel-max: the argmax of the scaled logits
    /// plus `-ln(-ln U)` noise is exactly such a sample). Returns `[batch, 2]`
    /// (class, log-probability) to read back and give to [`choices`].
    pub fn sample(&mut self, inputs: &[usize], forced: &[Option<usize>], allowed: &[bool], temperature: f64) -> burn::tensor::Tensor<2> {
        use burn::tensor::activation::log_softmax;
        use burn::tensor::{Bool, Distribution, Tensor, TensorData};
        let allowed = Tensor::<2, Bool>::from_data(TensorData::new(allowed.to_vec(), [inputs.len(), NUM_CLASSES]), &self.model.device());
        // Finite, so that no inf - inf can turn into NaN.
        let scaled = (self.logits(inputs) * (1.0 / temperature) as f32).mask_fill(allowed.bool_not(), -1.0e30);
        // U in (0, 1), both ends excluded, so the noise stays finite.
        let u = burn::tensor::Tensor::<2>::random(scaled.shape(), Distribution::Uniform(1e-7, 1.0 - 1e-7), &self.model.device());
        let gumbel = u.log().neg().log().neg();
        let sampled = (scaled.clone() + gumbel).argmax(1);
        let forced = self.int_column(forced.iter().map(|f| f.map_or(-1, |c| c as i64)));
        let chosen = forced.clone().mask_where(forced.lower_elem(0), sampled);
        let log_prob = log_softmax(scaled, 1).gather(1, chosen.clone());
        burn::tensor::Tensor::cat(vec![chosen.float(), log_prob], 1)
    }

    /// [`BurnStep::sample`] for the session's next step; `None` when it is done.
    pub fn sample_next(&mut self, session: &Session) -> Option<burn::tensor::Tensor<2>> {
        let inputs = session.inputs()?;
        Some(self.sample(inputs, &session.forced(), &session.allowed(), session.temperature()))
    }

    /// Gives the session the read-back data of [`BurnStep::sample_next`] and
    /// reorders the state when the session asks (beam search).
    pub fn feed_back(&mut self, session: &mut Session, data: burn::tensor::TensorData) -> Result<(), GenerateError> {
        if let Some(rows) = session.feed_choices(&choices(data)?) {
            self.select_rows(&rows);
        }
        Ok(())
    }

    pub fn reset(&mut self, batch: usize) {
        self.state = Some(self.model.zero_state(batch));
    }

    /// New row `i` takes old row `rows[i]`'s state (beam search).
    pub fn select_rows(&mut self, rows: &[usize]) {
        use burn::tensor::{Tensor, TensorData};
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(idx, [rows.len()]), &self.model.device());
        let state = self.state.take().expect("reset first");
        self.state = Some(state.select_rows(idx));
    }
}

/// The rows' choices from the data of a [`BurnStep::sample`] result.
pub fn choices(data: burn::tensor::TensorData) -> Result<Vec<Choice>, GenerateError> {
    let values = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| bad(format!("reading the device's choices: {e:?}")))?;
    Ok(values
        .chunks_exact(2)
        .map(|pair| Choice { class: (pair[0] as usize).min(NUM_CLASSES - 1), log_prob: pair[1] as f64 })
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
impl StepModel for BurnStep {
    fn reset(&mut self, batch: usize) {
        BurnStep::reset(self, batch);
    }
    fn step(&mut self, inputs: &[usize]) -> Vec<f32> {
        self.logits(inputs).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 logits")
    }
    fn select_rows(&mut self, rows: &[usize]) {
        BurnStep::select_rows(self, rows);
    }
}

/// Runs a request on burn's model with sampling on its device: per model
/// step, only the chosen classes and their log-probabilities come back
/// (synchronously; the browser awaits the same reads).
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_on_device(model: &mut BurnStep, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    let mut session = Session::new(options)?;
    model.model.device().seed(session.seed());
    model.reset(session.batch());
    while let Some(chosen) = model.sample_next(&session) {
        let data = chosen.try_into_data().map_err(|e| bad(format!("reading the device: {e:?}")))?;
        model.feed_back(&mut session, data)?;
    }
    Ok(session.finish())
}

/// One row of the batch: a beam (or branch) of one output.
#[derive(Clone, Debug)]
struct Row {
    /// The model's stream: primer (when conditioning) or START, then what
    /// was generated or injected.
    events: Vec<Event>,
    /// Events already fed to the model.
    fed: usize,
    steps: usize,
    score: f64,
    /// What the events fed so far leave to continue.
    sounding: Sounding,
}

/// A row's next event as the model chose it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub class: usize,
    /// Its log-probability under the temperature-scaled softmax.
    pub log_prob: f64,
}

impl Choice {
    /// For rows whose choice is not read (finished, or reading the primer).
    const UNUSED: Choice = Choice { class: 0, log_prob: 0.0 };
}

/// Samples a row's next event from its logits over the `allowed` classes
/// (or takes the forced one) and scores it: softmax at temperature
/// `1 / inv_t` in f64, one draw of `rng` per sampled event.
fn host_choice(logits: &[f32], allowed: &[bool], inv_t: f32, forced: Option<usize>, probs: &mut [f64], rng: &mut Rng) -> Choice {
    let scaled = |(&x, &a): (&f32, &bool)| if a { x * inv_t } else { f32::NEG_INFINITY };
    let max = logits.iter().zip(allowed).map(scaled).fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut sum = 0.0f64;
    for (p, x) in probs.iter_mut().zip(logits.iter().zip(allowed).map(scaled)) {
        *p = (x as f64 - max).exp();
        sum += *p;
    }
    let class = forced.unwrap_or_else(|| {
        let mut u = rng.next_f64() * sum;
        for (c, &p) in probs.iter().enumerate() {
            if u < p {
                return c;
            }
            u -= p;
        }
        NUM_CLASSES - 1
    });
    Choice { class, log_prob: (probs[class] / sum).ln() }
}

/// A generation in progress: ask [`Session::inputs`], run the model, give
/// the logits to [`Session::feed`], until `inputs` says `None`.
pub struct Session {
    options: GenerateOptions,
    qpm: f64,
    primer: Vec<Event>,
    primer_steps: usize,
    /// Primer events per step, for injection.
    inject: Option<Vec<Vec<Event>>>,
    /// Step of the model's stream where primer step 0 is injected.
    inject_offset: usize,
    /// Steps the model's stream must reach.
    target_steps: usize,
    /// Length of the model's stream before generation (not scored).
    start_len: usize,
    rows: Vec<Row>,
    /// Rows per output: beam_size · branch_factor.
    group: usize,
    model_steps: usize,
    seed: u64,
    rng: Rng,
    inputs: Vec<usize>,
}

impl Session {
    /// Checks the request and prepares the batch.
    pub fn new(options: &GenerateOptions) -> Result<Session, GenerateError> {
        let o = options;
        if o.num_outputs == 0 {
            return Err(bad("num_outputs must be at least 1"));
        }
        for (name, v) in [("beam_size", o.beam_size), ("branch_factor", o.branch_factor), ("steps_per_iteration", o.steps_per_iteration)] {
            if v == 0 {
                return Err(bad(format!("{name} must be at least 1")));
            }
        }
        if !(o.temperature > 0.0 && o.temperature.is_finite()) {
            return Err(bad(format!("temperature must be a positive number, got {}", o.temperature)));
        }
        if !(o.qpm > 0.0 && o.qpm.is_finite()) {
            return Err(bad(format!("qpm must be a positive number, got {}", o.qpm)));
        }
        let (primer, primer_steps, primer_qpm) = primer_events(&o.primer)?;
        if o.num_steps <= primer_steps {
            return Err(bad(format!(
                "num_steps ({}) must be longer than the primer ({primer_steps} steps)",
                o.num_steps
            )));
        }
        let qpm = primer_qpm.unwrap_or(o.qpm);
        let (start, target_steps, inject_offset) = if o.condition_on_primer {
            (primer.clone(), o.num_steps, primer_steps)
        } else {
            (vec![Event::Start], o.num_steps - primer_steps, 0)
        };
        let inject = (o.inject_primer_during_generation && primer_steps > 0).then(|| step_events(&primer));
        let group = o.beam_size * o.branch_factor;
        let start_len = start.len();
        let mut sounding = Sounding::default();
        sounding.accept(start[0]);
        let row = Row { steps: encoding::num_steps(&start), events: start, fed: 0, score: 0.0, sounding };
        let seed = o.seed.unwrap_or_else(clock_seed);
        let mut session = Session {
            options: o.clone(),
            qpm,
            primer,
            primer_steps,
            inject,
            inject_offset,
            target_steps,
            start_len,
            rows: vec![row; o.num_outputs * group],
            group,
            model_steps: 0,
            seed,
            rng: Rng::new(seed),
            inputs: Vec::new(),
        };
        for r in 0..session.rows.len() {
            session.inject_step(r);
        }
        session.set_inputs();
        Ok(session)
    }

    /// Rows in the batch (the model's batch size).
    pub fn batch(&self) -> usize {
        self.rows.len()
    }

    /// Model steps taken so far.
    pub fn model_steps(&self) -> usize {
        self.model_steps
    }

    /// Rows per output (beam_size · branch_factor); output `g` is decided
    /// among rows `g · rows_per_output ..`.
    pub fn rows_per_output(&self) -> usize {
        self.group
    }

    /// Steps each row's model stream must reach (num_steps, less the
    /// primer's when not conditioning).
    pub fn target_steps(&self) -> usize {
        self.target_steps
    }

    /// The primer's length in steps.
    pub fn primer_steps(&self) -> usize {
        self.primer_steps
    }

    /// The tempo of the outputs (the MIDI primer's, else the options').
    pub fn qpm(&self) -> f64 {
        self.qpm
    }

    /// Row `row`'s model stream so far: START (or the primer, when
    /// conditioning), then the generated and injected events. Beam search
    /// may replace rows at any [`Session::feed`].
    pub fn row_events(&self, row: usize) -> &[Event] {
        &self.rows[row].events
    }

    /// Steps row `row` has completed.
    pub fn row_steps(&self, row: usize) -> usize {
        self.rows[row].steps
    }

    /// Share of the work done, 0 to 1 (steps reached over steps wanted).
    pub fn progress(&self) -> f64 {
        let start = if self.options.condition_on_primer { self.primer_steps } else { 0 };
        let want = (self.target_steps - start) * self.rows.len();
        let have: usize = self.rows.iter().map(|r| r.steps.min(self.target_steps).saturating_sub(start)).sum();
        if want == 0 { 1.0 } else { have as f64 / want as f64 }
    }

    /// The next step's input classes, one per row; `None` when done.
    pub fn inputs(&self) -> Option<&[usize]> {
        if self.rows.iter().all(|r| self.row_done(r)) { None } else { Some(&self.inputs) }
    }

    fn row_done(&self, row: &Row) -> bool {
        row.steps >= self.target_steps
    }

    fn set_inputs(&mut self) {
        self.inputs.clear();
        for row in &self.rows {
            // A finished row is fed its last event again; its outputs are ignored.
            let e = row.events.get(row.fed).or(row.events.last()).expect("START at least");
            self.inputs.push(e.class());
        }
    }

    /// Puts the primer's events for the row's current step into its stream.
    fn inject_step(&mut self, r: usize) {
        let Some(inject) = &self.inject else { return };
        let step = self.rows[r].steps;
        if let Some(k) = step.checked_sub(self.inject_offset)
            && let Some(events) = inject.get(k)
        {
            self.rows[r].events.extend_from_slice(events);
        }
    }

    /// For each row, the class its next event must have: the primer's (while
    /// reading it) or an injected one; `None` where the model chooses (and
    /// for finished rows). A model that samples on its device takes these as
    /// given ([`BurnStep::sample`]).
    pub fn forced(&self) -> Vec<Option<usize>> {
        self.rows
            .iter()
            .map(|row| if self.row_done(row) { None } else { row.events.get(row.fed + 1).map(|e| e.class()) })
            .collect()
    }

    /// Which classes each row may sample, `[batch, 259]` row-major: with
    /// `mask_ignored_events`, where the model chooses, only events that
    /// decoding keeps (STEP_END, NEW_NOTE, CONTINUED_NOTE of a pitch
    /// sounding and not yet continued in this step); else all.
    pub fn allowed(&self) -> Vec<bool> {
        self.allowed_given(&self.forced())
    }

    /// [`Session::allowed`] with the rows' [`Session::forced`] classes at hand.
    fn allowed_given(&self, forced: &[Option<usize>]) -> Vec<bool> {
        let mut allowed = vec![true; self.rows.len() * NUM_CLASSES];
        if self.options.mask_ignored_events {
            for ((row, a), f) in self.rows.iter().zip(allowed.chunks_exact_mut(NUM_CLASSES)).zip(forced) {
                if f.is_none() && !self.row_done(row) {
                    row.sounding.allowed(a);
                }
            }
        }
        allowed
    }

    /// The temperature the outputs are sampled at.
    pub fn temperature(&self) -> f64 {
        self.options.temperature
    }

    /// The seed of the session's random numbers (the request's, or one from
    /// the clock), for a model that samples on its own device.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Takes the model's `[batch, 259]` logits for the current inputs and
    /// samples each row's next event here, on the host.
    /// Returns `Some(rows)` when the model's state must be reordered (beam
    /// search): new row `i` takes old row `rows[i]`.
    pub fn feed(&mut self, logits: &[f32]) -> Option<Vec<usize>> {
        assert_eq!(logits.len(), self.rows.len() * NUM_CLASSES, "one row of logits per sequence");
        let inv_t = (1.0 / self.options.temperature) as f32;
        let mut probs = vec![0.0f64; NUM_CLASSES];
        let forced = self.forced();
        let allowed = self.allowed_given(&forced);
        let choices: Vec<Choice> = (0..self.rows.len())
            .map(|r| {
                let row = &self.rows[r];
                let reading_primer = forced[r].is_some() && row.fed + 1 < self.start_len;
                if self.row_done(row) || reading_primer {
                    return Choice::UNUSED;
                }
                let span = r * NUM_CLASSES..(r + 1) * NUM_CLASSES;
                host_choice(&logits[span.clone()], &allowed[span], inv_t, forced[r], &mut probs, &mut self.rng)
            })
            .collect();
        self.feed_choices(&choices)
    }

    /// Takes each row's next event as chosen by the model (sampled, or the
    /// [`Session::forced`] class) with its log-probability; rows that are
    /// finished or still reading the primer ignore theirs. Returns what
    /// [`Session::feed`] returns.
    pub fn feed_choices(&mut self, choices: &[Choice]) -> Option<Vec<usize>> {
        assert_eq!(choices.len(), self.rows.len(), "one choice per sequence");
        for (r, choice) in choices.iter().enumerate() {
            if self.row_done(&self.rows[r]) {
                continue;
            }
            let row = &mut self.rows[r];
            row.fed += 1;
            let known = row.events.get(row.fed).copied();
            let event = match known {
                Some(e) => e, // the primer's or injected
                None => {
                    let e = Event::from_class(choice.class).expect("a model chooses one of 259 classes");
                    row.events.push(e);
                    e
                }
            };
            row.sounding.accept(event);
            if row.fed < self.start_len {
                continue; // still reading the primer
            }
            self.rows[r].score += choice.log_prob;
            if known.is_none() && event == Event::StepEnd {
                self.rows[r].steps += 1;
                self.inject_step(r);
            }
        }
        self.model_steps += 1;
        let reorder = if self.group > 1 && self.model_steps.is_multiple_of(self.options.steps_per_iteration) {
            Some(self.prune())
        } else {
            None
        };
        self.set_inputs();
        reorder
    }

    /// Keeps each output's `beam_size` best rows, each repeated
    /// `branch_factor` times (the next iteration's branches).
    fn prune(&mut self) -> Vec<usize> {
        let (beam, branch) = (self.options.beam_size, self.options.branch_factor);
        let mut order = Vec::with_capacity(self.rows.len());
        for g in 0..self.options.num_outputs {
            let mut idx: Vec<usize> = (g * self.group..(g + 1) * self.group).collect();
            idx.sort_by(|&a, &b| self.rows[b].score.total_cmp(&self.rows[a].score).then(a.cmp(&b)));
            for &i in idx.iter().take(beam) {
                order.extend(std::iter::repeat_n(i, branch));
            }
        }
        self.rows = order.iter().map(|&i| self.rows[i].clone()).collect();
        order
    }

    /// The outputs: each output's most likely row, shaped as asked.
    pub fn finish(self) -> Vec<Output> {
        let o = &self.options;
        (0..o.num_outputs)
            .map(|g| {
                let best = (g * self.group..(g + 1) * self.group)
                    .max_by(|&a, &b| self.rows[a].score.total_cmp(&self.rows[b].score).then(b.cmp(&a)))
                    .expect("rows in every group");
                let row = &self.rows[best];
                let mut events = if o.condition_on_primer {
                    row.events.clone()
                } else {
                    let mut e = self.primer.clone();
                    e.extend(row.events.iter().skip(1));
                    e
                };
                encoding::set_length(&mut events, o.num_steps);
                if !o.primer_in_output && self.primer_steps > 0 {
                    let cut = events
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| **e == Event::StepEnd)
                        .nth(self.primer_steps - 1)
                        .map_or(1, |(i, _)| i + 1);
                    events.splice(0..cut, [Event::Start]);
                }
                let events = drop_orphan_continuations(&events);
                let sequence = encoding::decode(&events, STEPS_PER_QUARTER, self.qpm);
                Output { events, sequence, log_likelihood: row.score }
            })
            .collect()
    }
}

fn clock_seed() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now().to_bits()
    }
}

/// Runs a whole request on `model` (synchronously).
pub fn generate(model: &mut dyn StepModel, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    let mut session = Session::new(options)?;
    model.reset(session.batch());
    while let Some(inputs) = session.inputs() {
        let logits = model.step(inputs);
        if let Some(rows) = session.feed(&logits) {
            model.select_rows(&rows);
        }
    }
    Ok(session.finish())
}

/// Runs a request with the fast CPU model of a bundle.
pub fn generate_with_bundle(bundle: &Bundle, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    let mut model = FusedLstm::from_bundle(bundle).map_err(|e| bad(format!("bad bundle: {e}")))?;
    generate(&mut model, options)
}

/// One row of `polyphony bench generate`.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub num_outputs: usize,
    pub num_steps: usize,
    pub seconds: f64,
    /// Model steps (one event for every row of the batch).
    pub model_steps: usize,
    /// Events through the model, all rows together.
    pub events: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl BenchRow {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.seconds
    }
    pub fn ms_per_model_step(&self) -> f64 {
        1000.0 * self.seconds / self.model_steps.max(1) as f64
    }
}

/// Times unprimed generation of `num_outputs × num_steps` for each size with
/// the fast CPU model (best of `repeats` after a warm-up).
#[cfg(not(target_arch = "wasm32"))]
pub fn bench(bundle: &Bundle, sizes: &[(usize, usize)], repeats: usize) -> Result<Vec<BenchRow>, GenerateError> {
    let mut model = FusedLstm::from_bundle(bundle).map_err(|e| bad(format!("bad bundle: {e}")))?;
    bench_model(&mut model, sizes, repeats)
}

/// [`bench`] with any step model (e.g. [`BurnStep`], for comparison).
#[cfg(not(target_arch = "wasm32"))]
pub fn bench_model(model: &mut dyn StepModel, sizes: &[(usize, usize)], repeats: usize) -> Result<Vec<BenchRow>, GenerateError> {
    let mut rows = Vec::new();
    for &(num_outputs, num_steps) in sizes {
        let options = GenerateOptions { num_outputs, num_steps, seed: Some(1), ..GenerateOptions::default() };
        let mut best: Option<BenchRow> = None;
        for _ in 0..repeats.max(1) + 1 {
            let start = std::time::Instant::now();
            let mut session = Session::new(&options)?;
            model.reset(session.batch());
            while let Some(inputs) = session.inputs() {
                let logits = model.step(inputs);
                if let Some(r) = session.feed(&logits) {
                    model.select_rows(&r);
                }
            }
            let (model_steps, batch) = (session.model_steps(), session.batch());
            let _ = session.finish();
            let row = BenchRow { num_outputs, num_steps, seconds: start.elapsed().as_secs_f64(), model_steps, events: model_steps * batch };
            if best.as_ref().is_none_or(|b| row.seconds < b.seconds) {
                best = Some(row);
            }
        }
        rows.push(best.expect("one run"));
    }
    Ok(rows)
}
