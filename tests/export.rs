//! Outputs as files a musician takes away: a 10 × 128 run written as MIDI
//! (a named track per voice) and MusicXML (a part per voice), both read
//! back with our readers to the same notes; the voices are the ones the
//! library assigns.

mod common;

use common::Scratch;

use std::path::PathBuf;
use std::process::Command;

use polyphony::encoding::STEPS_PER_QUARTER;
use polyphony::music_file::{self, Reading};
use polyphony::step_grid::StepNote;

/// (voice, note) of a file's notes, read in full and quantized: the voice is
/// a score's part, a MIDI file's instrument (its track).
fn notes(path: &std::path::Path) -> Vec<(u32, StepNote)> {
    let seq = music_file::read_music_file_as(path, Reading::Full).unwrap();
    let quantized = polyphony::pipeline::quantize(&seq, STEPS_PER_QUARTER).unwrap();
    let score = path.extension().is_some_and(|e| e == "musicxml");
    let mut notes: Vec<(u32, StepNote)> = quantized
        .notes
        .iter()
        .map(|n| (if score { n.part } else { n.instrument }, StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step)))
        .collect();
    notes.sort_by_key(|(part, n)| (n.start, -n.pitch, *part));
    notes
}

#[test]
fn musicxml_and_midi_of_a_run_hold_the_same_notes_in_the_same_four_voices() {
    let dir = Scratch::new("export-both");
    let out = Command::new(env!("CARGO_BIN_EXE_polyphony"))
        .args(["generate", "--output_dir", dir.to_str().unwrap(), "--primer_pitches", "[67,64,60]", "--seed", "1", "--output_format", "both"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut scores: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "musicxml")).collect();
    scores.sort();
    assert_eq!(scores.len(), 10);
    for score in scores {
        let text = std::fs::read_to_string(&score).unwrap();
        for voice in ["Soprano", "Alto", "Tenor", "Bass"] {
            assert!(text.contains(&format!("<part-name>{voice}</part-name>")), "{}: no {voice}", score.display());
        }
        let midi = score.with_extension("mid");
        let (from_score, from_midi) = (notes(&score), notes(&midi));
        assert!(from_score.len() > 50, "{}: {} notes", score.display(), from_score.len());
        // The MIDI file's instrument is the voice, as the score's part is.
        assert_eq!(from_score, from_midi, "{}", score.display());
        let bytes = std::fs::read(&midi).unwrap();
        let smf = midly::Smf::parse(&bytes).unwrap();
        let names: Vec<String> = smf
            .tracks
            .iter()
            .filter_map(|t| t.iter().find_map(|e| match e.kind {
                midly::TrackEventKind::Meta(midly::MetaMessage::TrackName(n)) => Some(String::from_utf8_lossy(n).into_owned()),
                _ => None,
            }))
            .collect();
        assert_eq!(names[..4], ["Soprano", "Alto", "Tenor", "Bass"]);
    }
}
