//! Picks the reader for a file by its name.
use crate::error::{Error, Result};
use crate::note_sequence::NoteSequence;

/// Reads MIDI (.mid, .midi), MusicXML (.xml, .musicxml) or compressed MusicXML (.mxl).
pub fn read_music_bytes(file_name: &str, bytes: &[u8]) -> Result<NoteSequence> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".mid") || lower.ends_with(".midi") {
        crate::midi::read_midi(bytes)
    } else if lower.ends_with(".mxl") {
        crate::musicxml::read_mxl(bytes)
    } else if lower.ends_with(".xml") || lower.ends_with(".musicxml") {
        crate::musicxml::read_musicxml(bytes)
    } else {
        Err(Error::Invalid("unknown file type: expected .mid, .midi, .xml, .musicxml or .mxl".into()))
    }
}

/// Reads a music file from disk (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_music_file(path: &std::path::Path) -> Result<NoteSequence> {
    let bytes = std::fs::read(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    read_music_bytes(&name, &bytes)
}
