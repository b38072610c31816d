//! MIDI files in and out, read as the original's reader (pretty_midi +
//! note_seq) reads them and written as its writer writes them.

use crate::error::Result;
use crate::note_sequence::NoteSequence;

/// Parses a Standard MIDI File (format 0 or 1) into a note sequence.
pub fn read_midi(_bytes: &[u8]) -> Result<NoteSequence> {
    todo!("midi reader")
}

/// Writes a note sequence as a format-1 Standard MIDI File.
pub fn write_midi(_seq: &NoteSequence) -> Vec<u8> {
    todo!("midi writer")
}
