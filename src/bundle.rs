//! The model bundle: ONE file holding the trained weights and everything
//! needed to use them (hparams, event encoding, steps per quarter,
//! description, training provenance and metrics).
//!
//! The file is a [safetensors](https://github.com/huggingface/safetensors)
//! file, so Python's `safetensors` (or 30 lines of anything) can read it too.
//! Everything that is not a tensor lives in the `__metadata__` string map,
//! one key per field, nested values as JSON text:
//!
//! | key | value |
//! | --- | --- |
//! | `format_version` | [`BUNDLE_FORMAT_VERSION`] when written, e.g. `1` |
//! | `generator` | `polyphony` |
//! | `description` | free text |
//! | `created` | the date given by the writer |
//! | `hparams` | [`HParams`] as JSON |
//! | `encoding` | [`ENCODING`] |
//! | `steps_per_quarter` | `4` |
//! | `provenance` | [`Provenance`] as JSON; absent for an untrained or imported model |
//! | `origin` | [`Origin`] as JSON, for a model imported from the original's files; absent otherwise |
//! | `voices` | voices of the training music (e.g. `4`), the default limit of voices a step may have; absent when unknown |
//! | `library_version` | the polyphony version that wrote it |
//! | `checksum` | `crc32:` and 8 hex digits: CRC-32 of every tensor's stored bytes, tensors in name order |
//!
//! Weights are stored as F32, F16 or, for the page's download, int8: a
//! matrix as `I8` values with a companion `F32` tensor `<name>.scale` of
//! one scale per row (value = int8 × scale[row], the row's largest
//! magnitude mapping to ±127); vectors (biases) stay F16 then. Reading
//! gives f32 whatever the file holds.
//!
//! Tensors keep the original TensorFlow names and layouts (see
//! [`expected_shapes`]) so that weights imported from a Magenta `.mag`
//! checkpoint and our own are interchangeable. This module knows nothing of
//! burn: the model converts its parameters to and from [`NamedTensor`]s.
//!
//! Loading refuses, with a message a person can act on, a file that is not a
//! bundle, a damaged one, one from a newer format, and one whose tensors do
//! not fit its hparams; it never panics on arbitrary bytes.

use std::collections::BTreeMap;

use half::f16;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::encoding::{NUM_CLASSES, STEPS_PER_QUARTER};
use crate::hparams::HParams;

/// The newest bundle layout this build writes and reads. Raise it when a
/// change would make older builds misread a bundle (not for added keys, which
/// older builds ignore).
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// The generator id, as in the original's GeneratorBundle: a bundle without
/// it is some other safetensors file.
pub const GENERATOR: &str = "polyphony";

/// The event encoding the weights were trained on: 259 classes, START=0,
/// END=1, STEP_END=2, NEW_NOTE(p)=3+p, CONTINUED_NOTE(p)=131+p for MIDI
/// pitches p in 0..=127 (see [`crate::encoding`]). A bundle trained on any
/// other vocabulary would generate nonsense, so loading checks it.
pub const ENCODING: &str = "polyphony-259";

/// The dense (logits) layer's weights, shape `[last hidden size, 259]`.
pub const DENSE_WEIGHTS: &str = "fully_connected/weights";
/// The dense (logits) layer's biases, shape `[259]`.
pub const DENSE_BIASES: &str = "fully_connected/biases";

/// Safetensors' own limit on the header; a larger length field means the
/// file is not safetensors at all.
const MAX_HEADER_LEN: u64 = 100_000_000;

/// The `__metadata__` keys, named once so writer and reader cannot disagree.
mod keys {
    pub const FORMAT_VERSION: &str = "format_version";
    pub const GENERATOR: &str = "generator";
    pub const DESCRIPTION: &str = "description";
    pub const CREATED: &str = "created";
    pub const HPARAMS: &str = "hparams";
    pub const ENCODING: &str = "encoding";
    pub const STEPS_PER_QUARTER: &str = "steps_per_quarter";
    pub const PROVENANCE: &str = "provenance";
    pub const ORIGIN: &str = "origin";
    pub const VOICES: &str = "voices";
    pub const LIBRARY_VERSION: &str = "library_version";
    pub const CHECKSUM: &str = "checksum";
}

/// LSTM layer `layer`'s kernel, `[input + hidden, 4 * hidden]`, rows input
/// then hidden, columns the i, j, f, o gate blocks (TF BasicLSTMCell).
pub fn lstm_kernel_name(layer: usize) -> String {
    format!("rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell/kernel")
}

/// LSTM layer `layer`'s bias, `[4 * hidden]` (without the forget bias of
/// 1.0, which the cell adds at run time).
pub fn lstm_bias_name(layer: usize) -> String {
    format!("rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell/bias")
}

/// Every tensor a model with these hparams has, with its shape, in network
/// order. Saturating arithmetic: the hparams may come from a hostile file.
pub fn expected_shapes(hparams: &HParams) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Vec::new();
    let mut input = hparams.input_width();
    for (layer, &hidden) in hparams.rnn_layer_sizes.iter().enumerate() {
        let gates = hidden.saturating_mul(4);
        shapes.push((lstm_kernel_name(layer), vec![input.saturating_add(hidden), gates]));
        shapes.push((lstm_bias_name(layer), vec![gates]));
        input = hidden;
    }
    shapes.push((DENSE_WEIGHTS.to_string(), vec![input, NUM_CLASSES]));
    shapes.push((DENSE_BIASES.to_string(), vec![NUM_CLASSES]));
    shapes
}

/// Where trained weights came from and how good they were, so a bundle
/// found later still says what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The training data's file name.
    pub dataset: String,
    pub dataset_description: String,
    pub training_steps: u64,
    pub wall_time_seconds: f64,
    /// Final evaluation metrics by name: loss, perplexity, accuracy,
    /// event_accuracy, no_event_accuracy, ...
    #[serde(deserialize_with = "nan_for_null")]
    pub eval_metrics: BTreeMap<String, f64>,
    /// The bundle the training run started from, if it was warm-started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<String>,
}

/// Where an imported model came from (see [`crate::magenta`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// "Magenta .mag (TensorFlow V1 checkpoint)" or "TensorFlow V2 checkpoint".
    pub format: String,
    /// The file or checkpoint prefix it was read from.
    pub source: String,
    /// The original's generator id and description.
    pub generator_id: String,
    pub generator_description: String,
    /// The original bundle's own description.
    pub description: String,
}

/// Everything in a bundle besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleMetadata {
    pub format_version: u32,
    pub generator: String,
    pub description: String,
    /// When the bundle was made, as the writer chose to say it (the library
    /// reads no clock, so that it behaves the same in the browser).
    pub created: String,
    pub hparams: HParams,
    pub encoding: String,
    pub steps_per_quarter: u32,
    pub provenance: Option<Provenance>,
    /// For an imported model: the original file it came from.
    pub origin: Option<Origin>,
    /// How many voices the music it was trained on has (4 for chorales):
    /// generation writes at most as many by default.
    pub voices: Option<usize>,
    /// The polyphony version that wrote the bundle.
    pub library_version: String,
}

/// One weight tensor, row-major, always f32 in memory whatever the file's
/// precision.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A model's weights, checked against its hparams: exactly the tensors of
/// [`expected_shapes`], in that (network) order, every value finite. The
/// burn model and the fused step are both built from it, so a bundle is
/// checked once, when it is made or read.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    tensors: Vec<NamedTensor>,
    layer_sizes: Vec<usize>,
}

impl Weights {
    /// Checks `tensors` against `hparams` (themselves checked) and puts
    /// them in network order. Every problem is named, so one message tells
    /// the whole story.
    pub fn new(hparams: &HParams, mut tensors: Vec<NamedTensor>) -> Result<Weights, BundleError> {
        hparams.validate().map_err(BundleError::HParams)?;
        let expected = expected_shapes(hparams);
        let find = |tensors: &[NamedTensor], name: &str| tensors.iter().position(|t| t.name == name);
        let mut problems: Vec<String> = expected
            .iter()
            .filter_map(|(name, shape)| match find(&tensors, name).map(|i| &tensors[i]) {
                None => Some(format!("missing tensor {name} {shape:?}")),
                Some(t) if t.shape != *shape => Some(format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape)),
                Some(t) if t.data.len() != t.shape.iter().product::<usize>() => {
                    Some(format!("tensor {name} holds {} values for shape {shape:?}", t.data.len()))
                }
                Some(_) => None,
            })
            .collect();
        let unexpected = tensors.iter().filter(|t| !expected.iter().any(|(name, _)| *name == t.name));
        problems.extend(unexpected.map(|t| format!("unexpected tensor {}", t.name)));
        if !problems.is_empty() {
            return Err(BundleError::Mismatch(problems.join("; ")));
        }
        if let Some(t) = tensors.iter().find(|t| t.data.iter().any(|v| !v.is_finite())) {
            return Err(BundleError::Damaged(format!("tensor {} holds values that are not numbers (NaN or infinite)", t.name)));
        }
        tensors.sort_by_key(|t| expected.iter().position(|(name, _)| *name == t.name));
        Ok(Weights { tensors, layer_sizes: hparams.rnn_layer_sizes.clone() })
    }

    /// The tensors in network order (see [`expected_shapes`]).
    pub fn tensors(&self) -> &[NamedTensor] {
        &self.tensors
    }

    /// The LSTM layers' sizes.
    pub fn layer_sizes(&self) -> &[usize] {
        &self.layer_sizes
    }

    pub fn into_tensors(self) -> Vec<NamedTensor> {
        self.tensors
    }
}

/// A model's weights and metadata, independent of any tensor library,
/// checked when made ([`Bundle::new`]) or read ([`from_bytes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    pub metadata: BundleMetadata,
    weights: Weights,
}

/// How tensors are stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Exact.
    F32,
    /// Half the size, for the browser download; about 3 significant digits,
    /// plenty for sampling. Magnitudes above 65504 would become infinite.
    F16,
    /// A quarter of the size: matrices as int8 with a scale per row, vectors
    /// as F16 (see the module documentation). Worth it where the eval loss
    /// stays within 0.5% of f32's (`./build.sh bundle-bach` checks).
    Int8,
}

/// The suffix of an int8 matrix's companion tensor of row scales.
const SCALE_SUFFIX: &str = ".scale";

/// Why a bundle could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a polyphony bundle: {0}")]
    NotABundle(String),
    #[error("damaged bundle: {0}")]
    Damaged(String),
    #[error(
        "made by a newer polyphony (bundle format {found}, this build reads up to {BUNDLE_FORMAT_VERSION}): upgrade polyphony to use it"
    )]
    NewerFormat { found: u32 },
    #[error("unsupported bundle: {0}")]
    Unsupported(String),
    #[error("bundle tensors do not fit its hparams: {0}")]
    Mismatch(String),
    #[error("unusable bundle: {0}")]
    HParams(crate::hparams::HParamsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path}: {source}")]
    InFile { path: String, source: Box<BundleError> },
}

impl BundleMetadata {
    /// Metadata for a bundle written by this build, without provenance.
    pub fn new(description: impl Into<String>, hparams: HParams, created: impl Into<String>) -> Self {
        BundleMetadata {
            format_version: BUNDLE_FORMAT_VERSION,
            generator: GENERATOR.to_string(),
            description: description.into(),
            created: created.into(),
            hparams,
            encoding: ENCODING.to_string(),
            steps_per_quarter: STEPS_PER_QUARTER,
            provenance: None,
            origin: None,
            voices: None,
            library_version: crate::VERSION.to_string(),
        }
    }

    /// The `__metadata__` map (without the checksum, which covers tensors).
    fn to_map(&self) -> BTreeMap<&'static str, String> {
        let mut map = BTreeMap::from([
            (keys::FORMAT_VERSION, self.format_version.to_string()),
            (keys::GENERATOR, self.generator.clone()),
            (keys::DESCRIPTION, self.description.clone()),
            (keys::CREATED, self.created.clone()),
            (keys::HPARAMS, to_json(&self.hparams)),
            (keys::ENCODING, self.encoding.clone()),
            (keys::STEPS_PER_QUARTER, self.steps_per_quarter.to_string()),
            (keys::LIBRARY_VERSION, self.library_version.clone()),
        ]);
        if let Some(provenance) = &self.provenance {
            map.insert(keys::PROVENANCE, to_json(provenance));
        }
        if let Some(origin) = &self.origin {
            map.insert(keys::ORIGIN, to_json(origin));
        }
        if let Some(voices) = self.voices {
            map.insert(keys::VOICES, voices.to_string());
        }
        map
    }

    /// Reads the fields back; numbers are valid JSON, so one parser serves.
    fn from_map(map: &BTreeMap<&str, &str>) -> Result<Self, BundleError> {
        Ok(BundleMetadata {
            format_version: json_field(map, keys::FORMAT_VERSION)?,
            generator: text_field(map, keys::GENERATOR)?.to_string(),
            description: text_field(map, keys::DESCRIPTION)?.to_string(),
            created: text_field(map, keys::CREATED)?.to_string(),
            hparams: json_field(map, keys::HPARAMS)?,
            encoding: text_field(map, keys::ENCODING)?.to_string(),
            steps_per_quarter: json_field(map, keys::STEPS_PER_QUARTER)?,
            provenance: map.contains_key(keys::PROVENANCE).then(|| json_field(map, keys::PROVENANCE)).transpose()?,
            origin: map.contains_key(keys::ORIGIN).then(|| json_field(map, keys::ORIGIN)).transpose()?,
            voices: map.contains_key(keys::VOICES).then(|| json_field(map, keys::VOICES)).transpose()?,
            library_version: text_field(map, keys::LIBRARY_VERSION)?.to_string(),
        })
    }
}

impl Bundle {
    /// Checks that the tensors can drive this build's model: our encoding
    /// and step, hparams that [`HParams::validate`] accepts, and exactly the
    /// tensors they call for ([`Weights::new`]).
    pub fn new(metadata: BundleMetadata, tensors: Vec<NamedTensor>) -> Result<Bundle, BundleError> {
        if metadata.encoding != ENCODING {
            return Err(BundleError::Unsupported(format!(
                "it uses the event encoding {:?}; this build knows {ENCODING:?}",
                metadata.encoding
            )));
        }
        if metadata.steps_per_quarter != STEPS_PER_QUARTER {
            return Err(BundleError::Unsupported(format!(
                "it was trained at {} steps per quarter note; this build's encoding has {STEPS_PER_QUARTER}",
                metadata.steps_per_quarter
            )));
        }
        let weights = Weights::new(&metadata.hparams, tensors)?;
        Ok(Bundle { metadata, weights })
    }

    /// A short name for exactly this model, for share links: CRC-32 over
    /// its metadata (as the file stores it, without the checksum of the
    /// stored bytes) and its weights as f32, so the same model stored as
    /// f16 and as int8 (different weights once read) are told apart.
    pub fn identity(&self) -> String {
        let metadata = self.metadata.to_map();
        let text = metadata.iter().flat_map(|(k, v)| [k.as_bytes(), &[0], v.as_bytes(), &[0]]);
        let weights: Vec<Vec<u8>> = self.weights.tensors().iter().map(|t| f32_bytes(&t.data)).collect();
        checksum(text.chain(weights.iter().map(Vec::as_slice)))
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn into_parts(self) -> (BundleMetadata, Vec<NamedTensor>) {
        (self.metadata, self.weights.tensors)
    }

    /// The tensor called `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.weights.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes a bundle as safetensors bytes. Tensors are laid out in name order
/// and the JSON keys are sorted, so the same bundle always gives the same
/// bytes.
pub fn to_bytes(bundle: &Bundle, precision: Precision) -> Vec<u8> {
    write_parts(&bundle.metadata, bundle.weights.tensors(), precision)
}

/// [`to_bytes`] of any metadata and tensors, unchecked (so that tests can
/// write bundles this build refuses to read).
///
/// # Panics
/// If a tensor's data length is not the product of its shape, or two tensors
/// share a name: the caller built an impossible file.
pub fn write_parts(metadata: &BundleMetadata, tensors: &[NamedTensor], precision: Precision) -> Vec<u8> {
    let mut stored: Vec<Stored> = tensors.iter().flat_map(|t| encode_tensor(t, precision)).collect();
    stored.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(stored.windows(2).all(|w| w[0].name != w[1].name), "two bundle tensors share a name");

    let mut metadata = metadata.to_map();
    metadata.insert(keys::CHECKSUM, checksum(stored.iter().map(|t| t.bytes.as_slice())));
    let header = header_json(&metadata, &stored);

    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    stored.iter().for_each(|t| bytes.extend_from_slice(&t.bytes));
    bytes
}

/// Reads a bundle from safetensors bytes, as f32 whatever the stored
/// precision, after checking everything [`BundleError`] lists.
pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, BundleError> {
    check_safetensors_prefix(bytes)?;
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(structure_error)?;
    let map: BTreeMap<&str, &str> = match header.metadata() {
        Some(map) => map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        None => BTreeMap::new(),
    };
    check_generator(&map)?;
    check_format_version(&map)?;
    let tensors = read_tensors(&header, &bytes[8 + header_len..], text_field(&map, keys::CHECKSUM)?)?;
    Bundle::new(BundleMetadata::from_map(&map)?, tensors)
}

/// Writes the bundle to `path` atomically ([`crate::files::write_atomic`]),
/// so a crash or a full disk never leaves a half-written bundle where a
/// good one was.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: impl AsRef<std::path::Path>, bundle: &Bundle, precision: Precision) -> std::io::Result<()> {
    crate::files::write_atomic(path.as_ref(), &to_bytes(bundle, precision))
}

/// Reads the bundle at `path`; errors start with the path.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Bundle, BundleError> {
    let path = path.as_ref();
    let in_file = |source| BundleError::InFile { path: path.display().to_string(), source: Box::new(source) };
    let bytes = std::fs::read(path).map_err(|e| in_file(BundleError::Io(e)))?;
    from_bytes(&bytes).map_err(in_file)
}

/// One tensor as the file stores it.
struct Stored {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The stored tensors of `tensor` at `precision`: one, or for an int8
/// matrix two (the values and their row scales).
fn encode_tensor(tensor: &NamedTensor, precision: Precision) -> Vec<Stored> {
    let elements = tensor.shape.iter().product::<usize>();
    assert_eq!(tensor.data.len(), elements, "tensor {} has {} values for shape {:?}", tensor.name, tensor.data.len(), tensor.shape);
    let stored = |dtype, bytes| Stored { name: tensor.name.clone(), dtype, shape: tensor.shape.clone(), bytes };
    let f16_bytes = || tensor.data.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect();
    match precision {
        Precision::F32 => vec![stored("F32", f32_bytes(&tensor.data))],
        Precision::F16 => vec![stored("F16", f16_bytes())],
        Precision::Int8 if tensor.shape.len() == 2 && elements > 0 => {
            let (values, scales) = quantize_rows(&tensor.data, tensor.shape[1]);
            let scale_bytes = scales.iter().flat_map(|x| x.to_le_bytes()).collect();
            vec![
                stored("I8", values.iter().map(|&v| v as u8).collect()),
                Stored { name: format!("{}{SCALE_SUFFIX}", tensor.name), dtype: "F32", shape: vec![tensor.shape[0]], bytes: scale_bytes },
            ]
        }
        Precision::Int8 => vec![stored("F16", f16_bytes())],
    }
}

/// Row-wise symmetric int8: each row's largest magnitude maps to ±127.
fn quantize_rows(data: &[f32], columns: usize) -> (Vec<i8>, Vec<f32>) {
    let mut values = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(data.len() / columns);
    for row in data.chunks_exact(columns) {
        let max = row.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        values.extend(row.iter().map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (values, scales)
}

/// The safetensors header: `__metadata__` plus one entry per tensor, padded
/// with spaces to a multiple of 8 bytes so the data that follows is aligned.
fn header_json(metadata: &BTreeMap<&str, String>, stored: &[Stored]) -> String {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0;
    for tensor in stored {
        let entry = serde_json::json!({"dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.bytes.len()]});
        header.insert(tensor.name.clone(), entry);
        offset += tensor.bytes.len();
    }
    let mut text = serde_json::Value::Object(header).to_string();
    text.extend(std::iter::repeat_n(' ', text.len().next_multiple_of(8) - text.len()));
    text
}

/// `values` as little-endian bytes, four a value. (A byte iterator's
/// `collect` was 80 ms of the page's start for the 1.6 M weights.)
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 * values.len());
    for x in values {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// CRC-32 (as zlib's) over the pieces in order, written `crc32:xxxxxxxx`
/// (bundles and training checkpoints).
pub(crate) fn checksum<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> String {
    let mut hasher = crc32fast::Hasher::new();
    pieces.for_each(|piece| hasher.update(piece));
    format!("crc32:{:08x}", hasher.finalize())
}

/// Tells a foreign file from a damaged bundle before safetensors' parser
/// does: safetensors starts with an 8-byte little-endian header length and
/// then a JSON object.
fn check_safetensors_prefix(bytes: &[u8]) -> Result<(), BundleError> {
    let not = |why: &str| Err(BundleError::NotABundle(why.to_string()));
    if bytes.is_empty() {
        return not("the file is empty");
    }
    if bytes.starts_with(b"MThd") {
        return not("it is a MIDI file");
    }
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match (header_len, bytes.get(8)) {
        (Some(len), Some(&b'{')) if len <= MAX_HEADER_LEN => Ok(()),
        _ => not("it is not a safetensors file"),
    }
}

/// Describes a structural fault of a file that starts like safetensors.
fn structure_error(error: SafeTensorError) -> BundleError {
    BundleError::Damaged(match error {
        SafeTensorError::InvalidHeaderLength => "it is cut short inside its header".to_string(),
        SafeTensorError::MetadataIncompleteBuffer => "its tensor data does not fill the file exactly (cut short?)".to_string(),
        other => format!("unreadable header ({other})"),
    })
}

fn check_generator(map: &BTreeMap<&str, &str>) -> Result<(), BundleError> {
    match map.get(keys::GENERATOR) {
        Some(&GENERATOR) => Ok(()),
        Some(other) => Err(BundleError::NotABundle(format!("it was made by {other:?}"))),
        None => Err(BundleError::NotABundle("a safetensors file without polyphony metadata".to_string())),
    }
}

/// Runs before anything else is read: a newer format may change the rest.
fn check_format_version(map: &BTreeMap<&str, &str>) -> Result<(), BundleError> {
    match json_field::<u32>(map, keys::FORMAT_VERSION)? {
        0 => Err(BundleError::Damaged("format_version 0 does not exist".to_string())),
        found if found > BUNDLE_FORMAT_VERSION => Err(BundleError::NewerFormat { found }),
        _ => Ok(()),
    }
}

/// Checks the checksum over the stored bytes, then converts to f32 (an
/// int8 matrix times its row scales). The header was validated by
/// safetensors, so every offset lies inside `data`.
fn read_tensors(header: &Metadata, data: &[u8], expected_checksum: &str) -> Result<Vec<NamedTensor>, BundleError> {
    let mut infos: Vec<_> = header.tensors().into_iter().collect();
    infos.sort_by(|a, b| a.0.cmp(&b.0));
    let stored = |(start, end): (usize, usize)| &data[start..end];
    if checksum(infos.iter().map(|(_, info)| stored(info.data_offsets))) != expected_checksum {
        return Err(BundleError::Damaged("checksum mismatch: the weights changed after the bundle was written".to_string()));
    }
    // The row scales first, so that an int8 matrix is read in one pass.
    let (scale_infos, infos): (Vec<_>, Vec<_>) = infos.into_iter().partition(|(name, _)| name.ends_with(SCALE_SUFFIX));
    let mut scales: BTreeMap<String, NamedTensor> = BTreeMap::new();
    for (name, info) in scale_infos {
        let tensor = decode_tensor(name, info.dtype, info.shape.clone(), stored(info.data_offsets))?;
        let matrix = tensor.name.strip_suffix(SCALE_SUFFIX).expect("a scale's name").to_string();
        scales.insert(matrix, tensor);
    }
    let mut out = Vec::with_capacity(infos.len());
    for (name, info) in infos {
        let bytes = stored(info.data_offsets);
        out.push(match info.dtype {
            Dtype::I8 => {
                let row_scales = scales.remove(&name);
                dequantize(name, info.shape.clone(), bytes, row_scales)?
            }
            dtype => decode_tensor(name, dtype, info.shape.clone(), bytes)?,
        });
    }
    if let Some(name) = scales.keys().next() {
        return Err(BundleError::Damaged(format!("tensor {name}{SCALE_SUFFIX} scales no int8 tensor")));
    }
    Ok(out)
}

/// An int8 matrix: its values times its row scales.
fn dequantize(name: String, shape: Vec<usize>, bytes: &[u8], scales: Option<NamedTensor>) -> Result<NamedTensor, BundleError> {
    let scales = scales.ok_or_else(|| BundleError::Damaged(format!("int8 tensor {name} has no {name}{SCALE_SUFFIX}")))?;
    let rows = shape.first().copied().unwrap_or(0);
    if shape.len() != 2 || scales.shape != [rows] || rows == 0 || shape[1] == 0 {
        return Err(BundleError::Damaged(format!("int8 tensor {name} {shape:?} does not fit its scales {:?}", scales.shape)));
    }
    let columns = shape[1];
    let mut data = Vec::with_capacity(bytes.len());
    for (row, &scale) in bytes.chunks_exact(columns).zip(&scales.data) {
        data.extend(row.iter().map(|&b| f32::from(b as i8) * scale));
    }
    Ok(NamedTensor { name, shape, data })
}

fn decode_tensor(name: String, dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> Result<NamedTensor, BundleError> {
    let data = match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        other => {
            return Err(BundleError::Unsupported(format!("tensor {name} is stored as {other:?}; bundles hold F32, F16 or I8")));
        }
    };
    Ok(NamedTensor { name, shape, data })
}

fn text_field<'a>(map: &BTreeMap<&str, &'a str>, key: &str) -> Result<&'a str, BundleError> {
    map.get(key).copied().ok_or_else(|| BundleError::Damaged(format!("its metadata has no {key:?}")))
}

fn json_field<T: DeserializeOwned>(map: &BTreeMap<&str, &str>, key: &str) -> Result<T, BundleError> {
    serde_json::from_str(text_field(map, key)?).map_err(|e| BundleError::Damaged(format!("metadata {key:?} is unreadable ({e})")))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data always serializes to JSON")
}

/// JSON has no NaN, and serde_json writes a diverged run's NaN loss as
/// null: read null back as NaN rather than refuse the whole bundle.
fn nan_for_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(deserializer)?;
    Ok(raw.into_iter().map(|(name, value)| (name, value.unwrap_or(f64::NAN))).collect())
}
