//! Decoder and encoder behaviour on hand-written inputs.

mod common;

use rps_wsman::{
    Body, Envelope, Error, Fault, Header, Item, Limits, QName, ReceiveResponse, Shell, Stream,
    WsmanFault, ns,
};
use uuid::Uuid;

const RECEIVE_RESPONSE: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action></s:Header><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C0FFEE00-0000-0000-0000-000000000001" End="true">aGVsbG8=</rsp:Stream></rsp:ReceiveResponse></s:Body></s:Envelope>"#;

fn utf16(s: &str, be: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if be { &[0xFE, 0xFF] } else { &[0xFF, 0xFE] });
    }
    for u in s.encode_utf16() {
        out.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
    }
    out
}

#[test]
fn utf8_bom_and_utf16_inputs_decode_identically() {
    let base = Envelope::decode(RECEIVE_RESPONSE.as_bytes()).expect("utf-8");
    assert_eq!(
        base.streams().next().map(|s| s.data.as_slice()),
        Some(&b"hello"[..])
    );
    let mut bom8 = vec![0xEF, 0xBB, 0xBF];
    bom8.extend_from_slice(RECEIVE_RESPONSE.as_bytes());
    assert_eq!(Envelope::decode(&bom8).expect("bom"), base);
    for (be, bom) in [(false, true), (true, true), (false, false), (true, false)] {
        let bytes = utf16(RECEIVE_RESPONSE, be, bom);
        assert_eq!(
            Envelope::decode(&bytes).expect("utf-16"),
            base,
            "be={be} bom={bom}"
        );
    }
    // with an XML declaration naming the encoding
    let decl = format!("<?xml version=\"1.0\" encoding=\"utf-16\"?>{RECEIVE_RESPONSE}");
    assert_eq!(
        Envelope::decode(&utf16(&decl, false, true)).expect("decl"),
        base
    );
}

#[test]
fn bad_text_encodings_are_typed_errors_with_offsets() {
    let mut bytes = RECEIVE_RESPONSE.as_bytes().to_vec();
    bytes[40] = 0xFF;
    assert_eq!(
        Envelope::decode(&bytes),
        Err(Error::Encoding {
            offset: 40,
            reason: "invalid utf-8"
        })
    );
    let mut odd = utf16(RECEIVE_RESPONSE, false, true);
    odd.push(b'x');
    assert!(matches!(
        Envelope::decode(&odd),
        Err(Error::Encoding { .. })
    ));
    // unpaired surrogate at code unit 3
    let mut s = utf16("<s:", false, true);
    s.extend_from_slice(&0xD800u16.to_le_bytes());
    s.extend_from_slice(&utf16("/>", false, false));
    assert_eq!(
        Envelope::decode(&s),
        Err(Error::Encoding {
            offset: 8,
            reason: "unpaired utf-16 surrogate"
        })
    );
}

#[test]
fn dtds_and_entity_declarations_are_refused_with_their_offset() {
    let doc = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE s:Envelope [<!ENTITY x \"boom\">]>{}",
        RECEIVE_RESPONSE.replace("aGVsbG8=", "&x;")
    );
    assert_eq!(
        Envelope::decode(doc.as_bytes()),
        Err(Error::Dtd { offset: 22 })
    );
    // an undeclared entity in text and in an attribute
    let text = RECEIVE_RESPONSE.replace("aGVsbG8=", "&x;");
    let err = Envelope::decode(text.as_bytes()).expect_err("entity");
    assert!(
        matches!(&err, Error::UnknownEntity { name, .. } if name == "x"),
        "{err:?}"
    );
    assert_eq!(err.offset(), text.find("&x;").expect("pos") as u64);
    let attr = RECEIVE_RESPONSE.replace("Name=\"stdout\"", "Name=\"&lol;\"");
    assert!(matches!(
        Envelope::decode(attr.as_bytes()),
        Err(Error::UnknownEntity { name, .. }) if name == "lol"
    ));
    // predefined and character references are fine
    let ok = RECEIVE_RESPONSE.replace("aGVsbG8=", "aGVs&#98;G8&#x3D;");
    assert_eq!(
        Envelope::decode(ok.as_bytes())
            .expect("refs")
            .streams()
            .next()
            .map(|s| s.data.clone()),
        Some(b"hello".to_vec())
    );
}

#[test]
fn malformed_xml_reports_where() {
    let cases: [(&str, u64); 4] = [
        (
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body></s:Bod></s:Envelope>",
            70,
        ),
        (
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body/></s:Envelope><x/>",
            84,
        ),
        (
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body/></s:Envelope>junk",
            84,
        ),
        (
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><q:Body/></s:Envelope>",
            62,
        ),
    ];
    for (doc, offset) in cases {
        let err = Envelope::decode(doc.as_bytes()).expect_err(doc);
        assert!(matches!(err, Error::Malformed { .. }), "{doc}: {err:?}");
        assert_eq!(err.offset(), offset, "{doc}: {err}");
    }
    assert!(matches!(
        Envelope::decode(b""),
        Err(Error::NotEnvelope { .. })
    ));
    let soap11 =
        "<e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body/></e:Envelope>";
    let err = Envelope::decode(soap11.as_bytes()).expect_err("soap 1.1");
    assert_eq!(
        err,
        Error::NotEnvelope {
            offset: 0,
            found: "{http://schemas.xmlsoap.org/soap/envelope/}Envelope".to_owned()
        }
    );
    let bad_number = RECEIVE_RESPONSE.replace(
        "</s:Header>",
        "<w:MaxEnvelopeSize xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\">lots</w:MaxEnvelopeSize></s:Header>",
    );
    assert!(matches!(
        Envelope::decode(bad_number.as_bytes()),
        Err(Error::InvalidValue { ref path, ref found, .. }) if path == "Envelope/Header/MaxEnvelopeSize" && found == "lots"
    ));
    let bad_b64 = RECEIVE_RESPONSE.replace("aGVsbG8=", "a*b");
    assert!(matches!(
        Envelope::decode(bad_b64.as_bytes()),
        Err(Error::InvalidValue {
            expected: "base64",
            ..
        })
    ));
}

#[test]
fn limits_bound_depth_elements_and_size() {
    let deep = format!(
        "<s:Envelope xmlns:s=\"{}\"><s:Body>{}{}</s:Body></s:Envelope>",
        ns::SOAP,
        "<a>".repeat(100),
        "</a>".repeat(100)
    );
    let err = Envelope::decode(deep.as_bytes()).expect_err("deep");
    assert!(matches!(err, Error::TooDeep { limit: 64, .. }), "{err:?}");
    // the element that crossed the limit: depth 65 = 2 + 63 <a>
    assert_eq!(err.offset(), (deep.find("<a>").expect("a") + 3 * 62) as u64);
    let wide = format!(
        "<s:Envelope xmlns:s=\"{}\"><s:Body>{}</s:Body></s:Envelope>",
        ns::SOAP,
        "<a/>".repeat(50)
    );
    let limits = Limits::default().with_max_elements(20);
    assert!(matches!(
        Envelope::decode_with(wide.as_bytes(), &limits),
        Err(Error::TooManyElements { limit: 20, .. })
    ));
    let Body::Unknown { elements } = Envelope::decode(wide.as_bytes()).expect("ok").body else {
        panic!()
    };
    assert_eq!(elements.len(), 50);
    let small = Limits::default().with_max_envelope_bytes(10);
    assert_eq!(
        Envelope::decode_with(RECEIVE_RESPONSE.as_bytes(), &small),
        Err(Error::TooLarge {
            size: RECEIVE_RESPONSE.len(),
            limit: 10
        })
    );
}

#[test]
fn prefixes_do_not_matter_only_namespaces() {
    let base = Envelope::decode(RECEIVE_RESPONSE.as_bytes()).expect("base");
    let renamed = RECEIVE_RESPONSE
        .replace("<s:", "<soap:")
        .replace("</s:", "</soap:")
        .replace("xmlns:s=", "xmlns:soap=")
        .replace(
            " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
            "",
        )
        .replace(
            "<a:Action>",
            "<Action xmlns=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\">",
        )
        .replace("</a:Action>", "</Action>")
        .replace("<rsp:", "<x:")
        .replace("</rsp:", "</x:")
        .replace("xmlns:rsp=", "xmlns:x=");
    assert!(
        renamed.contains("<soap:Envelope") && renamed.contains("<x:Stream"),
        "{renamed}"
    );
    assert_eq!(Envelope::decode(renamed.as_bytes()).expect("renamed"), base);
    // the right local name in the wrong namespace is not a stream
    let wrong = RECEIVE_RESPONSE.replace(
        "<rsp:ReceiveResponse>",
        "<rsp:ReceiveResponse xmlns:rsp=\"urn:other\">",
    );
    let env = Envelope::decode(wrong.as_bytes()).expect("decodes");
    assert!(
        matches!(&env.body, Body::Unknown { elements } if elements[0].namespace.as_deref() == Some("urn:other"))
    );
}

#[test]
fn escaping_survives_a_round_trip() {
    let nasty = "a<b>&c\"d'e]]>f\tg\r\nh";
    let header = Header::request(
        "http://h/wsman?x=1&y=<2>",
        ns::action::CREATE,
        ns::resource::CMD,
        Uuid::nil(),
    )
    .with_selector("Shell\"Id", nasty)
    .with_option("opt<&>", nasty, Some(true));
    let shell = Shell {
        name: Some(nasty.to_owned()),
        environment: vec![rps_wsman::EnvVar {
            name: nasty.to_owned(),
            value: nasty.to_owned(),
        }],
        ..Shell::cmd()
    };
    let env = Envelope::new(header, Body::Create(shell));
    let xml = env.encode();
    assert!(xml.contains("a&lt;b&gt;&amp;c"), "{xml}");
    let back = Envelope::decode(xml.as_bytes()).expect("decode");
    assert_eq!(back.header.selector("Shell\"Id"), Some(nasty.trim()));
    assert_eq!(back.header.option("opt<&>"), Some(nasty));
    let Body::Create(s) = &back.body else {
        panic!()
    };
    // values are trimmed on decode, environment values are kept verbatim
    assert_eq!(s.name.as_deref(), Some(nasty.trim()));
    assert_eq!(s.environment[0].value, nasty);
    assert_eq!(s.environment[0].name, nasty);
    assert_eq!(back.header.to.as_deref(), Some("http://h/wsman?x=1&y=<2>"));
    // characters XML 1.0 cannot carry are replaced, never emitted raw
    let env = Envelope::new(
        Header::request("x", "y\u{1}z", "r", Uuid::nil()),
        Body::Empty,
    );
    let xml = env.encode();
    assert!(!xml.contains('\u{1}'));
    assert_eq!(
        Envelope::decode(xml.as_bytes()).expect("d").action(),
        Some("y\u{FFFD}z")
    );
}

/// Build the requests pypsrp recorded, from this crate's constructors, and
/// check they decode to exactly what the recording decodes to.
#[test]
fn constructors_rebuild_recorded_pypsrp_requests() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_psrp_open_runspace.yml")
        .expect("recording");
    let recorded: Vec<Envelope> = ex
        .iter()
        .map(|e| Envelope::decode(e.request.as_bytes()).expect("decode"))
        .collect();
    let shell_id = recorded[0].shell_uuid().expect("shell id");
    let session = recorded[0]
        .header
        .session_id
        .as_deref()
        .and_then(rps_wsman::parse_uuid_urn)
        .expect("session");
    let to = recorded[0].header.to.clone().expect("to");
    let base = |action: &str, e: &Envelope| {
        Header::request(
            to.clone(),
            action,
            ns::resource::POWERSHELL,
            e.header.message_uuid().expect("id"),
        )
        .with_session_id(session)
        .with_max_envelope_size(e.header.max_envelope_size.expect("max").value)
    };

    let Body::Create(s) = &recorded[0].body else {
        panic!()
    };
    let create = Envelope::new(
        base(ns::action::CREATE, &recorded[0]).with_option(
            ns::option::PROTOCOL_VERSION,
            "2.3",
            Some(true),
        ),
        Body::create_powershell(shell_id, s.creation_xml.clone().expect("creationXml")),
    );
    assert_eq!(
        Envelope::decode(create.encode().as_bytes()).expect("d"),
        recorded[0]
    );

    let receive = Envelope::new(
        base(ns::action::RECEIVE, &recorded[1])
            .with_option(ns::option::KEEPALIVE, "True", None)
            .with_shell_id(shell_id),
        Body::receive(None),
    );
    assert_eq!(
        Envelope::decode(receive.encode().as_bytes()).expect("d"),
        recorded[1]
    );

    let delete = Envelope::new(
        base(ns::action::DELETE, &recorded[3]).with_shell_id(shell_id),
        Body::Delete,
    );
    assert_eq!(
        Envelope::decode(delete.encode().as_bytes()).expect("d"),
        recorded[3]
    );
    // Windows-style shape
    let xml = create.encode();
    for needle in [
        "<wsa:Action s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</wsa:Action>",
        "<wsman:MaxEnvelopeSize s:mustUnderstand=\"true\">",
        "<wsman:Locale s:mustUnderstand=\"false\" xml:lang=\"en-US\"/>",
        "<wsmv:DataLocale s:mustUnderstand=\"false\" xml:lang=\"en-US\"/>",
        "<wsman:OptionSet s:mustUnderstand=\"true\"><wsman:Option MustComply=\"true\" Name=\"protocolversion\">2.3</wsman:Option></wsman:OptionSet>",
        "<rsp:Shell ShellId=\"",
        "<creationXml xmlns=\"http://schemas.microsoft.com/powershell\">AAAAAAAAAAEAAAAAAAAAAAMAAADH",
        "<wsa:ReplyTo><wsa:Address s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>",
    ] {
        assert!(xml.contains(needle), "missing {needle}\n{xml}");
    }
}

#[test]
fn other_request_constructors() {
    let cmd = Uuid::from_u128(0xF91BD61F_CEC7_47A3_8CE3_DE7EB7AA5773);
    let h = || {
        Header::request(
            "http://h/wsman",
            ns::action::SIGNAL,
            ns::resource::POWERSHELL,
            Uuid::nil(),
        )
    };
    let env = Envelope::new(h(), Body::signal(Some(cmd), ns::signal::PS_CTRL_C));
    let back = Envelope::decode(env.encode().as_bytes()).expect("d");
    assert_eq!(
        back.command_id(),
        Some("F91BD61F-CEC7-47A3-8CE3-DE7EB7AA5773")
    );
    assert_eq!(back.command_uuid(), Some(cmd));
    let Body::Signal(s) = &back.body else {
        panic!()
    };
    assert_eq!(
        s.code,
        "http://schemas.microsoft.com/powershell/signal/crtl_c"
    );

    let env = Envelope::new(
        h(),
        Body::send(ns::stream::PR, Some(cmd), vec![0, 1, 2, 255]),
    );
    let back = Envelope::decode(env.encode().as_bytes()).expect("d");
    let s: Vec<&Stream> = back.streams().collect();
    assert_eq!(
        (s[0].name.as_str(), s[0].data.as_slice()),
        ("pr", &[0, 1, 2, 255][..])
    );

    let env = Envelope::new(h(), Body::command_psrp(cmd, b"\x00payload"));
    let Body::Command(c) = Envelope::decode(env.encode().as_bytes()).expect("d").body else {
        panic!()
    };
    assert_eq!(c.psrp_payload().expect("b64"), b"\x00payload");
    assert_eq!(c.command.as_deref(), Some(""));

    for (body, action) in [
        (Body::connect(vec![1, 2, 3]), ns::action::CONNECT),
        (Body::connect_command(cmd), ns::action::CONNECT),
        (
            Body::disconnect(Some("PT60S".to_owned())),
            ns::action::DISCONNECT,
        ),
        (Body::disconnect(None), ns::action::DISCONNECT),
        (Body::enumerate_shells(), ns::action::ENUMERATE),
        (Body::Reconnect, ns::action::RECONNECT),
        (Body::Get, ns::action::GET),
        (Body::Delete, ns::action::DELETE),
    ] {
        let mut header = h();
        header.action = Some(action.to_owned());
        let env = Envelope::new(header, body.clone());
        let back = Envelope::decode(env.encode().as_bytes()).expect("d");
        assert_eq!(back.body, body, "{action}");
    }
}

#[test]
fn empty_bodies_are_typed_by_action() {
    for (action, variant) in [
        (ns::action::DELETE_RESPONSE, "DeleteResponse"),
        (ns::action::DELETE, "Delete"),
        (ns::action::GET, "Get"),
        (ns::action::RECONNECT, "Reconnect"),
        (ns::action::RECONNECT_RESPONSE, "ReconnectResponse"),
        (ns::action::DISCONNECT_RESPONSE, "DisconnectResponse"),
        (ns::action::SEND_RESPONSE, "SendResponse"),
        (ns::action::SIGNAL_RESPONSE, "SignalResponse"),
        ("urn:something-else", "Empty"),
    ] {
        let h = Header {
            action: Some(action.to_owned()),
            ..Header::default()
        };
        let xml = Envelope::new(h, Body::Empty).encode();
        assert!(xml.contains("<s:Body/>"));
        let env = Envelope::decode(xml.as_bytes()).expect("decode");
        assert_eq!(common::variant(&env.body), variant, "{action}");
    }
    // a body-less Receive request is refused
    let h = Header {
        action: Some(ns::action::RECEIVE.to_owned()),
        ..Header::default()
    };
    assert!(matches!(
        Envelope::decode(Envelope::new(h, Body::Empty).encode().as_bytes()),
        Err(Error::Missing {
            expected: "rsp:Receive",
            ..
        })
    ));
}

#[test]
fn typed_faults_encode_and_decode() {
    let fault = Fault {
        code: QName::new(ns::SOAP, "Receiver"),
        subcodes: vec![QName::new(ns::WSMAN, "TimedOut"), QName::new("urn:vendor", "Deeper")],
        reason: Some("The WS-Management service cannot complete the operation within the time specified in OperationTimeout.".to_owned()),
        reason_lang: Some("en-US".to_owned()),
        fault_detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/OperationTimeout".to_owned()),
        wsman_fault: Some(WsmanFault {
            code: Some(2_150_858_793),
            machine: Some("srv<1>".to_owned()),
            message: Some("timed out".to_owned()),
            provider_fault: None,
        }),
        detail_raw: Vec::new(),
    };
    let h = Header {
        action: Some(ns::action::WSMAN_FAULT.to_owned()),
        ..Header::default()
    };
    let xml = Envelope::new(h, Body::Fault(fault.clone())).encode();
    let back = Envelope::decode(xml.as_bytes()).expect("decode");
    let f = back.fault().expect("fault");
    assert!(f.is_operation_timeout() && !f.is_invalid_selectors());
    assert_eq!(f.wsman_code(), Some(2_150_858_793));
    assert_eq!(f.subcodes, fault.subcodes);
    assert_eq!(f.code, fault.code);
    assert_eq!(f.wsman_fault, fault.wsman_fault);
    assert_eq!(f.fault_detail, fault.fault_detail);
    assert_eq!(f.detail_raw.len(), 2);
    assert_eq!(f.message(), Some("timed out"));
    // and a second round trip is the identity
    assert_eq!(Envelope::decode(back.encode().as_bytes()).expect("d"), back);
}

#[test]
fn unknown_bodies_and_get_responses_are_preserved() {
    let xml = format!(
        "<s:Envelope xmlns:s=\"{}\" xmlns:a=\"{}\"><s:Header><a:Action>urn:custom</a:Action></s:Header><s:Body><m:Thing xmlns:m=\"urn:m\" m:k=\"v&amp;\"><m:Inner>x &lt; y</m:Inner></m:Thing><Other/></s:Body></s:Envelope>",
        ns::SOAP,
        ns::ADDRESSING
    );
    let env = common::round_trip("unknown", xml.as_bytes());
    let Body::Unknown { elements } = &env.body else {
        panic!()
    };
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0].namespace.as_deref(), Some("urn:m"));
    assert_eq!(
        elements[0].xml,
        "<m:Thing xmlns:m=\"urn:m\" m:k=\"v&amp;\"><m:Inner>x &lt; y</m:Inner></m:Thing>"
    );
    assert_eq!(elements[1].namespace, None);

    let get = xml.replace("urn:custom", ns::action::GET_RESPONSE);
    let env = common::round_trip("get", get.as_bytes());
    assert!(matches!(&env.body, Body::GetResponse(Item::Raw(r)) if r.name == "Thing"));
    assert_eq!(env.body_extra.len(), 1);
}

#[test]
fn synthesized_fixture_decodes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wsman/receive_response.xml");
    let env = common::round_trip("fixtures/wsman/receive_response.xml", &common::read(&path));
    let Body::ReceiveResponse(ReceiveResponse {
        streams,
        command_state,
        extra,
    }) = &env.body
    else {
        panic!("{:?}", env.body)
    };
    assert!(extra.is_empty());
    assert_eq!(streams.len(), 2);
    assert_eq!(
        env.command_id(),
        Some("F91BD61F-CEC7-47A3-8CE3-DE7EB7AA5773")
    );
    // fragment headers: ObjectId 5 and 13, Start|End, blob lengths 0x37 and 0x67
    assert_eq!(streams[0].data[7], 5);
    assert_eq!(streams[1].data[7], 13);
    assert_eq!(streams[0].data.len(), 21 + 0x37);
    assert_eq!(streams[1].data.len(), 21 + 0x67);
    assert!(!streams[0].end && streams[1].end);
    assert!(streams[0].data.ends_with(b"<S>winrm</S>"));
    let cs = command_state.as_ref().expect("state");
    assert!(cs.is_done());
    assert_eq!(cs.exit_code, Some(0));
}

#[test]
fn raw_elements_keep_their_namespaces_when_rewritten() {
    let xml = format!(
        "<s:Envelope xmlns:s=\"{}\" xmlns:h=\"urn:outer\"><s:Header><h:X s:mustUnderstand=\"false\" h:a=\"1\"><h:Y xmlns:h=\"urn:inner\" h:b=\"2\"/><h:W/><d xmlns=\"urn:d\"><e/><f xmlns=\"\"/></d></h:X></s:Header><s:Body/></s:Envelope>",
        ns::SOAP
    );
    let env = common::round_trip("raw", xml.as_bytes());
    let raw = &env.header.unknown[0];
    assert_eq!(
        (raw.namespace.as_deref(), raw.name.as_str()),
        (Some("urn:outer"), "X")
    );
    assert_eq!(
        raw.xml,
        format!(
            "<h:X xmlns:h=\"urn:outer\" xmlns:s=\"{}\" s:mustUnderstand=\"false\" h:a=\"1\"><h:Y xmlns:h=\"urn:inner\" h:b=\"2\"/><h:W/><d xmlns=\"urn:d\"><e/><f xmlns=\"\"/></d></h:X>",
            ns::SOAP
        )
    );
    // the rewritten element, parsed on its own, is the same element
    let alone = format!(
        "<s:Envelope xmlns:s=\"{}\"><s:Header>{}</s:Header><s:Body/></s:Envelope>",
        ns::SOAP,
        raw.xml
    );
    assert_eq!(
        Envelope::decode(alone.as_bytes())
            .expect("alone")
            .header
            .unknown[0],
        *raw
    );
}

#[test]
fn enumeration_pull_and_put_round_trip() {
    let shell = Shell {
        shell_id: Some("B6631D8E-65A0-49F2-9053-A1B156C95777".to_owned()),
        state: Some("Disconnected".to_owned()),
        ..Shell::default()
    };
    let items = rps_wsman::EnumerationItems {
        context: Some("uuid:ctx".to_owned()),
        items: vec![Item::Shell(Box::new(shell.clone()))],
        end_of_sequence: true,
    };
    let cases = [
        (
            ns::action::ENUMERATE_RESPONSE,
            Body::EnumerateResponse(items.clone()),
            "wsman:Items",
        ),
        (
            ns::action::PULL_RESPONSE,
            Body::PullResponse(items),
            "wsen:Items",
        ),
        (
            ns::action::PULL,
            Body::Pull(rps_wsman::Pull {
                context: "uuid:ctx".to_owned(),
                max_elements: Some(10),
            }),
            "<wsen:MaxElements>10</wsen:MaxElements>",
        ),
        (
            ns::action::PUT,
            Body::Put(Item::Shell(Box::new(shell.clone()))),
            "<rsp:ShellId>",
        ),
        (
            ns::action::PUT_RESPONSE,
            Body::PutResponse(None),
            "<s:Body/>",
        ),
        (
            ns::action::GET_RESPONSE,
            Body::GetResponse(Item::Shell(Box::new(shell))),
            "<rsp:State>Disconnected",
        ),
    ];
    for (action, body, needle) in cases {
        let env = Envelope::new(
            Header::response(action, Uuid::from_u128(7), "uuid:req"),
            body.clone(),
        );
        let xml = env.encode();
        assert!(xml.contains(needle), "{action}: {xml}");
        let back = Envelope::decode(xml.as_bytes()).expect("decode");
        assert_eq!(back.body, body, "{action}");
        assert_eq!(back.header.relates_to.as_deref(), Some("uuid:req"));
        assert_eq!(back.header.to.as_deref(), Some(ns::ANONYMOUS));
    }
    let with_filter = rps_wsman::Enumerate {
        filter: Some(rps_wsman::Filter {
            dialect: Some(ns::SELECTOR_FILTER_DIALECT.to_owned()),
            selectors: vec![rps_wsman::Selector::new("ShellId", "X")],
            text: String::new(),
        }),
        ..rps_wsman::Enumerate::shells()
    };
    let env = Envelope::new(Header::default(), Body::Enumerate(with_filter.clone()));
    assert_eq!(
        Envelope::decode(env.encode().as_bytes()).expect("d").body,
        Body::Enumerate(with_filter)
    );
}

#[test]
fn fault_code_helpers() {
    let f = Fault {
        code: QName::new(ns::SOAP, "Sender"),
        subcodes: vec![QName::new(ns::WSMAN, "InvalidSelectors")],
        ..Fault::default()
    };
    assert!(f.is_sender() && !f.is_receiver());
    assert_eq!(f.code.to_string(), format!("{{{}}}Sender", ns::SOAP));
    assert_eq!(
        QName {
            namespace: None,
            local: "x:y".to_owned()
        }
        .to_string(),
        "x:y"
    );
    assert_eq!(
        f.subcode().map(|q| q.local.as_str()),
        Some("InvalidSelectors")
    );
    assert!(f.is_invalid_selectors());
    assert_eq!(f.wsman_code(), None);
    assert_eq!(f.message(), None);
}

#[test]
fn entity_declarations_outside_a_doctype_are_refused_too() {
    for doc in [
        format!("<!ENTITY x \"y\">{RECEIVE_RESPONSE}"),
        RECEIVE_RESPONSE.replace("<s:Body>", "<s:Body><!ENTITY x \"y\">"),
        RECEIVE_RESPONSE.replace("<s:Body>", "<s:Body><!DOCTYPE x>"),
    ] {
        let err = Envelope::decode(doc.as_bytes()).expect_err(&doc);
        assert!(
            matches!(err, Error::Dtd { .. } | Error::Malformed { .. }),
            "{err:?}"
        );
        let at = doc.find("<!").expect("decl") as u64;
        assert_eq!(err.offset(), at, "{err}");
    }
}

/// Every prefix of a real envelope, and every single-byte corruption of a
/// sample of positions, gives a value or a typed error, never a panic.
#[test]
fn truncated_and_corrupted_recordings_never_panic() {
    let sets = common::pypsrp();
    let (_, ex) = sets
        .iter()
        .find(|(f, _)| f == "test_psrp_disconnect_runspaces.yml")
        .expect("recording");
    let mut errors = 0;
    for e in ex.iter().take(15) {
        for text in [Some(&e.request), e.response.as_ref()]
            .into_iter()
            .flatten()
        {
            let bytes = text.as_bytes();
            for cut in (0..bytes.len()).step_by(7) {
                errors += usize::from(Envelope::decode(&bytes[..cut]).is_err());
            }
            for pos in (0..bytes.len()).step_by(13) {
                for b in [b'<', b'>', b'&', b'"', 0, 0xFF, b':'] {
                    let mut m = bytes.to_vec();
                    m[pos] = b;
                    let _ = Envelope::decode(&m);
                }
            }
        }
    }
    assert!(errors > 1000, "{errors}");
}

/// An envelope whose root declares `xmlns:s` as `soap_ns` (raw attribute text) and whose
/// header carries `header`.
fn with_soap_ns(soap_ns: &str, header: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="{soap_ns}"><s:Header>{header}</s:Header><s:Body/></s:Envelope>"#
    )
}

#[test]
fn namespace_declarations_are_unescaped_before_comparison() {
    let plain = Envelope::decode(with_soap_ns(ns::SOAP, "").as_bytes()).expect("plain");
    for escaped in [
        "http://www.w3.org/2003/05/soap&#45;envelope",
        "http://www.w3.org/2003/05/soap&#x2D;envelope",
        "http&#58;//www.w3.org/2003/05/soap-envelope",
        "&#x68;ttp://www.w3.org/2003/05/soap-envelope",
    ] {
        let env = Envelope::decode(with_soap_ns(escaped, "").as_bytes())
            .unwrap_or_else(|e| panic!("{escaped}: {e}"));
        assert_eq!(env, plain, "{escaped}");
    }
    // Entities in a foreign namespace resolve to the URI they spell, and that URI is written
    // back escaped, so the round trip is exact.
    let doc = with_soap_ns(
        ns::SOAP,
        r#"<p:ActivityId xmlns:p="urn:a&amp;b&lt;c&#x3E;d">1</p:ActivityId>"#,
    );
    let env = Envelope::decode(doc.as_bytes()).expect("escaped foreign namespace");
    assert_eq!(env.header.unknown.len(), 1);
    assert_eq!(
        env.header.unknown[0].namespace.as_deref(),
        Some("urn:a&b<c>d")
    );
    let again = Envelope::decode(env.encode().as_bytes()).expect("re-encoded");
    assert_eq!(again, env);
    assert_eq!(again.encode(), env.encode());
    // Whitespace in a declaration is normalized like any attribute value: a raw tab is a
    // space, a character reference to one is kept.
    let doc = with_soap_ns(
        ns::SOAP,
        "<p:X xmlns:p=\"urn:a\tb\"/><q:Y xmlns:q=\"urn:a&#9;b\"/>",
    );
    let env = Envelope::decode(doc.as_bytes()).expect("whitespace");
    let uris: Vec<_> = env
        .header
        .unknown
        .iter()
        .map(|r| r.namespace.as_deref())
        .collect();
    assert_eq!(uris, [Some("urn:a b"), Some("urn:a\tb")]);
    assert_eq!(
        Envelope::decode(env.encode().as_bytes()).expect("again"),
        env
    );
}

/// Whether an error is the one expected.
type ErrorCheck = fn(&Error) -> bool;

#[test]
fn bad_references_in_namespace_declarations_are_typed_errors() {
    let cases: [(&str, ErrorCheck); 5] = [
        (
            "urn:a&bogus;b",
            |e| matches!(e, Error::UnknownEntity { name, offset: 0 } if name == "bogus"),
        ),
        ("urn:a&#xZZ;b", |e| {
            matches!(e, Error::Malformed { offset: 0, .. })
        }),
        ("urn:a&amp b", |e| {
            matches!(e, Error::Malformed { offset: 0, .. })
        }),
        (
            "urn:a&#1;b",
            |e| matches!(e, Error::Malformed { offset: 0, message } if message.contains("U+0001")),
        ),
        ("urn:a&#0;b", |e| {
            matches!(e, Error::Malformed { offset: 0, .. })
        }),
    ];
    for (uri, ok) in cases {
        let doc = format!(
            r#"<s:Envelope xmlns:s="{}" xmlns:p="{uri}"><s:Body/></s:Envelope>"#,
            ns::SOAP
        );
        let err = Envelope::decode(doc.as_bytes()).expect_err(uri);
        assert!(ok(&err), "{uri}: {err:?}");
    }
    // The same on the declaration the root's own name uses.
    let err = Envelope::decode(with_soap_ns("urn:&nope;", "").as_bytes()).expect_err("root");
    assert!(
        matches!(&err, Error::UnknownEntity { name, .. } if name == "nope"),
        "{err:?}"
    );
}

#[test]
fn reserved_namespaces_are_checked_after_unescaping() {
    for decl in [
        r#"xmlns:p="http://www.w3.org/XML/1998/namespace""#,
        r#"xmlns:p="http://www.w3.org/XML/1998&#47;namespace""#,
        r#"xmlns:p="http://www.w3.org/2000/xmlns&#47;""#,
        r#"xmlns="http://www.w3.org/XML/1998&#47;namespace""#,
        r#"xmlns:p="""#,
    ] {
        let doc = format!(
            r#"<s:Envelope xmlns:s="{}"><s:Header><h {decl}/></s:Header><s:Body/></s:Envelope>"#,
            ns::SOAP
        );
        let err = Envelope::decode(doc.as_bytes()).expect_err(decl);
        assert!(
            matches!(&err, Error::Malformed { message, .. } if message.contains("may not be bound")),
            "{decl}: {err:?}"
        );
    }
    // The xml prefix needs no declaration, and may be declared with its own namespace.
    let doc = format!(
        r#"<s:Envelope xmlns:s="{}" xmlns:xml="http://www.w3.org/XML/1998/namespace"><s:Header><p:H xmlns:p="urn:p" xml:lang="en"/></s:Header><s:Body/></s:Envelope>"#,
        ns::SOAP
    );
    let env = Envelope::decode(doc.as_bytes()).expect("xml prefix");
    assert_eq!(
        Envelope::decode(env.encode().as_bytes()).expect("again"),
        env
    );
    // `xmlns=""` undeclares the default namespace.
    let doc = format!(
        r#"<Envelope xmlns="{}"><Header><X xmlns=""/></Header><Body/></Envelope>"#,
        ns::SOAP
    );
    let env = Envelope::decode(doc.as_bytes()).expect("default namespace undeclared");
    assert_eq!(env.header.unknown[0].namespace, None);
}

const UNBOUND_SUBCODE: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>wsman:InternalError</s:Value></s:Subcode></s:Code></s:Fault></s:Body></s:Envelope>"#;

#[test]
fn fault_codes_with_unbound_prefixes_are_typed_errors() {
    let err = Envelope::decode(UNBOUND_SUBCODE.as_bytes()).expect_err("unbound subcode");
    let at = UNBOUND_SUBCODE
        .find("<s:Value>wsman")
        .expect("subcode value") as u64;
    assert_eq!(
        err,
        Error::InvalidValue {
            path: "Envelope/Body/Fault/Code/Subcode/Value".to_owned(),
            offset: at,
            expected: "a QName whose prefix is declared",
            found: "wsman:InternalError".to_owned(),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "invalid Envelope/Body/Fault/Code/Subcode/Value at byte {at}: expected a QName \
             whose prefix is declared, found \"wsman:InternalError\""
        )
    );
    // Nested subcodes name their depth; the Code value is checked too.
    let nested = UNBOUND_SUBCODE.replace(
        "<s:Value>wsman:InternalError</s:Value>",
        "<s:Value>s:Sender</s:Value><s:Subcode><s:Value>x:Y</s:Value></s:Subcode>",
    );
    let err = Envelope::decode(nested.as_bytes()).expect_err("nested");
    assert!(
        matches!(&err, Error::InvalidValue { path, found, .. }
            if path == "Envelope/Body/Fault/Code/Subcode/Subcode/Value" && found == "x:Y"),
        "{err:?}"
    );
    let code = UNBOUND_SUBCODE.replace("s:Receiver", "env:Receiver");
    let err = Envelope::decode(code.as_bytes()).expect_err("code");
    assert!(
        matches!(&err, Error::InvalidValue { path, .. } if path == "Envelope/Body/Fault/Code/Value"),
        "{err:?}"
    );
}

#[test]
fn fault_codes_resolve_prefixes_declared_anywhere_in_scope() {
    // Declared on the Value itself, on the Fault, or not prefixed at all.
    let local = UNBOUND_SUBCODE.replace(
        "<s:Value>wsman:InternalError",
        r#"<s:Value xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">wsman:InternalError"#,
    );
    let on_fault = UNBOUND_SUBCODE
        .replace(
            "<s:Fault>",
            r#"<s:Fault xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">"#,
        )
        .replace("wsman:InternalError", "w:InternalError");
    for doc in [local, on_fault] {
        let env = Envelope::decode(doc.as_bytes()).expect(&doc);
        let fault = env.fault().expect("fault");
        assert!(fault.is_receiver());
        assert!(fault.has_subcode(ns::WSMAN, "InternalError"), "{fault:?}");
        let again = Envelope::decode(env.encode().as_bytes()).expect("again");
        assert_eq!(again, env);
    }
    let bare = UNBOUND_SUBCODE.replace("wsman:InternalError", "InternalError");
    let env = Envelope::decode(bare.as_bytes()).expect("unprefixed");
    assert_eq!(
        env.fault().and_then(Fault::subcode),
        Some(&QName {
            namespace: None,
            local: "InternalError".to_owned()
        })
    );
    assert_eq!(
        Envelope::decode(env.encode().as_bytes()).expect("again"),
        env
    );
}

#[test]
fn a_stream_needs_its_name() {
    let doc = RECEIVE_RESPONSE.replace(r#"Name="stdout" "#, "");
    let err = Envelope::decode(doc.as_bytes()).expect_err("stream without Name");
    let at = doc.find("<rsp:Stream").expect("stream") as u64;
    assert_eq!(
        err,
        Error::Missing {
            path: "Envelope/Body/ReceiveResponse/Stream".to_owned(),
            offset: at,
            expected: "Name attribute",
        }
    );
    assert_eq!(
        err.to_string(),
        format!("missing Name attribute in Envelope/Body/ReceiveResponse/Stream at byte {at}")
    );
    // In a Send too.
    let send = Envelope::new(Header::default(), Body::send("stdin", None, b"x".to_vec()))
        .encode()
        .replace(r#" Name="stdin""#, "");
    let err = Envelope::decode(send.as_bytes()).expect_err("send stream without Name");
    assert!(
        matches!(&err, Error::Missing { path, expected: "Name attribute", .. }
            if path == "Envelope/Body/Send/Stream"),
        "{err:?}"
    );
    // An explicitly empty name is a name.
    let empty = RECEIVE_RESPONSE.replace(r#"Name="stdout""#, r#"Name="""#);
    let env = Envelope::decode(empty.as_bytes()).expect("empty name");
    assert_eq!(env.streams().next().map(|s| s.name.as_str()), Some(""));
}

#[test]
fn raw_elements_declare_each_namespace_once_and_keep_undeclarations() {
    let doc = with_soap_ns(
        ns::SOAP,
        r#"<H xmlns="urn:d" xmlns:p="urn:p"><p:A xmlns:p="urn:p" p:b="1">p:c</p:A><X xmlns=""><Y/></X></H>"#,
    );
    let env = Envelope::decode(doc.as_bytes()).expect("decodes");
    let raw = &env.header.unknown[0];
    assert_eq!(
        (raw.namespace.as_deref(), raw.name.as_str()),
        (Some("urn:d"), "H")
    );
    // The redundant redeclaration of p is dropped; the default namespace is undeclared for
    // X and so for Y.
    assert_eq!(
        raw.xml,
        r#"<H xmlns="urn:d"><p:A xmlns:p="urn:p" p:b="1">p:c</p:A><X xmlns=""><Y/></X></H>"#
    );
    let again = Envelope::decode(env.encode().as_bytes()).expect("again");
    assert_eq!(again, env);
}
