//! A run's checkpoints: the model, Adam's moments and where training stood,
//! in one safetensors file with a checksum, written atomically, so that a
//! run killed at any moment resumes exactly and a damaged file is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::step::AdamState;
use crate::bundle::{self, Bundle, BundleMetadata, Provenance};
use crate::hparams::HParams;
use crate::metrics::{Counts, Metrics};
use crate::model::Model;

/// The run's latest checkpoint (training resumes from it).
pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint.safetensors")
}

/// The checkpoint with the best eval loss so far.
pub fn best_checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("best.safetensors")
}

/// What a checkpoint records besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub seed: u64,
    pub hparams: HParams,
    pub bptt_window: usize,
    pub dataset: String,
    pub elapsed_secs: f64,
    /// CPU seconds used so far, over every resume ([`crate::metrics::process_cpu_secs`]).
    #[serde(default)]
    pub cpu_secs: f64,
    pub last_train: Option<Metrics>,
    pub last_eval: Option<Metrics>,
    #[serde(default)]
    pub best_eval_loss: Option<f64>,
    #[serde(default)]
    pub evals_since_best: u64,
    /// The training counts since the last log record, so that a resumed
    /// run logs exactly what an uninterrupted one would.
    #[serde(default)]
    pub since_log: Counts,
    /// The bundle the run started from (`--warm_start_bundle_file`), if any.
    #[serde(default)]
    pub warm_start: Option<String>,
}

/// A saved run: model, optimizer and where training stood.
pub struct Checkpoint {
    pub model: Model,
    pub adam: AdamState,
    pub state: TrainState,
}

const STATE_KEY: &str = "train_state";
const ADAM_STEP_KEY: &str = "adam_step";
const CHECKSUM_KEY: &str = "checksum";
const GROUPS: [&str; 3] = ["param", "adam_m", "adam_v"];

fn tensor_bytes(t: &Tensor<2>) -> Vec<u8> {
    crate::model::host_values(t.clone()).iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes the checkpoint to `path` atomically, with a CRC-32 of its
/// tensors, so an interruption never leaves a damaged one and a damaged
/// one is never loaded.
pub fn save_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), TrainError> {
    let expected = bundle::expected_shapes(&checkpoint.model.hparams);
    let groups = [checkpoint.model.parameters(), checkpoint.adam.m.clone(), checkpoint.adam.v.clone()];
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, tensors) in GROUPS.iter().zip(&groups) {
        for ((name, shape), t) in expected.iter().zip(tensors) {
            owned.push((format!("{prefix}/{name}"), shape.clone(), tensor_bytes(t)));
        }
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let checksum = bundle::checksum(owned.iter().map(|(_, _, b)| b.as_slice()));
    let views = owned.iter().map(|(n, s, b)| {
        (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("shape and bytes agree"))
    });
    let metadata = HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(&checkpoint.state).expect("plain data always serializes to JSON")),
        (ADAM_STEP_KEY.to_string(), checkpoint.adam.step.to_string()),
        (CHECKSUM_KEY.to_string(), checksum),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| damaged(path, e.to_string()))?;
    crate::files::write_atomic(path, &bytes).map_err(TrainError::Io)
}

fn damaged(path: &Path, why: String) -> TrainError {
    TrainError::Checkpoint { path: path.display().to_string(), why }
}

/// Reads a run's latest checkpoint onto `device`; `Ok(None)` when there is none.
pub fn load_checkpoint(run_dir: &Path, device: &Device) -> Result<Option<Checkpoint>, TrainError> {
    load_checkpoint_file(&checkpoint_path(run_dir), device)
}

/// The run's best checkpoint (by eval loss) when it has one, else its
/// latest, and the file it came from.
pub fn load_best_or_latest(run_dir: &Path, device: &Device) -> Result<(Checkpoint, PathBuf), TrainError> {
    let best = best_checkpoint_path(run_dir);
    let path = if best.is_file() { best } else { checkpoint_path(run_dir) };
    match load_checkpoint_file(&path, device)? {
        Some(c) => Ok((c, path)),
        None => Err(TrainError::NoCheckpoint(run_dir.display().to_string())),
    }
}

/// The file's bytes, or `None` when it does not exist.
fn read_if_there(path: &Path) -> Result<Option<Vec<u8>>, TrainError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))),
    }
}

/// The training state in a checkpoint's header, checked, without reading
/// its tensors (what `train` needs to know of a run before it starts).
fn state_of(path: &Path, bytes: &[u8]) -> Result<(TrainState, HashMap<String, String>), TrainError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| damaged(path, e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let state: TrainState = meta
        .get(STATE_KEY)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| damaged(path, "no training state".into()))?;
    state.hparams.validate().map_err(|e| damaged(path, e.to_string()))?;
    Ok((state, meta))
}

/// A run's training state (step, hparams, ...) from its latest checkpoint's
/// header alone; `Ok(None)` when the run has no checkpoint.
pub fn read_train_state(run_dir: &Path) -> Result<Option<TrainState>, TrainError> {
    let path = checkpoint_path(run_dir);
    let Some(bytes) = read_if_there(&path)? else { return Ok(None) };
    Ok(Some(state_of(&path, &bytes)?.0))
}

/// Reads a checkpoint file onto `device`; `Ok(None)` when it does not
/// exist. Refuses a file whose checksum, hparams or shapes are wrong.
pub fn load_checkpoint_file(path: &Path, device: &Device) -> Result<Option<Checkpoint>, TrainError> {
    let Some(bytes) = read_if_there(path)? else { return Ok(None) };
    checkpoint_from_bytes(path, &bytes, device).map(Some)
}

/// A checkpoint from the bytes of the file at `path` (named in errors).
pub fn checkpoint_from_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<Checkpoint, TrainError> {
    let (state, meta) = state_of(path, bytes)?;
    let adam_step: u64 = meta.get(ADAM_STEP_KEY).and_then(|s| s.parse().ok()).ok_or_else(|| damaged(path, "no optimizer step".into()))?;
    let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| damaged(path, e.to_string()))?;
    let mut names = tensors.names();
    names.sort();
    let stored = names.iter().map(|n| tensors.tensor(n).map(|v| v.data()).unwrap_or_default());
    if meta.get(CHECKSUM_KEY).map(String::as_str) != Some(bundle::checksum(stored).as_str()) {
        return Err(damaged(path, "checksum mismatch: the file changed after it was written".into()));
    }
    let expected = bundle::expected_shapes(&state.hparams);
    let group = |prefix: &str| -> Result<Vec<(Vec<usize>, Vec<f32>)>, TrainError> {
        expected
            .iter()
            .map(|(name, shape)| {
                let key = format!("{prefix}/{name}");
                let view = tensors.tensor(&key).map_err(|_| damaged(path, format!("missing {key}")))?;
                if view.shape() != shape.as_slice() || view.dtype() != safetensors::Dtype::F32 {
                    return Err(damaged(path, format!("{key} has shape {:?}, expected {shape:?}", view.shape())));
                }
                let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                Ok((shape.clone(), values))
            })
            .collect()
    };
    let model = Model::from_tensors(&state.hparams, group("param")?, device);
    let as_matrices = |g: Vec<(Vec<usize>, Vec<f32>)>| Model::from_tensors(&state.hparams, g, device).parameters();
    let adam = AdamState { step: adam_step, m: as_matrices(group("adam_m")?), v: as_matrices(group("adam_v")?) };
    Ok(Checkpoint { model, adam, state })
}

/// A bundle of a checkpoint's weights, recording where they came from.
pub fn bundle_of(checkpoint: &Checkpoint, description: &str, created: &str) -> Result<Bundle, TrainError> {
    let state = &checkpoint.state;
    let mut metadata = BundleMetadata::new(description, state.hparams.clone(), created);
    metadata.provenance = Some(Provenance {
        dataset: state.dataset.clone(),
        dataset_description: String::new(),
        training_steps: state.step,
        wall_time_seconds: state.elapsed_secs,
        eval_metrics: state.last_eval.map(|m| m.by_name()).unwrap_or_default(),
        warm_start: state.warm_start.clone(),
    });
    Ok(checkpoint.model.to_bundle(metadata)?)
}
