//! The conformance suite: one binary, one module per area, each driven by data files.

mod clixml;
mod fuzz_regressions;
mod psrp;
mod wsman;

/// The manifest and the negative corpus list the same files, so no case goes unchecked.
#[test]
fn negative_manifest_lists_every_corpus_file() {
    let mut listed: Vec<String> = rps_conformance::negative::manifest()
        .into_iter()
        .map(|e| e.file)
        .collect();
    listed.sort();
    let before = listed.len();
    listed.dedup();
    assert_eq!(
        before,
        listed.len(),
        "a file is listed twice in manifest.json"
    );
    assert_eq!(
        listed,
        rps_conformance::negative::corpus_files(),
        "fixtures/negative/manifest.json and the files under fixtures/negative/ differ"
    );
}
