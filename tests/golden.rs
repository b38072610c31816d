//! The encoder against the original implementation's golden files.

mod common;

use std::path::Path;

use polyphony::encoding::{self, Event};
use polyphony::{midi, music_file, pipeline};

/// A `# no sequence` line reduced to what must match: each sub-sequence's
/// length (when known) and reason. The wording is free; the facts are not.
fn no_sequence_facts(line: &str) -> Vec<(Option<u64>, &'static str)> {
    let body = line.trim_start_matches("# no sequence:");
    body.split(';')
        .map(|part| {
            let steps = part
                .split('(')
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            let reason = if part.contains("too_short") || part.contains("too short") {
                "too short"
            } else if part.contains("too_long") || part.contains("too long") {
                "too long"
            } else if part.contains("more_than_1_program") || part.contains("more than one MIDI program") {
                "programs"
            } else {
                panic!("unknown reason in {part:?}")
            };
            // The original does not know the length of a multi-program piece.
            (if reason == "programs" { None } else { steps }, reason)
        })
        .collect()
}

/// Compares our `events` text for a file with a golden event file.
fn assert_events_match(ours: &str, golden_path: &Path) {
    let golden = std::fs::read_to_string(golden_path).unwrap();
    if golden.starts_with('#') {
        let facts = |text: &str| no_sequence_facts(text.lines().next().unwrap_or(""));
        assert_eq!(facts(ours), facts(&golden), "{}", golden_path.display());
    } else {
        // Exact, line for line; report the first difference readably.
        for (i, (a, b)) in ours.lines().zip(golden.lines()).enumerate() {
            assert_eq!(a, b, "{}: line {}", golden_path.display(), i + 1);
        }
        assert_eq!(ours.lines().count(), golden.lines().count(), "{}: length", golden_path.display());
    }
}

#[test]
fn events_from_musicxml_match_the_original() {
    for piece in common::golden_pieces() {
        let seq = music_file::read_music_file(&common::golden_source(&piece)).unwrap();
        let ours = pipeline::events_report(&seq, 0, false).unwrap();
        assert_events_match(&ours, &piece.join("events.txt"));
    }
}

#[test]
fn events_from_midi_match_the_original() {
    for piece in common::golden_pieces() {
        let seq = music_file::read_music_file(&piece.join("input.mid")).unwrap();
        let ours = pipeline::events_report(&seq, 0, false).unwrap();
        assert_events_match(&ours, &piece.join("events_from_midi.txt"));
    }
}

/// `decoded_notes.txt`: the first kept sequence decoded to notes, one
/// `start end pitch velocity` line each, sorted by (start, pitch, end).
#[test]
fn decoding_matches_the_original() {
    let mut checked = 0;
    for piece in common::golden_pieces() {
        let Ok(golden_notes) = std::fs::read_to_string(piece.join("decoded_notes.txt")) else { continue };
        let text = std::fs::read_to_string(piece.join("events.txt")).unwrap();
        let first = &encoding::from_text(&text).unwrap()[0];
        let decoded = encoding::decode_default(first);
        let mut notes: Vec<(f64, i32, f64, u8)> =
            decoded.notes.iter().map(|n| (n.start_time, n.pitch, n.end_time, n.velocity)).collect();
        notes.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let ours: Vec<String> = notes.iter().map(|(s, p, e, v)| format!("{s:?} {e:?} {p} {v}")).collect();
        let golden: Vec<&str> = golden_notes.lines().collect();
        assert_eq!(ours, golden, "{}", piece.display());

        let golden_midi = std::fs::read(piece.join("decoded.mid")).unwrap();
        assert!(midi::write_midi(&decoded) == golden_midi, "{}: decoded.mid differs", piece.display());
        checked += 1;
    }
    assert_eq!(checked, 5, "five golden pieces have decoded notes");
}

/// MIDI → events → MIDI → events gives the same events (unisons written on
/// separate channels, which MIDI needs to keep them apart).
#[test]
fn midi_event_round_trip_is_identical() {
    for piece in common::golden_pieces() {
        let seq = midi::read_midi(&std::fs::read(piece.join("input.mid")).unwrap()).unwrap();
        let (outcomes, _) = pipeline::extract_sequences(&seq, &[0], pipeline::MAX_STEPS);
        for outcome in outcomes {
            let pipeline::Outcome::Kept(events) = outcome else { continue };
            let written = midi::write_playable(&encoding::decode_default(&events));
            let reread = midi::read_midi(&written).unwrap();
            let quantized = pipeline::quantize(&reread, encoding::STEPS_PER_QUARTER).unwrap();
            let again = encoding::encode(&quantized);
            assert_eq!(again, events, "{}", piece.display());
        }
    }
}

#[test]
fn text_form_round_trips_names_and_indices() {
    let piece = &common::golden_pieces()[0];
    let text = std::fs::read_to_string(piece.join("events.txt")).unwrap();
    let sequences = encoding::from_text(&text).unwrap();
    assert_eq!(encoding::to_text(&sequences, false), text);
    let indices = encoding::to_text(&sequences, true);
    assert_eq!(encoding::from_text(&indices).unwrap(), sequences);
    assert!(sequences[0].iter().all(|e| Event::from_class(e.class()) == Some(*e)));
}
