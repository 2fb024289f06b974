//! Fuzz target `jwt`: see `rps_conformance::oracles::jwt` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::jwt(data));
