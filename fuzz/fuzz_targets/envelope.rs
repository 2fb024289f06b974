//! Fuzz target `envelope`: see `rps_conformance::oracles::envelope` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::envelope(data));
