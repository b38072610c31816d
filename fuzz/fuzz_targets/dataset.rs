//! Dataset (.polyds) bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = polyphony::dataset::read_dataset(bytes);
});
