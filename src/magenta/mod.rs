//! Bringing the original's models in: a Magenta `.mag` generator bundle, or
//! a training run's TensorFlow checkpoint, becomes our [`Bundle`].
//!
//! A `.mag` is a `GeneratorBundle` protocol buffer ([`proto`]): generator id
//! and description, one TensorFlow V1 checkpoint (a [`table`] of
//! `SavedTensorSlices`) and a metagraph. A run directory holds V2
//! checkpoints: `PREFIX.index` (a table of `BundleEntryProto`s) and
//! `PREFIX.data-NNNNN-of-NNNNN` (the raw tensors). Both name the variables
//! as our bundles do (`rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel`,
//! rows input then hidden, columns the gate blocks i, j, f, o; the forget
//! bias stays the cell's run-time +1.0), so importing is reading, checking
//! and renaming only where older TensorFlow named them otherwise
//! (`weights`/`biases` for `kernel`/`bias`).
//!
//! A `.mag` keeps no training hparams (Magenta builds its generation graph
//! with batch size 1 and no dropout): the network's shape is read from the
//! tensors' shapes, and the training values are our defaults.

pub mod proto;
pub mod table;

use std::collections::BTreeMap;

use prost::Message;

use crate::bundle::{self, Bundle, BundleError, BundleMetadata, NamedTensor, Origin};
use crate::encoding::NUM_CLASSES;
use crate::hparams::{HParams, HParamsError};
use crate::limits;

/// The generator id of the original's polyphony model.
pub const POLYPHONY_ID: &str = "polyphony";

/// Why a file cannot be imported: one line, naming what was found.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a Magenta .mag bundle: {0}")]
    NotAMag(String),
    #[error(
        "this .mag holds a {id:?} model ({description}), not the polyphony_rnn model this program runs; only polyphony .mag files can be imported"
    )]
    OtherGenerator { id: String, description: String },
    #[error("damaged file: {0}")]
    Damaged(String),
    #[error("unsupported checkpoint: {0}")]
    Unsupported(String),
    #[error("the checkpoint has no {missing}; it holds: {found}")]
    Missing { missing: String, found: String },
    #[error("a layer we cannot map: {0}")]
    Shape(String),
    #[error("{0}")]
    HParams(#[from] HParamsError),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Limit(#[from] limits::LimitError),
    #[error("{0}")]
    Io(String),
}

/// Float variables of a checkpoint by name: shape and row-major values.
pub type Variables = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads a `.mag` file's bytes as our bundle, `created` the date to record.
pub fn import_mag(bytes: &[u8], source: &str, created: &str) -> Result<Bundle, ImportError> {
    let mag = proto::GeneratorBundle::decode(bytes).map_err(|e| ImportError::NotAMag(format!("it does not parse as a GeneratorBundle ({e})")))?;
    let details = mag.generator_details.clone().unwrap_or_default();
    if details.id.is_empty() && mag.checkpoint_file.is_empty() {
        return Err(ImportError::NotAMag("it holds no generator id and no checkpoint".into()));
    }
    if details.id != POLYPHONY_ID {
        return Err(ImportError::OtherGenerator { id: details.id, description: details.description });
    }
    let checkpoint = match mag.checkpoint_file.as_slice() {
        [one] => one,
        [] => return Err(ImportError::NotAMag("it holds no checkpoint".into())),
        more => return Err(ImportError::Unsupported(format!("the bundle holds {} checkpoint files (a sharded checkpoint); one is expected", more.len()))),
    };
    let variables = read_v1_checkpoint(checkpoint)?;
    let origin = Origin {
        format: "Magenta .mag (TensorFlow V1 checkpoint)".into(),
        source: source.into(),
        generator_id: details.id,
        generator_description: details.description,
        description: mag.bundle_details.map(|b| b.description).unwrap_or_default(),
    };
    bundle_from_variables(&variables, None, origin, created)
}

/// The float variables of a TensorFlow V1 checkpoint (one table file of
/// `SavedTensorSlices`), slices put together.
pub fn read_v1_checkpoint(file: &[u8]) -> Result<Variables, ImportError> {
    let entries = table::read(file)?;
    let value = |bytes: &[u8]| proto::SavedTensorSlices::decode(bytes).map_err(|e| ImportError::Damaged(format!("a checkpoint entry does not parse ({e})")));
    let meta = entries
        .iter()
        .find(|(key, _)| key.is_empty())
        .map(|(_, v)| value(v))
        .transpose()?
        .and_then(|s| s.meta)
        .ok_or_else(|| ImportError::Damaged("the checkpoint has no table of contents (the entry under the empty key)".into()))?;
    let mut variables = Variables::new();
    for tensor in meta.tensor.iter().filter(|t| t.r#type == proto::DT_FLOAT) {
        let shape = dims(tensor.shape.as_ref(), &tensor.name)?;
        limits::check("a checkpoint tensor's values", shape.iter().product::<usize>(), limits::MAX_PARAMETERS)?;
        variables.insert(tensor.name.clone(), (shape.clone(), vec![0.0; shape.iter().product()]));
    }
    for (key, bytes) in entries.iter().filter(|(key, _)| !key.is_empty()) {
        let Some(slice) = value(bytes)?.data else { continue };
        let Some((shape, values)) = variables.get_mut(&slice.name) else { continue };
        let data = slice.data.unwrap_or_default();
        let stored = if data.tensor_content.is_empty() { data.float_val } else { little_endian_floats(&data.tensor_content)? };
        let extents = slice.slice.unwrap_or_default().extent;
        place(shape, values, &extents, &stored).map_err(|why| ImportError::Damaged(format!("{} ({} bytes of key): {why}", slice.name, key.len())))?;
    }
    Ok(variables)
}

/// The float variables of a TensorFlow V2 checkpoint: its `.index` file and
/// its data shards, in shard order.
pub fn read_v2_checkpoint(index: &[u8], shards: &[Vec<u8>]) -> Result<Variables, ImportError> {
    let entries = table::read(index)?;
    let header = entries
        .iter()
        .find(|(key, _)| key.is_empty())
        .map(|(_, v)| proto::BundleHeaderProto::decode(*v))
        .transpose()
        .map_err(|e| ImportError::Damaged(format!("the checkpoint index's header does not parse ({e})")))?
        .ok_or_else(|| ImportError::Damaged("the checkpoint index has no header".into()))?;
    if header.endianness != 0 {
        return Err(ImportError::Unsupported("the checkpoint was written big-endian".into()));
    }
    if header.num_shards as usize != shards.len() {
        return Err(ImportError::Damaged(format!("the index names {} data shards, {} were given", header.num_shards, shards.len())));
    }
    let mut variables = Variables::new();
    // Partitioned slices are stored under binary keys; names are UTF-8.
    for (key, bytes) in entries.iter().filter(|(key, _)| !key.is_empty() && key[0] != 0) {
        let Ok(name) = std::str::from_utf8(key) else { continue };
        let entry = proto::BundleEntryProto::decode(*bytes).map_err(|e| ImportError::Damaged(format!("{name}: its index entry does not parse ({e})")))?;
        if entry.dtype != proto::DT_FLOAT {
            continue;
        }
        if !entry.slices.is_empty() {
            return Err(ImportError::Unsupported(format!("{name} is stored in partitions")));
        }
        let shape = dims(entry.shape.as_ref(), name)?;
        let shard = shards.get(entry.shard_id as usize).ok_or_else(|| ImportError::Damaged(format!("{name} is in shard {}, which is missing", entry.shard_id)))?;
        let (offset, size) = (usize::try_from(entry.offset).ok(), usize::try_from(entry.size).ok());
        let stored = offset
            .zip(size)
            .and_then(|(o, s)| shard.get(o..o.checked_add(s)?))
            .ok_or_else(|| ImportError::Damaged(format!("{name} lies outside its data file (cut short?)")))?;
        if table::mask(table::CRC32C.checksum(stored)) != entry.crc32c {
            return Err(ImportError::Damaged(format!("{name} fails its checksum")));
        }
        let values = little_endian_floats(stored)?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(ImportError::Damaged(format!("{name} holds {} values for shape {shape:?}", values.len())));
        }
        variables.insert(name.to_string(), (shape, values));
    }
    Ok(variables)
}

/// Our bundle of the original's variables. The network's shape comes from
/// the tensors; `hparams`, when given (a run's `--hparams`), must agree
/// with them.
pub fn bundle_from_variables(variables: &Variables, hparams: Option<HParams>, origin: Origin, created: &str) -> Result<Bundle, ImportError> {
    let named = |name: &str| variables.get(name).or_else(|| variables.get(&older_name(name)));
    let found = || variables.keys().cloned().collect::<Vec<_>>().join(", ");
    let missing = |name: String| ImportError::Missing { missing: name, found: found() };
    let mut sizes = Vec::new();
    let mut input = None;
    while let Some((shape, _)) = named(&bundle::lstm_kernel_name(sizes.len())) {
        let layer = sizes.len();
        let [rows, columns] = shape[..] else {
            return Err(ImportError::Shape(format!("{} has shape {shape:?}, not a matrix", bundle::lstm_kernel_name(layer))));
        };
        if columns % 4 != 0 {
            return Err(ImportError::Shape(format!("{} has {columns} columns, not four gate blocks", bundle::lstm_kernel_name(layer))));
        }
        let units = columns / 4;
        let reads = rows.checked_sub(units).ok_or_else(|| ImportError::Shape(format!("{} has fewer rows than units", bundle::lstm_kernel_name(layer))))?;
        let expected = *sizes.last().unwrap_or(&NUM_CLASSES);
        if reads != expected {
            let what = if layer == 0 { format!("the {NUM_CLASSES}-class polyphony event") } else { format!("the {expected} units of layer {}", layer - 1) };
            return Err(ImportError::Shape(format!("layer {layer} ({}) reads {reads} inputs, not {what}", bundle::lstm_kernel_name(layer))));
        }
        input.get_or_insert(reads);
        sizes.push(units);
        limits::check("the number of LSTM layers", sizes.len(), limits::MAX_LAYERS)?;
    }
    if sizes.is_empty() {
        return Err(missing(bundle::lstm_kernel_name(0)));
    }
    let hparams = match hparams {
        Some(given) if given.rnn_layer_sizes != sizes => {
            return Err(ImportError::Shape(format!("--hparams says rnn_layer_sizes={:?}, the checkpoint's tensors have {sizes:?}", given.rnn_layer_sizes)));
        }
        Some(given) => given,
        None => HParams { rnn_layer_sizes: sizes, ..HParams::default() },
    };
    hparams.validate()?;
    let tensors = bundle::expected_shapes(&hparams)
        .into_iter()
        .map(|(name, _)| {
            let (shape, data) = named(&name).ok_or_else(|| missing(name.clone()))?;
            Ok(NamedTensor { name, shape: shape.clone(), data: data.clone() })
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    let description = if origin.description.is_empty() { origin.generator_description.clone() } else { origin.description.clone() };
    let mut metadata = BundleMetadata::new(description, hparams, created);
    metadata.origin = Some(origin);
    Ok(Bundle::new(metadata, tensors)?)
}

/// The name TensorFlow up to 1.1 gave a variable (`weights`/`biases` in an
/// LSTM cell).
fn older_name(name: &str) -> String {
    name.replace("basic_lstm_cell/kernel", "basic_lstm_cell/weights").replace("basic_lstm_cell/bias", "basic_lstm_cell/biases")
}

fn dims(shape: Option<&proto::TensorShapeProto>, name: &str) -> Result<Vec<usize>, ImportError> {
    shape
        .map(|s| s.dim.iter().map(|d| usize::try_from(d.size).ok()).collect::<Option<Vec<_>>>())
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| ImportError::Damaged(format!("{name} has a negative dimension")))
}

fn little_endian_floats(bytes: &[u8]) -> Result<Vec<f32>, ImportError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(ImportError::Damaged(format!("{} bytes of floats is not a whole number of floats", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// Writes `stored` (row-major over the slice's box) into the tensor of
/// `shape` at the slice given by `extents` (a missing length is the whole
/// dimension; no extents at all is the whole tensor).
fn place(shape: &[usize], values: &mut [f32], extents: &[proto::Extent], stored: &[f32]) -> Result<(), String> {
    let mut boxed = Vec::with_capacity(shape.len());
    for (d, &size) in shape.iter().enumerate() {
        let (start, length) = match extents.get(d) {
            Some(e) => (usize::try_from(e.start).ok(), e.length.map_or(Some(size), |l| usize::try_from(l).ok())),
            None => (Some(0), Some(size)),
        };
        match start.zip(length) {
            Some((s, l)) if s.checked_add(l).is_some_and(|end| end <= size) => boxed.push((s, l)),
            _ => return Err(format!("a slice lies outside the shape {shape:?}")),
        }
    }
    if boxed.iter().map(|b| b.1).product::<usize>() != stored.len() {
        return Err(format!("a slice holds {} values, its extents {boxed:?} call for {}", stored.len(), boxed.iter().map(|b| b.1).product::<usize>()));
    }
    // Walk the box's cells in row-major order.
    let mut index = vec![0usize; shape.len()];
    for &value in stored {
        let flat = index.iter().zip(&boxed).zip(shape).fold(0usize, |acc, ((&i, &(s, _)), &size)| acc * size + s + i);
        values[flat] = value;
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < boxed[d].1 {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(())
}

/// A training run's V2 checkpoint, from a run directory (its `checkpoint`
/// file names the latest) or a prefix (`run/train/model.ckpt-1234`).
#[cfg(not(target_arch = "wasm32"))]
pub fn import_checkpoint(dir_or_prefix: &std::path::Path, hparams: Option<HParams>, created: &str) -> Result<Bundle, ImportError> {
    let prefix = checkpoint_prefix(dir_or_prefix)?;
    let read = |path: std::path::PathBuf| std::fs::read(&path).map_err(|e| ImportError::Io(format!("{}: {e}", path.display())));
    let with = |suffix: &str| std::path::PathBuf::from(format!("{}{suffix}", prefix.display()));
    let index = read(with(".index"))?;
    let shard_count = table::read(&index)?
        .iter()
        .find(|(key, _)| key.is_empty())
        .and_then(|(_, v)| proto::BundleHeaderProto::decode(*v).ok())
        .map_or(1, |h| h.num_shards.max(1) as usize);
    limits::check("data shards", shard_count, 1024usize)?;
    let shards = (0..shard_count).map(|i| read(with(&format!(".data-{i:05}-of-{shard_count:05}")))).collect::<Result<Vec<_>, _>>()?;
    let variables = read_v2_checkpoint(&index, &shards)?;
    let origin = Origin {
        format: "TensorFlow V2 checkpoint".into(),
        source: prefix.display().to_string(),
        generator_id: POLYPHONY_ID.into(),
        generator_description: String::new(),
        description: String::new(),
    };
    let mut bundle = bundle_from_variables(&variables, hparams, origin, created)?;
    bundle.metadata.description = format!("imported from the original's training run {}", prefix.display());
    Ok(bundle)
}

/// The checkpoint prefix a path names: itself when `PATH.index` exists,
/// else in a directory the one its `checkpoint` file names, else its
/// newest `.index`.
#[cfg(not(target_arch = "wasm32"))]
fn checkpoint_prefix(path: &std::path::Path) -> Result<std::path::PathBuf, ImportError> {
    let index_of = |p: &std::path::Path| std::path::PathBuf::from(format!("{}.index", p.display()));
    if index_of(path).is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(ImportError::Io(format!("{}: neither a checkpoint prefix (no {}) nor a directory", path.display(), index_of(path).display())));
    }
    // `model_checkpoint_path: "model.ckpt-1234"` in the text of `checkpoint`.
    let named = std::fs::read_to_string(path.join("checkpoint")).ok().and_then(|text| {
        let line = text.lines().find(|l| l.trim_start().starts_with("model_checkpoint_path:"))?;
        let quoted = line.split_once(':')?.1.trim().trim_matches('"').to_string();
        let candidate = path.join(&quoted);
        index_of(&candidate).is_file().then_some(candidate)
    });
    if let Some(prefix) = named {
        return Ok(prefix);
    }
    let mut indexes: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(path)
        .map_err(|e| ImportError::Io(format!("{}: {e}", path.display())))?
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.to_str()?.strip_suffix(".index")?.to_string();
            Some((e.metadata().ok()?.modified().ok()?, std::path::PathBuf::from(stem)))
        })
        .collect();
    indexes.sort();
    indexes.pop().map(|(_, p)| p).ok_or_else(|| ImportError::Io(format!("{}: no checkpoint (.index file) in it", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_placed_where_their_extents_say() {
        let mut values = vec![0.0; 6];
        let extent = |start, length| proto::Extent { start, length };
        // Rows 1..2 of a [2, 3] tensor, all columns.
        place(&[2, 3], &mut values, &[extent(1, Some(1)), extent(0, None)], &[4.0, 5.0, 6.0]).unwrap();
        // Column 0 of row 0 only.
        place(&[2, 3], &mut values, &[extent(0, Some(1)), extent(0, Some(1))], &[1.0]).unwrap();
        assert_eq!(values, [1.0, 0.0, 0.0, 4.0, 5.0, 6.0]);
        assert!(place(&[2, 3], &mut values, &[extent(1, Some(2))], &[0.0; 6]).is_err(), "outside the shape");
        assert!(place(&[2, 3], &mut values, &[], &[0.0; 5]).is_err(), "too few values");
    }

    #[test]
    fn the_crc_is_castagnolis_and_masked_as_tensorflow_masks_it() {
        assert_eq!(table::CRC32C.checksum(b"123456789"), 0xE306_9283);
        assert_eq!(table::mask(0), 0xa282_ead8);
    }
}
