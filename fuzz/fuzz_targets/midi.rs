//! MIDI bytes through the reader and everything a read file goes through.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| polyphony_fuzz_common::music("x.mid", bytes));

#[path = "common.rs"]
mod polyphony_fuzz_common;
