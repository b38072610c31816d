//! Polyphony: a faithful and better re-implementation of Magenta's Polyphony
//! RNN, built for the browser (wasm32) and natively.
//!
//! The map of the crate follows the domain:
//! - [`note_sequence`]: the in-memory music type;
//! - [`midi`] and [`musicxml`]: reading (and writing) music files into it;
//! - [`pipeline`]: splitting, quantizing, transposing and extracting, as the
//!   original's dataset pipeline does;
//! - [`encoding`]: the 259-class polyphonic event encoding and its text form;
//! - [`web`]: the face JavaScript sees (wasm32 only).

pub mod encoding;
pub mod error;
pub mod midi;
pub mod music_file;
pub mod musicxml;
pub mod note_sequence;
pub mod pipeline;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use note_sequence::{Note, NoteSequence, Tempo, TimeSignature};

/// The crate version, shown by the page and the command line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
