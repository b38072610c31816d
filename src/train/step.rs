//! One training step and one evaluation: the maths of training, apart from
//! the loop that runs it ([`super::train`]).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{TrainError, backprop};
use crate::encoding::{Event, NUM_CLASSES};
use crate::generate::Backend;
use crate::generate::rules::{ClassSet, Rules, forbidden_next};
use crate::hparams::HParams;
use crate::metrics::Counts;
use crate::model::{Dropout, Model, host_values};
use crate::rng::Rng;

/// Adam's constants, as TensorFlow's defaults.
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;
/// Examples are sorted by length within this many batches.
const SORT_WINDOW_BATCHES: usize = 16;
const STEP_END_CLASS: i64 = 2;

/// One padded batch on the host: inputs, labels, a mask of real events,
/// for a network with context inputs each input's features, and with a
/// rules penalty the classes the style forbids next; `[rows · time]`, row
/// by row.
pub(super) struct Batch {
    pub(super) rows: usize,
    pub(super) time: usize,
    pub(super) inputs: Vec<i64>,
    pub(super) labels: Vec<i64>,
    pub(super) mask: Vec<f32>,
    /// Lists of the features that are on (empty without context inputs).
    pub(super) features: Vec<Vec<u16>>,
    /// What the style's rules forbid after each input (empty without a
    /// rules penalty): see [`crate::generate::rules::forbidden_next`].
    pub(super) forbidden: Vec<ClassSet>,
}

/// A sequence's classes as events (the classes are the dataset's, all valid).
fn events_of(sequence: &[u16]) -> impl Iterator<Item = Event> + '_ {
    sequence.iter().filter_map(|&c| Event::from_class(c as usize))
}

/// A window of a batch as device tensors: inputs, labels, mask, features.
type Window = (Tensor<2, Int>, Tensor<1, Int>, Tensor<1>, Option<Tensor<3>>);

impl Batch {
    /// Inputs are events `0..n-1`, labels `1..n` (the next event).
    pub(super) fn new(sequences: &[&[u16]], context_inputs: bool) -> Batch {
        let rows = sequences.len();
        let time = sequences.iter().map(|s| s.len().saturating_sub(1)).max().unwrap_or(0);
        let mut batch = Batch {
            rows,
            time,
            inputs: vec![0; rows * time],
            labels: vec![0; rows * time],
            mask: vec![0.0; rows * time],
            features: if context_inputs { vec![Vec::new(); rows * time] } else { Vec::new() },
            forbidden: Vec::new(),
        };
        for (r, seq) in sequences.iter().enumerate() {
            for t in 0..seq.len().saturating_sub(1) {
                batch.inputs[r * time + t] = seq[t] as i64;
                batch.labels[r * time + t] = seq[t + 1] as i64;
                batch.mask[r * time + t] = 1.0;
            }
            if context_inputs {
                for (t, features) in crate::context::features_of(events_of(seq)).into_iter().take(time).enumerate() {
                    batch.features[r * time + t] = features;
                }
            }
        }
        batch
    }

    /// The batch the written-out gradients train on: with a rules penalty,
    /// also what the style forbids after each input (evaluation and burn's
    /// autodiff, which have no such term, use [`Batch::new`]).
    pub(super) fn for_training(sequences: &[&[u16]], hparams: &HParams) -> Batch {
        let mut batch = Batch::new(sequences, hparams.context_inputs);
        if hparams.rules_penalty > 0.0 {
            batch.forbidden = vec![ClassSet::default(); batch.rows * batch.time];
            for (r, seq) in sequences.iter().enumerate() {
                let events: Vec<Event> = events_of(seq).collect();
                for (t, set) in forbidden_next(&events, &Rules::STYLE).into_iter().take(batch.time).enumerate() {
                    batch.forbidden[r * batch.time + t] = set;
                }
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
    fn window(&self, start: usize, len: usize, device: &Device) -> Window {
        let cells = |r: usize| r * self.time + start..r * self.time + start + len;
        let take = |v: &[i64]| -> Vec<i64> { (0..self.rows).flat_map(|r| v[cells(r)].to_vec()).collect() };
        let mask: Vec<f32> = (0..self.rows).flat_map(|r| self.mask[cells(r)].to_vec()).collect();
        let features = (!self.features.is_empty()).then(|| {
            let width = crate::context::CONTEXT_WIDTH;
            let mut dense = vec![0.0f32; self.rows * len * width];
            for (k, on) in (0..self.rows).flat_map(|r| &self.features[cells(r)]).enumerate() {
                for &i in on {
                    dense[k * width + i as usize] = 1.0;
                }
            }
            Tensor::<3>::from_data(TensorData::new(dense, [self.rows, len, width]), device)
        });
        (
            Tensor::<2, Int>::from_data(TensorData::new(take(&self.inputs), [self.rows, len]), device),
            Tensor::<1, Int>::from_data(TensorData::new(take(&self.labels), [self.rows * len]), device),
            Tensor::<1>::from_data(TensorData::new(mask, [self.rows * len]), device),
            features,
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
/// mostly idle. A constant, not the machine's core count, so that a run is
/// the same on every machine.
const ROW_PARTS: usize = 2;

/// How a training step gets its gradients.
#[derive(Clone, Debug)]
pub enum Differentiation {
    /// Written out on the host ([`super::backprop`]): the CPU's way, large
    /// products instead of one small one per time step.
    Backprop,
    /// burn's autodiff on this (autodiff) device: the GPU's way, and the
    /// reference the written-out gradients are tested against.
    Autodiff(Device),
}

impl Differentiation {
    /// The way for training on `backend`, whose burn device is `device`.
    pub fn for_backend(backend: Backend, device: &Device) -> Differentiation {
        match backend {
            Backend::Cpu => Differentiation::Backprop,
            Backend::Gpu => Differentiation::Autodiff(device.clone().autodiff()),
        }
    }
}

/// Runs one batch: its rows split into [`ROW_PARTS`] interleaved parts
/// that run in parallel, their gradients summed, then one optimizer step.
pub fn train_step(
    model: &Model,
    adam: &mut AdamState,
    sequences: &[&[u16]],
    window: usize,
    dropout_rng: &mut Rng,
    how: &Differentiation,
) -> (Model, Counts, f64) {
    let total: f64 = sequences.iter().map(|s| s.len().saturating_sub(1) as f64).sum();
    let (gradients, counts) = match how {
        Differentiation::Backprop => {
            let params: Vec<Vec<f32>> = model.parameters().into_iter().map(host_values).collect();
            let (sums, counts) = in_parts(
                sequences,
                dropout_rng,
                |rows, rng| backprop::gradients(&params, &model.hparams, &Batch::for_training(rows, &model.hparams), total, window, rng),
                |a: Vec<Vec<f32>>, b| a.into_iter().zip(b).map(|(x, y)| x.iter().zip(&y).map(|(p, q)| p + q).collect()).collect(),
            );
            let device = model.device();
            let as_tensor = |(g, p): (Vec<f32>, Tensor<2>)| Tensor::<2>::from_data(TensorData::new(g, p.dims()), &device);
            (sums.into_iter().zip(model.parameters()).map(as_tensor).collect(), counts)
        }
        Differentiation::Autodiff(autodiff) => in_parts(
            sequences,
            dropout_rng,
            |rows, rng| part_gradients(model, rows, total, window, rng, autodiff),
            add_tensors,
        ),
    };
    let (updated, norm) = apply_gradients(model.parameters(), gradients, adam, &model.hparams);
    (model.with_parameters(updated), counts, norm)
}

/// Runs `part` on the [`ROW_PARTS`] interleaved parts of `sequences` in
/// parallel, each with its own dropout generator drawn from `dropout_rng`;
/// returns their gradients added up with `add`, and their counts.
fn in_parts<G: Send>(
    sequences: &[&[u16]],
    dropout_rng: &mut Rng,
    part: impl Fn(&[&[u16]], &mut Rng) -> (G, Counts) + Sync,
    add: impl Fn(G, G) -> G,
) -> (G, Counts) {
    // At least one part, so that even an empty batch gets (zero) gradients.
    let parts: Vec<(Vec<&[u16]>, Rng)> = (0..ROW_PARTS.min(sequences.len()).max(1))
        .map(|p| (sequences.iter().skip(p).step_by(ROW_PARTS).copied().collect(), Rng::new(dropout_rng.next_u64())))
        .collect();
    let part = &part;
    let results: Vec<(G, Counts)> = std::thread::scope(|scope| {
        let threads: Vec<_> = parts.into_iter().map(|(rows, mut rng)| scope.spawn(move || part(&rows, &mut rng))).collect();
        threads.into_iter().map(|t| t.join().expect("a training thread panicked")).collect()
    });
    let mut counts = Counts::default();
    let sums = results.into_iter().map(|(gradients, part_counts)| {
        counts.add(&part_counts);
        gradients
    });
    (sums.reduce(add).expect("at least one part"), counts)
}

/// Two lists of gradients added, tensor by tensor.
fn add_tensors(a: Vec<Tensor<2>>, b: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
    a.into_iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Adds `more` to the running sums of gradients (or starts them).
fn add_gradients(sums: &mut Option<Vec<Tensor<2>>>, more: Vec<Tensor<2>>) {
    *sums = Some(match sums.take() {
        None => more,
        Some(s) => add_tensors(s, more),
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
    let batch = Batch::new(sequences, model.hparams.context_inputs);
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
        let (inputs, labels, mask, features) = batch.window(start, len, autodiff);
        let events = batch.real_events_in(start, len);
        let dropout = Dropout { keep_prob: model.hparams.dropout_keep_prob, rng: dropout_rng };
        let (logits, next) = ad_model.forward(inputs, features, state, Some(dropout));
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

/// What [`evaluate`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub counts: Counts,
    /// `[correct, total]` per class of the label.
    pub per_class: Vec<[u64; 2]>,
    /// Where the next event was a CONTINUED_NOTE and the model's first
    /// choice was another event, what that was: see [`ContinuedMiss`].
    pub continued_misses: [u64; 4],
}

/// What the model chose instead of a CONTINUED_NOTE of pitch `p`: the
/// first three end the note or strike it again (a question of rhythm: the
/// music could go on so), the last breaks the encoding's own order within
/// a step (pitches descend), a pure bookkeeping error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContinuedMiss {
    /// The step ends: `p` and every pitch below it end.
    StepEnd,
    /// A NEW_NOTE: `p` struck again, or ended for another note.
    NewNote,
    /// A CONTINUED_NOTE of a lower pitch: `p` ends.
    LowerContinued,
    /// A CONTINUED_NOTE of `p` or higher: out of order.
    OutOfOrder,
}

impl ContinuedMiss {
    pub const ALL: [ContinuedMiss; 4] = [ContinuedMiss::StepEnd, ContinuedMiss::NewNote, ContinuedMiss::LowerContinued, ContinuedMiss::OutOfOrder];

    /// The miss when the truth is a CONTINUED_NOTE and `chosen` differs, else none.
    fn of(truth: Event, chosen: Event) -> Option<ContinuedMiss> {
        let Event::ContinuedNote(p) = truth else { return None };
        match chosen {
            _ if chosen == truth => None,
            Event::StepEnd => Some(ContinuedMiss::StepEnd),
            Event::NewNote(_) => Some(ContinuedMiss::NewNote),
            Event::ContinuedNote(q) if q < p => Some(ContinuedMiss::LowerContinued),
            _ => Some(ContinuedMiss::OutOfOrder),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ContinuedMiss::StepEnd => "STEP_END (the note ends)",
            ContinuedMiss::NewNote => "NEW_NOTE (struck again or ended)",
            ContinuedMiss::LowerContinued => "a lower CONTINUED_NOTE (it ends)",
            ContinuedMiss::OutOfOrder => "CONTINUED_NOTE out of order",
        }
    }
}

impl Evaluation {
    /// Accuracy over the labels whose event `kind` accepts (`None`: none seen).
    pub fn accuracy_of(&self, kind: impl Fn(Event) -> bool) -> Option<f64> {
        let [correct, total] = self
            .per_class
            .iter()
            .enumerate()
            .filter(|(class, _)| Event::from_class(*class).is_some_and(&kind))
            .fold([0, 0], |[c, t], (_, [ci, ti])| [c + ci, t + ti]);
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// Accuracy per kind of event, for reports: the encoding's bookkeeping
    /// (STEP_END, CONTINUED_NOTE, also above MIDI 78 where it is hardest)
    /// apart from the harmony (NEW_NOTE).
    pub fn by_kind(&self) -> Vec<(&'static str, Option<f64>)> {
        vec![
            ("STEP_END", self.accuracy_of(|e| e == Event::StepEnd)),
            ("NEW_NOTE", self.accuracy_of(|e| matches!(e, Event::NewNote(_)))),
            ("CONTINUED_NOTE", self.accuracy_of(|e| matches!(e, Event::ContinuedNote(_)))),
            ("CONTINUED_NOTE above 78", self.accuracy_of(|e| matches!(e, Event::ContinuedNote(p) if p > 78))),
        ]
    }
}

/// Metrics over whole sequences without dropout, in batches of the model's
/// batch size and windows of `window` events, plus per-class accuracy.
/// Refuses an empty set (its loss would be a meaningless 0) and a loss that
/// is not a number (damaged or diverged weights).
pub fn evaluate(model: &Model, sequences: &[&[u16]], window: usize) -> Result<Evaluation, TrainError> {
    if sequences.iter().all(|s| s.len() < 2) {
        return Err(TrainError::EmptyDataset("the evaluation set"));
    }
    check_window(window)?;
    let device = model.device();
    let batch_size = model.hparams.batch_size;
    let mut counts = Counts::default();
    let mut per_class = vec![[0u64; 2]; NUM_CLASSES];
    let mut continued_misses = [0u64; 4];
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| sequences[i].len());
    for chunk in order.chunks(batch_size) {
        let seqs: Vec<&[u16]> = chunk.iter().map(|&i| sequences[i]).collect();
        let batch = Batch::new(&seqs, model.hparams.context_inputs);
        let mut state = model.zero_state(batch.rows);
        let mut start = 0;
        while start < batch.time {
            let len = window.min(batch.time - start);
            let (inputs, labels, mask, features) = batch.window(start, len, &device);
            let events = batch.real_events_in(start, len);
            let (logits, next) = model.forward(inputs, features, state, None);
            let predictions: Vec<i64> =
                logits.clone().reshape([batch.rows * len, NUM_CLASSES]).argmax(1).into_data().convert::<i64>().try_to_vec().expect("ints");
            let host_labels: Vec<i64> = labels.clone().into_data().convert::<i64>().try_to_vec().expect("ints");
            let host_mask: Vec<f32> = mask.clone().into_data().convert::<f32>().try_to_vec().expect("floats");
            for ((p, l), m) in predictions.iter().zip(&host_labels).zip(&host_mask) {
                if *m > 0.0 {
                    per_class[*l as usize][1] += 1;
                    per_class[*l as usize][0] += (p == l) as u64;
                    let event = |c: i64| Event::from_class(c as usize);
                    if let (Some(truth), Some(chosen)) = (event(*l), event(*p))
                        && let Some(miss) = ContinuedMiss::of(truth, chosen)
                    {
                        continued_misses[miss as usize] += 1;
                    }
                }
            }
            let (_, window_counts) = window_loss(logits, labels, mask);
            counts.add(&read_counts(window_counts, events));
            state = next;
            start += len;
        }
    }
    let loss = counts.metrics().loss;
    if !loss.is_finite() {
        return Err(TrainError::NotANumber { what: "the evaluation loss", value: loss });
    }
    Ok(Evaluation { counts, per_class, continued_misses })
}

/// A truncated-backpropagation window of at least one event, within
/// [`crate::limits::MAX_BPTT_WINDOW`].
pub fn check_window(window: usize) -> Result<(), TrainError> {
    if window == 0 {
        return Err(TrainError::BadOption("bptt_window must be at least 1".into()));
    }
    crate::limits::check("bptt_window", window, crate::limits::MAX_BPTT_WINDOW)?;
    Ok(())
}

/// The name of a class for per-class reports.
pub fn class_name(class: usize) -> String {
    Event::from_class(class).map_or_else(|| format!("class {class}"), |e| e.to_string())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_by_kind_pools_the_classes_of_each_kind() {
        let mut per_class = vec![[0u64; 2]; NUM_CLASSES];
        per_class[Event::StepEnd.class()] = [9, 10];
        per_class[Event::ContinuedNote(60).class()] = [3, 4];
        per_class[Event::ContinuedNote(80).class()] = [1, 4];
        let evaluation = Evaluation { counts: Counts::default(), per_class, continued_misses: [0; 4] };
        let kinds: std::collections::BTreeMap<_, _> = evaluation.by_kind().into_iter().collect();
        assert_eq!(kinds["STEP_END"], Some(0.9));
        assert_eq!(kinds["CONTINUED_NOTE"], Some(0.5));
        assert_eq!(kinds["CONTINUED_NOTE above 78"], Some(0.25));
        assert_eq!(kinds["NEW_NOTE"], None, "none seen");
    }

    #[test]
    fn a_missed_continued_note_is_told_by_what_came_instead() {
        use Event::*;
        let miss = |truth, chosen| ContinuedMiss::of(truth, chosen);
        assert_eq!(miss(ContinuedNote(67), ContinuedNote(67)), None, "not a miss");
        assert_eq!(miss(NewNote(67), StepEnd), None, "not a CONTINUED_NOTE");
        assert_eq!(miss(ContinuedNote(67), StepEnd), Some(ContinuedMiss::StepEnd));
        assert_eq!(miss(ContinuedNote(67), NewNote(67)), Some(ContinuedMiss::NewNote));
        assert_eq!(miss(ContinuedNote(67), ContinuedNote(60)), Some(ContinuedMiss::LowerContinued));
        assert_eq!(miss(ContinuedNote(67), ContinuedNote(72)), Some(ContinuedMiss::OutOfOrder));
    }

    /// The written-out gradients against burn's autodiff, on a small
    /// network with dropout, over windows shorter than the sequences (the
    /// state carried over), rows of different lengths (ending within and
    /// between windows: padding for burn, rows left out here) and repeated
    /// classes (the one-hot lookup's gradient adds up): with and without
    /// context inputs.
    #[test]
    fn backprop_gives_autodiff_s_gradients() {
        for overrides in ["rnn_layer_sizes=[6,5],dropout_keep_prob=0.7", "rnn_layer_sizes=[7],dropout_keep_prob=0.6,context_inputs=true"] {
            let hparams = HParams::default().with_overrides(overrides).unwrap();
            let device = Device::flex();
            let model = Model::init(&hparams, &device, 3);
            // Not longest first, so that the written-out path's reordering is exercised.
            let rows: Vec<Vec<u16>> = vec![
                vec![0, 60, 64, 2, 164, 160],
                vec![0, 40, 140, 2, 140, 45, 2, 140, 145, 2, 40, 2, 2, 140],
                vec![0, 52, 2, 152, 2, 152, 57, 2, 57],
            ];
            let sequences: Vec<&[u16]> = rows.iter().map(Vec::as_slice).collect();
            let total = sequences.iter().map(|s| s.len() as f64 - 1.0).sum();
            let params: Vec<Vec<f32>> = model.parameters().into_iter().map(host_values).collect();
            let batch = Batch::for_training(&sequences, &hparams);
            let (ours, our_counts) = backprop::gradients(&params, &hparams, &batch, total, 4, &mut Rng::new(11));
            let (theirs, their_counts) = part_gradients(&model, &sequences, total, 4, &mut Rng::new(11), &device.clone().autodiff());
            for (k, (a, b)) in ours.iter().zip(theirs.into_iter().map(host_values)).enumerate() {
                let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let worst = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(scale > 0.0 && worst <= 1e-4 * scale, "{overrides}: parameter {k}: off by {worst} of {scale}");
            }
            assert_eq!((our_counts.events, our_counts.step_end_events), (their_counts.events, their_counts.step_end_events));
            assert_eq!((our_counts.correct, our_counts.step_end_correct), (their_counts.correct, their_counts.step_end_correct));
            assert!((our_counts.loss_sum - their_counts.loss_sum).abs() < 1e-4 * their_counts.loss_sum, "{overrides}: loss");
        }
    }
}
