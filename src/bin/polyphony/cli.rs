//! The command line's arguments: the original's flag names (snake_case;
//! kebab-case works too), with defaults taken from the library's own types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use polyphony::dataset;
use polyphony::generate::{Backend, GenerateOptions};
use polyphony::train::{DEFAULT_BPTT_WINDOW, TrainOptions};

#[derive(Parser)]
#[command(name = "polyphony", version, about = "Bach-style chorales with a Polyphony RNN")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Judge the part-writing of each file and of all together: voices per
    /// step, parallel and hidden fifths and octaves, voice crossings,
    /// spacing, ranges, notes in the key's scale, note lengths, soprano
    /// leaps (definitions in the library's `judge` module).
    #[command(alias = "voicing")]
    Judge {
        /// MIDI, MusicXML or compressed MusicXML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Turn an event file (names or class indices, `---` between sequences)
    /// back into MIDI.
    Decode {
        events: PathBuf,
        /// The MIDI file to write; with several sequences, `_2`, `_3`, ... are
        /// added before the extension for the second and later ones. An
        /// existing file is never replaced: a free name is taken.
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
    /// Write a run's best (else latest) checkpoint as one bundle file, the
    /// file the web page and `generate --bundle_file` load; or store a
    /// bundle again at another precision (--bundle_file).
    Bundle {
        #[arg(long = "run_dir", alias = "run-dir", required_unless_present = "bundle_file", conflicts_with = "bundle_file")]
        run_dir: Option<PathBuf>,
        /// A bundle to write again (e.g. with --int8), metadata unchanged.
        #[arg(long = "bundle_file", alias = "bundle-file")]
        bundle_file: Option<PathBuf>,
        #[arg(long, short)]
        output: PathBuf,
        #[arg(long = "bundle_description", alias = "bundle-description", default_value = "")]
        bundle_description: String,
        /// Store the weights as 16-bit floats (half the size).
        #[arg(long, conflicts_with = "int8")]
        half: bool,
        /// Store the matrices as int8 with a scale per row (a quarter of
        /// the size: the page's download).
        #[arg(long)]
        int8: bool,
    },
    /// Import the original's model: a Magenta .mag bundle, or a training
    /// run's TensorFlow checkpoint (--checkpoint), as a bundle.
    #[command(name = "import-mag", alias = "import_mag")]
    ImportMag {
        /// The .mag file.
        #[arg(required_unless_present = "checkpoint", conflicts_with = "checkpoint")]
        mag: Option<PathBuf>,
        /// A run directory of the original's polyphony_rnn_train, or a
        /// checkpoint prefix in it (`.../train/model.ckpt-1234`).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// With --checkpoint: the run's --hparams, checked against the
        /// tensors (the network's shape is read from them anyway).
        #[arg(long, requires = "checkpoint")]
        hparams: Option<String>,
        /// The bundle to write.
        #[arg(long, short)]
        output: PathBuf,
        /// Store the weights as 16-bit floats (half the size).
        #[arg(long, conflicts_with = "int8")]
        half: bool,
        /// Store the matrices as int8 with a scale per row (a quarter of
        /// the size: the page's download).
        #[arg(long)]
        int8: bool,
    },
    /// Metrics of a bundle on a dataset: loss, perplexity, accuracy,
    /// event/no-event accuracy and per-class accuracy.
    Evaluate {
        #[arg(long = "bundle_file", alias = "bundle-file")]
        bundle_file: PathBuf,
        #[arg(long = "sequence_example_file", alias = "sequence-example-file")]
        sequence_example_file: PathBuf,
        #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = DEFAULT_BPTT_WINDOW)]
        bptt_window: usize,
    },
    /// Generate pieces from a bundle or a run (the original's
    /// polyphony_rnn_generate), written as `<date>_<time>_<i>.mid`.
    Generate(GenerateArgs),
    /// Harmonize a melody (--primer_melody, or the top line of --primer_midi):
    /// the melody on top, the other voices written under it, step for step,
    /// as long as the melody (or --num_steps); `generate --harmonize`.
    Harmonize(GenerateArgs),
    /// Speed tables.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
pub enum BenchCommand {
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
        #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = DEFAULT_BPTT_WINDOW)]
        bptt_window: usize,
        #[arg(long, value_parser = parse_backend, default_value = "cpu")]
        device: Backend,
        /// Gradients by burn's autodiff (the GPU's way) instead of the
        /// CPU's written-out backpropagation, for comparison.
        #[arg(long)]
        autodiff: bool,
    },
}

/// `cpu` or `gpu` (see [`Backend`]).
fn parse_backend(name: &str) -> Result<Backend, String> {
    name.parse().map_err(|e: polyphony::generate::GenerateError| e.to_string())
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Where checkpoints, metrics.jsonl and curves.svg live.
    #[arg(long = "run_dir", alias = "run-dir")]
    pub run_dir: PathBuf,
    /// The training set (or, with --eval, the eval set): a .polyds file.
    #[arg(long = "sequence_example_file", alias = "sequence-example-file")]
    pub sequence_example_file: PathBuf,
    /// Overrides of the hparams, e.g.
    /// "batch_size=64,rnn_layer_sizes=[256,256,256],learning_rate=0.001",
    /// applied to the run's own when resuming, to the warm-start bundle's,
    /// or to the defaults.
    #[arg(long)]
    pub hparams: Option<String>,
    /// Stop after this many steps in all (default: until Ctrl-C).
    #[arg(long = "num_training_steps", alias = "num-training-steps")]
    pub num_training_steps: Option<u64>,
    /// Evaluate the run's checkpoint on the given set instead of training.
    #[arg(long)]
    pub eval: bool,
    /// With --eval: only the first N sequences.
    #[arg(long = "num_eval_examples", alias = "num-eval-examples")]
    pub num_eval_examples: Option<usize>,
    /// While training, also evaluate on this set every --eval_every steps
    /// (for the learning curves).
    #[arg(long = "eval_sequence_example_file", alias = "eval-sequence-example-file")]
    pub eval_sequence_example_file: Option<PathBuf>,
    #[arg(long = "eval_every", alias = "eval-every", default_value_t = defaults().eval_every)]
    pub eval_every: u64,
    /// With an eval set: stop after this many evaluations in a row without
    /// a better eval loss (the best model is kept in best.safetensors).
    #[arg(long)]
    pub patience: Option<u64>,
    /// Seed of initialisation, batch order and dropout.
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Events per truncated-backpropagation window.
    #[arg(long = "bptt_window", alias = "bptt-window", default_value_t = defaults().bptt_window)]
    pub bptt_window: usize,
    /// cpu (burn's CPU backend) or gpu (wgpu: Vulkan, Metal or DirectX).
    #[arg(long, value_parser = parse_backend, default_value = "cpu")]
    pub device: Backend,
    /// Seconds between checkpoints (one is also written on Ctrl-C and at the end).
    #[arg(long = "checkpoint_secs", alias = "checkpoint-secs", default_value_t = defaults().checkpoint_secs)]
    pub checkpoint_secs: u64,
    /// Steps between records in metrics.jsonl.
    #[arg(long = "log_every", alias = "log-every", default_value_t = defaults().log_every)]
    pub log_every: u64,
    /// Start a new run from this bundle's weights (any bundle, an imported
    /// .mag included), with a fresh optimizer: fine-tuning.
    #[arg(long = "warm_start_bundle_file", alias = "warm-start-bundle-file")]
    pub warm_start_bundle_file: Option<PathBuf>,
    /// Start over in a run directory whose checkpoint is gone but whose
    /// log is not (the old log is cleared).
    #[arg(long)]
    pub restart: bool,
}

fn defaults() -> TrainOptions {
    TrainOptions::new("", polyphony::hparams::HParams::default())
}

#[derive(clap::Args)]
pub struct CreateDatasetArgs {
    /// Music files and directories, searched recursively for .mid, .midi,
    /// .xml, .musicxml and .mxl files.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Where training_poly_tracks.polyds and eval_poly_tracks.polyds are
    /// written (created if missing).
    #[arg(long = "output_dir", alias = "output-dir")]
    pub output_dir: PathBuf,
    /// Share of pieces drawn at random for the eval set, 0 to 1 [default: 0.1].
    #[arg(long = "eval_ratio", alias = "eval-ratio", conflicts_with = "eval_pieces")]
    pub eval_ratio: Option<f64>,
    /// Seed of the random split: the same seed gives the same files.
    #[arg(long, default_value_t = dataset::DEFAULT_SEED)]
    pub seed: u64,
    /// A file naming the eval pieces, one file name per line, instead of a
    /// random split (e.g. to reuse the original's split).
    #[arg(long = "eval_pieces", alias = "eval-pieces")]
    pub eval_pieces: Option<PathBuf>,
    /// Draw every piece on its own, as the original did, even when another
    /// piece holds the same music (by default such pieces stay on one side).
    #[arg(long = "split_duplicates", alias = "split-duplicates")]
    pub split_duplicates: bool,
    /// Also keep pieces that share a tune (the same melody harmonized
    /// again, in any key) on one side of the split.
    #[arg(long = "tunes_together", alias = "tunes-together", conflicts_with = "split_duplicates")]
    pub tunes_together: bool,
    /// original: read scores as the original does (ties ignored, a split at
    /// every short measure: 290 of the 410 chorales give a sequence); full:
    /// ties joined, grace notes left out, only written time signatures,
    /// whole pieces up to 1024 steps.
    #[arg(long, default_value = "original")]
    pub reading: polyphony::music_file::Reading,
    /// Move every piece once, to C major or A minor by its key, instead of
    /// by each of -4..+4 semitones (a model trained on it writes in any key
    /// by moving its primer there and its output back).
    #[arg(long = "key_normalize", alias = "key-normalize")]
    pub key_normalize: bool,
}

/// The boolean flags that take the original's forms: `--flag`,
/// `--noflag`, `--flag=true|false`.
const BOOLEAN_FLAGS: [&str; 9] = [
    "condition_on_primer",
    "inject_primer_during_generation",
    "primer_in_output",
    "mask_ignored_events",
    "save_generator_bundle",
    "descending",
    "part_writing",
    "harmonize",
    "harmonize_bass",
];

/// Rewrites `--noflag` (and `--no-flag`) to `--flag=false` for [`BOOLEAN_FLAGS`].
pub fn boolean_flags(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
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

fn options() -> GenerateOptions {
    GenerateOptions::default()
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The model: a bundle file (or, with --save_generator_bundle, where to
    /// write one). Without it or --run_dir: the built-in pretrained model.
    #[arg(long = "bundle_file", alias = "bundle-file")]
    pub bundle_file: Option<PathBuf>,
    /// The model: a training run's best (else latest) checkpoint.
    #[arg(long = "run_dir", alias = "run-dir")]
    pub run_dir: Option<PathBuf>,
    /// Expected model hparams, checked against the run's or bundle's own.
    #[arg(long)]
    pub hparams: Option<String>,
    /// Where the files are written (created if missing).
    #[arg(long = "output_dir", alias = "output-dir")]
    pub output_dir: Option<PathBuf>,
    /// midi (a named track per voice), midi-single (one track, as the
    /// original), musicxml, mxl, or both (midi and musicxml).
    #[arg(long = "output_format", alias = "output-format", default_value = "midi")]
    pub output_format: String,
    #[arg(long = "num_outputs", alias = "num-outputs", default_value_t = options().num_outputs)]
    pub num_outputs: usize,
    /// Total length in sixteenth steps, primer included [default: 128;
    /// harmonizing: the melody's length, nothing added].
    #[arg(long = "num_steps", alias = "num-steps")]
    pub num_steps: Option<usize>,
    /// A chord a quarter note long, as a Python list: "[67,64,60]".
    #[arg(long = "primer_pitches", alias = "primer-pitches", allow_hyphen_values = true)]
    pub primer_pitches: Option<String>,
    /// Melody values, one a step (-2 hold, -1 off, 0-127 on): "[60,-2,-2,-2,67]".
    #[arg(long = "primer_melody", alias = "primer-melody", allow_hyphen_values = true)]
    pub primer_melody: Option<String>,
    /// A MIDI (or MusicXML) file to start from (its tempo replaces --qpm).
    #[arg(long = "primer_midi", alias = "primer-midi")]
    pub primer_midi: Option<PathBuf>,
    /// Feed the primer to the model before generating.
    #[arg(long = "condition_on_primer", alias = "condition-on-primer", num_args = 0..=1, default_value_t = options().condition_on_primer, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub condition_on_primer: bool,
    /// Put the primer's events into the stream as it is generated (harmonize it).
    #[arg(long = "inject_primer_during_generation", alias = "inject-primer-during-generation", num_args = 0..=1, default_value_t = options().inject_primer_during_generation, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub inject_primer_during_generation: bool,
    /// Begin each output with the primer's steps.
    #[arg(long = "primer_in_output", alias = "primer-in-output", num_args = 0..=1, default_value_t = options().primer_in_output, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub primer_in_output: bool,
    #[arg(long, default_value_t = options().qpm)]
    pub qpm: f64,
    /// Logits are divided by it before sampling.
    #[arg(long, default_value_t = options().temperature)]
    pub temperature: f64,
    #[arg(long = "beam_size", alias = "beam-size", default_value_t = options().beam_size)]
    pub beam_size: usize,
    #[arg(long = "branch_factor", alias = "branch-factor", default_value_t = options().branch_factor)]
    pub branch_factor: usize,
    #[arg(long = "steps_per_iteration", alias = "steps-per-iteration", default_value_t = options().steps_per_iteration)]
    pub steps_per_iteration: usize,
    /// Sample only events that decoding keeps (no CONTINUED_NOTE of a pitch
    /// that is not sounding); false samples from all 259 as the original did.
    #[arg(long = "mask_ignored_events", alias = "mask-ignored-events", num_args = 0..=1, default_value_t = options().mask_ignored_events, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub mask_ignored_events: bool,
    /// Within a step pitches descend, as in every training example (with
    /// --mask_ignored_events).
    #[arg(long, num_args = 0..=1, default_value_t = options().descending, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub descending: bool,
    /// At most this many voices at once (default: the bundle's voices, 4
    /// for a chorale model).
    #[arg(long = "max_voices", alias = "max-voices")]
    pub max_voices: Option<usize>,
    /// A new note outside the key's scale is this many times less likely
    /// (1: no key prior); the key is --key, else the primer's.
    #[arg(long = "key_prior", alias = "key-prior", default_value_t = options().key_prior)]
    pub key_prior: f64,
    /// Strict four-part writing: no parallel fifths or octaves, voices in
    /// their ranges, no more than an octave between soprano and alto or
    /// alto and tenor.
    #[arg(long = "part_writing", alias = "part-writing", num_args = 0..=1, default_value_t = options().part_writing, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub part_writing: bool,
    /// Nucleus sampling: sample only from the most likely events whose
    /// probabilities add up to this (1: all).
    #[arg(long = "top_p", alias = "top-p", default_value_t = options().top_p)]
    pub top_p: f64,
    /// Harmonize the primer's melody instead of continuing it (see the
    /// `harmonize` command).
    #[arg(long, num_args = 0..=1, default_value_t = options().harmonize, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub harmonize: bool,
    /// Harmonizing: keep the primer's bottom line as the bass and write the
    /// voices above it (instead of its top line as the soprano).
    #[arg(long = "harmonize_bass", alias = "harmonize-bass", num_args = 0..=1, default_value_t = options().harmonize_bass, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub harmonize_bass: bool,
    /// Same seed and inputs, same outputs (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The key to write in, e.g. "G", "F# minor", "Bbm" (default: the
    /// primer's, by key finding).
    #[arg(long)]
    pub key: Option<polyphony::key::Key>,
    /// Write --run_dir's model to --bundle_file and stop.
    #[arg(long = "save_generator_bundle", alias = "save-generator-bundle", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub save_generator_bundle: bool,
    #[arg(long = "bundle_description", alias = "bundle-description", default_value = "")]
    pub bundle_description: String,
    /// cpu: the fused CPU step; gpu: burn's model through wgpu.
    #[arg(long, value_parser = parse_backend, default_value = "cpu")]
    pub device: Backend,
}
