//! CLIXML reader/writer conformance on real PowerShell output from the peer fixtures.

mod clixml_support;

use clixml_support::{peer_fixtures, recorded_messages, walk};
use rps_psrp::clixml::{self, Value};

fn round_trip_document(name: &str, bytes: &[u8]) -> Vec<Value> {
    let values = clixml::document_from_slice(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let written = clixml::write_document(&values);
    let again = clixml::document_from_slice(written.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: re-reading our output: {e}"));
    assert!(
        values == again,
        "{name}: decode -> encode -> decode changed the values"
    );
    // The writer is deterministic: a second pass gives the same text.
    assert_eq!(
        written,
        clixml::write_document(&again),
        "{name}: second encode differs"
    );
    values
}

fn round_trip_value(name: &str, bytes: &[u8]) -> Value {
    let v = clixml::from_slice(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let written = clixml::to_string(&v);
    let again = clixml::from_slice(written.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: re-reading our output: {e}\n{written}"));
    assert!(
        v == again,
        "{name}: decode -> encode -> decode changed the value"
    );
    let mut buf = Vec::new();
    clixml::write_value(&mut buf, &v);
    assert_eq!(
        buf,
        written.as_bytes(),
        "{name}: Vec<u8> writer differs from String writer"
    );
    v
}

#[test]
fn css_exchange_export_clixml_documents() {
    let dir = peer_fixtures().join("microsoft__CSS-Exchange");
    let files: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "LICENSE"))
        .collect();
    assert_eq!(files.len(), 228);
    let mut total_values = 0;
    let mut objects = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let values = round_trip_document(&path.display().to_string(), &bytes);
        total_values += values.len();
        objects += values.iter().filter(|v| v.as_object().is_some()).count();
    }
    assert!(total_values >= 228, "{total_values}");
    assert!(objects > 200, "{objects}");
}

#[test]
fn ironposh_clixml_objects() {
    let base = peer_fixtures().join("Devolutions__ironPosh/crates/ironposh-psrp/src/tests");
    let er = round_trip_value(
        "error_record.xml",
        &std::fs::read(base.join("resource/error_record.xml")).unwrap(),
    );
    let er = er.as_object().unwrap();
    assert_eq!(
        er.type_name(),
        Some("System.Management.Automation.ErrorRecord")
    );
    assert!(
        er.to_string
            .as_deref()
            .unwrap()
            .starts_with("The term 'ed' is not recognized")
    );

    let cc = round_trip_value(
        "command_completion_get_ser.xml",
        &std::fs::read(base.join("resources/command_completion_get_ser.xml")).unwrap(),
    );
    let cc = cc.as_object().unwrap();
    assert_eq!(
        cc.type_name(),
        Some("System.Management.Automation.CommandCompletion")
    );
    assert_eq!(cc.get("CurrentMatchIndex"), Some(&Value::I32(-1)));
}

#[test]
fn winrb_clixml_templates_filled() {
    let dir = peer_fixtures().join("WinRb__WinRM/tests/spec/stubs/clixml");
    let mut n = 0;
    for path in walk(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let filled = text
            .replace("<%= pipeline_state %>", "5")
            .replace(
                "<%= error_message %>",
                "Cannot find path 'C:\\nope' because it does not exist.",
            )
            .replace(
                "<%= category_message %>",
                "ObjectNotFound: (C:\\nope:String) [Get-Item], ItemNotFoundException",
            )
            .replace(
                "<%= error_id %>",
                "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
            )
            .replace("<%= script_root %>", "C:\\scripts")
            .replace(
                "<%= stack_trace %>",
                "at &lt;ScriptBlock&gt;, &lt;No file&gt;: line 1",
            );
        assert!(
            !filled.contains("<%"),
            "{}: unfilled placeholder",
            path.display()
        );
        let v = round_trip_value(&path.display().to_string(), filled.as_bytes());
        assert!(v.as_object().is_some());
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn pypsrp_stderr_clixml_documents() {
    let dir = peer_fixtures().join("jborean93__pypsrp/tests/tests_pypsrp/data");
    let err = round_trip_document(
        "with_error",
        &std::fs::read(dir.join("test_sanitise_clixml_with_error.xml")).unwrap(),
    );
    let ok = round_trip_document(
        "no_errors",
        &std::fs::read(dir.join("test_sanitise_clixml_with_no_errors.xml")).unwrap(),
    );
    // Progress objects first, then `<S S="Error">` lines whose _x000D__x000A_ decode to CRLF.
    assert!(
        err.iter()
            .any(|v| v.as_str().is_some_and(|s| s.ends_with("\r\n")))
    );
    assert!(ok.iter().all(|v| v.as_object().is_some()));
    assert!(!err.is_empty() && !ok.is_empty());
}

#[test]
fn pypsrp_recorded_psrp_payloads() {
    let msgs = recorded_messages();
    let mut by_type = std::collections::BTreeMap::<u32, usize>::new();
    for m in &msgs {
        let name = format!(
            "{} #{} {} type {:#010x}",
            m.file, m.exchange, m.side, m.message_type
        );
        round_trip_value(&name, &m.data);
        *by_type.entry(m.message_type).or_default() += 1;
    }
    eprintln!("{} messages: {by_type:x?}", msgs.len());
    assert_eq!(msgs.len(), 508);
    // ERROR_RECORD, INFORMATION_RECORD, PROGRESS_RECORD, APPLICATION_PRIVATE_DATA present.
    for t in [
        0x0004_1005,
        0x0004_1011,
        0x0004_1010,
        0x0002_1009,
        0x0004_1100,
    ] {
        assert!(by_type.contains_key(&t), "no message of type {t:#x}");
    }
}
