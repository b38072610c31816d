//! The command line: parses arguments and calls the library, nothing more.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polyphony::hparams::HParams;
use polyphony::{bench, bundle, dataset, encoding, midi, music_file, pipeline, train};

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
    /// Make the training and eval datasets from a corpus of music files
    /// (the original's polyphony_rnn_create_dataset).
    #[command(alias = "create_dataset")]
    CreateDataset(CreateDatasetArgs),
    /// Train a model on a dataset made by create-dataset, resuming from the
    /// run directory's checkpoint (the original's polyphony_rnn_train).
    Train(TrainArgs),
    /// Write a run's latest checkpoint as one bundle file, the file the web
    /// page and `generate --bundle_file` load.
    Bundle {
        #[arg(long = "run_dir", alias = "run-dir")]
        run_dir: PathBuf,
        #[arg(long, short)]
        output: PathBuf,
        #[arg(long = "bundle_description", alias = "bundle-description", default_value = "")]
        bundle_description: String,
        /// Store the weights as 16-bit floats (half the size).
        #[arg(long)]
        half: bool,
    },
    /// Metrics of a bundle on a dataset: loss, perplexity, accuracy,
    /// event/no-event accuracy and per-class accuracy.
    Evaluate {
        #[arg(long = "bundle_file", alias = "bundle-file")]
        bundle_file: PathBuf,
        #[arg(long = "sequence_example_file", alias = "sequence-example-file")]
        sequence_example_file: PathBuf,
        #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = polyphony::train::DEFAULT_BPTT_WINDOW)]
        bptt_window: usize,
    },
    /// Speed tables.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training throughput of the default model and batch.
    Train {
        /// Draw batches from this dataset; without it, synthetic sequences
        /// with the Bach training set's lengths.
        #[arg(long = "sequence_example_file", alias = "sequence-example-file")]
        sequence_example_file: Option<PathBuf>,
        /// Timed steps (after one warm-up step).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value = "")]
        hparams: String,
        #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = polyphony::train::DEFAULT_BPTT_WINDOW)]
        bptt_window: usize,
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DeviceArg {
    /// burn's CPU backend (flex).
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal or DirectX).
    Gpu,
}

impl From<DeviceArg> for polyphony::train::DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => Self::Cpu,
            DeviceArg::Gpu => Self::Gpu,
        }
    }
}

/// The original's flag names; kebab-case ones work too.
#[derive(clap::Args)]
struct TrainArgs {
    /// Where checkpoints, metrics.jsonl and curves.svg live.
    #[arg(long = "run_dir", alias = "run-dir")]
    run_dir: PathBuf,
    /// The training set (or, with --eval, the eval set): a .polyds file.
    #[arg(long = "sequence_example_file", alias = "sequence-example-file")]
    sequence_example_file: PathBuf,
    /// Overrides of the default hparams, e.g.
    /// "batch_size=64,rnn_layer_sizes=[256,256,256],learning_rate=0.001".
    /// When resuming, leave it out to keep the run's own.
    #[arg(long)]
    hparams: Option<String>,
    /// Stop after this many steps in all (default: until Ctrl-C).
    #[arg(long = "num_training_steps", alias = "num-training-steps")]
    num_training_steps: Option<u64>,
    /// Evaluate the run's checkpoint on the given set instead of training.
    #[arg(long)]
    eval: bool,
    /// With --eval: only the first N sequences.
    #[arg(long = "num_eval_examples", alias = "num-eval-examples")]
    num_eval_examples: Option<usize>,
    /// While training, also evaluate on this set every --eval_every steps
    /// (for the learning curves).
    #[arg(long = "eval_sequence_example_file", alias = "eval-sequence-example-file")]
    eval_sequence_example_file: Option<PathBuf>,
    #[arg(long = "eval_every", alias = "eval-every", default_value_t = 100)]
    eval_every: u64,
    /// With an eval set: stop after this many evaluations in a row without
    /// a better eval loss (the best model is kept in best.safetensors).
    #[arg(long)]
    patience: Option<u64>,
    /// Seed of initialisation, batch order and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Events per truncated-backpropagation window.
    #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = polyphony::train::DEFAULT_BPTT_WINDOW)]
    bptt_window: usize,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Seconds between checkpoints (one is also written on Ctrl-C and at the end).
    #[arg(long = "checkpoint_secs", alias = "checkpoint-secs", default_value_t = 120)]
    checkpoint_secs: u64,
    /// Steps between records in metrics.jsonl.
    #[arg(long = "log_every", alias = "log-every", default_value_t = 10)]
    log_every: u64,
}

/// The original's snake_case flag names; kebab-case ones work too.
#[derive(clap::Args)]
struct CreateDatasetArgs {
    /// Music files and directories, searched recursively for .mid, .midi,
    /// .xml, .musicxml and .mxl files.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Where training_poly_tracks.polyds and eval_poly_tracks.polyds are
    /// written (created if missing).
    #[arg(long = "output_dir", alias = "output-dir")]
    output_dir: PathBuf,
    /// Share of pieces drawn at random for the eval set, 0 to 1 [default: 0.1].
    #[arg(long = "eval_ratio", alias = "eval-ratio", conflicts_with = "eval_pieces")]
    eval_ratio: Option<f64>,
    /// Seed of the random split: the same seed gives the same files.
    #[arg(long, default_value_t = dataset::DEFAULT_SEED)]
    seed: u64,
    /// A file naming the eval pieces, one file name per line, instead of a
    /// random split (e.g. to reuse the original's split).
    #[arg(long = "eval_pieces", alias = "eval-pieces")]
    eval_pieces: Option<PathBuf>,
    /// Draw every piece on its own, as the original did, even when another
    /// piece holds the same music (by default such pieces stay on one side).
    #[arg(long = "split_duplicates", alias = "split-duplicates")]
    split_duplicates: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Events { files, transpose, index } => events(&files, transpose, index),
        Command::Decode { events, output } => decode(&events, &output),
        Command::CreateDataset(args) => create_dataset(args),
        Command::Train(args) => train(args),
        Command::Bench { what } => bench(what),
        Command::Evaluate { bundle_file, sequence_example_file, bptt_window } => {
            evaluate_bundle(&bundle_file, &sequence_example_file, bptt_window)
        }
        Command::Bundle { run_dir, output, bundle_description, half } => write_bundle(&run_dir, &output, &bundle_description, half),
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

/// Unreadable music files are reported and skipped (exit 0); a missing
/// input, a bad option value or an unwritable output stops with exit 1.
fn create_dataset(args: CreateDatasetArgs) -> bool {
    let mut options = dataset::CreateOptions::new(args.output_dir);
    options.seed = args.seed;
    options.eval_ratio = args.eval_ratio.unwrap_or(dataset::DEFAULT_EVAL_RATIO);
    options.keep_duplicates_together = !args.split_duplicates;
    if let Some(list) = &args.eval_pieces {
        match std::fs::read_to_string(list) {
            Ok(text) => options.eval_pieces = Some(dataset::parse_piece_list(&text)),
            Err(e) => {
                report(list, e);
                return false;
            }
        }
    }
    // Progress only on a terminal: in logs, the updates in place are noise.
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |done: usize, total: usize| {
        if on_terminal {
            eprint!("\rprocessed {done}/{total} files");
        }
    };
    let result = dataset::create_dataset(&args.input, &options, &progress);
    if on_terminal {
        eprintln!();
    }
    match result {
        Ok(summary) => {
            for failure in &summary.failures {
                eprintln!("polyphony: {failure} (skipped)");
            }
            print!("{summary}");
            true
        }
        Err(e) => {
            eprintln!("polyphony: {e}");
            false
        }
    }
}

/// Reads a .polyds file's sequences.
fn load_sequences(path: &Path) -> Result<Vec<Vec<u16>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dataset = dataset::read_dataset(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(dataset.sequences.into_iter().map(|e| e.events).collect())
}

fn fail(message: impl std::fmt::Display) -> bool {
    eprintln!("polyphony: {message}");
    false
}

/// The hparams of a run: the given overrides on the defaults, or the run's
/// own when resuming without --hparams.
fn run_hparams(args: &TrainArgs) -> Result<HParams, String> {
    match &args.hparams {
        Some(text) => HParams::default().with_overrides(text),
        None => Ok(train::load_checkpoint(&args.run_dir, &polyphony::train::DeviceChoice::Cpu.device())?
            .map_or_else(HParams::default, |c| c.state.hparams)),
    }
}

fn train(args: TrainArgs) -> bool {
    let hparams = match run_hparams(&args) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let mut sequences = match load_sequences(&args.sequence_example_file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if args.eval {
        if let Some(n) = args.num_eval_examples {
            sequences.truncate(n);
        }
        return evaluate_run(&args, &sequences);
    }
    let eval_sequences = match args.eval_sequence_example_file.as_deref().map(load_sequences).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let options = train::TrainOptions {
        run_dir: args.run_dir.clone(),
        hparams,
        num_training_steps: args.num_training_steps,
        seed: args.seed,
        bptt_window: args.bptt_window,
        device: args.device.into(),
        checkpoint_secs: args.checkpoint_secs,
        log_every: args.log_every.max(1),
        eval_sequences,
        eval_every: args.eval_every.max(1),
        patience: args.patience,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)) {
        eprintln!("polyphony: cannot catch Ctrl-C ({e}); checkpoints are still written every {} s", args.checkpoint_secs);
    }
    let bar = progress_bar(args.num_training_steps);
    let name = args.sequence_example_file.display().to_string();
    let result = train::train(&options, &sequences, &name, &stop, &|p| {
        bar.set_position(p.step);
        bar.set_message(format!(
            "loss {:.4}  perplexity {:.3}  accuracy {:.3}  {:.0} events/s",
            p.metrics.loss, p.metrics.perplexity, p.metrics.accuracy, p.events_per_sec
        ));
    });
    bar.finish();
    match result {
        Ok(report) => {
            if let Some(step) = report.resumed_from {
                println!("resumed from step {step}");
            }
            let how = if report.interrupted {
                "interrupted at"
            } else if report.stopped_early {
                "eval loss stopped improving; stopped at"
            } else {
                "finished at"
            };
            println!("{how} step {}; checkpoint in {}", report.final_step, train::checkpoint_path(&args.run_dir).display());
            true
        }
        Err(e) => fail(e),
    }
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(n) => (indicatif::ProgressBar::new(n), "step {pos}/{len} [{bar:25}] {msg}  ETA {eta}"),
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} step {pos} {msg}  ({elapsed})"),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    bar
}

/// `train --eval`: the run's checkpoint on the given set, logged beside the
/// training metrics.
fn evaluate_run(args: &TrainArgs, sequences: &[Vec<u16>]) -> bool {
    let device = polyphony::train::DeviceChoice::from(args.device).device();
    let checkpoint = match train::load_checkpoint(&args.run_dir, &device) {
        Ok(Some(c)) => c,
        Ok(None) => return fail(format!("{}: no checkpoint to evaluate", args.run_dir.display())),
        Err(e) => return fail(e),
    };
    let seqs: Vec<&[u16]> = sequences.iter().map(Vec::as_slice).collect();
    let (counts, per_class) = train::evaluate(&checkpoint.model, &seqs, checkpoint.model.hparams.batch_size, args.bptt_window);
    let m = counts.metrics();
    if let Err(e) = train::log_eval(&args.run_dir, checkpoint.state.step, checkpoint.state.elapsed_secs, m) {
        return fail(e);
    }
    println!("step {}:", checkpoint.state.step);
    print_evaluation(&counts, &per_class, sequences.len());
    true
}

fn print_evaluation(counts: &train::Counts, per_class: &[[u64; 2]], sequences: usize) {
    let m = counts.metrics();
    println!("{} events in {sequences} sequences", counts.events);
    println!(
        "loss {:.5}  perplexity {:.4}  accuracy {:.4}  event_accuracy {:.4}  no_event_accuracy {:.4}",
        m.loss, m.perplexity, m.accuracy, m.event_accuracy, m.no_event_accuracy
    );
    println!("per-class accuracy (classes seen in the set):");
    for (class, [correct, total]) in per_class.iter().enumerate().filter(|(_, c)| c[1] > 0) {
        println!("  {:<20} {:>7.4}  ({correct}/{total})", train::class_name(class), *correct as f64 / *total as f64);
    }
}

/// `evaluate`: any bundle on any dataset file.
fn evaluate_bundle(bundle_file: &Path, dataset_file: &Path, window: usize) -> bool {
    let device = polyphony::train::DeviceChoice::Cpu.device();
    let model = match bundle::load(bundle_file).and_then(|b| polyphony::model::Model::from_bundle(&b, &device)) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let sequences = match load_sequences(dataset_file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let seqs: Vec<&[u16]> = sequences.iter().map(Vec::as_slice).collect();
    let (counts, per_class) = train::evaluate(&model, &seqs, model.hparams.batch_size, window);
    print_evaluation(&counts, &per_class, sequences.len());
    true
}

fn bench(what: BenchCommand) -> bool {
    match what {
        BenchCommand::Train { sequence_example_file, steps, hparams, bptt_window, device } => {
            let hparams = match HParams::default().with_overrides(&hparams) {
                Ok(h) => h,
                Err(e) => return fail(e),
            };
            let (examples, source) = match sequence_example_file {
                Some(path) => match load_sequences(&path) {
                    Ok(s) => (s, path.display().to_string()),
                    Err(e) => return fail(e),
                },
                None => (bench::synthetic_examples(2691, 7), "synthetic sequences (Bach lengths)".to_string()),
            };
            let row = bench::bench_train(&hparams, &examples, steps.max(1), bptt_window, device.into());
            println!("training throughput: rnn_layer_sizes {:?}, batch {}, bptt window {bptt_window}, {source}", hparams.rnn_layer_sizes, hparams.batch_size);
            println!("| steps | real events/s | padded events/s | steps/s | peak memory |");
            println!("|---|---|---|---|---|");
            println!("| {} | {:.0} | {:.0} | {:.3} | {} |", row.steps, row.real_events_per_sec, row.padded_events_per_sec, row.steps_per_sec,
                row.peak_memory_mib.map_or("?".into(), |m| format!("{m:.0} MiB")));
            true
        }
    }
}

/// The bundle of a run's best checkpoint (by eval loss) when it has one,
/// else its latest, with its provenance.
fn write_bundle(run_dir: &Path, output: &Path, description: &str, half: bool) -> bool {
    let device = polyphony::train::DeviceChoice::Cpu.device();
    let best = train::best_checkpoint_path(run_dir);
    let path = if best.is_file() { best } else { train::checkpoint_path(run_dir) };
    let checkpoint = match train::load_checkpoint_file(&path, &device) {
        Ok(Some(c)) => c,
        Ok(None) => return fail(format!("{}: no checkpoint (train first)", run_dir.display())),
        Err(e) => return fail(e),
    };
    println!("from {}", path.display());
    let bundle = train::bundle_of(&checkpoint, description, &polyphony::timestamp::iso8601());
    let precision = if half { bundle::Precision::F16 } else { bundle::Precision::F32 };
    match bundle::save(output, &bundle, precision) {
        Ok(()) => {
            println!("wrote {} (step {})", output.display(), checkpoint.state.step);
            true
        }
        Err(e) => fail(e),
    }
}
