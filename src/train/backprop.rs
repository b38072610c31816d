//! A training step's gradients on the CPU, written out: the network run
//! forward over a window and back through time by hand, on host vectors.
//!
//! burn's autodiff ([`super::step`] on the GPU, and the reference this is
//! tested against) records the network one time step at a time, so every
//! weight's gradient is a sum of one small product per step (`hᵀ · dz` with
//! `k` = the rows of a batch part, 32), each writing the whole 1 MB
//! gradient. Here everything that does not depend on the recurrence is one
//! large product per window instead: the inputs of layers above the first
//! (`X · W_x`), the dense layer and its backward pass, and every weight
//! gradient (`Hᵀ · DZ` over all `rows × window` positions at once). Only
//! `h · W_h` forward and `dz · W_hᵀ` backward stay per step. Products are
//! the `gemm` crate's (which burn's CPU backend also uses), single-threaded:
//! a batch's parts already run on their own threads.
//!
//! The maths is [`crate::model::Model::forward`]'s with dropout on every
//! layer's output and the masked mean cross-entropy of [`super::step`];
//! dropout masks are drawn from the same generator in the same order (per
//! window, per layer, per time step, `rows × hidden`), so both paths train
//! the same network from the same seed.
//!
//! Layout: activations are time-major, `[time · rows, width]`, so that one
//! time step's rows are contiguous (the recurrent products) and all of a
//! window's positions are one matrix (the large ones).

use super::step::Batch;
use crate::encoding::NUM_CLASSES;
use crate::fused::{FORGET_BIAS, exp, sigmoid, tanh};
use crate::generate::rules::ClassSet;
use crate::hparams::HParams;
use crate::metrics::Counts;
use crate::rng::Rng;

/// The class of STEP_END, counted apart in [`Counts`].
const STEP_END_CLASS: usize = 2;

/// A row-major matrix, or the transpose of one, as a product's operand.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// The first `rows × cols` values of `data`, row by row.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    fn t(self) -> Mat<'a> {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `c += a · b`, `c` row-major `a.rows × b.cols`.
fn add_product(c: &mut [f32], a: Mat, b: Mat) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions");
    assert!(c.len() >= m * n, "product's destination");
    let last = |x: &Mat| if x.rows == 0 || x.cols == 0 { 0 } else { (x.rows - 1) * x.row_stride + (x.cols - 1) * x.col_stride + 1 };
    assert!(last(&a) <= a.data.len() && last(&b) <= b.data.len(), "product's operands");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: every index the product touches is within the slices (checked
    // above), and `c` does not alias `a` or `b` (a `&mut` beside two `&`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Adds each row of `m` (`width` wide) to `sums`.
fn add_column_sums(sums: &mut [f32], m: &[f32], width: usize) {
    for row in m.chunks_exact(width) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
}

/// The parameters of one LSTM layer on the host.
struct Layer<'a> {
    /// `[input + hidden, 4 · hidden]`: the input's rows, then the hidden state's.
    kernel: &'a [f32],
    bias: &'a [f32],
    input: usize,
    hidden: usize,
}

impl<'a> Layer<'a> {
    fn w_x(&self) -> Mat<'a> {
        Mat::new(&self.kernel[..self.input * 4 * self.hidden], self.input, 4 * self.hidden)
    }

    fn w_h(&self) -> Mat<'a> {
        Mat::new(&self.kernel[self.input * 4 * self.hidden..], self.hidden, 4 * self.hidden)
    }
}

/// One window of a batch, packed: at each time step only the rows whose
/// sequence goes on (padding costs nothing), in the order of
/// [`by_length`], longest first, so that the rows still going are always
/// the first ones. Positions are time-major: time step `t` is
/// `offsets[t]..offsets[t + 1]`.
struct Window {
    offsets: Vec<usize>,
    inputs: Vec<usize>,
    labels: Vec<usize>,
    /// `[positions, CONTEXT_WIDTH]` of 0 and 1 for a network with context inputs.
    features: Option<Vec<f32>>,
    /// Per position, what the style forbids next (empty without a rules penalty).
    forbidden: Vec<ClassSet>,
}

/// The batch's rows, longest sequence first, and each row's length.
fn by_length(batch: &Batch) -> (Vec<usize>, Vec<usize>) {
    let lengths: Vec<usize> = (0..batch.rows).map(|r| batch.mask[r * batch.time..(r + 1) * batch.time].iter().filter(|&&m| m > 0.0).count()).collect();
    let mut order: Vec<usize> = (0..batch.rows).collect();
    order.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
    (order, lengths)
}

impl Window {
    fn new(batch: &Batch, order: &[usize], lengths: &[usize], start: usize, time: usize) -> Window {
        let mut offsets = vec![0];
        let mut cells = Vec::new();
        for t in 0..time {
            cells.extend(order.iter().take_while(|&&r| lengths[r] > start + t).map(|&r| r * batch.time + start + t));
            offsets.push(cells.len());
        }
        let features = (!batch.features.is_empty()).then(|| {
            let width = crate::context::CONTEXT_WIDTH;
            let mut dense = vec![0.0; cells.len() * width];
            for (k, &at) in cells.iter().enumerate() {
                for &i in &batch.features[at] {
                    dense[k * width + i as usize] = 1.0;
                }
            }
            dense
        });
        Window {
            offsets,
            inputs: cells.iter().map(|&at| batch.inputs[at] as usize).collect(),
            labels: cells.iter().map(|&at| batch.labels[at] as usize).collect(),
            features,
            forbidden: if batch.forbidden.is_empty() { Vec::new() } else { cells.iter().map(|&at| batch.forbidden[at]).collect() },
        }
    }

    fn time(&self) -> usize {
        self.offsets.len() - 1
    }

    fn positions(&self) -> usize {
        self.inputs.len()
    }

    /// The rows still going at time step `t`.
    fn active(&self, t: usize) -> usize {
        self.offsets[t + 1] - self.offsets[t]
    }
}

/// What a layer's forward pass keeps for its backward pass, all
/// `[positions, ·]` except the initial state (the rows going at the
/// window's start). One per layer serves all
/// of a batch's windows: buffers this large (the gates are 32 MB) would
/// otherwise come fresh from the system each time, page by page.
#[derive(Default)]
struct Tape {
    h0: Vec<f32>,
    c0: Vec<f32>,
    /// The gates after their functions, `i | j | f | o` (the backward pass
    /// overwrites them with the pre-activations' gradients).
    gates: Vec<f32>,
    c: Vec<f32>,
    tanh_c: Vec<f32>,
    h: Vec<f32>,
    /// Each position's previous hidden state (the recurrent input).
    h_prev: Vec<f32>,
    /// Dropout's multipliers (0 or 1 / keep), absent without dropout.
    dropout: Option<Vec<f32>>,
    /// `h` times the dropout multipliers: the next layer's input.
    output: Vec<f32>,
}

/// A layer's input: the first layer's events (and context features), or the
/// output of the layer below.
#[derive(Clone)]
enum Input<'a> {
    Events { classes: &'a [usize], features: Option<&'a [f32]> },
    Below(&'a [f32]),
}

crate::fused::vectorised! {
    /// The cell forward for one row: `gates` holds the pre-activations on
    /// entry and the gate values on exit.
    fn cell_forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], tanh_c: &mut [f32], h: &mut [f32]) {
        let n = c.len();
        let (gi, rest) = gates.split_at_mut(n);
        let (gj, rest) = rest.split_at_mut(n);
        let (gf, go) = rest.split_at_mut(n);
        // Every slice exactly n long: no bounds checks in the loop.
        let (go, c_prev, tanh_c, h) = (&mut go[..n], &c_prev[..n], &mut tanh_c[..n], &mut h[..n]);
        for u in 0..n {
            let (i, j, f, o) = (sigmoid(gi[u]), tanh(gj[u]), sigmoid(gf[u] + FORGET_BIAS), sigmoid(go[u]));
            c[u] = c_prev[u] * f + i * j;
            tanh_c[u] = tanh(c[u]);
            h[u] = tanh_c[u] * o;
            (gi[u], gj[u], gf[u], go[u]) = (i, j, f, o);
        }
    }
}

crate::fused::vectorised! {
    /// The cell backward for one row: `gates` holds the gate values on entry
    /// and their pre-activations' gradients on exit; `dc` carries the cell
    /// state's gradient from the next time step in and to the previous one out.
    fn cell_backward(gates: &mut [f32], c_prev: &[f32], tanh_c: &[f32], dh: &[f32], dc: &mut [f32]) {
        let n = dc.len();
        let (gi, rest) = gates.split_at_mut(n);
        let (gj, rest) = rest.split_at_mut(n);
        let (gf, go) = rest.split_at_mut(n);
        let (go, c_prev, tanh_c, dh) = (&mut go[..n], &c_prev[..n], &tanh_c[..n], &dh[..n]);
        for u in 0..n {
            let (i, j, f, o, tc) = (gi[u], gj[u], gf[u], go[u], tanh_c[u]);
            let dcu = dh[u] * o * (1.0 - tc * tc) + dc[u];
            gi[u] = dcu * j * i * (1.0 - i);
            gj[u] = dcu * i * (1.0 - j * j);
            gf[u] = dcu * c_prev[u] * f * (1.0 - f);
            go[u] = dh[u] * tc * o * (1.0 - o);
            dc[u] = dcu * f;
        }
    }
}

crate::fused::vectorised! {
    /// `e^(x − max)` in place, for the softmax.
    fn exp_shifted(row: &mut [f32], max: f32) {
        row.iter_mut().for_each(|x| *x = exp(*x - max));
    }
}

/// `v` made `len` long, for values about to be written over.
fn resized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    v
}

/// `v` made `len` zeros, for a product to add into.
fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

/// `v` made `n` copies of `row`: a bias for every position.
fn repeated(v: &mut Vec<f32>, row: &[f32], n: usize) {
    v.clear();
    (0..n).for_each(|_| v.extend_from_slice(row));
}

/// Layer `l`'s input: the window's events for the first, else the output of
/// the layer below (`below` are the tapes of the layers under `l`).
fn input_of<'a>(below: &'a [Tape], events: &Input<'a>) -> Input<'a> {
    below.last().map_or_else(|| events.clone(), |b| Input::Below(&b.output))
}

/// One layer over a window from the state `(tape.h0, tape.c0)`. Dropout
/// draws a multiplier for every row of the batch (`order.len()`), going or
/// not, as burn's path does.
fn forward_layer(layer: &Layer, input: Input, w: &Window, order: &[usize], tape: &mut Tape, keep: f64, rng: &mut Rng) {
    let (hidden, width) = (layer.hidden, 4 * layer.hidden);
    let n = w.positions();
    let Tape { h0, c0, gates, c, tanh_c, h, h_prev, dropout, output } = tape;
    repeated(gates, layer.bias, n);
    match input {
        Input::Events { classes, features } => {
            for (row, &class) in gates.chunks_exact_mut(width).zip(classes) {
                for (g, w) in row.iter_mut().zip(&layer.kernel[class * width..(class + 1) * width]) {
                    *g += w;
                }
            }
            if let Some(features) = features {
                let context = crate::context::CONTEXT_WIDTH;
                let w_ctx = Mat::new(&layer.kernel[NUM_CLASSES * width..], context, width);
                add_product(gates, Mat::new(features, n, context), w_ctx);
            }
        }
        Input::Below(x) => add_product(gates, Mat::new(x, n, layer.input), layer.w_x()),
    }
    let (c, tanh_c, h, h_prev) = (resized(c, n * hidden), resized(tanh_c, n * hidden), resized(h, n * hidden), resized(h_prev, n * hidden));
    for t in 0..w.time() {
        let (k, active) = (w.offsets[t], w.active(t));
        let now = k * hidden..(k + active) * hidden;
        // The going rows are the first of the previous step's.
        let before = if t == 0 { 0 } else { w.offsets[t - 1] * hidden };
        h_prev[now.clone()].copy_from_slice(&(if t == 0 { &h0[..] } else { &h[..] })[before..before + active * hidden]);
        let g = &mut gates[k * width..(k + active) * width];
        add_product(g, Mat::new(&h_prev[now.clone()], active, hidden), layer.w_h());
        let (c_done, c_now) = c.split_at_mut(now.start);
        let c_prev = &(if t == 0 { &c0[..] } else { &c_done[..] })[before..before + active * hidden];
        for i in 0..active {
            let unit = i * hidden..(i + 1) * hidden;
            let at = now.start + unit.start..now.start + unit.end;
            cell_forward(&mut g[i * width..(i + 1) * width], &c_prev[unit.clone()], &mut c_now[unit], &mut tanh_c[at.clone()], &mut h[at]);
        }
    }
    output.clear();
    if keep < 1.0 {
        let (keep, m) = (keep as f32, dropout.get_or_insert_default());
        let mut drawn = vec![0.0; order.len() * hidden];
        m.clear();
        for t in 0..w.time() {
            drawn.iter_mut().for_each(|d| *d = if rng.next_f32() < keep { 1.0 / keep } else { 0.0 });
            for &r in &order[..w.active(t)] {
                m.extend_from_slice(&drawn[r * hidden..(r + 1) * hidden]);
            }
        }
        output.extend(h.iter().zip(m.iter()).map(|(a, b)| a * b));
    } else {
        output.extend_from_slice(h);
    }
}

/// One layer back through time: `dh` is the gradient of its output (before
/// dropout is undone here, in place); adds the layer's weight gradients to
/// `kernel` and `bias`, and when its input is the layer below's output puts
/// that input's gradient in `dx`.
#[allow(clippy::too_many_arguments)]
fn backward_layer(layer: &Layer, tape: &mut Tape, input: &Input, w: &Window, dh: &mut [f32], kernel: &mut [f32], bias: &mut [f32], dx: &mut Vec<f32>) {
    let (hidden, width) = (layer.hidden, 4 * layer.hidden);
    if let Some(m) = &tape.dropout {
        dh.iter_mut().zip(m).for_each(|(d, m)| *d *= m);
    }
    // The cell state's gradient per row; a row that ends at a step starts from zero there.
    let mut dc = vec![0.0; w.active(0) * hidden];
    for t in (0..w.time()).rev() {
        let (k, active) = (w.offsets[t], w.active(t));
        let (g_now, g_later) = tape.gates.split_at_mut(w.offsets[t + 1] * width);
        if t + 1 < w.time() {
            let going = w.active(t + 1);
            add_product(&mut dh[k * hidden..(k + going) * hidden], Mat::new(g_later, going, width), layer.w_h().t());
        }
        let before = if t == 0 { 0 } else { w.offsets[t - 1] * hidden };
        let c_before = if t == 0 { &tape.c0[..] } else { &tape.c[..] };
        for i in 0..active {
            let unit = (k + i) * hidden..(k + i + 1) * hidden;
            cell_backward(
                &mut g_now[(k + i) * width..(k + i + 1) * width],
                &c_before[before + i * hidden..before + (i + 1) * hidden],
                &tape.tanh_c[unit.clone()],
                &dh[unit],
                &mut dc[i * hidden..(i + 1) * hidden],
            );
        }
    }
    let dz = &tape.gates;
    let n = w.positions();
    let (dw_x, dw_h) = kernel.split_at_mut(layer.input * width);
    add_product(dw_h, Mat::new(&tape.h_prev, n, hidden).t(), Mat::new(dz, n, width));
    add_column_sums(bias, dz, width);
    match input {
        Input::Events { classes, features } => {
            for (row, &class) in dz.chunks_exact(width).zip(*classes) {
                for (g, d) in dw_x[class * width..(class + 1) * width].iter_mut().zip(row) {
                    *g += d;
                }
            }
            if let Some(features) = features {
                let context = crate::context::CONTEXT_WIDTH;
                add_product(&mut dw_x[NUM_CLASSES * width..], Mat::new(features, n, context).t(), Mat::new(dz, n, width));
            }
        }
        Input::Below(x) => {
            add_product(dw_x, Mat::new(x, n, layer.input).t(), Mat::new(dz, n, width));
            zeroed(dx, n * layer.input);
            add_product(dx, Mat::new(dz, n, width), layer.w_x().t());
        }
    }
}

/// Log-softmax cross-entropy over the window's positions: counts them, and
/// turns `logits` into the gradient of the summed loss divided by `total`,
/// the loss with `penalty` times the unlikelihood of what the style forbids
/// where the window has it ([`HParams::rules_penalty`]; the counts' loss
/// stays the cross-entropy, comparable with the original's).
fn loss_gradient(logits: &mut [f32], window: &Window, total: f64, penalty: f32) -> Counts {
    let mut counts = Counts::default();
    let scale = (1.0 / total) as f32;
    for (k, (row, &label)) in logits.chunks_exact_mut(NUM_CLASSES).zip(&window.labels).enumerate() {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let best = row.iter().position(|&x| x == max).unwrap_or(0);
        exp_shifted(row, max);
        // Eight partial sums, so that the sum vectorises.
        let mut lanes = [0.0f32; 8];
        for chunk in row.chunks(8) {
            lanes.iter_mut().zip(chunk).for_each(|(s, x)| *s += x);
        }
        let sum: f32 = lanes.iter().sum();
        counts.loss_sum -= (row[label] / sum).ln() as f64;
        counts.events += 1.0;
        counts.correct += (best == label) as u8 as f64;
        if label == STEP_END_CLASS {
            counts.step_end_events += 1.0;
            counts.step_end_correct += (best == label) as u8 as f64;
        }
        for x in row.iter_mut() {
            *x *= scale / sum;
        }
        if let Some(forbidden) = window.forbidden.get(k).filter(|f| penalty > 0.0 && !f.is_empty()) {
            add_unlikelihood(row, forbidden, penalty, scale);
        }
        row[label] -= scale;
    }
    counts
}

/// Adds the gradient of `penalty · −ln(1 − P)`, `P` the probability of the
/// classes in `forbidden`, to `row`, which holds the softmax times `scale`:
/// `∂/∂z_j = penalty · p_j (1[j forbidden] − P) / (1 − P)`.
fn add_unlikelihood(row: &mut [f32], forbidden: &ClassSet, penalty: f32, scale: f32) {
    let mass: f32 = forbidden.iter().map(|c| row[c]).sum::<f32>() / scale;
    // The label is never forbidden, so 1 − P ≥ its probability; the floor
    // only keeps rounding from dividing by nothing.
    let rest = (1.0 - mass).max(1e-6);
    let shrink = 1.0 - penalty * mass / rest;
    let boost = penalty / rest;
    for (j, x) in row.iter_mut().enumerate() {
        *x *= if forbidden.contains(j) { shrink + boost } else { shrink };
    }
}

/// The gradients of `batch`'s summed loss divided by `total`, for the
/// parameters `params` (host values in [`crate::bundle::expected_shapes`]
/// order), window by window with the state carried over; and the counts.
pub(super) fn gradients(params: &[Vec<f32>], hparams: &HParams, batch: &Batch, total: f64, window: usize, dropout_rng: &mut Rng) -> (Vec<Vec<f32>>, Counts) {
    let layers: Vec<Layer> = hparams
        .rnn_layer_sizes
        .iter()
        .enumerate()
        .scan(hparams.input_width(), |input, (l, &hidden)| {
            let layer = Layer { kernel: &params[2 * l], bias: &params[2 * l + 1], input: *input, hidden };
            *input = hidden;
            Some(layer)
        })
        .collect();
    let (dense_w, dense_b) = (&params[2 * layers.len()], &params[2 * layers.len() + 1]);
    let top = layers.last().map_or(0, |l| l.hidden);
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let (order, lengths) = by_length(batch);
    let mut tapes: Vec<Tape> = layers
        .iter()
        .map(|l| Tape { h0: vec![0.0; batch.rows * l.hidden], c0: vec![0.0; batch.rows * l.hidden], ..Tape::default() })
        .collect();
    let (mut logits, mut dh, mut dx) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = Counts::default();
    let mut start = 0;
    while start < batch.time {
        let w = Window::new(batch, &order, &lengths, start, window.min(batch.time - start));
        let events = Input::Events { classes: &w.inputs, features: w.features.as_deref() };
        let n = w.positions();
        for (l, layer) in layers.iter().enumerate() {
            let (below, this) = tapes.split_at_mut(l);
            forward_layer(layer, input_of(below, &events), &w, &order, &mut this[0], hparams.dropout_keep_prob, dropout_rng);
        }
        let y = tapes.last().map(|t| &t.output[..]).unwrap_or(&[]);
        repeated(&mut logits, dense_b, n);
        add_product(&mut logits, Mat::new(y, n, top), Mat::new(dense_w, top, NUM_CLASSES));
        counts.add(&loss_gradient(&mut logits, &w, total, hparams.rules_penalty as f32));
        let (g_weights, g_biases) = grads.split_at_mut(2 * layers.len()).1.split_at_mut(1);
        add_product(&mut g_weights[0], Mat::new(y, n, top).t(), Mat::new(&logits, n, NUM_CLASSES));
        add_column_sums(&mut g_biases[0], &logits, NUM_CLASSES);
        zeroed(&mut dh, n * top);
        add_product(&mut dh, Mat::new(&logits, n, NUM_CLASSES), Mat::new(dense_w, top, NUM_CLASSES).t());
        for l in (0..layers.len()).rev() {
            let (below, this) = tapes.split_at_mut(l);
            let (kernel, rest) = grads[2 * l..].split_first_mut().expect("a kernel per layer");
            backward_layer(&layers[l], &mut this[0], &input_of(below, &events), &w, &mut dh, kernel, &mut rest[0], &mut dx);
            std::mem::swap(&mut dh, &mut dx);
        }
        // The next window starts from the state of the rows going at this
        // one's last step (detached).
        let last = w.offsets[w.time() - 1]..n;
        for (tape, layer) in tapes.iter_mut().zip(&layers) {
            let units = last.start * layer.hidden..last.end * layer.hidden;
            tape.h0 = tape.h[units.clone()].to_vec();
            tape.c0 = tape.c[units].to_vec();
        }
        start += w.time();
    }
    (grads, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss the gradient is of, in f64: cross-entropy plus the
    /// unlikelihood term, over `total`.
    fn penalised_loss(logits: &[f64], labels: &[usize], forbidden: &[ClassSet], penalty: f64, total: f64) -> f64 {
        logits
            .chunks_exact(NUM_CLASSES)
            .zip(labels)
            .zip(forbidden)
            .map(|((z, &label), f)| {
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                let sum: f64 = z.iter().map(|x| (x - max).exp()).sum();
                let p = |c: usize| (z[c] - max).exp() / sum;
                let mass: f64 = f.iter().map(p).sum();
                -p(label).ln() - penalty * (1.0 - mass).ln()
            })
            .sum::<f64>()
            / total
    }

    #[test]
    fn the_rules_penalty_s_gradient_is_its_loss_s() {
        let mut rng = Rng::new(5);
        let logits: Vec<f32> = (0..2 * NUM_CLASSES).map(|_| (rng.next_f64() * 6.0 - 3.0) as f32).collect();
        let labels = vec![5, 2];
        let mut forbidden = [ClassSet::default(); 2];
        (100..259).chain([3, 4]).for_each(|c| forbidden[0].insert(c));
        [0, 1, 7, 200].into_iter().for_each(|c| forbidden[1].insert(c));
        let window = Window { offsets: vec![0, 2], inputs: vec![0, 0], labels: labels.clone(), features: None, forbidden: forbidden.to_vec() };
        let (penalty, total) = (0.7, 3.0);
        let mut gradient = logits.clone();
        let counts = loss_gradient(&mut gradient, &window, total, penalty as f32);
        let wide: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let cross_entropy = penalised_loss(&wide, &labels, &forbidden, 0.0, 1.0);
        assert!((counts.loss_sum - cross_entropy).abs() < 1e-4, "the counted loss is the cross-entropy alone");
        for j in (0..2 * NUM_CLASSES).step_by(7).chain([3, 5, 100, NUM_CLASSES + 2, NUM_CLASSES + 7]) {
            let at = |d: f64| {
                let mut z = wide.clone();
                z[j] += d;
                penalised_loss(&z, &labels, &forbidden, penalty, total)
            };
            let numeric = (at(1e-5) - at(-1e-5)) / 2e-5;
            assert!((gradient[j] as f64 - numeric).abs() < 1e-4, "logit {j}: {} against {numeric}", gradient[j]);
        }
    }
}
