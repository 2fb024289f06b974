//! Conformance checks for the wsman layer: the negative corpus of envelopes
//! (`fixtures/negative/wsman/`, see `fixtures/negative/manifest.json`).

use rps_conformance::negative;

#[test]
fn negative_envelopes_fail_with_their_exact_errors() {
    let n = negative::check_folder("wsman/", false);
    assert!(n >= 16, "only {n} negative envelopes in the manifest");
}

#[test]
fn envelope_limits_are_configurable_and_are_what_rejects() {
    // too many streams, over the size limit, too many elements
    assert!(negative::check_limits_matter("wsman/") >= 3);
}

#[test]
fn negative_envelope_gaps_are_all_closed() {
    // The last one, an rsp:Stream without its required Name, is now refused exactly and is
    // checked with the others; new gaps must be fixed rather than listed.
    assert_eq!(negative::check_folder("wsman/", true), 0);
    let entry = negative::manifest()
        .into_iter()
        .find(|e| e.file == "wsman/stream_without_name.xml")
        .expect("manifest entry");
    let data = std::fs::read(negative::dir().join(&entry.file)).expect("corpus file");
    assert_eq!(
        negative::decode(&entry.decoder, &entry.limits, &data),
        negative::Outcome::Error {
            debug: "Missing { path: \"Envelope/Body/ReceiveResponse/Stream\", offset: 399, \
                    expected: \"Name attribute\" }"
                .to_owned(),
            display: "missing Name attribute in Envelope/Body/ReceiveResponse/Stream at byte 399"
                .to_owned(),
        }
    );
}
