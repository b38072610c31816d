//! `polyphony bench`: speed tables for training and generation (native).

use std::time::Instant;

use crate::bundle::{self, Bundle, BundleError, BundleMetadata};
use crate::encoding::Event;
use crate::generate::{Backend, GenerateError, GenerateOptions, Session, StepModel, backend};
use crate::hparams::HParams;
use crate::model::Model;
use crate::rng::Rng;
use crate::train::{AdamState, Differentiation, TrainError, train_step};

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One row of the training table.
pub struct TrainBenchRow {
    pub steps: usize,
    pub real_events_per_sec: f64,
    pub padded_events_per_sec: f64,
    pub steps_per_sec: f64,
    pub peak_memory_mib: Option<f64>,
    /// Whether the gradients were burn's autodiff's.
    pub autodiff: bool,
}

/// Times `steps` training steps of the given model on batches drawn from
/// `examples` the way training draws them (one warm-up step first); with
/// `autodiff`, by burn's autodiff whatever the device.
pub fn bench_train(
    hparams: &HParams,
    examples: &[Vec<u16>],
    steps: usize,
    window: usize,
    device: Backend,
    autodiff: bool,
) -> Result<TrainBenchRow, TrainError> {
    let plain = device.device()?;
    let how = if autodiff { Differentiation::Autodiff(plain.clone().autodiff()) } else { Differentiation::for_backend(device, &plain) };
    let mut model = Model::init(hparams, &plain, 1);
    let mut adam = AdamState::new(&model.parameters());
    let lengths: Vec<usize> = examples.iter().map(Vec::len).collect();
    let batches = crate::train::epoch_batches(&lengths, hparams.batch_size, 1, 0);
    let (mut real, mut padded) = (0.0, 0.0);
    let mut elapsed = 0.0;
    for step in 0..=steps {
        let batch = &batches[step % batches.len()];
        let seqs: Vec<&[u16]> = batch.iter().map(|&i| examples[i].as_slice()).collect();
        let longest = seqs.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        let mut rng = Rng::new(step as u64);
        let start = Instant::now();
        let (next, counts, _) = train_step(&model, &mut adam, &seqs, window, &mut rng, &how);
        model = next;
        if step > 0 {
            elapsed += start.elapsed().as_secs_f64();
            real += counts.events;
            padded += (longest * seqs.len()) as f64;
        }
    }
    Ok(TrainBenchRow {
        steps,
        real_events_per_sec: real / elapsed,
        padded_events_per_sec: padded / elapsed,
        steps_per_sec: steps as f64 / elapsed,
        peak_memory_mib: peak_memory_mib(),
        autodiff: matches!(how, Differentiation::Autodiff(_)),
    })
}

/// Synthetic sequences with the Bach training set's length spread (mean
/// ~924 events), for benchmarking without a dataset: speed depends on
/// lengths, not on the notes.
pub fn synthetic_examples(count: usize, seed: u64) -> Vec<Vec<u16>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let len = 370 + rng.below(1110);
            (0..len).map(|i| if i == 0 { 0 } else { 2 + rng.below(257) as u16 }).collect()
        })
        .collect()
}

/// The default network with random weights, for timing generation without
/// a trained model. Random weights almost never end a step (1 class in
/// 259): a STEP_END bias of ln 64.5 makes it 1 event in 5, as in Bach, so
/// that a run takes as many model steps as a trained model's.
pub fn random_bundle(created: &str) -> Result<Bundle, BundleError> {
    let hparams = HParams::default();
    let model = Model::init(&hparams, &burn::tensor::Device::flex(), 1);
    let (metadata, mut tensors) = model.to_bundle(BundleMetadata::new("random weights", hparams, created))?.into_parts();
    if let Some(t) = tensors.iter_mut().find(|t| t.name == bundle::DENSE_BIASES) {
        t.data[Event::StepEnd.class()] = 64.5f32.ln();
    }
    Bundle::new(metadata, tensors)
}

/// One row of `polyphony bench generate`.
#[derive(Clone, Debug)]
pub struct GenerateBenchRow {
    pub num_outputs: usize,
    pub num_steps: usize,
    pub seconds: f64,
    /// Model steps (one event for every row still running).
    pub model_steps: usize,
    /// Events through the model, all rows together.
    pub events: usize,
}

impl GenerateBenchRow {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.seconds
    }
    pub fn ms_per_model_step(&self) -> f64 {
        1000.0 * self.seconds / self.model_steps.max(1) as f64
    }
}

/// Times unprimed generation of `num_outputs × num_steps` for each size on
/// a host-sampled `model` (best of `repeats` after a warm-up).
pub fn bench_generate(model: &mut dyn StepModel, sizes: &[(usize, usize)], repeats: usize) -> Result<Vec<GenerateBenchRow>, GenerateError> {
    let mut rows = Vec::new();
    for &(num_outputs, num_steps) in sizes {
        let options = GenerateOptions { num_outputs, num_steps, seed: Some(1), ..GenerateOptions::default() };
        let mut best: Option<GenerateBenchRow> = None;
        for _ in 0..repeats.max(1) + 1 {
            let start = Instant::now();
            let mut session = Session::new(&options)?;
            model.reset(session.batch());
            let mut logits = Vec::new();
            while !session.is_done() {
                backend::host_step(model, &mut session, &mut logits)?;
            }
            let (model_steps, events) = (session.model_steps(), session.events_fed());
            let _ = session.finish();
            let row = GenerateBenchRow { num_outputs, num_steps, seconds: start.elapsed().as_secs_f64(), model_steps, events };
            if best.as_ref().is_none_or(|b| row.seconds < b.seconds) {
                best = Some(row);
            }
        }
        rows.push(best.expect("one run"));
    }
    Ok(rows)
}
