//! JSON and JSON Lines output, and the JSON form of a value.
//!
//! The JSON form is for people and `jq`, like `ConvertTo-Json -EnumsAsStrings`: a record
//! becomes an object of its properties, lists become arrays, dictionaries objects, enums and
//! nested Exchange value types (quotas, identities) their `ToString` text. Dates keep their
//! ISO 8601 text, TimeSpans show as `d.hh:mm:ss`, decimals stay strings (no precision lost),
//! byte arrays are base64 and a SecureString is only its type name.

use std::io::{self, Write};

use base64::Engine as _;
use rps_psrp::clixml::{Object, ObjectBase, Value};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::Options;
use super::text;

/// Nesting beyond which values are given as their text.
const MAX_JSON_DEPTH: usize = 16;

/// A JSON value whose objects keep their keys in document order (PowerShell's property
/// order), serializable with `serde_json`.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in order and unique.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value as a `serde_json::Value` (key order then follows `serde_json`'s map).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => serde_json::Value::String(s.clone()),
            Json::Array(items) => {
                serde_json::Value::Array(items.iter().map(Json::to_value).collect())
            }
            Json::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Adds `key` unless it is already there (the first value wins, as property lookup does).
fn insert(entries: &mut Vec<(String, Json)>, key: String, value: impl FnOnce() -> Json) {
    if !entries.iter().any(|(k, _)| *k == key) {
        let v = value();
        entries.push((key, v));
    }
}

/// The JSON form of one value.
pub fn to_json(value: &Value) -> Json {
    json(value, 0)
}

/// The JSON form of a record restricted to `columns` (in that order), or of any other value.
fn to_json_selected(value: &Value, selection: Option<&[String]>) -> Json {
    match (text::as_record(value), selection) {
        (Some(obj), Some(sel)) => {
            let columns = text::select_columns(obj, Some(sel), false, usize::MAX);
            let mut m = Vec::new();
            for c in columns {
                insert(&mut m, c.clone(), || {
                    text::property(obj, &c).map_or(Json::Null, |v| json(v, 1))
                });
            }
            Json::Object(m)
        }
        _ => to_json(value),
    }
}

fn number(x: f64) -> Json {
    serde_json::Number::from_f64(x)
        .map_or_else(|| Json::String(text::display(&Value::F64(x))), Json::Number)
}

fn int(n: impl Into<serde_json::Number>) -> Json {
    Json::Number(n.into())
}

fn json(v: &Value, depth: usize) -> Json {
    if depth > MAX_JSON_DEPTH {
        return Json::String(text::display(v));
    }
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::U8(n) => int(*n),
        Value::I8(n) => int(*n),
        Value::U16(n) => int(*n),
        Value::I16(n) => int(*n),
        Value::U32(n) => int(*n),
        Value::I32(n) => int(*n),
        Value::U64(n) => int(*n),
        Value::I64(n) => int(*n),
        Value::F32(x) => number(f64::from(*x)),
        Value::F64(x) => number(*x),
        Value::DateTime(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Object(o) => object(o, depth),
        other => Json::String(text::display(other)),
    }
}

fn object(o: &Object, depth: usize) -> Json {
    match &o.base {
        ObjectBase::List(_, items) => {
            Json::Array(items.iter().map(|i| json(i, depth + 1)).collect())
        }
        ObjectBase::Dict(entries) => {
            let mut m = Vec::new();
            for (k, v) in entries {
                insert(&mut m, text::plain(k), || json(v, depth + 1));
            }
            Json::Object(m)
        }
        ObjectBase::Primitive(p) => match &o.to_string {
            // An enum: its name, not its number.
            Some(s) if p.as_i64().is_some() => Json::String(s.clone()),
            _ => json(p, depth + 1),
        },
        _ => {
            if depth > 0
                && let Some(s) = &o.to_string
            {
                return Json::String(s.clone());
            }
            let mut m = Vec::new();
            for p in o.properties() {
                insert(&mut m, p.name.clone(), || json(&p.value, depth + 1));
            }
            if m.is_empty() {
                let shown = o.to_string.as_deref().or(o.type_name()).unwrap_or_default();
                return Json::String(shown.to_owned());
            }
            Json::Object(m)
        }
    }
}

pub(super) struct JsonRenderer<'w> {
    opts: Options,
    out: &'w mut dyn Write,
    lines: bool,
    count: usize,
}

impl<'w> JsonRenderer<'w> {
    pub(super) fn new(opts: Options, out: &'w mut dyn Write, lines: bool) -> Self {
        JsonRenderer {
            opts,
            out,
            lines,
            count: 0,
        }
    }
}

impl super::Renderer for JsonRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        let j = to_json_selected(value, self.opts.properties.as_deref());
        if self.lines {
            serde_json::to_writer(&mut *self.out, &j)?;
            self.out.write_all(b"\n")?;
        } else {
            self.out
                .write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
            let pretty = serde_json::to_string_pretty(&j)?;
            let mut indented = String::with_capacity(pretty.len() + 64);
            for (i, line) in pretty.lines().enumerate() {
                if i > 0 {
                    indented.push('\n');
                }
                indented.push_str("  ");
                indented.push_str(line);
            }
            self.out.write_all(indented.as_bytes())?;
        }
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.lines {
            self.out
                .write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}
