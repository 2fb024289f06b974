//! The CLIXML reader: a recursive descent over the borrowing token stream of [`super::lex`].
//!
//! The input is validated as UTF-8 once; every token then borrows from it, so the only
//! allocations are the strings and containers the resulting [`Value`] keeps. Objects and
//! type-name lists are registered in vectors indexed by `RefId`, so `<Ref>` and `<TNRef>`
//! resolve to the same `Arc` as the element they name.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use quick_xml::escape::EscapeError;
use quick_xml::events::BytesRef;
use uuid::Uuid;

use super::escape;
use super::lex::{Attrs, Ev as Event, LexError, Lexer, Tag as BytesStart, scan_attrs};
use super::{
    ClixmlError, Limits, ListKind, Object, ObjectBase, ProgressPrimitive, Property, Value,
};

type Result<T> = std::result::Result<T, ClixmlError>;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Strips a BOM. Returns the rest and how many bytes were skipped. UTF-8 is checked by
/// the tokenizer.
fn prepare(bytes: &[u8]) -> (&[u8], u64) {
    match bytes.strip_prefix(BOM) {
        Some(rest) => (rest, BOM.len() as u64),
        None => (bytes, 0),
    }
}

pub(crate) fn read_value(bytes: &[u8], limits: &Limits) -> Result<Value> {
    let (src, base) = prepare(bytes);
    let mut p = Parser::new(src, base, limits);
    let v = loop {
        match p.next()? {
            Event::Start(e) => break p.value(e, false, 0, None)?.1,
            Event::Empty(e) => break p.value(e, true, 0, None)?.1,
            Event::Eof => return Err(ClixmlError::Empty),
            ev => p.outside_root(&ev)?,
        }
    };
    p.expect_eof()?;
    Ok(v)
}

pub(crate) fn read_document(bytes: &[u8], limits: &Limits) -> Result<Vec<Value>> {
    let (mut src, mut base) = prepare(bytes);
    // `powershell.exe` writes `#< CLIXML` and a newline before the document on stderr.
    let trimmed = src.trim_ascii_start();
    if let Some(rest) = trimmed.strip_prefix(b"#< CLIXML") {
        base += (src.len() - rest.len()) as u64;
        src = rest;
    }
    let mut p = Parser::new(src, base, limits);
    let empty = loop {
        match p.next()? {
            Event::Start(e) => {
                p.check_root(&e)?;
                break false;
            }
            Event::Empty(e) => {
                p.check_root(&e)?;
                break true;
            }
            Event::Eof => return Err(ClixmlError::Empty),
            ev => p.outside_root(&ev)?,
        }
    };
    let mut out = Vec::new();
    if !empty {
        loop {
            match p.next()? {
                Event::Start(e) => out.push(p.value(e, false, 0, None)?.1),
                Event::Empty(e) => out.push(p.value(e, true, 0, None)?.1),
                Event::End => break,
                Event::Eof => return Err(p.eof_error()),
                _ => {}
            }
        }
    }
    p.expect_eof()?;
    Ok(out)
}

/// Element names the reader knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Nil,
    S,
    C,
    B,
    Dt,
    Ts,
    By,
    Sb,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    Sg,
    Db,
    D,
    Ba,
    G,
    Uri,
    Version,
    Xd,
    Sbk,
    Ss,
    Pr,
    Obj,
    Ref,
    /// A structural element (TN, Props, LST, ...) met where a value is expected.
    Structural,
    Unknown,
}

fn tag_of(name: &str) -> Tag {
    match name {
        "S" => Tag::S,
        "B" => Tag::B,
        "I32" => Tag::I32,
        "Obj" => Tag::Obj,
        "Nil" => Tag::Nil,
        "Ref" => Tag::Ref,
        "I64" => Tag::I64,
        "DT" => Tag::Dt,
        "G" => Tag::G,
        "U32" => Tag::U32,
        "C" => Tag::C,
        "TS" => Tag::Ts,
        "By" => Tag::By,
        "SB" => Tag::Sb,
        "U16" => Tag::U16,
        "I16" => Tag::I16,
        "U64" => Tag::U64,
        "Sg" => Tag::Sg,
        "Db" => Tag::Db,
        "D" => Tag::D,
        "BA" => Tag::Ba,
        "URI" => Tag::Uri,
        "Version" => Tag::Version,
        "XD" => Tag::Xd,
        "SBK" => Tag::Sbk,
        "SS" => Tag::Ss,
        "PR" => Tag::Pr,
        "TN" | "TNRef" | "T" | "ToString" | "Props" | "MS" | "LST" | "IE" | "STK" | "QUE"
        | "DCT" | "En" | "Objs" | "AV" | "AI" | "PI" | "PC" | "SR" | "SD" => Tag::Structural,
        _ => Tag::Unknown,
    }
}

/// RefId -> item. Ids are dense in practice (0, 1, 2, ...): a vector indexed by id, with a
/// map for ids far beyond the vector so that one `RefId="4000000"` cannot make it allocate
/// megabytes.
struct RefTable<T> {
    dense: Vec<Option<T>>,
    sparse: std::collections::HashMap<u32, T>,
}

impl<T> Default for RefTable<T> {
    fn default() -> Self {
        RefTable {
            dense: Vec::new(),
            sparse: std::collections::HashMap::new(),
        }
    }
}

impl<T> RefTable<T> {
    /// How far past the end of the vector an id may be and still grow it.
    const SLACK: usize = 1024;

    fn insert(&mut self, id: u32, item: T) {
        let i = id as usize;
        if i < self.dense.len() {
            self.dense[i] = Some(item);
        } else if i < self.dense.len() + Self::SLACK {
            self.dense.resize_with(i + 1, || None);
            self.dense[i] = Some(item);
        } else {
            self.sparse.insert(id, item);
        }
    }

    fn get(&self, id: u32) -> Option<&T> {
        match self.dense.get(id as usize) {
            Some(Some(item)) => Some(item),
            // An id stored sparsely may since have been overtaken by the vector.
            _ => self.sparse.get(&id),
        }
    }
}

struct Parser<'a, 'l> {
    r: Lexer<'a>,
    base: u64,
    limits: &'l Limits,
    /// Start of the last event read (the `<` of a tag).
    last: u64,
    elements: usize,
    refs: RefTable<Arc<Object>>,
    tns: RefTable<Arc<[String]>>,
    /// RefIds of the objects being read, innermost last.
    open: Vec<Option<u32>>,
    /// Properties of the property lists being read, innermost last (one allocation per
    /// finished list instead of a growing vector each).
    prop_stack: Vec<Property>,
    /// Items of the lists being read, innermost last.
    item_stack: Vec<Value>,
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

impl<'a, 'l> Parser<'a, 'l> {
    fn new(src: &'a [u8], base: u64, limits: &'l Limits) -> Self {
        let r = Lexer::new(src);
        Parser {
            r,
            base,
            limits,
            last: base,
            elements: 0,
            refs: RefTable::default(),
            tns: RefTable::default(),
            open: Vec::new(),
            prop_stack: Vec::new(),
            item_stack: Vec::new(),
        }
    }

    #[inline]
    fn next(&mut self) -> Result<Event<'a>> {
        self.last = self.base + self.r.position() as u64;
        match self.r.next() {
            Ok(ev @ (Event::Start(_) | Event::Empty(_))) => {
                self.elements += 1;
                if self.elements > self.limits.max_elements {
                    return Err(ClixmlError::LimitExceeded {
                        what: "elements",
                        limit: self.limits.max_elements,
                        offset: self.last,
                    });
                }
                Ok(ev)
            }
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.lex_error(e)),
        }
    }

    #[cold]
    fn lex_error(&self, e: LexError) -> ClixmlError {
        match e {
            LexError::Utf8(at) => ClixmlError::InvalidUtf8 {
                offset: self.base + at as u64,
            },
            LexError::Dtd(at) => ClixmlError::DtdRejected {
                offset: self.base + at as u64,
            },
            LexError::Malformed(at, message) => ClixmlError::MalformedXml {
                offset: self.base + at as u64,
                message,
            },
        }
    }

    fn eof_error(&self) -> ClixmlError {
        ClixmlError::MalformedXml {
            offset: self.base + self.r.position() as u64,
            message: "unexpected end of input".into(),
        }
    }

    /// Events allowed before and after the root: declaration, comments, PIs, whitespace.
    fn outside_root(&self, ev: &Event<'a>) -> Result<()> {
        match ev {
            Event::Text(t) if t.trim().is_empty() => Ok(()),
            Event::Misc => Ok(()),
            Event::End => Err(ClixmlError::MalformedXml {
                offset: self.last,
                message: "unmatched end tag".into(),
            }),
            _ => Err(ClixmlError::TrailingContent { offset: self.last }),
        }
    }

    fn expect_eof(&mut self) -> Result<()> {
        loop {
            match self.next()? {
                Event::Eof => return Ok(()),
                ev => self.outside_root(&ev)?,
            }
        }
    }

    /// The root must be `Objs` in the CLIXML namespace (as PowerShell's deserializer
    /// requires); a root that declares no namespace for its prefix is taken as CLIXML.
    fn check_root(&self, e: &BytesStart<'_>) -> Result<()> {
        let name = e.local_name();
        let not_a_document = || ClixmlError::NotADocument {
            name: e.name.to_owned(),
        };
        if name != "Objs" {
            return Err(not_a_document());
        }
        let prefix = e.name.strip_suffix(name).and_then(|p| p.strip_suffix(':'));
        let wanted = match prefix {
            Some(p) => format!("xmlns:{p}"),
            None => "xmlns".to_owned(),
        };
        match namespace_declaration(e.raw_attrs, &wanted) {
            None => Ok(()),
            Some(raw) if self.unescape_attr(raw)?.trim() == super::CLIXML_NAMESPACE => Ok(()),
            Some(_) => Err(not_a_document()),
        }
    }

    #[cold]
    fn bad_attrs(&self) -> ClixmlError {
        ClixmlError::MalformedXml {
            offset: self.last,
            message: "malformed attribute".into(),
        }
    }

    /// The `N` and `RefId` attributes: as the tokenizer read them, or else from
    /// [`scan_attrs`] over the raw attribute text.
    #[inline]
    fn attrs(&self, e: &BytesStart<'a>) -> Result<Attrs<'a>> {
        match e.attrs {
            Some(a) => Ok(a),
            None => scan_attrs(e.raw_attrs).ok_or_else(|| self.bad_attrs()),
        }
    }

    fn unescape_attr<'s>(&self, raw: &'s str) -> Result<Cow<'s, str>> {
        if !raw.contains('&') {
            return Ok(Cow::Borrowed(raw));
        }
        quick_xml::escape::unescape(raw).map_err(|e| match e {
            EscapeError::UnrecognizedEntity(_, name) => ClixmlError::UnknownEntity {
                name,
                offset: self.last,
            },
            other => ClixmlError::MalformedXml {
                offset: self.last,
                message: other.to_string(),
            },
        })
    }

    /// Decodes an `N` attribute into a property name.
    fn name(&self, raw: Option<&str>, element: &str, offset: u64) -> Result<String> {
        let Some(raw) = raw else {
            return Err(ClixmlError::MissingAttribute {
                element: element.to_owned(),
                attribute: "N",
                offset,
            });
        };
        if !contains_either(raw.as_bytes(), b'&', b'_') {
            return Ok(raw.to_owned());
        }
        let xml = self.unescape_attr(raw)?;
        self.unescape_clixml(&xml, offset).map(Cow::into_owned)
    }

    fn unescape_clixml<'s>(&self, s: &'s str, offset: u64) -> Result<Cow<'s, str>> {
        escape::decode(s, self.limits.lossy_surrogates).map_err(|e| ClixmlError::InvalidEscape {
            text: e.text,
            offset,
        })
    }

    fn ref_id(&self, raw: Option<&str>, element: &str, offset: u64) -> Result<u32> {
        let Some(raw) = raw else {
            return Err(ClixmlError::MissingAttribute {
                element: element.to_owned(),
                attribute: "RefId",
                offset,
            });
        };
        let id: u32 = raw.trim().parse().map_err(|_| ClixmlError::BadValue {
            element: element.to_owned(),
            text: clip(raw),
            offset,
        })?;
        if id as usize >= self.limits.max_ref_ids {
            return Err(ClixmlError::LimitExceeded {
                what: "RefId",
                limit: self.limits.max_ref_ids,
                offset,
            });
        }
        Ok(id)
    }

    /// The text content of a leaf element, after its start tag.
    #[inline]
    fn text(&mut self, empty: bool, element: &str, offset: u64) -> Result<Cow<'a, str>> {
        Ok(self.text_flagged(empty, element, offset)?.0)
    }

    /// The text content of a leaf element, after its start tag, and whether it holds a `_`
    /// or a byte below 0x20 (what a CLIXML string must look at again: escapes, line ends).
    #[inline]
    fn text_flagged(
        &mut self,
        empty: bool,
        element: &str,
        offset: u64,
    ) -> Result<(Cow<'a, str>, bool)> {
        if empty {
            return Ok((Cow::Borrowed(""), false));
        }
        let text = match self.r.simple_text() {
            Some(t) => Cow::Borrowed(t),
            None => self.text_events(element)?,
        };
        if text.len() > self.limits.max_string_len {
            return Err(ClixmlError::LimitExceeded {
                what: "string length",
                limit: self.limits.max_string_len,
                offset,
            });
        }
        if plain(text.as_bytes()) {
            return Ok((text, false));
        }
        // XML 1.0 carries no C0 control but tab, newline and carriage return; CLIXML escapes
        // them as `_xHHHH_`. A raw one (or a character reference to one) is malformed input,
        // not data to keep: it could not be written back.
        if let Some(pos) = text
            .bytes()
            .position(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        {
            return Err(ClixmlError::MalformedXml {
                offset,
                message: format!(
                    "character U+{:04X} in <{element}> is not allowed in XML 1.0",
                    text.as_bytes()[pos]
                ),
            });
        }
        Ok((text, true))
    }

    /// The text of a leaf element token by token: references, CDATA sections, comments.
    #[cold]
    fn text_events(&mut self, element: &str) -> Result<Cow<'a, str>> {
        let mut acc: Option<Cow<'a, str>> = None;
        loop {
            let piece: Cow<'a, str> = match self.next()? {
                Event::End => break,
                Event::Text(t) | Event::CData(t) => Cow::Borrowed(t),
                Event::Ref(r) => match BytesRef::new(r).resolve_char_ref() {
                    Ok(Some(ch)) => Cow::Owned(ch.to_string()),
                    Ok(None) => Cow::Borrowed(match r {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        other => {
                            return Err(ClixmlError::UnknownEntity {
                                name: clip(other),
                                offset: self.last,
                            });
                        }
                    }),
                    Err(e) => {
                        return Err(ClixmlError::MalformedXml {
                            offset: self.last,
                            message: e.to_string(),
                        });
                    }
                },
                Event::Start(e) | Event::Empty(e) => {
                    return Err(ClixmlError::UnexpectedElement {
                        name: e.local_name().to_owned(),
                        parent: element.to_owned(),
                        offset: self.last,
                    });
                }
                Event::Eof => return Err(self.eof_error()),
                Event::Misc => continue,
            };
            acc = Some(match acc {
                None => piece,
                Some(prev) => {
                    let mut s = prev.into_owned();
                    s.push_str(&piece);
                    Cow::Owned(s)
                }
            });
        }
        Ok(acc.unwrap_or(Cow::Borrowed("")))
    }

    /// A CLIXML string: text with `_xHHHH_` escapes decoded.
    fn string(&mut self, empty: bool, element: &str, offset: u64) -> Result<String> {
        let (text, special) = self.text_flagged(empty, element, offset)?;
        // Fast path: nothing to normalise or unescape (no second copy).
        if !special || !contains_either(text.as_bytes(), b'_', b'\r') {
            return Ok(text.into_owned());
        }
        let text = normalize_eol(text);
        Ok(match text {
            Cow::Borrowed(b) => self.unescape_clixml(b, offset)?.into_owned(),
            Cow::Owned(o) => match self.unescape_clixml(&o, offset)? {
                Cow::Owned(decoded) => decoded,
                Cow::Borrowed(_) => o,
            },
        })
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        empty: bool,
        element: &str,
        offset: u64,
    ) -> Result<T> {
        let text = self.text(empty, element, offset)?;
        text.trim().parse().map_err(|_| ClixmlError::BadValue {
            element: element.to_owned(),
            text: clip(&text),
            offset,
        })
    }

    fn bad(&self, element: &str, text: &str, offset: u64) -> ClixmlError {
        ClixmlError::BadValue {
            element: element.to_owned(),
            text: clip(text),
            offset,
        }
    }

    /// Skips to the end of the current element.
    fn skip(&mut self) -> Result<()> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Event::Start(_) => depth += 1,
                Event::End if depth == 0 => return Ok(()),
                Event::End => depth -= 1,
                Event::Eof => return Err(self.eof_error()),
                _ => {}
            }
        }
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth > self.limits.max_depth {
            Err(ClixmlError::DepthExceeded {
                limit: self.limits.max_depth,
                offset: self.last,
            })
        } else {
            Ok(())
        }
    }

    /// Reads one value element whose start tag was just read. With `named`, also returns its
    /// decoded `N` attribute (required then).
    fn value(
        &mut self,
        e: BytesStart<'a>,
        empty: bool,
        depth: usize,
        named: Option<&str>,
    ) -> Result<(Option<String>, Value)> {
        let offset = self.last;
        let attrs = self.attrs(&e)?;
        let prop_name = match named {
            Some(parent) => Some(self.name(attrs.n, parent, offset)?),
            None => None,
        };
        let local = e.local_name();
        let name: &str = local;
        let v = match tag_of(name) {
            Tag::S => Value::Str(self.string(empty, "S", offset)?),
            Tag::Nil => {
                if !empty {
                    self.skip()?;
                }
                Value::Nil
            }
            Tag::B => {
                let t = self.text(empty, "B", offset)?;
                match t.trim() {
                    "true" | "True" | "1" => Value::Bool(true),
                    "false" | "False" | "0" => Value::Bool(false),
                    other => return Err(self.bad("B", other, offset)),
                }
            }
            Tag::I32 => Value::I32(self.number(empty, "I32", offset)?),
            Tag::I64 => Value::I64(self.number(empty, "I64", offset)?),
            Tag::U32 => Value::U32(self.number(empty, "U32", offset)?),
            Tag::U64 => Value::U64(self.number(empty, "U64", offset)?),
            Tag::I16 => Value::I16(self.number(empty, "I16", offset)?),
            Tag::U16 => Value::U16(self.number(empty, "U16", offset)?),
            Tag::By => Value::U8(self.number(empty, "By", offset)?),
            Tag::Sb => Value::I8(self.number(empty, "SB", offset)?),
            Tag::C => Value::Char(self.number(empty, "C", offset)?),
            Tag::Db => {
                let t = self.text(empty, "Db", offset)?;
                Value::F64(parse_float(t.trim()).ok_or_else(|| self.bad("Db", &t, offset))?)
            }
            Tag::Sg => {
                let t = self.text(empty, "Sg", offset)?;
                let v: f32 = match t.trim() {
                    "INF" => f32::INFINITY,
                    "-INF" => f32::NEG_INFINITY,
                    "NaN" => f32::NAN,
                    s => s.parse().map_err(|_| self.bad("Sg", &t, offset))?,
                };
                Value::F32(v)
            }
            Tag::D => Value::Decimal(self.text(empty, "D", offset)?.trim().to_owned()),
            Tag::Dt => Value::DateTime(self.text(empty, "DT", offset)?.trim().to_owned()),
            Tag::Ts => Value::Duration(self.text(empty, "TS", offset)?.trim().to_owned()),
            Tag::Version => Value::Version(self.text(empty, "Version", offset)?.trim().to_owned()),
            Tag::Ss => Value::SecureString(self.text(empty, "SS", offset)?.trim().to_owned()),
            Tag::G => {
                let t = self.text(empty, "G", offset)?;
                Value::Guid(Uuid::try_parse(t.trim()).map_err(|_| self.bad("G", &t, offset))?)
            }
            Tag::Ba => {
                let t = self.text(empty, "BA", offset)?;
                let b64 = t.trim();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .or_else(|_| {
                        let compact: String = b64.split_ascii_whitespace().collect();
                        base64::engine::general_purpose::STANDARD.decode(compact)
                    })
                    .map_err(|_| self.bad("BA", &t, offset))?;
                Value::Bytes(decoded)
            }
            Tag::Uri => Value::Uri(self.string(empty, "URI", offset)?),
            Tag::Xd => Value::Xml(self.string(empty, "XD", offset)?),
            Tag::Sbk => Value::ScriptBlock(self.string(empty, "SBK", offset)?),
            Tag::Pr => Value::Progress(Box::new(self.progress(empty, offset)?)),
            Tag::Ref => {
                let id = self.ref_id(attrs.ref_id, "Ref", offset)?;
                if !empty {
                    self.skip()?;
                }
                match self.refs.get(id) {
                    Some(obj) => Value::Object(Arc::clone(obj)),
                    _ => match self.open.iter().rposition(|o| *o == Some(id)) {
                        Some(pos) => Value::CycleRef((self.open.len() - 1 - pos) as u32),
                        None => return Err(ClixmlError::UnknownRefId { id, offset }),
                    },
                }
            }
            Tag::Obj => {
                self.check_depth(depth)?;
                let ref_id = match attrs.ref_id {
                    Some(r) => Some(self.ref_id(Some(r), "Obj", offset)?),
                    None => None,
                };
                self.open.push(ref_id);
                let obj = self.object(empty, depth)?;
                self.open.pop();
                let obj = Arc::new(obj);
                if let Some(id) = ref_id {
                    self.refs.insert(id, Arc::clone(&obj));
                }
                Value::Object(obj)
            }
            Tag::Structural => {
                return Err(ClixmlError::UnexpectedElement {
                    name: name.to_owned(),
                    parent: "value".to_owned(),
                    offset,
                });
            }
            Tag::Unknown => {
                return Err(ClixmlError::UnknownElement {
                    name: clip(name),
                    offset,
                });
            }
        };
        Ok((prop_name, v))
    }

    /// The content of an `<Obj>` after its start tag.
    fn object(&mut self, empty: bool, depth: usize) -> Result<Object> {
        let mut obj = Object::default();
        if empty {
            return Ok(obj);
        }
        loop {
            let (e, child_empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End => return Ok(obj),
                Event::Eof => return Err(self.eof_error()),
                _ => continue,
            };
            let offset = self.last;
            let local = e.local_name();
            match local {
                "TN" => {
                    let attrs = self.attrs(&e)?;
                    let id = self.ref_id(attrs.ref_id, "TN", offset)?;
                    let names = self.type_names(child_empty)?;
                    self.tns.insert(id, Arc::clone(&names));
                    obj.type_names = Some(names);
                }
                "TNRef" => {
                    let attrs = self.attrs(&e)?;
                    let id = self.ref_id(attrs.ref_id, "TNRef", offset)?;
                    if !child_empty {
                        self.skip()?;
                    }
                    match self.tns.get(id) {
                        Some(names) => obj.type_names = Some(Arc::clone(names)),
                        _ => return Err(ClixmlError::UnknownTypeNameRef { id, offset }),
                    }
                }
                "ToString" => obj.to_string = Some(self.string(child_empty, "ToString", offset)?),
                "Props" => self.properties(child_empty, depth + 1, "Props", &mut obj.adapted)?,
                "MS" => self.properties(child_empty, depth + 1, "MS", &mut obj.extended)?,
                "LST" => {
                    obj.base = ObjectBase::List(ListKind::List, self.items(child_empty, depth + 1)?)
                }
                "IE" => {
                    obj.base =
                        ObjectBase::List(ListKind::Enumerable, self.items(child_empty, depth + 1)?)
                }
                "STK" => {
                    obj.base =
                        ObjectBase::List(ListKind::Stack, self.items(child_empty, depth + 1)?)
                }
                "QUE" => {
                    obj.base =
                        ObjectBase::List(ListKind::Queue, self.items(child_empty, depth + 1)?)
                }
                "DCT" => obj.base = ObjectBase::Dict(self.dict(child_empty, depth + 1)?),
                _ => {
                    let (_, v) = self.value(e, child_empty, depth + 1, None)?;
                    obj.base = ObjectBase::Primitive(v);
                }
            }
        }
    }

    fn type_names(&mut self, empty: bool) -> Result<Arc<[String]>> {
        let mut names = Vec::new();
        if !empty {
            loop {
                match self.next()? {
                    Event::Start(e) | Event::Empty(e) if e.local_name() != "T" => {
                        return Err(ClixmlError::UnexpectedElement {
                            name: e.local_name().to_owned(),
                            parent: "TN".into(),
                            offset: self.last,
                        });
                    }
                    Event::Start(_) => {
                        let offset = self.last;
                        names.push(self.string(false, "T", offset)?);
                    }
                    Event::Empty(_) => names.push(String::new()),
                    Event::End => break,
                    Event::Eof => return Err(self.eof_error()),
                    _ => {}
                }
            }
        }
        Ok(names.into())
    }

    fn properties(
        &mut self,
        empty: bool,
        depth: usize,
        parent: &str,
        out: &mut Vec<Property>,
    ) -> Result<()> {
        if empty {
            return Ok(());
        }
        let mark = self.prop_stack.len();
        loop {
            let (e, child_empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End => break,
                Event::Eof => return Err(self.eof_error()),
                _ => continue,
            };
            let (name, value) = self.value(e, child_empty, depth, Some(parent))?;
            self.prop_stack.push(Property {
                name: name.unwrap_or_default(),
                value,
            });
        }
        if out.is_empty() {
            *out = self.prop_stack.drain(mark..).collect();
        } else {
            out.extend(self.prop_stack.drain(mark..));
        }
        Ok(())
    }

    fn items(&mut self, empty: bool, depth: usize) -> Result<Vec<Value>> {
        if empty {
            return Ok(Vec::new());
        }
        let mark = self.item_stack.len();
        loop {
            let v = match self.next()? {
                Event::Start(e) => self.value(e, false, depth, None)?.1,
                Event::Empty(e) => self.value(e, true, depth, None)?.1,
                Event::End => break,
                Event::Eof => return Err(self.eof_error()),
                _ => continue,
            };
            self.item_stack.push(v);
        }
        Ok(self.item_stack.drain(mark..).collect())
    }

    fn dict(&mut self, empty: bool, depth: usize) -> Result<Vec<(Value, Value)>> {
        let mut entries = Vec::new();
        if empty {
            return Ok(entries);
        }
        loop {
            let (e, en_empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End => return Ok(entries),
                Event::Eof => return Err(self.eof_error()),
                _ => continue,
            };
            let en_offset = self.last;
            if e.local_name() != "En" {
                return Err(ClixmlError::UnexpectedElement {
                    name: e.local_name().to_owned(),
                    parent: "DCT".into(),
                    offset: en_offset,
                });
            }
            let mut key = None;
            let mut value = None;
            if !en_empty {
                loop {
                    let (c, c_empty) = match self.next()? {
                        Event::Start(c) => (c, false),
                        Event::Empty(c) => (c, true),
                        Event::End => break,
                        Event::Eof => return Err(self.eof_error()),
                        _ => continue,
                    };
                    let (n, v) = self.value(c, c_empty, depth + 1, Some("En"))?;
                    match n.as_deref() {
                        Some("Key") => key = Some(v),
                        Some("Value") => value = Some(v),
                        _ if key.is_none() => key = Some(v),
                        _ => value = Some(v),
                    }
                }
            }
            let Some(key) = key else {
                return Err(ClixmlError::MissingAttribute {
                    element: "En".into(),
                    attribute: "Key",
                    offset: en_offset,
                });
            };
            entries.push((key, value.unwrap_or(Value::Nil)));
        }
    }

    fn progress(&mut self, empty: bool, offset: u64) -> Result<ProgressPrimitive> {
        let mut pr = ProgressPrimitive::default();
        if empty {
            return Ok(pr);
        }
        let mut seen_type = false;
        loop {
            let (e, c_empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End => return Ok(pr),
                Event::Eof => return Err(self.eof_error()),
                _ => continue,
            };
            let c_off = self.last;
            let local = e.local_name();
            match local {
                "AV" => pr.activity = self.string(c_empty, "AV", c_off)?,
                "AI" => pr.activity_id = self.number(c_empty, "AI", c_off)?,
                "PI" => pr.parent_activity_id = self.number(c_empty, "PI", c_off)?,
                "PC" => pr.percent_complete = self.number(c_empty, "PC", c_off)?,
                "SR" => pr.seconds_remaining = self.number(c_empty, "SR", c_off)?,
                "T" => {
                    pr.record_type = self.string(c_empty, "T", c_off)?;
                    seen_type = true;
                }
                "SD" => pr.status_description = Some(self.string(c_empty, "SD", c_off)?),
                "S" => pr.current_operation = Some(self.string(c_empty, "S", c_off)?),
                "CO" => pr.current_operation = Some(self.string(c_empty, "CO", c_off)?),
                "Nil" => {
                    if !c_empty {
                        self.skip()?;
                    }
                    if seen_type {
                        pr.status_description = None;
                    } else {
                        pr.current_operation = None;
                    }
                }
                other => {
                    return Err(ClixmlError::UnexpectedElement {
                        name: clip(other),
                        parent: "PR".into(),
                        offset,
                    });
                }
            }
        }
    }
}

/// Whether `b` holds `x` or `y`, eight bytes at a time (strings here are mostly short, where
/// memchr's setup costs more than the search).
#[inline]
fn contains_either(b: &[u8], x: u8, y: u8) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    if b.len() >= 64 {
        return memchr::memchr2(x, y, b).is_some();
    }
    let (cx, cy) = (LO * u64::from(x), LO * u64::from(y));
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        let (a, d) = (w ^ cx, w ^ cy);
        // A zero byte in `a` or `d` is a byte equal to `x` or `y`.
        if ((a.wrapping_sub(LO) & !a) | (d.wrapping_sub(LO) & !d)) & HI != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c == x || c == y)
}

/// Whether `b` holds no `_` and no byte below 0x20, eight bytes at a time: the common case
/// of a text that needs neither a control-character check nor CLIXML unescaping.
#[inline]
fn plain(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const UNDERSCORE: u64 = LO * b'_' as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        let u = w ^ UNDERSCORE;
        // Some byte below 0x20 in `w`, or a zero byte (an `_`) in `u`: the classic
        // "has less than" test, exact for the whole word.
        if ((w.wrapping_sub(LO * 0x20) & !w) | (u.wrapping_sub(LO) & !u)) & HI != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&c| c >= 0x20 && c != b'_')
}

/// XML end-of-line handling: `\r\n` and a lone `\r` become `\n`.
fn normalize_eol(text: Cow<'_, str>) -> Cow<'_, str> {
    if !text.contains('\r') {
        return text;
    }
    Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "INF" => Some(f64::INFINITY),
        "-INF" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// The raw value of attribute `name` (an `xmlns` declaration) in a start tag's attribute
/// text, if present.
fn namespace_declaration<'t>(raw_attrs: &'t str, name: &str) -> Option<&'t str> {
    let mut rest = raw_attrs;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        let eq = rest.find('=')?;
        let key = rest[..eq].trim_end();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let body = &after[1..];
        let end = body.find(quote)?;
        if key == name {
            return Some(&body[..end]);
        }
        rest = &body[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::contains_either;

    #[test]
    fn contains_either_matches_a_plain_scan() {
        let samples = [
            "",
            "a",
            "abcdefgh",
            "abcdefg_",
            "_bcdefgh",
            "abcdefghijklmno&",
            "x\ry",
            "ünïcödé_x",
        ];
        for s in samples {
            for pad in 0..70 {
                let t = format!("{}{s}", "p".repeat(pad));
                let b = t.as_bytes();
                let plain = b.iter().any(|&c| c == b'_' || c == b'&' || c == b'\r');
                let fast = contains_either(b, b'_', b'&') || contains_either(b, b'\r', b'\r');
                assert_eq!(fast, plain, "{t:?}");
            }
        }
    }
}
