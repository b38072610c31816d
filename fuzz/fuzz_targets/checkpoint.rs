//! Training checkpoint bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let device = burn::tensor::Device::flex();
    let _ = polyphony::train::checkpoint_from_bytes(std::path::Path::new("checkpoint.safetensors"), bytes, &device);
});
