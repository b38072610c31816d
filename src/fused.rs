//! The fast generation step: the whole network for a batch of sequences, one
//! event each, in plain Rust on the CPU (natively and in wasm).
//!
//! Burn's generic tensor ops cost far more in overhead than in arithmetic at
//! generation sizes (a `[10, 512] · [512, 1024]` product per layer and
//! step), so the step is fused by hand:
//!
//! - the weights are repacked once into column panels of [`PANEL`] columns,
//!   each panel's rows contiguous, so that one pass over a panel serves the
//!   whole batch while it sits in L1 cache;
//! - within a panel, blocks of up to [`BLOCK`] batch rows keep their
//!   accumulators in registers across all weight rows (weight rows outer,
//!   batch inner), which LLVM auto-vectorises;
//! - the first layer's one-hot input is a row lookup, not a product;
//! - natively on x86-64 an AVX2 + FMA copy of the kernel is chosen at run
//!   time when the CPU has them.
//!
//! The maths is exactly [`crate::model::Model::forward`]'s (TensorFlow's
//! `BasicLSTMCell`, forget bias 1.0 added at run time), in f32.
//!
//! It is built from a bundle's checked [`Weights`], host values, so it never
//! reads a device and works in the browser as it does natively.

use std::ops::{Add, Div, Mul, Sub};

use crate::bundle::Weights;
use crate::encoding::NUM_CLASSES;

/// TensorFlow's `BasicLSTMCell` forget bias, added at run time (here and in
/// burn's model, [`crate::model`]).
pub const FORGET_BIAS: f32 = 1.0;

/// Columns per packed panel (two AVX registers).
pub const PANEL: usize = 16;
/// Batch rows whose accumulators stay in registers together (SSE2: 16
/// registers of 4 lanes).
pub const BLOCK: usize = 4;
/// The same with AVX2 (16 registers of 8 lanes: 12 accumulators, 2 weight
/// registers, 1 broadcast).
pub const AVX_BLOCK: usize = 6;

/// A `[rows, cols]` matrix repacked as `ceil(cols / PANEL)` panels of
/// `[rows, PANEL]`, zero-padded on the right.
#[derive(Clone, Debug)]
struct Packed {
    rows: usize,
    panels: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs rows `first..first + rows` of the row-major `src` (`src_cols` wide).
    fn new(src: &[f32], src_cols: usize, first: usize, rows: usize) -> Packed {
        let panels = src_cols.div_ceil(PANEL);
        let mut data = vec![0.0f32; panels * rows * PANEL];
        // Slice copies, not a loop over elements: the page packs its model
        // while the engine still runs V8's unoptimised first-tier code.
        for r in 0..rows {
            let row = &src[(first + r) * src_cols..(first + r + 1) * src_cols];
            for (p, piece) in row.chunks(PANEL).enumerate() {
                let at = (p * rows + r) * PANEL;
                data[at..at + piece.len()].copy_from_slice(piece);
            }
        }
        Packed { rows, panels, data }
    }

    /// Padded width: the row stride of the outputs.
    fn stride(&self) -> usize {
        self.panels * PANEL
    }
}

/// `z[b] += x[b] · W` for `b < batch`; `x` rows are `xstride` apart and
/// `W.rows` long, `z` rows `W.stride()` apart.
fn gemm_acc(w: &Packed, x: &[f32], xstride: usize, batch: usize, z: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { gemm_avx2(w, x, xstride, batch, z) };
            return;
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::gemm(w, x, xstride, batch, z);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    gemm_generic::<false, BLOCK>(w, x, xstride, batch, z);
}

/// The wasm SIMD128 kernel (the page's CPU path; `build.sh` builds the wasm
/// package with `+simd128`). The wasm build uses `opt-level = "s"`, under
/// which LLVM does not vectorise loops, so the kernel is written with
/// `core::arch::wasm32` intrinsics: per panel row, the [`PANEL`] weights are
/// four `f32x4` registers, and each of up to [`simd128::BLOCK`] batch rows
/// keeps its four accumulators in registers across all weight rows.
///
/// It computes exactly what the portable kernel does, bit for bit: the
/// same `acc + x · w` (a multiply then an add, no fused multiply-add) per
/// element, over the weight rows in the same order.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::{PANEL, Packed};
    use super::Lanes;
    use core::arch::wasm32::{
        f32x4_add, f32x4_div, f32x4_mul, f32x4_pmax, f32x4_pmin, f32x4_splat, f32x4_sub, i32x4_add, i32x4_shl, i32x4_splat, v128, v128_load,
        v128_load32_splat, v128_store,
    };
    use std::ops::{Add, Div, Mul, Sub};

    /// Four f32 lanes, for the cell's functions ([`super::Lanes`]).
    #[derive(Clone, Copy)]
    pub struct F4(v128);

    impl F4 {
        /// The first four of `s`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> F4 {
            assert!(s.len() >= 4);
            // SAFETY: four floats are readable at s; wasm loads need no alignment.
            F4(unsafe { v128_load(s.as_ptr() as *const v128) })
        }

        /// Into the first four of `s`.
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            assert!(s.len() >= 4);
            // SAFETY: four floats are writable at s.
            unsafe { v128_store(s.as_mut_ptr() as *mut v128, self.0) }
        }
    }

    macro_rules! lanewise {
        ($($op:ident $f:ident $simd:ident),+) => {$(
            impl $op for F4 {
                type Output = F4;
                #[inline(always)]
                fn $f(self, other: F4) -> F4 {
                    F4($simd(self.0, other.0))
                }
            }
        )+};
    }
    lanewise!(Add add f32x4_add, Sub sub f32x4_sub, Mul mul f32x4_mul, Div div f32x4_div);

    impl Lanes for F4 {
        #[inline(always)]
        fn splat(x: f32) -> F4 {
            F4(f32x4_splat(x))
        }
        #[inline(always)]
        fn clamp(self, lo: f32, hi: f32) -> F4 {
            F4(f32x4_pmin(f32x4_pmax(self.0, f32x4_splat(lo)), f32x4_splat(hi)))
        }
        #[inline(always)]
        fn pow2_of_rounded(t: F4) -> F4 {
            F4(i32x4_shl(i32x4_add(t.0, i32x4_splat(127)), 23))
        }
    }

    /// Batch rows per register block: 2 × 4 accumulators, 4 weight
    /// registers and the broadcasts fit V8's 15 allocatable x64 vector
    /// registers. Measured in Chromium: 3 or 4 spill and run batch 10
    /// about 35 % slower.
    pub const BLOCK: usize = 2;

    #[inline(always)]
    unsafe fn load4(p: *const f32) -> [v128; 4] {
        // SAFETY (all four): the caller guarantees 16 readable floats at p;
        // wasm loads need no alignment.
        unsafe {
            [
                v128_load(p as *const v128),
                v128_load(p.add(4) as *const v128),
                v128_load(p.add(8) as *const v128),
                v128_load(p.add(12) as *const v128),
            ]
        }
    }

    #[inline(always)]
    unsafe fn store4(p: *mut f32, a: [v128; 4]) {
        // SAFETY: the caller guarantees 16 writable floats at p.
        unsafe {
            v128_store(p as *mut v128, a[0]);
            v128_store(p.add(4) as *mut v128, a[1]);
            v128_store(p.add(8) as *mut v128, a[2]);
            v128_store(p.add(12) as *mut v128, a[3]);
        }
    }

    /// `a += s · w`, lane by lane, as a multiply then an add.
    #[inline(always)]
    fn mul_add(a: &mut [v128; 4], s: v128, w: &[v128; 4]) {
        a[0] = f32x4_add(a[0], f32x4_mul(s, w[0]));
        a[1] = f32x4_add(a[1], f32x4_mul(s, w[1]));
        a[2] = f32x4_add(a[2], f32x4_mul(s, w[2]));
        a[3] = f32x4_add(a[3], f32x4_mul(s, w[3]));
    }

    /// One block of batch rows against one panel: `z[k] += x[k] · panel`.
    /// Each accumulator and input pointer is a named local (no arrays
    /// indexed in loops), so they stay in registers without unrolling,
    /// which `opt-level = "s"` would not do.
    macro_rules! block {
        ($name:ident; $($k:literal $acc:ident $xk:ident),+) => {
            /// SAFETY: `panel` holds `rows * PANEL` floats; for each row
            /// `k` of the block, `x + k * xstride` holds `rows` floats and
            /// `z + k * zstride` 16.
            #[inline(always)]
            unsafe fn $name(panel: *const f32, rows: usize, x: *const f32, xstride: usize, z: *mut f32, zstride: usize) {
                unsafe {
                    $(
                        let mut $acc = load4(z.add($k * zstride));
                        let $xk = x.add($k * xstride);
                    )+
                    let mut wrow = panel;
                    for r in 0..rows {
                        let w = load4(wrow);
                        $( mul_add(&mut $acc, v128_load32_splat($xk.add(r) as *const u32), &w); )+
                        wrow = wrow.add(PANEL);
                    }
                    $( store4(z.add($k * zstride), $acc); )+
                }
            }
        };
    }
    block!(block1; 0 a0 x0);
    block!(block2; 0 a0 x0, 1 a1 x1);

    pub fn gemm(w: &Packed, x: &[f32], xstride: usize, batch: usize, z: &mut [f32]) {
        let rows = w.rows;
        let zstride = w.stride();
        assert!(z.len() >= batch * zstride);
        assert!(batch == 0 || x.len() >= (batch - 1) * xstride + rows);
        assert!(w.data.len() >= w.panels * rows * PANEL);
        for p in 0..w.panels {
            // SAFETY: in bounds by the asserts above: the panel is inside
            // `w.data`, batch rows `b..b + n` are inside `x` and `z`, and
            // the panel's 16 columns inside each `z` row (`zstride` is a
            // multiple of PANEL).
            unsafe {
                let panel = w.data.as_ptr().add(p * rows * PANEL);
                let mut b = 0;
                while b < batch {
                    let n = (batch - b).min(BLOCK);
                    let xb = x.as_ptr().add(b * xstride);
                    let zb = z.as_mut_ptr().add(b * zstride + p * PANEL);
                    match n {
                        2 => block2(panel, rows, xb, xstride, zb, zstride),
                        _ => block1(panel, rows, xb, xstride, zb, zstride),
                    }
                    b += n;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(w: &Packed, x: &[f32], xstride: usize, batch: usize, z: &mut [f32]) {
    gemm_generic::<true, AVX_BLOCK>(w, x, xstride, batch, z);
}

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
#[inline(always)]
fn gemm_generic<const FMA: bool, const MAX: usize>(w: &Packed, x: &[f32], xstride: usize, batch: usize, z: &mut [f32]) {
    let rows = w.rows;
    let zstride = w.stride();
    assert!(z.len() >= batch * zstride);
    assert!(batch == 0 || x.len() >= (batch - 1) * xstride + rows);
    for p in 0..w.panels {
        let panel = &w.data[p * rows * PANEL..(p + 1) * rows * PANEL];
        let mut b = 0;
        while b < batch {
            let n = even_block(batch - b, MAX);
            match n {
                6 => block::<6, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
                5 => block::<5, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
                4 => block::<4, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
                3 => block::<3, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
                2 => block::<2, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
                _ => block::<1, FMA>(panel, rows, x, xstride, b, z, zstride, p * PANEL),
            }
            b += n;
        }
    }
}

/// The next block's rows when `left` rows remain, blocks of at most `max`:
/// as even as the fewest blocks allow (8 as 4 + 4, not 6 + 2), because a
/// block of one to three rows keeps too few sums in flight to fill the
/// multiply-add units. Which block a row is in does not change its sums.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn even_block(left: usize, max: usize) -> usize {
    left.div_ceil(left.div_ceil(max))
}

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const N: usize, const FMA: bool>(
    panel: &[f32],
    rows: usize,
    x: &[f32],
    xstride: usize,
    b0: usize,
    z: &mut [f32],
    zstride: usize,
    col0: usize,
) {
    let mut acc = [[0.0f32; PANEL]; N];
    for (k, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&z[(b0 + k) * zstride + col0..(b0 + k) * zstride + col0 + PANEL]);
    }
    let xs: [&[f32]; N] = std::array::from_fn(|k| &x[(b0 + k) * xstride..(b0 + k) * xstride + rows]);
    for (r, wrow) in panel.chunks_exact(PANEL).enumerate() {
        let wrow: &[f32; PANEL] = wrow.try_into().expect("panel row");
        for k in 0..N {
            // SAFETY: every xs[k] is exactly `rows` long and r < rows.
            let s = unsafe { *xs[k].get_unchecked(r) };
            for j in 0..PANEL {
                acc[k][j] = if FMA { s.mul_add(wrow[j], acc[k][j]) } else { acc[k][j] + s * wrow[j] };
            }
        }
    }
    for (k, a) in acc.iter().enumerate() {
        z[(b0 + k) * zstride + col0..(b0 + k) * zstride + col0 + PANEL].copy_from_slice(a);
    }
}

/// One f32, or (in wasm) four in a SIMD register: the cell's functions
/// are written once for both. Natively LLVM vectorises the scalar loop;
/// under the wasm build's `opt-level = "s"` it does not, so there the loop
/// takes four units at a time (see [`update_cells`]).
pub(crate) trait Lanes: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> {
    fn splat(x: f32) -> Self;
    fn clamp(self, lo: f32, hi: f32) -> Self;
    /// `2^n` from `t = 1.5 · 2^23 + n` (`n` whole, `-126 ≤ n ≤ 127`): `n`
    /// is in t's low bits, offset by 2^22, which the shift drops.
    fn pow2_of_rounded(t: Self) -> Self;
}

impl Lanes for f32 {
    #[inline(always)]
    fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn clamp(self, lo: f32, hi: f32) -> f32 {
        f32::clamp(self, lo, hi)
    }
    #[inline(always)]
    fn pow2_of_rounded(t: f32) -> f32 {
        f32::from_bits(t.to_bits().wrapping_add(127) << 23)
    }
}

/// `e^x` without a call into libm, branch-free so that it vectorises:
/// Cephes' `expf` (x = n·ln 2 + r, a degree-6 polynomial for `e^r`, `2^n`
/// put together in the exponent bits), within 2 ulp over the clamped range
/// `[-87, 88]`, where `e^x` is a normal f32. libm's `expf` and `tanhf`
/// were 43 % of a batch-10 step in the page and half of one natively.
#[inline(always)]
pub(crate) fn exp<T: Lanes>(x: T) -> T {
    let k = T::splat;
    // 1.5 · 2^23: adding it rounds to a whole number, kept in the low bits.
    let round = k(12_582_912.0);
    let x = x.clamp(-87.0, 88.0);
    let t = x * k(std::f32::consts::LOG2_E) + round;
    let n = t - round;
    // ln 2 in two parts, the first 355/512 (written as f32 rounds it), so
    // that n times it is exact.
    let r = x - n * k(0.693_359_4) + n * k(2.121_944_4e-4);
    let mut p = k(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = p * r + k(c);
    }
    (p * r * r + r + k(1.0)) * T::pow2_of_rounded(t)
}

#[inline(always)]
pub(crate) fn sigmoid<T: Lanes>(x: T) -> T {
    T::splat(1.0) / (T::splat(1.0) + exp(T::splat(0.0) - x))
}

/// `tanh x = 2σ(2x) − 1`: within 2e-7 of libm's (absolute; the relative
/// error grows near 0, where the cell's sums are far larger).
#[inline(always)]
pub(crate) fn tanh<T: Lanes>(x: T) -> T {
    T::splat(2.0) * sigmoid(T::splat(2.0) * x) - T::splat(1.0)
}

/// The cell: `c' = c · σ(f + 1) + σ(i) · tanh(j)`, `h' = tanh(c') · σ(o)`.
#[inline(always)]
fn cell<T: Lanes>(c: T, i: T, j: T, f: T, o: T) -> (T, T) {
    let c = c * sigmoid(f + T::splat(FORGET_BIAS)) + sigmoid(i) * tanh(j);
    (c, tanh(c) * sigmoid(o))
}

/// Defines a function whose body is compiled twice: for any CPU, and on
/// x86-64 a second time for AVX2, chosen at run time when the CPU has it.
/// The cell's loops are element-wise maths that LLVM vectorises eight lanes
/// wide with AVX2 but leaves scalar for plain x86-64 (training's cell loops
/// ran 1.4× faster for it). The same operations (Rust does not fuse a
/// multiply and an add by itself), so the same values.
macro_rules! vectorised {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn any($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    any($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            any($($arg),*)
        }
    };
}
// Training's cell loops ([`crate::train`]) use it too.
#[cfg(all(feature = "burn", not(target_arch = "wasm32")))]
pub(crate) use vectorised;

vectorised! {
    /// One sequence's cells updated from its pre-activations `z` (the gates
    /// i, j, f, o, `c.len()` units each).
    fn update_cells(z: &[f32], c: &mut [f32], h: &mut [f32]) {
        let n = c.len();
        let (zi, zj, zf, zo) = (&z[..n], &z[n..2 * n], &z[2 * n..3 * n], &z[3 * n..4 * n]);
        #[allow(unused_mut)]
        let mut u = 0;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        while u + 4 <= n {
            use simd128::F4;
            let (cn, hn) = cell(F4::load(&c[u..]), F4::load(&zi[u..]), F4::load(&zj[u..]), F4::load(&zf[u..]), F4::load(&zo[u..]));
            cn.store(&mut c[u..]);
            hn.store(&mut h[u..]);
            u += 4;
        }
        for u in u..n {
            (c[u], h[u]) = cell(c[u], zi[u], zj[u], zf[u], zo[u]);
        }
    }
}

/// One LSTM layer, packed.
#[derive(Clone, Debug)]
struct Layer {
    input: usize,
    hidden: usize,
    /// First layer only: the input rows of the kernel, `[input, 4·hidden]`,
    /// row-major (the one-hot input picks one, each feature that is on one).
    lookup: Option<Vec<f32>>,
    /// The rows multiplied: hidden only for the first layer, input then
    /// hidden for the others.
    packed: Packed,
    bias: Vec<f32>,
}

/// The packed weights, shared by every copy of a [`FusedLstm`]: a
/// generation's network is a copy, and the weights are most of its memory
/// (6.6 MB for the shipped model, copied on the way to the page's first note).
#[derive(Debug)]
struct Network {
    layers: Vec<Layer>,
    dense: Packed,
    dense_bias: Vec<f32>,
}

/// The network with its recurrent state for a batch.
#[derive(Clone, Debug)]
pub struct FusedLstm {
    network: std::sync::Arc<Network>,
    batch: usize,
    /// Per layer, `[batch, hidden]`.
    h: Vec<Vec<f32>>,
    c: Vec<Vec<f32>>,
    /// Scratch: pre-activations and concatenated inputs.
    z: Vec<f32>,
    xh: Vec<f32>,
}

impl FusedLstm {
    /// The network of checked weights, with an empty batch.
    pub fn new(weights: &Weights) -> FusedLstm {
        let mut it = weights.tensors().iter().map(|t| t.data.as_slice());
        let mut layers = Vec::new();
        // The first kernel's rows: the input (one-hot and any features), then the hidden state.
        let mut input = weights.tensors()[0].shape[0] - weights.layer_sizes()[0];
        for (l, &hidden) in weights.layer_sizes().iter().enumerate() {
            let kernel = it.next().expect("kernel");
            let bias = it.next().expect("bias");
            let cols = 4 * hidden;
            let (lookup, packed) = if l == 0 {
                (Some(kernel[..input * cols].to_vec()), Packed::new(kernel, cols, input, hidden))
            } else {
                (None, Packed::new(kernel, cols, 0, input + hidden))
            };
            let mut padded_bias = bias.to_vec();
            padded_bias.resize(packed.stride(), 0.0);
            layers.push(Layer { input, hidden, lookup, packed, bias: padded_bias });
            input = hidden;
        }
        let dense = it.next().expect("dense weights");
        let mut dense_bias = it.next().expect("dense biases").to_vec();
        let dense = Packed::new(dense, NUM_CLASSES, 0, input);
        dense_bias.resize(dense.stride(), 0.0);
        let network = std::sync::Arc::new(Network { layers, dense, dense_bias });
        let mut net = FusedLstm { network, batch: 0, h: Vec::new(), c: Vec::new(), z: Vec::new(), xh: Vec::new() };
        net.reset(0);
        net
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// All-zero state for `batch` sequences.
    pub fn reset(&mut self, batch: usize) {
        self.batch = batch;
        self.h = self.network.layers.iter().map(|l| vec![0.0; batch * l.hidden]).collect();
        self.c = self.h.clone();
    }

    /// Keeps (and repeats) the given rows of the state: new row `i` is old
    /// row `rows[i]` (beam search).
    pub fn select_rows(&mut self, rows: &[usize]) {
        for (l, layer) in self.network.layers.iter().enumerate() {
            let n = layer.hidden;
            let pick = |v: &Vec<f32>| rows.iter().flat_map(|&r| v[r * n..(r + 1) * n].iter().copied()).collect::<Vec<f32>>();
            self.h[l] = pick(&self.h[l]);
            self.c[l] = pick(&self.c[l]);
        }
        self.batch = rows.len();
    }

    /// One event per sequence in (and for a network with context inputs
    /// each row's [`crate::context`] features that are on; `features` may be
    /// empty for one without), `[batch, 259]` logits out (row-major into
    /// `logits`), state advanced.
    pub fn step_into(&mut self, inputs: &[usize], features: &[Vec<u16>], logits: &mut Vec<f32>) {
        assert_eq!(inputs.len(), self.batch, "one input per sequence");
        let batch = self.batch;
        for l in 0..self.network.layers.len() {
            let layer = &self.network.layers[l];
            let (hidden, stride) = (layer.hidden, layer.packed.stride());
            self.z.clear();
            for _ in 0..batch {
                self.z.extend_from_slice(&layer.bias);
            }
            if let Some(lookup) = &layer.lookup {
                let cols = 4 * hidden;
                // The one-hot event and the binary features each pick a row.
                let feature_rows = |b: usize| features.get(b).into_iter().flatten().map(|&k| NUM_CLASSES + k as usize);
                for (b, &class) in inputs.iter().enumerate() {
                    for r in std::iter::once(class).chain(feature_rows(b)).filter(|&r| r < layer.input) {
                        let row = &lookup[r * cols..(r + 1) * cols];
                        for (z, w) in self.z[b * stride..b * stride + cols].iter_mut().zip(row) {
                            *z += w;
                        }
                    }
                }
                gemm_acc(&layer.packed, &self.h[l], hidden, batch, &mut self.z);
            } else {
                let width = layer.input + hidden;
                self.xh.clear();
                for b in 0..batch {
                    self.xh.extend_from_slice(&self.h[l - 1][b * layer.input..(b + 1) * layer.input]);
                    self.xh.extend_from_slice(&self.h[l][b * hidden..(b + 1) * hidden]);
                }
                gemm_acc(&layer.packed, &self.xh, width, batch, &mut self.z);
            }
            let (h, c) = (&mut self.h[l], &mut self.c[l]);
            for b in 0..batch {
                let units = b * hidden..(b + 1) * hidden;
                update_cells(&self.z[b * stride..b * stride + 4 * hidden], &mut c[units.clone()], &mut h[units]);
            }
        }
        let last = self.network.layers.last().map_or(0, |l| l.hidden);
        let stride = self.network.dense.stride();
        self.z.clear();
        for _ in 0..batch {
            self.z.extend_from_slice(&self.network.dense_bias);
        }
        gemm_acc(&self.network.dense, self.h.last().expect("one layer at least"), last, batch, &mut self.z);
        logits.clear();
        for b in 0..batch {
            logits.extend_from_slice(&self.z[b * stride..b * stride + NUM_CLASSES]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The gate functions against libm's over the range an LSTM sees and
    /// beyond: `e^x` within 2 ulp (relative), σ and tanh within 2e-7.
    #[test]
    fn gate_functions_match_libm() {
        let mut worst = [0.0f64; 3];
        for i in -200_000..=200_000 {
            let x = i as f32 * 4.35e-4;
            let e = (x as f64).exp();
            worst[0] = worst[0].max(((exp(x) as f64 - e) / e).abs());
            worst[1] = worst[1].max((sigmoid(x) as f64 - 1.0 / (1.0 + (-x as f64).exp())).abs());
            worst[2] = worst[2].max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(worst[0] < 2.0 * f32::EPSILON as f64, "exp: relative error {}", worst[0]);
        assert!(worst[1] < 2e-7 && worst[2] < 2e-7, "sigmoid, tanh: absolute errors {:?}", &worst[1..]);
        assert_eq!((exp(-200.0), exp(200.0)), (exp(-87.0), exp(88.0)), "clamped");
        assert!(sigmoid(-200.0) < 1e-37);
        assert_eq!((sigmoid(200.0), tanh(-200.0), tanh(200.0)), (1.0, -1.0, 1.0));
    }

    /// Every kernel (the portable one, and the AVX2 one where the CPU has
    /// it) against a plain triple loop, for every batch block size.
    #[test]
    fn kernels_match_a_plain_product() {
        let (rows, cols) = (37, 45);
        let mut rng = Rng::new(3);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() - 0.5).collect();
        let packed = Packed::new(&w, cols, 0, rows);
        for batch in 1..=13 {
            let x: Vec<f32> = (0..batch * rows).map(|_| rng.next_f32() - 0.5).collect();
            let z0: Vec<f32> = (0..batch * packed.stride()).map(|_| rng.next_f32()).collect();
            let mut expected = z0.clone();
            for b in 0..batch {
                for c in 0..cols {
                    expected[b * packed.stride() + c] += (0..rows).map(|r| x[b * rows + r] * w[r * cols + c]).sum::<f32>();
                }
            }
            let mut portable = z0.clone();
            gemm_generic::<false, BLOCK>(&packed, &x, rows, batch, &mut portable);
            let mut dispatched = z0.clone();
            gemm_acc(&packed, &x, rows, batch, &mut dispatched);
            for b in 0..batch {
                for c in 0..cols {
                    let i = b * packed.stride() + c;
                    assert!((portable[i] - expected[i]).abs() < 1e-4, "portable, batch {batch}");
                    assert!((dispatched[i] - expected[i]).abs() < 1e-4, "dispatched, batch {batch}");
                }
            }
        }
    }
}
