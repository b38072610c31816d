//! Hyper-parameters: plain data, saved with every run and bundle so that a
//! mismatch is caught early with a clear message (the original failed late
//! and obscurely).

use serde::{Deserialize, Serialize};

use crate::context::CONTEXT_WIDTH;
use crate::encoding::NUM_CLASSES;
use crate::limits::{self, LimitError};

/// The model and training hyper-parameters, with the original's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HParams {
    pub batch_size: usize,
    pub rnn_layer_sizes: Vec<usize>,
    pub dropout_keep_prob: f64,
    pub clip_norm: f64,
    pub learning_rate: f64,
    /// The network also reads the music's state ([`crate::context`]) beside
    /// the previous event; false is the original's network, and the
    /// original's checkpoints have it so.
    #[serde(default)]
    pub context_inputs: bool,
    /// Trained on pieces moved to C major or A minor: generation moves the
    /// primer (or the chosen key) there and the output back.
    #[serde(default)]
    pub key_normalized: bool,
    /// Training only: the weight of an unlikelihood term, `−ln(1 − P)` with
    /// `P` the probability the model gives the classes that the style's
    /// rules ([`crate::generate::rules::Rules::STYLE`]) forbid next, so
    /// that the model learns to keep them itself rather than leave it to the
    /// decoder. 0 (the original's training) leaves the loss as it was.
    #[serde(default)]
    pub rules_penalty: f64,
}

impl Default for HParams {
    fn default() -> Self {
        HParams {
            batch_size: 64,
            rnn_layer_sizes: vec![256, 256, 256],
            dropout_keep_prob: 0.5,
            clip_norm: 5.0,
            learning_rate: 0.001,
            context_inputs: false,
            key_normalized: false,
            rules_penalty: 0.0,
        }
    }
}

/// Why hyper-parameters cannot be used: a value out of its range, or an
/// override that does not parse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HParamsError {
    #[error("hparam {name} must be {rule}, got {value}")]
    OutOfRange { name: &'static str, rule: &'static str, value: String },
    #[error("hparams: {0}")]
    Limit(#[from] LimitError),
    #[error("hparams: expected name=value, got {0:?}")]
    NotAnAssignment(String),
    #[error("hparam {name}: {value:?} is not {what}")]
    Unreadable { name: String, value: String, what: &'static str },
    #[error("unknown hparam {0:?} (known: batch_size, rnn_layer_sizes, dropout_keep_prob, clip_norm, learning_rate, context_inputs, key_normalized, rules_penalty)")]
    Unknown(String),
}

impl HParams {
    /// Checks every value, wherever hparams come from (flags, checkpoints,
    /// bundles, imported models): positive sizes within [`crate::limits`],
    /// a keep probability in (0, 1], a positive finite clip norm and
    /// learning rate. A model that passes can be built and trained.
    pub fn validate(&self) -> Result<(), HParamsError> {
        let range = |name, rule, value: &dyn std::fmt::Display| Err(HParamsError::OutOfRange { name, rule, value: value.to_string() });
        if self.batch_size == 0 {
            return range("batch_size", "at least 1", &self.batch_size);
        }
        limits::check("batch_size", self.batch_size, limits::MAX_BATCH_SIZE)?;
        if self.rnn_layer_sizes.is_empty() {
            return range("rnn_layer_sizes", "a list of at least one layer", &"[]");
        }
        limits::check("the number of LSTM layers", self.rnn_layer_sizes.len(), limits::MAX_LAYERS)?;
        for &size in &self.rnn_layer_sizes {
            if size == 0 {
                return range("rnn_layer_sizes", "a list of positive sizes", &format!("{:?}", self.rnn_layer_sizes));
            }
            limits::check("an LSTM layer's size", size, limits::MAX_LAYER_SIZE)?;
        }
        limits::check("the model's parameter count", self.parameter_count(), limits::MAX_PARAMETERS)?;
        if !(self.dropout_keep_prob > 0.0 && self.dropout_keep_prob <= 1.0) {
            return range("dropout_keep_prob", "in (0, 1]", &self.dropout_keep_prob);
        }
        if !(self.clip_norm > 0.0 && self.clip_norm.is_finite()) {
            return range("clip_norm", "a positive number", &self.clip_norm);
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return range("learning_rate", "a positive number", &self.learning_rate);
        }
        if !(self.rules_penalty >= 0.0 && self.rules_penalty.is_finite()) {
            return range("rules_penalty", "0 or a positive number", &self.rules_penalty);
        }
        Ok(())
    }

    /// Width of the first layer's input: the 259-wide one-hot event, and
    /// with `context_inputs` the [`crate::context`] features.
    pub fn input_width(&self) -> usize {
        NUM_CLASSES + if self.context_inputs { CONTEXT_WIDTH } else { 0 }
    }

    /// Weights of the network these hparams describe (saturating: the
    /// sizes may not have been checked yet).
    pub fn parameter_count(&self) -> usize {
        let mut total = 0usize;
        let mut input = self.input_width();
        for &hidden in &self.rnn_layer_sizes {
            let gates = hidden.saturating_mul(4);
            total = total.saturating_add(input.saturating_add(hidden).saturating_mul(gates)).saturating_add(gates);
            input = hidden;
        }
        total.saturating_add(input.saturating_mul(NUM_CLASSES)).saturating_add(NUM_CLASSES)
    }

    /// Applies overrides written as the original's `--hparams` string
    /// (`batch_size=64,rnn_layer_sizes=[256,256,256],learning_rate=0.001`)
    /// and checks the result ([`HParams::validate`]).
    pub fn with_overrides(mut self, text: &str) -> Result<HParams, HParamsError> {
        for (name, value) in split_assignments(text)? {
            let unreadable = |what| HParamsError::Unreadable { name: name.clone(), value: value.clone(), what };
            let number = |v: &str| v.parse::<f64>().map_err(|_| unreadable("a number"));
            match name.as_str() {
                "batch_size" => self.batch_size = value.parse().map_err(|_| unreadable("a positive integer"))?,
                "rnn_layer_sizes" => self.rnn_layer_sizes = parse_sizes(&value).ok_or_else(|| unreadable("a list of positive integers"))?,
                "dropout_keep_prob" => self.dropout_keep_prob = number(&value)?,
                "clip_norm" => self.clip_norm = number(&value)?,
                "learning_rate" => self.learning_rate = number(&value)?,
                "context_inputs" => self.context_inputs = value.parse().map_err(|_| unreadable("true or false"))?,
                "key_normalized" => self.key_normalized = value.parse().map_err(|_| unreadable("true or false"))?,
                "rules_penalty" => self.rules_penalty = number(&value)?,
                _ => return Err(HParamsError::Unknown(name)),
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// The `--hparams` string that reproduces these values.
    pub fn to_overrides(&self) -> String {
        let sizes: Vec<String> = self.rnn_layer_sizes.iter().map(|s| s.to_string()).collect();
        format!(
            "batch_size={},rnn_layer_sizes=[{}],dropout_keep_prob={},clip_norm={},learning_rate={},context_inputs={},key_normalized={},rules_penalty={}",
            self.batch_size,
            sizes.join(","),
            self.dropout_keep_prob,
            self.clip_norm,
            self.learning_rate,
            self.context_inputs,
            self.key_normalized,
            self.rules_penalty
        )
    }

    /// Whether two sets describe the same network (training-only values such
    /// as batch size or learning rate may differ when generating).
    pub fn same_model(&self, other: &HParams) -> bool {
        self.rnn_layer_sizes == other.rnn_layer_sizes && self.context_inputs == other.context_inputs
    }
}

/// Splits `a=1,b=[1,2],c=x` at the commas outside brackets.
fn split_assignments(text: &str) -> Result<Vec<(String, String)>, HParamsError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in text.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').ok_or_else(|| HParamsError::NotAnAssignment(p.to_string()))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// `[256,256,256]` (brackets optional); sizes are checked by `validate`.
fn parse_sizes(value: &str) -> Option<Vec<usize>> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|s| s.trim().parse::<usize>().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_the_original_syntax_and_round_trip() {
        let h = HParams::default()
            .with_overrides("batch_size=8, rnn_layer_sizes=[64,32],learning_rate=0.01")
            .unwrap();
        assert_eq!(h.batch_size, 8);
        assert_eq!(h.rnn_layer_sizes, vec![64, 32]);
        assert_eq!(h.learning_rate, 0.01);
        assert_eq!(HParams::default().with_overrides(&h.to_overrides()).unwrap(), h);
    }

    #[test]
    fn bad_overrides_are_refused() {
        for bad in ["batch_size=0", "rnn_layer_sizes=[a]", "nope=1", "learning_rate", "dropout_keep_prob=2"] {
            assert!(HParams::default().with_overrides(bad).is_err(), "{bad}");
        }
    }

    /// Values that once slipped through (a bundle or checkpoint saying so
    /// reached a division by zero or a shape out of bounds) are refused by
    /// `validate`, with the value named.
    #[test]
    fn validate_refuses_what_cannot_be_built_or_trained() {
        let cases: [(&str, fn(&mut HParams)); 9] = [
            ("batch_size must be at least 1, got 0", |h| h.batch_size = 0),
            ("rnn_layer_sizes must be a list of at least one layer", |h| h.rnn_layer_sizes.clear()),
            ("rnn_layer_sizes must be a list of positive sizes", |h| h.rnn_layer_sizes = vec![0]),
            ("an LSTM layer's size is 100000", |h| h.rnn_layer_sizes = vec![100_000]),
            ("dropout_keep_prob must be in (0, 1], got 0", |h| h.dropout_keep_prob = 0.0),
            ("dropout_keep_prob must be in (0, 1], got 2", |h| h.dropout_keep_prob = 2.0),
            ("clip_norm must be a positive number, got -1", |h| h.clip_norm = -1.0),
            ("learning_rate must be a positive number, got NaN", |h| h.learning_rate = f64::NAN),
            ("batch_size is 100000000", |h| h.batch_size = 100_000_000),
        ];
        for (message, edit) in cases {
            let mut h = HParams::default();
            edit(&mut h);
            let got = h.validate().unwrap_err().to_string();
            assert!(got.contains(message), "{got:?} should say {message:?}");
        }
        assert_eq!(HParams::default().validate(), Ok(()));
        assert_eq!(HParams::default().parameter_count(), 515 * 1024 + 1024 + 2 * (512 * 1024 + 1024) + 256 * 259 + 259);
    }
}
