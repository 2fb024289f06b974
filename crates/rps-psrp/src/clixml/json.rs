//! A JSON form of CLIXML values, for people piping `rps` output into `jq`.
//!
//! The form follows what `ConvertTo-Json` makes of deserialized objects, with choices that
//! suit scripts better:
//!
//! | CLIXML | JSON |
//! |---|---|
//! | `<Nil/>` | `null` |
//! | `<S>`, `<URI>`, `<XD>`, `<SBK>`, `<Version>` | string |
//! | `<DT>` (date), `<TS>` (duration) | string, the CLIXML text (`"2018-04-12T10:42:08.62+00:00"`, `"PT9.02S"`) |
//! | `<D>` (decimal) | string, so no digit is lost (`jq 'tonumber'` if you want a number) |
//! | `<C>` | one-character string |
//! | `<B>`, integers | boolean, number |
//! | `<Sg>`, `<Db>` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings |
//! | `<BA>` (bytes) | base64 string |
//! | `<G>` | lowercase hyphenated GUID string |
//! | `<SS>` (SecureString) | the marker string [`SECURE_STRING_MARKER`], never the ciphertext |
//! | `<PR>` | object with `Activity`, `ActivityId`, `StatusDescription`, `CurrentOperation`, `ParentActivityId`, `PercentComplete`, `SecondsRemaining`, `Type` |
//! | enum (`<Obj>` with `System.Enum` in its type names) | its `ToString` text (`"Running"`), or its number with [`EnumStyle::Number`] |
//! | `<Obj>` with `<LST>`/`<IE>`/`<STK>`/`<QUE>` | array of the items |
//! | `<Obj>` with `<DCT>` | object; keys are the string form of each key |
//! | `<Obj>` with properties | object of the adapted then extended properties, names as keys (a later duplicate wins) |
//! | `<Obj>` with a primitive base and properties | the properties plus `"$value"` |
//! | `<Obj>` with a primitive base only | that primitive |
//! | `<Obj>` with no properties and no base | its `ToString` text if any (objects cut off by the serialization depth look like this), else `{}` |
//! | a reference cycle ([`Value::CycleRef`]) | `null` |
//!
//! With [`JsonOptions::type_names`], every object rendered as a JSON object also gets a
//! `"$type"` key holding its type names (most derived first).
//!
//! ```
//! use rps_psrp::clixml::{self, json};
//!
//! let v = clixml::from_slice(br#"<Obj RefId="0"><TN RefId="0"><T>System.ServiceProcess.ServiceController</T></TN>
//!   <ToString>System.ServiceProcess.ServiceController</ToString><Props><S N="Name">winrm</S>
//!   <Obj N="Status" RefId="1"><TN RefId="1"><T>System.ServiceProcess.ServiceControllerStatus</T><T>System.Enum</T></TN>
//!   <ToString>Running</ToString><I32>4</I32></Obj><Obj N="DependentServices" RefId="2"><LST><S>a</S></LST></Obj>
//!   <SS N="Password">AAEC</SS></Props></Obj>"#)?;
//! assert_eq!(
//!     json::to_json(&v),
//!     serde_json::json!({"Name": "winrm", "Status": "Running", "DependentServices": ["a"], "Password": "[SecureString]"})
//! );
//! // Streaming, without building a serde_json::Value first:
//! let text = serde_json::to_string(&json::Json::new(&v)).unwrap();
//! assert!(text.starts_with(r#"{"Name":"winrm","Status":"Running""#));
//! # Ok::<(), clixml::ClixmlError>(())
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use serde::Serialize as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::{Object, ObjectBase, ProgressPrimitive, Value};

/// What a SecureString becomes: its ciphertext is useless outside the session and is not
/// printed.
pub const SECURE_STRING_MARKER: &str = "[SecureString]";

/// How enums are rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnumStyle {
    /// The `ToString` text (`"Running"`, `"ReadOnly, Hidden"` for flags).
    #[default]
    Text,
    /// The underlying integer (what `ConvertTo-Json` prints).
    Number,
}

/// Rendering options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonOptions {
    /// How enums are rendered.
    pub enums: EnumStyle,
    /// Add a `"$type"` array of type names to objects rendered as JSON objects.
    pub type_names: bool,
}

/// A value with options, implementing [`serde::Serialize`]: stream it with
/// `serde_json::to_writer` or any other serde serializer.
#[derive(Clone, Copy, Debug)]
pub struct Json<'v> {
    value: &'v Value,
    options: JsonOptions,
}

impl<'v> Json<'v> {
    /// Default options.
    pub fn new(value: &'v Value) -> Self {
        Json {
            value,
            options: JsonOptions::default(),
        }
    }

    /// Given options.
    pub fn with_options(value: &'v Value, options: JsonOptions) -> Self {
        Json { value, options }
    }

    fn child(&self, value: &'v Value) -> Json<'v> {
        Json {
            value,
            options: self.options,
        }
    }
}

/// The JSON form of a value with default options.
pub fn to_json(value: &Value) -> serde_json::Value {
    to_json_with(value, JsonOptions::default())
}

/// The JSON form of a value with the given options.
pub fn to_json_with(value: &Value, options: JsonOptions) -> serde_json::Value {
    // Our Serialize impl only produces string map keys, so this cannot fail.
    serde_json::to_value(Json::with_options(value, options)).unwrap_or(serde_json::Value::Null)
}

/// True when the type names mark an enum (`System.Enum`, also `Deserialized.System.Enum`).
pub(crate) fn is_enum(obj: &Object) -> bool {
    obj.type_names.as_deref().is_some_and(|t| {
        t.iter()
            .any(|n| n == "System.Enum" || n == "Deserialized.System.Enum")
    })
}

/// The text used as a JSON object key for a dictionary key.
fn key_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Str(s)
        | Value::Uri(s)
        | Value::Version(s)
        | Value::DateTime(s)
        | Value::Duration(s)
        | Value::Decimal(s)
        | Value::Xml(s)
        | Value::ScriptBlock(s) => Cow::Borrowed(s),
        Value::Object(o) => match (&o.to_string, &o.base) {
            (Some(s), _) => Cow::Borrowed(s),
            (None, ObjectBase::Primitive(p)) => key_text(p),
            _ => Cow::Borrowed(""),
        },
        Value::Nil | Value::CycleRef(_) => Cow::Borrowed(""),
        other => Cow::Owned(match serde_json::to_value(Json::new(other)) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(j) => j.to_string(),
            Err(_) => String::new(),
        }),
    }
}

fn float<S: Serializer>(s: S, f: f64) -> Result<S::Ok, S::Error> {
    if f.is_nan() {
        s.serialize_str("NaN")
    } else if f.is_infinite() {
        s.serialize_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(f)
    }
}

impl serde::Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Nil | Value::CycleRef(_) => s.serialize_unit(),
            Value::Str(v)
            | Value::DateTime(v)
            | Value::Duration(v)
            | Value::Decimal(v)
            | Value::Uri(v)
            | Value::Version(v)
            | Value::Xml(v)
            | Value::ScriptBlock(v) => s.serialize_str(v),
            Value::Char(c) => match char::from_u32(u32::from(*c)) {
                Some(ch) => s.serialize_char(ch),
                None => s.serialize_u16(*c),
            },
            Value::Bool(b) => s.serialize_bool(*b),
            Value::U8(n) => s.serialize_u8(*n),
            Value::I8(n) => s.serialize_i8(*n),
            Value::U16(n) => s.serialize_u16(*n),
            Value::I16(n) => s.serialize_i16(*n),
            Value::U32(n) => s.serialize_u32(*n),
            Value::I32(n) => s.serialize_i32(*n),
            Value::U64(n) => s.serialize_u64(*n),
            Value::I64(n) => s.serialize_i64(*n),
            Value::F32(f) => float(s, f64::from(*f)),
            Value::F64(f) => float(s, *f),
            Value::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Guid(g) => s.collect_str(&g.hyphenated()),
            Value::SecureString(_) => s.serialize_str(SECURE_STRING_MARKER),
            Value::Progress(p) => progress(s, p),
            Value::Object(o) => self.object(s, o),
        }
    }
}

fn progress<S: Serializer>(s: S, p: &ProgressPrimitive) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(8))?;
    m.serialize_entry("Activity", &p.activity)?;
    m.serialize_entry("ActivityId", &p.activity_id)?;
    m.serialize_entry("StatusDescription", &p.status_description)?;
    m.serialize_entry("CurrentOperation", &p.current_operation)?;
    m.serialize_entry("ParentActivityId", &p.parent_activity_id)?;
    m.serialize_entry("PercentComplete", &p.percent_complete)?;
    m.serialize_entry("SecondsRemaining", &p.seconds_remaining)?;
    m.serialize_entry("Type", &p.record_type)?;
    m.end()
}

impl<'v> Json<'v> {
    fn object<S: Serializer>(&self, s: S, o: &'v Object) -> Result<S::Ok, S::Error> {
        let has_props = !o.adapted.is_empty() || !o.extended.is_empty();
        match &o.base {
            ObjectBase::Primitive(p) if is_enum(o) => {
                return match (self.options.enums, &o.to_string) {
                    (EnumStyle::Text, Some(text)) => s.serialize_str(text),
                    _ => self.child(p).serialize(s),
                };
            }
            ObjectBase::Primitive(p) if !has_props => return self.child(p).serialize(s),
            ObjectBase::List(_, items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.child(item))?;
                }
                return seq.end();
            }
            ObjectBase::Dict(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(&key_text(k), &self.child(v))?;
                }
                return m.end();
            }
            ObjectBase::None if !has_props => {
                if let Some(text) = &o.to_string
                    && !self.options.type_names
                {
                    return s.serialize_str(text);
                }
            }
            _ => {}
        }
        let mut m = s.serialize_map(None)?;
        if self.options.type_names
            && let Some(t) = &o.type_names
        {
            m.serialize_entry("$type", &**t)?;
        }
        if let ObjectBase::Primitive(p) = &o.base {
            m.serialize_entry("$value", &self.child(p))?;
        }
        // A later duplicate name wins: emit each name once, at its first position, with the
        // last value.
        if !may_repeat_names(o) {
            for p in o.properties() {
                m.serialize_entry(&p.name, &self.child(&p.value))?;
            }
        } else {
            let props: Vec<_> = o.properties().collect();
            for (i, p) in props.iter().enumerate() {
                if props[..i].iter().any(|q| q.name == p.name) {
                    continue;
                }
                let last = props.iter().rev().find(|q| q.name == p.name).unwrap_or(p);
                m.serialize_entry(&p.name, &self.child(&last.value))?;
            }
        }
        if !has_props && let Some(text) = &o.to_string {
            m.serialize_entry("$toString", text)?;
        }
        m.end()
    }
}

/// Whether two properties of `o` may share a name: false means they certainly don't, so
/// the properties can be written as they come. Compares 64-bit hashes of the names (sorted,
/// on the stack for up to 256 properties) instead of the names pairwise, which costs
/// n^2 / 2 string comparisons for the 120 properties of a mailbox; equal hashes (a repeated
/// name, or a collision) send the caller to the exact path.
fn may_repeat_names(o: &Object) -> bool {
    const STACK: usize = 256;
    let n = o.adapted.len() + o.extended.len();
    if n < 2 {
        return false;
    }
    if n > STACK {
        let mut hashes: Vec<u64> = o.properties().map(|p| name_hash(&p.name)).collect();
        hashes.sort_unstable();
        return hashes.windows(2).any(|w| w[0] == w[1]);
    }
    let mut buf = [0u64; STACK];
    for (slot, p) in buf.iter_mut().zip(o.properties()) {
        *slot = name_hash(&p.name);
    }
    let hashes = &mut buf[..n];
    hashes.sort_unstable();
    hashes.windows(2).any(|w| w[0] == w[1])
}

/// A fast, non-cryptographic 64-bit hash of a property name (multiply-rotate over 8-byte
/// words, the length mixed in).
fn name_hash(name: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let b = name.as_bytes();
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clixml::{ListKind, Property};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn primitives() {
        assert_eq!(to_json(&Value::Nil), json!(null));
        assert_eq!(to_json(&Value::F64(f64::NAN)), json!("NaN"));
        assert_eq!(to_json(&Value::F32(f32::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(to_json(&Value::Char(97)), json!("a"));
        assert_eq!(to_json(&Value::Char(0xD800)), json!(0xD800));
        assert_eq!(to_json(&Value::Bytes(vec![1, 2, 3])), json!("AQID"));
        assert_eq!(
            to_json(&Value::SecureString("c2VjcmV0".into())),
            json!(SECURE_STRING_MARKER)
        );
        assert_eq!(to_json(&Value::Decimal("1.10".into())), json!("1.10"));
        assert_eq!(to_json(&Value::U64(u64::MAX)), json!(u64::MAX));
    }

    #[test]
    fn objects() {
        let tn: Arc<[String]> = vec!["X.Color".to_string(), "System.Enum".into()].into();
        let color = Value::object(Object {
            type_names: Some(tn),
            to_string: Some("Red".into()),
            base: ObjectBase::Primitive(Value::I32(2)),
            ..Object::default()
        });
        assert_eq!(to_json(&color), json!("Red"));
        let opts = JsonOptions {
            enums: EnumStyle::Number,
            type_names: false,
        };
        assert_eq!(to_json_with(&color, opts), json!(2));
        let dict = Value::object(Object {
            base: ObjectBase::Dict(vec![
                (Value::Str("a".into()), Value::I32(1)),
                (
                    Value::I32(5),
                    Value::object(Object {
                        base: ObjectBase::List(ListKind::Stack, vec![Value::Bool(true)]),
                        ..Object::default()
                    }),
                ),
            ]),
            ..Object::default()
        });
        assert_eq!(to_json(&dict), json!({"a": 1, "5": [true]}));
        let bag = Value::object(Object {
            type_names: Some(vec!["T".to_string()].into()),
            to_string: Some("ignored".into()),
            adapted: vec![Property {
                name: "A".into(),
                value: Value::I32(1),
            }],
            extended: vec![
                Property {
                    name: "B".into(),
                    value: color.clone(),
                },
                Property {
                    name: "A".into(),
                    value: Value::I32(3),
                },
            ],
            ..Object::default()
        });
        assert_eq!(to_json(&bag), json!({"A": 3, "B": "Red"}));
        let opts = JsonOptions {
            enums: EnumStyle::Text,
            type_names: true,
        };
        assert_eq!(
            to_json_with(&bag, opts),
            json!({"$type": ["T"], "A": 3, "B": "Red"})
        );
        let cut = Value::object(Object {
            to_string: Some("cut off".into()),
            ..Object::default()
        });
        assert_eq!(to_json(&cut), json!("cut off"));
        let noted = Value::object(Object {
            base: ObjectBase::Primitive(Value::Str("s".into())),
            extended: vec![Property {
                name: "Note".into(),
                value: Value::Nil,
            }],
            ..Object::default()
        });
        assert_eq!(to_json(&noted), json!({"$value": "s", "Note": null}));
    }

    /// A bag of `n` properties `P0`, `P1`, ... with values 0, 1, ..., then `extra`.
    fn bag(n: usize, extra: &[(&str, i32)]) -> Value {
        let prop = |name: String, v: i32| Property {
            name,
            value: Value::I32(v),
        };
        Value::object(Object {
            adapted: (0..n).map(|i| prop(format!("P{i}"), i as i32)).collect(),
            extended: extra.iter().map(|(k, v)| prop((*k).into(), *v)).collect(),
            ..Object::default()
        })
    }

    fn written(v: &Value) -> String {
        serde_json::to_string(&Json::new(v)).expect("serializes")
    }

    #[test]
    fn repeated_names_are_written_once_at_their_first_place_with_the_last_value() {
        let expected = |n: usize, tail: &str| {
            let body: Vec<String> = (0..n)
                .map(|i| match i {
                    1 => "\"P1\":-1".to_owned(),
                    _ => format!("\"P{i}\":{i}"),
                })
                .collect();
            format!("{{{}{tail}}}", body.join(","))
        };
        // Both sides of the stack buffer, and unique names (written as they come).
        for n in [2, 120, 256, 300] {
            let v = bag(n, &[("P1", -1), ("Z", 7)]);
            assert_eq!(written(&v), expected(n, ",\"Z\":7"), "n = {n}");
            assert!(may_repeat_names(v.as_object().unwrap()));
            let unique = bag(n, &[("Z", 7)]);
            assert!(!may_repeat_names(unique.as_object().unwrap()), "n = {n}");
            let text = written(&unique);
            assert!(text.starts_with("{\"P0\":0,\"P1\":1,"), "{text}");
            assert!(text.ends_with(&format!("\"P{}\":{},\"Z\":7}}", n - 1, n - 1)));
        }
    }

    #[test]
    fn name_hash_sees_every_byte_and_the_length() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "CustomAttribute1",
            "CustomAttribute2",
            "CustomAttribute10",
            "ExtensionCustomAttribute1",
            "a\0",
            "\0a",
        ];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(name_hash(x), name_hash(y), "{x:?} {y:?}");
            }
        }
    }
}
