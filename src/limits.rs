//! Every bound the library enforces, in one place, so that no input (a
//! file, a bundle, a request from the page or the command line) can make it
//! allocate without end, loop without end or overflow. Each bound is far
//! above what music or a model of this kind needs; crossing one is refused
//! with a [`LimitError`] that names it.

/// Notes in one music file (a Bach chorale has about 300; a whole opera in
/// MIDI some 100,000).
pub const MAX_NOTES: usize = 1_000_000;
/// Quantized steps (sixteenths) in one piece: about 4.5 hours at 120 qpm.
pub const MAX_PIECE_STEPS: i64 = 500_000;
/// Steps of one generated output (`num_steps`): 17 minutes at 120 qpm.
pub const MAX_OUTPUT_STEPS: usize = 8_192;
/// Outputs of one request.
pub const MAX_OUTPUTS: usize = 256;
/// Rows of one generation batch: outputs × beam size × branch factor.
pub const MAX_BATCH_ROWS: usize = 1_024;
/// Pitches sounding at once in a primer chord or a step (every MIDI pitch
/// twice: two voices in unison).
pub const MAX_PITCHES_PER_STEP: usize = 256;
/// Events in one step of a generated stream: more than every pitch can give
/// (128 new and 128 continued notes), so a model that cannot end a step
/// stops with an error instead of running on.
pub const MAX_EVENTS_PER_STEP: usize = 2 * 128 + 1;
/// Bytes inflated from one entry of a compressed MusicXML (.mxl) file.
pub const MAX_INFLATED_BYTES: u64 = 64 << 20;
/// Units of one LSTM layer.
pub const MAX_LAYER_SIZE: usize = 8_192;
/// LSTM layers.
pub const MAX_LAYERS: usize = 16;
/// Weights of one model, all tensors together (1 GiB of f32).
pub const MAX_PARAMETERS: usize = 1 << 28;
/// Sequences per training batch.
pub const MAX_BATCH_SIZE: usize = 4_096;
/// Events per truncated-backpropagation window.
pub const MAX_BPTT_WINDOW: usize = 1 << 16;
/// The lowest sampling temperature: below it the scaled logits overflow f32.
pub const MIN_TEMPERATURE: f64 = 1e-3;
/// The highest sampling temperature (above it every class is equally likely).
pub const MAX_TEMPERATURE: f64 = 1e3;

/// A bound crossed: what, how much, and the bound.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what} is {found}, more than the limit of {limit}")]
pub struct LimitError {
    pub what: &'static str,
    pub found: u128,
    pub limit: u128,
}

/// `Ok` when `found <= limit`, else the [`LimitError`] naming `what`.
pub fn check(what: &'static str, found: impl TryInto<u128>, limit: impl TryInto<u128>) -> Result<(), LimitError> {
    let found = found.try_into().unwrap_or(u128::MAX);
    let limit = limit.try_into().unwrap_or(u128::MAX);
    if found <= limit { Ok(()) } else { Err(LimitError { what, found, limit }) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_crossed_limit_names_itself() {
        assert!(super::check("outputs", 3usize, 4usize).is_ok());
        let e = super::check("outputs", 5usize, 4usize).unwrap_err();
        assert_eq!(e.to_string(), "outputs is 5, more than the limit of 4");
    }
}
