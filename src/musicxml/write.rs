//! Writing MusicXML: a piece as a score with one part per voice (Soprano,
//! Alto, Tenor, Bass, and any more), as MuseScore, music21 and our own
//! reader read it.
//!
//! The piece's notes must lie on the step grid (quantized) and each part
//! (the note's `instrument`, see [`crate::voices`]) must sing one note at a
//! time. Divisions are sixteenths; the key signature is the key found by
//! [`crate::key`]; the time signature is the piece's first (4/4 when it has
//! none, or one whose measure is not a whole number of sixteenths). A note
//! that crosses a barline is tied over it; a length no single note value
//! (dotted or not) has is written as tied notes. Beams are left to the
//! reader's engraver.

use std::fmt::Write;

use crate::encoding::STEPS_PER_QUARTER;
use crate::key::{Key, Mode};
use crate::note_sequence::NoteSequence;

/// Note values in sixteenths, longest first, with their type and dots.
const VALUES: [(i64, &str, usize); 10] = [
    (32, "breve", 0),
    (24, "whole", 1),
    (16, "whole", 0),
    (12, "half", 1),
    (8, "half", 0),
    (6, "quarter", 1),
    (4, "quarter", 0),
    (3, "eighth", 1),
    (2, "eighth", 0),
    (1, "16th", 0),
];

const SHARPS: [(&str, i32); 12] =
    [("C", 0), ("C", 1), ("D", 0), ("D", 1), ("E", 0), ("F", 0), ("F", 1), ("G", 0), ("G", 1), ("A", 0), ("A", 1), ("B", 0)];
const FLATS: [(&str, i32); 12] =
    [("C", 0), ("D", -1), ("D", 0), ("E", -1), ("E", 0), ("F", 0), ("G", -1), ("G", 0), ("A", -1), ("A", 0), ("B", -1), ("B", 0)];

/// One note or rest of a part, on the step grid.
#[derive(Clone, Copy)]
struct Event {
    pitch: Option<i32>,
    start: i64,
    end: i64,
}

/// The score's text. `title` names the work.
pub fn write_musicxml(piece: &NoteSequence, title: &str) -> String {
    let key = Key::find(piece.notes.iter().map(|n| (n.pitch, (n.quantized_end_step - n.quantized_start_step) as f64)));
    let (beats, beat_type) = piece
        .time_signatures
        .first()
        .map(|t| (t.numerator, t.denominator))
        .filter(|&(n, d)| n > 0 && d > 0 && (n * 4 * STEPS_PER_QUARTER as i32) % d == 0)
        .unwrap_or((4, 4));
    let measure = i64::from(beats * 4 * STEPS_PER_QUARTER as i32 / beat_type);
    let parts = piece.notes.iter().map(|n| n.instrument as usize + 1).max().unwrap_or(0).max(piece.part_names.len()).max(1);
    let end = piece.notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0).max(piece.total_quantized_steps).max(1);
    let measures = (end + measure - 1) / measure;
    let name = |p: usize| piece.part_names.get(p).cloned().unwrap_or_else(|| crate::voices::name(p));
    let qpm = piece.initial_qpm();

    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
         <!DOCTYPE score-partwise PUBLIC \"-//Recordare//DTD MusicXML 4.0 Partwise//EN\" \"http://www.musicxml.org/dtds/partwise.dtd\">\n\
         <score-partwise version=\"4.0\">\n",
    );
    let _ = writeln!(xml, "  <work><work-title>{}</work-title></work>", escape(title));
    let _ = writeln!(xml, "  <identification><encoding><software>polyphony {}</software></encoding></identification>", crate::VERSION);
    xml.push_str("  <part-list>\n");
    for p in 0..parts {
        let id = p + 1;
        let _ = writeln!(
            xml,
            "    <score-part id=\"P{id}\"><part-name>{n}</part-name><score-instrument id=\"P{id}-I1\"><instrument-name>{n}</instrument-name></score-instrument>\
             <midi-instrument id=\"P{id}-I1\"><midi-channel>{id}</midi-channel><midi-program>53</midi-program></midi-instrument></score-part>",
            n = escape(&name(p))
        );
    }
    xml.push_str("  </part-list>\n");
    for p in 0..parts {
        let line = part_line(piece, p as u32, measures * measure);
        let _ = writeln!(xml, "  <part id=\"P{}\">", p + 1);
        for m in 0..measures {
            let _ = writeln!(xml, "    <measure number=\"{}\">", m + 1);
            if m == 0 {
                attributes(&mut xml, key, beats, beat_type, p);
                let _ = writeln!(
                    xml,
                    "      <direction placement=\"above\"><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>{}</per-minute></metronome></direction-type><sound tempo=\"{}\"/></direction>",
                    trim(qpm),
                    trim(qpm)
                );
            }
            let (from, to) = (m * measure, (m + 1) * measure);
            for e in line.iter().filter(|e| e.start < to && e.end > from) {
                let (start, stop) = (e.start.max(from), e.end.min(to));
                let tied_in = e.start < from;
                let tied_out = e.end > to;
                write_event(&mut xml, key, e.pitch, stop - start, measure, tied_in, tied_out);
            }
            xml.push_str("    </measure>\n");
        }
        xml.push_str("  </part>\n");
    }
    xml.push_str("</score-partwise>\n");
    xml
}

/// The score as a compressed MusicXML (`.mxl`) archive.
pub fn write_mxl(piece: &NoteSequence, title: &str) -> Vec<u8> {
    use std::io::Write as _;
    use zip::write::SimpleFileOptions;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let container = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container><rootfiles><rootfile full-path=\"score.musicxml\" media-type=\"application/vnd.recordare.musicxml+xml\"/></rootfiles></container>\n";
    let written: zip::result::ZipResult<()> = (|| {
        archive.start_file("mimetype", stored)?;
        archive.write_all(b"application/vnd.recordare.musicxml")?;
        archive.start_file("META-INF/container.xml", deflated)?;
        archive.write_all(container.as_bytes())?;
        archive.start_file("score.musicxml", deflated)?;
        archive.write_all(write_musicxml(piece, title).as_bytes())?;
        Ok(())
    })();
    written.expect("writing a zip archive into memory cannot fail");
    archive.finish().expect("finishing a zip archive in memory cannot fail").into_inner()
}

/// Part `part`'s notes and the rests between them, over `length` steps.
fn part_line(piece: &NoteSequence, part: u32, length: i64) -> Vec<Event> {
    let mut notes: Vec<Event> = piece
        .notes
        .iter()
        .filter(|n| n.instrument == part && n.quantized_end_step > n.quantized_start_step)
        .map(|n| Event { pitch: Some(n.pitch), start: n.quantized_start_step.max(0), end: n.quantized_end_step })
        .collect();
    notes.sort_by_key(|e| e.start);
    let mut line = Vec::with_capacity(2 * notes.len() + 1);
    let mut at = 0;
    for n in notes {
        let start = n.start.max(at); // one note at a time: an overlap is cut
        if start > at {
            line.push(Event { pitch: None, start: at, end: start });
        }
        if n.end > start {
            line.push(Event { start, ..n });
            at = n.end;
        }
    }
    if at < length {
        line.push(Event { pitch: None, start: at, end: length });
    }
    line
}

fn attributes(xml: &mut String, key: Option<Key>, beats: i32, beat_type: i32, part: usize) {
    let (fifths, mode) = key.map_or((0, "major"), |k| (k.fifths(), if k.mode == Mode::Major { "major" } else { "minor" }));
    // Soprano and alto in treble, tenor in treble an octave down, bass and below in bass.
    let clef = match part {
        0 | 1 => "<sign>G</sign><line>2</line>",
        2 => "<sign>G</sign><line>2</line><clef-octave-change>-1</clef-octave-change>",
        _ => "<sign>F</sign><line>4</line>",
    };
    let _ = writeln!(
        xml,
        "      <attributes><divisions>{STEPS_PER_QUARTER}</divisions><key><fifths>{fifths}</fifths><mode>{mode}</mode></key><time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time><clef>{clef}</clef></attributes>"
    );
}

/// A note (or rest) of `length` steps inside one measure, as tied note
/// values; `tied_in` / `tied_out` tie it to the measure before / after.
fn write_event(xml: &mut String, key: Option<Key>, pitch: Option<i32>, length: i64, measure: i64, tied_in: bool, tied_out: bool) {
    if pitch.is_none() && length == measure {
        let _ = writeln!(xml, "      <note><rest measure=\"yes\"/><duration>{length}</duration><voice>1</voice></note>");
        return;
    }
    let pieces = values(length);
    for (i, &(steps, kind, dots)) in pieces.iter().enumerate() {
        let start_tie = pitch.is_some() && (i + 1 < pieces.len() || tied_out);
        let stop_tie = pitch.is_some() && (i > 0 || tied_in);
        let mut note = String::from("      <note>");
        match pitch {
            Some(p) => {
                let (step, alter) = spelling(key, p);
                let alter = if alter == 0 { String::new() } else { format!("<alter>{alter}</alter>") };
                let _ = write!(note, "<pitch><step>{step}</step>{alter}<octave>{}</octave></pitch>", p.div_euclid(12) - 1);
            }
            None => note.push_str("<rest/>"),
        }
        let _ = write!(note, "<duration>{steps}</duration>");
        if stop_tie {
            note.push_str("<tie type=\"stop\"/>");
        }
        if start_tie {
            note.push_str("<tie type=\"start\"/>");
        }
        let _ = write!(note, "<voice>1</voice><type>{kind}</type>");
        note.push_str(&"<dot/>".repeat(dots));
        if stop_tie || start_tie {
            note.push_str("<notations>");
            if stop_tie {
                note.push_str("<tied type=\"stop\"/>");
            }
            if start_tie {
                note.push_str("<tied type=\"start\"/>");
            }
            note.push_str("</notations>");
        }
        note.push_str("</note>\n");
        xml.push_str(&note);
    }
}

/// `length` steps as note values, longest first.
fn values(mut length: i64) -> Vec<(i64, &'static str, usize)> {
    let mut pieces = Vec::new();
    while length > 0 {
        let &(steps, kind, dots) = VALUES.iter().find(|v| v.0 <= length).expect("a sixteenth fits");
        pieces.push((steps, kind, dots));
        length -= steps;
    }
    pieces
}

/// A pitch's letter and alteration: sharps in sharp keys and C, flats in flat keys.
fn spelling(key: Option<Key>, pitch: i32) -> (&'static str, i32) {
    let table = if key.is_some_and(|k| k.fifths() < 0) { &FLATS } else { &SHARPS };
    table[pitch.rem_euclid(12) as usize]
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number without a needless ".0".
fn trim(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music_file::Reading;
    use crate::step_grid::{self, StepNote};

    fn piece(notes: &[StepNote]) -> NoteSequence {
        crate::voices::voiced(&step_grid::to_sequence(notes, 90.0, 100, 0))
    }

    #[test]
    fn a_score_reads_back_to_the_same_notes_and_parts() {
        // A chord, a note tied over the barline, a length of five sixteenths, a rest.
        let notes = [
            StepNote::new(72, 0, 4),
            StepNote::new(67, 0, 4),
            StepNote::new(64, 0, 20),
            StepNote::new(48, 0, 5),
            StepNote::new(74, 8, 12),
            StepNote::new(70, 24, 28),
        ];
        let seq = piece(&notes);
        let xml = write_musicxml(&seq, "Test & <chorale>");
        assert!(xml.contains("<part-name>Soprano</part-name>") && xml.contains("<part-name>Bass</part-name>"));
        assert!(xml.contains("<tied type=\"start\"/>") && xml.contains("&amp; &lt;chorale&gt;"));
        let read = |name: &str, bytes: &[u8]| crate::music_file::read_music_bytes_as(name, bytes, Reading::Full).unwrap();
        for back in [read("x.musicxml", xml.as_bytes()), read("x.mxl", &write_mxl(&seq, "t"))] {
            assert_eq!(back.initial_qpm(), 90.0);
            let quantized = crate::pipeline::quantize(&back, STEPS_PER_QUARTER).unwrap();
            let mut have: Vec<(u32, StepNote)> = quantized.notes.iter().map(|n| (n.part, StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step))).collect();
            let mut want: Vec<(u32, StepNote)> = seq.notes.iter().map(|n| (n.instrument, StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step))).collect();
            have.sort_by_key(|(p, n)| (*p, n.start));
            want.sort_by_key(|(p, n)| (*p, n.start));
            assert_eq!(have, want);
        }
    }

    #[test]
    fn lengths_become_note_values_and_pitches_are_spelled_in_the_key() {
        assert_eq!(values(5).iter().map(|v| v.0).collect::<Vec<_>>(), [4, 1]);
        assert_eq!(values(14).iter().map(|v| v.0).collect::<Vec<_>>(), [12, 2]);
        assert_eq!(spelling(Some("F".parse().unwrap()), 70), ("B", -1));
        assert_eq!(spelling(Some("G".parse().unwrap()), 66), ("F", 1));
    }
}
