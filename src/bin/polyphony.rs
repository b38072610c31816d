//! The command line: parses arguments and calls the library, nothing more.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polyphony::{encoding, midi, music_file, pipeline};

#[derive(Parser)]
#[command(name = "polyphony", version, about = "Bach-style chorales with a Polyphony RNN")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print each file's polyphonic event sequences (split, quantized and
    /// extracted as for training), `---` between sequences.
    Events {
        /// MIDI (.mid, .midi), MusicXML (.xml, .musicxml) or compressed MusicXML (.mxl) files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Transpose by this many semitones first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        transpose: i32,
        /// Print class indices (0-258) instead of event names.
        #[arg(long)]
        index: bool,
    },
    /// Turn an event file (names or class indices, `---` between sequences)
    /// back into MIDI.
    Decode {
        events: PathBuf,
        /// The MIDI file to write; with several sequences, `_2`, `_3`, ... are
        /// added before the extension for the second and later ones.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Events { files, transpose, index } => events(&files, transpose, index),
        Command::Decode { events, output } => decode(&events, &output),
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Prints one error line naming the file.
fn report(path: &Path, error: impl std::fmt::Display) {
    eprintln!("polyphony: {}: {error}", path.display());
}

/// Every file is processed even when some fail; the exit code says whether
/// all succeeded.
fn events(files: &[PathBuf], transpose: i32, index: bool) -> bool {
    let mut ok = true;
    for path in files {
        let text = music_file::read_music_file(path)
            .and_then(|seq| pipeline::events_report(&seq, transpose, index));
        match text {
            Ok(text) => {
                if files.len() > 1 {
                    println!("# file: {}", path.display());
                }
                print!("{text}");
            }
            Err(e) => {
                report(path, e);
                ok = false;
            }
        }
    }
    ok
}

fn decode(events_path: &Path, output: &Path) -> bool {
    let sequences = match std::fs::read_to_string(events_path)
        .map_err(polyphony::Error::from)
        .and_then(|text| encoding::from_text(&text))
    {
        Ok(s) if s.is_empty() => {
            report(events_path, "no events in the file");
            return false;
        }
        Ok(s) => s,
        Err(e) => {
            report(events_path, e);
            return false;
        }
    };
    let mut ok = true;
    for (i, events) in sequences.iter().enumerate() {
        let path = numbered(output, i);
        let mut seq = encoding::decode_default(events);
        midi::separate_unisons(&mut seq);
        let bytes = midi::write_midi(&seq);
        match std::fs::write(&path, bytes) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                report(&path, e);
                ok = false;
            }
        }
    }
    ok
}

/// `out.mid` for the first sequence, `out_2.mid` for the second, ...
fn numbered(path: &Path, i: usize) -> PathBuf {
    if i == 0 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}_{}.{}", i + 1, ext.to_string_lossy()),
        None => format!("{stem}_{}", i + 1),
    };
    path.with_file_name(name)
}
