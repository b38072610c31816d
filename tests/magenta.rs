//! The original's models brought in: the shared `.mag` (written by the
//! original code) imported, its per-event log-probabilities equal to the
//! original's own TensorFlow graph's within 1e-4; a V2 training checkpoint
//! of the same weights imported the same; every refusal names what it found.

mod common;

use common::Scratch;

use std::collections::BTreeMap;

use burn::tensor::Device;
use polyphony::bundle::{Bundle, Origin};
use polyphony::encoding::NUM_CLASSES;
use polyphony::fused::FusedLstm;
use polyphony::magenta::{self, ImportError, Variables, proto, table};
use polyphony::model::Model;
use prost::Message;

fn mag_bytes() -> Vec<u8> {
    std::fs::read(common::data_dir().join("magenta/tiny.mag")).expect("tests/data/magenta/tiny.mag")
}

fn import(bytes: &[u8]) -> Result<Bundle, ImportError> {
    magenta::import_mag(bytes, "tiny.mag", "2026-12-01T00:00:00Z")
}

/// The original's events and log-probabilities, per source piece.
fn original_logprobs() -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let text = std::fs::read_to_string(common::data_dir().join("magenta/tiny.logprobs.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .map(|(piece, v)| {
            let events = v["events"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap() as usize).collect();
            let logprobs = v["logprob"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            (piece.clone(), (events, logprobs))
        })
        .collect()
}

/// log p(events[t + 1] | events[..=t]) for every t, by the fused step.
fn our_logprobs(bundle: &Bundle, events: &[usize]) -> Vec<f64> {
    let mut net = FusedLstm::new(bundle.weights());
    net.reset(1);
    let mut logits = Vec::new();
    events
        .windows(2)
        .map(|pair| {
            net.step_into(&[pair[0]], &[], &mut logits);
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
            logits[pair[1]] as f64 - max - sum.ln()
        })
        .collect()
}

#[test]
fn the_shared_mag_imports_and_scores_as_the_original_did() {
    let bundle = import(&mag_bytes()).unwrap();
    assert_eq!(bundle.metadata.hparams.rnn_layer_sizes, [256, 256, 256]);
    let origin = bundle.metadata.origin.as_ref().unwrap();
    assert_eq!((origin.generator_id.as_str(), origin.generator_description.as_str()), ("polyphony", "Polyphonic RNN"));
    assert!(origin.description.starts_with("UNTRAINED: default polyphony config"), "{origin:?}");
    assert_eq!(bundle.metadata.description, origin.description);
    for (piece, (events, want)) in original_logprobs() {
        let have = our_logprobs(&bundle, &events);
        assert_eq!(have.len(), want.len(), "{piece}: one log-probability per event after START");
        let worst = have.iter().zip(&want).map(|(h, w)| (h - w).abs()).fold(0.0f64, f64::max);
        eprintln!("{piece}: {} events, worst log-probability difference {worst:.2e}", have.len());
        assert!(worst < 1e-4, "{piece}: worst difference {worst}");
    }
    // burn's model of the imported bundle (training, the GPU) gives the same.
    let model = Model::from_bundle(&bundle, &Device::flex());
    assert_eq!(model.hparams.rnn_layer_sizes, [256, 256, 256]);
    // And the bundle survives being written and read as ours.
    let back = polyphony::bundle::from_bytes(&polyphony::bundle::to_bytes(&bundle, polyphony::bundle::Precision::F32)).unwrap();
    assert_eq!(back, bundle);
}

#[test]
fn another_generator_is_refused_by_name() {
    let mut mag = proto::GeneratorBundle::decode(mag_bytes().as_slice()).unwrap();
    mag.generator_details = Some(proto::GeneratorDetails { id: "melody_rnn".into(), description: "Melody RNN".into() });
    let message = import(&mag.encode_to_vec()).unwrap_err().to_string();
    assert!(message.contains("\"melody_rnn\" model (Melody RNN)") && message.contains("only polyphony"), "{message}");
}

#[test]
fn damaged_and_foreign_files_are_refused() {
    let bytes = mag_bytes();
    // A flipped byte inside the checkpoint's tensor data.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let message = import(&flipped).unwrap_err().to_string();
    assert!(message.contains("fails its checksum"), "{message}");
    // Cut short.
    let message = import(&bytes[..bytes.len() - 1000]).unwrap_err().to_string();
    assert!(message.starts_with("not a Magenta .mag bundle") || message.starts_with("damaged file"), "{message}");
    // Not a .mag at all.
    assert!(import(b"MThd\0\0\0\x06").unwrap_err().to_string().starts_with("not a Magenta .mag bundle"));
    assert!(import(b"").unwrap_err().to_string().starts_with("not a Magenta .mag bundle"));
}

fn tiny_variables() -> Variables {
    let mag = proto::GeneratorBundle::decode(mag_bytes().as_slice()).unwrap();
    magenta::read_v1_checkpoint(&mag.checkpoint_file[0]).unwrap()
}

fn origin() -> Origin {
    Origin { format: "test".into(), source: "test".into(), generator_id: "polyphony".into(), generator_description: String::new(), description: "d".into() }
}

#[test]
fn a_missing_variable_and_a_layer_we_cannot_map_are_named() {
    let mut missing = tiny_variables();
    missing.remove("rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias");
    let message = magenta::bundle_from_variables(&missing, None, origin(), "now").unwrap_err().to_string();
    assert!(message.starts_with("the checkpoint has no rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias; it holds: fully_connected/biases"), "{message}");

    let mut reshaped = tiny_variables();
    let kernel = reshaped.get_mut("rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel").unwrap();
    kernel.0 = vec![516, 1024];
    kernel.1.extend(vec![0.0; 1024]);
    let message = magenta::bundle_from_variables(&reshaped, None, origin(), "now").unwrap_err().to_string();
    assert!(message.contains("layer 0") && message.contains("reads 260 inputs, not the 259-class polyphony event"), "{message}");

    // TensorFlow up to 1.1 called the cell's variables weights and biases.
    let older: Variables = tiny_variables()
        .into_iter()
        .map(|(name, v)| (name.replace("basic_lstm_cell/kernel", "basic_lstm_cell/weights").replace("basic_lstm_cell/bias", "basic_lstm_cell/biases"), v))
        .collect();
    let renamed = magenta::bundle_from_variables(&older, None, origin(), "now").unwrap();
    assert_eq!(renamed.weights(), magenta::bundle_from_variables(&tiny_variables(), None, origin(), "now").unwrap().weights());
}

/// A TensorFlow table of `entries` (sorted keys), written as TensorFlow's
/// table builder lays it out: one data block (a restart point at every
/// entry), an empty metaindex block, an index block, the footer.
fn write_table(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn block(out: &mut Vec<u8>, entries: &[(&[u8], &[u8])]) -> (u64, u64) {
        let start = out.len();
        let mut contents = Vec::new();
        let mut restarts = Vec::new();
        for (key, value) in entries {
            restarts.push(contents.len() as u32);
            varint(&mut contents, 0);
            varint(&mut contents, key.len() as u64);
            varint(&mut contents, value.len() as u64);
            contents.extend_from_slice(key);
            contents.extend_from_slice(value);
        }
        if restarts.is_empty() {
            restarts.push(0);
        }
        for r in &restarts {
            contents.extend_from_slice(&r.to_le_bytes());
        }
        contents.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        let mut hashed = contents.clone();
        hashed.push(0);
        out.extend_from_slice(&contents);
        out.push(0);
        out.extend_from_slice(&table::mask(table::CRC32C.checksum(&hashed)).to_le_bytes());
        (start as u64, contents.len() as u64)
    }
    let mut file = Vec::new();
    let pairs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let data = block(&mut file, &pairs);
    let metaindex = block(&mut file, &[]);
    let mut handle = Vec::new();
    varint(&mut handle, data.0);
    varint(&mut handle, data.1);
    let last_key = entries.last().unwrap().0.clone();
    let index = block(&mut file, &[(last_key.as_slice(), handle.as_slice())]);
    let mut footer = Vec::new();
    for v in [metaindex.0, metaindex.1, index.0, index.1] {
        varint(&mut footer, v);
    }
    footer.resize(40, 0);
    footer.extend_from_slice(&0xdb47_7524_8b80_fb57u64.to_le_bytes());
    file.extend_from_slice(&footer);
    file
}

/// The original's training run directory: a V2 checkpoint of `variables`
/// (plus the optimizer slots and step a training run also saves).
fn write_run_dir(variables: &Variables) -> Scratch {
    let dir = Scratch::new("magenta-run");
    std::fs::create_dir_all(dir.join("train")).unwrap();
    let mut data = Vec::new();
    let header = proto::BundleHeaderProto { num_shards: 1, endianness: 0 }.encode_to_vec();
    let mut entries = vec![(Vec::new(), header)];
    let mut all: Vec<(String, Vec<usize>, Vec<f32>)> = variables.iter().map(|(n, (s, v))| (n.clone(), s.clone(), v.clone())).collect();
    all.push(("fully_connected/biases/Adam".into(), vec![NUM_CLASSES], vec![0.5; NUM_CLASSES]));
    for (name, shape, values) in all {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let entry = proto::BundleEntryProto {
            dtype: proto::DT_FLOAT,
            shape: Some(proto::TensorShapeProto { dim: shape.iter().map(|&d| proto::Dim { size: d as i64 }).collect() }),
            shard_id: 0,
            offset: data.len() as i64,
            size: bytes.len() as i64,
            crc32c: table::mask(table::CRC32C.checksum(&bytes)),
            slices: Vec::new(),
        };
        data.extend_from_slice(&bytes);
        entries.push((name.into_bytes(), entry.encode_to_vec()));
    }
    entries.sort();
    std::fs::write(dir.join("train/model.ckpt-40.index"), write_table(&entries)).unwrap();
    std::fs::write(dir.join("train/model.ckpt-40.data-00000-of-00001"), &data).unwrap();
    std::fs::write(dir.join("train/checkpoint"), "model_checkpoint_path: \"model.ckpt-40\"\nall_model_checkpoint_paths: \"model.ckpt-40\"\n").unwrap();
    dir
}

#[test]
fn a_training_runs_v2_checkpoint_imports_to_the_same_weights() {
    let from_mag = import(&mag_bytes()).unwrap();
    let dir = write_run_dir(&tiny_variables());
    let hparams = polyphony::hparams::HParams::default().with_overrides("rnn_layer_sizes=[256,256,256]").unwrap();
    for path in [dir.join("train"), dir.join("train/model.ckpt-40")] {
        let bundle = magenta::import_checkpoint(&path, Some(hparams.clone()), "now").unwrap();
        assert_eq!(bundle.weights(), from_mag.weights(), "{}", path.display());
        assert!(bundle.metadata.origin.as_ref().unwrap().source.ends_with("model.ckpt-40"));
    }
    let other = polyphony::hparams::HParams::default().with_overrides("rnn_layer_sizes=[128]").unwrap();
    let message = magenta::import_checkpoint(&dir.join("train"), Some(other), "now").unwrap_err().to_string();
    assert!(message.contains("rnn_layer_sizes=[128]") && message.contains("[256, 256, 256]"), "{message}");
    // A damaged data file.
    let data = dir.join("train/model.ckpt-40.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let message = magenta::import_checkpoint(&dir.join("train"), None, "now").unwrap_err().to_string();
    assert!(message.contains("fails its checksum"), "{message}");
}

#[test]
fn import_mag_on_the_command_line_writes_a_bundle_generate_uses() {
    let dir = Scratch::new("magenta-cli");
    let bundle = dir.join("tiny.bundle");
    let mag = common::data_dir().join("magenta/tiny.mag");
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_polyphony")).args(args).output().unwrap();
    let out = run(&["import-mag", mag.to_str().unwrap(), "-o", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rnn_layer_sizes [256, 256, 256]"));
    let out = run(&["generate", "--bundle_file", bundle.to_str().unwrap(), "--output_dir", dir.join("out").to_str().unwrap(), "--num_outputs", "1", "--num_steps", "16", "--seed", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["import-mag", dir.join("tiny.bundle").to_str().unwrap(), "-o", dir.join("x.bundle").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Magenta .mag bundle"));
}
