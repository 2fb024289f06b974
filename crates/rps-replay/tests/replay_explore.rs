use rps_replay::Transcript;
use rps_replay::reenact::{Scenario, render_outputs};
use std::path::PathBuf;

#[test]
fn explore() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peer-fixtures/jborean93__pypsrp/tests/tests_pypsrp/responses");
    for name in [
        "test_client_execute_ps.yml",
        "test_psrp_run_protocol_version_2.3.yml",
        "test_psrp_merge_commands.yml",
        "test_psrp_application_args.yml",
    ] {
        let t = Transcript::load(&dir.join(name)).unwrap();
        let s = Scenario::from_transcript(&t).unwrap();
        println!("=== {name}\n{}", render_outputs(&s));
    }
}
