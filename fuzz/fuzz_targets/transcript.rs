//! Fuzz target `transcript`: see `rps_conformance::oracles::transcript` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::transcript(data));
