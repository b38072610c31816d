//! MusicXML (.xml, .musicxml) and compressed MusicXML (.mxl) reader.
use crate::error::Result;
use crate::note_sequence::NoteSequence;

pub fn read_musicxml(_bytes: &[u8]) -> Result<NoteSequence> { todo!() }
pub fn read_mxl(_bytes: &[u8]) -> Result<NoteSequence> { todo!() }
