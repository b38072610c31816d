//! Picks the reader for a file by its name.
use crate::error::{Error, Result};
use crate::note_sequence::NoteSequence;

/// The kinds of music file we read, by extension.
enum Kind {
    Midi,
    MusicXml,
    CompressedMusicXml,
}

/// The kind of a file by its name's extension (any case), if we read it.
fn kind(file_name: &str) -> Option<Kind> {
    let (_, ext) = file_name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "mid" | "midi" => Some(Kind::Midi),
        "xml" | "musicxml" => Some(Kind::MusicXml),
        "mxl" => Some(Kind::CompressedMusicXml),
        _ => None,
    }
}

/// Whether a file's name marks it as one we read (MIDI or MusicXML).
pub fn is_music_file_name(file_name: &str) -> bool {
    kind(file_name).is_some()
}

/// Reads MIDI (.mid, .midi), MusicXML (.xml, .musicxml) or compressed MusicXML (.mxl).
/// At most [`crate::limits::MAX_NOTES`] notes.
pub fn read_music_bytes(file_name: &str, bytes: &[u8]) -> Result<NoteSequence> {
    let seq = match kind(file_name) {
        Some(Kind::Midi) => crate::midi::read_midi(bytes),
        Some(Kind::CompressedMusicXml) => crate::musicxml::read_mxl(bytes),
        Some(Kind::MusicXml) => crate::musicxml::read_musicxml(bytes),
        None => Err(Error::Invalid("unknown file type: expected .mid, .midi, .xml, .musicxml or .mxl".into())),
    }?;
    crate::limits::check("notes in the file", seq.notes.len(), crate::limits::MAX_NOTES).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(seq)
}

/// Reads a music file from disk (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_music_file(path: &std::path::Path) -> Result<NoteSequence> {
    let bytes = std::fs::read(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    read_music_bytes(&name, &bytes)
}
