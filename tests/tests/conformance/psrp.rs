//! Conformance checks for the psrp layer: the negative corpus of fragment streams
//! (`fixtures/negative/fragment/`, read by a `Defragmenter`) and of messages given to a client
//! runspace pool (`fixtures/negative/pool/`), see `fixtures/negative/manifest.json`.

use rps_conformance::negative;

#[test]
fn negative_fragment_streams_fail_with_their_exact_errors() {
    let n = negative::check_folder("fragment/", false);
    assert!(
        n >= 10,
        "only {n} negative fragment streams in the manifest"
    );
}

#[test]
fn negative_pool_input_fails_with_its_exact_errors() {
    let n = negative::check_folder("pool/", false);
    assert!(n >= 7, "only {n} negative pool inputs in the manifest");
}

#[test]
fn defrag_limits_are_configurable_and_are_what_rejects() {
    assert!(negative::check_limits_matter("fragment/") >= 3);
    assert!(negative::check_limits_matter("pool/") >= 1);
}
