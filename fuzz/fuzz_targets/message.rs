//! Fuzz target `message`: see `rps_conformance::oracles::message` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::message(data));
