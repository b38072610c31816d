//! Hyper-parameters: plain data, saved with every run and bundle so that a
//! mismatch is caught early with a clear message (the original failed late
//! and obscurely).

use serde::{Deserialize, Serialize};

/// The model and training hyper-parameters, with the original's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HParams {
    pub batch_size: usize,
    pub rnn_layer_sizes: Vec<usize>,
    pub dropout_keep_prob: f64,
    pub clip_norm: f64,
    pub learning_rate: f64,
}

impl Default for HParams {
    fn default() -> Self {
        HParams {
            batch_size: 64,
            rnn_layer_sizes: vec![256, 256, 256],
            dropout_keep_prob: 0.5,
            clip_norm: 5.0,
            learning_rate: 0.001,
        }
    }
}

impl HParams {
    /// Applies overrides written as the original's `--hparams` string:
    /// `batch_size=64,rnn_layer_sizes=[256,256,256],learning_rate=0.001`.
    pub fn with_overrides(mut self, text: &str) -> Result<HParams, String> {
        for (name, value) in split_assignments(text)? {
            let number = |v: &str| v.parse::<f64>().map_err(|_| format!("hparam {name}: {v:?} is not a number"));
            match name.as_str() {
                "batch_size" => {
                    self.batch_size = value
                        .parse()
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| format!("hparam batch_size: {value:?} is not a positive integer"))?
                }
                "rnn_layer_sizes" => self.rnn_layer_sizes = parse_sizes(&value)?,
                "dropout_keep_prob" => {
                    self.dropout_keep_prob = number(&value)?;
                    if !(self.dropout_keep_prob > 0.0 && self.dropout_keep_prob <= 1.0) {
                        return Err(format!("hparam dropout_keep_prob must be in (0, 1], got {value}"));
                    }
                }
                "clip_norm" => self.clip_norm = number(&value)?,
                "learning_rate" => self.learning_rate = number(&value)?,
                _ => {
                    return Err(format!(
                        "unknown hparam {name:?} (known: batch_size, rnn_layer_sizes, dropout_keep_prob, clip_norm, learning_rate)"
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The `--hparams` string that reproduces these values.
    pub fn to_overrides(&self) -> String {
        let sizes: Vec<String> = self.rnn_layer_sizes.iter().map(|s| s.to_string()).collect();
        format!(
            "batch_size={},rnn_layer_sizes=[{}],dropout_keep_prob={},clip_norm={},learning_rate={}",
            self.batch_size,
            sizes.join(","),
            self.dropout_keep_prob,
            self.clip_norm,
            self.learning_rate
        )
    }

    /// Whether two sets describe the same network (training-only values such
    /// as batch size or learning rate may differ when generating).
    pub fn same_model(&self, other: &HParams) -> bool {
        self.rnn_layer_sizes == other.rnn_layer_sizes
    }
}

/// Splits `a=1,b=[1,2],c=x` at the commas outside brackets.
fn split_assignments(text: &str) -> Result<Vec<(String, String)>, String> {
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
            let (name, value) = p.split_once('=').ok_or_else(|| format!("hparams: expected name=value, got {p:?}"))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// `[256,256,256]` (brackets optional).
fn parse_sizes(value: &str) -> Result<Vec<usize>, String> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    let sizes: Vec<usize> = inner
        .split(',')
        .map(|s| s.trim().parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("hparam rnn_layer_sizes: {value:?} is not a list of positive integers"))?;
    if sizes.is_empty() {
        return Err("hparam rnn_layer_sizes must name at least one layer".into());
    }
    Ok(sizes)
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
}
