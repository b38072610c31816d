//! The bundle file: exact round trips, half precision, and a clear refusal
//! of every kind of foreign or damaged file.

mod common;

use common::Scratch;

use std::collections::BTreeMap;

use polyphony::bundle::{
    self, BUNDLE_FORMAT_VERSION, Bundle, BundleError, BundleMetadata, DENSE_BIASES, DENSE_WEIGHTS, NamedTensor, Precision,
    Provenance, expected_shapes, from_bytes, lstm_bias_name, lstm_kernel_name, to_bytes, write_parts,
};
use polyphony::hparams::HParams;

/// A deterministic stand-in for `rand`: xorshift64*.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Weight-like values: mostly small, a few larger, both signs.
    fn weight(&mut self) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit - 0.5) * if self.next_u64().is_multiple_of(10) { 8.0 } else { 0.2 }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn hparams(sizes: &[usize]) -> HParams {
    HParams { rnn_layer_sizes: sizes.to_vec(), ..HParams::default() }
}

fn sample_bundle(params: HParams) -> Bundle {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let tensors = expected_shapes(&params)
        .into_iter()
        .map(|(name, shape)| {
            let data = (0..shape.iter().product()).map(|_| rng.weight()).collect();
            NamedTensor { name, shape, data }
        })
        .collect();
    let mut metadata = BundleMetadata::new("Bach chorales, 4 voices", params, "2026-06-01T12:00:00Z");
    metadata.provenance = Some(Provenance {
        dataset: "jsb_chorales.tfrecord".into(),
        dataset_description: "382 Bach chorales, transposed to all keys".into(),
        training_steps: 20_000,
        wall_time_seconds: 3456.789,
        eval_metrics: BTreeMap::from([
            ("loss".into(), 0.812_345_678_901_234_5),
            ("perplexity".into(), 0.812_345_678_901_234_5f64.exp()),
            ("accuracy".into(), 0.77),
            ("event_accuracy".into(), 0.61),
            ("no_event_accuracy".into(), 0.99),
        ]),
        warm_start: None,
    });
    Bundle::new(metadata, tensors).unwrap()
}

/// A model small enough to cut and flip everywhere.
fn small_bundle() -> Bundle {
    sample_bundle(hparams(&[8, 4]))
}

fn refusal(bytes: &[u8]) -> String {
    match from_bytes(bytes) {
        Ok(_) => panic!("{} bytes were accepted as a bundle", bytes.len()),
        Err(e) => e.to_string(),
    }
}

/// Where the tensor data starts: after the length field and the header.
fn data_start(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Replaces `from` with `to` (same length) in the header text.
fn edit_header(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let start = data_start(bytes);
    let header = std::str::from_utf8(&bytes[8..start]).unwrap();
    assert!(header.contains(from), "{from} not in {header}");
    let mut edited = bytes[..8].to_vec();
    edited.extend_from_slice(header.replacen(from, to, 1).as_bytes());
    edited.extend_from_slice(&bytes[start..]);
    edited
}

#[test]
fn names_and_shapes_follow_the_tensorflow_checkpoint() {
    let shapes = expected_shapes(&HParams::default());
    let expected = [
        (lstm_kernel_name(0), vec![515, 1024]),
        (lstm_bias_name(0), vec![1024]),
        (lstm_kernel_name(1), vec![512, 1024]),
        (lstm_bias_name(1), vec![1024]),
        (lstm_kernel_name(2), vec![512, 1024]),
        (lstm_bias_name(2), vec![1024]),
        (DENSE_WEIGHTS.to_string(), vec![256, 259]),
        (DENSE_BIASES.to_string(), vec![259]),
    ];
    assert_eq!(shapes, expected);
    assert_eq!(lstm_kernel_name(1), "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel");
    assert_eq!(lstm_bias_name(2), "rnn/multi_rnn_cell/cell_2/basic_lstm_cell/bias");
}

#[test]
fn f32_round_trip_is_bit_exact_and_deterministic() {
    let original = sample_bundle(HParams::default());
    let bytes = to_bytes(&original, Precision::F32);
    assert_eq!(bytes, to_bytes(&original, Precision::F32), "the same bundle must give the same bytes");

    let loaded = from_bytes(&bytes).unwrap();
    assert_eq!(loaded.metadata, original.metadata);
    assert_eq!(loaded.metadata.format_version, BUNDLE_FORMAT_VERSION);
    assert_eq!(loaded.metadata.library_version, polyphony::VERSION);
    let names = |b: &Bundle| b.weights().tensors().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&loaded), names(&original), "tensors come back in network order");
    assert_eq!(names(&loaded), expected_shapes(&HParams::default()).into_iter().map(|(n, _)| n).collect::<Vec<_>>());
    for (tensor, back) in original.weights().tensors().iter().zip(loaded.weights().tensors()) {
        assert_eq!(back.shape, tensor.shape);
        let bits = |t: &NamedTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(back) == bits(tensor), "{} changed", tensor.name);
    }
}

#[test]
fn int8_keeps_each_row_within_half_a_step_of_its_scale_in_a_quarter_of_the_size() {
    let original = sample_bundle(HParams::default());
    let full = to_bytes(&original, Precision::F32);
    let int8 = to_bytes(&original, Precision::Int8);
    let ratio = int8.len() as f64 / full.len() as f64;
    assert!((0.25..0.27).contains(&ratio), "int8 is {ratio} of f32");

    let loaded = from_bytes(&int8).unwrap();
    assert_eq!(loaded.metadata, original.metadata);
    for tensor in original.weights().tensors() {
        let back = loaded.tensor(&tensor.name).unwrap();
        assert_eq!(back.shape, tensor.shape);
        let columns = *tensor.shape.last().unwrap();
        for (row, back_row) in tensor.data.chunks(columns).zip(back.data.chunks(columns)) {
            // A matrix row: steps of max/127; a bias (F16): relative 2^-11.
            let step = if tensor.shape.len() == 2 { row.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0 } else { 0.0 };
            for (&x, &y) in row.iter().zip(back_row) {
                let allowed = (step / 2.0).max(x.abs() * 2f32.powi(-11)) * 1.0001 + 1e-7;
                assert!((x - y).abs() <= allowed, "{}: {x} came back as {y} (step {step})", tensor.name);
            }
        }
    }
    // Python's safetensors reads it too: the scales are ordinary tensors.
    let (_, header) = safetensors::SafeTensors::read_metadata(&int8).unwrap();
    let kernel = header.info(&lstm_kernel_name(0)).unwrap();
    assert_eq!(kernel.dtype, safetensors::Dtype::I8);
    assert!(header.info(&format!("{}.scale", lstm_kernel_name(0))).is_some());
}

#[test]
fn int8_without_its_scales_is_refused() {
    let bytes = to_bytes(&sample_bundle(hparams(&[8])), Precision::Int8);
    // One matrix's scales renamed away; the name still sorts where it did,
    // so the checksum holds and only the pairing is wrong.
    let (header_len, _) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let json = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let renamed = json.replacen(&format!("\"{DENSE_WEIGHTS}.scale\""), &format!("\"{DENSE_WEIGHTS}.scalf\""), 1);
    assert_ne!(renamed, json);
    let mut damaged = (renamed.len() as u64).to_le_bytes().to_vec();
    damaged.extend_from_slice(renamed.as_bytes());
    damaged.extend_from_slice(&bytes[8 + header_len..]);
    let message = from_bytes(&damaged).unwrap_err().to_string();
    assert!(message.contains(&format!("int8 tensor {DENSE_WEIGHTS} has no {DENSE_WEIGHTS}.scale")), "{message}");
}

#[test]
fn f16_round_trip_keeps_half_precision_in_half_the_size() {
    let original = sample_bundle(HParams::default());
    let full = to_bytes(&original, Precision::F32);
    let half = to_bytes(&original, Precision::F16);
    let ratio = half.len() as f64 / full.len() as f64;
    assert!((0.49..0.51).contains(&ratio), "f16 is {ratio} of f32");

    let loaded = from_bytes(&half).unwrap();
    assert_eq!(loaded.metadata, original.metadata);
    for tensor in original.weights().tensors() {
        let back = loaded.tensor(&tensor.name).unwrap();
        assert_eq!(back.shape, tensor.shape);
        for (&x, &y) in tensor.data.iter().zip(&back.data) {
            let normal_f16 = x.abs() >= 2f32.powi(-14);
            let error = if normal_f16 { ((y - x) / x).abs() } else { (y - x).abs() / 2f32.powi(-14) };
            assert!(error <= 2f32.powi(-11), "{}: {x} came back as {y}", tensor.name);
        }
    }
}

#[test]
fn a_diverged_runs_nan_metric_still_loads() {
    let mut original = small_bundle();
    let provenance = original.metadata.provenance.as_mut().unwrap();
    provenance.eval_metrics.insert("loss".into(), f64::NAN);
    let loaded = from_bytes(&to_bytes(&original, Precision::F32)).unwrap();
    assert!(loaded.metadata.provenance.unwrap().eval_metrics["loss"].is_nan());
}

#[test]
fn a_bundle_without_provenance_round_trips() {
    let mut original = small_bundle();
    original.metadata.provenance = None;
    assert!(from_bytes(&to_bytes(&original, Precision::F32)).unwrap() == original);
}

#[test]
fn foreign_files_are_not_bundles() {
    let midi = b"MThd\0\0\0\x06\0\x01\0\x01\x01\xe0MTrk\0\0\0\x04\0\xff\x2f\0";
    assert_eq!(refusal(b""), "not a polyphony bundle: the file is empty");
    assert_eq!(refusal(midi), "not a polyphony bundle: it is a MIDI file");
    assert_eq!(refusal(b"{\"hello\": 1}\n"), "not a polyphony bundle: it is not a safetensors file");
    let mut rng = Rng(42);
    for len in [1, 7, 8, 9, 64, 1000, 100_000] {
        for _ in 0..20 {
            let message = refusal(&rng.bytes(len));
            assert!(message.starts_with("not a polyphony bundle: "), "{len} random bytes: {message}");
        }
    }
}

#[test]
fn a_plain_safetensors_file_is_not_a_bundle() {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &data).unwrap();
    let plain = safetensors::serialize([("weight", view.clone())], None).unwrap();
    assert_eq!(refusal(&plain), "not a polyphony bundle: a safetensors file without polyphony metadata");

    let other = [("generator".to_string(), "someone-else".to_string())].into_iter().collect();
    let foreign = safetensors::serialize([("weight", view)], Some(other)).unwrap();
    assert_eq!(refusal(&foreign), "not a polyphony bundle: it was made by \"someone-else\"");
}

#[test]
fn a_truncated_bundle_is_refused_wherever_it_is_cut() {
    let bytes = to_bytes(&small_bundle(), Precision::F32);
    let start = data_start(&bytes);
    let cuts = (0..start + 64).chain((start..bytes.len()).step_by(97)).chain([bytes.len() - 1]);
    for cut in cuts {
        let message = refusal(&bytes[..cut]);
        let expected = if cut <= 8 { "not a polyphony bundle: " } else { "damaged bundle: " };
        assert!(message.starts_with(expected), "cut at {cut}: {message}");
    }
    assert!(refusal(&bytes[..start + 100]).contains("cut short"));
}

#[test]
fn a_flipped_bit_in_the_weights_fails_the_checksum() {
    let bytes = to_bytes(&small_bundle(), Precision::F16);
    let start = data_start(&bytes);
    for position in [start, start + 1, (start + bytes.len()) / 2, bytes.len() - 1] {
        for bit in [0, 7] {
            let mut flipped = bytes.clone();
            flipped[position] ^= 1 << bit;
            let message = refusal(&flipped);
            assert!(message.starts_with("damaged bundle: checksum mismatch"), "{position}: {message}");
        }
    }
}

#[test]
fn a_corrupt_header_is_damaged() {
    let bytes = to_bytes(&small_bundle(), Precision::F32);
    let broken_json = edit_header(&bytes, "\"dtype\":", "\"dtype\";");
    assert!(refusal(&broken_json).starts_with("damaged bundle: unreadable header"));

    // A shape that no longer matches the tensor's byte length.
    let wrong_length = edit_header(&bytes, "\"shape\":[259]", "\"shape\":[258]");
    assert!(refusal(&wrong_length).starts_with("damaged bundle: "));

    let mut extended = bytes.clone();
    extended.extend_from_slice(&[0; 16]);
    assert!(refusal(&extended).starts_with("damaged bundle: "));

    let no_checksum = edit_header(&bytes, "\"checksum\"", "\"checksux\"");
    assert_eq!(refusal(&no_checksum), "damaged bundle: its metadata has no \"checksum\"");

    let bad_hparams = edit_header(&bytes, "rnn_layer_sizes", "rnn_layer_sizez");
    assert!(refusal(&bad_hparams).starts_with("damaged bundle: metadata \"hparams\" is unreadable"));
}

#[test]
fn no_byte_of_the_header_can_make_loading_panic() {
    let bytes = to_bytes(&small_bundle(), Precision::F16);
    for position in 0..data_start(&bytes) {
        for value in [b'0', b'9', b'"', b'{', b'}', b'[', b',', b' ', 0xff, 0] {
            let mut mutated = bytes.clone();
            mutated[position] = value;
            let _ = from_bytes(&mutated);
        }
    }
}

#[test]
fn a_newer_format_asks_for_an_upgrade() {
    let mut future = small_bundle();
    future.metadata.format_version = 2;
    let expected = "made by a newer polyphony (bundle format 2, this build reads up to 1): upgrade polyphony to use it";
    assert_eq!(refusal(&to_bytes(&future, Precision::F32)), expected);

    let edited = edit_header(&to_bytes(&small_bundle(), Precision::F32), "\"format_version\":\"1\"", "\"format_version\":\"2\"");
    assert!(matches!(from_bytes(&edited), Err(BundleError::NewerFormat { found: 2 })));
}

#[test]
fn tensors_that_do_not_fit_the_hparams_are_named() {
    let (metadata, mut missing) = small_bundle().into_parts();
    missing.retain(|t| t.name != DENSE_BIASES);
    assert_eq!(
        refusal(&write_parts(&metadata, &missing, Precision::F32)),
        "bundle tensors do not fit its hparams: missing tensor fully_connected/biases [259]"
    );

    let (metadata, mut reshaped) = small_bundle().into_parts();
    let kernel = reshaped.iter_mut().find(|t| t.name == lstm_kernel_name(1)).unwrap();
    kernel.shape = vec![16, 6];
    kernel.data.truncate(96);
    assert_eq!(
        refusal(&write_parts(&metadata, &reshaped, Precision::F32)),
        "bundle tensors do not fit its hparams: tensor rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel has shape [16, 6], expected [12, 16]"
    );

    let mut other_hparams = small_bundle();
    other_hparams.metadata.hparams = hparams(&[8]);
    let message = refusal(&to_bytes(&other_hparams, Precision::F32));
    assert!(message.contains("unexpected tensor rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel"), "{message}");
    assert!(message.contains("tensor fully_connected/weights has shape [4, 259], expected [8, 259]"), "{message}");
}

/// Hparams no network can have (which once reached a division by zero or a
/// shape out of bounds) and weights that are not numbers (which once made
/// generation loop forever) are refused with a matching checksum too.
#[test]
fn unusable_hparams_and_non_finite_weights_are_refused() {
    for (edit, needle) in [
        ((|h: &mut HParams| h.batch_size = 0) as fn(&mut HParams), "unusable bundle: hparam batch_size must be at least 1, got 0"),
        (|h| h.rnn_layer_sizes = vec![0], "unusable bundle: hparam rnn_layer_sizes must be a list of positive sizes"),
        (|h| h.rnn_layer_sizes.clear(), "unusable bundle: hparam rnn_layer_sizes must be a list of at least one layer"),
        (|h| h.dropout_keep_prob = 2.0, "dropout_keep_prob must be in (0, 1]"),
    ] {
        let mut bundle = small_bundle();
        edit(&mut bundle.metadata.hparams);
        let message = refusal(&to_bytes(&bundle, Precision::F32));
        assert!(message.contains(needle), "{message:?} should say {needle:?}");
    }
    let mut steps = small_bundle();
    steps.metadata.steps_per_quarter = 0;
    assert!(refusal(&to_bytes(&steps, Precision::F32)).contains("0 steps per quarter note"));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (metadata, mut tensors) = small_bundle().into_parts();
        tensors[1].data[0] = bad;
        assert_eq!(
            refusal(&write_parts(&metadata, &tensors, Precision::F32)),
            format!("damaged bundle: tensor {} holds values that are not numbers (NaN or infinite)", tensors[1].name)
        );
        assert!(Bundle::new(metadata, tensors).is_err());
    }
}

#[test]
fn another_event_encoding_is_unsupported() {
    let mut other = small_bundle();
    other.metadata.encoding = "performance-388".into();
    assert_eq!(
        refusal(&to_bytes(&other, Precision::F32)),
        "unsupported bundle: it uses the event encoding \"performance-388\"; this build knows \"polyphony-259\""
    );
}

#[test]
fn save_is_atomic_and_load_names_the_file() {
    let dir = Scratch::new("bundle-save");
    let path = dir.join("chorales.polyphony");
    let original = small_bundle();
    bundle::save(&path, &original, Precision::F32).unwrap();
    bundle::save(&path, &original, Precision::F32).unwrap();
    assert!(bundle::load(&path).unwrap() == original, "save then load changed the bundle");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["chorales.polyphony"], "no temporary file may be left behind");

    let missing = dir.join("missing.polyphony");
    assert!(bundle::load(&missing).unwrap_err().to_string().starts_with(&format!("{}: ", missing.display())));
    let midi = dir.join("song.mid");
    std::fs::write(&midi, b"MThd\0\0\0\x06").unwrap();
    assert_eq!(bundle::load(&midi).unwrap_err().to_string(), format!("{}: not a polyphony bundle: it is a MIDI file", midi.display()));

    let unwritable = dir.join("no-such-dir").join("x.polyphony");
    assert!(bundle::save(&unwritable, &original, Precision::F32).unwrap_err().to_string().contains("x.polyphony"));
}

/// Python reads the file as any safetensors file: with the stdlib's own
/// parse and zlib's CRC-32 always, and with the `safetensors` package when
/// it happens to be installed. Skipped without python3.
#[test]
fn python_reads_the_bundle() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = Scratch::new("bundle-python");
    let path = dir.join("model.polyphony");
    bundle::save(&path, &small_bundle(), Precision::F16).unwrap();
    let script = r#"
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__")
data = raw[8 + n:]
assert meta["generator"] == "polyphony", meta
assert json.loads(meta["hparams"])["rnn_layer_sizes"] == [8, 4]
names = sorted(header)
assert b"".join(data[slice(*header[k]["data_offsets"])] for k in names) == data
assert meta["checksum"] == "crc32:%08x" % zlib.crc32(data), meta["checksum"]
assert header["fully_connected/biases"] == {"dtype": "F16", "shape": [259], "data_offsets": header["fully_connected/biases"]["data_offsets"]}
try:
    from safetensors import safe_open
except ImportError:
    sys.exit(0)
with safe_open(sys.argv[1], framework="numpy") as f:
    assert f.metadata() == meta
    assert sorted(f.keys()) == names
    assert f.get_tensor("fully_connected/weights").shape == (4, 259)
print("safetensors")
"#;
    let run = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    eprintln!("python read it{}", if run.stdout.starts_with(b"safetensors") { " with safetensors" } else { "" });
}

/// Share links name the model they were made with: the same bundle read
/// back has the same identity; other weights or other metadata do not.
#[test]
fn a_bundles_identity_follows_its_weights_and_metadata() {
    let original = sample_bundle(hparams(&[8]));
    let id = original.identity();
    assert_eq!(from_bytes(&to_bytes(&original, Precision::F32)).unwrap().identity(), id);
    assert_ne!(from_bytes(&to_bytes(&original, Precision::Int8)).unwrap().identity(), id, "int8 weights differ");
    let mut renamed = original.clone();
    renamed.metadata.description.push('!');
    assert_ne!(renamed.identity(), id);
}
