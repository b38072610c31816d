//! Dataset files (format round trip and refusal of bad bytes) and
//! `create-dataset` on the Bach corpus against the original's statistics
//! (`tests/data/golden/SUMMARY.md`).

mod common;

use common::Scratch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use polyphony::dataset::{self, CreateDatasetReport, CreateOptions, Dataset, DatasetError, Example};
use polyphony::pipeline::Discard;

fn small_dataset() -> Dataset {
    let example = |source: &str, transposition, events: &[u16]| Example {
        source: source.into(),
        transposition,
        events: events.to_vec(),
    };
    Dataset {
        split: "eval".into(),
        settings: BTreeMap::from([("seed".into(), "7".into()), ("note".into(), "line\nbreak \"quoted\" é".into())]),
        sources: vec!["a.mxl".into(), "dir/b\\c.mid".into(), "silent.xml".into()],
        sequences: vec![
            example("a.mxl", -4, &[0, 63, 2, 191, 2, 1]),
            example("dir/b\\c.mid", 3, &[0, 258, 130, 131, 2, 1]),
            example("a.mxl", 0, &[]),
        ],
    }
}

/// FNV-1a 64, as the format's trailing checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Replaces the trailing checksum so that only the deliberate change is wrong.
fn reseal(bytes: &mut Vec<u8>) {
    bytes.truncate(bytes.len() - 8);
    let sum = fnv1a(bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
}

#[test]
fn a_dataset_file_reads_back_bit_exact() {
    let dir = Scratch::new("dataset-roundtrip");
    let path = dir.join("small.polyds");
    let original = small_dataset();
    dataset::write_dataset(std::fs::File::create(&path).unwrap(), &original).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"POLYDS"));
    let back = dataset::read_dataset(&bytes).unwrap();
    assert_eq!(back, original);
    assert_eq!(dataset::encode_dataset(&back).unwrap(), bytes);
}

#[test]
fn content_the_format_cannot_hold_is_refused_when_writing() {
    let mut bad_class = small_dataset();
    bad_class.sequences[0].events[1] = 259;
    let error = dataset::encode_dataset(&bad_class).unwrap_err().to_string();
    assert!(error.contains("259"), "{error}");

    let mut unlisted = small_dataset();
    unlisted.sequences[0].source = "elsewhere.mid".into();
    let error = dataset::encode_dataset(&unlisted).unwrap_err().to_string();
    assert!(error.contains("elsewhere.mid"), "{error}");
}

#[test]
fn foreign_and_newer_files_are_refused_by_name() {
    let bytes = dataset::encode_dataset(&small_dataset()).unwrap();
    for foreign in [&b""[..], b"POLY", b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0", b"{\"encoding\":1}"] {
        assert_eq!(dataset::read_dataset(foreign), Err(DatasetError::NotADataset));
    }
    let mut newer = bytes.clone();
    newer[6..10].copy_from_slice(&2u32.to_le_bytes());
    let error = dataset::read_dataset(&newer).unwrap_err();
    assert_eq!(error, DatasetError::NewerVersion { found: 2 });
    assert!(error.to_string().contains("newer"), "{error}");
}

#[test]
fn every_truncation_is_refused_as_truncated() {
    let bytes = dataset::encode_dataset(&small_dataset()).unwrap();
    for len in 10..bytes.len() {
        match dataset::read_dataset(&bytes[..len]) {
            Err(DatasetError::Truncated(_)) => {}
            other => panic!("cut at {len} of {}: {other:?}", bytes.len()),
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(dataset::read_dataset(&longer), Err(DatasetError::Damaged(_))));
}

#[test]
fn every_changed_byte_is_refused() {
    let bytes = dataset::encode_dataset(&small_dataset()).unwrap();
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[i] ^= flip;
            assert!(dataset::read_dataset(&damaged).is_err(), "byte {i} ^ {flip:#x} went unnoticed");
        }
    }
}

#[test]
fn a_class_index_above_258_is_refused_even_with_a_good_checksum() {
    let bytes = dataset::encode_dataset(&small_dataset()).unwrap();
    // The class 258 of the second sequence, the only one in the file.
    let at = bytes.windows(2).position(|w| w == 258u16.to_le_bytes()).unwrap();
    let mut bad = bytes.clone();
    bad[at..at + 2].copy_from_slice(&300u16.to_le_bytes());
    reseal(&mut bad);
    let error = dataset::read_dataset(&bad).unwrap_err();
    assert!(matches!(error, DatasetError::Damaged(_)), "{error:?}");
    assert!(error.to_string().contains("class index 300"), "{error}");
}

#[test]
fn random_garbage_never_panics() {
    let valid = dataset::encode_dataset(&small_dataset()).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 1 {
            // A real prefix, so that the reader gets past the magic and version.
            let keep = (next() as usize) % valid.len();
            bytes.splice(0..0, valid[..keep].iter().copied());
        }
        assert!(dataset::read_dataset(&bytes).is_err(), "round {round} was accepted");
    }
    // Lengths that claim gigabytes are caught before any allocation.
    let mut huge = b"POLYDS".to_vec();
    huge.extend_from_slice(&1u32.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(dataset::read_dataset(&huge), Err(DatasetError::Truncated(_))));
}

fn create(inputs: &[PathBuf], options: &CreateOptions) -> CreateDatasetReport {
    dataset::create_dataset(inputs, options, &|_, _| {}).unwrap()
}

fn read(dir: &Path, file: &str) -> Dataset {
    dataset::read_dataset(&std::fs::read(dir.join(file)).unwrap()).unwrap()
}

fn discarded(report: &CreateDatasetReport, reason: Discard) -> usize {
    [&report.eval, &report.training].iter().map(|s| s.discarded.get(&reason).copied().unwrap_or(0)).sum()
}

#[test]
fn the_corpus_gives_the_original_totals_and_whole_pieces_per_side() {
    let out = Scratch::new("dataset-corpus");
    let report = create(&[common::bach_dir()], &CreateOptions::new(&*out));
    let (eval, training) = (&report.eval, &report.training);
    assert_eq!(eval.inputs + training.inputs, 410);
    assert_eq!(eval.outputs + training.outputs, 3033);
    assert_eq!(eval.transpositions_generated + training.transpositions_generated, 16083);
    assert_eq!(discarded(&report, Discard::TooShort), 12987);
    assert_eq!(discarded(&report, Discard::TooLong), 27);
    assert_eq!(discarded(&report, Discard::MoreThanOneProgram), 36);
    assert_eq!(discarded(&report, Discard::RangeExceeded), 0);
    assert!(report.failures.is_empty());
    assert!(eval.inputs > 0 && training.inputs > eval.inputs);

    let (eval_set, training_set) = (read(&out, dataset::EVAL_FILE), read(&out, dataset::TRAINING_FILE));
    assert_eq!(eval_set.sequences.len(), eval.outputs);
    assert_eq!(training_set.sequences.len(), training.outputs);
    let eval_names: BTreeSet<&String> = eval_set.sources.iter().collect();
    let training_names: BTreeSet<&String> = training_set.sources.iter().collect();
    assert!(eval_names.is_disjoint(&training_names), "a piece on both sides");
    assert_eq!(eval_names.len() + training_names.len(), 410);
    assert!(eval_set.sequences.iter().all(|e| eval_names.contains(&e.source)));

    // The same chorale under two names stays on one side.
    assert!(report.duplicate_groups >= 2, "{report}");
    assert_eq!(report.groups_straddling_split, 0);
    for (a, b) in [("bwv117.4.mxl", "bwv177.4.mxl"), ("bwv197.7-a.mxl", "bwv398.mxl")] {
        assert_eq!(eval_names.contains(&a.to_string()), eval_names.contains(&b.to_string()), "{a} and {b}");
    }

    let text = report.to_string();
    assert!(text.contains("seed 0"), "{text}");
    assert!(text.ends_with("Processed 410 inputs total. Produced 3033 outputs.\n"), "{text}");
}

#[test]
fn the_original_eval_list_gives_the_original_split() {
    let out = Scratch::new("dataset-original-split");
    let list_path = common::golden_dir().join("original-split/eval_pieces.txt");
    let listed = dataset::parse_piece_list(&std::fs::read_to_string(list_path).unwrap());
    assert_eq!(listed.len(), 34);
    let options = CreateOptions { eval_pieces: Some(listed.clone()), ..CreateOptions::new(&*out) };
    let report = create(&[common::bach_dir()], &options);
    // The original's create_dataset run: 342 eval and 2,691 training outputs.
    assert_eq!((report.eval.outputs, report.training.outputs), (342, 2691));
    assert!(report.missing_eval_pieces.is_empty());

    let eval_set = read(&out, dataset::EVAL_FILE);
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(eval_set.sources.iter().cloned().collect::<BTreeSet<_>>(), listed);
    let mut transpositions: BTreeMap<&str, BTreeMap<i32, usize>> = BTreeMap::new();
    for example in &eval_set.sequences {
        *transpositions.entry(&example.source).or_default().entry(example.transposition).or_default() += 1;
    }
    assert_eq!(transpositions.len(), 34, "every listed piece gives sequences");
    for (piece, counts) in transpositions {
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), (-4..=4).collect::<Vec<_>>(), "{piece}");
        let first = counts[&0];
        assert!(counts.values().all(|&n| n == first), "{piece}: {counts:?}");
    }
    let training_set = read(&out, dataset::TRAINING_FILE);
    assert!(training_set.sources.iter().all(|s| !listed.contains(s)));
}

#[test]
fn the_seed_alone_decides_the_split() {
    let files = |seed: u64, name: &str| {
        let out = Scratch::new(&format!("dataset-{name}"));
        create(&[common::bach_dir()], &CreateOptions { seed, ..CreateOptions::new(&*out) });
        [dataset::EVAL_FILE, dataset::TRAINING_FILE].map(|f| std::fs::read(out.join(f)).unwrap())
    };
    let first = files(5, "seed-a");
    assert!(first == files(5, "seed-b"), "same seed, different files");
    let other = files(6, "seed-c");
    let eval_sources = |bytes: &Vec<u8>| dataset::read_dataset(bytes).unwrap().sources;
    assert_ne!(eval_sources(&first[0]), eval_sources(&other[0]));
}

/// A small corpus: two chorales at the top, one in a sub-folder, one
/// garbage file, and a text file that is not music and must be ignored.
fn small_corpus(name: &str) -> Scratch {
    let dir = Scratch::new(&format!("dataset-{name}"));
    let bach = common::bach_dir();
    std::fs::create_dir_all(dir.join("more")).unwrap();
    for (from, to) in
        [("bwv66.6.mxl", "bwv66.6.mxl"), ("bwv1.6.mxl", "bwv1.6.mxl"), ("bwv10.7.mxl", "more/bwv10.7.mxl")]
    {
        std::fs::copy(bach.join(from), dir.join(to)).unwrap();
    }
    std::fs::write(dir.join("garbage.mid"), b"this is not a MIDI file").unwrap();
    std::fs::write(dir.join("notes.txt"), b"not music, not read").unwrap();
    dir
}

#[test]
fn an_unreadable_file_is_reported_and_skipped() {
    let corpus = small_corpus("unreadable");
    let out = Scratch::new("dataset-unreadable-out");
    let calls = std::sync::Mutex::new(Vec::new());
    let options = CreateOptions { eval_ratio: 0.0, ..CreateOptions::new(&*out) };
    let report =
        dataset::create_dataset(&[corpus.to_path_buf()], &options, &|done, total| calls.lock().unwrap().push((done, total))).unwrap();
    assert_eq!(report.failures.len(), 1);
    assert!(report.failures[0].path.ends_with("garbage.mid"), "{}", report.failures[0]);
    assert_eq!(report.training.inputs, 3);
    assert_eq!(*calls.lock().unwrap(), (1..=4).map(|n| (n, 4)).collect::<Vec<_>>());
    let training_set = read(&out, dataset::TRAINING_FILE);
    assert_eq!(training_set.sources, ["bwv1.6.mxl", "bwv66.6.mxl", "more/bwv10.7.mxl"]);
    assert!(report.to_string().contains("unreadable files (skipped)"));
}

#[test]
fn bad_options_are_errors() {
    let out = Scratch::new("dataset-bad-options");
    let options = CreateOptions { eval_ratio: 1.5, ..CreateOptions::new(&*out) };
    let error = dataset::create_dataset(&[common::bach_dir()], &options, &|_, _| {}).unwrap_err();
    assert!(error.to_string().contains("eval_ratio"), "{error}");
    let missing = out.join("no-such-dir");
    let error = dataset::create_dataset(&[missing], &CreateOptions::new(&*out), &|_, _| {}).unwrap_err();
    assert!(error.to_string().contains("no-such-dir"), "{error}");
}

fn polyphony(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polyphony")).args(args).output().expect("binary runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_command_line_makes_a_dataset_and_reports_the_garbage() {
    let corpus_dir = small_corpus("cli");
    let out_dir = Scratch::new("dataset-cli-out");
    let (corpus, out) = (corpus_dir.to_string_lossy().into_owned(), out_dir.to_string_lossy().into_owned());
    let (code, stdout, stderr) =
        polyphony(&["create-dataset", "--input", &corpus, "--output_dir", &out, "--seed", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Processed 3 inputs total. Produced "), "{stdout}");
    assert!(stdout.contains("seed 3"), "{stdout}");
    assert!(stderr.lines().any(|l| l.starts_with("polyphony: ") && l.contains("garbage.mid")), "{stderr}");
    assert!(Path::new(&out).join(dataset::TRAINING_FILE).is_file());
    assert!(Path::new(&out).join(dataset::EVAL_FILE).is_file());

    // Kebab-case flags work too; errors found after parsing exit with 1.
    let (code, _, stderr) =
        polyphony(&["create-dataset", "--input", &corpus, "--output-dir", &out, "--eval-ratio", "2"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), ["polyphony: eval_ratio must be between 0 and 1, got 2"]);
    let (code, _, stderr) =
        polyphony(&["create-dataset", "--input", &corpus, "--output_dir", &out, "--eval_pieces", "/no/such/list"]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("polyphony: /no/such/list: "), "{stderr}");
}

/// The full reading keeps nearly every chorale whole; pieces sharing a tune
/// stay on one side; key normalisation moves each piece once, to C major
/// or A minor.
#[test]
fn the_full_reading_keeps_409_chorales_and_key_normalisation_moves_them_to_c() {
    use polyphony::key::{Key, Mode};
    use polyphony::music_file::Reading;
    let out = Scratch::new("dataset-full");
    let options = CreateOptions { reading: Reading::Full, tunes_together: true, key_normalized: true, ..CreateOptions::new(&*out) };
    let report = create(&[common::bach_dir()], &options);
    assert_eq!(report.pieces_used, 409, "the original reading uses 290");
    assert_eq!(report.groups_straddling_split, 0);
    assert!(report.duplicate_groups >= 40, "chorales sharing a tune: {} groups", report.duplicate_groups);
    let training = read(&out, dataset::TRAINING_FILE);
    assert_eq!(training.settings[dataset::TRANSPOSITIONS_SETTING], dataset::KEY_NORMALIZED);
    let mut moves: Vec<(&str, i32)> = training.sequences.iter().map(|e| (e.source.as_str(), e.transposition)).collect();
    moves.dedup();
    let mut pieces: Vec<&str> = moves.iter().map(|m| m.0).collect();
    pieces.dedup();
    assert_eq!(moves.len(), pieces.len(), "each piece is moved once, by one interval");
    // Each piece as a whole (all its sequences) is in one of the two keys.
    let homes = [Key::new(0, Mode::Major), Key::new(9, Mode::Minor)];
    let mut notes: std::collections::BTreeMap<&str, Vec<_>> = Default::default();
    for example in &training.sequences {
        let events: Vec<_> = example.events.iter().map(|&c| polyphony::encoding::Event::from_class(c as usize).unwrap()).collect();
        notes.entry(example.source.as_str()).or_default().extend(polyphony::encoding::decode_steps(&events).0);
    }
    for (piece, notes) in notes {
        let key = Key::of_steps(&notes).unwrap();
        assert!(homes.contains(&key), "{piece} is in {key}");
    }
}
