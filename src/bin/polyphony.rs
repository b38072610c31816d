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
    /// How many voices sound per sixteenth-note step in each file, and in
    /// all together (mean over sounding steps, share with exactly four,
    /// pitch range): how chorale-like generated pieces are.
    Voicing {
        /// MIDI, MusicXML or compressed MusicXML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Generate pieces from a bundle or a run (the original's
    /// polyphony_rnn_generate), written as `<date>_<time>_<i>.mid`.
    Generate(GenerateArgs),
    /// Speed tables.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Generation speed of the default 3×256 model on the CPU: 1 × 128 and
    /// 10 × 128 steps (random weights unless a bundle is given).
    Generate {
        #[arg(long = "bundle_file", alias = "bundle-file")]
        bundle_file: Option<PathBuf>,
        /// Timed runs per size (the best is shown), after one warm-up.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Also time burn's generic model on the CPU (flex), for comparison.
        #[arg(long)]
        burn: bool,
    },
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
    let args = boolean_flags(std::env::args_os());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // generate's bad values get one line and exit code 1, like its other refusals.
        Err(e) if args.get(1).is_some_and(|a| a == "generate") && e.use_stderr() => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("polyphony: {}", line.strip_prefix("error: ").unwrap_or(line));
            return ExitCode::FAILURE;
        }
        Err(e) => e.exit(),
    };
    let ok = match cli.command {
        Command::Events { files, transpose, index } => events(&files, transpose, index),
        Command::Decode { events, output } => decode(&events, &output),
        Command::Voicing { files } => voicing(&files),
        Command::CreateDataset(args) => create_dataset(args),
        Command::Train(args) => train(args),
        Command::Bench { what } => bench(what),
        Command::Generate(args) => generate(args),
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

/// `voicing`: one line per file, then the total; unreadable files get an
/// error line and the others are still counted.
fn voicing(files: &[PathBuf]) -> bool {
    use polyphony::voicing::Voicing;
    let line = |name: &str, v: &Voicing| {
        let range = v.range.map_or("-".to_string(), |(lo, hi)| format!("{lo}-{hi}"));
        println!(
            "{name:<40} {:>6} {:>8} {:>11.2} {:>10.1}% {:>8} {:>9.2}",
            v.steps,
            v.sounding_steps,
            v.mean_voices(),
            100.0 * v.four_voice_share(),
            range,
            v.mean_note_steps()
        );
    };
    println!(
        "{:<40} {:>6} {:>8} {:>11} {:>11} {:>8} {:>9}",
        "file", "steps", "sounding", "mean voices", "four voices", "range", "mean note"
    );
    let (mut total, mut ok) = (Voicing::default(), true);
    for path in files {
        // Split at tempo and time-signature changes first, as the pipeline does.
        let counted = music_file::read_music_file(path).and_then(|seq| {
            let mut v = Voicing::default();
            for part in pipeline::split_on_time_changes(&seq) {
                let quantized = pipeline::quantize(&part, pipeline::STEPS_PER_QUARTER)
                    .map_err(|d| polyphony::Error::Invalid(format!("cannot quantize: {d}")))?;
                v.add(&Voicing::of(&quantized));
            }
            Ok(v)
        });
        match counted {
            Ok(v) => {
                line(&path.file_name().unwrap_or_default().to_string_lossy(), &v);
                total.add(&v);
            }
            Err(e) => {
                report(path, e);
                ok = false;
            }
        }
    }
    line("all", &total);
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
        BenchCommand::Generate { bundle_file, repeats, burn } => bench_generate(bundle_file.as_deref(), repeats, burn),
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
    let (checkpoint, path) = match train::load_best_or_latest(run_dir, &polyphony::train::DeviceChoice::Cpu.device()) {
        Ok(found) => found,
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

/// The boolean flags that take the original's forms: `--flag`,
/// `--noflag`, `--flag=true|false`.
const BOOLEAN_FLAGS: [&str; 5] = ["condition_on_primer", "inject_primer_during_generation", "primer_in_output", "mask_ignored_events", "save_generator_bundle"];

/// Rewrites `--noflag` (and `--no-flag`) to `--flag=false` for [`BOOLEAN_FLAGS`].
fn boolean_flags(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|arg| {
        if let Some(text) = arg.to_str()
            && let Some(rest) = text.strip_prefix("--no")
        {
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            for flag in BOOLEAN_FLAGS {
                if rest == flag || rest == flag.replace('_', "-") {
                    return format!("--{rest}=false").into();
                }
            }
        }
        arg
    })
    .collect()
}

/// The original's flag names; kebab-case ones work too.
#[derive(clap::Args)]
struct GenerateArgs {
    /// The model: a bundle file (or, with --save_generator_bundle, where to
    /// write one). Without it or --run_dir: the built-in pretrained model.
    #[arg(long = "bundle_file", alias = "bundle-file")]
    bundle_file: Option<PathBuf>,
    /// The model: a training run's latest (best) checkpoint.
    #[arg(long = "run_dir", alias = "run-dir")]
    run_dir: Option<PathBuf>,
    /// Expected model hparams, checked against the run's or bundle's own.
    #[arg(long)]
    hparams: Option<String>,
    /// Where the MIDI files are written (created if missing).
    #[arg(long = "output_dir", alias = "output-dir")]
    output_dir: Option<PathBuf>,
    #[arg(long = "num_outputs", alias = "num-outputs", default_value_t = 10)]
    num_outputs: usize,
    /// Total length in sixteenth steps, primer included.
    #[arg(long = "num_steps", alias = "num-steps", default_value_t = 128)]
    num_steps: usize,
    /// A chord a quarter note long, as a Python list: "[67,64,60]".
    #[arg(long = "primer_pitches", alias = "primer-pitches", allow_hyphen_values = true)]
    primer_pitches: Option<String>,
    /// Melody values, one a step (-2 hold, -1 off, 0-127 on): "[60,-2,-2,-2,67]".
    #[arg(long = "primer_melody", alias = "primer-melody", allow_hyphen_values = true)]
    primer_melody: Option<String>,
    /// A MIDI file to start from (its tempo replaces --qpm).
    #[arg(long = "primer_midi", alias = "primer-midi")]
    primer_midi: Option<PathBuf>,
    /// Feed the primer to the model before generating.
    #[arg(long = "condition_on_primer", alias = "condition-on-primer", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    condition_on_primer: bool,
    /// Put the primer's events into the stream as it is generated (harmonize it).
    #[arg(long = "inject_primer_during_generation", alias = "inject-primer-during-generation", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    inject_primer_during_generation: bool,
    /// Begin each output with the primer's steps.
    #[arg(long = "primer_in_output", alias = "primer-in-output", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    primer_in_output: bool,
    #[arg(long, default_value_t = 120.0)]
    qpm: f64,
    /// Logits are divided by it before sampling.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long = "beam_size", alias = "beam-size", default_value_t = 1)]
    beam_size: usize,
    #[arg(long = "branch_factor", alias = "branch-factor", default_value_t = 1)]
    branch_factor: usize,
    #[arg(long = "steps_per_iteration", alias = "steps-per-iteration", default_value_t = 1)]
    steps_per_iteration: usize,
    /// Sample only events that decoding keeps (no CONTINUED_NOTE of a pitch
    /// that is not sounding); false samples from all 259 as the original did.
    #[arg(long = "mask_ignored_events", alias = "mask-ignored-events", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    mask_ignored_events: bool,
    /// Same seed and inputs, same outputs (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Write --run_dir's model to --bundle_file and stop.
    #[arg(long = "save_generator_bundle", alias = "save-generator-bundle", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    save_generator_bundle: bool,
    #[arg(long = "bundle_description", alias = "bundle-description", default_value = "")]
    bundle_description: String,
    /// cpu: the fused CPU step; gpu: burn's model through wgpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

/// The pretrained model (`assets/bach-chorales.bundle`), built into the
/// binary so that `generate` works from anywhere without flags.
const DEFAULT_BUNDLE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/bach-chorales.bundle"));

/// The model of --bundle_file or --run_dir (by default the built-in one),
/// checked against --hparams.
fn generator_bundle(args: &GenerateArgs) -> Result<bundle::Bundle, String> {
    let model = match (&args.bundle_file, &args.run_dir) {
        (Some(file), None) => bundle::load(file).map_err(|e| format!("{}: {e}", file.display()))?,
        (None, Some(run_dir)) | (Some(_), Some(run_dir)) => {
            if args.bundle_file.is_some() && !args.save_generator_bundle {
                return Err("give --bundle_file or --run_dir, not both".into());
            }
            let (checkpoint, _) = train::load_best_or_latest(run_dir, &polyphony::train::DeviceChoice::Cpu.device())?;
            train::bundle_of(&checkpoint, &args.bundle_description, &polyphony::timestamp::iso8601())
        }
        (None, None) => bundle::from_bytes(DEFAULT_BUNDLE).map_err(|e| format!("the built-in model: {e}"))?,
    };
    if let Some(text) = &args.hparams {
        let wanted = HParams::default().with_overrides(text)?;
        let have = &model.metadata.hparams;
        if !wanted.same_model(have) {
            return Err(format!(
                "--hparams {text:?} does not match the model's own hparams (rnn_layer_sizes={:?}; --hparams asks for {:?}): leave --hparams out to use the model's",
                have.rnn_layer_sizes, wanted.rnn_layer_sizes
            ));
        }
    }
    Ok(model)
}

fn generate_options(args: &GenerateArgs) -> Result<polyphony::generate::GenerateOptions, String> {
    use polyphony::generate::{GenerateOptions, Primer, parse_python_list};
    let given = [args.primer_pitches.is_some(), args.primer_melody.is_some(), args.primer_midi.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err("give at most one primer: --primer_pitches, --primer_melody or --primer_midi".into());
    }
    let primer = if let Some(text) = &args.primer_pitches {
        Primer::Pitches(parse_python_list(text).map_err(|e| format!("--primer_pitches: {e}"))?)
    } else if let Some(text) = &args.primer_melody {
        Primer::Melody(parse_python_list(text).map_err(|e| format!("--primer_melody: {e}"))?)
    } else if let Some(path) = &args.primer_midi {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Primer::Sequence(midi::read_midi(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
    } else {
        Primer::None
    };
    Ok(GenerateOptions {
        num_outputs: args.num_outputs,
        num_steps: args.num_steps,
        primer,
        condition_on_primer: args.condition_on_primer,
        inject_primer_during_generation: args.inject_primer_during_generation,
        primer_in_output: args.primer_in_output,
        qpm: args.qpm,
        temperature: args.temperature,
        beam_size: args.beam_size,
        branch_factor: args.branch_factor,
        steps_per_iteration: args.steps_per_iteration,
        mask_ignored_events: args.mask_ignored_events,
        seed: args.seed,
    })
}

/// `generate`: MIDI files from a model, or with --save_generator_bundle a bundle.
fn generate(args: GenerateArgs) -> bool {
    use polyphony::generate;
    if args.save_generator_bundle {
        let (Some(run_dir), Some(file)) = (&args.run_dir, &args.bundle_file) else {
            return fail("--save_generator_bundle writes --run_dir's model to --bundle_file: give both");
        };
        let model = match generator_bundle(&args) {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        return match bundle::save(file, &model, bundle::Precision::F32) {
            Ok(()) => {
                println!("wrote {} from {}", file.display(), run_dir.display());
                true
            }
            Err(e) => fail(format!("{}: {e}", file.display())),
        };
    }
    let Some(output_dir) = &args.output_dir else {
        return fail("--output_dir required");
    };
    let options = match generate_options(&args) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let model = match generator_bundle(&args) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let outputs = match args.device {
        DeviceArg::Cpu => generate::generate_with_bundle(&model, &options),
        DeviceArg::Gpu => {
            // burn panics (twice, on two threads) when wgpu finds no adapter:
            // say so in one line instead.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let loaded = std::panic::catch_unwind(|| {
                let device = polyphony::train::DeviceChoice::Gpu.device();
                polyphony::model::Model::from_bundle(&model, &device).map(|m| {
                    let mut step = generate::BurnStep::new(m);
                    step.reset(1);
                    let _ = step.sample(&[0], &[None], &[true; polyphony::encoding::NUM_CLASSES], 1.0).into_data();
                    step
                })
            });
            std::panic::set_hook(hook);
            match loaded {
                Ok(Ok(mut step)) => generate::generate_on_device(&mut step, &options),
                Ok(Err(e)) => return fail(e),
                Err(_) => return fail("--device gpu: no usable GPU (wgpu found no adapter; is a Vulkan, Metal or DirectX driver installed?)"),
            }
        }
    };
    let outputs = match outputs {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    if let Err(e) = std::fs::create_dir_all(output_dir) {
        return fail(format!("{}: {e}", output_dir.display()));
    }
    let stamp = polyphony::timestamp::file_stamp();
    let digits = options.num_outputs.to_string().len();
    for (i, output) in outputs.iter().enumerate() {
        let mut sequence = output.sequence.clone();
        midi::separate_unisons(&mut sequence);
        let path = output_dir.join(format!("{stamp}_{:0digits$}.mid", i + 1));
        if let Err(e) = std::fs::write(&path, midi::write_midi(&sequence)) {
            return fail(format!("{}: {e}", path.display()));
        }
    }
    println!("wrote {} MIDI files to {}", outputs.len(), output_dir.display());
    true
}

/// `bench generate`: the table of generation speed on the CPU.
fn bench_generate(bundle_file: Option<&Path>, repeats: usize, burn: bool) -> bool {
    let model = match bundle_file {
        Some(file) => match bundle::load(file) {
            Ok(b) => b,
            Err(e) => return fail(format!("{}: {e}", file.display())),
        },
        None => {
            let device = polyphony::train::DeviceChoice::Cpu.device();
            let hparams = HParams::default();
            let mut model = polyphony::model::Model::init(&hparams, &device, 1)
                .to_bundle(bundle::BundleMetadata::new("random weights", hparams.clone(), polyphony::timestamp::iso8601()));
            // Random weights almost never end a step (1 class in 259): a
            // STEP_END bias of ln 64.5 makes it 1 event in 5, as in Bach, so
            // that the run takes as many model steps as a trained model's.
            if let Some(t) = model.tensors.iter_mut().find(|t| t.name == bundle::DENSE_BIASES) {
                t.data[encoding::Event::StepEnd.class()] = 64.5f32.ln();
            }
            model
        }
    };
    let sizes = model.metadata.hparams.rnn_layer_sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("×");
    let sizes_timed = [(1, 128), (10, 128)];
    let mut rows = match polyphony::generate::bench(&model, &sizes_timed, repeats) {
        Ok(r) => r.into_iter().map(|r| ("fused", r)).collect::<Vec<_>>(),
        Err(e) => return fail(e),
    };
    if burn {
        let device = polyphony::train::DeviceChoice::Cpu.device();
        let mut step = match polyphony::model::Model::from_bundle(&model, &device) {
            Ok(m) => polyphony::generate::BurnStep::new(m),
            Err(e) => return fail(e),
        };
        match polyphony::generate::bench_model(&mut step, &sizes_timed, repeats) {
            Ok(r) => rows.extend(r.into_iter().map(|r| ("burn flex", r))),
            Err(e) => return fail(e),
        }
    }
    println!("generation on the CPU, LSTM {sizes}, best of {repeats}");
    println!("| step | outputs × steps | time (s) | model steps | events | events/s | ms per model step |");
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {} × {} | {:.3} | {} | {} | {:.0} | {:.3} |",
            r.num_outputs,
            r.num_steps,
            r.seconds,
            r.model_steps,
            r.events,
            r.events_per_sec(),
            r.ms_per_model_step()
        );
    }
    true
}
