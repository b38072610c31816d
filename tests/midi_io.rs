//! The MIDI reader and writer against the original (pretty_midi + note_seq)
//! golden files, and against hand-built files for the cases the golden
//! files do not show: format 0, tempo maps, running status, note-offs as
//! velocity-0 note-ons, overlapping notes of one pitch, and broken input.

mod common;

use std::path::{Path, PathBuf};

use polyphony::Error;
use polyphony::midi::{read_midi, write_midi};
use polyphony::note_sequence::{Note, NoteSequence, Tempo, TimeSignature};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Golden pieces holding `file`, sorted.
fn pieces_with(file: &str) -> Vec<PathBuf> {
    common::golden_pieces()
        .into_iter()
        .filter(|piece| piece.join(file).is_file())
        .collect()
}

fn name(piece: &Path) -> String {
    piece.file_name().unwrap().to_string_lossy().into_owned()
}

/// The sequence the original wrote `decoded.mid` from: `decoded_notes.txt`
/// (`start end pitch velocity`), program 0, instrument 0, 120 qpm, 220 ticks
/// per quarter, no time signature.
fn decoded_sequence(piece: &Path) -> NoteSequence {
    let text = std::fs::read_to_string(piece.join("decoded_notes.txt")).unwrap();
    let notes = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "bad line {line:?}");
            Note::new(
                fields[2].parse().unwrap(),
                fields[3].parse().unwrap(),
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
            )
        })
        .collect();
    NoteSequence {
        notes,
        tempos: vec![Tempo {
            time: 0.0,
            qpm: 120.0,
        }],
        ticks_per_quarter: 220,
        ..NoteSequence::default()
    }
}

/// The `from_midi.summary` block of a golden `meta.json`, computed from our
/// reading of `input.mid`.
fn summary(seq: &NoteSequence) -> Value {
    let sorted_unique = |values: Vec<i64>| {
        let mut values = values;
        values.sort_unstable();
        values.dedup();
        values
    };
    let pitches: Vec<i32> = seq.notes.iter().map(|n| n.pitch).collect();
    json!({
        "num_notes": seq.notes.len(),
        "total_time": seq.total_time,
        "qpms": seq.tempos.iter().map(|t| json!({"qpm": t.qpm, "time": t.time})).collect::<Vec<_>>(),
        "time_signatures": seq.time_signatures.iter()
            .map(|ts| json!({"numerator": ts.numerator, "denominator": ts.denominator, "time": ts.time}))
            .collect::<Vec<_>>(),
        "programs": sorted_unique(seq.notes.iter().map(|n| i64::from(n.program)).collect()),
        "instruments": sorted_unique(seq.notes.iter().map(|n| i64::from(n.instrument)).collect()),
        "parts": sorted_unique(seq.notes.iter().map(|n| i64::from(n.part)).collect()),
        "zero_length_notes": seq.notes.iter().filter(|n| n.start_time == n.end_time).count(),
        "pitch_range": [pitches.iter().min(), pitches.iter().max()],
    })
}

/// Where two byte strings first differ, for readable failures.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

/// A Standard MIDI File from raw track bodies (events with their deltas).
fn smf(format: u16, division: u16, tracks: &[&[u8]]) -> Vec<u8> {
    let mut out = b"MThd\0\0\0\x06".to_vec();
    out.extend_from_slice(&format.to_be_bytes());
    out.extend_from_slice(&(tracks.len() as u16).to_be_bytes());
    out.extend_from_slice(&division.to_be_bytes());
    for track in tracks {
        out.extend_from_slice(b"MTrk");
        out.extend_from_slice(&(track.len() as u32).to_be_bytes());
        out.extend_from_slice(track);
    }
    out
}

/// (pitch, start, end, velocity) of each note, in sequence order.
fn spans(seq: &NoteSequence) -> Vec<(i32, f64, f64, u8)> {
    seq.notes
        .iter()
        .map(|n| (n.pitch, n.start_time, n.end_time, n.velocity))
        .collect()
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

/// Reading must fail with a MIDI error whose message contains `needle`.
fn assert_midi_error(bytes: &[u8], needle: &str) {
    match read_midi(bytes) {
        Err(Error::Midi(message)) => {
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?}"
            );
        }
        other => panic!("expected a MIDI error containing {needle:?}, got {other:?}"),
    }
}

/// A deterministic byte stream (xorshift) for garbage input.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// One quarter = 480 ticks in the hand-built files; 120 bpm = 500000 µs.
const TEMPO_120: &[u8] = &[0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20];
const END: &[u8] = &[0x00, 0xFF, 0x2F, 0x00];

fn track(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------

#[test]
fn writer_reproduces_the_original_decoded_midi_byte_for_byte() {
    let pieces = pieces_with("decoded.mid");
    assert_eq!(pieces.len(), 5, "expected 5 golden pieces with decoded.mid");
    for piece in pieces {
        let golden = std::fs::read(piece.join("decoded.mid")).unwrap();
        let ours = write_midi(&decoded_sequence(&piece));
        assert!(
            ours == golden,
            "{}: decoded.mid differs at byte {:?} (ours {} bytes, golden {})",
            name(&piece),
            first_difference(&ours, &golden),
            ours.len(),
            golden.len()
        );
    }
}

#[test]
fn reader_matches_the_original_summary_of_input_midi() {
    let pieces = pieces_with("input.mid");
    assert_eq!(pieces.len(), 9, "expected 9 golden pieces with input.mid");
    for piece in pieces {
        let seq = read_midi(&std::fs::read(piece.join("input.mid")).unwrap()).unwrap();
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(piece.join("meta.json")).unwrap())
                .unwrap();
        let golden = &meta["from_midi"]["summary"];
        assert!(
            golden.is_object(),
            "{}: no from_midi.summary in meta.json",
            name(&piece)
        );
        assert_eq!(&summary(&seq), golden, "{}", name(&piece));
        assert_eq!(seq.ticks_per_quarter, 220, "{}", name(&piece));
    }
}

#[test]
fn golden_input_midi_survives_read_write_read() {
    for piece in pieces_with("input.mid") {
        let seq = read_midi(&std::fs::read(piece.join("input.mid")).unwrap()).unwrap();
        let again = read_midi(&write_midi(&seq)).unwrap();
        assert_eq!(again, seq, "{}", name(&piece));
    }
}

/// Reading is lossy where pretty_midi is (an off closes every open note of
/// its pitch, so unisons of different lengths come back equal), so the
/// original's `decoded.mid` need not be rewritten as is; what was read must.
#[test]
fn golden_decoded_midi_survives_read_write_read() {
    for piece in pieces_with("decoded.mid") {
        let seq = read_midi(&std::fs::read(piece.join("decoded.mid")).unwrap()).unwrap();
        assert_eq!(
            seq.notes.len(),
            decoded_sequence(&piece).notes.len(),
            "{}",
            name(&piece)
        );
        assert_eq!(
            seq.time_signatures,
            vec![TimeSignature {
                time: 0.0,
                numerator: 4,
                denominator: 4
            }]
        );
        let rewritten = write_midi(&seq);
        assert_eq!(read_midi(&rewritten).unwrap(), seq, "{}", name(&piece));
        assert!(
            write_midi(&read_midi(&rewritten).unwrap()) == rewritten,
            "{}: not a fixed point",
            name(&piece)
        );
    }
}

// ---------------------------------------------------------------------------
// Hand-built files
// ---------------------------------------------------------------------------

#[test]
fn reads_format_0() {
    let body = track(&[
        TEMPO_120,
        &[0x00, 0x90, 60, 100],
        &[0x83, 0x60, 0x80, 60, 64],
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&body])).unwrap();
    assert_eq!(spans(&seq), vec![(60, 0.0, 0.5, 100)]);
    assert_eq!(
        seq.tempos,
        vec![Tempo {
            time: 0.0,
            qpm: 120.0
        }]
    );
    assert!(seq.time_signatures.is_empty());
    assert_eq!(seq.total_time, 0.5);
    assert_eq!(seq.ticks_per_quarter, 480);
    assert_eq!(
        (
            seq.notes[0].instrument,
            seq.notes[0].program,
            seq.notes[0].is_drum
        ),
        (0, 0, false)
    );
}

#[test]
fn reads_format_1_with_a_tempo_map_programs_and_drums() {
    // Track 0: 120 bpm, 3/4; after two quarters 240 bpm and 6/8.
    let conductor = track(&[
        TEMPO_120,
        &[0x00, 0xFF, 0x58, 0x04, 3, 2, 24, 8],
        &[0x87, 0x40, 0xFF, 0x51, 0x03, 0x03, 0xD0, 0x90], // tick 960: 250000 µs
        &[0x00, 0xFF, 0x58, 0x04, 6, 3, 24, 8],
        END,
    ]);
    // Track 1: program 5 on channel 0; a note over the change and one after it.
    let melody = track(&[
        &[0x00, 0xC0, 5],
        &[0x00, 0x90, 60, 90],
        &[0x87, 0x40, 0x80, 60, 0], // tick 960
        &[0x00, 0x90, 62, 80],
        &[0x83, 0x60, 0x80, 62, 0], // tick 1440
        END,
    ]);
    // Track 2: a drum hit on channel 9.
    let drums = track(&[
        &[0x83, 0x60, 0x99, 36, 127],
        &[0x83, 0x60, 0x89, 36, 0],
        END,
    ]);
    let seq = read_midi(&smf(1, 480, &[&conductor, &melody, &drums])).unwrap();

    assert_eq!(seq.tempos.len(), 2);
    assert_eq!(
        seq.tempos[0],
        Tempo {
            time: 0.0,
            qpm: 120.0
        }
    );
    assert_close(seq.tempos[1].time, 1.0);
    assert_close(seq.tempos[1].qpm, 240.0);
    assert_eq!(seq.time_signatures.len(), 2);
    assert_eq!(
        (
            seq.time_signatures[0].numerator,
            seq.time_signatures[0].denominator
        ),
        (3, 4)
    );
    assert_eq!(
        (
            seq.time_signatures[1].numerator,
            seq.time_signatures[1].denominator
        ),
        (6, 8)
    );
    assert_close(seq.time_signatures[1].time, 1.0);

    let notes: Vec<_> = seq
        .notes
        .iter()
        .map(|n| (n.pitch, n.program, n.instrument, n.is_drum))
        .collect();
    assert_eq!(
        notes,
        vec![(60, 5, 0, false), (62, 5, 0, false), (36, 0, 1, true)]
    );
    assert_close(seq.notes[0].end_time, 1.0);
    assert_close(seq.notes[1].start_time, 1.0);
    assert_close(seq.notes[1].end_time, 1.25); // 480 ticks at 240 bpm
    assert_close(seq.notes[2].start_time, 0.5);
    assert_close(seq.notes[2].end_time, 1.0);
    assert_close(seq.total_time, 1.25);
}

#[test]
fn reads_format_2_like_format_1() {
    let conductor = track(&[TEMPO_120, END]);
    let melody = track(&[&[0x00, 0x90, 67, 70], &[0x81, 0x70, 0x90, 67, 0], END]);
    let seq = read_midi(&smf(2, 480, &[&conductor, &melody])).unwrap();
    assert_eq!(spans(&seq), vec![(67, 0.0, 0.25, 70)]);
}

#[test]
fn reads_running_status_and_velocity_zero_note_offs() {
    let body = track(&[
        TEMPO_120,
        &[0x00, 0x90, 60, 100],
        &[0x00, 64, 101],                // running status: note on
        &[0x83, 0x60, 60, 0],            // running status: velocity 0 = off
        &[0x00, 0xFF, 0x01, 0x01, b'x'], // a meta event between...
        &[0x00, 64, 0],                  // ...keeps the running status (as mido)
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&body])).unwrap();
    assert_eq!(spans(&seq), vec![(60, 0.0, 0.5, 100), (64, 0.0, 0.5, 101)]);
}

#[test]
fn overlapping_notes_of_one_pitch_follow_pretty_midi() {
    // Two note-ons then one off: the off ends both.
    let both = track(&[
        &[0x00, 0x90, 60, 100],
        &[0x60, 0x90, 60, 90],
        &[0x60, 0x80, 60, 0],
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&both])).unwrap();
    assert_eq!(spans(&seq), vec![(60, 0.0, 0.2, 100), (60, 0.1, 0.2, 90)]);

    // A re-strike on the tick of the off survives it and ends at the next off.
    let restrike = track(&[
        &[0x00, 0x90, 60, 100],
        &[0x60, 0x90, 60, 90],
        &[0x00, 0x80, 60, 0],
        &[0x60, 0x80, 60, 0],
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&restrike])).unwrap();
    assert_eq!(spans(&seq), vec![(60, 0.0, 0.1, 100), (60, 0.1, 0.2, 90)]);

    // An on and an off on the same tick with nothing older to close: pretty_midi
    // drops the note (`del last_note_on[key]`), so the later off finds nothing.
    let dropped = track(&[
        &[0x60, 0x90, 60, 100],
        &[0x00, 0x80, 60, 0],
        &[0x60, 0x80, 60, 0],
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&dropped])).unwrap();
    assert!(seq.notes.is_empty());
    assert_eq!(seq.total_time, 0.0);

    // Stray note-offs are ignored.
    let stray = track(&[
        &[0x00, 0x80, 61, 0],
        &[0x00, 0x90, 62, 1],
        &[0x60, 0x80, 62, 0],
        END,
    ]);
    let seq = read_midi(&smf(0, 480, &[&stray])).unwrap();
    assert_eq!(spans(&seq), vec![(62, 0.0, 0.1, 1)]);
}

#[test]
fn instruments_follow_program_at_note_end_and_track() {
    // The program is the channel's program when the note ends; the same program
    // and channel on another track is another instrument.
    let first = track(&[
        &[0x00, 0x90, 60, 100],
        &[0x00, 0xC0, 7],
        &[0x60, 0x80, 60, 0],
        END,
    ]);
    let second = track(&[
        &[0x00, 0xC0, 7],
        &[0x00, 0x90, 62, 100],
        &[0x60, 0x80, 62, 0],
        END,
    ]);
    let seq = read_midi(&smf(1, 480, &[&first, &second])).unwrap();
    let notes: Vec<_> = seq
        .notes
        .iter()
        .map(|n| (n.pitch, n.program, n.instrument))
        .collect();
    assert_eq!(notes, vec![(60, 7, 0), (62, 7, 1)]);
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

#[test]
fn writes_tempo_changes_and_time_signatures_that_read_back() {
    let mut seq = NoteSequence {
        tempos: vec![
            Tempo {
                time: 0.0,
                qpm: 120.0,
            },
            Tempo {
                time: 2.0,
                qpm: 60.0,
            },
        ],
        time_signatures: vec![TimeSignature {
            time: 0.0,
            numerator: 3,
            denominator: 4,
        }],
        ..NoteSequence::default()
    };
    seq.notes.push(Note::new(60, 100, 0.0, 2.0));
    seq.notes.push(Note::new(62, 100, 2.0, 3.0));
    let back = read_midi(&write_midi(&seq)).unwrap();
    assert_eq!(back.ticks_per_quarter, 220);
    assert_eq!(back.tempos.len(), 2);
    assert_close(back.tempos[1].time, 2.0);
    assert_close(back.tempos[1].qpm, 60.0);
    assert_eq!(back.time_signatures, seq.time_signatures);
    assert_eq!(back.notes.len(), 2);
    assert_close(back.notes[1].start_time, 2.0);
    assert_close(back.notes[1].end_time, 3.0);
}

#[test]
fn writes_instruments_as_the_original() {
    let mut seq = NoteSequence::default();
    let mut violin = Note::new(67, 80, 0.0, 1.0);
    (violin.instrument, violin.program) = (2, 40);
    let mut kick = Note::new(36, 100, 0.5, 0.75);
    (kick.instrument, kick.is_drum) = (1, true);
    seq.notes.extend([violin, kick]);
    let bytes = write_midi(&seq);

    // No time signature in the sequence: a 4/4 is added.
    let back = read_midi(&bytes).unwrap();
    assert_eq!(
        back.time_signatures,
        vec![TimeSignature {
            time: 0.0,
            numerator: 4,
            denominator: 4
        }]
    );
    // Tracks: timing, instrument 0 (empty), drums, violin — named by program.
    assert_eq!(u16::from_be_bytes([bytes[10], bytes[11]]), 4);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Drums") && text.contains("Violin"));
    let notes: Vec<_> = back
        .notes
        .iter()
        .map(|n| (n.pitch, n.program, n.instrument, n.is_drum))
        .collect();
    assert_eq!(notes, vec![(36, 0, 0, true), (67, 40, 1, false)]);
}

#[test]
fn writes_an_empty_sequence() {
    let bytes = write_midi(&NoteSequence::default());
    let back = read_midi(&bytes).unwrap();
    assert!(back.notes.is_empty());
    assert_eq!(
        back.tempos,
        vec![Tempo {
            time: 0.0,
            qpm: 120.0
        }]
    );
}

// ---------------------------------------------------------------------------
// Broken input
// ---------------------------------------------------------------------------

#[test]
fn empty_input_is_an_error() {
    assert_midi_error(b"", "empty");
}

#[test]
fn random_bytes_are_an_error() {
    assert_midi_error(&[0x12, 0x34, 0x56], "MThd");
    assert_midi_error(b"MTh", "MThd");
}

#[test]
fn every_truncation_of_a_valid_file_is_an_error() {
    let body = track(&[
        TEMPO_120,
        &[0x00, 0x90, 60, 100],
        &[0x83, 0x60, 0x80, 60, 64],
        END,
    ]);
    let file = smf(1, 480, &[&body, &body]);
    assert!(read_midi(&file).is_ok());
    for len in 0..file.len() {
        assert!(
            matches!(read_midi(&file[..len]), Err(Error::Midi(ref m)) if !m.is_empty()),
            "a file cut to {len} bytes was accepted"
        );
    }
    assert_midi_error(&file[..file.len() - 3], "truncated");
    assert_midi_error(&file[..file.len() - body.len() - 8], "missing");
}

#[test]
fn a_header_with_garbage_is_an_error() {
    for seed in 0..200 {
        let mut bytes = b"MThd".to_vec();
        bytes.extend(noise(seed, 40));
        assert!(
            matches!(read_midi(&bytes), Err(Error::Midi(_))),
            "seed {seed} was accepted"
        );
    }
    let mut header_then_garbage = smf(1, 480, &[]);
    header_then_garbage[11] = 1; // one track declared...
    header_then_garbage.extend(noise(1, 30)); // ...but garbage instead
    assert_midi_error(&header_then_garbage, "MTrk");
}

#[test]
fn malformed_files_are_errors_not_panics() {
    assert_midi_error(&smf(1, 0xE728, &[END]), "SMPTE");
    assert_midi_error(&smf(1, 0, &[END]), "ticks per quarter");
    assert_midi_error(&smf(1, 480, &[]), "no tracks");
    assert_midi_error(&smf(1, 480, &[&[]]), "no events");
    assert_midi_error(&smf(0, 480, &[&[0x00, 0x40, 0x40]]), "malformed event");
    assert_midi_error(
        &smf(0, 480, &[&[0x00, 0x90, 0xC0, 0x40]]),
        "malformed event",
    );
    assert_midi_error(
        &smf(0, 480, &[&[0x00, 0xFF, 0x59, 0x02, 9, 0]]),
        "key signature",
    );
    assert_midi_error(
        &smf(0, 480, &[&[0x00, 0xFF, 0x51, 0x03, 0, 0, 0]]),
        "tempo of 0",
    );
    assert_midi_error(
        &smf(0, 480, &[&[0x00, 0xFF, 0x58, 0x04, 0, 2, 24, 8]]),
        "numerator 0",
    );
    // 40 events of 2^28 - 1 ticks each: beyond note_seq's largest tick, 1e10.
    let far: Vec<u8> = [0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x01, 0x00].repeat(40);
    assert_midi_error(&smf(0, 480, &[&far]), "largest tick");
}

#[test]
fn mutated_files_never_panic() {
    let body = track(&[
        TEMPO_120,
        &[0x00, 0xC0, 3, 0x00, 0x90, 60, 100, 0x00, 62, 100],
        &[0x83, 0x60, 0x80, 60, 64],
        END,
    ]);
    let file = smf(1, 480, &[&body, &body]);
    for seed in 0..2000u64 {
        let mut bytes = file.clone();
        let flips = noise(seed, 6);
        for pair in flips.chunks(2) {
            let at = usize::from(pair[0]) % bytes.len();
            bytes[at] = pair[1];
        }
        // Either result is fine; neither may panic, and errors must say something.
        if let Err(error) = read_midi(&bytes) {
            assert!(!error.to_string().is_empty());
        }
    }
}
