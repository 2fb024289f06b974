//! Fuzz target `clixml`: see `rps_conformance::oracles::clixml` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rps_conformance::oracles::clixml(data));
