//! ironPosh, WinRb, winrm4j and masterzen fixtures: other dialects (OMI/Linux,
//! pretty-printed, odd prefixes), more faults, and hand-made broken XML.

mod common;

use std::collections::BTreeMap;

use rps_wsman::{Body, Envelope, Error, Limits, ns};

const IRONPOSH: &str = "Devolutions__ironPosh/crates/ironposh-winrm/tests/resources";
const WINRB: &str = "WinRb__WinRM/tests/spec/stubs/responses";
const MASTERZEN: &str = "masterzen__winrm/extracted-from-fixture_test.go";

#[test]
fn ironposh_envelopes_decode_and_round_trip() {
    let files = common::files(IRONPOSH, ".xml");
    assert_eq!(files.len(), 3);
    let mut seen = Vec::new();
    for p in &files {
        let env = common::round_trip(&common::name(p), &common::read(p));
        seen.push((common::name(p), common::variant(&env.body)));
        match &env.body {
            Body::CreateResponse(c) => {
                // pretty-printed: every text node is wrapped in whitespace
                let shell = c.shell.as_ref().expect("shell");
                assert_eq!(shell.compression_mode.as_deref(), Some("XpressCompression"));
                assert_eq!(shell.data_locale.as_deref(), Some("en-CA"));
                let id = env.shell_id().expect("shell id");
                assert_eq!(id.len(), 36, "{id:?} trimmed");
                assert_eq!(shell.shell_id.as_deref(), Some(id));
            }
            Body::ReceiveResponse(r) => {
                assert_eq!(
                    env.header.operation_id.as_deref(),
                    Some("uuid:672d68a1-9782-4f78-bebc-8b5db2355fda")
                );
                assert_eq!(env.header.sequence_id, Some(1));
                assert_eq!(r.streams.len(), 1);
                // PSRP fragment header: ObjectId 3, FragmentId 0, Start|End
                assert_eq!(
                    &r.streams[0].data[..17],
                    &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3]
                );
                assert_eq!(r.streams[0].command_id, None);
            }
            Body::Fault(f) => {
                assert!(f.code.is(ns::SOAP, "Sender"));
                assert!(f.has_subcode(ns::WSMAN, "SchemaValidationError"));
                assert_eq!(f.wsman_code(), Some(2_150_858_817));
                let w = f.wsman_fault.as_ref().expect("WSManFault");
                assert_eq!(w.machine.as_deref(), Some("IT-HELP-DC.ad.it-help.ninja"));
                assert!(
                    f.message()
                        .is_some_and(|m| m.starts_with("The Windows Remote Shell"))
                );
            }
            other => panic!("{}: {other:?}", common::name(p)),
        }
    }
    assert_eq!(
        seen,
        [
            ("error_response.xml".to_owned(), "Fault"),
            ("receive_response.xml".to_owned(), "ReceiveResponse"),
            ("resource_created.xml".to_owned(), "CreateResponse"),
        ]
    );
    // the copy under ironposh-client-core decodes to the same value
    let copy = common::fixtures().join(
        "Devolutions__ironPosh/crates/ironposh-client-core/tests/resources/resource_created.xml",
    );
    let orig = common::fixtures()
        .join(IRONPOSH)
        .join("resource_created.xml");
    assert_eq!(
        Envelope::decode(&common::read(&copy)).expect("copy"),
        Envelope::decode(&common::read(&orig)).expect("orig")
    );
}

#[test]
fn ironposh_malformed_cases_give_typed_results() {
    let dir = format!("{IRONPOSH}/malformed");
    let files = common::files(&dir, ".xml");
    assert_eq!(files.len(), 8);
    let mut kinds = BTreeMap::new();
    for p in &files {
        let n = common::name(p);
        let res = Envelope::decode(&common::read(p));
        let kind = match &res {
            Ok(env) => format!("ok:{}", common::variant(&env.body)),
            Err(Error::Malformed { .. }) => "Malformed".to_owned(),
            Err(Error::NotEnvelope { .. }) => "NotEnvelope".to_owned(),
            Err(Error::Missing { expected, .. }) => format!("Missing:{expected}"),
            Err(e) => format!("other:{e}"),
        };
        kinds.insert(n, kind);
    }
    let expect: BTreeMap<String, String> = [
        // an empty body is not a ReceiveResponse
        ("empty_body.xml", "Missing:rsp:ReceiveResponse"),
        // unknown elements are ignored (and kept raw)
        ("extra_unknown_elements.xml", "ok:ReceiveResponse"),
        ("invalid_xml_syntax.xml", "Malformed"),
        ("missing_body.xml", "Missing:s:Body"),
        ("missing_envelope.xml", "NotEnvelope"),
        ("not_xml_at_all.xml", "Malformed"),
        ("truncated_mid_tag.xml", "Malformed"),
        ("wrong_namespace.xml", "NotEnvelope"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(kinds, expect);

    // the unknown parts survive a round trip
    let p = common::fixtures()
        .join(&dir)
        .join("extra_unknown_elements.xml");
    let env = common::round_trip("extra_unknown_elements", &common::read(&p));
    let names: Vec<&str> = env.header.unknown.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["UnknownHeader", "AnotherUnknown"]);
    assert!(env.header.unknown[1].xml.contains("Nested content"));
    assert_eq!(
        env.header.unknown[1].namespace.as_deref(),
        Some("http://example.com/custom")
    );
    let Body::ReceiveResponse(r) = &env.body else {
        panic!()
    };
    assert_eq!(r.streams[0].data, b"Hello World");
    assert_eq!(r.extra.len(), 1);
    assert_eq!(env.body_extra.len(), 1);
    assert_eq!(env.body_extra[0].name, "ExtraBodyElement");

    // the offset of a syntax error points into the document
    let p = common::fixtures().join(&dir).join("truncated_mid_tag.xml");
    let bytes = common::read(&p);
    let err = Envelope::decode(&bytes).expect_err("truncated");
    assert!(
        err.offset() > 300 && err.offset() <= bytes.len() as u64,
        "{err}"
    );
}

#[test]
fn ntlm_sealed_body_is_a_typed_error() {
    let p = common::fixtures().join(
        "Devolutions__ironPosh/crates/ironposh-client-core/test_data/real_encrypted_soap.txt",
    );
    let hex = String::from_utf8(common::read(&p)).expect("hex text");
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(bytes.len(), 2420);
    let err = Envelope::decode(&bytes).expect_err("sealed");
    assert!(
        matches!(err, Error::Encoding { .. } | Error::Malformed { .. }),
        "{err:?}"
    );
    // the hex text itself is not XML either
    assert!(matches!(
        Envelope::decode(hex.as_bytes()),
        Err(Error::Malformed { .. })
    ));
    // nor the bare sealed payload behind the 4+16 byte signature header
    let start = bytes
        .windows(24)
        .position(|w| w == b"application/octet-stream")
        .expect("octet-stream part");
    let err = Envelope::decode(&bytes[start + 26..]).expect_err("sealed payload");
    assert!(
        matches!(err, Error::Encoding { .. } | Error::Malformed { .. }),
        "{err:?}"
    );
}

#[test]
fn winrb_responses_decode_including_omi() {
    let mut seen = BTreeMap::new();
    for p in common::files(WINRB, ".xml") {
        let n = common::name(&p);
        let env = common::round_trip(&n, &common::read(&p));
        seen.insert(n.clone(), common::variant(&env.body));
        match n.as_str() {
            "open_shell_omi.xml" => {
                let Body::CreateResponse(c) = &env.body else {
                    panic!()
                };
                assert!(c.shell.is_none());
                assert_eq!(env.shell_id(), Some("74142DC5-E14D-4FCC-86ED-63DA3EE8407E"));
                assert_eq!(
                    c.resource_created.as_ref().map(|r| r.address.as_str()),
                    Some(ns::ANONYMOUS)
                );
            }
            "open_shell_v1.xml" => {
                // old WinRM writes the selector as a URN
                assert_eq!(
                    env.shell_id(),
                    Some("uuid:739990FF-1492-4CDD-80BB-6E07ADB06D85")
                );
                assert_eq!(
                    env.shell_uuid().map(|u| u.to_string()),
                    Some("739990ff-1492-4cdd-80bb-6e07adb06d85".to_owned())
                );
            }
            "open_shell_v2.xml" => {
                assert_eq!(env.shell_id(), Some("62DE33F0-8674-43D9-B6A5-3298012CC4CD"));
                assert!(env.shell_uuid().is_some());
            }
            "soap_fault_omi.xml" => {
                let f = env.fault().expect("fault");
                assert!(f.code.is(ns::SOAP, "Receiver"));
                assert!(f.has_subcode(ns::WSMAN, "InternalError"));
                assert_eq!(f.wsman_code(), None);
            }
            "soap_fault_v1.xml" | "soap_fault_v2.xml" => {
                let f = env.fault().expect("fault");
                assert!(f.has_subcode(ns::ENUMERATION, "CannotProcessFilter"));
                assert_eq!(f.wsman_code(), Some(2_150_858_778));
                let pf = f
                    .wsman_fault
                    .as_ref()
                    .and_then(|w| w.provider_fault.as_ref())
                    .expect("provider fault");
                assert!(
                    pf.provider.as_deref().is_some_and(|p| p.starts_with("WMI")),
                    "{pf:?}"
                );
                assert!(pf.text.contains("The specified class does not exist"));
            }
            "wmi_error_v2.xml" => {
                let f = env.fault().expect("fault");
                assert!(f.has_subcode(ns::WSMAN, "QuotaLimit"));
                assert!(f.wsman_fault.is_none());
                assert_eq!(f.detail_raw.len(), 1);
                assert_eq!(f.detail_raw[0].name, "MSFT_WmiError");
                assert!(f.detail_raw[0].xml.contains("2150859173"));
            }
            "get_omi_config_response.xml" => {
                // despite the name, OMI answered with a fault; whitespace-padded values
                let f = env.fault().expect("fault");
                assert!(f.code.is(ns::SOAP, "Receiver"));
                assert!(f.has_subcode(ns::WSMAN, "InternalError"));
                assert_eq!(
                    f.reason.as_deref(),
                    Some("get-instance: instance name parameter is missing")
                );
                assert_eq!(env.action(), Some(ns::action::WSMAN_FAULT));
            }
            _ => {}
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(
        !seen.values().any(|v| *v == "Unknown" || *v == "Empty"),
        "{seen:?}"
    );
}

#[test]
fn winrb_templates_decode_once_filled() {
    let mut n = 0;
    for (name, text) in common::winrb_erb() {
        let env = common::round_trip(&name, text.as_bytes());
        let Body::ReceiveResponse(r) = &env.body else {
            panic!("{name}: {:?}", env.body)
        };
        let done = r.command_state.as_ref().is_some_and(|c| c.is_done());
        assert_eq!(
            done,
            !name.contains("not_done") && !name.contains("keepalive"),
            "{name}"
        );
        if name == "get_powershell_keepalive_response.xml.erb" {
            assert_eq!(r.streams.len(), 2);
            assert_eq!(r.streams[1].data, [0, 0, 0, 0, 0, 0, 0, 2]);
        }
        if name.starts_with("get_command_output_response.") {
            assert_eq!(r.command_state.as_ref().and_then(|c| c.exit_code), Some(0));
            let out: Vec<u8> = r
                .streams
                .iter()
                .filter(|s| s.name == "stdout")
                .flat_map(|s| s.data.clone())
                .collect();
            assert_eq!(out, b"hello world\r\n");
        }
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn winrm4j_sessions_decode_and_round_trip() {
    let all = common::winrm4j();
    assert_eq!(all.len(), 20);
    let mut actions = Vec::new();
    for (file, kind, text) in &all {
        let label = format!("{file} {kind}");
        let env = common::round_trip(&label, text.as_bytes());
        let v = common::variant(&env.body);
        assert!(v != "Unknown" && v != "Empty", "{label}: {v}");
        if *kind == "request" {
            actions.push(v);
            assert_eq!(env.resource_uri(), Some(ns::resource::CMD));
        }
        if let Body::ReceiveResponse(r) = &env.body {
            let out: Vec<u8> = r.streams.iter().flat_map(|s| s.data.clone()).collect();
            assert!(String::from_utf8_lossy(&out).contains("myline"), "{label}");
        }
    }
    assert_eq!(
        actions,
        [
            "Create", "Command", "Receive", "Signal", "Delete", "Create", "Command", "Receive",
            "Signal", "Delete"
        ]
    );
}

#[test]
fn masterzen_envelopes_decode_and_round_trip() {
    let mut seen = BTreeMap::new();
    for p in common::files(MASTERZEN, ".xml") {
        let n = common::name(&p);
        let env = common::round_trip(&n, &common::read(&p));
        seen.insert(n.clone(), common::variant(&env.body));
        if n == "operationTimeoutResponse.xml" {
            assert!(env.fault().expect("fault").is_operation_timeout());
        }
        if n == "executeCommandResponseWithError.xml" {
            let f = env.fault().expect("fault");
            assert_eq!(f.wsman_code(), Some(2_147_942_606));
            assert_eq!(f.message(), Some("The filename or extension is too long."));
            assert_eq!(f.reason_lang.as_deref(), Some(""));
        }
        if n == "doneCommandExitCode0Response.xml" {
            let Body::ReceiveResponse(r) = &env.body else {
                panic!()
            };
            assert_eq!(r.command_state.as_ref().and_then(|c| c.exit_code), Some(0));
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(
        seen.values().filter(|v| **v == "ReceiveResponse").count(),
        4
    );
    assert_eq!(seen.values().filter(|v| **v == "Fault").count(), 2);
    let reqs = common::masterzen_requests();
    let variants: Vec<&str> = reqs
        .iter()
        .map(|r| common::variant(&common::round_trip("masterzen request", r.as_bytes()).body))
        .collect();
    assert_eq!(
        variants,
        ["Create", "Command", "Receive", "Delete", "Signal"]
    );
    // unqualified mustUnderstand (as masterzen writes it) is understood
    let env = Envelope::decode(reqs[0].as_bytes()).expect("create");
    assert_eq!(
        env.header.max_envelope_size.and_then(|m| m.must_understand),
        Some(true)
    );
    assert_eq!(env.header.option(ns::option::CODEPAGE), Some("65001"));
}

#[test]
fn timed_out_faults_across_all_sets() {
    let mut n = 0;
    for (_, ex) in common::pypsrp() {
        for e in ex {
            if let Some(r) = e.response {
                n += usize::from(
                    Envelope::decode(r.as_bytes())
                        .expect("d")
                        .fault()
                        .is_some_and(|f| f.is_operation_timeout()),
                );
            }
        }
    }
    for p in common::files(MASTERZEN, ".xml")
        .into_iter()
        .chain(common::files(WINRB, ".xml"))
    {
        let env = Envelope::decode(&common::read(&p)).expect("d");
        n += usize::from(env.fault().is_some_and(|f| f.is_operation_timeout()));
    }
    for (_, _, text) in common::winrm4j() {
        let env = Envelope::decode(text.as_bytes()).expect("d");
        n += usize::from(env.fault().is_some_and(|f| f.is_operation_timeout()));
    }
    // 2 in pypsrp (test_winrs_operation_timeout) + 1 in masterzen
    assert_eq!(n, 3);
}

#[test]
fn limits_apply_to_real_traffic() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_client_execute_ps.yml")
        .expect("recording");
    let r = ex[4].response.as_deref().expect("r").as_bytes();
    assert_eq!(Envelope::decode(r).expect("ok").streams().count(), 10);
    let err = Envelope::decode_with(r, &Limits::default().with_max_streams(9)).expect_err("limit");
    assert!(
        matches!(err, Error::TooManyStreams { limit: 9, .. }),
        "{err:?}"
    );
    let err = Envelope::decode_with(r, &Limits::default().with_max_envelope_bytes(1000))
        .expect_err("limit");
    assert!(
        matches!(err, Error::TooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    let err = Envelope::decode_with(r, &Limits::default().with_max_depth(4)).expect_err("limit");
    assert!(matches!(err, Error::TooDeep { limit: 4, .. }), "{err:?}");
    assert!(Envelope::decode_with(r, &Limits::default().with_max_depth(5)).is_ok());
}
