//! A generation request as the page sends it (JSON `GenerateOptions`, any
//! primer), run to the end on a tiny random network: refused with a
//! message, or finished.
#![no_main]
use polyphony::generate::{Backend, Engine, GenerateOptions};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Ok(options) = serde_json::from_slice::<GenerateOptions>(bytes) else { return };
    // Bounded work per input: the limits bound a request, not its speed.
    // A harmonization is as long as its primer when num_steps is smaller.
    let rows = options.num_outputs.saturating_mul(options.beam_size).saturating_mul(options.branch_factor);
    let primer_steps = polyphony::generate::primer_notes(&options.primer).map_or(0, |p| p.steps);
    if rows.saturating_mul(options.num_steps.max(primer_steps)) > 4_096 {
        return;
    }
    thread_local! {
        static ENGINE: Engine = Engine::new(tiny_bundle());
    }
    ENGINE.with(|engine| {
        let _ = engine.generate(Backend::Cpu, &options);
    });
});

/// A one-layer network of 8 units with random weights.
fn tiny_bundle() -> polyphony::bundle::Bundle {
    let hparams = polyphony::hparams::HParams { rnn_layer_sizes: vec![8], ..Default::default() };
    let model = polyphony::model::Model::init(&hparams, &burn::tensor::Device::flex(), 1);
    model.to_bundle(polyphony::bundle::BundleMetadata::new("fuzz", hparams, "now")).expect("finite weights")
}
