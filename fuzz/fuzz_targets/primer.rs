//! Primer strings as the command line takes them (`--primer_pitches`,
//! `--primer_melody`), through the primer's checks and its events.
#![no_main]
use polyphony::generate::{Primer, parse_python_list, primer_events};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(values) = parse_python_list(text) else { return };
    let _ = primer_events(&Primer::Pitches(values.clone()));
    let _ = primer_events(&Primer::Melody(values));
});
