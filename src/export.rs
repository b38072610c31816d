//! Writing a piece as a file a person takes away: one entry point for every
//! format, used by the command line and the page alike.

use crate::note_sequence::NoteSequence;

/// A file format pieces are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A Standard MIDI File that reads back to the same events
    /// ([`crate::midi::write_playable`]).
    Midi,
}

impl Format {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Midi => "mid",
        }
    }
}

/// The bytes of `piece` in `format`.
pub fn write(piece: &NoteSequence, format: Format) -> Vec<u8> {
    match format {
        Format::Midi => crate::midi::write_playable(piece),
    }
}
