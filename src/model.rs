//! The Polyphony RNN: one-hot of the previous event → stacked LSTM layers →
//! dense layer to 259 logits. One definition serves training, native
//! generation and the browser.
//!
//! Each layer is TensorFlow's `BasicLSTMCell`, so that the maths (and an
//! imported original checkpoint) is exactly the original's:
//!
//! ```text
//! z  = [x, h] · W + b            W: [input + hidden, 4·hidden], columns i | j | f | o
//! c' = c · σ(f + 1) + σ(i) · tanh(j)      (forget bias 1.0 added at run time)
//! h' = tanh(c') · σ(o)
//! ```
//!
//! The parameters are plain tensors in the order and under the names of
//! [`bundle::expected_shapes`] (the original checkpoint's names,
//! `rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel` ...), rather than a
//! burn `Module`: training clips gradients by their
//! global norm and checkpoints every optimizer moment under those names, and
//! both are simplest over an explicit list. Biases are kept as `[1, n]` rows
//! so that every parameter is a matrix.

use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::bundle::{self, Bundle};
#[cfg(not(target_arch = "wasm32"))]
use crate::bundle::{BundleError, BundleMetadata, NamedTensor};
use crate::encoding::NUM_CLASSES;
use crate::fused::FORGET_BIAS;
use crate::hparams::HParams;
use crate::rng::Rng;


/// One LSTM layer's weights.
#[derive(Clone, Debug)]
pub struct Cell {
    /// `[input + hidden, 4 · hidden]`: rows for the input, then the hidden state.
    pub kernel: Tensor<2>,
    /// `[1, 4 · hidden]`.
    pub bias: Tensor<2>,
}

impl Cell {
    fn hidden(&self) -> usize {
        self.bias.dims()[1] / 4
    }

    fn input(&self) -> usize {
        self.kernel.dims()[0] - self.hidden()
    }
}

/// The whole network.
#[derive(Clone, Debug)]
pub struct Model {
    pub hparams: HParams,
    pub cells: Vec<Cell>,
    /// `[last hidden, 259]`.
    pub dense_weights: Tensor<2>,
    /// `[1, 259]`.
    pub dense_biases: Tensor<2>,
}

/// The recurrent state: one `[batch, hidden]` pair per layer.
#[derive(Clone, Debug)]
pub struct State {
    pub h: Vec<Tensor<2>>,
    pub c: Vec<Tensor<2>>,
}

impl State {
    /// Detached from any gradient graph (truncated backpropagation).
    pub fn detach(self) -> State {
        State {
            h: self.h.into_iter().map(|t| t.detach()).collect(),
            c: self.c.into_iter().map(|t| t.detach()).collect(),
        }
    }

    /// Keeps the rows `rows` of every tensor (beam search, batch reordering).
    pub fn select_rows(&self, rows: Tensor<1, Int>) -> State {
        let pick = |ts: &Vec<Tensor<2>>| ts.iter().map(|t| t.clone().select(0, rows.clone())).collect();
        State { h: pick(&self.h), c: pick(&self.c) }
    }
}

/// Dropout on every layer's output while training: masks come from our own
/// seeded generator so that a resumed run repeats an uninterrupted one.
pub struct Dropout<'a> {
    pub keep_prob: f64,
    pub rng: &'a mut Rng,
}

impl Dropout<'_> {
    fn apply(&mut self, x: Tensor<2>) -> Tensor<2> {
        if self.keep_prob >= 1.0 {
            return x;
        }
        let shape = x.dims();
        let keep = self.keep_prob as f32;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| if self.rng.next_f32() < keep { scale } else { 0.0 })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

impl Model {
    /// A fresh network: Glorot-uniform weights (TensorFlow's default
    /// initializer for both the cells and the dense layer), zero biases.
    pub fn init(hparams: &HParams, device: &Device, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let tensors: Vec<(Vec<usize>, Vec<f32>)> = bundle::expected_shapes(hparams)
            .into_iter()
            .map(|(_, shape)| {
                let data = if shape.len() == 2 {
                    let limit = (6.0 / (shape[0] + shape[1]) as f64).sqrt();
                    (0..shape[0] * shape[1]).map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32).collect()
                } else {
                    vec![0.0; shape[0]]
                };
                (shape, data)
            })
            .collect();
        Model::from_tensors(hparams, tensors, device)
    }

    /// Builds the network from parameters in [`bundle::expected_shapes`]
    /// order and shapes (the caller checks them).
    pub fn from_tensors(hparams: &HParams, tensors: Vec<(Vec<usize>, Vec<f32>)>, device: &Device) -> Model {
        let mut matrices = tensors.into_iter().map(|(shape, data)| {
            let shape = if shape.len() == 1 { vec![1, shape[0]] } else { shape };
            Tensor::<2>::from_data(TensorData::new(data, [shape[0], shape[1]]), device)
        });
        let mut next = || matrices.next().expect("one tensor per parameter");
        let cells = hparams
            .rnn_layer_sizes
            .iter()
            .map(|_| Cell { kernel: next(), bias: next() })
            .collect();
        Model { hparams: hparams.clone(), cells, dense_weights: next(), dense_biases: next() }
    }

    /// The parameters in [`bundle::expected_shapes`] order (biases as `[1, n]`).
    pub fn parameters(&self) -> Vec<Tensor<2>> {
        let mut out = Vec::new();
        for cell in &self.cells {
            out.push(cell.kernel.clone());
            out.push(cell.bias.clone());
        }
        out.push(self.dense_weights.clone());
        out.push(self.dense_biases.clone());
        out
    }

    /// The same network with new parameter values (in [`parameters`] order).
    ///
    /// [`parameters`]: Model::parameters
    pub fn with_parameters(&self, parameters: Vec<Tensor<2>>) -> Model {
        let mut it = parameters.into_iter();
        let mut next = || it.next().expect("one tensor per parameter");
        let cells = self.cells.iter().map(|_| Cell { kernel: next(), bias: next() }).collect();
        Model { hparams: self.hparams.clone(), cells, dense_weights: next(), dense_biases: next() }
    }

    /// The network of a bundle (checked when it was made or read).
    pub fn from_bundle(bundle: &Bundle, device: &Device) -> Model {
        let tensors = bundle.weights().tensors().iter().map(|t| (t.shape.clone(), t.data.clone())).collect();
        Model::from_tensors(&bundle.metadata.hparams, tensors, device)
    }

    /// The weights as a bundle with the given metadata (and this model's
    /// hparams); refused when they are not numbers (a diverged run). Reads
    /// the device synchronously, so native only.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_bundle(&self, metadata: BundleMetadata) -> Result<Bundle, BundleError> {
        let tensors = bundle::expected_shapes(&self.hparams)
            .into_iter()
            .zip(self.parameters())
            .map(|((name, shape), t)| NamedTensor { name, shape, data: host_values(t) })
            .collect();
        Bundle::new(BundleMetadata { hparams: self.hparams.clone(), ..metadata }, tensors)
    }

    pub fn device(&self) -> Device {
        self.dense_weights.device()
    }

    /// All-zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize) -> State {
        let device = self.device();
        let zeros = |cell: &Cell| Tensor::<2>::zeros([batch, cell.hidden()], &device);
        State { h: self.cells.iter().map(zeros).collect(), c: self.cells.iter().map(zeros).collect() }
    }

    /// Runs `inputs` (`[batch, time]` class indices, and for a network with
    /// `context_inputs` their [`crate::context`] features, `[batch, time,
    /// CONTEXT_WIDTH]` of 0 and 1) through the network from `state`;
    /// returns the logits `[batch, time, 259]` and the final state.
    ///
    /// Layer by layer, one time step at a time, with the time steps kept as
    /// separate `[batch, …]` tensors: slicing one big `[batch, time, …]`
    /// tensor inside the loop would make every step's gradient as large as
    /// the whole window. The first layer's input product is a row lookup,
    /// since its input is one-hot.
    pub fn forward(&self, inputs: Tensor<2, Int>, context: Option<Tensor<3>>, state: State, mut dropout: Option<Dropout>) -> (Tensor<3>, State) {
        let [batch, time] = inputs.dims();
        let columns: Vec<Tensor<1, Int>> = (0..time)
            .map(|t| inputs.clone().slice([0..batch, t..t + 1]).reshape([batch]))
            .collect();
        // The features need no gradient, so slicing them step by step is cheap.
        let context_at = |t: usize| {
            context.as_ref().map(|c| {
                let width = c.dims()[2];
                c.clone().slice([0..batch, t..t + 1, 0..width]).reshape([batch, width])
            })
        };
        let mut layer_inputs: Vec<Tensor<2>> = Vec::new();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (layer, cell) in self.cells.iter().enumerate() {
            let (hidden, input) = (cell.hidden(), cell.input());
            let w_x = cell.kernel.clone().slice([0..input, 0..4 * hidden]);
            let w_h = cell.kernel.clone().slice([input..input + hidden, 0..4 * hidden]);
            let (mut h, mut c) = (state.h[layer].clone(), state.c[layer].clone());
            let mut outputs = Vec::with_capacity(time);
            for t in 0..time {
                let x_part = if layer == 0 {
                    let event = w_x.clone().select(0, columns[t].clone());
                    match context_at(t).filter(|_| input > NUM_CLASSES) {
                        Some(features) => event + features.matmul(w_x.clone().slice([NUM_CLASSES..input, 0..4 * hidden])),
                        None => event,
                    }
                } else {
                    layer_inputs[t].clone().matmul(w_x.clone())
                };
                let z = x_part + h.matmul(w_h.clone()) + cell.bias.clone();
                (h, c) = lstm_gates(z, c, hidden);
                let out = match dropout.as_mut() {
                    Some(d) => d.apply(h.clone()),
                    None => h.clone(),
                };
                outputs.push(out);
            }
            hs.push(h);
            cs.push(c);
            layer_inputs = outputs;
        }
        let last = Tensor::stack::<3>(layer_inputs, 1);
        let hidden = last.dims()[2];
        let logits = last.reshape([batch * time, hidden]).matmul(self.dense_weights.clone()) + self.dense_biases.clone();
        (logits.reshape([batch, time, NUM_CLASSES]), State { h: hs, c: cs })
    }
}

/// A tensor's values on the host (a synchronous read: native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn host_values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor")
}

/// The cell update from the pre-activations `z = [x, h]·W + b`.
fn lstm_gates(z: Tensor<2>, c: Tensor<2>, hidden: usize) -> (Tensor<2>, Tensor<2>) {
    let batch = z.dims()[0];
    let gate = |k: usize| z.clone().slice([0..batch, k * hidden..(k + 1) * hidden]);
    let (i, j, f, o) = (gate(0), gate(1), gate(2), gate(3));
    let c = c * sigmoid(f + FORGET_BIAS) + sigmoid(i) * tanh(j);
    let h = tanh(c.clone()) * sigmoid(o);
    (h, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole one-layer network with a small fixed weight set, two steps,
    /// against the spec's formulas evaluated in f64 loop by loop.
    #[test]
    fn forward_matches_the_spec_formulas_on_fixed_weights() {
        let device = Device::flex();
        let hparams = HParams { rnn_layer_sizes: vec![2], ..HParams::default() };
        let (hidden, input) = (2usize, NUM_CLASSES);
        // Deterministic, varied weights: w(r, c) = sin(0.37 r + 1.3 c) / 2.
        let kernel: Vec<f32> = (0..(input + hidden) * 4 * hidden)
            .map(|k| ((0.37 * (k / (4 * hidden)) as f64 + 1.3 * (k % (4 * hidden)) as f64).sin() / 2.0) as f32)
            .collect();
        let bias: Vec<f32> = (0..4 * hidden).map(|k| 0.1 * k as f32 - 0.3).collect();
        let dense: Vec<f32> = (0..hidden * NUM_CLASSES).map(|k| ((k as f64 * 0.11).cos() / 3.0) as f32).collect();
        let dense_bias: Vec<f32> = (0..NUM_CLASSES).map(|k| (k % 7) as f32 * 0.01).collect();
        let model = Model::from_tensors(
            &hparams,
            vec![
                (vec![input + hidden, 4 * hidden], kernel.clone()),
                (vec![4 * hidden], bias.clone()),
                (vec![hidden, NUM_CLASSES], dense.clone()),
                (vec![NUM_CLASSES], dense_bias.clone()),
            ],
            &device,
        );
        let events = [0usize, 63];
        let inputs = Tensor::<2, Int>::from_data(TensorData::new(events.iter().map(|&e| e as i64).collect::<Vec<_>>(), [1, 2]), &device);
        let (logits, _) = model.forward(inputs, None, model.zero_state(1), None);
        let got = logits.into_data().try_to_vec::<f32>().unwrap();

        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (mut h, mut c) = (vec![0.0f64; hidden], vec![0.0f64; hidden]);
        for (t, &event) in events.iter().enumerate() {
            // z = [onehot(event), h] · W + b
            let z: Vec<f64> = (0..4 * hidden)
                .map(|col| {
                    let w = |row: usize| kernel[row * 4 * hidden + col] as f64;
                    w(event) + (0..hidden).map(|k| h[k] * w(input + k)).sum::<f64>() + bias[col] as f64
                })
                .collect();
            for u in 0..hidden {
                let (i, j, f, o) = (z[u], z[hidden + u], z[2 * hidden + u], z[3 * hidden + u]);
                c[u] = c[u] * s(f + 1.0) + s(i) * j.tanh();
                h[u] = c[u].tanh() * s(o);
            }
            for class in 0..NUM_CLASSES {
                let want = (0..hidden).map(|k| h[k] * dense[k * NUM_CLASSES + class] as f64).sum::<f64>()
                    + dense_bias[class] as f64;
                let have = got[t * NUM_CLASSES + class] as f64;
                assert!((have - want).abs() < 1e-5, "step {t} class {class}: {have} vs {want}");
            }
        }
    }

    /// The cell against values computed by hand (one unit, one layer).
    #[test]
    fn lstm_cell_matches_hand_computed_values() {
        let device = Device::flex();
        // z for one unit: i, j, f, o
        let z = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1.0, 0.25, 2.0], [1, 4]), &device);
        let c = Tensor::<2>::from_data(TensorData::new(vec![0.3f32], [1, 1]), &device);
        let (h, c2) = lstm_gates(z, c, 1);
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let c_expected = 0.3 * s(0.25 + 1.0) + s(0.5) * (-1.0f64).tanh();
        let h_expected = c_expected.tanh() * s(2.0);
        let c_got = c2.into_data().try_to_vec::<f32>().unwrap()[0] as f64;
        let h_got = h.into_data().try_to_vec::<f32>().unwrap()[0] as f64;
        assert!((c_got - c_expected).abs() < 1e-6, "{c_got} vs {c_expected}");
        assert!((h_got - h_expected).abs() < 1e-6, "{h_got} vs {h_expected}");
    }
}
