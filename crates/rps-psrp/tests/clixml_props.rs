//! Property tests and hostile-input tests for the CLIXML reader and writer.

use std::sync::Arc;

use proptest::prelude::*;
use rps_psrp::clixml::{
    self, ClixmlError, Limits, ListKind, Object, ObjectBase, ProgressPrimitive, Property, Value,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 _<>&\"'\\n\\r\\t]{0,24}",
        "(_x[0-9A-Fa-f]{4}_|_x|_X|x_|_|[a-z]){0,8}",
        Just(String::new()),
    ]
}

fn primitive() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        text().prop_map(Value::Str),
        any::<u16>().prop_map(Value::Char),
        any::<bool>().prop_map(Value::Bool),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,7})?(Z|[+-][0-9]{2}:[0-9]{2})?"
            .prop_map(Value::DateTime),
        "-?P([0-9]{1,3}D)?T([0-9]{1,2}H)?([0-9]{1,2}M)?[0-9]{1,2}(\\.[0-9]{1,7})?S".prop_map(Value::Duration),
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::F32),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::F64),
        "-?[0-9]{1,20}(\\.[0-9]{1,8})?".prop_map(Value::Decimal),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        any::<u128>().prop_map(|n| Value::Guid(uuid::Uuid::from_u128(n))),
        text().prop_map(Value::Uri),
        "[0-9]{1,3}(\\.[0-9]{1,5}){1,3}".prop_map(Value::Version),
        text().prop_map(Value::Xml),
        text().prop_map(Value::ScriptBlock),
        "[A-Za-z0-9+/]{0,40}".prop_map(Value::SecureString),
        (text(), any::<i32>(), proptest::option::of(text()), any::<i32>(), any::<i32>(), text(), any::<i32>(), proptest::option::of(text()))
            .prop_map(|(av, ai, co, pi, pc, t, sr, sd)| {
                Value::Progress(Box::new(ProgressPrimitive {
                    activity: av,
                    activity_id: ai,
                    current_operation: co,
                    parent_activity_id: pi,
                    percent_complete: pc,
                    record_type: t,
                    seconds_remaining: sr,
                    status_description: sd,
                }))
            }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    primitive().prop_recursive(4, 48, 6, |inner| {
        let props = || {
            proptest::collection::vec((text(), inner.clone()), 0..5).prop_map(|v| {
                v.into_iter()
                    .map(|(name, value)| Property { name, value })
                    .collect::<Vec<_>>()
            })
        };
        let base = prop_oneof![
            Just(ObjectBase::None),
            inner.clone().prop_map(ObjectBase::Primitive),
            (
                prop_oneof![
                    Just(ListKind::List),
                    Just(ListKind::Enumerable),
                    Just(ListKind::Stack),
                    Just(ListKind::Queue)
                ],
                proptest::collection::vec(inner.clone(), 0..5)
            )
                .prop_map(|(k, items)| ObjectBase::List(k, items)),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4)
                .prop_map(ObjectBase::Dict),
        ];
        (
            proptest::option::of(proptest::collection::vec(text(), 0..4)),
            proptest::option::of(text()),
            base,
            props(),
            props(),
        )
            .prop_map(|(tn, ts, base, adapted, extended)| {
                Value::object(Object {
                    type_names: tn.map(Into::into),
                    to_string: ts,
                    base,
                    adapted,
                    extended,
                })
            })
    })
}

/// Fragments of CLIXML-like markup, glued together at random.
fn near_xml() -> impl Strategy<Value = String> {
    let tokens = prop_oneof![
        Just("<Obj RefId=\"0\">"),
        Just("<Obj RefId=\"1\">"),
        Just("<Obj>"),
        Just("</Obj>"),
        Just("<TN RefId=\"0\"><T>A.B</T></TN>"),
        Just("<TNRef RefId=\"0\"/>"),
        Just("<TNRef RefId=\"9\"/>"),
        Just("<Ref RefId=\"0\"/>"),
        Just("<Ref RefId=\"1\"/>"),
        Just("<ToString>x</ToString>"),
        Just("<MS>"),
        Just("</MS>"),
        Just("<Props>"),
        Just("</Props>"),
        Just("<LST>"),
        Just("</LST>"),
        Just("<DCT>"),
        Just("</DCT>"),
        Just("<En>"),
        Just("</En>"),
        Just("<S N=\"Key\">k</S>"),
        Just("<S N=\"a\">"),
        Just("<S>"),
        Just("</S>"),
        Just("<I32 N=\"Value\">7</I32>"),
        Just("<I32>x</I32>"),
        Just("<Nil/>"),
        Just("<B>true</B>"),
        Just("<Db>NaN</Db>"),
        Just("<G>zz</G>"),
        Just("<BA>AA==</BA>"),
        Just(
            "<PR><AV>a</AV><AI>1</AI><Nil/><PI>-1</PI><PC>5</PC><T>Processing</T><SR>-1</SR><SD>s</SD></PR>"
        ),
        Just("&amp;"),
        Just("&#0;"),
        Just("&#x41;"),
        Just("&lol;"),
        Just("_x000A_"),
        Just("_xD800_"),
        Just("_x"),
        Just("<!DOCTYPE a>"),
        Just("<![CDATA[<x>]]>"),
        Just("<!-- c -->"),
        Just("<?pi x?>"),
        Just("text"),
        Just("<"),
        Just(">"),
        Just("\""),
        Just("<Objs>"),
        Just("</Objs>"),
        Just("<Unknown/>"),
        Just(" "),
    ];
    proptest::collection::vec(tokens, 0..24).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip(v in value()) {
        let xml = clixml::to_string(&v);
        let back = clixml::from_slice(xml.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(&back, &v, "{}", xml);
        let doc = clixml::write_document(std::slice::from_ref(&v));
        prop_assert_eq!(clixml::document_from_slice(doc.as_bytes()).unwrap(), vec![v]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = clixml::from_slice(&bytes);
        let _ = clixml::document_from_slice(&bytes);
    }

    #[test]
    fn near_xml_never_panics_and_what_decodes_round_trips(s in near_xml()) {
        if let Ok(v) = clixml::from_slice(s.as_bytes()) {
            let xml = clixml::to_string(&v);
            let back = clixml::from_slice(xml.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{s}\n{xml}")))?;
            // NaN is the one value not equal to itself.
            if !xml.contains("NaN") {
                prop_assert_eq!(back, v, "{} -> {}", s, xml);
            }
        }
        let doc = format!("<Objs>{s}</Objs>");
        let _ = clixml::document_from_slice(doc.as_bytes());
    }
}

#[test]
fn depth_bomb_is_rejected() {
    let n = 100_000;
    let mut s = String::new();
    for _ in 0..n {
        s.push_str("<Obj><MS><Obj N=\"x\"><LST>");
    }
    let err = clixml::from_slice(s.as_bytes()).unwrap_err();
    assert!(
        matches!(err, ClixmlError::DepthExceeded { limit: 64, .. }),
        "{err}"
    );

    let mut limits = Limits::default();
    limits.max_depth = 3;
    // The top-level object is depth 0: a limit of 3 allows four nested objects.
    let ok = "<Obj><MS><Obj N=\"a\"><MS><Obj N=\"b\"><LST><Obj/></LST></Obj></MS></Obj></MS></Obj>";
    assert!(clixml::from_slice_with(ok.as_bytes(), &limits).is_ok());
    let deep = "<Obj><MS><Obj N=\"a\"><MS><Obj N=\"b\"><LST><Obj><Props><Obj N=\"c\"/></Props></Obj></LST></Obj></MS></Obj></MS></Obj>";
    assert_eq!(
        clixml::from_slice_with(deep.as_bytes(), &limits),
        Err(ClixmlError::DepthExceeded {
            limit: 3,
            offset: 52
        })
    );
}

#[test]
fn refid_limits() {
    let err = clixml::from_slice(b"<Obj RefId=\"4294967295\"/>").unwrap_err();
    assert!(
        matches!(err, ClixmlError::LimitExceeded { what: "RefId", .. }),
        "{err}"
    );
    let err = clixml::from_slice(b"<Obj RefId=\"99999999999\"/>").unwrap_err();
    assert!(matches!(err, ClixmlError::BadValue { .. }), "{err}");

    let mut limits = Limits::default();
    limits.max_ref_ids = 100;
    let mut doc = String::from("<Objs>");
    for i in 0..1000 {
        doc.push_str(&format!(
            "<Obj RefId=\"{i}\"><TN RefId=\"{i}\"><T>T{i}</T></TN></Obj>"
        ));
    }
    doc.push_str("</Objs>");
    let err = clixml::document_from_slice_with(doc.as_bytes(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ClixmlError::LimitExceeded {
                what: "RefId",
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        clixml::document_from_slice(doc.as_bytes()).unwrap().len(),
        1000
    );

    // Far and out-of-order ids resolve (kept sparsely, not by growing a vector to millions).
    let mut doc = String::from(
        "<Objs><Obj RefId=\"4000000\"><ToString>far</ToString></Obj><Obj RefId=\"1500\"/>",
    );
    for i in 0..2000 {
        doc.push_str(&format!("<Obj RefId=\"{i}\"/>"));
    }
    doc.push_str("<Ref RefId=\"4000000\"/><Ref RefId=\"1999\"/></Objs>");
    let v = clixml::document_from_slice(doc.as_bytes()).unwrap();
    assert_eq!(v[2002], v[0]);
    assert_eq!(v[2003], Value::object(Object::default()));
}

#[test]
fn element_and_string_limits() {
    let mut limits = Limits::default();
    limits.max_elements = 10;
    let doc = format!("<Objs>{}</Objs>", "<I32>1</I32>".repeat(20));
    let err = clixml::document_from_slice_with(doc.as_bytes(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ClixmlError::LimitExceeded {
                what: "elements",
                limit: 10,
                ..
            }
        ),
        "{err}"
    );

    let mut limits = Limits::default();
    limits.max_string_len = 8;
    assert!(clixml::from_slice_with(b"<S>12345678</S>", &limits).is_ok());
    let err = clixml::from_slice_with(b"<S>123456789</S>", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ClixmlError::LimitExceeded {
                what: "string length",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn dtd_and_entities_are_rejected() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<S>&lol3;</S>"#;
    let err = clixml::from_slice(laughs.as_bytes()).unwrap_err();
    assert!(
        matches!(err, ClixmlError::DtdRejected { offset: 22 }),
        "{err}"
    );
    let doc = "<!DOCTYPE Objs SYSTEM \"file:///etc/passwd\"><Objs/>";
    assert!(matches!(
        clixml::document_from_slice(doc.as_bytes()),
        Err(ClixmlError::DtdRejected { .. })
    ));
    let err = clixml::from_slice(b"<S>&lol3;</S>").unwrap_err();
    assert_eq!(
        err,
        ClixmlError::UnknownEntity {
            name: "lol3".into(),
            offset: 3
        }
    );
    let err = clixml::from_slice(b"<Obj><MS><S N=\"&xxe;\">a</S></MS></Obj>").unwrap_err();
    assert!(
        matches!(err, ClixmlError::UnknownEntity { ref name, .. } if name == "xxe"),
        "{err}"
    );
}

#[test]
fn typed_errors_carry_context() {
    let e = clixml::from_slice(b"<Obj><MS><I32 N=\"x\">12a</I32></MS></Obj>").unwrap_err();
    assert_eq!(
        e,
        ClixmlError::BadValue {
            element: "I32".into(),
            text: "12a".into(),
            offset: 9
        }
    );
    assert_eq!(e.to_string(), "bad <I32> value \"12a\" at byte 9");
    let e = clixml::from_slice(b"\xEF\xBB\xBF<Foo/>").unwrap_err();
    assert_eq!(
        e,
        ClixmlError::UnknownElement {
            name: "Foo".into(),
            offset: 3
        }
    );
    let e = clixml::from_slice(b"<Ref RefId=\"3\"/>").unwrap_err();
    assert_eq!(e, ClixmlError::UnknownRefId { id: 3, offset: 0 });
    let e = clixml::from_slice(b"<Obj><TNRef RefId=\"0\"/></Obj>").unwrap_err();
    assert_eq!(e, ClixmlError::UnknownTypeNameRef { id: 0, offset: 5 });
    let e = clixml::from_slice(b"<S>a</S><S>b</S>").unwrap_err();
    assert_eq!(e, ClixmlError::TrailingContent { offset: 8 });
    assert!(matches!(
        clixml::from_slice(b"<S>a</B>"),
        Err(ClixmlError::MalformedXml { .. })
    ));
    assert!(matches!(
        clixml::from_slice(b"<S>\xff</S>"),
        Err(ClixmlError::InvalidUtf8 { .. })
    ));
    assert_eq!(clixml::from_slice(b"  "), Err(ClixmlError::Empty));
    assert!(matches!(
        clixml::document_from_slice(b"<S>a</S>"),
        Err(ClixmlError::NotADocument { .. })
    ));
    let mut strict = Limits::default();
    strict.lossy_surrogates = false;
    assert!(matches!(
        clixml::from_slice_with(b"<S>a_xD800_</S>", &strict),
        Err(ClixmlError::InvalidEscape { .. })
    ));
    assert_eq!(
        clixml::from_slice(b"<S>a_xD800_</S>").unwrap(),
        Value::Str("a\u{FFFD}".into())
    );
}

#[test]
fn all_primitives_read_and_write() {
    let doc = r#"<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
  <S>a_x000D__x000A_b &amp; &lt;c&gt;</S><C>97</C><B>false</B><DT>2018-04-12T10:42:08.6215765+00:00</DT>
  <TS>PT9.0269026S</TS><By>255</By><SB>-128</SB><U16>65535</U16><I16>-32768</I16><U32>4294967295</U32>
  <I32>-2147483648</I32><U64>18446744073709551615</U64><I64>-9223372036854775808</I64>
  <Sg>1.5</Sg><Db>INF</Db><Db>-INF</Db><Db>1E+300</Db><Db>-0.1</Db><D>79228162514264337593543950335</D>
  <BA>AQID</BA><G>792e5b37-4505-47ef-b7d2-8711bb7affa8</G><URI>http://x/?a=1&amp;b=2</URI>
  <Version>6.2.9200.0</Version><XD>&lt;a/&gt;</XD><SBK>Get-Item _x0024_x</SBK><SS>AAEC</SS><Nil />
  <PR><AV>Act</AV><AI>1</AI><Nil /><PI>-1</PI><PC>50</PC><T>Processing</T><SR>10</SR><SD>Half</SD></PR>
</Objs>"#;
    let v = clixml::document_from_slice(doc.as_bytes()).unwrap();
    let expected = vec![
        Value::Str("a\r\nb & <c>".into()),
        Value::Char(97),
        Value::Bool(false),
        Value::DateTime("2018-04-12T10:42:08.6215765+00:00".into()),
        Value::Duration("PT9.0269026S".into()),
        Value::U8(255),
        Value::I8(-128),
        Value::U16(65535),
        Value::I16(-32768),
        Value::U32(u32::MAX),
        Value::I32(i32::MIN),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F32(1.5),
        Value::F64(f64::INFINITY),
        Value::F64(f64::NEG_INFINITY),
        Value::F64(1e300),
        Value::F64(-0.1),
        Value::Decimal("79228162514264337593543950335".into()),
        Value::Bytes(vec![1, 2, 3]),
        Value::Guid("792e5b37-4505-47ef-b7d2-8711bb7affa8".parse().unwrap()),
        Value::Uri("http://x/?a=1&b=2".into()),
        Value::Version("6.2.9200.0".into()),
        Value::Xml("<a/>".into()),
        Value::ScriptBlock("Get-Item $x".into()),
        Value::SecureString("AAEC".into()),
        Value::Nil,
        Value::Progress(Box::new(ProgressPrimitive {
            activity: "Act".into(),
            activity_id: 1,
            current_operation: None,
            parent_activity_id: -1,
            percent_complete: 50,
            record_type: "Processing".into(),
            seconds_remaining: 10,
            status_description: Some("Half".into()),
        })),
    ];
    assert_eq!(v, expected);
    let written = clixml::write_document(&v);
    assert!(written.starts_with(r#"<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S>a_x000D__x000A_b &amp; &lt;c&gt;</S><C>97</C>"#), "{written}");
    assert!(
        written.contains("<Db>INF</Db><Db>-INF</Db><Db>1E+300</Db><Db>-0.1</Db>"),
        "{written}"
    );
    assert!(written.contains("<SBK>Get-Item $x</SBK>"), "{written}");
    assert_eq!(
        clixml::document_from_slice(written.as_bytes()).unwrap(),
        expected
    );
    assert!(matches!(clixml::from_slice(b"<Db>NaN</Db>").unwrap(), Value::F64(f) if f.is_nan()));
    assert_eq!(clixml::to_string(&Value::F64(f64::NAN)), "<Db>NaN</Db>");
}

#[test]
fn writer_shares_refs_and_type_names() {
    let tn: Arc<[String]> = vec![
        "System.ServiceProcess.ServiceControllerStatus".to_string(),
        "System.Enum".into(),
    ]
    .into();
    let running = Arc::new(Object {
        type_names: Some(tn.clone()),
        to_string: Some("Running".into()),
        base: ObjectBase::Primitive(Value::I32(4)),
        ..Object::default()
    });
    // Same names, different Arc: still a TNRef.
    let stopped = Value::object(Object {
        type_names: Some(tn.to_vec().into()),
        to_string: Some("Stopped".into()),
        base: ObjectBase::Primitive(Value::I32(1)),
        ..Object::default()
    });
    let list = Value::object(Object {
        base: ObjectBase::List(
            ListKind::List,
            vec![
                Value::Object(running.clone()),
                stopped,
                Value::Object(running.clone()),
            ],
        ),
        ..Object::default()
    });
    let xml = clixml::to_string(&list);
    assert_eq!(
        xml,
        "<Obj RefId=\"0\"><LST>\
         <Obj RefId=\"1\"><TN RefId=\"0\"><T>System.ServiceProcess.ServiceControllerStatus</T><T>System.Enum</T></TN><ToString>Running</ToString><I32>4</I32></Obj>\
         <Obj RefId=\"2\"><TNRef RefId=\"0\"/><ToString>Stopped</ToString><I32>1</I32></Obj>\
         <Ref RefId=\"1\"/></LST></Obj>"
    );
    let back = clixml::from_slice(xml.as_bytes()).unwrap();
    assert_eq!(back, list);
    let items = match &back.as_object().unwrap().base {
        ObjectBase::List(_, items) => items.clone(),
        other => panic!("{other:?}"),
    };
    let (Value::Object(a), Value::Object(b)) = (&items[0], &items[2]) else {
        panic!()
    };
    assert!(Arc::ptr_eq(a, b), "<Ref> resolves to the same Arc");
    assert!(Arc::ptr_eq(
        a.type_names.as_ref().unwrap(),
        items[1].as_object().unwrap().type_names.as_ref().unwrap()
    ));
    assert_eq!(back.as_i64(), None);
    assert_eq!(items[0].as_i64(), Some(4));
}

#[test]
fn cycles_survive_as_cycle_refs() {
    let xml = r#"<Obj RefId="0"><MS><Obj N="Drives" RefId="1"><LST><Ref RefId="0"/><Ref RefId="1"/></LST></Obj></MS></Obj>"#;
    let v = clixml::from_slice(xml.as_bytes()).unwrap();
    let drives = v
        .as_object()
        .unwrap()
        .get("Drives")
        .unwrap()
        .as_object()
        .unwrap();
    assert_eq!(
        drives.base,
        ObjectBase::List(ListKind::List, vec![Value::CycleRef(1), Value::CycleRef(0)])
    );
    assert_eq!(clixml::to_string(&v), xml);
    // Nothing to point at: written as Nil.
    assert_eq!(clixml::to_string(&Value::CycleRef(0)), "<Nil/>");
}

#[test]
fn stderr_form_and_bom() {
    let doc = b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">oops_x000D__x000A_</S></Objs>";
    assert_eq!(
        clixml::document_from_slice(doc).unwrap(),
        vec![Value::Str("oops\r\n".into())]
    );
    let bom = b"\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- c --><Objs/>";
    assert_eq!(clixml::document_from_slice(bom).unwrap(), vec![]);
}
