//! Conformance checks for the clixml layer: the negative corpus of CLIXML
//! (`fixtures/negative/clixml/`, see `fixtures/negative/manifest.json`).

use rps_conformance::negative;

#[test]
fn negative_clixml_fails_with_its_exact_errors() {
    let n = negative::check_folder("clixml/", false);
    assert!(n >= 20, "only {n} negative CLIXML cases in the manifest");
}

#[test]
fn clixml_limits_are_configurable_and_are_what_rejects() {
    // TN RefId, string length, element count, lossy surrogates
    assert!(negative::check_limits_matter("clixml/") >= 4);
}

#[test]
fn negative_clixml_gaps_are_all_closed() {
    assert_eq!(negative::check_folder("clixml/", true), 0);
}
