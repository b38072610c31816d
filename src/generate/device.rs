//! burn's model on a device (burn's CPU backend, a GPU through wgpu
//! natively, WebGPU in the browser), which samples each event there and
//! reads back only the chosen classes. Built with the `burn` feature (the
//! page's first package, the fused CPU step alone, leaves it out).

use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};

#[cfg(not(target_arch = "wasm32"))]
use super::backend::StepModel;
#[cfg(not(target_arch = "wasm32"))]
use super::request::{GenerateOptions, Output};
use super::request::GenerateError;
use super::session::{Choice, Session};
use crate::encoding::NUM_CLASSES;
use crate::model::{Model, State};

/// What a device read gives back.
pub type DeviceData = TensorData;


/// The GPU through wgpu, tried once per process: burn panics (on two
/// threads) when wgpu finds no adapter, so the first use runs a tiny
/// computation with panics silenced and remembers the outcome.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn gpu_device() -> Result<Device, GenerateError> {
    static GPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    let probe = || {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let tried = std::panic::catch_unwind(|| {
            let device = Device::wgpu(Default::default());
            Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device).try_into_data().map(|_| device)
        });
        std::panic::set_hook(hook);
        match tried {
            Ok(Ok(device)) => Ok(device),
            Ok(Err(e)) => Err(format!("the GPU failed a first computation: {e:?}")),
            Err(_) => Err("no usable GPU (wgpu found no adapter; is a Vulkan, Metal or DirectX driver installed?)".to_string()),
        }
    };
    GPU.get_or_init(probe).clone().map_err(GenerateError::Backend)
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    /// The WebGPU device: burn's wgpu runtime starts once per page.
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

#[cfg(target_arch = "wasm32")]
pub(super) fn gpu_device() -> Result<Device, GenerateError> {
    WEBGPU.with(|d| d.borrow().clone()).ok_or_else(|| GenerateError::Backend("WebGPU has not been started".into()))
}

/// Starts burn's wgpu runtime on the browser's WebGPU (once per page; later
/// calls return at once). The caller checks that the browser has WebGPU.
#[cfg(all(target_arch = "wasm32", feature = "webgpu"))]
pub async fn start_webgpu() -> Result<(), GenerateError> {
    if gpu_device().is_ok() {
        return Ok(());
    }
    let device = Device::wgpu_options().init_async().await.map_err(|e| GenerateError::Backend(e.to_string()))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device));
    Ok(())
}

/// Burn's [`Model`] on any device (the CPU backend, or a GPU through wgpu
/// natively and WebGPU in the browser).
///
/// [`BurnStep::sample`] keeps everything on the device and yields only each
/// row's chosen class and its log-probability (what generation on a GPU
/// uses); the [`StepModel`] impl reads all the logits back (natively), for
/// comparisons and benchmarks.
pub struct BurnStep {
    pub model: Model,
    state: Option<State>,
    batch: usize,
}

impl BurnStep {
    pub fn new(model: Model) -> BurnStep {
        BurnStep { model, state: None, batch: 0 }
    }

    /// One step's logits, `[batch, 259]`, left on the device.
    fn logits(&mut self, inputs: &[usize], features: &[Vec<u16>]) -> Tensor<2> {
        let x = self.int_column(inputs.iter().map(|&c| c as i64));
        let context = self.model.hparams.context_inputs.then(|| {
            let width = crate::context::CONTEXT_WIDTH;
            let mut dense = vec![0.0f32; inputs.len() * width];
            for (b, on) in features.iter().enumerate() {
                on.iter().for_each(|&k| dense[b * width + k as usize] = 1.0);
            }
            Tensor::<3>::from_data(TensorData::new(dense, [inputs.len(), 1, width]), &self.model.device())
        });
        let state = self.state.take().expect("reset first");
        let (logits, state) = self.model.forward(x, context, state, None);
        self.state = Some(state);
        logits.reshape([inputs.len(), NUM_CLASSES])
    }

    /// A `[n, 1]` integer tensor on the model's device.
    fn int_column(&self, values: impl Iterator<Item = i64>) -> Tensor<2, Int> {
        let values: Vec<i64> = values.collect();
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n, 1]), &self.model.device())
    }

    /// One step with the next event chosen on the device: the `forced`
    /// class where there is one ([`Session::forced`]), else a sample from the
    /// softmax at `temperature` of the logits plus the rules' `bias`
    /// (`[batch, 259]`, [`Session::bias`]; Gumbel-max: the argmax of the
    /// biased logits plus `-ln(-ln U)` noise is exactly such a sample).
    /// Returns `[batch, 2]` (class, log-probability) to read back and give
    /// to [`choices`]. Nucleus sampling is the host's only.
    pub fn sample(&mut self, inputs: &[usize], features: &[Vec<u16>], forced: &[Option<usize>], bias: &[f32], temperature: f64) -> Tensor<2> {
        use burn::tensor::activation::log_softmax;
        let device = self.model.device();
        let shape = [inputs.len(), NUM_CLASSES];
        let forbidden = Tensor::<2, Bool>::from_data(TensorData::new(bias.iter().map(|b| *b == f32::NEG_INFINITY).collect::<Vec<_>>(), shape), &device);
        // Finite, so that no inf - inf can turn into NaN.
        let bias = Tensor::<2>::from_data(TensorData::new(bias.iter().map(|b| b.max(-1.0e30)).collect::<Vec<_>>(), shape), &device);
        let scaled = (self.logits(inputs, features) * (1.0 / temperature) as f32 + bias).mask_fill(forbidden, -1.0e30);
        // U in (0, 1), both ends excluded, so the noise stays finite.
        let u = Tensor::<2>::random(scaled.shape(), Distribution::Uniform(1e-7, 1.0 - 1e-7), &device);
        let gumbel = u.log().neg().log().neg();
        let sampled = (scaled.clone() + gumbel).argmax(1);
        let forced = self.int_column(forced.iter().map(|f| f.map_or(-1, |c| c as i64)));
        let chosen = forced.clone().mask_where(forced.lower_elem(0), sampled);
        let log_prob = log_softmax(scaled, 1).gather(1, chosen.clone());
        Tensor::cat(vec![chosen.float(), log_prob], 1)
    }

    pub fn reset(&mut self, batch: usize) {
        self.state = Some(self.model.zero_state(batch));
        self.batch = batch;
    }

    /// The device's step of `session`: its next events sampled there, to read.
    pub fn start(&mut self, session: &Session) -> Option<DeviceRead> {
        let inputs = session.inputs()?;
        Some(DeviceRead(self.sample(inputs, session.features(), &session.forced(), &session.bias(), session.temperature())))
    }

    /// Gives the session what the device sampled, and reorders the state
    /// when it asks (beam search).
    pub fn finish(&mut self, session: &mut Session, data: DeviceData) -> Result<(), GenerateError> {
        if let Some(rows) = session.feed_choices(&choices(data)?)? {
            self.select_rows(&rows);
        }
        Ok(())
    }

    /// A step with class `class` in every row and nothing kept, for timing.
    pub fn time_step(&mut self, class: usize) -> DeviceRead {
        let inputs = vec![class; self.batch];
        DeviceRead(self.sample(&inputs, &[], &vec![None; self.batch], &vec![0.0; self.batch * NUM_CLASSES], 1.0))
    }

    /// New row `i` takes old row `rows[i]`'s state (beam search).
    pub fn select_rows(&mut self, rows: &[usize]) {
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rows.len()]), &self.model.device());
        let state = self.state.take().expect("reset first");
        self.state = Some(state.select_rows(idx));
        self.batch = rows.len();
    }
}

/// The rows' choices from the data of a [`BurnStep::sample`] result.
pub fn choices(data: TensorData) -> Result<Vec<Choice>, GenerateError> {
    let values = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| GenerateError::Backend(format!("reading the device's choices: {e:?}")))?;
    Ok(values
        .chunks_exact(2)
        .map(|pair| Choice { class: (pair[0] as usize).min(NUM_CLASSES - 1), log_prob: pair[1] as f64 })
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
impl StepModel for BurnStep {
    fn reset(&mut self, batch: usize) {
        BurnStep::reset(self, batch);
    }
    fn step(&mut self, inputs: &[usize], features: &[Vec<u16>], logits: &mut Vec<f32>) {
        *logits = self.logits(inputs, features).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 logits");
    }
    fn select_rows(&mut self, rows: &[usize]) {
        BurnStep::select_rows(self, rows);
    }
}

/// A device's answer to one model step, still to be read back.
pub struct DeviceRead(Tensor<2>);

impl DeviceRead {
    /// Reads the answer (the browser must await it).
    pub async fn read(self) -> Result<TensorData, GenerateError> {
        self.0.into_data_async().await.map_err(|e| GenerateError::Backend(format!("the GPU failed: {e:?}")))
    }

    /// Reads the answer now (native only: the browser cannot wait).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_now(self) -> Result<TensorData, GenerateError> {
        self.0.try_into_data().map_err(|e| GenerateError::Backend(format!("the GPU failed: {e:?}")))
    }
}


/// Runs a request on burn's model with sampling on its device.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_on_device(step: BurnStep, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    if options.top_p < 1.0 {
        return Err(GenerateError::Backend("nucleus sampling (top_p below 1) runs on the CPU only".into()));
    }
    let session = Session::new(options)?;
    let mut net = super::backend::Net::Device(step);
    net.reset(session.batch());
    net.seed(session.seed());
    super::backend::run(&mut net, session)
}
