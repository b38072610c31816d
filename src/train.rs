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
//! - **Adam and global-norm clipping written out** (as TensorFlow's
//!   `AdamOptimizer` and `clip_by_global_norm`), so their state is
//!   checkpointed under the original's parameter names and a resumed run
//!   repeats an uninterrupted one exactly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::encoding::{Event, NUM_CLASSES};
use crate::hparams::HParams;
use crate::model::{Dropout, Model};
use crate::rng::Rng;

/// Adam's constants, as TensorFlow's defaults.
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;
/// Examples are sorted by length within this many batches.
const SORT_WINDOW_BATCHES: usize = 16;
const STEP_END_CLASS: i64 = 2;

/// Which device trains: the CPU backend, or a GPU through wgpu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    Cpu,
    Gpu,
}

impl DeviceChoice {
    pub fn device(self) -> Device {
        match self {
            DeviceChoice::Cpu => Device::flex(),
            DeviceChoice::Gpu => Device::wgpu(Default::default()),
        }
    }
}

/// Summed counts from which every metric is derived, so that metrics over
/// several batches or windows combine exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub loss_sum: f64,
    pub events: f64,
    pub correct: f64,
    pub step_end_events: f64,
    pub step_end_correct: f64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.loss_sum += other.loss_sum;
        self.events += other.events;
        self.correct += other.correct;
        self.step_end_events += other.step_end_events;
        self.step_end_correct += other.step_end_correct;
    }

    /// The original's metrics: loss (mean cross-entropy per real event),
    /// perplexity, accuracy, event_accuracy (on events that are not
    /// STEP_END) and no_event_accuracy (on STEP_END).
    pub fn metrics(&self) -> Metrics {
        let loss = self.loss_sum / self.events.max(1.0);
        let other = self.events - self.step_end_events;
        Metrics {
            loss,
            perplexity: loss.exp(),
            accuracy: self.correct / self.events.max(1.0),
            event_accuracy: (self.correct - self.step_end_correct) / other.max(1.0),
            no_event_accuracy: self.step_end_correct / self.step_end_events.max(1.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f64,
    pub perplexity: f64,
    pub accuracy: f64,
    pub event_accuracy: f64,
    pub no_event_accuracy: f64,
}

/// One padded batch on the host: inputs, labels and a mask of real events.
struct Batch {
    rows: usize,
    time: usize,
    inputs: Vec<i64>,
    labels: Vec<i64>,
    mask: Vec<f32>,
}

impl Batch {
    /// Inputs are events `0..n-1`, labels `1..n` (the next event).
    fn new(sequences: &[&[u16]]) -> Batch {
        let rows = sequences.len();
        let time = sequences.iter().map(|s| s.len().saturating_sub(1)).max().unwrap_or(0);
        let mut batch = Batch {
            rows,
            time,
            inputs: vec![0; rows * time],
            labels: vec![0; rows * time],
            mask: vec![0.0; rows * time],
        };
        for (r, seq) in sequences.iter().enumerate() {
            for t in 0..seq.len().saturating_sub(1) {
                batch.inputs[r * time + t] = seq[t] as i64;
                batch.labels[r * time + t] = seq[t + 1] as i64;
                batch.mask[r * time + t] = 1.0;
            }
        }
        batch
    }

    /// Real events in columns `start..start + len`.
    fn real_events_in(&self, start: usize, len: usize) -> f64 {
        (0..self.rows)
            .map(|r| self.mask[r * self.time + start..r * self.time + start + len].iter().map(|&m| m as f64).sum::<f64>())
            .sum()
    }

    /// Columns `start..start + len` as device tensors.
    fn window(&self, start: usize, len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<1, Int>, Tensor<1>) {
        let take = |v: &[i64]| -> Vec<i64> {
            (0..self.rows).flat_map(|r| v[r * self.time + start..r * self.time + start + len].to_vec()).collect()
        };
        let mask: Vec<f32> = (0..self.rows)
            .flat_map(|r| self.mask[r * self.time + start..r * self.time + start + len].to_vec())
            .collect();
        (
            Tensor::<2, Int>::from_data(TensorData::new(take(&self.inputs), [self.rows, len]), device),
            Tensor::<1, Int>::from_data(TensorData::new(take(&self.labels), [self.rows * len]), device),
            Tensor::<1>::from_data(TensorData::new(mask, [self.rows * len]), device),
        )
    }
}

/// The batches of one epoch, as example indices: shuffled, sorted by length
/// within windows, batches shuffled. Depends only on (seed, epoch), so a
/// resumed run sees the same batches.
pub fn epoch_batches(lengths: &[usize], batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::derive(seed, epoch);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    for window in order.chunks_mut(batch_size * SORT_WINDOW_BATCHES) {
        window.sort_by_key(|&i| lengths[i]);
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
    rng.shuffle(&mut batches);
    batches
}

/// Loss and counts of one window: `loss_sum` is the summed cross-entropy
/// over real events (a tensor, for backpropagation).
fn window_loss(logits: Tensor<3>, labels: Tensor<1, Int>, mask: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let [rows, time, classes] = logits.dims();
    let flat = logits.reshape([rows * time, classes]);
    let picked = log_softmax(flat.clone(), 1).gather(1, labels.clone().reshape([rows * time, 1])).reshape([rows * time]);
    let loss_sum = (picked * mask.clone()).sum().neg();
    let correct = flat.argmax(1).reshape([rows * time]).equal(labels.clone()).float() * mask.clone();
    let step_end = labels.equal_elem(STEP_END_CLASS).float() * mask;
    // One small tensor of sums, so each window costs a single readback.
    let counts = Tensor::cat(
        vec![
            loss_sum.clone().detach(),
            correct.clone().sum(),
            step_end.clone().sum(),
            (correct * step_end).sum(),
        ],
        0,
    );
    (loss_sum, counts)
}

fn read_counts(counts: Tensor<1>, events: f64) -> Counts {
    let v: Vec<f32> = counts.into_data().convert::<f32>().try_to_vec().expect("f32 counts");
    Counts {
        loss_sum: v[0] as f64,
        events,
        correct: v[1] as f64,
        step_end_events: v[2] as f64,
        step_end_correct: v[3] as f64,
    }
}

/// Adam's moments for every parameter, and its step count.
#[derive(Clone)]
pub struct AdamState {
    pub step: u64,
    pub m: Vec<Tensor<2>>,
    pub v: Vec<Tensor<2>>,
}

impl AdamState {
    pub fn new(parameters: &[Tensor<2>]) -> AdamState {
        let zeros = |p: &Tensor<2>| Tensor::<2>::zeros(p.dims(), &p.device());
        AdamState { step: 0, m: parameters.iter().map(zeros).collect(), v: parameters.iter().map(zeros).collect() }
    }
}

/// `clip_by_global_norm` then one TensorFlow Adam step. Returns the
/// parameters and the gradients' global norm before clipping.
fn apply_gradients(
    parameters: Vec<Tensor<2>>,
    gradients: Vec<Tensor<2>>,
    adam: &mut AdamState,
    hparams: &HParams,
) -> (Vec<Tensor<2>>, f64) {
    let squares: Vec<Tensor<1>> = gradients.iter().map(|g| (g.clone() * g.clone()).sum()).collect();
    let norm = (Tensor::cat(squares, 0).sum().into_scalar::<f32>() as f64).sqrt();
    let scale = if norm > hparams.clip_norm { hparams.clip_norm / norm } else { 1.0 };
    adam.step += 1;
    let t = adam.step as i32;
    let lr_t = hparams.learning_rate * (1.0 - ADAM_BETA2.powi(t)).sqrt() / (1.0 - ADAM_BETA1.powi(t));
    let mut updated = Vec::with_capacity(parameters.len());
    for (i, (p, g)) in parameters.into_iter().zip(gradients).enumerate() {
        let g = g * scale;
        let m = adam.m[i].clone() * ADAM_BETA1 + g.clone() * (1.0 - ADAM_BETA1);
        let v = adam.v[i].clone() * ADAM_BETA2 + g.clone() * g * (1.0 - ADAM_BETA2);
        updated.push(p - m.clone() / (v.clone().sqrt() + ADAM_EPSILON) * lr_t);
        adam.m[i] = m;
        adam.v[i] = v;
    }
    (updated, norm)
}

/// Rows of a batch are split into this many parts, each run forward and
/// backward on its own thread: one thread alone leaves a second core
/// mostly idle (many small operations per time step). A constant, not the
/// machine's core count, so that a run is the same on every machine.
const ROW_PARTS: usize = 2;

/// Runs one batch: its rows split into [`ROW_PARTS`] interleaved parts
/// that run in parallel, their gradients summed, then one optimizer step.
/// `model` lives on the plain device; each part makes a copy of it that
/// records gradients on `autodiff`.
pub fn train_step(
    model: &Model,
    adam: &mut AdamState,
    sequences: &[&[u16]],
    window: usize,
    dropout_rng: &mut Rng,
    autodiff: &Device,
) -> (Model, Counts, f64) {
    let total: f64 = sequences.iter().map(|s| s.len().saturating_sub(1) as f64).sum();
    // At least one part, so that even an empty batch gets (zero) gradients.
    let parts: Vec<(Vec<&[u16]>, Rng)> = (0..ROW_PARTS.min(sequences.len()).max(1))
        .map(|part| {
            let rows = sequences.iter().skip(part).step_by(ROW_PARTS).copied().collect();
            (rows, Rng::new(dropout_rng.next_u64()))
        })
        .collect();
    let results: Vec<(Vec<Tensor<2>>, Counts)> = std::thread::scope(|scope| {
        let threads: Vec<_> = parts
            .into_iter()
            .map(|(rows, mut rng)| scope.spawn(move || part_gradients(model, &rows, total, window, &mut rng, autodiff)))
            .collect();
        threads.into_iter().map(|t| t.join().expect("a training thread panicked")).collect()
    });
    let mut counts = Counts::default();
    let mut sums = None;
    for (gradients, part_counts) in results {
        counts.add(&part_counts);
        add_gradients(&mut sums, gradients);
    }
    let gradients = sums.expect("at least one part");
    let (updated, norm) = apply_gradients(model.parameters(), gradients, adam, &model.hparams);
    (model.with_parameters(updated), counts, norm)
}

/// Adds `more` to the running sums of gradients (or starts them).
fn add_gradients(sums: &mut Option<Vec<Tensor<2>>>, more: Vec<Tensor<2>>) {
    *sums = Some(match sums.take() {
        None => more,
        Some(s) => s.into_iter().zip(more).map(|(a, b)| a + b).collect(),
    });
}

/// The gradients of `sequences`' summed loss divided by `total` (the whole
/// batch's real events), forward and backward window by window.
fn part_gradients(
    model: &Model,
    sequences: &[&[u16]],
    total: f64,
    window: usize,
    dropout_rng: &mut Rng,
    autodiff: &Device,
) -> (Vec<Tensor<2>>, Counts) {
    let batch = Batch::new(sequences);
    let tracked: Vec<Tensor<2>> = model
        .parameters()
        .into_iter()
        .map(|p| Tensor::from_inner(p).require_grad())
        .collect();
    let ad_model = model.with_parameters(tracked.clone());
    let mut state = ad_model.zero_state(batch.rows);
    let mut sums: Option<Vec<Tensor<2>>> = None;
    let mut counts = Counts::default();
    let mut start = 0;
    while start < batch.time {
        let len = window.min(batch.time - start);
        let (inputs, labels, mask) = batch.window(start, len, autodiff);
        let events = batch.real_events_in(start, len);
        let dropout = Dropout { keep_prob: model.hparams.dropout_keep_prob, rng: dropout_rng };
        let (logits, next) = ad_model.forward(inputs, state, Some(dropout));
        let (loss_sum, window_counts) = window_loss(logits, labels, mask);
        let grads = (loss_sum / total).backward();
        let window_grads: Vec<Tensor<2>> = tracked
            .iter()
            .map(|p| p.grad(&grads).unwrap_or_else(|| Tensor::zeros(p.dims(), &p.clone().inner().device())))
            .collect();
        add_gradients(&mut sums, window_grads);
        counts.add(&read_counts(window_counts.inner(), events));
        state = next.detach();
        start += len;
    }
    let gradients = sums.unwrap_or_else(|| model.parameters().iter().map(|p| p.zeros_like()).collect());
    (gradients, counts)
}

/// Metrics over whole sequences without dropout, plus per-class accuracy
/// (`[correct, total]` per class of the label).
pub fn evaluate(model: &Model, sequences: &[&[u16]], batch_size: usize, window: usize) -> (Counts, Vec<[u64; 2]>) {
    let device = model.device();
    let mut counts = Counts::default();
    let mut per_class = vec![[0u64; 2]; NUM_CLASSES];
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| sequences[i].len());
    for chunk in order.chunks(batch_size) {
        let seqs: Vec<&[u16]> = chunk.iter().map(|&i| sequences[i]).collect();
        let batch = Batch::new(&seqs);
        let mut state = model.zero_state(batch.rows);
        let mut start = 0;
        while start < batch.time {
            let len = window.min(batch.time - start);
            let (inputs, labels, mask) = batch.window(start, len, &device);
            let events = batch.real_events_in(start, len);
            let (logits, next) = model.forward(inputs, state, None);
            let predictions: Vec<i64> =
                logits.clone().reshape([batch.rows * len, NUM_CLASSES]).argmax(1).into_data().convert::<i64>().try_to_vec().expect("ints");
            let host_labels: Vec<i64> = labels.clone().into_data().convert::<i64>().try_to_vec().expect("ints");
            let host_mask: Vec<f32> = mask.clone().into_data().convert::<f32>().try_to_vec().expect("floats");
            for ((p, l), m) in predictions.iter().zip(&host_labels).zip(&host_mask) {
                if *m > 0.0 {
                    per_class[*l as usize][1] += 1;
                    per_class[*l as usize][0] += (p == l) as u64;
                }
            }
            let (_, window_counts) = window_loss(logits, labels, mask);
            counts.add(&read_counts(window_counts, events));
            state = next;
            start += len;
        }
    }
    (counts, per_class)
}

/// The name of a class for per-class reports.
pub fn class_name(class: usize) -> String {
    Event::from_class(class).map_or_else(|| format!("class {class}"), |e| e.to_string())
}

/// Options of `polyphony train`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub hparams: HParams,
    pub num_training_steps: Option<u64>,
    pub seed: u64,
    pub bptt_window: usize,
    pub device: DeviceChoice,
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
}

/// The run's latest checkpoint (training resumes from it).
pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint.safetensors")
}

/// The checkpoint with the best eval loss so far.
pub fn best_checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("best.safetensors")
}

/// Stream ids for [`Rng::derive`]: dropout masks of step `n` use
/// `DROPOUT_STREAM + n`; epochs use their number.
const DROPOUT_STREAM: u64 = 1 << 40;

/// What a checkpoint records besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub seed: u64,
    pub hparams: HParams,
    pub bptt_window: usize,
    pub dataset: String,
    pub elapsed_secs: f64,
    pub last_train: Option<Metrics>,
    pub last_eval: Option<Metrics>,
    #[serde(default)]
    pub best_eval_loss: Option<f64>,
    #[serde(default)]
    pub evals_since_best: u64,
}

/// A saved run: model, optimizer and where training stood.
pub struct Checkpoint {
    pub model: Model,
    pub adam: AdamState,
    pub state: TrainState,
}

fn tensor_bytes(t: &Tensor<2>) -> Vec<u8> {
    crate::model::host_values(t.clone()).iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes the checkpoint to `path` atomically (temporary file, then
/// rename), so an interruption never leaves a damaged one.
pub fn save_checkpoint(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let expected = crate::bundle::expected_shapes(&checkpoint.model.hparams);
    let groups = [("param", checkpoint.model.parameters()), ("adam_m", checkpoint.adam.m.clone()), ("adam_v", checkpoint.adam.v.clone())];
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, tensors) in &groups {
        for ((name, shape), t) in expected.iter().zip(tensors) {
            owned.push((format!("{prefix}/{name}"), shape.clone(), tensor_bytes(t)));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("consistent view")))
        .collect();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("train_state".to_string(), serde_json::to_string(&checkpoint.state).expect("serializable"));
    metadata.insert("adam_step".to_string(), checkpoint.adam.step.to_string());
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Reads a run's latest checkpoint onto `device`; `Ok(None)` when there is none.
pub fn load_checkpoint(run_dir: &Path, device: &Device) -> Result<Option<Checkpoint>, String> {
    load_checkpoint_file(&checkpoint_path(run_dir), device)
}

/// The run's best checkpoint (by eval loss) when it has one, else its
/// latest, and the file it came from.
pub fn load_best_or_latest(run_dir: &Path, device: &Device) -> Result<(Checkpoint, PathBuf), String> {
    let best = best_checkpoint_path(run_dir);
    let path = if best.is_file() { best } else { checkpoint_path(run_dir) };
    match load_checkpoint_file(&path, device)? {
        Some(c) => Ok((c, path)),
        None => Err(format!("{}: no checkpoint (train first)", run_dir.display())),
    }
}

/// Reads a checkpoint file onto `device`; `Ok(None)` when it does not exist.
pub fn load_checkpoint_file(path: &Path, device: &Device) -> Result<Option<Checkpoint>, String> {
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |what: String| format!("{}: damaged checkpoint: {what}", path.display());
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let state: TrainState = meta
        .get("train_state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("no training state".into()))?;
    let adam_step: u64 = meta.get("adam_step").and_then(|s| s.parse().ok()).ok_or_else(|| bad("no optimizer step".into()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let expected = crate::bundle::expected_shapes(&state.hparams);
    let group = |prefix: &str| -> Result<Vec<(Vec<usize>, Vec<f32>)>, String> {
        expected
            .iter()
            .map(|(name, shape)| {
                let key = format!("{prefix}/{name}");
                let view = tensors.tensor(&key).map_err(|_| bad(format!("missing {key}")))?;
                if view.shape() != shape.as_slice() || view.dtype() != safetensors::Dtype::F32 {
                    return Err(bad(format!("{key} has shape {:?}, expected {shape:?}", view.shape())));
                }
                let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                Ok((shape.clone(), values))
            })
            .collect()
    };
    let model = Model::from_tensors(&state.hparams, group("param")?, device);
    let as_matrices = |g: Vec<(Vec<usize>, Vec<f32>)>| Model::from_tensors(&state.hparams, g, device).parameters();
    let adam = AdamState { step: adam_step, m: as_matrices(group("adam_m")?), v: as_matrices(group("adam_v")?) };
    Ok(Some(Checkpoint { model, adam, state }))
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRecord {
    /// "train" or "eval".
    pub kind: String,
    pub step: u64,
    pub elapsed_secs: f64,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_norm: Option<f64>,
}

fn append_log(run_dir: &Path, record: &LogRecord) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(run_dir.join("metrics.jsonl"))?;
    writeln!(file, "{}", serde_json::to_string(record).expect("serializable"))
}

/// Reads `metrics.jsonl` (skipping lines it cannot parse, such as a line
/// cut short by a crash).
pub fn read_log(run_dir: &Path) -> Vec<LogRecord> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The outcome of a `train` call.
pub struct TrainReport {
    pub resumed_from: Option<u64>,
    pub final_step: u64,
    pub interrupted: bool,
    /// The eval loss stopped improving (see [`TrainOptions::patience`]).
    pub stopped_early: bool,
}

/// Trains until `num_training_steps` (or Ctrl-C, which sets `stop`),
/// resuming from the run's checkpoint when there is one.
pub fn train(
    options: &TrainOptions,
    examples: &[Vec<u16>],
    dataset_name: &str,
    stop: &AtomicBool,
    progress: &dyn Fn(&Progress),
) -> Result<TrainReport, String> {
    if examples.is_empty() {
        return Err("the training set holds no sequences".into());
    }
    let device = options.device.device();
    let autodiff = device.clone().autodiff();
    std::fs::create_dir_all(&options.run_dir).map_err(|e| format!("{}: {e}", options.run_dir.display()))?;
    let (mut model, mut adam, mut state, resumed_from) = match load_checkpoint(&options.run_dir, &device)? {
        Some(c) => {
            if c.state.hparams != options.hparams {
                return Err(format!(
                    "{} was trained with hparams \"{}\", but \"{}\" were given: use the same hparams to resume, or another --run_dir",
                    options.run_dir.display(),
                    c.state.hparams.to_overrides(),
                    options.hparams.to_overrides()
                ));
            }
            let step = c.state.step;
            (c.model, c.adam, c.state, Some(step))
        }
        None => {
            let model = Model::init(&options.hparams, &device, options.seed);
            let adam = AdamState::new(&model.parameters());
            let state = TrainState {
                step: 0,
                seed: options.seed,
                hparams: options.hparams.clone(),
                bptt_window: options.bptt_window,
                dataset: dataset_name.to_string(),
                elapsed_secs: 0.0,
                last_train: None,
                last_eval: None,
                best_eval_loss: None,
                evals_since_best: 0,
            };
            (model, adam, state, None)
        }
    };
    let lengths: Vec<usize> = examples.iter().map(Vec::len).collect();
    let batches_per_epoch = lengths.len().div_ceil(options.hparams.batch_size) as u64;
    let mut epoch_cache: Option<(u64, Vec<Vec<usize>>)> = None;
    let mut since_log = Counts::default();
    let started = Instant::now();
    let elapsed_before = state.elapsed_secs;
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
        let (next, counts, norm) = train_step(&model, &mut adam, &sequences, state.bptt_window, &mut rng, &autodiff);
        model = next;
        state.step += 1;
        since_log.add(&counts);
        state.elapsed_secs = elapsed_before + started.elapsed().as_secs_f64();
        let events_per_sec = counts.events / step_clock.elapsed().as_secs_f64().max(1e-9);
        progress(&Progress { step: state.step, metrics: counts.metrics(), events_per_sec });
        if state.step % options.log_every == 0 {
            let record = LogRecord {
                kind: "train".into(),
                step: state.step,
                elapsed_secs: state.elapsed_secs,
                metrics: since_log.metrics(),
                events_per_sec: Some(since_log.events / log_clock.elapsed().as_secs_f64().max(1e-9)),
                gradient_norm: Some(norm),
            };
            state.last_train = Some(record.metrics);
            log_record(&options.run_dir, &record)?;
            since_log = Counts::default();
            log_clock = Instant::now();
        }
        if let Some(eval) = &options.eval_sequences {
            if state.step % options.eval_every == 0 {
                let seqs: Vec<&[u16]> = eval.iter().map(Vec::as_slice).collect();
                let (counts, _) = evaluate(&model, &seqs, options.hparams.batch_size, state.bptt_window);
                let metrics = counts.metrics();
                log_eval(&options.run_dir, state.step, state.elapsed_secs, metrics)?;
                state.last_eval = Some(metrics);
                if state.best_eval_loss.is_none_or(|best| metrics.loss < best) {
                    state.best_eval_loss = Some(metrics.loss);
                    state.evals_since_best = 0;
                    let best = Checkpoint { model: model.clone(), adam: adam.clone(), state: state.clone() };
                    save_checkpoint(&best_checkpoint_path(&options.run_dir), &best).map_err(|e| e.to_string())?;
                } else {
                    state.evals_since_best += 1;
                }
                if options.patience.is_some_and(|p| state.evals_since_best >= p) {
                    stopped_early = true;
                    break;
                }
            }
        }
        if last_checkpoint.elapsed().as_secs() >= options.checkpoint_secs {
            save_checkpoint(&checkpoint_path(&options.run_dir), &Checkpoint { model: model.clone(), adam: adam.clone(), state: state.clone() })
                .map_err(|e| e.to_string())?;
            last_checkpoint = Instant::now();
        }
    }
    save_checkpoint(&checkpoint_path(&options.run_dir), &Checkpoint { model, adam, state: state.clone() })
        .map_err(|e| e.to_string())?;
    Ok(TrainReport { resumed_from, final_step: state.step, interrupted, stopped_early })
}

/// What the progress display shows after each step.
pub struct Progress {
    pub step: u64,
    pub metrics: Metrics,
    pub events_per_sec: f64,
}

/// Default events per truncated-backpropagation window.
pub const DEFAULT_BPTT_WINDOW: usize = 256;

/// Appends an eval record (during training or from `train --eval`) to the
/// run's log and refreshes the curves.
pub fn log_eval(run_dir: &Path, step: u64, elapsed_secs: f64, metrics: Metrics) -> Result<(), String> {
    let record = LogRecord { kind: "eval".into(), step, elapsed_secs, metrics, events_per_sec: None, gradient_norm: None };
    log_record(run_dir, &record)
}

/// Appends a record to `metrics.jsonl` and redraws `curves.svg`.
fn log_record(run_dir: &Path, record: &LogRecord) -> Result<(), String> {
    append_log(run_dir, record).map_err(|e| e.to_string())?;
    crate::plot::write_curves(run_dir, &read_log(run_dir)).map_err(|e| e.to_string())
}

/// A bundle of a checkpoint's weights, recording where they came from.
pub fn bundle_of(checkpoint: &Checkpoint, description: &str, created: &str) -> crate::bundle::Bundle {
    let state = &checkpoint.state;
    let eval_metrics = state.last_eval.map(|m| metrics_map(&m)).unwrap_or_default();
    let mut metadata = crate::bundle::BundleMetadata::new(description, state.hparams.clone(), created);
    metadata.provenance = Some(crate::bundle::Provenance {
        dataset: state.dataset.clone(),
        dataset_description: String::new(),
        training_steps: state.step,
        wall_time_seconds: state.elapsed_secs,
        eval_metrics,
    });
    checkpoint.model.to_bundle(metadata)
}

/// Metrics by name, as bundles and model cards list them.
pub fn metrics_map(m: &Metrics) -> std::collections::BTreeMap<String, f64> {
    [
        ("loss", m.loss),
        ("perplexity", m.perplexity),
        ("accuracy", m.accuracy),
        ("event_accuracy", m.event_accuracy),
        ("no_event_accuracy", m.no_event_accuracy),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
