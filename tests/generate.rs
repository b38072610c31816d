//! Generation: the fused step against burn's model, primers, injection,
//! seeds, beam search, the command line and its refusals.

mod common;

use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput};

use burn::tensor::{Device, Int, Tensor, TensorData};
use polyphony::bundle::{self, Bundle, BundleMetadata};
use polyphony::encoding::{self, Event, NUM_CLASSES};
use polyphony::fused::FusedLstm;
use polyphony::generate::{self, GenerateOptions, Output, Primer, StepModel};
use polyphony::hparams::HParams;
use polyphony::model::Model;
use polyphony::rng::Rng;

const TWINKLE: &str = "[60,-2,-2,-2,60,-2,-2,-2,67,-2,-2,-2,67,-2,-2,-2,69,-2,-2,-2,69,-2,-2,-2,67,-2,-2,-2,-2,-2,-2,-2]";

fn hparams(sizes: &[usize]) -> HParams {
    HParams { rnn_layer_sizes: sizes.to_vec(), ..HParams::default() }
}

/// A random network; biases random too, so that every term of the cell is
/// exercised. `step_end_bias` makes STEP_END likely so that pieces end soon.
fn random_bundle(sizes: &[usize], seed: u64, step_end_bias: f32) -> Bundle {
    random_bundle_of(hparams(sizes), seed, step_end_bias)
}

fn random_bundle_of(hp: HParams, seed: u64, step_end_bias: f32) -> Bundle {
    let (metadata, mut tensors) = Model::init(&hp, &Device::flex(), seed)
        .to_bundle(BundleMetadata::new("test", hp.clone(), "2026-01-01T00:00:00Z"))
        .unwrap()
        .into_parts();
    let mut rng = Rng::new(seed ^ 0xABCD);
    for t in tensors.iter_mut().filter(|t| t.shape.len() == 1) {
        for v in t.data.iter_mut() {
            *v = (rng.next_f32() - 0.5) * 0.5;
        }
    }
    if let Some(t) = tensors.iter_mut().find(|t| t.name == bundle::DENSE_BIASES) {
        t.data[Event::StepEnd.class()] += step_end_bias;
    }
    Bundle::new(metadata, tensors).unwrap()
}

fn small_bundle() -> Bundle {
    random_bundle(&[16, 16], 7, 3.0)
}

fn polyphony(args: &[&str]) -> ProcessOutput {
    Command::new(env!("CARGO_BIN_EXE_polyphony")).args(args).output().expect("binary runs")
}

fn options(num_outputs: usize, num_steps: usize, primer: Primer, condition: bool, inject: bool) -> GenerateOptions {
    GenerateOptions {
        num_outputs,
        num_steps,
        primer,
        condition_on_primer: condition,
        inject_primer_during_generation: inject,
        seed: Some(42),
        ..GenerateOptions::default()
    }
}

/// Step `k`'s events (without STEP_END) of a stream.
fn steps_of(events: &[Event]) -> Vec<Vec<Event>> {
    let mut steps = vec![Vec::new()];
    for &e in &events[1..] {
        match e {
            Event::StepEnd => steps.push(Vec::new()),
            Event::End => {}
            e => steps.last_mut().unwrap().push(e),
        }
    }
    steps.pop();
    steps
}

/// One step's logits of any host-sampled model.
fn step(model: &mut dyn StepModel, inputs: &[usize]) -> Vec<f32> {
    let mut logits = Vec::new();
    model.step(inputs, &[], &mut logits);
    logits
}

fn melody(text: &str) -> Vec<i32> {
    generate::parse_python_list(text).unwrap()
}

// ---------------------------------------------------------------- the step

#[test]
fn fused_step_matches_burns_model() {
    for (sizes, batch) in [(vec![16, 24], 7), (vec![32], 9), (vec![20, 8, 12], 1), (vec![16, 16], 6)] {
        let bundle = random_bundle(&sizes, 3, 0.0);
        let device = Device::flex();
        let model = Model::from_bundle(&bundle, &device);
        let mut fused = FusedLstm::new(bundle.weights());
        let time = 5;
        let mut rng = Rng::new(11);
        let inputs: Vec<Vec<usize>> = (0..batch).map(|_| (0..time).map(|_| rng.below(NUM_CLASSES)).collect()).collect();
        let flat: Vec<i64> = inputs.iter().flatten().map(|&c| c as i64).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(flat, [batch, time]), &device);
        let (logits, _) = model.forward(x, None, model.zero_state(batch), None);
        let expected = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        fused.reset(batch);
        let mut max_diff = 0.0f32;
        for t in 0..time {
            let step_inputs: Vec<usize> = inputs.iter().map(|row| row[t]).collect();
            let got = step(&mut fused, &step_inputs);
            for b in 0..batch {
                for c in 0..NUM_CLASSES {
                    let e = expected[(b * time + t) * NUM_CLASSES + c];
                    max_diff = max_diff.max((got[b * NUM_CLASSES + c] - e).abs());
                }
            }
        }
        assert!(max_diff < 1e-4, "layers {sizes:?}, batch {batch}: max logit difference {max_diff}");
    }
}

/// A network that reads the music's state: the fused step and burn's model
/// agree on it, fed a real chorale's events and their features.
#[test]
fn a_context_network_runs_the_same_in_the_fused_step_and_in_burn() {
    let bundle = random_bundle_of(HParams { context_inputs: true, ..hparams(&[16, 12]) }, 9, 3.0);
    let device = Device::flex();
    let model = Model::from_bundle(&bundle, &device);
    let mut fused = FusedLstm::new(bundle.weights());
    let text = std::fs::read_to_string(common::golden_dir().join("bwv66.6.mxl/events.txt")).unwrap();
    let events = &encoding::from_text(&text).unwrap()[0][..60];
    let features = polyphony::context::features_of(events.iter().copied());
    let width = polyphony::context::CONTEXT_WIDTH;
    let mut dense = vec![0.0f32; events.len() * width];
    for (t, on) in features.iter().enumerate() {
        on.iter().for_each(|&k| dense[t * width + k as usize] = 1.0);
    }
    let x = Tensor::<2, Int>::from_data(TensorData::new(events.iter().map(|e| e.class() as i64).collect::<Vec<_>>(), [1, events.len()]), &device);
    let context = Tensor::<3>::from_data(TensorData::new(dense, [1, events.len(), width]), &device);
    let (logits, _) = model.forward(x.clone(), Some(context), model.zero_state(1), None);
    let expected = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let (blind, _) = model.forward(x, None, model.zero_state(1), None);
    let blind = blind.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert!(expected.iter().zip(&blind).any(|(a, b)| (a - b).abs() > 1e-3), "the features change the logits");
    fused.reset(1);
    let mut logits = Vec::new();
    for (t, e) in events.iter().enumerate() {
        fused.step_into(&[e.class()], &features[t..t + 1], &mut logits);
        let want = &expected[t * NUM_CLASSES..(t + 1) * NUM_CLASSES];
        let diff = logits.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "step {t}: max logit difference {diff}");
    }
    // Generation feeds each row the features of its own stream.
    let opts = options(2, 16, Primer::Pitches(vec![67, 64, 60]), true, true);
    let mut session = generate::Session::new(&opts).unwrap();
    fused.reset(session.batch());
    while !session.is_done() {
        if session.row_steps(0) < session.target_steps() {
            // Row 0 has been fed one event a model step; its input is the next.
            let read = session.row_events(0)[..=session.model_steps()].to_vec();
            assert_eq!(session.features()[0], *polyphony::context::features_of(read).last().unwrap());
        }
        fused.step_into(session.inputs().unwrap(), session.features(), &mut logits);
        if let Some(rows) = session.feed(&logits).unwrap() {
            fused.select_rows(&rows);
        }
    }
    let on_device = generate::generate_on_device(generate::BurnStep::new(model), &opts).unwrap();
    assert_eq!(on_device.len(), 2);
}

/// A key-normalised model writes in the primer's key: the primer (in G
/// major here) is moved to C for the model and the output back, so the
/// melody comes out as given, and the model saw it in C.
#[test]
fn a_key_normalised_model_writes_in_the_primers_key() {
    let bundle = random_bundle_of(HParams { key_normalized: true, ..hparams(&[16, 16]) }, 7, 3.0);
    let g_major = "[67,-2,71,-2,74,-2,71,-2,72,-2,74,-2,67,-2,-2,-2]";
    let opts = options(2, 32, Primer::Melody(melody(g_major)), false, true);
    let outputs = generate::generate_with_bundle(&bundle, &opts).unwrap();
    for output in &outputs {
        let (notes, _) = encoding::decode_steps(&output.events);
        for (pitch, start) in [(67, 0), (71, 2), (74, 4), (72, 8), (67, 12)] {
            assert!(notes.iter().any(|n| n.pitch == pitch && n.start == start), "no {pitch} at step {start}: {notes:?}");
        }
    }
    // The same request for a plain model of the same weights differs: it
    // reads the melody in G, not in C.
    let plain = Bundle::new(BundleMetadata { hparams: hparams(&[16, 16]), ..bundle.metadata.clone() }, bundle.weights().clone().into_tensors()).unwrap();
    assert_ne!(generate::generate_with_bundle(&plain, &opts).unwrap(), outputs);
    // An explicit key moves the melody by that key instead.
    let in_d = GenerateOptions { key: Some("D".parse().unwrap()), ..opts.clone() };
    assert_ne!(generate::generate_with_bundle(&bundle, &in_d).unwrap(), outputs);
}

#[test]
fn fused_and_burn_state_reordering_agree() {
    let bundle = random_bundle(&[16, 12], 5, 0.0);
    let model = Model::from_bundle(&bundle, &Device::flex());
    let mut burn = generate::BurnStep::new(model);
    let mut fused = FusedLstm::new(bundle.weights());
    for m in [&mut burn as &mut dyn StepModel, &mut fused] {
        m.reset(3);
    }
    let a = step(&mut burn, &[0, 63, 200]);
    let b = step(&mut fused, &[0, 63, 200]);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
    burn.select_rows(&[2, 2, 0, 1]);
    fused.select_rows(&[2, 2, 0, 1]);
    let a = step(&mut burn, &[2, 5, 7, 9]);
    let b = step(&mut fused, &[2, 5, 7, 9]);
    assert_eq!(a.len(), 4 * NUM_CLASSES);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
}

/// A random network's logits after START (from the fused step), and the
/// same network as a sampler on burn's CPU device.
fn start_logits_and_device_sampler() -> (Vec<f32>, generate::BurnStep) {
    let bundle = random_bundle(&[16, 12], 3, 4.0);
    let mut fused = FusedLstm::new(bundle.weights());
    fused.reset(1);
    let logits = step(&mut fused, &[0]);
    (logits, generate::BurnStep::new(Model::from_bundle(&bundle, &Device::flex())))
}

/// The device's sampler against the softmax computed here: chosen classes
/// as often as their probability (at two temperatures), log-probabilities
/// equal, forced classes kept.
#[test]
fn sampling_on_the_device_follows_the_temperature_scaled_softmax() {
    let rows = 6000;
    let (logits, mut step) = start_logits_and_device_sampler();
    for temperature in [1.0, 0.5] {
        let scaled: Vec<f64> = logits.iter().map(|&x| x as f64 / temperature).collect();
        let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scaled.iter().map(|x| (x - max).exp()).sum();
        let log_p = |c: usize| scaled[c] - max - sum.ln();
        step.reset(rows);
        let mut forced = vec![None; rows];
        forced[0] = Some(200);
        let chosen = generate::choices(step.sample(&vec![0; rows], &[], &forced, &vec![0.0; rows * NUM_CLASSES], temperature).into_data()).unwrap();
        assert_eq!(chosen[0].class, 200, "a forced class is kept");
        assert!((chosen[0].log_prob - log_p(200)).abs() < 1e-4);
        let mut counts = vec![0usize; NUM_CLASSES];
        for c in &chosen[1..] {
            counts[c.class] += 1;
            assert!((c.log_prob - log_p(c.class)).abs() < 1e-4, "log-probability of class {}", c.class);
        }
        let n = (rows - 1) as f64;
        for class in 0..NUM_CLASSES {
            let p = log_p(class).exp();
            let sigma = (p * (1.0 - p) / n).sqrt();
            let freq = counts[class] as f64 / n;
            assert!((freq - p).abs() < 5.0 * sigma + 1e-3, "temperature {temperature}, class {class}: {freq} vs {p}");
        }
        let top = (0..NUM_CLASSES).max_by(|&a, &b| scaled[a].total_cmp(&scaled[b])).unwrap();
        assert!(log_p(top).exp() > 0.05, "the test needs a likely class to be telling");
    }
}

/// The device's sampler keeps to the allowed classes and scores a choice
/// by the softmax renormalized over them.
#[test]
fn sampling_on_the_device_keeps_to_the_allowed_classes() {
    let rows = 3000;
    let (logits, mut step) = start_logits_and_device_sampler();
    step.reset(rows);
    let kept = [Event::StepEnd.class(), Event::NewNote(60).class(), Event::ContinuedNote(64).class()];
    let bias: Vec<f32> = (0..rows * NUM_CLASSES).map(|i| if kept.contains(&(i % NUM_CLASSES)) { 0.0 } else { f32::NEG_INFINITY }).collect();
    let chosen = generate::choices(step.sample(&vec![0; rows], &[], &vec![None; rows], &bias, 1.0).into_data()).unwrap();
    let sum: f64 = kept.iter().map(|&c| (logits[c] as f64).exp()).sum();
    for class in kept {
        let p = (logits[class] as f64).exp() / sum;
        let picked: Vec<_> = chosen.iter().filter(|c| c.class == class).collect();
        let sigma = (p * (1.0 - p) / rows as f64).sqrt();
        assert!((picked.len() as f64 / rows as f64 - p).abs() < 5.0 * sigma + 1e-3, "class {class}: {} of {rows}, p {p}", picked.len());
        assert!(picked.iter().all(|c| (c.log_prob - p.ln()).abs() < 1e-4), "class {class} scored over the allowed classes");
    }
    assert_eq!(chosen.iter().filter(|c| !kept.contains(&c.class)).count(), 0);
}

/// A model without state that most wants to continue pitch 61, which it
/// almost never starts: nearly all its CONTINUED_NOTEs continue nothing.
struct Orphans;

impl StepModel for Orphans {
    fn reset(&mut self, _batch: usize) {}
    fn step(&mut self, inputs: &[usize], _features: &[Vec<u16>], logits: &mut Vec<f32>) {
        let mut l = vec![0.0f32; NUM_CLASSES];
        l[Event::ContinuedNote(61).class()] = 6.0;
        l[Event::NewNote(60).class()] = 4.0;
        l[Event::StepEnd.class()] = 4.0;
        l[Event::End.class()] = 4.0;
        *logits = inputs.iter().flat_map(|_| l.clone()).collect();
    }
    fn select_rows(&mut self, _rows: &[usize]) {}
}

/// The fused network on the whole batch to the end, as generation ran
/// before finished rows left it: what the rows still running see must not
/// change when the others leave. It records the batch it is given.
struct WholeBatch {
    net: FusedLstm,
    /// The rows still given, as indices into the whole batch.
    rows: Vec<usize>,
    full: Vec<f32>,
    sizes: Vec<usize>,
}

impl StepModel for WholeBatch {
    fn reset(&mut self, batch: usize) {
        self.net.reset(batch);
        self.rows = (0..batch).collect();
    }
    fn step(&mut self, inputs: &[usize], features: &[Vec<u16>], logits: &mut Vec<f32>) {
        self.sizes.push(inputs.len());
        let whole = self.net.batch();
        let (mut all_inputs, mut all_features) = (vec![inputs[0]; whole], vec![features[0].clone(); whole]);
        for (i, &r) in self.rows.iter().enumerate() {
            (all_inputs[r], all_features[r]) = (inputs[i], features[i].clone());
        }
        self.net.step_into(&all_inputs, &all_features, &mut self.full);
        *logits = self.rows.iter().flat_map(|&r| self.full[r * NUM_CLASSES..(r + 1) * NUM_CLASSES].to_vec()).collect();
    }
    fn select_rows(&mut self, rows: &[usize]) {
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "without beams rows only leave: {rows:?}");
        self.rows = rows.iter().map(|&i| self.rows[i]).collect();
    }
}

/// Without beams a row that has its steps leaves the model's batch (its
/// steps were wasted work), and what the others write does not change.
#[test]
fn finished_rows_leave_the_batch_and_the_rest_write_the_same() {
    let bundle = small_bundle();
    let opts = options(6, 48, Primer::Pitches(vec![60, 64, 67]), true, false);
    let mut whole = WholeBatch { net: FusedLstm::new(bundle.weights()), rows: Vec::new(), full: Vec::new(), sizes: Vec::new() };
    let expected = generate::generate(&mut whole, &opts).unwrap();
    let sizes = &whole.sizes;
    assert_eq!(sizes[0], 6);
    assert!(sizes.windows(2).all(|w| w[1] <= w[0]) && *sizes.last().unwrap() < 6, "the batch shrinks: {sizes:?}");
    let mut compact = FusedLstm::new(bundle.weights());
    assert_eq!(generate::generate(&mut compact, &opts).unwrap(), expected);
}

/// With `mask_ignored_events` (the default) the model's streams hold only
/// events that decoding keeps; without, they hold what the original
/// sampled, orphans and END included.
#[test]
fn masking_samples_only_events_that_decoding_keeps() {
    for mask in [true, false] {
        let opts = GenerateOptions { mask_ignored_events: mask, ..options(4, 32, Primer::Pitches(vec![61, 64]), true, false) };
        let mut session = generate::Session::new(&opts).unwrap();
        while let Some(inputs) = session.inputs() {
            let logits = step(&mut Orphans, inputs);
            session.feed(&logits).unwrap();
        }
        let streams: Vec<Vec<Event>> = (0..session.batch()).map(|r| session.row_events(r).to_vec()).collect();
        let orphans: usize = streams.iter().map(|e| e.len() - generate::drop_orphan_continuations(e).len()).sum();
        let ends = streams.iter().flatten().filter(|e| **e == Event::End).count();
        let continued = streams.iter().flat_map(|e| steps_of(e).into_iter().skip(4).flatten()).filter(|e| *e == Event::ContinuedNote(61)).count();
        if mask {
            assert_eq!((orphans, ends), (0, 0), "masked");
            assert!(continued >= 4, "the primer's 61 goes on after the primer: {continued}");
        } else {
            assert!(orphans > 100 && ends > 10, "unmasked: {orphans} orphans, {ends} ENDs");
        }
    }
    assert!(GenerateOptions::default().mask_ignored_events);
}

// ---------------------------------------------------------------- primers

#[test]
fn python_lists_parse_as_the_original_writes_them() {
    assert_eq!(melody("[67,64,60]"), vec![67, 64, 60]);
    assert_eq!(melody(" [60, -2, -1, 67, ] "), vec![60, -2, -1, 67]);
    assert_eq!(melody("(60, 64)"), vec![60, 64]);
    assert_eq!(melody("60"), vec![60]);
    assert_eq!(melody("[]"), Vec::<i32>::new());
    for bad in ["[60, x]", "[60,,64]", "[6 0]", "[60.5]", "[[60]]"] {
        assert!(generate::parse_python_list(bad).is_err(), "{bad}");
    }
}

#[test]
fn primers_become_the_originals_event_streams() {
    let generate::PrimerEvents { events, steps, .. } = generate::primer_events(&Primer::Pitches(vec![67, 64, 60])).unwrap();
    assert_eq!(steps, 4);
    let text = encoding::to_text(&[events], false);
    let expected = "START\nNEW_NOTE 67\nNEW_NOTE 64\nNEW_NOTE 60\nSTEP_END\n".to_string()
        + &"CONTINUED_NOTE 67\nCONTINUED_NOTE 64\nCONTINUED_NOTE 60\nSTEP_END\n".repeat(3);
    assert_eq!(text.trim_end(), expected.trim_end());

    let generate::PrimerEvents { events, steps, .. } = generate::primer_events(&Primer::Melody(vec![60, -2, -1, 62, 64, -2])).unwrap();
    assert_eq!(steps, 6);
    let steps_ev = steps_of(&events);
    assert_eq!(steps_ev[0], vec![Event::NewNote(60)]);
    assert_eq!(steps_ev[1], vec![Event::ContinuedNote(60)]);
    assert_eq!(steps_ev[2], vec![]);
    assert_eq!(steps_ev[3], vec![Event::NewNote(62)]);
    assert_eq!(steps_ev[4], vec![Event::NewNote(64)]);
    assert_eq!(steps_ev[5], vec![Event::ContinuedNote(64)]);

    let generate::PrimerEvents { steps, .. } = generate::primer_events(&Primer::Melody(melody(TWINKLE))).unwrap();
    assert_eq!(steps, 32);
    let generate::PrimerEvents { events, steps, qpm } = generate::primer_events(&Primer::None).unwrap();
    assert_eq!((events, steps, qpm), (vec![Event::Start], 0, None));
}

fn midi_primer() -> (Primer, f64) {
    // Two quarter notes and a half-note chord at 90 qpm, through a MIDI file.
    let qpm = 90.0;
    let q = 60.0 / qpm;
    let mut seq = polyphony::NoteSequence {
        tempos: vec![polyphony::Tempo { time: 0.0, qpm }],
        ticks_per_quarter: 220,
        ..Default::default()
    };
    for (pitch, start, end) in [(72, 0.0, q), (71, q, 2.0 * q), (67, 2.0 * q, 4.0 * q), (64, 2.0 * q, 4.0 * q)] {
        seq.notes.push(polyphony::Note::new(pitch, 90, start, end));
    }
    seq.total_time = 4.0 * q;
    let bytes = polyphony::midi::write_midi(&seq);
    (Primer::Sequence(polyphony::midi::read_midi(&bytes).unwrap()), qpm)
}

/// Every primer kind, with and without conditioning and injection: the
/// output has exactly num_steps steps, begins with the primer, and with
/// injection holds the primer's events again right after it.
/// Generation with sampling on the device (burn's CPU backend standing in
/// for a GPU): the path the page takes on WebGPU.
fn generate_on_device(bundle: &Bundle, options: &GenerateOptions) -> Result<Vec<Output>, generate::GenerateError> {
    let model = Model::from_bundle(bundle, &Device::flex());
    generate::generate_on_device(generate::BurnStep::new(model), options)
}

#[test]
fn every_primer_kind_with_and_without_conditioning_and_injection() {
    check_every_primer_kind(generate::generate_with_bundle);
}

#[test]
fn every_primer_kind_with_and_without_conditioning_and_injection_sampling_on_the_device() {
    check_every_primer_kind(generate_on_device);
}

fn check_every_primer_kind(generate: fn(&Bundle, &GenerateOptions) -> Result<Vec<Output>, generate::GenerateError>) {
    let bundle = small_bundle();
    let (midi, midi_qpm) = midi_primer();
    let primers = [
        ("pitches", Primer::Pitches(vec![67, 64, 60]), 4),
        ("melody", Primer::Melody(melody("[60,-2,62,-2,64,-2,-1,65]")), 8),
        ("midi", midi, 16),
    ];
    let num_steps = 40;
    for (name, primer, primer_steps) in primers {
        let generate::PrimerEvents { events: primer_ev, steps: s, .. } = generate::primer_events(&primer).unwrap();
        assert_eq!(s, primer_steps, "{name}");
        let primer_steps_ev = steps_of(&primer_ev);
        for condition in [false, true] {
            for inject in [false, true] {
                let what = format!("{name}, condition {condition}, inject {inject}");
                let outputs = generate(&bundle, &options(3, num_steps, primer.clone(), condition, inject)).unwrap();
                assert_eq!(outputs.len(), 3, "{what}");
                for out in &outputs {
                    assert_eq!(out.events.first(), Some(&Event::Start), "{what}");
                    assert_eq!(out.events.last(), Some(&Event::End), "{what}");
                    assert_eq!(encoding::num_steps(&out.events), num_steps, "{what}");
                    let steps = steps_of(&out.events);
                    assert_eq!(&steps[..s], &primer_steps_ev[..], "{what}: the primer begins the output");
                    if inject {
                        for k in 0..s.min(num_steps - s) {
                            for e in &primer_steps_ev[k] {
                                assert!(steps[s + k].contains(e), "{what}: step {} lacks injected {e}", s + k);
                            }
                        }
                    }
                    assert!(out.log_likelihood.is_finite() && out.log_likelihood < 0.0, "{what}");
                    let qpm = out.sequence.tempos[0].qpm;
                    // A MIDI file stores whole microseconds per quarter.
                    assert!((qpm - if name == "midi" { midi_qpm } else { 120.0 }).abs() < 1e-3, "{what}: {qpm}");
                    let seconds = num_steps as f64 * 60.0 / qpm / 4.0;
                    assert!((out.sequence.total_time - seconds).abs() < 1e-9, "{what}");
                }
            }
        }
    }
}

#[test]
fn no_primer_generates_from_start() {
    let outputs = generate::generate_with_bundle(&small_bundle(), &options(2, 24, Primer::None, false, true)).unwrap();
    for out in outputs {
        assert_eq!(encoding::num_steps(&out.events), 24);
    }
}

#[test]
fn the_same_seed_gives_the_same_outputs() {
    let bundle = small_bundle();
    let opts = options(4, 32, Primer::Pitches(vec![67, 64, 60]), true, false);
    let a = generate::generate_with_bundle(&bundle, &opts).unwrap();
    let b = generate::generate_with_bundle(&bundle, &opts).unwrap();
    assert_eq!(a, b);
    let c = generate::generate_with_bundle(&bundle, &GenerateOptions { seed: Some(43), ..opts }).unwrap();
    assert_ne!(a, c);
    // The outputs of one request differ from one another.
    assert!(a.windows(2).any(|w| w[0].events != w[1].events));
}

#[test]
fn the_primer_can_be_left_out_of_the_output() {
    let bundle = small_bundle();
    for condition in [false, true] {
        let with = options(3, 36, Primer::Melody(melody("[60,-2,-2,-2,64,-2,-2,-2]")), condition, true);
        let without = GenerateOptions { primer_in_output: false, ..with.clone() };
        let a = generate::generate_with_bundle(&bundle, &with).unwrap();
        let b = generate::generate_with_bundle(&bundle, &without).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(encoding::num_steps(&y.events), 36 - 8);
            let mut tail = vec![Event::Start];
            let cut = x.events.iter().enumerate().filter(|(_, e)| **e == Event::StepEnd).nth(7).unwrap().0 + 1;
            tail.extend_from_slice(&x.events[cut..]);
            assert_eq!(y.events, generate::drop_orphan_continuations(&tail), "condition {condition}");
            assert!(y.sequence.notes.iter().all(|n| n.start_time >= 0.0));
            assert!((y.sequence.total_time - 28.0 * 0.125).abs() < 1e-9);
        }
    }
}

#[test]
fn options_travel_as_json() {
    let opts = GenerateOptions { primer: Primer::Melody(vec![60, -2, -1]), seed: Some(9), ..GenerateOptions::default() };
    let json = serde_json::to_string(&opts).unwrap();
    assert_eq!(serde_json::from_str::<GenerateOptions>(&json).unwrap(), opts);
    let partial: GenerateOptions = serde_json::from_str(r#"{"num_outputs": 2}"#).unwrap();
    assert_eq!(partial, GenerateOptions { num_outputs: 2, ..GenerateOptions::default() });
    let events = GenerateOptions { primer: Primer::Events(vec![Event::Start, Event::NewNote(60), Event::StepEnd]), ..opts };
    let json = serde_json::to_string(&events).unwrap();
    assert_eq!(serde_json::from_str::<GenerateOptions>(&json).unwrap(), events);
}

#[test]
fn bad_requests_are_refused_with_one_line() {
    let bundle = small_bundle();
    let cases = [
        (GenerateOptions { primer: Primer::Pitches(vec![60, 128]), ..GenerateOptions::default() }, "128"),
        (GenerateOptions { primer: Primer::Pitches(vec![-1]), ..GenerateOptions::default() }, "-1"),
        (GenerateOptions { primer: Primer::Melody(vec![60, -3]), ..GenerateOptions::default() }, "-3"),
        (GenerateOptions { primer: Primer::Melody(melody(TWINKLE)), num_steps: 16, ..GenerateOptions::default() }, "num_steps"),
        (GenerateOptions { primer: Primer::Pitches(vec![60]), num_steps: 4, ..GenerateOptions::default() }, "num_steps"),
        (GenerateOptions { num_outputs: 0, ..GenerateOptions::default() }, "num_outputs"),
        (GenerateOptions { temperature: 0.0, ..GenerateOptions::default() }, "temperature"),
        (GenerateOptions { beam_size: 0, ..GenerateOptions::default() }, "beam_size"),
    ];
    for (opts, needle) in cases {
        let err = generate::generate_with_bundle(&bundle, &opts).unwrap_err().to_string();
        assert!(err.contains(needle) && !err.contains('\n'), "{err}");
    }
}

// ---------------------------------------------------------------- beam search

/// A model without state whose next-event distribution depends on the last
/// event only: from START, NEW_NOTE 60 (p 0.6) leads to a spread of ten
/// equally likely events, NEW_NOTE 62 (p 0.4) to a certain STEP_END.
struct Trap;

impl Trap {
    fn logits(input: usize) -> Vec<f32> {
        let mut l = vec![-1e4f32; NUM_CLASSES];
        let ln = |p: f64| p.ln() as f32;
        if input == Event::Start.class() {
            l[Event::NewNote(60).class()] = ln(0.6);
            l[Event::NewNote(62).class()] = ln(0.4);
        } else if input == Event::NewNote(60).class() {
            l[Event::StepEnd.class()] = 0.0;
            for p in 70..79 {
                l[Event::NewNote(p).class()] = 0.0;
            }
        } else {
            l[Event::StepEnd.class()] = 0.0;
        }
        l
    }
}

impl StepModel for Trap {
    fn reset(&mut self, _batch: usize) {}
    fn step(&mut self, inputs: &[usize], _features: &[Vec<u16>], logits: &mut Vec<f32>) {
        *logits = inputs.iter().flat_map(|&i| Trap::logits(i)).collect();
    }
    fn select_rows(&mut self, _rows: &[usize]) {}
}

#[test]
fn beam_search_returns_the_more_likely_sequence() {
    let beam = GenerateOptions {
        num_outputs: 3,
        num_steps: 1,
        beam_size: 2,
        branch_factor: 8,
        steps_per_iteration: 2,
        seed: Some(1),
        // The trap's notes rise within a step, which the decoding rules forbid.
        descending: false,
        part_writing: false,
        ..GenerateOptions::default()
    };
    let outputs = generate::generate(&mut Trap, &beam).unwrap();
    for out in &outputs {
        assert_eq!(out.events, vec![Event::Start, Event::NewNote(62), Event::StepEnd, Event::End]);
        assert!((out.log_likelihood - 0.4f64.ln()).abs() < 1e-4, "{}", out.log_likelihood);
    }
    // Plain sampling falls into the trap: most outputs take the less likely path.
    let plain = GenerateOptions { num_outputs: 40, beam_size: 1, branch_factor: 1, steps_per_iteration: 1, ..beam };
    let outputs: Vec<Output> = generate::generate(&mut Trap, &plain).unwrap();
    let trapped = outputs.iter().filter(|o| o.events[1] == Event::NewNote(60)).count();
    assert!(trapped > 10, "{trapped}");
    assert!(outputs.iter().filter(|o| o.events[1] == Event::NewNote(60)).all(|o| o.log_likelihood < 0.4f64.ln() - 1.0));
}

#[test]
fn beam_search_on_a_network_keeps_its_shape() {
    let opts = GenerateOptions { beam_size: 3, branch_factor: 2, steps_per_iteration: 4, ..options(2, 20, Primer::Pitches(vec![60, 64]), true, true) };
    let outputs = generate::generate_with_bundle(&small_bundle(), &opts).unwrap();
    assert_eq!(outputs.len(), 2);
    for out in outputs {
        assert_eq!(encoding::num_steps(&out.events), 20);
    }
}

// ---------------------------------------------------------------- command line

fn save_small_bundle(dir: &Path) -> String {
    let path = dir.join("small.bundle");
    bundle::save(&path, &small_bundle(), bundle::Precision::F32).unwrap();
    path.to_string_lossy().into_owned()
}

fn midi_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "mid")).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Notes of a MIDI file read with midly directly: (pitch, start tick, end tick).
fn midly_notes(bytes: &[u8]) -> (u16, Vec<(u8, u64, u64)>) {
    let smf = midly::Smf::parse(bytes).expect("a MIDI file midly reads");
    let midly::Timing::Metrical(tpq) = smf.header.timing else { panic!("metrical timing") };
    let mut notes = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        let mut open: Vec<(u8, u8, u64)> = Vec::new();
        for ev in track {
            tick += ev.delta.as_int() as u64;
            if let midly::TrackEventKind::Midi { channel, message } = ev.kind {
                match message {
                    midly::MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => open.push((channel.as_int(), key.as_int(), tick)),
                    midly::MidiMessage::NoteOn { key, .. } | midly::MidiMessage::NoteOff { key, .. } => {
                        if let Some(i) = open.iter().position(|&(c, k, _)| c == channel.as_int() && k == key.as_int()) {
                            let (_, k, start) = open.remove(i);
                            notes.push((k, start, tick));
                        }
                    }
                    _ => {}
                }
            }
        }
        assert!(open.is_empty(), "every note ends");
    }
    notes.sort();
    (tpq.as_int(), notes)
}

/// The original's README example that crashed it: a melody primer with
/// injection. Every injected melody note is in every output at its step and
/// pitch, and each file holds exactly the library's output for the seed.
#[test]
fn the_twinkle_harmonization_that_crashed_the_original_works() {
    let dir = Scratch::new("generate-twinkle");
    let bundle_file = save_small_bundle(&dir);
    let out_dir = dir.join("out");
    let out = polyphony(&[
        "generate",
        "--bundle_file",
        &bundle_file,
        "--output_dir",
        out_dir.to_str().unwrap(),
        "--num_outputs",
        "10",
        "--num_steps",
        "64",
        "--primer_melody",
        TWINKLE,
        "--condition_on_primer=false",
        "--inject_primer_during_generation=true",
        "--seed",
        "5",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = midi_files(&out_dir);
    assert_eq!(files.len(), 10);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(name.len(), "2026-11-27_103105_01.mid".len(), "{name}");
    assert!(name.ends_with("_01.mid") && name.as_bytes()[10] == b'_', "{name}");
    assert!(files[9].to_str().unwrap().ends_with("_10.mid"));

    let opts = GenerateOptions {
        num_outputs: 10,
        num_steps: 64,
        primer: Primer::Melody(melody(TWINKLE)),
        seed: Some(5),
        ..GenerateOptions::default()
    };
    let outputs = generate::generate_with_bundle(&bundle::load(&bundle_file).unwrap(), &opts).unwrap();
    let melody_notes = [(60u8, 0u64), (60, 4), (67, 8), (67, 12), (69, 16), (69, 20), (67, 24)];
    for (file, output) in files.iter().zip(&outputs) {
        let (tpq, notes) = midly_notes(&std::fs::read(file).unwrap());
        let step = tpq as u64 / 4;
        for (pitch, at) in melody_notes {
            for offset in [0, 32] {
                assert!(
                    notes.iter().any(|&(k, start, _)| k == pitch && start == (at + offset) * step),
                    "{}: no {pitch} at step {}",
                    file.display(),
                    at + offset
                );
            }
        }
        assert!(notes.iter().all(|&(_, _, end)| end <= 64 * step), "nothing beyond 64 steps");
        let mut expected: Vec<(u8, u64, u64)> = output
            .sequence
            .notes
            .iter()
            .map(|n| (n.pitch as u8, (n.start_time / 0.125).round() as u64 * step, (n.end_time / 0.125).round() as u64 * step))
            .collect();
        expected.sort();
        assert_eq!(notes, expected, "{}: the file holds the output's notes", file.display());
        assert_eq!(encoding::num_steps(&output.events), 64);
    }
}

#[test]
fn boolean_flags_take_the_originals_forms() {
    let dir = Scratch::new("generate-flags");
    // The built-in model: a random one hardly depends on what it has read,
    // so conditioning or not may give the same notes.
    let run = |name: &str, flags: &[&str]| -> Vec<u8> {
        let out_dir = dir.join(name);
        let mut args = vec!["generate", "--output_dir", out_dir.to_str().unwrap()];
        args.extend_from_slice(&["--num_outputs", "1", "--num_steps", "24", "--seed", "3", "--primer_pitches", "[67, 64, 60]"]);
        args.extend_from_slice(flags);
        let out = polyphony(&args);
        assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
        let files = midi_files(&out_dir);
        assert_eq!(files.len(), 1);
        assert!(files[0].to_str().unwrap().ends_with("_1.mid"));
        std::fs::read(&files[0]).unwrap()
    };
    let conditioned = run("a", &["--condition_on_primer"]);
    assert_eq!(conditioned, run("b", &["--condition_on_primer=true"]));
    assert_eq!(conditioned, run("c", &["--condition_on_primer", "true"]));
    let plain = run("d", &["--nocondition_on_primer"]);
    assert_eq!(plain, run("e", &["--condition_on_primer=false"]));
    assert_eq!(plain, run("f", &[]));
    assert_ne!(conditioned, plain);
    let no_inject = run("g", &["--noinject_primer_during_generation"]);
    assert_eq!(no_inject, run("h", &["--inject_primer_during_generation=false"]));
    let short = run("i", &["--noprimer_in_output"]);
    assert_eq!(short, run("j", &["--primer_in_output=false"]));
    assert_ne!(short, plain);
    let unmasked = run("k", &["--nomask_ignored_events"]);
    assert_eq!(unmasked, run("l", &["--mask_ignored_events=false"]));
    assert_ne!(unmasked, plain);
}

#[test]
fn every_bad_input_gets_one_error_line_and_exit_code_1() {
    let dir = Scratch::new("generate-bad");
    let bundle_file = save_small_bundle(&dir);
    let not_midi = dir.join("notes.mid");
    std::fs::write(&not_midi, "this is not MIDI").unwrap();
    let out_dir = dir.join("out");
    let base = ["generate", "--bundle_file", &bundle_file, "--output_dir", out_dir.to_str().unwrap()];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--primer_pitches", "[60, x]"], "primer_pitches"),
        (vec!["--primer_pitches", "60 64"], "primer_pitches"),
        (vec!["--primer_pitches", "[60, 128]"], "128"),
        (vec!["--primer_pitches", "[-5]"], "-5"),
        (vec!["--primer_melody", "[60, -3]"], "-3"),
        (vec!["--primer_melody", "[60, -2, 200]"], "200"),
        (vec!["--primer_pitches", "[60]", "--primer_melody", "[60]"], "at most one primer"),
        (vec!["--primer_melody", TWINKLE, "--num_steps", "16"], "num_steps"),
        (vec!["--primer_midi", not_midi.to_str().unwrap()], "notes.mid"),
        (vec!["--primer_midi", "/nonexistent/primer.mid"], "primer.mid"),
        (vec!["--hparams", "rnn_layer_sizes=[256,256,256]"], "rnn_layer_sizes"),
        (vec!["--hparams", "nonsense=1"], "nonsense"),
        (vec!["--temperature", "0"], "temperature"),
        (vec!["--num_steps", "abc"], "num_steps"),
        (vec!["--condition_on_primer=maybe"], "maybe"),
        (vec!["--num_outputs=-3"], "num_outputs"),
        (vec!["--beam_size", "0"], "beam_size"),
    ];
    for (extra, needle) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra.iter());
        let out = polyphony(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(midi_files(&out_dir).is_empty(), "{extra:?} wrote files");
    }
    for (args, needle) in [
        (vec!["generate", "--save_generator_bundle", "--output_dir", out_dir.to_str().unwrap()], "--run_dir"),
        (vec!["generate", "--bundle_file", &bundle_file], "--output_dir"),
        (vec!["generate", "--bundle_file", not_midi.to_str().unwrap(), "--output_dir", out_dir.to_str().unwrap()], "notes.mid"),
    ] {
        let out = polyphony(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A run directory with a checkpoint of the small model.
fn small_run(dir: &Path) -> PathBuf {
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let bundle = small_bundle();
    let device = Device::flex();
    let model = Model::from_bundle(&bundle, &device);
    let adam = polyphony::train::AdamState::new(&model.parameters());
    let state: polyphony::train::TrainState = serde_json::from_value(serde_json::json!({
        "step": 12, "seed": 0, "hparams": bundle.metadata.hparams, "bptt_window": 256,
        "dataset": "test.polyds", "elapsed_secs": 1.5, "last_train": null, "last_eval": null
    }))
    .expect("a training state");
    let checkpoint = polyphony::train::Checkpoint { model, adam, state };
    polyphony::train::save_checkpoint(&polyphony::train::checkpoint_path(&run_dir), &checkpoint).unwrap();
    run_dir
}

#[test]
fn a_run_dir_generates_checks_hparams_and_saves_a_bundle() {
    let dir = Scratch::new("generate-run");
    let run_dir = small_run(&dir);
    let run = run_dir.to_str().unwrap();
    let out_dir = dir.join("out");
    let out = polyphony(&[
        "generate", "--run_dir", run, "--hparams", "rnn_layer_sizes=[16,16]", "--output_dir", out_dir.to_str().unwrap(),
        "--num_outputs", "2", "--num_steps", "16", "--seed", "1",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(midi_files(&out_dir).len(), 2);

    let out = polyphony(&["generate", "--run_dir", run, "--hparams", "rnn_layer_sizes=[32]", "--output_dir", out_dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("[16, 16]") && stderr.contains("[32]") && stderr.trim_end().lines().count() == 1, "{stderr}");

    let bundle_file = dir.join("saved.bundle");
    let out = polyphony(&[
        "generate", "--run_dir", run, "--bundle_file", bundle_file.to_str().unwrap(), "--save_generator_bundle",
        "--bundle_description", "a small test model",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = bundle::load(&bundle_file).unwrap();
    assert_eq!(saved.metadata.description, "a small test model");
    assert_eq!(saved.weights(), small_bundle().weights());
}

/// The session driven by hand, as the browser drives it a slice at a time.
#[test]
fn a_session_reports_its_rows_and_progress() {
    let bundle = small_bundle();
    let opts = GenerateOptions { beam_size: 2, branch_factor: 2, ..options(3, 20, Primer::Pitches(vec![60, 67]), true, true) };
    let mut session = generate::Session::new(&opts).unwrap();
    assert_eq!((session.batch(), session.rows_per_output(), session.target_steps(), session.primer_steps()), (12, 4, 20, 4));
    assert_eq!(session.row_steps(0), 4, "conditioning: the rows begin with the primer");
    let mut net = FusedLstm::new(bundle.weights());
    net.reset(session.batch());
    let mut last = session.progress();
    assert_eq!(last, 0.0);
    let mut logits = Vec::new();
    while let Some(inputs) = session.inputs() {
        net.step_into(inputs, session.features(), &mut logits);
        if let Some(rows) = session.feed(&logits).unwrap() {
            net.select_rows(&rows);
        }
        let p = session.progress();
        assert!((0.0..=1.0).contains(&p));
        last = p;
    }
    assert_eq!(last, 1.0);
    assert!((0..session.batch()).all(|r| session.row_steps(r) == 20 && encoding::num_steps(session.row_events(r)) == 20));
    let direct = generate::generate_with_bundle(&bundle, &opts).unwrap();
    assert_eq!(session.finish(), direct, "driving by hand is the same as generate()");
}

// ---------------------------------------------------------------- decoding rules

/// Each step's pitch events, in the order written.
fn step_pitches(events: &[Event]) -> Vec<Vec<u8>> {
    steps_of(events)
        .into_iter()
        .map(|s| s.into_iter().filter_map(|e| match e {
            Event::NewNote(p) | Event::ContinuedNote(p) => Some(p),
            _ => None,
        }).collect())
        .collect()
}

fn judged(outputs: &[Output]) -> polyphony::judge::Judgement {
    let mut total = polyphony::judge::Judgement::default();
    for o in outputs {
        let seq = polyphony::step_grid::to_sequence(&encoding::decode_steps(&o.events).0, 120.0, 100, 0);
        total.add(&polyphony::judge::Judgement::of(&seq));
    }
    total
}

#[test]
fn the_grammar_rules_keep_steps_descending_and_voices_counted() {
    let bundle = random_bundle(&[16, 16], 21, 2.0);
    let opts = GenerateOptions { max_voices: Some(4), part_writing: false, key_prior: 1.0, ..options(6, 48, Primer::None, false, false) };
    let outputs = generate::generate_with_bundle(&bundle, &opts).unwrap();
    let steps: Vec<Vec<u8>> = outputs.iter().flat_map(|o| step_pitches(&o.events)).collect();
    assert!(steps.iter().all(|s| s.windows(2).all(|w| w[0] >= w[1])), "pitches descend within every step");
    assert!(steps.iter().all(|s| { let mut d = s.clone(); d.dedup(); d.len() <= 4 }), "at most four voices");
    assert!(steps.iter().any(|s| s.len() >= 3), "the rules still let chords through");
    // Without the grammar the same model writes rising steps and more voices.
    let free = GenerateOptions { mask_ignored_events: false, ..opts };
    let steps: Vec<Vec<u8>> = generate::generate_with_bundle(&bundle, &free).unwrap().iter().flat_map(|o| step_pitches(&o.events)).collect();
    assert!(steps.iter().any(|s| s.windows(2).any(|w| w[0] < w[1])));
}

#[test]
fn part_writing_leaves_no_parallels_and_a_key_prior_keeps_the_scale() {
    // Steps seldom end by themselves: most fill up to the four voices allowed.
    let bundle = random_bundle(&[16, 16], 22, -1.0);
    let base = GenerateOptions { max_voices: Some(4), key: Some("C".parse().unwrap()), ..options(8, 64, Primer::None, false, false) };
    let free = judged(&generate::generate_with_bundle(&bundle, &GenerateOptions { part_writing: false, key_prior: 1.0, ..base.clone() }).unwrap());
    let strict = judged(&generate::generate_with_bundle(&bundle, &GenerateOptions { key_prior: 0.01, ..base }).unwrap());
    assert!(strict.changes > 20, "enough four-voice changes to judge: {}", strict.changes);
    assert_eq!((strict.parallel_fifths, strict.parallel_octaves), (0, 0), "{strict:?}");
    assert_eq!(strict.of_four_voice_steps(strict.wide_spacing_steps), 0.0);
    assert!(free.in_scale_share() < 0.8 && strict.in_scale_share() > 0.95, "in C: {} free, {} with the prior", free.in_scale_share(), strict.in_scale_share());
}

#[test]
fn a_tiny_nucleus_samples_the_most_likely_event() {
    let bundle = random_bundle(&[16, 16], 23, 2.0);
    let opts = GenerateOptions { top_p: 1e-6, ..options(2, 24, Primer::None, false, false) };
    let a = generate::generate_with_bundle(&bundle, &GenerateOptions { seed: Some(1), ..opts.clone() }).unwrap();
    let b = generate::generate_with_bundle(&bundle, &GenerateOptions { seed: Some(2), ..opts }).unwrap();
    assert_eq!(a, b, "no randomness is left");
}

#[test]
fn harmonizing_puts_the_melody_on_top_for_exactly_its_length() {
    let bundle = random_bundle(&[16, 16], 24, 2.0);
    let melody_values = melody(TWINKLE);
    let opts = GenerateOptions { harmonize: true, num_steps: 0, ..options(4, 0, Primer::Melody(melody_values.clone()), false, false) };
    let outputs = generate::generate_with_bundle(&bundle, &opts).unwrap();
    let melody_notes = generate::primer_notes(&Primer::Melody(melody_values)).unwrap().notes;
    for output in &outputs {
        assert_eq!(encoding::num_steps(&output.events), 32, "the melody's length, nothing prepended");
        let (notes, _) = encoding::decode_steps(&output.events);
        for m in &melody_notes {
            assert!(notes.iter().any(|n| (n.pitch, n.start, n.end) == (m.pitch, m.start, m.end)), "the melody's {} at {}..{}, uncut: {notes:?}\n{:?}", m.pitch, m.start, m.end, output.events);
            for step in m.start..m.end {
                let top = notes.iter().filter(|n| n.start <= step && step < n.end).map(|n| n.pitch).max();
                assert_eq!(top, Some(m.pitch), "the melody is on top at step {step}");
            }
        }
    }
    // Asked for more, it goes on after the melody.
    let longer = generate::generate_with_bundle(&bundle, &GenerateOptions { num_steps: 48, ..opts }).unwrap();
    assert!(longer.iter().all(|o| encoding::num_steps(&o.events) == 48));
}

#[test]
fn harmonizing_a_bass_line_writes_the_voices_above_it() {
    let bundle = random_bundle(&[16, 16], 25, 2.0);
    let bass = "[48,-2,-2,-2,43,-2,-2,-2,45,-2,-2,-2,41,-2,-2,-2,43,-2,-2,-2,-2,-2,-2,-2,48,-2,-2,-2,-2,-2,-2,-2]";
    let opts = GenerateOptions { harmonize: true, harmonize_bass: true, num_steps: 0, max_voices: Some(4), ..options(4, 0, Primer::Melody(melody(bass)), false, false) };
    let outputs = generate::generate_with_bundle(&bundle, &opts).unwrap();
    let line = generate::primer_notes(&Primer::Melody(melody(bass))).unwrap().notes;
    let mut above = 0;
    for output in &outputs {
        assert_eq!(encoding::num_steps(&output.events), 32);
        let (notes, _) = encoding::decode_steps(&output.events);
        for b in &line {
            assert!(notes.iter().any(|n| (n.pitch, n.start, n.end) == (b.pitch, b.start, b.end)), "the bass {} at {}..{}, uncut", b.pitch, b.start, b.end);
            for step in b.start..b.end {
                let sounding: Vec<i32> = notes.iter().filter(|n| n.start <= step && step < n.end).map(|n| n.pitch).collect();
                assert_eq!(sounding.iter().min(), Some(&b.pitch), "the bass is lowest at step {step}");
                above += sounding.len() - 1;
            }
        }
        assert!(step_pitches(&output.events).iter().all(|s| s.windows(2).all(|w| w[0] >= w[1])), "each step still descends");
    }
    assert!(above > 32, "voices were written above the bass: {above}");
}

/// Regenerate from here: a harmonization's first steps kept as they are,
/// every voice, and the rest written again under the same melody.
#[test]
fn a_harmonization_can_be_written_again_from_a_step_on() {
    let bundle = random_bundle(&[16, 16], 26, 2.0);
    let first = GenerateOptions { harmonize: true, num_steps: 0, ..options(1, 0, Primer::Melody(melody(TWINKLE)), false, false) };
    let before = generate::generate_with_bundle(&bundle, &first).unwrap().remove(0);
    let (notes, _) = encoding::decode_steps(&before.events);
    let again = GenerateOptions { primer: Primer::Steps { notes: notes.clone(), steps: 32 }, keep_steps: 12, num_steps: 32, seed: Some(99), ..first };
    let after = generate::generate_with_bundle(&bundle, &again).unwrap().remove(0);
    let (rewritten, _) = encoding::decode_steps(&after.events);
    assert_eq!(encoding::num_steps(&after.events), 32);
    let upto = |ns: &[polyphony::step_grid::StepNote], k: i64| {
        let mut v: Vec<_> = ns.iter().filter(|n| n.start < k).map(|n| (n.pitch, n.start, n.end.min(k))).collect();
        v.sort();
        v
    };
    assert_eq!(upto(&rewritten, 12), upto(&notes, 12), "the first 12 steps are kept");
    assert_ne!(rewritten, notes, "the rest is written again");
    for m in generate::primer_notes(&Primer::Melody(melody(TWINKLE))).unwrap().notes.iter().filter(|m| m.start >= 12) {
        assert!(rewritten.iter().any(|n| n.pitch == m.pitch && n.start == m.start), "the melody's {} at {} stays", m.pitch, m.start);
    }
}

/// Live harmonization: the melody given a step at a time, as a keyboard
/// plays it, is harmonized exactly as the whole melody is (same seed, same
/// key), and each step's harmony comes back at once.
#[test]
fn a_melody_played_live_is_harmonized_as_the_whole_melody_is() {
    let bundle = random_bundle(&[16, 16], 27, 2.0);
    let opts = GenerateOptions {
        harmonize: true,
        num_steps: 0,
        key: Some("C".parse().unwrap()),
        max_voices: Some(4),
        ..options(1, 0, Primer::Melody(melody(TWINKLE)), false, false)
    };
    let whole = generate::generate_with_bundle(&bundle, &opts).unwrap().remove(0);

    let engine = generate::Engine::new(bundle);
    let mut live = generate::Live::new(&engine, &GenerateOptions { primer: Primer::None, ..opts }).unwrap();
    let line = generate::primer_notes(&Primer::Melody(melody(TWINKLE))).unwrap().notes;
    let mut voiced_steps = 0;
    for step in 0..32i64 {
        let note = line.iter().find(|n| n.start <= step && step < n.end);
        let harmony = live.step(note.map(|n| n.pitch as u8), note.is_some_and(|n| n.start == step)).unwrap();
        assert!(harmony.struck.iter().all(|p| harmony.sounding.contains(p)));
        assert!(harmony.sounding.iter().all(|&p| note.is_none_or(|n| i32::from(p) < n.pitch)), "below the melody at step {step}: {harmony:?}");
        voiced_steps += usize::from(!harmony.sounding.is_empty());
    }
    assert_eq!(live.steps(), 32);
    assert!(voiced_steps > 8, "the other voices sound: {voiced_steps} steps");
    // Steps written after the melody, waiting for Stop, are not the take's.
    for _ in 0..5 {
        live.step(None, false).unwrap();
    }
    let take = live.finish();
    assert_eq!(take.events, whole.events, "live and whole harmonizations agree, event for event");
}
