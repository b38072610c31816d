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

/// How the voices are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One part per voice (what a choir reads, and what MIDI tracks map to).
    Parts,
    /// Closed score: one part on two staves, soprano and alto on the upper
    /// (stems up and down), tenor and bass on the lower (a hymnal's layout).
    ClosedScore,
}

/// The score's text in parts. `title` names the work.
pub fn write_musicxml(piece: &NoteSequence, title: &str) -> String {
    write_score(piece, title, Layout::Parts)
}

/// What a score's measures are made of.
struct Grid {
    key: Option<Key>,
    beats: i32,
    beat_type: i32,
    /// Steps per measure.
    measure: i64,
    measures: i64,
}

/// The score's text in `layout`. `title` names the work.
pub fn write_score(piece: &NoteSequence, title: &str, layout: Layout) -> String {
    let key = Key::find(piece.notes.iter().map(|n| (n.pitch, (n.quantized_end_step - n.quantized_start_step) as f64)));
    let (beats, beat_type) = piece
        .time_signatures
        .first()
        .map(|t| (t.numerator, t.denominator))
        .filter(|&(n, d)| n > 0 && d > 0 && (n * 4 * STEPS_PER_QUARTER as i32) % d == 0)
        .unwrap_or((4, 4));
    let measure = i64::from(beats * 4 * STEPS_PER_QUARTER as i32 / beat_type);
    let voices = piece.notes.iter().map(|n| n.instrument as usize + 1).max().unwrap_or(0).max(piece.part_names.len()).max(1);
    let end = piece.notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0).max(piece.total_quantized_steps).max(1);
    let grid = Grid { key, beats, beat_type, measure, measures: (end + measure - 1) / measure };
    let name = |p: usize| piece.part_names.get(p).cloned().unwrap_or_else(|| crate::voices::name(p));
    let lines: Vec<Vec<Event>> = (0..voices).map(|v| part_line(piece, v as u32, grid.measures * measure)).collect();

    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
         <!DOCTYPE score-partwise PUBLIC \"-//Recordare//DTD MusicXML 4.0 Partwise//EN\" \"http://www.musicxml.org/dtds/partwise.dtd\">\n\
         <score-partwise version=\"4.0\">\n",
    );
    let _ = writeln!(xml, "  <work><work-title>{}</work-title></work>", escape(title));
    let _ = writeln!(xml, "  <identification><encoding><software>polyphony {}</software></encoding></identification>", crate::VERSION);
    let parts: Vec<String> = match layout {
        Layout::Parts => (0..voices).map(name).collect(),
        Layout::ClosedScore => vec!["Choir".to_string()],
    };
    xml.push_str("  <part-list>\n");
    for (p, part) in parts.iter().enumerate() {
        let id = p + 1;
        let _ = writeln!(
            xml,
            "    <score-part id=\"P{id}\"><part-name>{n}</part-name><score-instrument id=\"P{id}-I1\"><instrument-name>{n}</instrument-name></score-instrument>\
             <midi-instrument id=\"P{id}-I1\"><midi-channel>{id}</midi-channel><midi-program>53</midi-program></midi-instrument></score-part>",
            n = escape(part)
        );
    }
    xml.push_str("  </part-list>\n");
    for p in 0..parts.len() {
        let _ = writeln!(xml, "  <part id=\"P{}\">", p + 1);
        for m in 0..grid.measures {
            let _ = writeln!(xml, "    <measure number=\"{}\">", m + 1);
            if m == 0 {
                attributes(&mut xml, &grid, layout, p);
                let qpm = trim(piece.initial_qpm());
                let _ = writeln!(
                    xml,
                    "      <direction placement=\"above\"><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>{qpm}</per-minute></metronome></direction-type><sound tempo=\"{qpm}\"/></direction>"
                );
            }
            match layout {
                Layout::Parts => write_measure(&mut xml, &grid, &lines[p], m, &Voice { number: 1, staff: None, stem: None }),
                Layout::ClosedScore => {
                    for (v, line) in lines.iter().enumerate() {
                        if v > 0 {
                            let _ = writeln!(xml, "      <backup><duration>{measure}</duration></backup>");
                        }
                        let voice = Voice { number: v + 1, staff: Some(if v < 2 { 1 } else { 2 }), stem: Some(if v % 2 == 0 { "up" } else { "down" }) };
                        write_measure(&mut xml, &grid, line, m, &voice);
                    }
                }
            }
            xml.push_str("    </measure>\n");
        }
        xml.push_str("  </part>\n");
    }
    xml.push_str("</score-partwise>\n");
    xml
}

/// Where a line's notes go: its voice number, staff and stem direction.
struct Voice {
    number: usize,
    staff: Option<usize>,
    stem: Option<&'static str>,
}

/// Measure `m` of a line: its notes and rests, tied over the barlines.
fn write_measure(xml: &mut String, grid: &Grid, line: &[Event], m: i64, voice: &Voice) {
    let (from, to) = (m * grid.measure, (m + 1) * grid.measure);
    for e in line.iter().filter(|e| e.start < to && e.end > from) {
        let (start, stop) = (e.start.max(from), e.end.min(to));
        write_event(xml, grid, e.pitch, stop - start, (e.start < from, e.end > to), voice);
    }
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

fn attributes(xml: &mut String, grid: &Grid, layout: Layout, part: usize) {
    let (fifths, mode) = grid.key.map_or((0, "major"), |k| (k.fifths(), if k.mode == Mode::Major { "major" } else { "minor" }));
    // Soprano and alto in treble, tenor in treble an octave down, bass and below in bass.
    let treble = "<sign>G</sign><line>2</line>";
    let bass = "<sign>F</sign><line>4</line>";
    let clefs = match (layout, part) {
        (Layout::ClosedScore, _) => format!("<staves>2</staves><clef number=\"1\">{treble}</clef><clef number=\"2\">{bass}</clef>"),
        (Layout::Parts, 0 | 1) => format!("<clef>{treble}</clef>"),
        (Layout::Parts, 2) => format!("<clef>{treble}<clef-octave-change>-1</clef-octave-change></clef>"),
        (Layout::Parts, _) => format!("<clef>{bass}</clef>"),
    };
    let _ = writeln!(
        xml,
        "      <attributes><divisions>{STEPS_PER_QUARTER}</divisions><key><fifths>{fifths}</fifths><mode>{mode}</mode></key><time><beats>{}</beats><beat-type>{}</beat-type></time>{clefs}</attributes>",
        grid.beats, grid.beat_type
    );
}

/// A note (or rest) of `length` steps inside one measure, as tied note
/// values; `tied` says whether it is tied to the measure before and after.
fn write_event(xml: &mut String, grid: &Grid, pitch: Option<i32>, length: i64, tied: (bool, bool), voice: &Voice) {
    let (tied_in, tied_out) = tied;
    let staff = voice.staff.map_or(String::new(), |s| format!("<staff>{s}</staff>"));
    if pitch.is_none() && length == grid.measure {
        let _ = writeln!(xml, "      <note><rest measure=\"yes\"/><duration>{length}</duration><voice>{}</voice>{staff}</note>", voice.number);
        return;
    }
    let pieces = values(length);
    for (i, &(steps, kind, dots)) in pieces.iter().enumerate() {
        let start_tie = pitch.is_some() && (i + 1 < pieces.len() || tied_out);
        let stop_tie = pitch.is_some() && (i > 0 || tied_in);
        let mut note = String::from("      <note>");
        match pitch {
            Some(p) => {
                let (step, alter) = spelling(grid.key, p);
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
        let _ = write!(note, "<voice>{}</voice><type>{kind}</type>", voice.number);
        note.push_str(&"<dot/>".repeat(dots));
        if let (Some(stem), Some(_)) = (voice.stem, pitch) {
            let _ = write!(note, "<stem>{stem}</stem>");
        }
        note.push_str(&staff);
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
        let closed = write_score(&seq, "t", Layout::ClosedScore);
        assert!(closed.contains("<staves>2</staves>") && closed.contains("<backup>"));
        for (back, layout) in [(read("x.musicxml", xml.as_bytes()), "parts"), (read("x.mxl", &write_mxl(&seq, "t")), "mxl"), (read("x.musicxml", closed.as_bytes()), "closed")] {
            assert_eq!(back.initial_qpm(), 90.0);
            let quantized = crate::pipeline::quantize(&back, STEPS_PER_QUARTER).unwrap();
            // In closed score the voice is the note's MusicXML voice, else its part.
            let voice = |n: &crate::Note| if layout == "closed" { n.voice - 1 } else { n.part };
            let mut have: Vec<(u32, StepNote)> = quantized.notes.iter().map(|n| (voice(n), StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step))).collect();
            let mut want: Vec<(u32, StepNote)> = seq.notes.iter().map(|n| (n.instrument, StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step))).collect();
            have.sort_by_key(|(p, n)| (*p, n.start));
            want.sort_by_key(|(p, n)| (*p, n.start));
            assert_eq!(have, want, "{layout}");
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
