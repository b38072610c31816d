//! The polyphonic event encoding.
use crate::note_sequence::NoteSequence;
pub fn events_report(_seq: &NoteSequence, _transpose: i32, _index: bool) -> String { todo!() }
