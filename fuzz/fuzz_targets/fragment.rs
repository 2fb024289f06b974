//! Fuzz target `fragment`: see `rps_conformance::oracles::fragment` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::fragment(data));
