//! The command line as a person uses it: real files written, the binary run,
//! output and exit codes checked.

mod common;

use common::Scratch;

use std::path::Path;
use std::process::{Command, Output};

fn polyphony(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polyphony")).args(args).output().expect("binary runs")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// A minimal MusicXML score with one note of the given octave (C).
fn score_with_octave(octave: i32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>S</part-name></score-part></part-list>
  <part id="P1"><measure number="1">
    <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
    <note><pitch><step>C</step><octave>{octave}</octave></pitch><duration>4</duration><type>whole</type></note>
  </measure></part>
</score-partwise>"#
    )
}

/// A zip archive holding one file that is not a MusicXML container.
fn zip_without_musicxml() -> Vec<u8> {
    use std::io::Write;
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    zip.start_file::<_, ()>("readme.txt", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"hello").unwrap();
    zip.finish().unwrap();
    buffer.into_inner()
}

#[test]
fn bad_files_each_give_one_error_line_and_the_rest_is_processed() {
    let dir = Scratch::new("cli-bad");
    let good = common::golden_source(&common::golden_pieces()[0]).to_string_lossy().into_owned();
    let valid_midi = std::fs::read(common::golden_pieces()[0].join("input.mid")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (write(&dir, "truncated.mid", &valid_midi[..valid_midi.len() / 2]), "MIDI"),
        (write(&dir, "not-midi.mid", b"this is not a MIDI file at all"), "MIDI"),
        (write(&dir, "empty.mid", b""), "empty"),
        (write(&dir, "empty.xml", b""), "empty"),
        (write(&dir, "not-musicxml.mxl", &zip_without_musicxml()), "container"),
        (write(&dir, "malformed.xml", b"<score-partwise><part id=\"P1\"></score-partwise>"), "malformed XML"),
        (write(&dir, "high.xml", score_with_octave(12).as_bytes()), "outside the MIDI range"),
    ];
    let mut args = vec!["events"];
    args.extend(cases.iter().map(|(p, _)| p.as_str()));
    args.push(&good);
    let out = polyphony(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one line per bad file: {stderr}");
    for ((path, problem), line) in cases.iter().zip(&lines) {
        assert!(line.contains(path.as_str()), "{line:?} names {path}");
        assert!(line.contains(problem), "{line:?} says {problem:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The good file after the bad ones still gets its events.
    assert!(stdout.contains(&format!("# file: {good}")), "{stdout}");
    assert!(stdout.contains("START"), "{stdout}");
}

#[test]
fn events_prints_indices_and_transposes() {
    let source = common::golden_source(&common::golden_pieces()[0]).to_string_lossy().into_owned();
    let names = String::from_utf8(polyphony(&["events", &source]).stdout).unwrap();
    let up = String::from_utf8(polyphony(&["events", "--transpose", "2", &source]).stdout).unwrap();
    let indices = String::from_utf8(polyphony(&["events", "--index", &source]).stdout).unwrap();

    let first_note = |text: &str| text.lines().find(|l| l.starts_with("NEW_NOTE")).unwrap().to_string();
    let pitch = |line: String| line.split_whitespace().nth(1).unwrap().parse::<i32>().unwrap();
    assert_eq!(pitch(first_note(&up)), pitch(first_note(&names)) + 2);
    assert_eq!(indices.lines().next(), Some("0"));
    assert_eq!(indices.lines().count(), names.lines().count());
}

#[test]
fn decode_writes_midi_that_reads_back_to_the_same_events() {
    let dir = Scratch::new("cli-decode");
    let piece = &common::golden_pieces()[0];
    let events = piece.join("events.txt").to_string_lossy().into_owned();
    let out_mid = dir.join("out.mid").to_string_lossy().into_owned();
    let status = polyphony(&["decode", &events, "-o", &out_mid]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let again = String::from_utf8(polyphony(&["events", &out_mid]).stdout).unwrap();
    let golden = std::fs::read_to_string(&events).unwrap();
    let first_golden = golden.split("---\n").next().unwrap();
    assert_eq!(again, first_golden);
}

#[test]
fn decode_reports_a_bad_line() {
    let dir = Scratch::new("cli-decode-bad");
    let path = write(&dir, "bad.txt", b"START\nNEW_NOTE 60\nNEW_NOTE 200\n");
    let out = polyphony(&["decode", &path, "-o", &dir.join("x.mid").to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("bad.txt") && stderr.contains("line 3"), "{stderr}");
}

#[test]
fn generate_uses_the_built_in_model_by_default() {
    let dir = Scratch::new("cli-default-model");
    let out = polyphony(&[
        "generate", "--output_dir", &dir.to_string_lossy(), "--num_outputs", "2", "--num_steps", "16",
        "--primer_pitches", "[67,64,60]", "--seed", "3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2);
    for file in files {
        let seq = polyphony::midi::read_midi(&std::fs::read(&file).unwrap()).unwrap();
        // The primer chord opens every output.
        let at_zero: Vec<i32> = seq.notes.iter().filter(|n| n.start_time == 0.0).map(|n| n.pitch).collect();
        for pitch in [60, 64, 67] {
            assert!(at_zero.contains(&pitch), "{}: {at_zero:?}", file.display());
        }
    }
}

#[test]
fn harmonize_is_as_long_as_the_melody_unless_asked_for_more() {
    let dir = Scratch::new("cli-harmonize");
    // Two bars at 120 qpm: 32 sixteenths, 4 seconds.
    let melody = "[60,-2,-2,-2,62,-2,-2,-2,64,-2,-2,-2,65,-2,-2,-2,67,-2,-2,-2,65,-2,-2,-2,64,-2,-2,-2,62,-2,-2,-2]";
    let last_end = |steps: Option<&str>| {
        let out_dir = dir.join(steps.unwrap_or("default"));
        let mut args = vec!["harmonize", "--output_dir", out_dir.to_str().unwrap(), "--num_outputs", "1", "--primer_melody", melody, "--seed", "2"];
        if let Some(steps) = steps {
            args.extend(["--num_steps", steps]);
        }
        let out = polyphony(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let file = std::fs::read_dir(&out_dir).unwrap().next().unwrap().unwrap().path();
        let seq = polyphony::midi::read_midi(&std::fs::read(file).unwrap()).unwrap();
        seq.notes.iter().map(|n| n.end_time).fold(0.0, f64::max)
    };
    assert_eq!(last_end(None), 4.0, "the melody's length, nothing added");
    let longer = last_end(Some("64"));
    assert!(longer > 4.0 && longer <= 8.0, "two more bars asked for: the last note ends at {longer} s");
}

#[test]
fn judge_counts_voices_per_step_and_reports_bad_files() {
    let dir = Scratch::new("cli-voicing");
    // Two steps of a four-voice chord, then two of a single note; decoded to MIDI.
    let events = write(
        &dir,
        "four.txt",
        b"START\nNEW_NOTE 48\nNEW_NOTE 55\nNEW_NOTE 64\nNEW_NOTE 72\nSTEP_END\n\
CONTINUED_NOTE 48\nCONTINUED_NOTE 55\nCONTINUED_NOTE 64\nCONTINUED_NOTE 72\nSTEP_END\n\
NEW_NOTE 60\nSTEP_END\nCONTINUED_NOTE 60\nSTEP_END\nEND\n",
    );
    let mid = dir.join("four.mid").to_string_lossy().into_owned();
    assert!(polyphony(&["decode", &events, "-o", &mid]).status.success());
    let bad = write(&dir, "bad.mid", b"not midi");
    let out = polyphony(&["judge", &mid, &bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a bad file fails the run");
    assert!(stderr.contains("bad.mid"), "{stderr}");
    let row = |name: &str| {
        let line = stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row: {stdout}"));
        line.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>()
    };
    // steps, mean voices (10 / 4), four-voice share, no changes (so no
    // parallels, hidden intervals or crossings), every note in C major,
    // no wide spacing, none out of range, mean note length (10 / 5), no
    // soprano move, the key.
    let four = row("four.mid");
    assert_eq!(four[..14], ["4", "2.50", "50.0%", "0.0", "0.0", "0.0", "0.0", "0.0", "100.0%", "0.0%", "0.0%", "2.00", "0.00", "C"]);
    assert_eq!(row("all")[..13], four[..13]);
    // The old name still works.
    assert!(polyphony(&["voicing", &mid]).status.success());
}
