//! Conformance checks for the wsman layer: the negative corpus of envelopes
//! (`fixtures/negative/wsman/`, see `fixtures/negative/manifest.json`).

use rps_conformance::negative;

#[test]
fn negative_envelopes_fail_with_their_exact_errors() {
    let n = negative::check_folder("wsman/", false);
    assert!(n >= 15, "only {n} negative envelopes in the manifest");
}

#[test]
fn envelope_limits_are_configurable_and_are_what_rejects() {
    // too many streams, over the size limit, too many elements
    assert!(negative::check_limits_matter("wsman/") >= 3);
}

#[test]
#[ignore = "gap: Stream::decode (rps-wsman winrs.rs) takes an rsp:Stream without its required Name attribute as Name=\"\""]
fn negative_envelope_gaps() {
    negative::check_folder("wsman/", true);
}
