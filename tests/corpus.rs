//! The whole music21 Bach corpus against the original's statistics
//! (`tests/data/golden/SUMMARY.md`).

mod common;

use polyphony::pipeline::{self, Discard, Stats};
use polyphony::music_file;

fn corpus_stats(transpositions: &[i32]) -> Stats {
    let mut files: Vec<_> = std::fs::read_dir(common::bach_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("mxl" | "xml")))
        .collect();
    files.sort();
    assert_eq!(files.len(), 410, "408 .mxl and 2 .xml chorales");
    let mut total = Stats::default();
    for path in files {
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
