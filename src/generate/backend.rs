//! Where the network runs, chosen in one place for the command line,
//! training and the page: [`Backend::Cpu`] is the fused CPU step
//! ([`FusedLstm`], natively and in wasm), [`Backend::Gpu`] is burn's model
//! on a GPU (wgpu natively: Vulkan, Metal or DirectX; WebGPU in the
//! browser), which samples each event on its device and reads back only the
//! chosen classes ([`BurnStep`]).
//!
//! An [`Engine`] holds a bundle's networks; [`Engine::start`] gives a
//! [`Session`] and the [`Net`] that advances it one model step at a time.
//! A step on the GPU ends with a read of the device ([`DeviceRead`]), which
//! the browser must await; natively [`run`] reads it at once.

use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};

use super::request::{GenerateError, GenerateOptions, Output};
use super::session::{Choice, Session};
use crate::bundle::Bundle;
use crate::encoding::NUM_CLASSES;
use crate::fused::FusedLstm;
use crate::model::{Model, State};

/// Where a model runs (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Gpu,
}

impl Backend {
    /// The name the command line and the page use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        }
    }

    /// burn's device for this backend: the CPU one (flex), or the GPU once
    /// it is known to work (natively it is tried once, quietly; in the
    /// browser [`start_webgpu`] must have started it).
    pub fn device(self) -> Result<Device, GenerateError> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            Backend::Gpu => gpu_device(),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = GenerateError;

    /// `cpu`, or `gpu` (also `webgpu`, the page's name for it).
    fn from_str(name: &str) -> Result<Backend, GenerateError> {
        match name {
            "cpu" => Ok(Backend::Cpu),
            "gpu" | "webgpu" => Ok(Backend::Gpu),
            other => Err(GenerateError::Backend(format!("unknown backend {other:?} (expected \"cpu\" or \"gpu\")"))),
        }
    }
}

/// The GPU through wgpu, tried once per process: burn panics (on two
/// threads) when wgpu finds no adapter, so the first use runs a tiny
/// computation with panics silenced and remembers the outcome.
#[cfg(not(target_arch = "wasm32"))]
fn gpu_device() -> Result<Device, GenerateError> {
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
fn gpu_device() -> Result<Device, GenerateError> {
    WEBGPU.with(|d| d.borrow().clone()).ok_or_else(|| GenerateError::Backend("WebGPU has not been started".into()))
}

/// Starts burn's wgpu runtime on the browser's WebGPU (once per page; later
/// calls return at once). The caller checks that the browser has WebGPU.
#[cfg(target_arch = "wasm32")]
pub async fn start_webgpu() -> Result<(), GenerateError> {
    if gpu_device().is_ok() {
        return Ok(());
    }
    let device = Device::wgpu_options().init_async().await.map_err(|e| GenerateError::Backend(e.to_string()))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device));
    Ok(())
}

/// A model that advances a batch of sequences by one event and gives
/// logits, sampled on the host by the [`Session`].
pub trait StepModel {
    /// All-zero state for `batch` sequences.
    fn reset(&mut self, batch: usize);
    /// One input class per sequence (with its [`crate::context`] features
    /// for a network that reads them, [`Session::features`]); `[batch, 259]`
    /// logits, row-major, into `logits`.
    fn step(&mut self, inputs: &[usize], features: &[Vec<u16>], logits: &mut Vec<f32>);
    /// New row `i` takes old row `rows[i]`'s state (beam search).
    fn select_rows(&mut self, rows: &[usize]);
}

impl StepModel for FusedLstm {
    fn reset(&mut self, batch: usize) {
        FusedLstm::reset(self, batch);
    }
    fn step(&mut self, inputs: &[usize], features: &[Vec<u16>], logits: &mut Vec<f32>) {
        self.step_into(inputs, features, logits);
    }
    fn select_rows(&mut self, rows: &[usize]) {
        FusedLstm::select_rows(self, rows);
    }
}

/// One model step of `session` on a host-sampled model.
pub fn host_step(model: &mut dyn StepModel, session: &mut Session, logits: &mut Vec<f32>) -> Result<(), GenerateError> {
    let Some(inputs) = session.inputs() else { return Ok(()) };
    model.step(inputs, session.features(), logits);
    if let Some(rows) = session.feed(logits)? {
        model.select_rows(&rows);
    }
    Ok(())
}

/// Runs a whole request on a host-sampled `model` (synchronously).
pub fn generate(model: &mut dyn StepModel, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    let mut session = Session::new(options)?;
    model.reset(session.batch());
    let mut logits = Vec::new();
    while !session.is_done() {
        host_step(model, &mut session, &mut logits)?;
    }
    Ok(session.finish())
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

/// A bundle's networks: the fused CPU one, built once, and burn's on the
/// GPU once [`Engine::put_on_gpu`] has uploaded the weights.
pub struct Engine {
    bundle: Bundle,
    cpu: FusedLstm,
    gpu: Option<Model>,
}

impl Engine {
    pub fn new(bundle: Bundle) -> Engine {
        let cpu = FusedLstm::new(bundle.weights());
        Engine { bundle, cpu, gpu: None }
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Uploads the weights to the GPU, so that [`Backend::Gpu`] runs them.
    pub fn put_on_gpu(&mut self) -> Result<(), GenerateError> {
        if self.gpu.is_none() {
            self.gpu = Some(Model::from_bundle(&self.bundle, &Backend::Gpu.device()?));
        }
        Ok(())
    }

    /// A fresh network on `backend` for `batch` rows.
    pub fn net(&self, backend: Backend, batch: usize) -> Result<Net, GenerateError> {
        let mut net = match backend {
            Backend::Cpu => Net::Cpu { net: self.cpu.clone(), logits: Vec::new() },
            Backend::Gpu => {
                let model = self.gpu.clone().ok_or_else(|| GenerateError::Backend("this model is not on the GPU".into()))?;
                Net::Device(BurnStep::new(model))
            }
        };
        net.reset(batch);
        Ok(net)
    }

    /// A session for `options` and the network on `backend` to run it. A
    /// request that leaves `max_voices` open gets the bundle's voices.
    pub fn start(&self, backend: Backend, options: &GenerateOptions) -> Result<(Session, Net), GenerateError> {
        if backend == Backend::Gpu && options.top_p < 1.0 {
            return Err(GenerateError::Backend("nucleus sampling (top_p below 1) runs on the CPU only".into()));
        }
        let options = GenerateOptions { max_voices: options.max_voices.or(self.bundle.metadata.voices), ..options.clone() };
        let session = Session::for_model(&options, &self.bundle.metadata.hparams)?;
        let net = self.net(backend, session.batch())?;
        net.seed(session.seed());
        Ok((session, net))
    }

    /// Runs a whole request on `backend` (synchronously).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(&self, backend: Backend, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
        let (session, mut net) = self.start(backend, options)?;
        run(&mut net, session)
    }
}

/// A network ready to step a batch: the CPU one, whose logits the session
/// samples, or burn's on a device, which samples there.
pub enum Net {
    Cpu { net: FusedLstm, logits: Vec<f32> },
    Device(BurnStep),
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

impl Net {
    fn reset(&mut self, batch: usize) {
        match self {
            Net::Cpu { net, .. } => net.reset(batch),
            Net::Device(step) => step.reset(batch),
        }
    }

    /// Seeds the device's random numbers (the CPU samples with the session's own).
    fn seed(&self, seed: u64) {
        if let Net::Device(step) = self {
            step.model.device().seed(seed);
        }
    }

    /// Starts one model step of `session`. On the CPU it is done here and
    /// `None` comes back; on a device the sampled events must be read back
    /// and given to [`Net::finish_step`].
    pub fn start_step(&mut self, session: &mut Session) -> Result<Option<DeviceRead>, GenerateError> {
        match self {
            Net::Cpu { net, logits } => host_step(net, session, logits).map(|()| None),
            Net::Device(step) => Ok(session
                .inputs()
                .map(|inputs| DeviceRead(step.sample(inputs, session.features(), &session.forced(), &session.bias(), session.temperature())))),
        }
    }

    /// Gives the session what the device sampled, and reorders the state
    /// when it asks (beam search).
    pub fn finish_step(&mut self, session: &mut Session, data: TensorData) -> Result<(), GenerateError> {
        let Net::Device(step) = self else { return Ok(()) };
        if let Some(rows) = session.feed_choices(&choices(data)?)? {
            step.select_rows(&rows);
        }
        Ok(())
    }

    /// One step with the same input class in every row and nothing kept,
    /// for timing backends: as costly as a generation's step (on a device
    /// it samples and reads back).
    pub fn time_step(&mut self, class: usize) -> Option<DeviceRead> {
        match self {
            Net::Cpu { net, logits } => {
                let inputs = vec![class; net.batch()];
                net.step_into(&inputs, &[], logits);
                None
            }
            Net::Device(step) => {
                let batch = step.batch;
                let inputs = vec![class; batch];
                Some(DeviceRead(step.sample(&inputs, &[], &vec![None; batch], &vec![0.0; batch * NUM_CLASSES], 1.0)))
            }
        }
    }
}

/// Runs `session` to the end on `net`, reading each device step at once.
#[cfg(not(target_arch = "wasm32"))]
pub fn run(net: &mut Net, mut session: Session) -> Result<Vec<Output>, GenerateError> {
    while !session.is_done() {
        if let Some(read) = net.start_step(&mut session)? {
            net.finish_step(&mut session, read.read_now()?)?;
        }
    }
    Ok(session.finish())
}

/// Runs a request on burn's model with sampling on its device.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_on_device(step: BurnStep, options: &GenerateOptions) -> Result<Vec<Output>, GenerateError> {
    if options.top_p < 1.0 {
        return Err(GenerateError::Backend("nucleus sampling (top_p below 1) runs on the CPU only".into()));
    }
    let session = Session::new(options)?;
    let mut net = Net::Device(step);
    net.reset(session.batch());
    net.seed(session.seed());
    run(&mut net, session)
}
