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

#[cfg(feature = "burn")]
pub use super::device::{BurnStep, DeviceData, DeviceRead};
use super::request::{GenerateError, GenerateOptions, Output};
use super::session::Session;
use crate::bundle::Bundle;
use crate::fused::FusedLstm;
#[cfg(feature = "burn")]
use crate::model::Model;

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
    /// browser [`super::device::start_webgpu`] must have started it).
    #[cfg(feature = "burn")]
    pub fn device(self) -> Result<burn::tensor::Device, GenerateError> {
        match self {
            Backend::Cpu => Ok(burn::tensor::Device::flex()),
            Backend::Gpu => super::device::gpu_device(),
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


/// A bundle's networks: the fused CPU one, built once, and burn's on the
/// GPU once [`Engine::put_on_gpu`] has uploaded the weights.
pub struct Engine {
    bundle: Bundle,
    cpu: FusedLstm,
    #[cfg(feature = "burn")]
    gpu: Option<Model>,
}

impl Engine {
    pub fn new(bundle: Bundle) -> Engine {
        let cpu = FusedLstm::new(bundle.weights());
        Engine {
            bundle,
            cpu,
            #[cfg(feature = "burn")]
            gpu: None,
        }
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Uploads the weights to the GPU, so that [`Backend::Gpu`] runs them.
    #[cfg(feature = "burn")]
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
            #[cfg(feature = "burn")]
            Backend::Gpu => {
                let model = self.gpu.clone().ok_or_else(|| GenerateError::Backend("this model is not on the GPU".into()))?;
                Net::Device(BurnStep::new(model))
            }
            #[cfg(not(feature = "burn"))]
            Backend::Gpu => return Err(GenerateError::Backend("this build runs on the CPU only".into())),
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
    #[cfg(feature = "burn")]
    Device(BurnStep),
}

/// Without burn no device answers: a step is never left to read.
#[cfg(not(feature = "burn"))]
pub enum DeviceRead {}

/// What a device read gives back (nothing, without burn).
#[cfg(not(feature = "burn"))]
pub enum DeviceData {}

#[cfg(not(feature = "burn"))]
impl DeviceRead {
    pub async fn read(self) -> Result<DeviceData, GenerateError> {
        match self {}
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_now(self) -> Result<DeviceData, GenerateError> {
        match self {}
    }
}


impl Net {
    pub(super) fn reset(&mut self, batch: usize) {
        match self {
            Net::Cpu { net, .. } => net.reset(batch),
            #[cfg(feature = "burn")]
            Net::Device(step) => step.reset(batch),
        }
    }

    /// Seeds the device's random numbers (the CPU samples with the session's own).
    pub(super) fn seed(&self, _seed: u64) {
        #[cfg(feature = "burn")]
        if let Net::Device(step) = self {
            step.model.device().seed(_seed);
        }
    }

    /// Starts one model step of `session`. On the CPU it is done here and
    /// `None` comes back; on a device the sampled events must be read back
    /// and given to [`Net::finish_step`].
    pub fn start_step(&mut self, session: &mut Session) -> Result<Option<DeviceRead>, GenerateError> {
        match self {
            Net::Cpu { net, logits } => host_step(net, session, logits).map(|()| None),
            #[cfg(feature = "burn")]
            Net::Device(step) => Ok(step.start(session)),
        }
    }

    /// Gives the session what the device sampled, and reorders the state
    /// when it asks (beam search).
    pub fn finish_step(&mut self, session: &mut Session, data: DeviceData) -> Result<(), GenerateError> {
        match self {
            #[cfg(feature = "burn")]
            Net::Device(step) => step.finish(session, data),
            _ => {
                let _ = (session, data);
                Ok(())
            }
        }
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
            #[cfg(feature = "burn")]
            Net::Device(step) => Some(step.time_step(class)),
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
