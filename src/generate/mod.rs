//! Generation: one generator for `polyphony generate` and the browser.
//!
//! Given a model, a primer and [`GenerateOptions`], it returns event streams
//! and note sequences. All outputs (and, with beam search, all their beams
//! and branches) run as one batch through the model: each model step feeds
//! one event per row and reads back one `[rows, 259]` block of logits (or,
//! sampled on a GPU, one chosen event per row).
//!
//! The parts, in the order a request flows through them:
//! - [`request`]: the [`Primer`], the [`GenerateOptions`] and their checks;
//! - [`primer`]: any primer as step-grid notes and as the model's events;
//! - [`rules`]: what a row may sample next (every decoding constraint);
//! - [`session`]: the batch, injection, sampling and beam search;
//! - [`backend`]: where the network runs (the fused CPU step, or burn on a
//!   GPU: [`device`], with the `burn` feature).
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
//! A model whose logits are not numbers, or that never ends a step, stops
//! with an error instead of running on.

pub mod backend;
pub mod live;
#[cfg(feature = "burn")]
pub mod device;
pub mod primer;
pub mod request;
pub mod rules;
pub mod session;

pub use backend::{Backend, Engine, Net, StepModel, generate};
#[cfg(not(target_arch = "wasm32"))]
pub use backend::run;
#[cfg(feature = "burn")]
pub use device::{BurnStep, choices};
#[cfg(all(feature = "burn", not(target_arch = "wasm32")))]
pub use device::generate_on_device;
pub use primer::{PrimerEvents, PrimerNotes, primer_events, primer_notes};
pub use request::{GenerateError, GenerateOptions, Output, Primer, parse_python_list};
pub use rules::drop_orphan_continuations;
pub use live::{Harmony, Live};
pub use session::{Choice, Session};

/// Runs a request with the fast CPU model of a bundle.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_with_bundle(bundle: &crate::bundle::Bundle, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    Engine::new(bundle.clone()).generate(Backend::Cpu, options)
}
