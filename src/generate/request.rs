//! What a generation request says: the primer, the options, and why a
//! request may be refused. The command line, the page and the tests build
//! the same [`GenerateOptions`]; every check of a request happens here, in
//! [`GenerateOptions::check`], with one message per fault.

use serde::{Deserialize, Serialize};

use crate::encoding::Event;
use crate::key::Key;
use crate::limits::{self, LimitError};
use crate::note_sequence::{DEFAULT_QPM, NoteSequence};
use crate::step_grid::StepNote;

/// A generation request's primer, at most one kind (the original's
/// `--primer_pitches`, `--primer_melody`, `--primer_midi`, plus the page's
/// notes and raw events).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Primer {
    /// No primer: generation starts from START (an empty sequence).
    #[default]
    None,
    /// One chord a quarter note long, e.g. `[67, 64, 60]`.
    Pitches(Vec<i32>),
    /// Melody values, one a step: -2 hold, -1 note off, 0..=127 note on.
    Melody(Vec<i32>),
    /// A piece (read from a MIDI or MusicXML file): quantized at 4 steps a
    /// quarter; its first tempo replaces `qpm`.
    Sequence(NoteSequence),
    /// Notes on the step grid (the page's primer), `steps` long at least
    /// (0: up to the last note's end).
    Steps { notes: Vec<StepNote>, steps: usize },
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
    /// Samples only events that decoding keeps (see [`super::rules`]).
    /// The original sampled from all 259 and decoding dropped the
    /// CONTINUED_NOTEs of pitches not sounding, which thinned the texture;
    /// false samples as it did (and turns off `descending` and
    /// `max_voices`, which belong to the same grammar).
    pub mask_ignored_events: bool,
    /// Within a step pitches descend, as in every training example.
    pub descending: bool,
    /// At most this many voices sound in a step (`None`: the bundle's own
    /// number of voices, if it says; else no limit).
    pub max_voices: Option<usize>,
    /// A NEW_NOTE outside the key's scale is this many times less likely
    /// (1: no key prior). The key is `key`, else the primer's.
    pub key_prior: f64,
    /// Strict four-part writing: no parallel fifths or octaves, voices in
    /// their ranges, no more than an octave between soprano and alto or
    /// alto and tenor ([`super::rules`]).
    pub part_writing: bool,
    /// Nucleus sampling: only the most likely classes whose probabilities
    /// add up to this are sampled (1: all of them).
    pub top_p: f64,
    /// Harmonize the primer's melody: the output is the melody (its top
    /// line) with the other voices written under it, step for step,
    /// `num_steps` long (0: the melody's length); nothing is prepended.
    pub harmonize: bool,
    /// Harmonizing: the line kept is the primer's top line, as the soprano
    /// (false), or its bottom line, as the bass, with the voices written
    /// above it (true).
    pub harmonize_bass: bool,
    /// Harmonizing: the primer's first this many steps are kept as they
    /// are, every voice (the model reads them), and only the rest is written
    /// again ("regenerate from here").
    pub keep_steps: usize,
    /// Same seed, same inputs: same outputs. `None`: from the clock.
    pub seed: Option<u64>,
    /// The key to write in; `None`: the primer's (by key finding).
    #[serde(with = "key_name")]
    pub key: Option<Key>,
}

/// A key as its name ("G major", "F# minor") in serialized form.
mod key_name {
    use crate::key::Key;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &Option<Key>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_str(&k.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Key>, D::Error> {
        Option::<String>::deserialize(d)?.map(|name| name.parse().map_err(serde::de::Error::custom)).transpose()
    }
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
            descending: true,
            max_voices: None,
            key_prior: 0.1,
            part_writing: true,
            top_p: 1.0,
            harmonize: false,
            harmonize_bass: false,
            keep_steps: 0,
            seed: None,
            key: None,
        }
    }
}

impl GenerateOptions {
    /// Checks every option but the primer (which [`super::primer`] checks
    /// as it reads it): counts at least 1 and within [`crate::limits`], a
    /// temperature and tempo that are positive numbers.
    pub fn check(&self) -> Result<(), GenerateError> {
        if self.num_outputs == 0 {
            return Err(bad("num_outputs must be at least 1"));
        }
        for (name, v) in [("beam_size", self.beam_size), ("branch_factor", self.branch_factor), ("steps_per_iteration", self.steps_per_iteration)] {
            if v == 0 {
                return Err(bad(format!("{name} must be at least 1")));
            }
        }
        limits::check("num_outputs", self.num_outputs, limits::MAX_OUTPUTS)?;
        limits::check("num_steps", self.num_steps, limits::MAX_OUTPUT_STEPS)?;
        let rows = (self.num_outputs as u128) * (self.beam_size as u128) * (self.branch_factor as u128);
        limits::check("num_outputs × beam_size × branch_factor", rows, limits::MAX_BATCH_ROWS)?;
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(bad(format!("temperature must be a positive number, got {}", self.temperature)));
        }
        if !(limits::MIN_TEMPERATURE..=limits::MAX_TEMPERATURE).contains(&self.temperature) {
            return Err(bad(format!(
                "temperature must be between {} and {}, got {}",
                limits::MIN_TEMPERATURE,
                limits::MAX_TEMPERATURE,
                self.temperature
            )));
        }
        if !(self.key_prior > 0.0 && self.key_prior <= 1.0) {
            return Err(bad(format!("key_prior must be in (0, 1] (1: no prior), got {}", self.key_prior)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad(format!("top_p must be in (0, 1] (1: every class), got {}", self.top_p)));
        }
        if self.max_voices == Some(0) {
            return Err(bad("max_voices must be at least 1"));
        }
        check_qpm(self.qpm)
    }
}

/// A tempo in quarter notes a minute must be a positive number.
pub fn check_qpm(qpm: f64) -> Result<(), GenerateError> {
    if qpm > 0.0 && qpm.is_finite() { Ok(()) } else { Err(bad(format!("qpm must be a positive number, got {qpm}"))) }
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
pub enum GenerateError {
    /// A bad option or primer.
    #[error("{0}")]
    Request(String),
    #[error("{0}")]
    Limit(#[from] LimitError),
    /// The model cannot be loaded or run on the chosen backend.
    #[error("{0}")]
    Backend(String),
    /// The network gave no usable probabilities (NaN or infinite logits).
    #[error("the model's output at model step {model_step} is not a number (NaN or infinite logits): its weights are damaged")]
    NotANumber { model_step: usize },
    /// The model went on writing events without ending a step.
    #[error("the model wrote {events} events in one step without ending it (model step {model_step}): it cannot end a step")]
    EndlessStep { events: usize, model_step: usize },
}

pub(crate) fn bad(message: impl Into<String>) -> GenerateError {
    GenerateError::Request(message.into())
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
