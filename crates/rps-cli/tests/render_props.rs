//! Property tests: any value renders in every format without panicking, tables fit their
//! width, and CLIXML output reads back.

use proptest::prelude::*;
use rps_cli::render::{self, Format, Options, text};
use rps_psrp::clixml::{self, ListKind, Object, ObjectBase, Property, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<String>().prop_map(Value::Str),
        "[a-z \u{1b}\u{7}\t\n\u{65e5}\u{672c}\u{fe0f}\u{2764}]{0,30}".prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::I32),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        any::<f64>().prop_map(Value::F64),
        any::<u16>().prop_map(Value::Char),
        "[0-9T:.+-]{0,30}".prop_map(Value::DateTime),
        "-?P[0-9DTHMS.]{0,12}".prop_map(Value::Duration),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Value::Bytes),
        "[A-Za-z0-9+/=]{0,20}".prop_map(Value::SecureString),
        any::<u128>().prop_map(|n| Value::Guid(uuid::Uuid::from_u128(n))),
    ]
}

fn object_of(props: Vec<(String, Value)>, to_string: Option<String>) -> Value {
    let mut o = Object::with_type_names(["Deserialized.Some.Type", "Deserialized.System.Object"]);
    o.to_string = to_string;
    o.adapted = props
        .into_iter()
        .map(|(name, value)| Property { name, value })
        .collect();
    Value::object(o)
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                let mut o = Object::with_type_names(["System.Object[]"]);
                o.base = ObjectBase::List(ListKind::List, items);
                Value::object(o)
            }),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(|entries| {
                let mut o = Object::with_type_names(["System.Collections.Hashtable"]);
                o.base = ObjectBase::Dict(entries);
                Value::object(o)
            }),
            (
                prop::collection::vec(("[A-Za-z]{1,12}", inner.clone()), 0..5),
                proptest::option::of("[ -~]{0,20}")
            )
                .prop_map(|(props, ts)| object_of(props, ts)),
            (inner, "[A-Za-z]{1,10}").prop_map(|(p, name)| {
                let mut o = Object::with_type_names(["Some.Enum", "System.Enum"]);
                o.to_string = Some(name);
                o.base = ObjectBase::Primitive(p);
                Value::object(o)
            }),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[A-Za-z\u{65e5}]{1,14}", value()), 1..8)
        .prop_map(|props| object_of(props, None))
}

fn options_with(props: &'static str) -> impl Strategy<Value = Options> {
    (
        10usize..160,
        1usize..8,
        any::<bool>(),
        proptest::option::of(props),
    )
        .prop_map(|(width, window, ascii, props)| {
            let o = Options {
                width,
                window,
                ascii,
                ..Options::default()
            };
            match props {
                Some(p) => o.with_properties(&p),
                None => o,
            }
        })
}

fn options() -> impl Strategy<Value = Options> {
    options_with("[A-Za-z*?,]{0,12}")
}

fn render(format: Format, options: &Options, values: &[Value]) -> String {
    let mut out = Vec::new();
    render::render_all(format, options, values, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_values_render_in_every_format(values in prop::collection::vec(value(), 0..6), opts in options()) {
        for format in Format::ALL {
            let out = render(format, &opts, &values);
            if matches!(format, Format::Table | Format::List) {
                prop_assert!(!out.contains('\u{1b}'), "{format}: escape reached the terminal: {out:?}");
            }
            if matches!(format, Format::Json) {
                serde_json::from_str::<serde_json::Value>(&out).unwrap();
            }
            if matches!(format, Format::Jsonl) {
                for line in out.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
                prop_assert_eq!(out.lines().count(), values.len());
            }
        }
    }

    #[test]
    // Plain names (no wildcards) always give at least one column.
    fn tables_of_records_fit_their_width(
        values in prop::collection::vec(record(), 1..12),
        opts in options_with("[A-Za-z,]{0,12}"),
    ) {
        let out = render(Format::Table, &opts, &values);
        for line in out.lines() {
            prop_assert!(text::width(line) <= opts.width.max(10), "{} > {}: {:?}", text::width(line), opts.width, line);
        }
    }

    #[test]
    fn clixml_reads_back(values in prop::collection::vec(value(), 0..4)) {
        // NaN never equals itself: compare the re-rendered text instead of the values.
        let out = render(Format::Clixml, &Options::default(), &values);
        let back = clixml::document_from_slice(out.as_bytes()).unwrap();
        prop_assert_eq!(back.len(), values.len());
        prop_assert_eq!(render(Format::Clixml, &Options::default(), &back), out);
    }
}
