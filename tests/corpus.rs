//! The whole music21 Bach corpus against the original's statistics
//! (`tests/data/golden/SUMMARY.md`).

mod common;

use polyphony::judge::Judgement;
use polyphony::music_file::{self, Reading};
use polyphony::pipeline::{self, Discard, Stats};

fn chorales() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(common::bach_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("mxl" | "xml")))
        .collect();
    files.sort();
    assert_eq!(files.len(), 410, "408 .mxl and 2 .xml chorales");
    files
}

fn corpus_stats(transpositions: &[i32]) -> Stats {
    let mut total = Stats::default();
    for path in chorales() {
        let seq = music_file::read_music_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        total.add(&pipeline::extract_sequences(&seq, transpositions, pipeline::MAX_STEPS).1);
    }
    total
}

#[test]
fn untransposed_counts_match_the_original() {
    let stats = corpus_stats(&[0]);
    assert_eq!(stats.inputs, 410);
    assert_eq!(stats.subsequences, 1787);
    assert_eq!(stats.outputs, 337);
    assert_eq!(stats.discarded.get(&Discard::TooShort), Some(&1443));
    assert_eq!(stats.discarded.get(&Discard::TooLong), Some(&3));
    assert_eq!(stats.discarded.get(&Discard::MoreThanOneProgram), Some(&4));
    assert_eq!(stats.discarded.len(), 3, "no other discard reason: {:?}", stats.discarded);
}

#[test]
fn training_pipeline_counts_match_the_original() {
    let transpositions: Vec<i32> = pipeline::TRANSPOSITIONS.collect();
    let stats = corpus_stats(&transpositions);
    assert_eq!(stats.outputs, 3033);
    assert_eq!(stats.transpositions_generated, 16083);
    assert_eq!(stats.discarded.get(&Discard::TooShort), Some(&12987));
    assert_eq!(stats.discarded.get(&Discard::TooLong), Some(&27));
    assert_eq!(stats.discarded.get(&Discard::MoreThanOneProgram), Some(&36));
    assert_eq!(stats.discarded.get(&Discard::RangeExceeded), None);
}

/// The judge's Bach row (the model card's reference): all 410 chorales
/// read in full, as `polyphony judge` reads them.
#[test]
fn bachs_own_part_writing_by_the_judge() {
    let mut total = Judgement::default();
    for path in chorales() {
        let seq = music_file::read_music_file_as(&path, Reading::Full).unwrap();
        total.add(&Judgement::of_piece(&seq).unwrap());
    }
    let row = [
        100.0 * total.four_voice_share(),
        total.per_100_changes(total.parallel_fifths),
        total.per_100_changes(total.parallel_octaves),
        total.per_100_changes(total.hidden_fifths),
        total.per_100_changes(total.hidden_octaves),
        total.per_100_changes(total.crossings),
        100.0 * total.in_scale_share(),
        100.0 * total.of_four_voice_steps(total.wide_spacing_steps),
        100.0 * total.of_four_voice_steps(total.out_of_range_steps),
        total.mean_note_steps(),
        total.soprano_mean_leap(),
    ];
    let card = [83.7, 0.4, 0.3, 0.4, 0.2, 1.8, 95.3, 1.3, 2.2, 3.61, 2.13];
    for (i, (have, want)) in row.iter().zip(card).enumerate() {
        assert!((have - want).abs() <= 0.051, "column {i}: {have:.3}, the card says {want}");
    }
    assert_eq!(total.voice_ranges, [Some((50, 88)), Some((48, 83)), Some((47, 78)), Some((36, 66))]);
}
