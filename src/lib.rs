//! Polyphony: a faithful and better re-implementation of Magenta's Polyphony
//! RNN, built for the browser (wasm32) and natively.
//!
//! The modules, in the order the music flows through them:
//! - files: [`music_file`] picks the reader by name: [`midi`] and
//!   [`musicxml`] read (and write) music files;
//! - note sequences: [`note_sequence`], the in-memory music, and
//!   [`step_grid`], notes counted in sixteenth steps (what the page draws);
//! - [`pipeline`]: splitting, quantizing, transposing and extracting, as the
//!   original's dataset pipeline does; [`key`]: key finding and keys;
//! - events: [`encoding`], the 259-class polyphonic event encoding, and
//!   [`context`], the music's state beside each event (a model input);
//! - [`dataset`]: training and eval sets of encoded pieces on disk;
//! - model: [`hparams`], [`bundle`] (the one-file model), [`magenta`] (the
//!   original's `.mag` files and checkpoints imported), [`model`] (burn's
//!   network, for training and the GPU) and [`fused`] (the fast CPU step);
//! - training: [`train`], with [`metrics`] and [`plot`] (learning curves);
//! - [`generate`]: primers, decoding rules, sessions, backends;
//! - [`voices`]: Soprano, Alto, Tenor, Bass for every note;
//! - [`export`]: a generated piece as a file (MIDI, MusicXML);
//! - measuring: [`judge`] (part-writing, as a student of harmony is judged), [`bench`];
//! - adapters: [`web`] (the face JavaScript sees, wasm32 only) and the
//!   `polyphony` binary.
//!
//! Shared by all: [`error`] (reading music), [`limits`] (every bound an
//! input must keep), [`files`] (writes that lose nothing), [`rng`],
//! [`timestamp`].

pub mod error;
pub mod limits;
pub mod rng;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
#[cfg(not(target_arch = "wasm32"))]
pub mod timestamp;

pub mod music_file;
pub mod midi;
pub mod musicxml;
pub mod note_sequence;
pub mod step_grid;
pub mod pipeline;
pub mod key;
pub mod encoding;
pub mod context;
pub mod dataset;
pub mod hparams;
pub mod bundle;
pub mod magenta;
#[cfg(feature = "burn")]
pub mod model;
pub mod fused;
#[cfg(not(target_arch = "wasm32"))]
pub mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
#[cfg(all(feature = "burn", not(target_arch = "wasm32")))]
pub mod train;
pub mod generate;
pub mod voices;
pub mod export;
pub mod judge;
#[cfg(all(feature = "burn", not(target_arch = "wasm32")))]
pub mod bench;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use note_sequence::{Note, NoteSequence, Tempo, TimeSignature};

/// The crate version, shown by the page and the command line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
