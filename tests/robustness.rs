//! Issue 17, "never panic, never hang, never lose work": every fault an
//! outside probe found in an earlier version, each as a regression test
//! that failed (panicked, hung, allocated without bound or lost a file)
//! there and passes now. Refusals are one line that names the file, the
//! place or the limit.
//!
//! Cases covered elsewhere (not repeated here):
//! - a bundle's unusable hparams, 0 steps per quarter and NaN / ±inf
//!   weights refused by the library on load:
//!   `tests/bundle.rs::unusable_hparams_and_non_finite_weights_are_refused`
//!   (here: the same bundles through `evaluate` and `generate`);
//! - `HParams::validate` value by value: `src/hparams.rs`
//!   (`validate_refuses_what_cannot_be_built_or_trained`);
//! - a checkpoint with a flipped byte, and a run whose checkpoint is gone
//!   but whose log is not (refused without `--restart`):
//!   `tests/train.rs::a_lost_or_damaged_checkpoint_is_never_trained_over_silently`;
//! - an output folder that is a file, in the library:
//!   `src/files.rs::an_output_folder_that_is_a_file_is_refused_before_any_work`.

mod common;

use common::Scratch;

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use polyphony::bundle::{self, Bundle, BundleMetadata, Precision};
use polyphony::encoding::{self, Event};
use polyphony::generate::{self, GenerateError, GenerateOptions, Primer};
use polyphony::hparams::HParams;
use polyphony::model::Model;
use polyphony::music_file::{self, Reading};
use polyphony::train;

// ---------------------------------------------------------------- helpers

const BIN: &str = env!("CARGO_BIN_EXE_polyphony");

/// What a finished run of the binary left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// Exit code 1 and exactly one line on stderr holding every needle; no panic.
    fn refused(&self, what: &str, needles: &[&str]) {
        assert_eq!(self.code, Some(1), "{what}: exit code, stderr: {}", self.stderr);
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{what}: one line: {}", self.stderr);
        for needle in needles {
            assert!(self.stderr.contains(needle), "{what}: {:?} should say {needle:?}", self.stderr);
        }
        self.no_panic(what);
    }

    fn no_panic(&self, what: &str) {
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"), "{what}: {}", self.stderr);
    }
}

/// Runs the binary with `args`, killed (and the test failed) after
/// `limit_secs`: a hang is a failure, not a stuck test run. With
/// `memory_mib`, under that much address space (`ulimit -v`), so that an
/// allocation without bound fails instead of swapping.
fn polyphony_within(args: &[&str], limit_secs: u64, memory_mib: Option<u64>) -> Run {
    // A folder of its own for each run (tests run in parallel), removed
    // once the run's output is read.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Scratch::new(&format!("robustness-runs-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
    let out_file = dir.join("stdout");
    let err_file = dir.join("stderr");
    let mut command = match memory_mib {
        Some(mib) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", mib * 1024)).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    command.args(args).stdin(Stdio::null());
    command.stdout(std::fs::File::create(&out_file).unwrap()).stderr(std::fs::File::create(&err_file).unwrap());
    let started = Instant::now();
    let mut child = command.spawn().expect("binary runs");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(limit_secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("polyphony {args:?} ran for more than {limit_secs} s: {}", std::fs::read_to_string(&err_file).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let run = Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_file).unwrap(),
        stderr: std::fs::read_to_string(&err_file).unwrap(),
        took,
    };
    run
}

fn polyphony(args: &[&str]) -> Run {
    polyphony_within(args, 60, None)
}

/// Runs `f` on a thread of its own; a result after `limit_secs` at the
/// latest, else the test fails (the thread is left behind).
fn within<T: Send + 'static>(limit_secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    match receive.recv_timeout(Duration::from_secs(limit_secs)) {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {limit_secs} s"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// A random network of one small layer; `step_end_bias` is added to
/// STEP_END's bias (positive: pieces end soon).
fn tiny_bundle(seed: u64, step_end_bias: f32) -> Bundle {
    let hp = HParams { rnn_layer_sizes: vec![8], ..HParams::default() };
    let (metadata, mut tensors) = Model::init(&hp, &Device::flex(), seed)
        .to_bundle(BundleMetadata::new("robustness", hp.clone(), "2026-01-01T00:00:00Z"))
        .unwrap()
        .into_parts();
    let biases = tensors.iter_mut().find(|t| t.name == bundle::DENSE_BIASES).unwrap();
    biases.data[Event::StepEnd.class()] += step_end_bias;
    Bundle::new(metadata, tensors).unwrap()
}

/// Finite weights so large that the logits overflow: every LSTM gate
/// saturates (biases of 1e30), so each unit's output is tanh(1), and the
/// dense weights are f32::MAX, so every logit is +inf from the first step.
fn huge_weights_bundle() -> Bundle {
    let (metadata, mut tensors) = tiny_bundle(1, 0.0).into_parts();
    for t in &mut tensors {
        let value = if t.name == bundle::DENSE_WEIGHTS {
            f32::MAX
        } else if t.shape.len() == 1 && t.name != bundle::DENSE_BIASES {
            1e30
        } else {
            continue;
        };
        t.data.iter_mut().for_each(|v| *v = value);
    }
    Bundle::new(metadata, tensors).expect("huge but finite weights load")
}

fn save_bundle(dir: &Path, name: &str, bundle: &Bundle) -> String {
    let path = dir.join(name);
    bundle::save(&path, bundle, Precision::F32).unwrap();
    path.to_string_lossy().into_owned()
}

/// The first golden chorale's kept sequences as a dataset file.
fn dataset_file(dir: &Path, sequences: usize) -> String {
    let text = std::fs::read_to_string(common::golden_pieces()[0].join("events.txt")).unwrap();
    let sequences = encoding::from_text(&text)
        .unwrap()
        .into_iter()
        .take(sequences)
        .map(|events| polyphony::dataset::Example {
            source: "golden".into(),
            transposition: 0,
            events: events.iter().map(|e| e.class() as u16).collect(),
        })
        .collect();
    let set = polyphony::dataset::Dataset { split: "eval".into(), sources: vec!["golden".into()], sequences, ..Default::default() };
    write(dir, "set.polyds", &polyphony::dataset::encode_dataset(&set).unwrap())
}

fn midi_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "mid")).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A MusicXML score of one part and one measure.
fn score(attributes: &str, notes: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>S</part-name></score-part></part-list>
  <part id="P1"><measure number="1">
    <attributes>{attributes}</attributes>
    {notes}
  </measure></part>
</score-partwise>"#
    )
}

fn note(octave: i32, duration: i64) -> String {
    format!("<note><pitch><step>C</step><octave>{octave}</octave></pitch><duration>{duration}</duration><type>whole</type></note>")
}

/// A MIDI variable-length quantity.
fn vlq(mut value: u32) -> Vec<u8> {
    let mut bytes = vec![(value & 0x7F) as u8];
    value >>= 7;
    while value > 0 {
        bytes.insert(0, 0x80 | (value & 0x7F) as u8);
        value >>= 7;
    }
    bytes
}

/// A format-0 file of one track of `events` (delta bytes included), with
/// `division` ticks per quarter.
fn smf(division: u16, events: &[u8]) -> Vec<u8> {
    let mut track = events.to_vec();
    track.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut bytes = b"MThd".to_vec();
    bytes.extend_from_slice(&6u32.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 1]);
    bytes.extend_from_slice(&division.to_be_bytes());
    bytes.extend_from_slice(b"MTrk");
    bytes.extend_from_slice(&(track.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&track);
    bytes
}

/// One middle C from tick 0 to a tick near 8e9 (just under the reader's
/// limit of 1e10): 30 empty text events 0x0FFFFFFF ticks apart, then its
/// note-off. At 1 tick a quarter that is some 3e10 steps.
fn very_late_midi() -> Vec<u8> {
    let mut events = vec![0x00, 0x90, 60, 100];
    for _ in 0..30 {
        events.extend(vlq(0x0FFF_FFFF));
        events.extend_from_slice(&[0xFF, 0x01, 0x00]);
    }
    events.extend(vlq(0x0FFF_FFFF));
    events.extend_from_slice(&[0x80, 60, 0]);
    smf(1, &events)
}

// ---------------------------------------------------------------- music files

/// Time signatures whose fraction once overflowed: `i64::MIN % -1` in the
/// gcd and `i64::MIN / -1` in the reduction panicked, and
/// `divisions * 4` overflowed. Each is read or refused, never a panic.
#[test]
fn a_time_signature_with_extreme_beats_is_read_or_refused_without_overflow() {
    let dir = Scratch::new("robustness-signature");
    let min = i64::MIN.to_string();
    let max = i64::MAX.to_string();
    let cases: Vec<(String, String, i64)> = vec![
        (min.clone(), "-1".into(), 1),
        (min.clone(), min.clone(), 1),
        (max.clone(), max.clone(), 1),
        ("4".into(), min.clone(), 1),
        ("-1".into(), min.clone(), 1),
        (min.clone(), "1".into(), 1),
        ("1".into(), "0".into(), 1),
        ("4".into(), "4".into(), i64::MAX),
        ("3".into(), "4".into(), i64::MAX / 3),
    ];
    let mut files = Vec::new();
    for (i, (beats, beat_type, divisions)) in cases.iter().enumerate() {
        let text = score(
            &format!("<divisions>{divisions}</divisions><time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time>"),
            &format!("{}{}", note(4, 4), note(4, i64::MAX)),
        );
        for reading in [Reading::Original, Reading::Full] {
            if let Ok(seq) = music_file::read_music_bytes_as("extreme.xml", text.as_bytes(), reading) {
                let _ = polyphony::pipeline::events_report(&seq, 0, false);
                let _ = polyphony::judge::Judgement::of_piece(&seq);
                let _ = generate::primer_events(&Primer::Sequence(seq));
            }
        }
        files.push(write(&dir, &format!("extreme-{i}.xml"), text.as_bytes()));
    }
    let mut args = vec!["events"];
    args.extend(files.iter().map(String::as_str));
    let run = polyphony(&args);
    run.no_panic("events");
    assert!(run.code == Some(0) || run.code == Some(1), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(files.iter().any(|f| line.contains(f.as_str())), "an error line names its file: {line}");
    }
    args[0] = "judge";
    let run = polyphony(&args);
    run.no_panic("judge");
    assert!(run.code == Some(0) || run.code == Some(1), "{}", run.stderr);
}

/// A note of ten million quarters and a MIDI note ending near tick 8e9
/// (some 4e7 and 3e10 steps): the old `voicing` allocated a set of pitches
/// per step (hundreds of gigabytes). Now the work grows with the notes:
/// `judge` (alias `voicing`) and `events` finish at once in a bounded
/// address space, and `generate --primer_midi` refuses the primer by the
/// length limit, naming the file.
#[test]
fn a_note_lasting_millions_of_steps_costs_no_more_than_a_short_one() {
    let dir = Scratch::new("robustness-long");
    let xml = write(&dir, "long.xml", score("<divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time>", &note(4, 10_000_000)).as_bytes());
    let mid = write(&dir, "late.mid", &very_late_midi());
    let seq = music_file::read_music_bytes("late.mid", &very_late_midi()).unwrap();
    assert!(seq.total_time > 1e9, "the note ends very late: {} s", seq.total_time);
    for file in [&xml, &mid] {
        for command in ["judge", "voicing", "events"] {
            let run = polyphony_within(&[command, file], 20, Some(1024));
            assert_eq!(run.code, Some(0), "{command} {file}: {}", run.stderr);
            assert!(run.took < Duration::from_secs(10), "{command} {file} took {:?}", run.took);
        }
        let out = dir.join("out");
        let run = polyphony_within(
            &["generate", "--primer_midi", file, "--output_dir", out.to_str().unwrap(), "--num_outputs", "1", "--seed", "1"],
            20,
            Some(1024),
        );
        run.refused(&format!("generate --primer_midi {file}"), &[file, "the primer's length in steps", "more than the limit of 8192"]);
        assert!(midi_files(&out).is_empty());
    }
    let judged = within(10, "judging a long note", move || polyphony::judge::Judgement::of_piece(&seq).unwrap());
    assert_eq!(judged.notes, 1);
}

/// A minimal zip writer, so that the archive can hold a hand-made deflate
/// stream and lie about its sizes: `(name, method, data, crc, declared size)`.
fn zip_archive(entries: &[(&str, u16, &[u8], u32, u32)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    let u16le = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let u32le = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    for &(name, method, data, crc, size) in entries {
        let offset = out.len() as u32;
        u32le(&mut out, 0x0403_4b50);
        for x in [20, 0, method, 0, 0x21] {
            u16le(&mut out, x);
        }
        for x in [crc, data.len() as u32, size] {
            u32le(&mut out, x);
        }
        u16le(&mut out, name.len() as u16);
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        u32le(&mut central, 0x0201_4b50);
        for x in [20, 20, 0, method, 0, 0x21] {
            u16le(&mut central, x);
        }
        for x in [crc, data.len() as u32, size] {
            u32le(&mut central, x);
        }
        for x in [name.len() as u16, 0, 0, 0, 0] {
            u16le(&mut central, x);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for x in [0, 0, entries.len() as u16, entries.len() as u16] {
        u16le(&mut out, x);
    }
    u32le(&mut out, central.len() as u32);
    u32le(&mut out, central_offset);
    u16le(&mut out, 0);
    out
}

/// Bits as deflate packs them: fields from the least significant bit,
/// Huffman codes from the most significant.
struct Bits {
    bytes: Vec<u8>,
    used: u32,
}

impl Bits {
    fn field(&mut self, value: u32, bits: u32) {
        for i in 0..bits {
            if self.used == 0 {
                self.bytes.push(0);
            }
            *self.bytes.last_mut().unwrap() |= (((value >> i) & 1) as u8) << self.used;
            self.used = (self.used + 1) % 8;
        }
    }

    fn code(&mut self, code: u32, bits: u32) {
        for i in (0..bits).rev() {
            self.field((code >> i) & 1, 1);
        }
    }

    fn zeros(&mut self, mut bits: u64) {
        while bits > 0 && self.used != 0 {
            self.field(0, 1);
            bits -= 1;
        }
        self.bytes.resize(self.bytes.len() + (bits / 8) as usize, 0);
        for _ in 0..bits % 8 {
            self.field(0, 1);
        }
    }
}

/// A deflate stream of one dynamic block that inflates to `1 + 258 * copies`
/// zero bytes at 2 bits per 258 bytes (the format's best ratio, 1032:1):
/// literal 0, then `copies` times "258 bytes from distance 1". The
/// literal/length code has three symbols (285: `0`, literal 0: `10`, end of
/// block: `11`), the distance code two (`0`, `1`).
fn deflate_bomb(copies: u64) -> Vec<u8> {
    let mut b = Bits { bytes: Vec::new(), used: 0 };
    b.field(1, 1); // the last block
    b.field(2, 2); // dynamic Huffman codes
    b.field(286 - 257, 5);
    b.field(2 - 1, 5);
    b.field(18 - 4, 4);
    // Code-length code: 18 (a run of zeros) `0`, 1 `10`, 2 `11`.
    const ORDER: [usize; 18] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
    let mut lengths = [0u32; 19];
    (lengths[18], lengths[1], lengths[2]) = (1, 2, 2);
    for &symbol in &ORDER {
        b.field(lengths[symbol], 3);
    }
    let zeros = |b: &mut Bits, n: u32| {
        b.code(0, 1);
        b.field(n - 11, 7);
    };
    b.code(0b11, 2); // literal 0: length 2
    zeros(&mut b, 138); // literals 1..=138
    zeros(&mut b, 117); // literals 139..=255
    b.code(0b11, 2); // 256, end of block: length 2
    zeros(&mut b, 28); // 257..=284
    b.code(0b10, 2); // 285, length 258: length 1
    b.code(0b10, 2); // distance code 0: length 1
    b.code(0b10, 2); // distance code 1: length 1
    b.code(0b10, 2); // literal 0
    b.zeros(2 * copies); // length 258 `0`, distance 1 `0`
    b.code(0b11, 2); // end of block
    b.bytes
}

fn bomb_mxl(declared_size: u32) -> Vec<u8> {
    let container = br#"<?xml version="1.0"?><container><rootfiles><rootfile full-path="score.xml" media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>"#;
    let bomb = deflate_bomb(8_000_000); // 2.06 GB from 2 MB
    zip_archive(&[
        ("META-INF/container.xml", 0, container, crc32fast::hash(container), container.len() as u32),
        ("score.xml", 8, &bomb, 0, declared_size),
    ])
}

/// A compressed MusicXML whose score inflates to 2 GB: refused by its
/// declared size before inflating, and, when the archive lies about the
/// size, after inflating no more than the limit (the old reader inflated
/// it all into memory).
#[test]
fn an_mxl_zip_bomb_is_refused_before_inflating_past_the_limit() {
    let honest = bomb_mxl(1 + 258 * 8_000_000);
    let lying = bomb_mxl(1_000);
    assert!(honest.len() < 3 << 20);
    // Refused by the declared size, and by what was inflated: the limit and one byte.
    for (what, bytes, found) in [("declared", honest.clone(), "2064000001"), ("lying", lying, "67108865")] {
        let message = within(20, what, move || music_file::read_music_bytes("bomb.mxl", &bytes).unwrap_err().to_string());
        let needle = format!("score.xml: the inflated size in bytes is {found}, more than the limit of 67108864");
        assert!(message.contains(&needle), "{what}: {message:?} should say {needle:?}");
    }
    let dir = Scratch::new("robustness-bomb");
    let file = write(&dir, "bomb.mxl", &honest);
    polyphony_within(&["events", &file], 20, Some(1024)).refused("events bomb.mxl", &[&file, "more than the limit of 67108864"]);
}

/// `polyphony events FILE | head -1`: the reader goes away after one line;
/// the program ends quietly (it once panicked on the broken pipe).
#[test]
fn events_piped_into_head_exits_quietly() {
    let source = common::golden_source(&common::golden_pieces()[0]).to_string_lossy().into_owned();
    // Far more than a pipe holds, so that the writes after `head` left fail.
    let mut child = Command::new(BIN)
        .arg("events")
        .args(std::iter::repeat_n(&source, 40))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, stderr, status) = within(20, "events into a closed pipe", move || {
        let mut first = String::new();
        // Like `head -1`: one line, then the pipe is closed.
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (first, stderr, child.wait().unwrap())
    });
    assert!(first.starts_with("# file:"), "{first}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert_eq!(status.code(), Some(0));
}

// ---------------------------------------------------------------- bundles

/// Bundles whose hparams no network can have, with a matching checksum,
/// once reached a division by zero (batch_size 0 in evaluate) or an
/// index out of bounds (no layers): `evaluate` and `generate` refuse them
/// on load, naming the file and the value; so too 0 steps per quarter and
/// weights that are not numbers.
#[test]
fn bundles_with_unusable_hparams_or_weights_are_refused_by_evaluate_and_generate() {
    let dir = Scratch::new("robustness-bundles");
    let data = dataset_file(&dir, 2);
    let out = dir.join("out");
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for (name, edit, needle) in [
        ("batch0", (|h: &mut HParams| h.batch_size = 0) as fn(&mut HParams), "batch_size must be at least 1, got 0"),
        ("layer0", |h| h.rnn_layer_sizes = vec![0], "rnn_layer_sizes must be a list of positive sizes"),
        ("nolayers", |h| h.rnn_layer_sizes.clear(), "rnn_layer_sizes must be a list of at least one layer"),
    ] {
        let mut bundle = tiny_bundle(1, 0.0);
        edit(&mut bundle.metadata.hparams);
        cases.push((format!("{name}.bundle"), bundle::to_bytes(&bundle, Precision::F32), needle));
    }
    let mut steps = tiny_bundle(1, 0.0);
    steps.metadata.steps_per_quarter = 0;
    cases.push(("steps0.bundle".into(), bundle::to_bytes(&steps, Precision::F32), "0 steps per quarter note"));
    for (name, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY), ("minus-inf", f32::NEG_INFINITY)] {
        let (metadata, mut tensors) = tiny_bundle(1, 0.0).into_parts();
        tensors[0].data[3] = bad;
        cases.push((format!("{name}.bundle"), bundle::write_parts(&metadata, &tensors, Precision::F32), "not numbers (NaN or infinite)"));
    }
    for (name, bytes, needle) in &cases {
        let file = write(&dir, name, bytes);
        polyphony(&["evaluate", "--bundle_file", &file, "--sequence_example_file", &data]).refused(&format!("evaluate {name}"), &[&file, needle]);
        let run = polyphony(&["generate", "--bundle_file", &file, "--output_dir", out.to_str().unwrap(), "--num_outputs", "1", "--num_steps", "8"]);
        run.refused(&format!("generate {name}"), &[&file, needle]);
        assert!(midi_files(&out).is_empty());
    }
}

/// Finite weights large enough to make the logits infinite load (they are
/// numbers), but generation stops at the first such step with an error
/// naming it (the old sampler drew from NaN probabilities forever), and
/// `evaluate` exits 1 instead of printing `loss NaN` with exit 0.
#[test]
fn logits_that_are_not_numbers_end_generation_and_evaluation_with_an_error() {
    let bundle = huge_weights_bundle();
    let options = GenerateOptions { num_outputs: 2, num_steps: 32, seed: Some(1), ..GenerateOptions::default() };
    let b = bundle.clone();
    let result = within(20, "generating from huge weights", move || generate::generate_with_bundle(&b, &options));
    assert!(matches!(result, Err(GenerateError::NotANumber { .. })), "{result:?}");
    let dir = Scratch::new("robustness-huge");
    let file = save_bundle(&dir, "huge.bundle", &bundle);
    let data = dataset_file(&dir, 2);
    let out = dir.join("out");
    polyphony_within(&["generate", "--bundle_file", &file, "--output_dir", out.to_str().unwrap(), "--num_outputs", "2", "--num_steps", "32"], 20, None)
        .refused("generate", &["is not a number (NaN or infinite logits)"]);
    assert!(midi_files(&out).is_empty());
    let run = polyphony_within(&["evaluate", "--bundle_file", &file, "--sequence_example_file", &data], 30, None);
    run.refused("evaluate", &["the evaluation loss is not a number"]);
    assert!(!run.stdout.contains("loss NaN"), "{}", run.stdout);
}

/// A network that never ends a step (STEP_END impossible), sampled as the
/// original did (no mask to force the end): an error once a step holds
/// more events than pitches can give, instead of a loop without end.
#[test]
fn a_model_that_cannot_end_a_step_is_an_error_not_a_hang() {
    let bundle = tiny_bundle(2, -1e30);
    let options = GenerateOptions { num_outputs: 2, num_steps: 16, mask_ignored_events: false, seed: Some(1), ..GenerateOptions::default() };
    let result = within(20, "generating without STEP_END", move || generate::generate_with_bundle(&bundle, &options));
    match result {
        Err(GenerateError::EndlessStep { events, .. }) => assert!(events > polyphony::limits::MAX_EVENTS_PER_STEP),
        other => panic!("expected an endless step, got {other:?}"),
    }
}

// ---------------------------------------------------------------- requests

/// Requests beyond the limits are refused before anything is allocated,
/// with the limit named: the product of huge counts once overflowed (a
/// panic, or a wrapped small batch), a million outputs or steps ran out of
/// memory, and a temperature of 1e-38 made every logit infinite.
#[test]
fn generate_refuses_requests_beyond_the_limits() {
    let dir = Scratch::new("robustness-limits");
    let file = save_bundle(&dir, "tiny.bundle", &tiny_bundle(3, 3.0));
    let out = dir.join("out");
    let cases: [(&[&str], &str); 7] = [
        (&["--beam_size", "9223372036854775808", "--branch_factor", "2"], "num_outputs × beam_size × branch_factor is 184467440737095516160, more than the limit of 1024"),
        (&["--num_outputs", "18446744073709551615"], "num_outputs is 18446744073709551615, more than the limit of 256"),
        (&["--num_outputs", "1000000"], "num_outputs is 1000000, more than the limit of 256"),
        (&["--beam_size", "1000000"], "more than the limit of 1024"),
        (&["--branch_factor", "1000000"], "more than the limit of 1024"),
        (&["--num_steps", "1000000000"], "num_steps is 1000000000, more than the limit of 8192"),
        (&["--temperature", "1e-38"], "temperature must be between 0.001 and 1000"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["generate", "--bundle_file", &file, "--output_dir", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = polyphony_within(&args, 20, Some(1024));
        run.refused(&format!("{extra:?}"), &[needle]);
        assert!(run.took < Duration::from_secs(10), "{extra:?} took {:?}", run.took);
        assert!(midi_files(&out).is_empty(), "{extra:?} wrote files");
    }
}

/// An output folder that is a file is refused before any work: a request
/// that would take minutes ends at once (it once generated everything, then
/// failed to write).
#[test]
fn an_output_dir_that_is_a_file_is_refused_before_generating() {
    let dir = Scratch::new("robustness-outfile");
    let taken = write(&dir, "taken", b"not a folder");
    let run = polyphony_within(&["generate", "--output_dir", &taken, "--num_outputs", "256", "--num_steps", "8192", "--seed", "1"], 20, None);
    run.refused("generate into a file", &[&taken]);
    assert_eq!(std::fs::read(&taken).unwrap(), b"not a folder");
}

/// Two runs with the same seed into the same folder at the same moment
/// name their files alike; neither replaces the other's.
#[test]
fn two_generate_runs_into_one_folder_never_overwrite_each_other() {
    let dir = Scratch::new("robustness-twice");
    let file = save_bundle(&dir, "tiny.bundle", &tiny_bundle(4, 3.0));
    let out = dir.join("out");
    let args = ["generate", "--bundle_file", &file, "--output_dir", out.to_str().unwrap(), "--num_outputs", "3", "--num_steps", "16", "--seed", "5"];
    let children: Vec<_> = (0..2).map(|_| Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()).collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let files = midi_files(&out);
    assert_eq!(files.len(), 6, "{files:?}");
    let first = std::fs::read(&files[0]).unwrap();
    assert!(files.iter().filter(|f| std::fs::read(f).unwrap() == first).count() >= 2, "the same seed wrote the same music twice: {files:?}");
}

// ---------------------------------------------------------------- training and evaluation

/// Options no training can use are refused before any work: the run
/// folder is not even made (a window of 0 events once looped forever,
/// the others trained into NaN).
#[test]
fn train_refuses_unusable_options_before_training() {
    let dir = Scratch::new("robustness-train-options");
    let data = dataset_file(&dir, 2);
    let cases: [(&[&str], &str); 7] = [
        (&["--bptt_window", "0"], "bptt_window must be at least 1"),
        (&["--bptt_window", "100000000"], "bptt_window is 100000000, more than the limit of 65536"),
        (&["--hparams", "bptt_window=0"], "unknown hparam \"bptt_window\""),
        (&["--hparams", "dropout_keep_prob=0"], "dropout_keep_prob must be in (0, 1], got 0"),
        (&["--hparams", "dropout_keep_prob=2"], "dropout_keep_prob must be in (0, 1], got 2"),
        (&["--hparams", "clip_norm=-1"], "clip_norm must be a positive number, got -1"),
        (&["--hparams", "learning_rate=nan"], "learning_rate must be a positive number, got NaN"),
    ];
    for (i, (extra, needle)) in cases.into_iter().enumerate() {
        let run_dir = dir.join(format!("run{i}"));
        let mut args = vec!["train", "--run_dir", run_dir.to_str().unwrap(), "--sequence_example_file", &data, "--num_training_steps", "1"];
        args.extend_from_slice(extra);
        polyphony_within(&args, 30, None).refused(&format!("{extra:?}"), &[needle]);
        assert!(!run_dir.exists(), "{extra:?}: the run folder was made");
    }
}

/// A checkpoint whose hparams say batch_size=0 (once a division by zero
/// when the epoch was laid out) is refused as damaged, naming the file and
/// the value, by `train`, `generate --run_dir` and the library.
#[test]
fn resuming_a_checkpoint_with_batch_size_0_is_a_clear_error() {
    let dir = Scratch::new("robustness-batch0");
    let data = dataset_file(&dir, 2);
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let hp = HParams { batch_size: 4, rnn_layer_sizes: vec![8], ..HParams::default() };
    let model = Model::init(&hp, &Device::flex(), 1);
    let adam = train::AdamState::new(&model.parameters());
    let state: train::TrainState = serde_json::from_value(serde_json::json!({
        "step": 3, "seed": 0, "hparams": HParams { batch_size: 0, ..hp.clone() }, "bptt_window": 64,
        "dataset": "set.polyds", "elapsed_secs": 1.0, "last_train": null, "last_eval": null
    }))
    .unwrap();
    let path = train::checkpoint_path(&run_dir);
    train::save_checkpoint(&path, &train::Checkpoint { model, adam, state }).unwrap();
    let needles = [path.to_str().unwrap(), "damaged checkpoint", "batch_size must be at least 1, got 0"];
    let message = match train::load_checkpoint(&run_dir, &Device::flex()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a checkpoint with batch_size 0 loaded"),
    };
    assert!(needles.iter().all(|n| message.contains(n)), "{message}");
    let run = run_dir.to_str().unwrap();
    polyphony_within(&["train", "--run_dir", run, "--sequence_example_file", &data, "--num_training_steps", "5"], 30, None).refused("train", &needles);
    let out = dir.join("out");
    polyphony_within(&["generate", "--run_dir", run, "--output_dir", out.to_str().unwrap(), "--num_outputs", "1", "--num_steps", "8"], 30, None)
        .refused("generate --run_dir", &needles);
}

/// An empty dataset has no loss (the old evaluate printed a loss of 0, or
/// NaN, with exit code 0): refused by `evaluate`, `train --eval` and the
/// library.
#[test]
fn evaluate_refuses_an_empty_dataset() {
    let dir = Scratch::new("robustness-empty");
    let bundle = tiny_bundle(5, 0.0);
    let file = save_bundle(&dir, "tiny.bundle", &bundle);
    let data = dataset_file(&dir, 0);
    polyphony(&["evaluate", "--bundle_file", &file, "--sequence_example_file", &data]).refused("evaluate", &[&data, "holds no sequences"]);
    let model = Model::from_bundle(&bundle, &Device::flex());
    let message = train::evaluate(&model, &[] as &[&[u16]], 64).err().expect("refused").to_string();
    assert!(message.contains("the evaluation set holds no sequences"), "{message}");
    let message = train::evaluate(&model, &[&[0u16][..]], 64).err().expect("refused").to_string();
    assert!(message.contains("holds no sequences"), "a lone START has nothing to predict: {message}");
}

/// Training writes its checkpoints atomically: nothing temporary is left
/// in the run folder afterwards, and one left by a killed write is cleared
/// when the run resumes.
#[test]
fn training_leaves_no_temporary_checkpoint_behind() {
    let dir = Scratch::new("robustness-temps");
    let run_dir = dir.join("run");
    let text = std::fs::read_to_string(common::golden_pieces()[0].join("events.txt")).unwrap();
    let sequences: Vec<Vec<u16>> = encoding::from_text(&text).unwrap().iter().map(|s| s.iter().map(|e| e.class() as u16).collect()).collect();
    let hp = HParams::default().with_overrides("batch_size=2,rnn_layer_sizes=[8]").unwrap();
    let mut options = train::TrainOptions { num_training_steps: Some(1), bptt_window: 64, checkpoint_secs: 0, log_every: 1, ..train::TrainOptions::new(&run_dir, hp) };
    let stop = AtomicBool::new(false);
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    train::train(&options, &sequences, "golden", &stop, &|_| {}).unwrap();
    assert_eq!(names(&run_dir), ["checkpoint.safetensors", "curves.svg", "metrics.jsonl"]);
    std::fs::write(run_dir.join(".checkpoint.safetensors.99999.partial"), b"half a checkpoint").unwrap();
    options.num_training_steps = Some(2);
    let report = train::train(&options, &sequences, "golden", &stop, &|_| {}).unwrap();
    assert_eq!((report.resumed_from, report.final_step), (Some(1), 2));
    assert_eq!(names(&run_dir), ["checkpoint.safetensors", "curves.svg", "metrics.jsonl"]);
}
