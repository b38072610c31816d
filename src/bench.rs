//! `polyphony bench`: speed tables for training and generation (native).

use std::time::Instant;

use crate::hparams::HParams;
use crate::model::Model;
use crate::rng::Rng;
use crate::train::{AdamState, DeviceChoice, train_step};

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
}

/// Times `steps` training steps of the given model on batches drawn from
/// `examples` the way training draws them (one warm-up step first).
pub fn bench_train(
    hparams: &HParams,
    examples: &[Vec<u16>],
    steps: usize,
    window: usize,
    device: DeviceChoice,
) -> TrainBenchRow {
    let plain = device.device();
    let autodiff = plain.clone().autodiff();
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
        let (next, counts, _) = train_step(&model, &mut adam, &seqs, window, &mut rng, &autodiff);
        model = next;
        if step > 0 {
            elapsed += start.elapsed().as_secs_f64();
            real += counts.events;
            padded += (longest * seqs.len()) as f64;
        }
    }
    TrainBenchRow {
        steps,
        real_events_per_sec: real / elapsed,
        padded_events_per_sec: padded / elapsed,
        steps_per_sec: steps as f64 / elapsed,
        peak_memory_mib: peak_memory_mib(),
    }
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
