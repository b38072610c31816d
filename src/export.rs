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
    /// MusicXML in closed score: two staves, two voices each.
    ClosedScore,
    /// Compressed MusicXML (`.mxl`).
    Mxl,
}

impl Format {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Midi | Format::MidiSingleTrack => "mid",
            Format::MusicXml | Format::ClosedScore => "musicxml",
            Format::Mxl => "mxl",
        }
    }

    /// The format a name says: `midi`, `midi-single`, `musicxml`,
    /// `closed-score` or `mxl`.
    pub fn parse(name: &str) -> Result<Format, String> {
        Ok(match name {
            "midi" => Format::Midi,
            "midi-single" => Format::MidiSingleTrack,
            "musicxml" => Format::MusicXml,
            "closed-score" => Format::ClosedScore,
            "mxl" => Format::Mxl,
            other => return Err(format!("unknown output format {other:?} (expected midi, midi-single, musicxml, closed-score, mxl or both)")),
        })
    }

    /// The formats a `--output_format` value names: one of [`Format::parse`]'s,
    /// or `both` (MIDI and MusicXML).
    pub fn parse_list(name: &str) -> Result<Vec<Format>, String> {
        match name {
            "both" => Ok(vec![Format::Midi, Format::MusicXml]),
            one => Ok(vec![Format::parse(one)?]),
        }
    }
}

/// The bytes of `piece` (on the step grid: quantized) in `format`; `title`
/// names the work in a score.
pub fn write(piece: &NoteSequence, format: Format, title: &str) -> Vec<u8> {
    match format {
        Format::Midi => crate::midi::write_playable(&crate::voices::voiced(piece)),
        Format::MidiSingleTrack => crate::midi::write_playable(piece),
        Format::MusicXml => crate::musicxml::write_musicxml(&crate::voices::voiced(piece), title).into_bytes(),
        Format::ClosedScore => crate::musicxml::write_score(&crate::voices::voiced(piece), title, crate::musicxml::Layout::ClosedScore).into_bytes(),
        Format::Mxl => crate::musicxml::write_mxl(&crate::voices::voiced(piece), title),
    }
}
