//! Training and evaluation (native only).
//!
//! What differs from the original, and why:
//! - **Batches of similar lengths.** Each epoch shuffles the examples, sorts
//!   them by length within windows of 16 batches, and shuffles the batches:
//!   padding stays small (the original pads a batch to its longest sequence,
//!   ~3,480 events for a mean of 924).
//! - **Truncated backpropagation.** A batch runs in windows of
//!   [`TrainOptions::bptt_window`] events with the LSTM state carried over
//!   (detached) between windows; the gradients of all windows are summed and
//!   the optimizer takes one step per batch, so a step still means one batch
//!   and the loss is still the mean over the batch's real events. Memory is
//!   bounded by the window, not by the longest chorale (the original needs
//!   ~16 GB); the price is that gradients do not flow back further than a
//!   window, which is several bars of music at 256 events.
//! - **Rows in parallel.** A batch's rows run in two interleaved parts on two
//!   threads and their gradients are summed (the same mean-loss gradient):
//!   1.4× the events per second on 2 cores, where one thread left the
//!   second core mostly idle.
//! - **Gradients written out on the CPU** ([`backprop`]): the window's large
//!   products at once instead of burn's autodiff's one small product per
//!   time step, 2.2× the events per second here (`polyphony bench train`
//!   against `--autodiff`); the GPU keeps burn's autodiff.
//! - **Adam and global-norm clipping written out** (as TensorFlow's
//!   `AdamOptimizer` and `clip_by_global_norm`), so their state is
//!   checkpointed under the original's parameter names and a resumed run
//!   repeats an uninterrupted one exactly, its log included.
//! - **Warm starts.** A new run may start from any bundle's weights
//!   ([`TrainOptions::warm_start`]) with a fresh optimizer; the original
//!   could not fine-tune this model.
//!
//! The parts: [`step`] (one training step, one evaluation), [`backprop`]
//! (the CPU's gradients), [`checkpoint`] (saving and resuming), and here the
//! loop that runs them.

mod backprop;
pub mod checkpoint;
pub mod step;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use checkpoint::{
    Checkpoint, TrainState, best_checkpoint_path, bundle_of, checkpoint_from_bytes, checkpoint_path, load_best_or_latest, load_checkpoint,
    load_checkpoint_file, read_train_state, save_checkpoint,
};
pub use step::{AdamState, ContinuedMiss, Differentiation, Evaluation, check_window, class_name, epoch_batches, evaluate, train_step};

use crate::bundle::{Bundle, BundleError};
use crate::generate::{Backend, GenerateError};
use crate::hparams::{HParams, HParamsError};
use crate::limits::LimitError;
use crate::metrics::{self, Counts, LogRecord, Metrics};
use crate::model::Model;
use crate::rng::Rng;

/// Default events per truncated-backpropagation window.
pub const DEFAULT_BPTT_WINDOW: usize = 256;

/// Stream ids for [`Rng::derive`]: dropout masks of step `n` use
/// `DROPOUT_STREAM + n`; epochs use their number.
const DROPOUT_STREAM: u64 = 1 << 40;

/// Why training or evaluation cannot go on: one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{path}: damaged checkpoint: {why}")]
    Checkpoint { path: String, why: String },
    #[error("{0}: no checkpoint (train first)")]
    NoCheckpoint(String),
    #[error("{0}")]
    HParams(#[from] HParamsError),
    #[error(
        "{run_dir} was trained with hparams \"{have}\", but \"{given}\" were given: use the same hparams to resume, or another --run_dir"
    )]
    HParamsDiffer { run_dir: String, have: String, given: String },
    #[error("{0} holds no sequences")]
    EmptyDataset(&'static str),
    #[error("{what} is not a number ({value})")]
    NotANumber { what: &'static str, value: f64 },
    #[error(
        "training diverged at step {step} (the loss is {loss}): the run's checkpoint from step {checkpoint_step} is kept; try a lower learning_rate"
    )]
    Diverged { step: u64, loss: f64, checkpoint_step: u64 },
    #[error("{0}")]
    BadOption(String),
    #[error("{0}")]
    Limit(#[from] LimitError),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Backend(#[from] GenerateError),
    #[error(
        "{0} holds a training log (metrics.jsonl) but no checkpoint: the run it belongs to would be lost; give --restart to start over there, or another --run_dir"
    )]
    LogWithoutCheckpoint(String),
    #[error(
        "--warm_start_bundle_file {bundle}: its network (rnn_layer_sizes={have:?}) differs from the hparams asked for (rnn_layer_sizes={given:?}); only batch_size, learning_rate, dropout_keep_prob, clip_norm, key_normalized and context_inputs (off to on) may change"
    )]
    WarmStartShape { bundle: String, have: Vec<usize>, given: Vec<usize> },
}

/// A bundle to start a new run from, and its name for the run's provenance.
#[derive(Clone, Debug)]
pub struct WarmStart {
    pub bundle: Bundle,
    pub name: String,
}

/// Options of `polyphony train`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub hparams: HParams,
    pub num_training_steps: Option<u64>,
    pub seed: u64,
    pub bptt_window: usize,
    pub device: Backend,
    /// Seconds between checkpoints (also written on Ctrl-C and at the end).
    pub checkpoint_secs: u64,
    /// Steps between metric log records.
    pub log_every: u64,
    /// Optional eval set, evaluated every `eval_every` steps for the curves.
    pub eval_sequences: Option<Vec<Vec<u16>>>,
    pub eval_every: u64,
    /// Stop after this many evaluations in a row without a better eval
    /// loss (the best model is kept in `best.safetensors`).
    pub patience: Option<u64>,
    /// A new run starts from this bundle's weights (a resumed run ignores it).
    pub warm_start: Option<WarmStart>,
    /// Start over in a run directory whose checkpoint is gone but whose log
    /// is not (the log is cleared).
    pub restart: bool,
}

impl TrainOptions {
    /// The defaults of `polyphony train` for a run directory.
    pub fn new(run_dir: impl Into<PathBuf>, hparams: HParams) -> TrainOptions {
        TrainOptions {
            run_dir: run_dir.into(),
            hparams,
            num_training_steps: None,
            seed: 0,
            bptt_window: DEFAULT_BPTT_WINDOW,
            device: Backend::Cpu,
            checkpoint_secs: 120,
            log_every: 10,
            eval_sequences: None,
            eval_every: 100,
            patience: None,
            warm_start: None,
            restart: false,
        }
    }
}

/// The hparams a run uses: `overrides` (the `--hparams` string) applied to
/// the run's own when it has a checkpoint, else to the warm-start bundle's,
/// else to the defaults. Reads only the checkpoint's header.
pub fn resolve_hparams(run_dir: &std::path::Path, overrides: Option<&str>, warm_start: Option<&Bundle>) -> Result<HParams, TrainError> {
    let base = match read_train_state(run_dir)? {
        Some(state) => state.hparams,
        None => warm_start.map_or_else(HParams::default, |b| b.metadata.hparams.clone()),
    };
    Ok(base.with_overrides(overrides.unwrap_or(""))?)
}

/// The outcome of a `train` call.
pub struct TrainReport {
    pub resumed_from: Option<u64>,
    pub final_step: u64,
    pub interrupted: bool,
    /// The eval loss stopped improving (see [`TrainOptions::patience`]).
    pub stopped_early: bool,
}

/// What the progress display shows after each step.
pub struct Progress {
    pub step: u64,
    pub metrics: Metrics,
    pub events_per_sec: f64,
}

/// The checks of options and data done before any work.
fn check(options: &TrainOptions, examples: &[Vec<u16>]) -> Result<(), TrainError> {
    options.hparams.validate()?;
    check_window(options.bptt_window)?;
    if options.log_every == 0 || options.eval_every == 0 {
        return Err(TrainError::BadOption("log_every and eval_every must be at least 1".into()));
    }
    if options.hparams.rules_penalty > 0.0 && matches!(options.device, Backend::Gpu) {
        return Err(TrainError::BadOption("rules_penalty is trained on the CPU only (--device cpu): the GPU's autodiff path has no unlikelihood term".into()));
    }
    if examples.iter().all(|e| e.len() < 2) {
        return Err(TrainError::EmptyDataset("the training set"));
    }
    if options.eval_sequences.as_ref().is_some_and(|e| e.iter().all(|s| s.len() < 2)) {
        return Err(TrainError::EmptyDataset("the evaluation set"));
    }
    Ok(())
}

/// A new run's model: the warm-start bundle's weights when given (its
/// network must be the one the hparams describe, or the same with context
/// inputs added: see [`with_context_inputs`]), else a fresh one.
fn new_model(options: &TrainOptions, device: &burn::tensor::Device) -> Result<Model, TrainError> {
    let Some(warm) = &options.warm_start else { return Ok(Model::init(&options.hparams, device, options.seed)) };
    let have = &warm.bundle.metadata.hparams;
    let widen = !have.context_inputs && options.hparams.context_inputs;
    if have.rnn_layer_sizes != options.hparams.rnn_layer_sizes || (have.context_inputs && !options.hparams.context_inputs) {
        return Err(TrainError::WarmStartShape {
            bundle: warm.name.clone(),
            have: have.rnn_layer_sizes.clone(),
            given: options.hparams.rnn_layer_sizes.clone(),
        });
    }
    let bundle = if widen { with_context_inputs(&warm.bundle)? } else { warm.bundle.clone() };
    let mut model = Model::from_bundle(&bundle, device);
    model.hparams = options.hparams.clone();
    Ok(model)
}

/// `bundle`'s network with the [`crate::context`] inputs added at zero
/// weight: it computes exactly what it did, and training learns to use them.
fn with_context_inputs(bundle: &Bundle) -> Result<Bundle, TrainError> {
    let hparams = HParams { context_inputs: true, ..bundle.metadata.hparams.clone() };
    let first = crate::bundle::lstm_kernel_name(0);
    let mut tensors = bundle.weights().tensors().to_vec();
    for tensor in tensors.iter_mut().filter(|t| t.name == first) {
        let columns = tensor.shape[1];
        let at = crate::encoding::NUM_CLASSES * columns;
        tensor.data.splice(at..at, std::iter::repeat_n(0.0, crate::context::CONTEXT_WIDTH * columns));
        tensor.shape[0] += crate::context::CONTEXT_WIDTH;
    }
    let metadata = crate::bundle::BundleMetadata { hparams, ..bundle.metadata.clone() };
    Ok(Bundle::new(metadata, tensors)?)
}

/// Trains until `num_training_steps` (or Ctrl-C, which sets `stop`),
/// resuming from the run's checkpoint when there is one.
pub fn train(
    options: &TrainOptions,
    examples: &[Vec<u16>],
    dataset_name: &str,
    stop: &AtomicBool,
    progress: &dyn Fn(&Progress),
) -> Result<TrainReport, TrainError> {
    check(options, examples)?;
    let device = options.device.device()?;
    let how = Differentiation::for_backend(options.device, &device);
    let run_dir = &options.run_dir;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", run_dir.display()))))?;
    crate::files::clear_stale_temps(run_dir).map_err(TrainError::Io)?;
    let (mut model, mut adam, mut state, resumed_from) = match load_checkpoint(run_dir, &device)? {
        Some(c) => {
            if c.state.hparams != options.hparams {
                return Err(TrainError::HParamsDiffer {
                    run_dir: run_dir.display().to_string(),
                    have: c.state.hparams.to_overrides(),
                    given: options.hparams.to_overrides(),
                });
            }
            // What a killed run logged after its checkpoint is logged again.
            metrics::truncate_log(run_dir, c.state.step).map_err(TrainError::Io)?;
            let step = c.state.step;
            (c.model, c.adam, c.state, Some(step))
        }
        None => {
            if metrics::has_log(run_dir) {
                if !options.restart {
                    return Err(TrainError::LogWithoutCheckpoint(run_dir.display().to_string()));
                }
                metrics::truncate_log(run_dir, 0).map_err(TrainError::Io)?;
            }
            let model = new_model(options, &device)?;
            let adam = AdamState::new(&model.parameters());
            let state = TrainState {
                step: 0,
                seed: options.seed,
                hparams: options.hparams.clone(),
                bptt_window: options.bptt_window,
                dataset: dataset_name.to_string(),
                elapsed_secs: 0.0,
                cpu_secs: 0.0,
                last_train: None,
                last_eval: None,
                best_eval_loss: None,
                evals_since_best: 0,
                since_log: Counts::default(),
                warm_start: options.warm_start.as_ref().map(|w| w.name.clone()),
            };
            (model, adam, state, None)
        }
    };
    let lengths: Vec<usize> = examples.iter().map(Vec::len).collect();
    let batches_per_epoch = lengths.len().div_ceil(options.hparams.batch_size) as u64;
    let mut epoch_cache: Option<(u64, Vec<Vec<usize>>)> = None;
    let started = Instant::now();
    let elapsed_before = state.elapsed_secs;
    let cpu = metrics::process_cpu_secs();
    let cpu_before = state.cpu_secs - cpu.unwrap_or(0.0);
    let mut checkpoint_step = state.step;
    let mut last_checkpoint = Instant::now();
    let mut log_clock = Instant::now();
    let mut interrupted = false;
    let mut stopped_early = false;
    while options.num_training_steps.is_none_or(|n| state.step < n) {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let epoch = state.step / batches_per_epoch;
        if epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            epoch_cache = Some((epoch, epoch_batches(&lengths, options.hparams.batch_size, state.seed, epoch)));
        }
        let batch = &epoch_cache.as_ref().expect("just set").1[(state.step % batches_per_epoch) as usize];
        let sequences: Vec<&[u16]> = batch.iter().map(|&i| examples[i].as_slice()).collect();
        let mut rng = Rng::derive(state.seed, DROPOUT_STREAM + state.step);
        let step_clock = Instant::now();
        let (next, counts, norm) = train_step(&model, &mut adam, &sequences, state.bptt_window, &mut rng, &how);
        let loss = counts.metrics().loss;
        if !loss.is_finite() || !norm.is_finite() {
            return Err(TrainError::Diverged { step: state.step + 1, loss, checkpoint_step });
        }
        model = next;
        state.step += 1;
        state.since_log.add(&counts);
        state.elapsed_secs = elapsed_before + started.elapsed().as_secs_f64();
        state.cpu_secs = cpu_before + metrics::process_cpu_secs().unwrap_or(0.0);
        let events_per_sec = counts.events / step_clock.elapsed().as_secs_f64().max(1e-9);
        progress(&Progress { step: state.step, metrics: counts.metrics(), events_per_sec });
        if state.step % options.log_every == 0 {
            let since_log = std::mem::take(&mut state.since_log);
            let record = LogRecord {
                kind: "train".into(),
                step: state.step,
                elapsed_secs: state.elapsed_secs,
                cpu_secs: cpu.map(|_| state.cpu_secs),
                metrics: since_log.metrics(),
                events_per_sec: Some(since_log.events / log_clock.elapsed().as_secs_f64().max(1e-9)),
                gradient_norm: Some(norm),
            };
            state.last_train = Some(record.metrics);
            log_record(run_dir, &record)?;
            log_clock = Instant::now();
        }
        if let Some(eval) = &options.eval_sequences
            && state.step % options.eval_every == 0
        {
            let seqs: Vec<&[u16]> = eval.iter().map(Vec::as_slice).collect();
            let metrics = evaluate(&model, &seqs, state.bptt_window)?.counts.metrics();
            log_eval(run_dir, &state, metrics)?;
            state.last_eval = Some(metrics);
            if state.best_eval_loss.is_none_or(|best| metrics.loss < best) {
                state.best_eval_loss = Some(metrics.loss);
                state.evals_since_best = 0;
                let best = Checkpoint { model: model.clone(), adam: adam.clone(), state: state.clone() };
                save_checkpoint(&best_checkpoint_path(run_dir), &best)?;
            } else {
                state.evals_since_best += 1;
            }
            if options.patience.is_some_and(|p| state.evals_since_best >= p) {
                stopped_early = true;
                break;
            }
        }
        if last_checkpoint.elapsed().as_secs() >= options.checkpoint_secs {
            save_checkpoint(&checkpoint_path(run_dir), &Checkpoint { model: model.clone(), adam: adam.clone(), state: state.clone() })?;
            checkpoint_step = state.step;
            last_checkpoint = Instant::now();
        }
    }
    save_checkpoint(&checkpoint_path(run_dir), &Checkpoint { model, adam, state: state.clone() })?;
    Ok(TrainReport { resumed_from, final_step: state.step, interrupted, stopped_early })
}

/// Appends an eval record (during training or from `train --eval`) to the
/// run's log and refreshes the curves.
pub fn log_eval(run_dir: &std::path::Path, state: &TrainState, metrics: Metrics) -> Result<(), TrainError> {
    let cpu_secs = Some(state.cpu_secs).filter(|s| *s > 0.0);
    let record = LogRecord { kind: "eval".into(), step: state.step, elapsed_secs: state.elapsed_secs, cpu_secs, metrics, events_per_sec: None, gradient_norm: None };
    log_record(run_dir, &record)
}

/// Appends a record to `metrics.jsonl` and redraws `curves.svg`.
fn log_record(run_dir: &std::path::Path, record: &LogRecord) -> Result<(), TrainError> {
    metrics::append_log(run_dir, record).map_err(TrainError::Io)?;
    crate::plot::write_curves(run_dir, &metrics::read_log(run_dir)).map_err(TrainError::Io)
}
