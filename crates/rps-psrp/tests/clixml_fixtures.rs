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
        // Every value renders as JSON (the streaming form equals the serde_json::Value form).
        for v in &values {
            let j = clixml::json::to_json(v);
            let streamed = serde_json::to_string(&clixml::json::Json::new(v)).unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&streamed).unwrap(),
                j
            );
        }
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

fn own_fixture(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/clixml")
        .join(name);
    round_trip_document(
        name,
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

#[test]
fn own_regression_fixtures() {
    use rps_psrp::clixml::{ListKind, ObjectBase};

    let p = own_fixture("primitives.xml");
    assert_eq!(p.len(), 27);
    assert_eq!(p[0], Value::Str("tab\t and <markup> & AB".into()));
    assert_eq!(p[1], Value::Char(8364));
    assert_eq!(p[16], Value::F64(2.2250738585072014E-308));
    assert_eq!(p[18], Value::Bytes(b"Hello".to_vec()));
    assert_eq!(
        p[23],
        Value::ScriptBlock("Get-Mailbox | Where-Object { $_.Alias -like 'a*' }".into())
    );
    let Value::Progress(pr) = &p[26] else {
        panic!("{:?}", p[26])
    };
    assert_eq!(pr.current_operation.as_deref(), Some("file 3 of 9"));
    assert_eq!(pr.percent_complete, 33);

    let e = own_fixture("escapes.xml");
    let strs: Vec<_> = e.iter().filter_map(Value::as_str).collect();
    assert_eq!(
        strs,
        [
            "line one\r\nline two",
            "😀 smile",
            "😀 smile",
            "literal _x0041_ text",
            "lone \u{FFFD} surrogate",
            "_x12_ _xZZZZ_ _x",
        ]
    );
    assert_eq!(e[6].as_object().unwrap().extended[0].name, "with space");

    let c = own_fixture("cycle.xml");
    let provider = c[0].as_object().unwrap();
    let drives = provider.get("Drives").unwrap().as_object().unwrap();
    let ObjectBase::List(ListKind::List, items) = &drives.base else {
        panic!()
    };
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].as_object().unwrap().get("Provider"),
        Some(&Value::CycleRef(2))
    );
    assert_eq!(items[0], items[1]);

    let k = own_fixture("containers.xml");
    let ObjectBase::Dict(entries) = &k[0].as_object().unwrap().base else {
        panic!()
    };
    assert_eq!(entries[0], (Value::I32(1), Value::Str("one".into())));
    assert!(
        matches!(&k[1].as_object().unwrap().base, ObjectBase::List(ListKind::Stack, v) if v.len() == 2)
    );
    assert!(
        matches!(&k[2].as_object().unwrap().base, ObjectBase::List(ListKind::Queue, v) if v.len() == 1)
    );
    assert!(
        matches!(&k[3].as_object().unwrap().base, ObjectBase::List(ListKind::Enumerable, v) if v.len() == 2)
    );
    assert_eq!(k[5].as_i64(), Some(9));
    assert_eq!(
        k[5].as_object().unwrap().type_name(),
        Some("System.ConsoleColor")
    );
    let noted = k[6].as_object().unwrap();
    assert_eq!(
        noted.base,
        ObjectBase::Primitive(Value::Str("noted".into()))
    );
    assert_eq!(noted.get("Note"), Some(&Value::Str("extra".into())));
}
