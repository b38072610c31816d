//! The command line: parses arguments (see `cli.rs`), calls the library,
//! prints. A failure is one line on stderr and exit code 1.

mod cli;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cli::{BenchCommand, Cli, Command, CreateDatasetArgs, GenerateArgs, TrainArgs};
use polyphony::generate::{Backend, Engine, GenerateOptions, Primer, parse_python_list};
use polyphony::hparams::HParams;
use polyphony::judge::Judgement;
use polyphony::music_file::Reading;
use polyphony::export::{self, Format};
use polyphony::{bench, bundle, dataset, encoding, files, music_file, pipeline, timestamp, train};

/// Prints a line to stdout; a reader that went away (`| head`) ends the
/// program quietly instead of in a panic.
macro_rules! say {
    ($($arg:tt)*) => { emit(&format!($($arg)*), true) };
}

/// Prints text as it is.
fn emit(text: &str, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("polyphony: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let args = cli::boolean_flags(std::env::args_os());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // generate's bad values get one line and exit code 1, like its other refusals.
        Err(e) if args.get(1).is_some_and(|a| a == "generate" || a == "harmonize") && e.use_stderr() => {
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
        Command::Judge { files } => judge(&files),
        Command::CreateDataset(args) => create_dataset(args),
        Command::Train(args) => outcome(train(args)),
        Command::Bench { what } => outcome(bench(what)),
        Command::Generate(args) => outcome(generate(args)),
        Command::Harmonize(args) => outcome(generate(cli::GenerateArgs { harmonize: true, ..args })),
        Command::Evaluate { bundle_file, sequence_example_file, bptt_window } => {
            outcome(evaluate_bundle(&bundle_file, &sequence_example_file, bptt_window))
        }
        Command::Bundle { run_dir: Some(run_dir), output, bundle_description, half, int8, .. } => outcome(write_bundle(&run_dir, &output, &bundle_description, precision(half, int8))),
        Command::Bundle { bundle_file: Some(file), output, half, int8, .. } => outcome(rewrite_bundle(&file, &output, precision(half, int8))),
        Command::Bundle { .. } => outcome(Err("give --run_dir or --bundle_file".into())),
        Command::ImportMag { mag, checkpoint, hparams, output, half, int8 } => outcome(import_mag(mag.as_deref(), checkpoint.as_deref(), hparams.as_deref(), &output, precision(half, int8))),
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// A command's failure, as the one line it prints.
type Outcome = Result<(), String>;

fn outcome(result: Outcome) -> bool {
    result.map_err(|e| eprintln!("polyphony: {e}")).is_ok()
}

/// `path: error`.
fn at(path: &Path) -> impl Fn(&dyn Display) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Prints one error line naming the file.
fn report(path: &Path, error: impl Display) {
    eprintln!("polyphony: {}", at(path)(&error));
}

/// Every file is processed even when some fail; the exit code says whether
/// all succeeded.
fn events(files: &[PathBuf], transpose: i32, index: bool) -> bool {
    let mut ok = true;
    for path in files {
        match music_file::read_music_file(path).and_then(|seq| pipeline::events_report(&seq, transpose, index)) {
            Ok(text) => {
                if files.len() > 1 {
                    say!("# file: {}", path.display());
                }
                emit(&text, false);
            }
            Err(e) => {
                report(path, e);
                ok = false;
            }
        }
    }
    ok
}

/// `judge`: one line per file, then the total (see [`Judgement`] for the
/// columns' definitions), then the voices' ranges; unreadable files get an
/// error line and the others are still counted. Scores are read in full
/// (ties joined), as a musician reads them.
fn judge(files: &[PathBuf]) -> bool {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let line = |name: &str, j: &Judgement| {
        say!(
            "{name:<36} {:>6} {:>6.2} {:>6} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6} {:>6} {:>6} {:>5.2} {:>5.2}  {}",
            j.steps,
            j.mean_voices(),
            pct(j.four_voice_share()),
            j.per_100_changes(j.parallel_fifths),
            j.per_100_changes(j.parallel_octaves),
            j.per_100_changes(j.hidden_fifths),
            j.per_100_changes(j.hidden_octaves),
            j.per_100_changes(j.crossings),
            pct(j.in_scale_share()),
            pct(j.of_four_voice_steps(j.wide_spacing_steps)),
            pct(j.of_four_voice_steps(j.out_of_range_steps)),
            j.mean_note_steps(),
            j.soprano_mean_leap(),
            j.key.map_or("-".to_string(), |k| k.to_string()),
        );
    };
    say!("{:<36} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5}  key", "file", "steps", "voices", "four", "par5", "par8", "hid5", "hid8", "cross", "scale", "wide", "range", "note", "leap");
    let (mut total, mut ok) = (Judgement::default(), true);
    for path in files {
        match music_file::read_music_file_as(path, Reading::Full).and_then(|seq| Judgement::of_piece(&seq)) {
            Ok(j) => {
                line(&path.file_name().unwrap_or_default().to_string_lossy(), &j);
                total.add(&j);
            }
            Err(e) => {
                report(path, e);
                ok = false;
            }
        }
    }
    line("all", &total);
    let ranges: Vec<String> = ["S", "A", "T", "B"]
        .iter()
        .zip(total.voice_ranges)
        .map(|(v, r)| r.map_or(format!("{v} -"), |(lo, hi)| format!("{v} {lo}-{hi}")))
        .collect();
    say!("voice ranges (four-voice steps): {}; all notes {}", ranges.join(", "), total.range.map_or("-".into(), |(lo, hi)| format!("{lo}-{hi}")));
    say!("(four: four-voice steps; par5/par8/hid5/hid8/cross: per 100 changes; scale: notes in the key's scale; wide: S-A or A-T over an octave; range: a voice outside the usual range; note: mean note in sixteenths; leap: soprano's mean move in semitones)");
    ok
}

fn decode(events_path: &Path, output: &Path) -> bool {
    let sequences = match std::fs::read_to_string(events_path).map_err(polyphony::Error::from).and_then(|text| encoding::from_text(&text)) {
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
        match files::write_new(&numbered(output, i), &export::write(&encoding::decode_default(events), Format::MidiSingleTrack, "")) {
            Ok(path) => say!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("polyphony: {e}");
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
    options.tunes_together = args.tunes_together;
    options.reading = args.reading;
    options.key_normalized = args.key_normalize;
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
            emit(&summary.to_string(), false);
            true
        }
        Err(e) => {
            eprintln!("polyphony: {e}");
            false
        }
    }
}

/// A .polyds file.
fn load_dataset(path: &Path) -> Result<dataset::Dataset, String> {
    let bytes = std::fs::read(path).map_err(|e| at(path)(&e))?;
    dataset::read_dataset(&bytes).map_err(|e| at(path)(&e))
}

/// A .polyds file's sequences.
fn load_sequences(path: &Path) -> Result<Vec<Vec<u16>>, String> {
    Ok(load_dataset(path)?.sequences.into_iter().map(|e| e.events).collect())
}

fn train(args: TrainArgs) -> Outcome {
    let warm_start = match &args.warm_start_bundle_file {
        Some(path) => Some(train::WarmStart { bundle: bundle::load(path).map_err(|e| e.to_string())?, name: path.display().to_string() }),
        None => None,
    };
    let mut hparams = train::resolve_hparams(&args.run_dir, args.hparams.as_deref(), warm_start.as_ref().map(|w| &w.bundle)).map_err(|e| e.to_string())?;
    let training_set = load_dataset(&args.sequence_example_file)?;
    // A model trained on pieces moved to C is used that way.
    hparams.key_normalized = training_set.settings.get(dataset::TRANSPOSITIONS_SETTING).map(String::as_str) == Some(dataset::KEY_NORMALIZED);
    let mut sequences: Vec<Vec<u16>> = training_set.sequences.into_iter().map(|e| e.events).collect();
    if args.eval {
        if let Some(n) = args.num_eval_examples {
            sequences.truncate(n);
        }
        return evaluate_run(&args, &sequences);
    }
    let options = train::TrainOptions {
        run_dir: args.run_dir.clone(),
        hparams,
        num_training_steps: args.num_training_steps,
        seed: args.seed,
        bptt_window: args.bptt_window,
        device: args.device,
        checkpoint_secs: args.checkpoint_secs,
        log_every: args.log_every,
        eval_sequences: args.eval_sequence_example_file.as_deref().map(load_sequences).transpose()?,
        eval_every: args.eval_every,
        patience: args.patience,
        warm_start,
        restart: args.restart,
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
    let report = result.map_err(|e| e.to_string())?;
    if let Some(step) = report.resumed_from {
        say!("resumed from step {step}");
    }
    let how = if report.interrupted {
        "interrupted at"
    } else if report.stopped_early {
        "eval loss stopped improving; stopped at"
    } else {
        "finished at"
    };
    say!("{how} step {}; checkpoint in {}", report.final_step, train::checkpoint_path(&args.run_dir).display());
    Ok(())
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
fn evaluate_run(args: &TrainArgs, sequences: &[Vec<u16>]) -> Outcome {
    let device = args.device.device().map_err(|e| e.to_string())?;
    let checkpoint = train::load_checkpoint(&args.run_dir, &device)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no checkpoint to evaluate", args.run_dir.display()))?;
    let seqs: Vec<&[u16]> = sequences.iter().map(Vec::as_slice).collect();
    let evaluation = train::evaluate(&checkpoint.model, &seqs, args.bptt_window).map_err(|e| e.to_string())?;
    train::log_eval(&args.run_dir, &checkpoint.state, evaluation.counts.metrics()).map_err(|e| e.to_string())?;
    say!("step {}:", checkpoint.state.step);
    print_evaluation(&evaluation, sequences.len());
    Ok(())
}

fn print_evaluation(evaluation: &train::Evaluation, sequences: usize) {
    let m = evaluation.counts.metrics();
    say!("{} events in {sequences} sequences", evaluation.counts.events);
    say!(
        "loss {:.5}  perplexity {:.4}  accuracy {:.4}  event_accuracy {:.4}  no_event_accuracy {:.4}",
        m.loss,
        m.perplexity,
        m.accuracy,
        m.event_accuracy,
        m.no_event_accuracy
    );
    say!("accuracy by kind (teacher-forced):");
    for (kind, accuracy) in evaluation.by_kind() {
        say!("  {kind:<24} {}", accuracy.map_or_else(|| "-".to_string(), |a| format!("{a:.4}")));
    }
    let missed: u64 = evaluation.continued_misses.iter().sum();
    if missed > 0 {
        say!("CONTINUED_NOTE missed {missed} times; the first choice was instead:");
        for (miss, n) in train::ContinuedMiss::ALL.iter().zip(evaluation.continued_misses) {
            say!("  {:<34} {:>6.1}%  ({n})", miss.description(), 100.0 * n as f64 / missed as f64);
        }
    }
    say!("per-class accuracy (classes seen in the set):");
    for (class, [correct, total]) in evaluation.per_class.iter().enumerate().filter(|(_, c)| c[1] > 0) {
        say!("  {:<20} {:>7.4}  ({correct}/{total})", train::class_name(class), *correct as f64 / *total as f64);
    }
}

/// `evaluate`: any bundle on any dataset file.
fn evaluate_bundle(bundle_file: &Path, dataset_file: &Path, window: usize) -> Outcome {
    let model = bundle::load(bundle_file).map_err(|e| e.to_string())?;
    let model = polyphony::model::Model::from_bundle(&model, &Backend::Cpu.device().map_err(|e| e.to_string())?);
    let sequences = load_sequences(dataset_file)?;
    let seqs: Vec<&[u16]> = sequences.iter().map(Vec::as_slice).collect();
    let evaluation = train::evaluate(&model, &seqs, window).map_err(|e| at(dataset_file)(&e))?;
    print_evaluation(&evaluation, sequences.len());
    Ok(())
}

fn bench(what: BenchCommand) -> Outcome {
    match what {
        BenchCommand::Generate { bundle_file, repeats, burn } => bench_generate(bundle_file.as_deref(), repeats, burn),
        BenchCommand::Train { sequence_example_file, steps, hparams, bptt_window, device, autodiff } => {
            let hparams = HParams::default().with_overrides(&hparams).map_err(|e| e.to_string())?;
            let (examples, source) = match sequence_example_file {
                Some(path) => (load_sequences(&path)?, path.display().to_string()),
                None => (bench::synthetic_examples(2691, 7), "synthetic sequences (Bach lengths)".to_string()),
            };
            let row = bench::bench_train(&hparams, &examples, steps.max(1), bptt_window, device, autodiff).map_err(|e| e.to_string())?;
            let gradients = if row.autodiff { "burn's autodiff" } else { "written-out backpropagation" };
            say!("training throughput: rnn_layer_sizes {:?}, batch {}, bptt window {bptt_window}, {source}, {gradients}", hparams.rnn_layer_sizes, hparams.batch_size);
            say!("| steps | real events/s | padded events/s | steps/s | peak memory |");
            say!("|---|---|---|---|---|");
            let memory = row.peak_memory_mib.map_or("?".into(), |m| format!("{m:.0} MiB"));
            say!("| {} | {:.0} | {:.0} | {:.3} | {memory} |", row.steps, row.real_events_per_sec, row.padded_events_per_sec, row.steps_per_sec);
            Ok(())
        }
    }
}

/// The storage `--half` / `--int8` ask for.
fn precision(half: bool, int8: bool) -> bundle::Precision {
    match (half, int8) {
        (_, true) => bundle::Precision::Int8,
        (true, _) => bundle::Precision::F16,
        _ => bundle::Precision::F32,
    }
}

/// The bundle of a run's best checkpoint (by eval loss) when it has one,
/// else its latest, with its provenance.
fn write_bundle(run_dir: &Path, output: &Path, description: &str, precision: bundle::Precision) -> Outcome {
    let device = Backend::Cpu.device().map_err(|e| e.to_string())?;
    let (checkpoint, path) = train::load_best_or_latest(run_dir, &device).map_err(|e| e.to_string())?;
    say!("from {}", path.display());
    let bundle = train::bundle_of(&checkpoint, description, &timestamp::iso8601()).map_err(|e| e.to_string())?;
    bundle::save(output, &bundle, precision).map_err(|e| e.to_string())?;
    say!("wrote {} (step {})", output.display(), checkpoint.state.step);
    Ok(())
}

/// A bundle stored again at `precision`, its metadata as it was.
fn rewrite_bundle(file: &Path, output: &Path, precision: bundle::Precision) -> Outcome {
    let bundle = bundle::load(file).map_err(|e| e.to_string())?;
    bundle::save(output, &bundle, precision).map_err(|e| e.to_string())?;
    say!("wrote {} ({precision:?})", output.display());
    Ok(())
}

/// `import-mag`: the original's .mag or V2 checkpoint as a bundle.
fn import_mag(mag: Option<&Path>, checkpoint: Option<&Path>, hparams: Option<&str>, output: &Path, precision: bundle::Precision) -> Outcome {
    let created = timestamp::iso8601();
    let bundle = match (mag, checkpoint) {
        (Some(file), _) => {
            let bytes = std::fs::read(file).map_err(|e| at(file)(&e))?;
            polyphony::magenta::import_mag(&bytes, &file.display().to_string(), &created).map_err(|e| at(file)(&e))?
        }
        (None, Some(prefix)) => {
            let hparams = hparams.map(|h| HParams::default().with_overrides(h)).transpose().map_err(|e| e.to_string())?;
            polyphony::magenta::import_checkpoint(prefix, hparams, &created).map_err(|e| at(prefix)(&e))?
        }
        (None, None) => return Err("give a .mag file or --checkpoint".into()),
    };
    bundle::save(output, &bundle, precision).map_err(|e| e.to_string())?;
    let origin = bundle.metadata.origin.as_ref().expect("an import has an origin");
    say!("wrote {} from {} ({}): \"{}\", rnn_layer_sizes {:?}", output.display(), origin.source, origin.format, bundle.metadata.description, bundle.metadata.hparams.rnn_layer_sizes);
    Ok(())
}

/// The pretrained model (`assets/bach-chorales.bundle`), built into the
/// binary so that `generate` works from anywhere without flags.
const DEFAULT_BUNDLE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/bach-chorales.bundle"));

/// The model of --bundle_file or --run_dir (by default the built-in one),
/// checked against --hparams.
fn generator_bundle(args: &GenerateArgs) -> Result<bundle::Bundle, String> {
    let model = match (&args.bundle_file, &args.run_dir) {
        (Some(file), None) => bundle::load(file).map_err(|e| e.to_string())?,
        (None, Some(run_dir)) | (Some(_), Some(run_dir)) => {
            if args.bundle_file.is_some() && !args.save_generator_bundle {
                return Err("give --bundle_file or --run_dir, not both".into());
            }
            let (checkpoint, _) = train::load_best_or_latest(run_dir, &Backend::Cpu.device().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            train::bundle_of(&checkpoint, &args.bundle_description, &timestamp::iso8601()).map_err(|e| e.to_string())?
        }
        (None, None) => bundle::from_bytes(DEFAULT_BUNDLE).map_err(|e| format!("the built-in model: {e}"))?,
    };
    if let Some(text) = &args.hparams {
        let wanted = HParams::default().with_overrides(text).map_err(|e| e.to_string())?;
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

fn generate_options(args: &GenerateArgs) -> Result<GenerateOptions, String> {
    let given = [args.primer_pitches.is_some(), args.primer_melody.is_some(), args.primer_midi.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err("give at most one primer: --primer_pitches, --primer_melody or --primer_midi".into());
    }
    let primer = if let Some(text) = &args.primer_pitches {
        Primer::Pitches(parse_python_list(text).map_err(|e| format!("--primer_pitches: {e}"))?)
    } else if let Some(text) = &args.primer_melody {
        Primer::Melody(parse_python_list(text).map_err(|e| format!("--primer_melody: {e}"))?)
    } else if let Some(path) = &args.primer_midi {
        let primer = Primer::Sequence(music_file::read_music_file(path).map_err(|e| at(path)(&e))?);
        // Checked here too, so that a refusal (a piece longer than an
        // output may be, ...) names the file.
        polyphony::generate::primer_notes(&primer).map_err(|e| at(path)(&e))?;
        primer
    } else {
        Primer::None
    };
    let options = GenerateOptions {
        num_outputs: args.num_outputs,
        // Harmonizing, 0 is the melody's length: a harmonization adds nothing unasked.
        num_steps: args.num_steps.unwrap_or(if args.harmonize { 0 } else { GenerateOptions::default().num_steps }),
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
        descending: args.descending,
        max_voices: args.max_voices,
        key_prior: args.key_prior,
        part_writing: args.part_writing,
        top_p: args.top_p,
        harmonize: args.harmonize,
        harmonize_bass: args.harmonize_bass,
        keep_steps: 0,
        seed: args.seed,
        key: args.key,
    };
    options.check().map_err(|e| e.to_string())?;
    Ok(options)
}

/// `generate`: MIDI files from a model, or with --save_generator_bundle a bundle.
fn generate(args: GenerateArgs) -> Outcome {
    if args.save_generator_bundle {
        let (Some(run_dir), Some(file)) = (&args.run_dir, &args.bundle_file) else {
            return Err("--save_generator_bundle writes --run_dir's model to --bundle_file: give both".into());
        };
        bundle::save(file, &generator_bundle(&args)?, bundle::Precision::F32).map_err(|e| e.to_string())?;
        say!("wrote {} from {}", file.display(), run_dir.display());
        return Ok(());
    }
    let output_dir = args.output_dir.as_ref().ok_or("--output_dir required")?;
    let formats = Format::parse_list(&args.output_format)?;
    let options = generate_options(&args)?;
    files::check_output_folder(output_dir).map_err(|e| e.to_string())?;
    let mut engine = Engine::new(generator_bundle(&args)?);
    if args.device == Backend::Gpu {
        engine.put_on_gpu().map_err(|e| format!("--device gpu: {e}"))?;
    }
    let outputs = engine.generate(args.device, &options).map_err(|e| e.to_string())?;
    let stamp = timestamp::file_stamp();
    let digits = options.num_outputs.to_string().len();
    for (i, output) in outputs.iter().enumerate() {
        let name = format!("{stamp}_{:0digits$}", i + 1);
        for &format in &formats {
            let path = output_dir.join(format!("{name}.{}", format.extension()));
            files::write_new(&path, &export::write(&output.sequence, format, &name)).map_err(|e| e.to_string())?;
        }
    }
    let kinds: Vec<&str> = formats.iter().map(|f| f.extension()).collect();
    say!("wrote {} outputs ({}) to {}", outputs.len(), kinds.join(" and "), output_dir.display());
    Ok(())
}

/// `bench generate`: the table of generation speed on the CPU.
fn bench_generate(bundle_file: Option<&Path>, repeats: usize, burn: bool) -> Outcome {
    let model = match bundle_file {
        Some(file) => bundle::load(file).map_err(|e| e.to_string())?,
        None => bench::random_bundle(&timestamp::iso8601()).map_err(|e| e.to_string())?,
    };
    let sizes = model.metadata.hparams.rnn_layer_sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("×");
    let sizes_timed = [(1, 128), (10, 128)];
    let mut fused = polyphony::fused::FusedLstm::new(model.weights());
    let mut rows: Vec<_> = bench::bench_generate(&mut fused, &sizes_timed, repeats).map_err(|e| e.to_string())?.into_iter().map(|r| ("fused", r)).collect();
    if burn {
        let device = Backend::Cpu.device().map_err(|e| e.to_string())?;
        let mut step = polyphony::generate::BurnStep::new(polyphony::model::Model::from_bundle(&model, &device));
        rows.extend(bench::bench_generate(&mut step, &sizes_timed, repeats).map_err(|e| e.to_string())?.into_iter().map(|r| ("burn flex", r)));
    }
    say!("generation on the CPU, LSTM {sizes}, best of {repeats}");
    say!("| step | outputs × steps | time (s) | model steps | events | events/s | ms per model step |");
    say!("|---|---|---|---|---|---|---|");
    for (name, r) in rows {
        say!(
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
    Ok(())
}
