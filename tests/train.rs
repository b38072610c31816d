//! Training end to end on a tiny model: the gradients are right, the loss
//! falls, an interrupted run resumes exactly, and bundles of a run round-trip.

mod common;

use common::Scratch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use polyphony::bundle::{self, Precision};
use polyphony::encoding;
use polyphony::hparams::HParams;
use polyphony::model::{Model, host_values};
use polyphony::generate::Backend;
use polyphony::metrics;
use polyphony::train::{self, TrainOptions};

/// The golden chorales' kept sequences, as class indices.
fn chorales() -> Vec<Vec<u16>> {
    common::golden_pieces()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p.join("events.txt")).ok())
        .flat_map(|text| encoding::from_text(&text).unwrap())
        .map(|events| events.iter().map(|e| e.class() as u16).collect())
        .collect()
}

fn tiny_hparams() -> HParams {
    HParams::default().with_overrides("batch_size=4,rnn_layer_sizes=[24],learning_rate=0.01").unwrap()
}

fn options(dir: &Path, steps: u64) -> TrainOptions {
    TrainOptions {
        num_training_steps: Some(steps),
        seed: 3,
        bptt_window: 64,
        checkpoint_secs: 3600,
        log_every: 1,
        eval_every: 1000,
        ..TrainOptions::new(dir, tiny_hparams())
    }
}

fn losses(dir: &Path) -> Vec<(u64, f64)> {
    metrics::read_log(dir).iter().filter(|r| r.kind == "train").map(|r| (r.step, r.metrics.loss)).collect()
}

/// The summed cross-entropy of `labels` after `inputs` (both `[batch, time]`);
/// for a context network, with each row's features as the stream gives them.
fn cross_entropy(model: &Model, inputs: &[i64], labels: &[i64], batch: usize, device: &Device) -> Tensor<1> {
    let time = inputs.len() / batch;
    let x = Tensor::<2, Int>::from_data(TensorData::new(inputs.to_vec(), [batch, time]), device);
    let y = Tensor::<2, Int>::from_data(TensorData::new(labels.to_vec(), [batch * time, 1]), device);
    let context = model.hparams.context_inputs.then(|| {
        let width = polyphony::context::CONTEXT_WIDTH;
        let mut dense = vec![0.0f32; inputs.len() * width];
        for (r, row) in inputs.chunks(time).enumerate() {
            let events = row.iter().map(|&c| encoding::Event::from_class(c as usize).unwrap());
            for (t, on) in polyphony::context::features_of(events).iter().enumerate() {
                on.iter().for_each(|&k| dense[(r * time + t) * width + k as usize] = 1.0);
            }
        }
        Tensor::<3>::from_data(TensorData::new(dense, [batch, time, width]), device)
    });
    let (logits, _) = model.forward(x, context, model.zero_state(batch), None);
    log_softmax(logits.reshape([batch * time, encoding::NUM_CLASSES]), 1).gather(1, y).sum().neg()
}

/// Backpropagation through two layers and six time steps against central
/// differences, for every parameter tensor, in the original network and in
/// one that reads the context features. The inputs repeat classes across
/// rows and steps, so the one-hot row lookup must add up its gradients.
#[test]
fn gradients_match_finite_differences() {
    check_gradients("rnn_layer_sizes=[6,5]", &[2, 5, 7, 9]);
    // Context rows of the pitches 2, 4 and 6 (NEW_NOTE classes 5, 7, 9), of
    // the same pitches written in this step, and of the beat phases.
    let context_rows = [2, 4, 6, 130, 132, 134, 256, 257, 258].map(|k| encoding::NUM_CLASSES + k);
    check_gradients("rnn_layer_sizes=[6,5],context_inputs=true", &[[2, 5, 7, 9].as_slice(), &context_rows].concat());
}

fn check_gradients(overrides: &str, first_kernel_rows: &[usize]) {
    let hparams = HParams::default().with_overrides(overrides).unwrap();
    let plain = Backend::Cpu.device().unwrap();
    let model = Model::init(&hparams, &plain, 7);
    let inputs = [5, 5, 7, 2, 5, 7, 7, 5, 5, 2, 9, 9, 2, 2, 5, 5, 7, 7];
    let labels = [5, 7, 2, 5, 7, 2, 5, 5, 2, 9, 9, 2, 2, 5, 5, 7, 7, 3];
    let tracked: Vec<Tensor<2>> = model.parameters().into_iter().map(|p| Tensor::from_inner(p).require_grad()).collect();
    let grads = cross_entropy(&model.with_parameters(tracked.clone()), &inputs, &labels, 3, &plain.clone().autodiff()).backward();

    let parameters = model.parameters();
    let loss_with = |index: usize, values: Vec<f32>| {
        let mut changed = parameters.clone();
        changed[index] = Tensor::from_data(TensorData::new(values, parameters[index].dims()), &plain);
        cross_entropy(&model.with_parameters(changed), &inputs, &labels, 3, &plain).into_scalar::<f32>()
    };
    let (eps, hidden) = (0.05f32, hparams.rnn_layer_sizes[0]);
    for (index, p) in tracked.iter().enumerate() {
        let analytic = host_values(p.grad(&grads).expect("every parameter gets a gradient"));
        let values = host_values(parameters[index].clone());
        // The first kernel's rows of the classes fed in; a spread of the others.
        let checked: Vec<usize> = if index == 0 {
            first_kernel_rows.iter().flat_map(|&row| row * 4 * hidden..(row + 1) * 4 * hidden).collect()
        } else {
            (0..values.len()).step_by(1 + values.len() / 200).collect()
        };
        for k in checked {
            let (mut plus, mut minus) = (values.clone(), values.clone());
            plus[k] += eps;
            minus[k] -= eps;
            let numeric = (loss_with(index, plus) - loss_with(index, minus)) / (2.0 * eps);
            let error = (numeric - analytic[k]).abs() / numeric.abs().max(analytic[k].abs()).max(0.03);
            assert!(error < 0.03, "parameter {index}, value {k}: backprop {} vs finite differences {numeric}", analytic[k]);
        }
    }
}

#[test]
fn a_tiny_model_lowers_its_loss() {
    let data = chorales();
    assert!(data.len() >= 5, "a handful of chorales");
    let dir = Scratch::new("train-loss");
    let stop = AtomicBool::new(false);
    let report = train::train(&options(&dir, 40), &data, "golden", &stop, &|_| {}).unwrap();
    assert_eq!(report.final_step, 40);
    let l = losses(&dir);
    let mean = |s: &[(u64, f64)]| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&l[..5]), mean(&l[l.len() - 5..]));
    assert!(last < first * 0.8, "loss should fall: first {first:.3}, last {last:.3}");
    assert!(dir.join("curves.svg").is_file() && dir.join(train::checkpoint_path(&dir)).is_file());
}

#[test]
fn an_interrupted_run_resumes_exactly() {
    let data = chorales();
    let straight = Scratch::new("train-straight");
    let stop = AtomicBool::new(false);
    train::train(&options(&straight, 12), &data, "golden", &stop, &|_| {}).unwrap();

    // Interrupted after step 5 (as Ctrl-C does), then the same command again.
    let resumed = Scratch::new("train-resumed");
    let ctrl_c = AtomicBool::new(false);
    let first = train::train(&options(&resumed, 12), &data, "golden", &ctrl_c, &|p| {
        if p.step == 5 {
            ctrl_c.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.final_step, 5);
    let second = train::train(&options(&resumed, 12), &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(second.resumed_from, Some(5));
    assert_eq!(second.final_step, 12);
    assert_eq!(losses(&resumed), losses(&straight), "identical losses step for step");
}

#[test]
fn resuming_with_other_hparams_is_refused() {
    let data = chorales();
    let dir = Scratch::new("train-mismatch");
    train::train(&options(&dir, 1), &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    let mut other = options(&dir, 2);
    other.hparams = other.hparams.with_overrides("rnn_layer_sizes=[32]").unwrap();
    let Err(error) = train::train(&other, &data, "golden", &AtomicBool::new(false), &|_| {}) else {
        panic!("must refuse");
    };
    let message = error.to_string();
    assert!(message.contains("rnn_layer_sizes=[24]") && message.contains("rnn_layer_sizes=[32]"), "{message}");
}

#[test]
fn a_runs_bundle_round_trips_in_f32_and_f16() {
    let data = chorales();
    let dir = Scratch::new("train-bundle");
    train::train(&options(&dir, 2), &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    let device = Backend::Cpu.device().unwrap();
    let checkpoint = train::load_checkpoint(&dir, &device).unwrap().unwrap();
    let made = train::bundle_of(&checkpoint, "test run", "2026-11-27T00:00:00Z").unwrap();
    assert_eq!(made.metadata.provenance.as_ref().unwrap().training_steps, 2);
    let original: Vec<Vec<f32>> = checkpoint.model.parameters().into_iter().map(host_values).collect();

    for (precision, tolerance) in [(Precision::F32, 0.0f32), (Precision::F16, 1.0 / 2048.0)] {
        let path = dir.join("model.bundle");
        bundle::save(&path, &made, precision).unwrap();
        let model = Model::from_bundle(&bundle::load(&path).unwrap(), &device);
        let loaded: Vec<Vec<f32>> = model.parameters().into_iter().map(host_values).collect();
        for (a, b) in original.iter().flatten().zip(loaded.iter().flatten()) {
            assert!((a - b).abs() <= tolerance * a.abs().max(1e-4), "{a} vs {b} ({precision:?})");
        }
        if precision == Precision::F32 {
            assert_eq!(original, loaded, "f32 is bit-exact");
        }
    }
}

#[test]
fn patience_stops_on_eval_loss_and_keeps_the_best_model() {
    let data = chorales();
    let dir = Scratch::new("train-patience");
    let mut opts = options(&dir, 50);
    opts.eval_sequences = Some(data[..2].to_vec());
    opts.eval_every = 2;
    // Zero patience: the first evaluation already ends the run.
    opts.patience = Some(0);
    let report = train::train(&opts, &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.final_step, 2);
    let best = train::load_checkpoint_file(&train::best_checkpoint_path(&dir), &Backend::Cpu.device().unwrap()).unwrap().unwrap();
    assert_eq!(best.state.step, 2);
    assert!(best.state.best_eval_loss.is_some());
    assert!(metrics::read_log(&dir).iter().any(|r| r.kind == "eval"));
}

/// Fine-tuning: a new run starts from a bundle's weights with a fresh
/// optimizer. Its first training loss (dropout off, the whole set in one
/// batch) is the bundle's evaluate loss on the same data; the provenance
/// says where it started; a network of another shape is refused, named.
#[test]
fn a_warm_start_begins_where_the_bundle_is() {
    let data = chorales();
    let dir = Scratch::new("train-warm-source");
    train::train(&options(&dir, 3), &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    let device = Backend::Cpu.device().unwrap();
    let source = train::bundle_of(&train::load_checkpoint(&dir, &device).unwrap().unwrap(), "source", "now").unwrap();

    let seqs: Vec<&[u16]> = data.iter().map(Vec::as_slice).collect();
    let evaluated = train::evaluate(&Model::from_bundle(&source, &device), &seqs, 64).unwrap().counts.metrics().loss;

    let warm = Scratch::new("train-warm");
    let mut opts = options(&warm, 1);
    opts.hparams = opts.hparams.with_overrides(&format!("dropout_keep_prob=1.0,batch_size={}", data.len())).unwrap();
    opts.warm_start = Some(train::WarmStart { bundle: source.clone(), name: "source.bundle".into() });
    train::train(&opts, &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    let first = losses(&warm)[0];
    assert_eq!(first.0, 1);
    assert!((first.1 - evaluated).abs() < 1e-4, "first training loss {} vs evaluate {evaluated}", first.1);
    let checkpoint = train::load_checkpoint(&warm, &device).unwrap().unwrap();
    assert_eq!(checkpoint.state.warm_start.as_deref(), Some("source.bundle"));
    let made = train::bundle_of(&checkpoint, "fine-tuned", "now").unwrap();
    assert_eq!(made.metadata.provenance.unwrap().warm_start.as_deref(), Some("source.bundle"));

    // Context inputs added to a one-hot network start at zero weight: the
    // same network, so the same first loss.
    let widened = Scratch::new("train-warm-context");
    let mut opts = options(&widened, 1);
    opts.hparams = opts.hparams.with_overrides(&format!("dropout_keep_prob=1.0,batch_size={},context_inputs=true", data.len())).unwrap();
    opts.warm_start = Some(train::WarmStart { bundle: source.clone(), name: "source.bundle".into() });
    train::train(&opts, &data, "golden", &AtomicBool::new(false), &|_| {}).unwrap();
    let first = losses(&widened)[0];
    assert!((first.1 - evaluated).abs() < 1e-4, "with context inputs: first training loss {} vs evaluate {evaluated}", first.1);

    let other = Scratch::new("train-warm-other");
    let mut opts = options(&other, 1);
    opts.hparams = opts.hparams.with_overrides("rnn_layer_sizes=[32]").unwrap();
    opts.warm_start = Some(train::WarmStart { bundle: source, name: "source.bundle".into() });
    let message = train::train(&opts, &data, "golden", &AtomicBool::new(false), &|_| {}).err().unwrap().to_string();
    assert!(message.contains("rnn_layer_sizes=[24]") && message.contains("rnn_layer_sizes=[32]"), "{message}");
}

/// The golden chorales as a dataset file, for the command line.
fn dataset_file(dir: &std::path::Path) -> PathBuf {
    let sequences = chorales()
        .into_iter()
        .map(|events| polyphony::dataset::Example { source: "golden".into(), transposition: 0, events })
        .collect();
    let set = polyphony::dataset::Dataset { split: "training".into(), sources: vec!["golden".into()], sequences, ..Default::default() };
    let path = dir.join("train.polyds");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, polyphony::dataset::encode_dataset(&set).unwrap()).unwrap();
    path
}

fn train_command(run: &std::path::Path, data: &std::path::Path, steps: u64) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_polyphony"));
    command.args(["train", "--run_dir", run.to_str().unwrap(), "--sequence_example_file", data.to_str().unwrap()]);
    command.args(["--hparams", "batch_size=4,rnn_layer_sizes=[24],learning_rate=0.01", "--bptt_window", "64", "--seed", "3"]);
    command.args(["--num_training_steps", &steps.to_string(), "--log_every", "3", "--checkpoint_secs", "0"]);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    command
}

/// What a log says, without the clocks.
fn logged(run: &std::path::Path) -> Vec<(String, u64, [u64; 5])> {
    metrics::read_log(run)
        .into_iter()
        .map(|r| {
            let m = r.metrics;
            (r.kind, r.step, [m.loss, m.perplexity, m.accuracy, m.event_accuracy, m.no_event_accuracy].map(f64::to_bits))
        })
        .collect()
}

/// Killed with SIGKILL at random moments and resumed, again and again, a
/// run ends with the log an uninterrupted run writes, record for record.
#[test]
fn a_run_killed_again_and_again_logs_what_an_uninterrupted_one_does() {
    let base = Scratch::new("train-kill");
    let data = dataset_file(&base);
    let steps = 150;
    let straight = base.join("straight");
    let clock = std::time::Instant::now();
    assert!(train_command(&straight, &data, steps).status().unwrap().success());
    // Each run is killed after a twentieth to a quarter of the uninterrupted
    // run's time, whatever this machine's speed.
    let took = clock.elapsed().as_millis() as usize;
    let killed = base.join("killed");
    let mut rng = polyphony::rng::Rng::new(11);
    let mut kills = 0;
    loop {
        let mut child = train_command(&killed, &data, steps).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis((took / 20 + rng.below(took / 5 + 1)) as u64));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success());
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        assert!(kills < 200, "the run never finished");
    }
    assert!(kills >= 3, "killed only {kills} times");
    assert_eq!(logged(&killed), logged(&straight), "after {kills} kills");
}

/// A run whose checkpoint is gone but whose log is not is refused (its
/// history would be lost) unless --restart says so; a checkpoint with a
/// flipped byte is refused, never loaded.
#[test]
fn a_lost_or_damaged_checkpoint_is_never_trained_over_silently() {
    let base = Scratch::new("train-lost");
    let data = dataset_file(&base);
    let run = base.join("run");
    assert!(train_command(&run, &data, 4).status().unwrap().success());
    let checkpoint = train::checkpoint_path(&run);
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&checkpoint, &bytes).unwrap();
    let out = train_command(&run, &data, 6).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("damaged checkpoint: checksum mismatch"), "{stderr}");

    std::fs::remove_file(&checkpoint).unwrap();
    let out = train_command(&run, &data, 6).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("holds a training log (metrics.jsonl) but no checkpoint") && stderr.contains("--restart"), "{stderr}");
    assert!(train_command(&run, &data, 6).arg("--restart").status().unwrap().success());
    let steps: Vec<u64> = logged(&run).iter().map(|r| r.1).collect();
    assert_eq!(steps, [3, 6], "the restarted run's log starts again");
}
