//! Fuzz regressions: every file under `fixtures/fuzz/<target>/` is replayed through the oracle
//! the fuzz target `<target>` runs (`rps_conformance::oracles`), so a fixed crash stays fixed.
//! Also runs the negative corpus through the oracles of its layer: bad input must be refused
//! without a panic, and what is accepted must round-trip.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rps_conformance::{files_with_suffix, fixtures_dir, negative, oracles};

/// Regression files that still fail, each with its own `#[ignore]`d test below:
/// (target, file name). Empty: every regression replays clean.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn replay(target: &str, path: &Path) -> Result<(), String> {
    let oracle = oracles::oracle(target).unwrap_or_else(|| panic!("no fuzz target {target}"));
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    catch_unwind(AssertUnwindSafe(|| oracle(&data))).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("{target}/{}: {msg}", path.display())
    })
}

fn replay_known(target: &str, name: &str) {
    let path = fixtures_dir().join("fuzz").join(target).join(name);
    if let Err(e) = replay(target, &path) {
        panic!("{e}");
    }
}

#[test]
fn every_fuzz_regression_replays_clean() {
    let root = fixtures_dir().join("fuzz");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, _) in oracles::TARGETS {
        for path in files_with_suffix(&root.join(target), &[""]) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if KNOWN_FAILURES.contains(&(*target, name)) || name == "README.md" {
                continue;
            }
            replayed += 1;
            if let Err(e) = replay(target, &path) {
                failures.push(e);
            }
        }
    }
    assert!(replayed > 0, "no regression files under {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_regression_folder_is_a_fuzz_target() {
    let root = fixtures_dir().join("fuzz");
    for entry in std::fs::read_dir(&root).expect("fixtures/fuzz exists") {
        let entry = entry.expect("readable");
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                oracles::oracle(&name).is_some(),
                "fixtures/fuzz/{name} names no fuzz target"
            );
        }
    }
}

#[test]
fn negative_corpus_passes_the_oracles() {
    let mut failures = Vec::new();
    for file in negative::corpus_files() {
        let targets: &[&str] = match file.split('/').next() {
            Some("wsman") => &["envelope"],
            Some("fragment") => &["fragment"],
            Some("pool") => &["fragment", "message"],
            Some("clixml") => &["clixml"],
            _ => &[],
        };
        for t in targets {
            if let Err(e) = replay(t, &negative::dir().join(&file)) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn envelope_crash_d72869f6_namespace_round_trip() {
    replay_known("envelope", "crash-d72869f68aa43697b4b8b6697f3be65dad30f63f");
}

#[test]
fn envelope_escaped_namespace_uri_round_trip() {
    // `xmlns:p="urn:a&amp;b"` names `urn:a&b`, and is written back escaped.
    let path = fixtures_dir().join("fuzz/envelope/escaped-namespace-uri.xml");
    let env = rps_wsman::Envelope::decode(&std::fs::read(path).expect("fixture")).expect("decodes");
    let namespaces: Vec<_> = env
        .header
        .unknown
        .iter()
        .map(|r| r.namespace.as_deref())
        .collect();
    assert_eq!(namespaces, [Some("urn:a&b")]);
    replay_known("envelope", "escaped-namespace-uri.xml");
}

#[test]
fn envelope_charref_soap_namespace_is_soap() {
    let path = fixtures_dir().join("fuzz/envelope/charref-soap-namespace.xml");
    let data = std::fs::read(path).expect("fixture");
    let env = rps_wsman::Envelope::decode(&data);
    assert!(env.is_ok(), "a SOAP 1.2 envelope was refused: {env:?}");
    // It is the same envelope as the one written without the reference.
    let text = String::from_utf8(data).expect("utf-8");
    let plain = text.replace("&#x2D;", "-");
    assert_ne!(
        plain, text,
        "the fixture spells the namespace with a reference"
    );
    assert_eq!(env.ok(), rps_wsman::Envelope::decode(plain.as_bytes()).ok());
    replay_known("envelope", "charref-soap-namespace.xml");
}

#[test]
fn clixml_crash_a0b9764a_control_chars_in_version() {
    replay_known("clixml", "crash-a0b9764a19f6cc60a13e5beebff5764b00cd844b");
}

#[test]
fn clixml_control_char_in_version_round_trip() {
    replay_known("clixml", "control-char-in-version.xml");
}

#[test]
fn message_crash_ed6b8f92_control_chars_in_version() {
    replay_known("message", "crash-ed6b8f925440aeceb1f728b2484dd79a7ee300c2");
}

#[test]
fn envelope_crash_c987f390_control_chars() {
    replay_known("envelope", "crash-c987f390994d51d04d36cf69a3d3cf9a183c4dd7");
}

#[test]
fn envelope_control_char_in_action() {
    replay_known("envelope", "control-char-in-action.xml");
}

/// An unknown header whose text reads like a QName (`wsmv:...`) with the prefix unbound: its
/// raw XML used to gain an `xmlns:wsmv` declaration once written into an envelope that
/// declares `wsmv` at the root. Text QNames get no declarations in raw elements now.
#[test]
fn envelope_crash_b617ece1_text_qname_in_unknown_header() {
    replay_known("envelope", "crash-b617ece1e7df2e9c455efcbd9f17f45a846c23f4");
}

/// Found in the same run; passes with the fixes above.
#[test]
fn envelope_crash_2fdddf3f() {
    replay_known("envelope", "crash-2fdddf3fd973129334fc27dd89d6dc49b6b94c1f");
}

/// A fault Text whose `xml:lang` attribute is misspelled decodes without a language; the
/// writer used to invent `en-US`, which the next decode then read.
#[test]
fn envelope_crash_6c0c57fc_fault_text_without_lang() {
    replay_known("envelope", "crash-6c0c57fc6a864758b92074d4612f8782027ea9bf");
}

/// Found after the namespace rewrite: a raw control in an `xmlns` value was kept in the
/// namespace and written back as U+FFFD. It is refused like any other C0 control.
#[test]
fn envelope_crash_48cf0de8_control_char_in_namespace() {
    replay_known("envelope", "crash-48cf0de887778521dc56108b10e164a963d5c695");
    for name in [
        "crash-48cf0de887778521dc56108b10e164a963d5c695",
        "control-char-in-namespace.xml",
    ] {
        let path = fixtures_dir().join("fuzz/envelope").join(name);
        let err = rps_wsman::Envelope::decode(&std::fs::read(path).expect("fixture"))
            .expect_err("a control character in a namespace is refused");
        assert!(
            err.to_string().contains("U+0010 is not allowed"),
            "{name}: {err}"
        );
    }
}

/// An unbound prefix in a Fault's `s:Value` QName is refused with the value's path, so the
/// oracle has nothing to round-trip.
fn assert_unbound_subcode(name: &str, offset: u64) {
    let path = fixtures_dir().join("fuzz/envelope").join(name);
    let err = rps_wsman::Envelope::decode(&std::fs::read(path).expect("fixture"))
        .expect_err("an unbound QName prefix is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid Envelope/Body/Fault/Code/Subcode/Value at byte {offset}: expected a QName \
             whose prefix is declared, found \"wsman:InternalError\""
        )
    );
    replay_known("envelope", name);
}

#[test]
fn envelope_crash_2a551338_unbound_qname_prefix() {
    assert_unbound_subcode("crash-2a55133814169ad044606e018e8c09ce3502dc64", 994);
}

#[test]
fn envelope_unbound_prefix_fault_subcode() {
    assert_unbound_subcode("unbound-prefix-fault-subcode.xml", 127);
}

#[test]
fn clixml_control_char_in_datetime() {
    replay_known("clixml", "control-char-in-datetime.xml");
}

#[test]
fn message_crash_49bef4bb_control_char_in_datetime() {
    replay_known("message", "crash-49bef4bb9bd2ca493a94b7da040c76e86019ccc3");
}

#[test]
fn clixml_crash_6541400b_control_chars_in_document_datetime() {
    replay_known("clixml", "crash-6541400bf58e5ce95f8020b5b69078e043bbc084");
}
