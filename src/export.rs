//! Writing a piece as a file a person takes away: one entry point for every
//! format, used by the command line and the page alike. The piece is given
//! its four named voices ([`crate::voices`]) for every format but the
//! single-track MIDI file.

use crate::note_sequence::NoteSequence;

/// A file format pieces are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A Standard MIDI File with one named track (and channel) per voice.
    Midi,
    /// A Standard MIDI File with every note on one track, as the original
    /// wrote them.
    MidiSingleTrack,
    /// MusicXML (`.musicxml`): one part per voice.
    MusicXml,
    /// Compressed MusicXML (`.mxl`).
    Mxl,
}

impl Format {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Midi | Format::MidiSingleTrack => "mid",
            Format::MusicXml => "musicxml",
            Format::Mxl => "mxl",
        }
    }

    /// The formats a `--output_format` value names: `midi`, `midi-single`,
    /// `musicxml`, `mxl`, or `both` (MIDI and MusicXML).
    pub fn parse_list(name: &str) -> Result<Vec<Format>, String> {
        Ok(match name {
            "midi" => vec![Format::Midi],
            "midi-single" => vec![Format::MidiSingleTrack],
            "musicxml" => vec![Format::MusicXml],
            "mxl" => vec![Format::Mxl],
            "both" => vec![Format::Midi, Format::MusicXml],
            other => return Err(format!("unknown output format {other:?} (expected midi, midi-single, musicxml, mxl or both)")),
        })
    }
}

/// The bytes of `piece` (on the step grid: quantized) in `format`; `title`
/// names the work in a score.
pub fn write(piece: &NoteSequence, format: Format, title: &str) -> Vec<u8> {
    match format {
        Format::Midi => crate::midi::write_playable(&crate::voices::voiced(piece)),
        Format::MidiSingleTrack => crate::midi::write_playable(piece),
        Format::MusicXml => crate::musicxml::write_musicxml(&crate::voices::voiced(piece), title).into_bytes(),
        Format::Mxl => crate::musicxml::write_mxl(&crate::voices::voiced(piece), title),
    }
}
