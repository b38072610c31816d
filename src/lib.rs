//! Polyphony: a faithful and better re-implementation of Magenta's Polyphony
//! RNN, built for the browser (wasm32) and natively.
//!
//! The map of the crate follows the domain:
//! - [`note_sequence`]: the in-memory music type;
//! - [`midi`] and [`musicxml`]: reading (and writing) music files into it;
//! - [`pipeline`]: splitting, quantizing, transposing and extracting, as the
//!   original's dataset pipeline does;
//! - [`encoding`]: the 259-class polyphonic event encoding and its text form;
//! - [`bundle`]: the one-file model (weights, hparams, provenance) in safetensors;
//! - [`web`]: the face JavaScript sees (wasm32 only).

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod bundle;
pub mod dataset;
pub mod encoding;
pub mod error;
pub mod fused;
pub mod generate;
pub mod hparams;
pub mod midi;
pub mod model;
pub mod music_file;
pub mod musicxml;
pub mod note_sequence;
pub mod pipeline;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
pub mod rng;
#[cfg(not(target_arch = "wasm32"))]
pub mod timestamp;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
pub mod voicing;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use note_sequence::{Note, NoteSequence, Tempo, TimeSignature};

/// The crate version, shown by the page and the command line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
