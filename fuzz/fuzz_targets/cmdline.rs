//! Fuzz target `cmdline`: see `rps_conformance::oracles::cmdline` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::cmdline(data));
