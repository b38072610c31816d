//! Bundle bytes: refused with a message, or a model whose networks build
//! and take a step.
#![no_main]
use polyphony::generate::{Backend, Engine};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Ok(bundle) = polyphony::bundle::from_bytes(bytes) else { return };
    // Small networks only: a valid large one is legitimately slow to step.
    if bundle.metadata.hparams.parameter_count() > 1 << 20 {
        return;
    }
    let mut net = Engine::new(bundle).net(Backend::Cpu, 2).expect("the CPU network builds");
    net.time_step(0);
});
