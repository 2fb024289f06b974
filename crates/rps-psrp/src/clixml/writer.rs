//! The CLIXML writer.
//!
//! Output is compact (no whitespace between elements) and follows what PowerShell's
//! serializer produces: an `<Obj>` gets the next `RefId` (0, 1, ...), a type-name list is
//! written once as `<TN RefId>` and afterwards as `<TNRef RefId>`, and an object written
//! earlier in the same scope (the same `Arc`) is written as `<Ref RefId>`. Inside an
//! `<Obj>` the order is `TN`/`TNRef`, `ToString`, base value, `Props`, `MS`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use base64::Engine as _;

use super::escape::{Sink, write_text};
use super::{CLIXML_NAMESPACE, ListKind, Object, ObjectBase, ProgressPrimitive, Value};

/// Hashes pointer-sized keys with one multiplication (the keys are addresses: no need for
/// SipHash's flooding resistance).
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type PtrMap<K, V> = HashMap<K, V, BuildHasherDefault<PtrHasher>>;

/// A type-name list kept alive by the writer, and its TN RefId.
type TypeNamesEntry = (Option<Arc<[String]>>, u32);

/// A CLIXML writer that keeps its RefId and TNRef tables between values, for a stream of
/// values that PowerShell will read with one deserializer (an `Export-Clixml` document).
///
/// A PSRP message payload is its own scope: use [`write_value`] (or a fresh `Writer`, or
/// [`Writer::reset`]) per message.
///
/// The writer holds a clone of every `Arc` it has given a RefId, so a pointer is never
/// reused for another object while the scope lives.
///
/// ```
/// use rps_psrp::clixml::{Object, Value, Writer};
///
/// let obj = Value::object(Object::with_type_names(["My.Type", "System.Object"]));
/// let mut w = Writer::new();
/// let mut out = String::new();
/// w.write(&mut out, &obj);
/// w.write(&mut out, &obj);
/// assert_eq!(out, r#"<Obj RefId="0"><TN RefId="0"><T>My.Type</T><T>System.Object</T></TN></Obj><Ref RefId="0"/>"#);
/// ```
#[derive(Debug, Default)]
pub struct Writer {
    objects: PtrMap<usize, (Option<Arc<Object>>, u32)>,
    next_obj: u32,
    /// Type-name lists by pointer: the fast path for lists shared through an `Arc`.
    tn_by_ptr: PtrMap<(usize, usize), TypeNamesEntry>,
    /// Type-name lists by content.
    tn_by_value: HashMap<Arc<[String]>, u32>,
    next_tn: u32,
    /// One-shot writers (whose values are borrowed for the whole scope) need not pin them.
    borrowed: bool,
    /// RefIds of the objects being written, innermost last.
    open: Vec<u32>,
}

impl Writer {
    /// A writer with empty reference tables.
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer for values that all stay borrowed while its scope lives (one call of
    /// [`to_string`], [`write_value`] or [`write_document`]): pointers need no pinning.
    fn scoped() -> Self {
        Writer {
            borrowed: true,
            ..Writer::default()
        }
    }

    /// Forgets every RefId and TNRef: the next value starts a new scope.
    pub fn reset(&mut self) {
        self.objects.clear();
        self.tn_by_ptr.clear();
        self.tn_by_value.clear();
        self.next_obj = 0;
        self.next_tn = 0;
        self.open.clear();
    }

    /// Appends one value to a `String`.
    pub fn write(&mut self, out: &mut String, value: &Value) {
        self.value(out, value, None);
    }

    /// Appends one value to a byte buffer (UTF-8, no BOM).
    pub fn write_bytes(&mut self, out: &mut Vec<u8>, value: &Value) {
        self.value(out, value, None);
    }

    fn value<S: Sink>(&mut self, out: &mut S, v: &Value, name: Option<&str>) {
        match v {
            Value::Nil => {
                out.put("<Nil");
                put_name(out, name);
                out.put("/>");
            }
            Value::Str(s) => escaped(out, "S", name, s),
            Value::Char(c) => int(out, "C", name, u64::from(*c), false),
            Value::Bool(b) => raw(out, "B", name, if *b { "true" } else { "false" }),
            Value::DateTime(s) => raw(out, "DT", name, s),
            Value::Duration(s) => raw(out, "TS", name, s),
            Value::U8(n) => int(out, "By", name, u64::from(*n), false),
            Value::I8(n) => signed(out, "SB", name, i64::from(*n)),
            Value::U16(n) => int(out, "U16", name, u64::from(*n), false),
            Value::I16(n) => signed(out, "I16", name, i64::from(*n)),
            Value::U32(n) => int(out, "U32", name, u64::from(*n), false),
            Value::I32(n) => signed(out, "I32", name, i64::from(*n)),
            Value::U64(n) => int(out, "U64", name, *n, false),
            Value::I64(n) => signed(out, "I64", name, *n),
            Value::F32(f) => raw(out, "Sg", name, &float_text(f64::from(*f), Some(*f))),
            Value::F64(f) => raw(out, "Db", name, &float_text(*f, None)),
            Value::Decimal(s) => raw(out, "D", name, s),
            Value::Bytes(b) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(b);
                raw(out, "BA", name, &b64);
            }
            Value::Guid(g) => {
                let mut buf = uuid::Uuid::encode_buffer();
                raw(out, "G", name, g.hyphenated().encode_lower(&mut buf));
            }
            Value::Uri(s) => escaped(out, "URI", name, s),
            Value::Version(s) => raw(out, "Version", name, s),
            Value::Xml(s) => escaped(out, "XD", name, s),
            Value::ScriptBlock(s) => escaped(out, "SBK", name, s),
            Value::SecureString(s) => raw(out, "SS", name, s),
            Value::Progress(p) => progress(out, name, p),
            Value::Object(o) => self.object(out, o, name),
            Value::CycleRef(up) => {
                let target = (*up as usize)
                    .checked_add(1)
                    .and_then(|k| self.open.len().checked_sub(k))
                    .map(|i| self.open[i]);
                match target {
                    Some(id) => {
                        out.put("<Ref");
                        put_name(out, name);
                        out.put(" RefId=\"");
                        put_u64(out, u64::from(id));
                        out.put("\"/>");
                    }
                    // No such enclosing object: nothing to point at.
                    None => {
                        out.put("<Nil");
                        put_name(out, name);
                        out.put("/>");
                    }
                }
            }
        }
    }

    fn object<S: Sink>(&mut self, out: &mut S, o: &Arc<Object>, name: Option<&str>) {
        let key = Arc::as_ptr(o) as usize;
        if let Some((_, id)) = self.objects.get(&key) {
            out.put("<Ref");
            put_name(out, name);
            out.put(" RefId=\"");
            put_u64(out, u64::from(*id));
            out.put("\"/>");
            return;
        }
        let id = self.next_obj;
        self.next_obj += 1;
        let pin = (!self.borrowed).then(|| Arc::clone(o));
        self.objects.insert(key, (pin, id));
        out.put("<Obj");
        put_name(out, name);
        out.put(" RefId=\"");
        put_u64(out, u64::from(id));
        out.put("\">");
        self.open.push(id);
        if let Some(tn) = &o.type_names {
            self.type_names(out, tn);
        }
        if let Some(s) = &o.to_string {
            escaped(out, "ToString", None, s);
        }
        match &o.base {
            ObjectBase::None => {}
            ObjectBase::Primitive(v) => self.value(out, v, None),
            ObjectBase::List(kind, items) => {
                let tag = kind_tag(*kind);
                open(out, tag);
                for item in items {
                    self.value(out, item, None);
                }
                close(out, tag);
            }
            ObjectBase::Dict(entries) => {
                out.put("<DCT>");
                for (k, v) in entries {
                    out.put("<En>");
                    self.value(out, k, Some("Key"));
                    self.value(out, v, Some("Value"));
                    out.put("</En>");
                }
                out.put("</DCT>");
            }
        }
        for (tag, props) in [("Props", &o.adapted), ("MS", &o.extended)] {
            if props.is_empty() {
                continue;
            }
            open(out, tag);
            for p in props {
                self.value(out, &p.value, Some(&p.name));
            }
            close(out, tag);
        }
        self.open.pop();
        out.put("</Obj>");
    }

    fn type_names<S: Sink>(&mut self, out: &mut S, tn: &Arc<[String]>) {
        let ptr_key = (Arc::as_ptr(tn) as *const String as usize, tn.len());
        let known = match self.tn_by_ptr.get(&ptr_key) {
            Some((_, id)) => Some(*id),
            None => {
                let found = self.tn_by_value.get(tn).copied();
                let id = found.unwrap_or(self.next_tn);
                let pin = (!self.borrowed).then(|| Arc::clone(tn));
                self.tn_by_ptr.insert(ptr_key, (pin, id));
                if found.is_none() {
                    self.tn_by_value.insert(Arc::clone(tn), id);
                    self.next_tn += 1;
                }
                found
            }
        };
        match known {
            Some(id) => {
                out.put("<TNRef RefId=\"");
                put_u64(out, u64::from(id));
                out.put("\"/>");
            }
            None => {
                out.put("<TN RefId=\"");
                put_u64(out, u64::from(self.next_tn - 1));
                out.put("\">");
                for t in tn.iter() {
                    escaped(out, "T", None, t);
                }
                out.put("</TN>");
            }
        }
    }
}

fn kind_tag(kind: ListKind) -> &'static str {
    kind.tag()
}

#[inline]
fn open<S: Sink>(out: &mut S, tag: &str) {
    out.put("<");
    out.put(tag);
    out.put(">");
}

#[inline]
fn close<S: Sink>(out: &mut S, tag: &str) {
    out.put("</");
    out.put(tag);
    out.put(">");
}

#[inline]
fn put_name<S: Sink>(out: &mut S, name: Option<&str>) {
    if let Some(n) = name {
        out.put(" N=\"");
        write_text(out, n, true);
        out.put("\"");
    }
}

fn start<S: Sink>(out: &mut S, tag: &str, name: Option<&str>, empty: bool) -> bool {
    out.put("<");
    out.put(tag);
    put_name(out, name);
    if empty {
        out.put("/>");
        false
    } else {
        out.put(">");
        true
    }
}

fn escaped<S: Sink>(out: &mut S, tag: &str, name: Option<&str>, s: &str) {
    if start(out, tag, name, s.is_empty()) {
        write_text(out, s, true);
        close(out, tag);
    }
}

fn raw<S: Sink>(out: &mut S, tag: &str, name: Option<&str>, s: &str) {
    if start(out, tag, name, s.is_empty()) {
        write_text(out, s, false);
        close(out, tag);
    }
}

fn put_u64<S: Sink>(out: &mut S, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Ok(s) = std::str::from_utf8(&buf[i..]) {
        out.put(s);
    }
}

fn int<S: Sink>(out: &mut S, tag: &str, name: Option<&str>, n: u64, negative: bool) {
    start(out, tag, name, false);
    if negative {
        out.put("-");
    }
    put_u64(out, n);
    close(out, tag);
}

fn signed<S: Sink>(out: &mut S, tag: &str, name: Option<&str>, n: i64) {
    int(out, tag, name, n.unsigned_abs(), n < 0);
}

/// Round-trippable float text in the forms .NET reads: `INF`, `-INF`, `NaN`, plain decimals
/// for moderate magnitudes and `1.5E+300`-style exponents otherwise.
fn float_text(f: f64, single: Option<f32>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF".into() } else { "-INF".into() };
    }
    let a = f.abs();
    let mut s = String::new();
    let exp = a != 0.0 && !(1e-5..1e16).contains(&a);
    let _ = match (single, exp) {
        (Some(g), false) => write!(s, "{g}"),
        (Some(g), true) => write!(s, "{g:E}"),
        (None, false) => write!(s, "{f}"),
        (None, true) => write!(s, "{f:E}"),
    };
    if let Some(pos) = s.find('E')
        && s.as_bytes().get(pos + 1) != Some(&b'-')
    {
        s.insert(pos + 1, '+');
    }
    s
}

fn progress<S: Sink>(out: &mut S, name: Option<&str>, p: &ProgressPrimitive) {
    start(out, "PR", name, false);
    escaped(out, "AV", None, &p.activity);
    signed(out, "AI", None, i64::from(p.activity_id));
    match &p.current_operation {
        Some(co) => escaped(out, "S", None, co),
        None => out.put("<Nil/>"),
    }
    signed(out, "PI", None, i64::from(p.parent_activity_id));
    signed(out, "PC", None, i64::from(p.percent_complete));
    escaped(out, "T", None, &p.record_type);
    signed(out, "SR", None, i64::from(p.seconds_remaining));
    match &p.status_description {
        Some(sd) => escaped(out, "SD", None, sd),
        None => out.put("<Nil/>"),
    }
    close(out, "PR");
}

/// Writes one value as a CLIXML element (no BOM, no `<Objs>` wrapper), in its own RefId scope.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    Writer::scoped().write(&mut out, value);
    out
}

/// Appends one value, in its own RefId scope, to a `String` or `Vec<u8>` buffer: the hot
/// path for building PSRP message payloads without intermediate strings.
///
/// ```
/// let mut buf: Vec<u8> = b"header".to_vec();
/// rps_psrp::clixml::write_value(&mut buf, &rps_psrp::clixml::Value::I32(7));
/// assert_eq!(buf, b"header<I32>7</I32>");
/// ```
pub fn write_value<B: ClixmlBuffer>(out: &mut B, value: &Value) {
    out.write_with(&mut Writer::scoped(), value);
}

/// A buffer CLIXML can be appended to: `String` or `Vec<u8>`.
pub trait ClixmlBuffer: sealed::Sealed {
    /// Appends `value` through `writer` (sharing its RefId scope).
    fn write_with(&mut self, writer: &mut Writer, value: &Value);
    /// Appends text verbatim.
    fn push_raw(&mut self, s: &str);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for String {}
    impl Sealed for Vec<u8> {}
}

impl ClixmlBuffer for String {
    fn write_with(&mut self, writer: &mut Writer, value: &Value) {
        writer.write(self, value);
    }
    fn push_raw(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl ClixmlBuffer for Vec<u8> {
    fn write_with(&mut self, writer: &mut Writer, value: &Value) {
        writer.write_bytes(self, value);
    }
    fn push_raw(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Writes an `Export-Clixml`-style document: `<Objs Version="1.1.0.1" xmlns=...>` holding
/// the values, one RefId scope for all of them. No BOM, no XML declaration.
pub fn write_document(values: &[Value]) -> String {
    let mut out = String::with_capacity(128 + values.len() * 256);
    write_document_into(&mut out, values);
    out
}

/// [`write_document`] into an existing buffer.
pub fn write_document_into<B: ClixmlBuffer>(out: &mut B, values: &[Value]) {
    out.push_raw("<Objs Version=\"1.1.0.1\" xmlns=\"");
    out.push_raw(CLIXML_NAMESPACE);
    out.push_raw("\">");
    let mut w = Writer::scoped();
    for v in values {
        out.write_with(&mut w, v);
    }
    out.push_raw("</Objs>");
}
