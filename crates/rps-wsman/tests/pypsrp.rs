//! The pypsrp recordings: real Windows traffic, every request and response.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use rps_wsman::{Body, Envelope, Item, PsrpPart, ns};

/// Naive, independent scan: `(attributes, text)` of every `<open ...>text</close>`.
fn elements<'a>(xml: &'a str, open: &str, close: &str) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(open) {
        let after = &rest[i + open.len()..];
        if !after.starts_with([' ', '>', '/']) {
            rest = after;
            continue;
        }
        let gt = after.find('>').expect("tag end");
        let attrs = &after[..gt];
        if attrs.ends_with('/') {
            out.push((attrs, ""));
            rest = &after[gt..];
            continue;
        }
        let body = &after[gt + 1..];
        let end = body.find(close).expect("close tag");
        out.push((attrs, &body[..end]));
        rest = &body[end..];
    }
    out
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = attrs.find(&key)?;
    let v = &attrs[i + key.len()..];
    Some(&v[..v.find('"')?])
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("recording base64")
}

#[test]
fn every_exchange_decodes_to_the_variant_its_action_names() {
    let sets = common::pypsrp();
    assert_eq!(sets.len(), 53, "pypsrp recordings");
    let mut requests = 0;
    let mut responses = 0;
    let mut per_variant: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, exchanges) in &sets {
        for (i, ex) in exchanges.iter().enumerate() {
            let mut texts = vec![("request", ex.request.as_str())];
            if let Some(r) = &ex.response {
                texts.push(("response", r.as_str()));
            }
            for (kind, text) in texts {
                let label = format!("{file}#{i} {kind}");
                let env =
                    Envelope::decode(text.as_bytes()).unwrap_or_else(|e| panic!("{label}: {e}"));
                let action = env.action().unwrap_or_else(|| panic!("{label}: no action"));
                let v = common::variant(&env.body);
                if action == ns::action::WSMAN_FAULT || action == ns::action::ADDRESSING_FAULT {
                    assert_eq!(v, "Fault", "{label}");
                } else {
                    let expected = action.rsplit('/').next().unwrap_or_default();
                    assert_eq!(v, expected, "{label}: action {action}");
                }
                *per_variant.entry(v).or_default() += 1;
                if kind == "request" {
                    requests += 1;
                } else {
                    responses += 1;
                }
            }
        }
    }
    assert_eq!((requests, responses), (411, 410));
    assert!(!per_variant.contains_key("Unknown") && !per_variant.contains_key("Empty"));
    let expect = [
        ("Create", 63),
        ("CreateResponse", 63),
        ("Command", 54),
        ("CommandResponse", 53),
        ("Receive", 161),
        ("ReceiveResponse", 156),
        ("Send", 22),
        ("SendResponse", 22),
        ("Signal", 21),
        ("SignalResponse", 21),
        ("Fault", 8),
        ("Enumerate", 6),
        ("EnumerateResponse", 6),
        ("Connect", 6),
        ("ConnectResponse", 6),
        ("Disconnect", 5),
        ("DisconnectResponse", 5),
    ];
    for (v, n) in expect {
        assert_eq!(
            per_variant.get(v).copied(),
            Some(n),
            "count of {v}: {per_variant:?}"
        );
    }
}

#[test]
fn recorded_faults_decode_to_their_real_codes() {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for (file, exchanges) in common::pypsrp() {
        for (i, ex) in exchanges.iter().enumerate() {
            let Some(r) = &ex.response else { continue };
            let env = Envelope::decode(r.as_bytes()).expect("decodes");
            let Some(f) = env.fault() else { continue };
            assert!(
                ex.transport_error.is_some(),
                "{file}#{i}: faults arrive as HTTP 500"
            );
            let sub = f.subcodes.first().expect("subcode");
            *found.entry(sub.local.clone()).or_default() += 1;
            assert!(f.wsman_code().is_some(), "{file}#{i}: WSManFault code");
            assert!(f.reason.as_deref().is_some_and(|r| !r.is_empty()));
            assert!(f.message().is_some());
            match sub.local.as_str() {
                "TimedOut" => {
                    assert!(f.is_operation_timeout() && !f.is_invalid_selectors());
                    assert!(f.code.is(ns::SOAP, "Receiver"), "{:?}", f.code);
                    assert_eq!(f.wsman_code(), Some(2_150_858_793));
                }
                "InvalidSelectors" => {
                    assert!(f.is_invalid_selectors() && !f.is_operation_timeout());
                    assert!(f.code.is(ns::SOAP, "Sender"));
                    assert_eq!(f.wsman_code(), Some(2_150_858_843));
                }
                "InvalidMessageInformationHeader" => {
                    assert_eq!(sub.namespace.as_deref(), Some(ns::ADDRESSING));
                }
                _ => assert_eq!(sub.namespace.as_deref(), Some(ns::WSMAN), "{sub:?}"),
            }
        }
    }
    let expect: BTreeMap<String, usize> = [
        ("InternalError", 1),
        ("InvalidMessageInformationHeader", 1),
        ("InvalidParameter", 1),
        ("InvalidSelectors", 3),
        ("TimedOut", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(found, expect);
}

#[test]
fn invalid_selectors_fault_detail_is_typed() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_psrp_is_alive_invalid_selectors.yml")
        .expect("recording");
    let env =
        Envelope::decode(ex[4].response.as_deref().expect("response").as_bytes()).expect("decodes");
    let f = env.fault().expect("fault");
    assert_eq!(
        f.fault_detail.as_deref(),
        Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors")
    );
    let w = f.wsman_fault.as_ref().expect("WSManFault");
    assert_eq!(w.machine.as_deref(), Some("127.0.0.1"));
    let p = w.provider_fault.as_ref().expect("ProviderFault");
    assert_eq!(p.provider.as_deref(), Some("Shell provider"));
    assert_eq!(
        p.path.as_deref(),
        Some("%systemroot%\\system32\\WsmSvc.dll")
    );
    assert!(
        p.text
            .starts_with("The WS-Management service cannot process the request")
    );
    assert_eq!(w.message.as_deref(), Some(p.text.as_str()));
    assert_eq!(f.detail_raw.len(), 2);
    assert_eq!(f.detail_raw[1].name, "WSManFault");
}

#[test]
fn every_request_re_encodes_to_the_same_values_and_matches_the_recording() {
    let mut checked = 0;
    let mut streams = 0;
    for (file, exchanges) in common::pypsrp() {
        for (i, ex) in exchanges.iter().enumerate() {
            let label = format!("{file}#{i} request");
            let rec = ex.request.as_str();
            let env = common::round_trip(&label, rec.as_bytes());
            let again = Envelope::decode(env.encode().as_bytes()).expect("re-decode");

            // action, resource URI
            let (_, action) = elements(rec, "<wsa:Action", "</wsa:Action>")[0];
            assert_eq!(again.action(), Some(action), "{label}");
            let (_, ruri) = elements(rec, "<wsman:ResourceURI", "</wsman:ResourceURI>")[0];
            assert_eq!(again.resource_uri(), Some(ruri), "{label}");

            // selectors (header only: before s:Body)
            let header = &rec[..rec.find("<s:Body").expect("body")];
            let sel: Vec<(String, String)> =
                elements(header, "<wsman:Selector", "</wsman:Selector>")
                    .into_iter()
                    .map(|(a, t)| (attr(a, "Name").expect("Name").to_owned(), t.to_owned()))
                    .collect();
            let got: Vec<(String, String)> = again
                .header
                .selectors
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect();
            assert_eq!(got, sel, "{label}");

            // options with MustComply
            let opts: Vec<(String, String, Option<bool>)> =
                elements(header, "<wsman:Option", "</wsman:Option>")
                    .into_iter()
                    .map(|(a, t)| {
                        (
                            attr(a, "Name").expect("Name").to_owned(),
                            t.to_owned(),
                            attr(a, "MustComply").map(|v| v == "true"),
                        )
                    })
                    .collect();
            let got: Vec<(String, String, Option<bool>)> = again
                .header
                .options
                .iter()
                .flat_map(|s| s.options.iter())
                .map(|o| (o.name.clone(), o.value.clone(), o.must_comply))
                .collect();
            assert_eq!(got, opts, "{label}");
            if header.contains("<wsman:OptionSet") {
                assert_eq!(
                    again
                        .header
                        .options
                        .as_ref()
                        .and_then(|o| o.must_understand),
                    Some(true)
                );
            }

            // MaxEnvelopeSize, MessageID, SessionId
            let (_, max) =
                elements(header, "<wsman:MaxEnvelopeSize", "</wsman:MaxEnvelopeSize>")[0];
            assert_eq!(
                again.header.max_envelope_size.map(|m| m.value.to_string()),
                Some(max.to_owned())
            );
            let (_, mid) = elements(header, "<wsa:MessageID", "</wsa:MessageID>")[0];
            assert_eq!(again.header.message_id.as_deref(), Some(mid));
            assert!(again.header.message_uuid().is_some());

            // payloads: streams, creationXml, connectXml, Arguments
            let rec_streams: Vec<(String, Option<String>, Vec<u8>)> =
                elements(rec, "<rsp:Stream", "</rsp:Stream>")
                    .into_iter()
                    .map(|(a, t)| {
                        (
                            attr(a, "Name").expect("Name").to_owned(),
                            attr(a, "CommandId").map(str::to_owned),
                            b64(t),
                        )
                    })
                    .collect();
            let got: Vec<(String, Option<String>, Vec<u8>)> = again
                .streams()
                .map(|s| (s.name.clone(), s.command_id.clone(), s.data.clone()))
                .collect();
            assert_eq!(got, rec_streams, "{label}");
            streams += got.len();
            match &again.body {
                Body::Create(s) => {
                    let rec_cx = elements(rec, "<creationXml", "</creationXml>");
                    assert_eq!(
                        s.creation_xml.clone(),
                        rec_cx.first().map(|(_, t)| b64(t)),
                        "{label}"
                    );
                    assert_eq!(
                        again.shell_id(),
                        attr(elements(rec, "<rsp:Shell", "</rsp:Shell>")[0].0, "ShellId")
                    );
                }
                Body::Connect(c) => {
                    let rec_cx = elements(rec, "<connectXml", "</connectXml>");
                    assert_eq!(c.connect_xml.clone(), rec_cx.first().map(|(_, t)| b64(t)));
                }
                Body::Command(c) => {
                    let args: Vec<&str> = elements(rec, "<rsp:Arguments", "</rsp:Arguments>")
                        .into_iter()
                        .map(|(_, t)| t)
                        .collect();
                    let got: Vec<&str> = c.arguments.iter().map(String::as_str).collect();
                    if !args.iter().any(|a| a.contains('&')) {
                        assert_eq!(got, args, "{label}");
                    }
                    if c.command_id.is_some() {
                        assert_eq!(c.psrp_payload().expect("psrp"), b64(args[0]));
                    }
                }
                _ => {}
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 411);
    assert_eq!(streams, 22);
}

#[test]
fn every_response_round_trips_and_streams_match_the_recording() {
    let mut n = 0;
    let mut streams = 0;
    let mut payload = 0usize;
    for (file, exchanges) in common::pypsrp() {
        for (i, ex) in exchanges.iter().enumerate() {
            let Some(rec) = &ex.response else { continue };
            let label = format!("{file}#{i} response");
            let env = common::round_trip(&label, rec.as_bytes());
            if let Body::ReceiveResponse(r) = &env.body {
                let rec_streams = elements(rec, "<rsp:Stream", "</rsp:Stream>");
                assert_eq!(r.streams.len(), rec_streams.len(), "{label}");
                for (s, (a, t)) in r.streams.iter().zip(&rec_streams) {
                    assert_eq!(Some(s.name.as_str()), attr(a, "Name"));
                    assert_eq!(s.command_id.as_deref(), attr(a, "CommandId"));
                    assert_eq!(s.end, attr(a, "End") == Some("true"));
                    assert_eq!(s.data, b64(t), "{label}");
                    payload += s.data.len();
                }
                streams += r.streams.len();
                if let Some(cs) = &r.command_state {
                    assert!(cs.state.starts_with(
                        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/"
                    ));
                    assert_eq!(cs.exit_code.is_some(), cs.is_done(), "{label}");
                }
            }
            n += 1;
        }
    }
    assert_eq!(n, 410);
    assert_eq!(streams, 420);
    assert_eq!(payload, 564_371);
}

/// A payload as seen: (part, stream name, CommandId, bytes).
type Seen<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>);

#[test]
fn psrp_payloads_are_every_recorded_payload_in_document_order() {
    let mut per_part: BTreeMap<String, usize> = BTreeMap::new();
    let mut winrs_commands = 0;
    for (file, exchanges) in common::pypsrp() {
        for (i, ex) in exchanges.iter().enumerate() {
            let mut texts = vec![("request", ex.request.as_str())];
            if let Some(r) = &ex.response {
                texts.push(("response", r.as_str()));
            }
            for (kind, text) in texts {
                let label = format!("{file}#{i} {kind}");
                let env = Envelope::decode(text.as_bytes()).expect("decodes");
                // Independent scan. A body carries one kind of payload, so chaining the
                // scans keeps document order.
                let mut want: Vec<Seen<'_>> = Vec::new();
                for el in ["creationXml", "connectXml", "connectResponseXml"] {
                    for (_, t) in elements(text, &format!("<{el}"), &format!("</{el}>")) {
                        want.push((el, None, None, b64(t)));
                    }
                }
                for (a, t) in elements(text, "<rsp:Stream", "</rsp:Stream>") {
                    want.push(("Stream", attr(a, "Name"), attr(a, "CommandId"), b64(t)));
                }
                let lines = elements(text, "<rsp:CommandLine", "</rsp:CommandLine>");
                if let Some((a, line)) = lines.first() {
                    let args = elements(line, "<rsp:Arguments", "</rsp:Arguments>");
                    if env.resource_uri() == Some(ns::resource::CMD) {
                        // A WinRS command line: arguments are text, not base64.
                        winrs_commands += 1;
                        if args.iter().any(|(_, t)| t.contains(' ')) {
                            assert!(env.psrp_payloads().is_err(), "{label}");
                        }
                        continue;
                    }
                    if let Some((_, t)) = args.first() {
                        want.push(("Arguments", None, attr(a, "CommandId"), b64(t)));
                    }
                }
                let got: Vec<Seen<'_>> = env
                    .psrp_payloads()
                    .unwrap_or_else(|e| panic!("{label}: {e}"))
                    .into_iter()
                    .map(|p| match p.part {
                        PsrpPart::Stream { name, command_id } => {
                            ("Stream", Some(name), command_id, p.data.into_owned())
                        }
                        PsrpPart::Arguments { command_id } => {
                            ("Arguments", None, command_id, p.data.into_owned())
                        }
                        part => (part.name(), None, None, p.data.into_owned()),
                    })
                    .collect();
                assert_eq!(got, want, "{label}");
                for (part, ..) in &got {
                    *per_part.entry((*part).to_owned()).or_default() += 1;
                }
            }
        }
    }
    // Each kind of payload in the recordings is seen, as many times as they hold.
    let counts: Vec<(&str, usize)> = per_part.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        counts,
        [
            ("Arguments", 34),
            ("Stream", 442),
            ("connectResponseXml", 4),
            ("connectXml", 4),
            ("creationXml", 42),
        ]
    );
    assert_eq!(winrs_commands, 20);
}

#[test]
fn create_response_and_enumeration_are_typed() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_client_execute_ps.yml")
        .expect("recording");
    let env = Envelope::decode(ex[0].response.as_deref().expect("r").as_bytes()).expect("decode");
    let Body::CreateResponse(c) = &env.body else {
        panic!("{:?}", env.body)
    };
    let rc = c.resource_created.as_ref().expect("ResourceCreated");
    assert_eq!(rc.address, "https://127.0.0.1:55986/wsman");
    assert_eq!(rc.resource_uri.as_deref(), Some(ns::resource::POWERSHELL));
    let shell = c.shell.as_ref().expect("shell");
    assert_eq!(shell.owner.as_deref(), Some("WIN-NNMU24VVKJ0\\vagrant"));
    assert_eq!(shell.client_ip.as_deref(), Some("10.0.2.2"));
    assert_eq!(shell.state.as_deref(), Some("Connected"));
    assert_eq!(shell.input_streams.as_deref(), Some("stdin pr"));
    assert_eq!(env.shell_id(), Some("0533352D-95C5-4715-BF50-1F449FF1FC9B"));
    assert_eq!(
        env.header.relates_to.as_deref(),
        Some("uuid:7A91FD5B-6F0F-45FC-AB9F-A54E0951A4DD")
    );
    // ActivityId is not typed: preserved as an unknown header
    assert_eq!(env.header.unknown.len(), 1);
    assert_eq!(env.header.unknown[0].name, "ActivityId");
    assert_eq!(env.header.unknown[0].namespace.as_deref(), Some(ns::WSMV));

    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_psrp_disconnect_runspaces.yml")
        .expect("recording");
    let env = Envelope::decode(ex[11].response.as_deref().expect("r").as_bytes()).expect("decode");
    let Body::EnumerateResponse(e) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert!(e.end_of_sequence);
    let shells: Vec<&str> = e
        .items
        .iter()
        .filter_map(Item::as_shell)
        .filter_map(|s| s.state.as_deref())
        .collect();
    assert_eq!(shells, ["Disconnected", "Disconnected"]);
}

#[test]
fn winrs_environment_values_are_unescaped() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_winrs_environment.yml")
        .expect("recording");
    let env = Envelope::decode(ex[0].request.as_bytes()).expect("decode");
    let Body::Create(s) = &env.body else { panic!() };
    assert_eq!(s.environment.len(), 3);
    assert_eq!(s.environment[2].name, "_-(){}[]<>*+-/\\?\"!@#$^&|;:i,.`~0");
    assert_eq!(s.environment[2].value, "_-(){}[]<>*+-/\\?\"!@#$^&|;:i,.`~0");
    let env = Envelope::decode(ex[2].response.as_deref().expect("r").as_bytes()).expect("decode");
    let text: Vec<u8> = env.streams().flat_map(|s| s.data.iter().copied()).collect();
    assert!(String::from_utf8_lossy(&text).contains("env1=var1"));
}
