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
    read_music_bytes_as(file_name, bytes, Reading::Original)
}

/// How a score is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reading {
    /// As the original reads it, quirks included (golden-exact): ties
    /// ignored, grace notes kept at zero length, a time signature of its own
    /// for every measure shorter than written, which splits most chorales
    /// into phrase fragments.
    #[default]
    Original,
    /// What the music says: tied notes joined into one, grace notes left out
    /// (ornaments, not voices), only written time signatures, every part on
    /// one program (a chorale doubled by instruments is still a chorale),
    /// and whole pieces kept up to [`FULL_MAX_STEPS`] steps.
    Full,
}

/// The longest piece the full reading keeps whole (64 bars of 4/4).
pub const FULL_MAX_STEPS: usize = 1024;

impl Reading {
    /// The longest (sub-)sequence in steps the dataset pipeline keeps.
    pub fn max_steps(self) -> usize {
        match self {
            Reading::Original => crate::pipeline::MAX_STEPS,
            Reading::Full => FULL_MAX_STEPS,
        }
    }
}

impl std::str::FromStr for Reading {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Reading, String> {
        match name {
            "original" => Ok(Reading::Original),
            "full" => Ok(Reading::Full),
            other => Err(format!("unknown reading {other:?} (expected \"original\" or \"full\")")),
        }
    }
}

/// [`read_music_bytes`] with a choice of [`Reading`].
pub fn read_music_bytes_as(file_name: &str, bytes: &[u8], reading: Reading) -> Result<NoteSequence> {
    let mut seq = match kind(file_name) {
        Some(Kind::Midi) => crate::midi::read_midi(bytes),
        Some(Kind::CompressedMusicXml) => crate::musicxml::read_mxl(bytes, reading),
        Some(Kind::MusicXml) => crate::musicxml::read_musicxml(bytes, reading),
        None => Err(Error::Invalid("unknown file type: expected .mid, .midi, .xml, .musicxml or .mxl".into())),
    }?;
    crate::limits::check("notes in the file", seq.notes.len(), crate::limits::MAX_NOTES).map_err(|e| Error::Invalid(e.to_string()))?;
    if reading == Reading::Full {
        seq.join_ties();
        seq.notes.retain(|n| !n.is_grace);
        seq.notes.iter_mut().for_each(|n| n.program = 0);
    }
    Ok(seq)
}

/// Reads a music file from disk (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_music_file(path: &std::path::Path) -> Result<NoteSequence> {
    read_music_file_as(path, Reading::Original)
}

/// [`read_music_file`] with a choice of [`Reading`].
#[cfg(not(target_arch = "wasm32"))]
pub fn read_music_file_as(path: &std::path::Path, reading: Reading) -> Result<NoteSequence> {
    let bytes = std::fs::read(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    read_music_bytes_as(&name, &bytes, reading)
}
