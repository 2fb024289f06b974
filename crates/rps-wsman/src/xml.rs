//! A small namespace-resolved element tree on top of quick-xml, plus the
//! escaping helpers the encoders use.
//!
//! Text is borrowed from the input whenever the parser allows it, so large
//! base64 payloads are not copied before they are decoded.

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

use crate::error::Error;
use crate::limits::Limits;
use crate::ns;

/// A preserved element this crate does not type: its namespace, local name and
/// a self-contained XML serialization (namespace declarations included), so it
/// can be written back verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElement {
    /// Namespace URI of the element, if any.
    pub namespace: Option<String>,
    /// Local name of the element.
    pub name: String,
    /// Well-formed XML of the element, including the namespace declarations it needs.
    pub xml: String,
}

impl RawElement {
    pub(crate) fn from_node(node: &Node<'_>) -> Self {
        let mut xml = String::new();
        let mut scope = Vec::new();
        serialize(node, &mut xml, &mut scope);
        RawElement {
            namespace: node.ns.as_deref().map(str::to_owned),
            name: node.local.clone(),
            xml,
        }
    }
}

/// An attribute, namespace-resolved.
#[derive(Debug, Clone)]
pub(crate) struct Attr<'a> {
    pub ns: Option<Cow<'static, str>>,
    pub prefix: Option<String>,
    pub local: String,
    pub value: Cow<'a, str>,
}

/// An element, namespace-resolved, with its direct text concatenated.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub ns: Option<Cow<'static, str>>,
    pub prefix: Option<String>,
    pub local: String,
    pub attrs: Vec<Attr<'a>>,
    pub children: Vec<Node<'a>>,
    pub text: Cow<'a, str>,
    /// Namespace of the prefix when the text is a short `prefix:local` QName.
    pub text_qname_ns: Option<String>,
    /// Byte offset of the start tag in the parsed text.
    pub offset: u64,
}

impl<'a> Node<'a> {
    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    /// First child named `{ns}local`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Node<'a>> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// All children named `{ns}local`.
    pub fn children_named<'s>(
        &'s self,
        ns: &'s str,
        local: &'s str,
    ) -> impl Iterator<Item = &'s Node<'a>> + 's {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// Text of the element with XML whitespace trimmed.
    pub fn text_trim(&self) -> &str {
        trim_xml(&self.text)
    }

    /// Trimmed text of the first child `{ns}local`.
    pub fn child_text(&self, ns: &str, local: &str) -> Option<String> {
        self.child(ns, local).map(|c| c.text_trim().to_owned())
    }

    /// Value of an attribute without namespace.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| a.value.as_ref())
    }

    /// Value of an attribute in a namespace.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.local == local && a.ns.as_deref() == Some(ns))
            .map(|a| a.value.as_ref())
    }

    /// `s:mustUnderstand` (or an unqualified `mustUnderstand`, as some clients write it).
    pub fn must_understand(&self) -> Option<bool> {
        self.attr_ns(ns::SOAP, "mustUnderstand")
            .or_else(|| self.attr("mustUnderstand"))
            .map(|v| parse_bool(v).unwrap_or(false))
    }

    /// `{ns}local` for messages.
    pub fn display_name(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{ns}}}{}", self.local),
            None => self.local.clone(),
        }
    }
}

/// XML whitespace trim (space, tab, CR, LF only).
pub(crate) fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// `xs:boolean`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match trim_xml(s) {
        "true" | "1" | "True" | "TRUE" => Some(true),
        "false" | "0" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Parse a whole document into its root element.
pub(crate) fn parse<'a>(text: &'a str, limits: &Limits) -> Result<Node<'a>, Error> {
    let mut stack: Vec<Node<'a>> = Vec::new();
    let mut root: Option<Node<'a>> = None;
    let mut elements = 0usize;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| Error::Malformed {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(e) => {
                elements += 1;
                let node = start_node(&reader, &e, pos, stack.len() + 1, elements, limits)?;
                if root.is_some() && stack.is_empty() {
                    return Err(malformed(pos, "more than one root element"));
                }
                stack.push(node);
            }
            Event::Empty(e) => {
                elements += 1;
                let node = start_node(&reader, &e, pos, stack.len() + 1, elements, limits)?;
                attach(&mut stack, &mut root, node, pos)?;
            }
            Event::End(_) => {
                let Some(mut node) = stack.pop() else {
                    return Err(malformed(pos, "end tag without start tag"));
                };
                resolve_text_qname(&reader, &mut node);
                attach(&mut stack, &mut root, node, pos)?;
            }
            Event::Text(t) => {
                let t = t.into_inner();
                push_text(&mut stack, t, pos)?;
            }
            Event::CData(c) => {
                let t = c.into_inner();
                push_text(&mut stack, t, pos)?;
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch,
                    Ok(None) => match predefined_entity(&r) {
                        Some(ch) => ch,
                        None => {
                            return Err(Error::UnknownEntity {
                                offset: pos,
                                name: r.to_string(),
                            });
                        }
                    },
                    Err(e) => return Err(malformed(pos, &e.to_string())),
                };
                let mut buf = [0u8; 4];
                push_text(
                    &mut stack,
                    Cow::Owned(ch.encode_utf8(&mut buf).to_owned()),
                    pos,
                )?;
            }
            Event::DocType(_) => return Err(Error::Dtd { offset: pos }),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            text.len() as u64,
            &format!("unexpected end of document inside <{}>", open.local),
        ));
    }
    root.ok_or(Error::NotEnvelope {
        offset: 0,
        found: "nothing".to_owned(),
    })
}

fn malformed(offset: u64, message: &str) -> Error {
    Error::Malformed {
        offset,
        message: message.to_owned(),
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// XML 1.0 carries no C0 control but tab, newline and carriage return; refuse them (raw or
/// as character references) rather than keep data that could not be written back.
fn check_chars(s: &str, pos: u64) -> Result<(), Error> {
    match s
        .bytes()
        .find(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    {
        Some(b) => Err(malformed(
            pos,
            &format!("character U+{b:04X} is not allowed in XML 1.0"),
        )),
        None => Ok(()),
    }
}

fn push_text<'a>(stack: &mut [Node<'a>], t: Cow<'a, str>, pos: u64) -> Result<(), Error> {
    check_chars(&t, pos)?;
    match stack.last_mut() {
        Some(node) => {
            if node.text.is_empty() {
                node.text = t;
            } else {
                node.text.to_mut().push_str(&t);
            }
            Ok(())
        }
        None if trim_xml(&t).is_empty() => Ok(()),
        None => Err(malformed(pos, "text outside the root element")),
    }
}

fn attach<'a>(
    stack: &mut [Node<'a>],
    root: &mut Option<Node<'a>>,
    node: Node<'a>,
    pos: u64,
) -> Result<(), Error> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => {
            if root.is_some() {
                return Err(malformed(pos, "more than one root element"));
            }
            *root = Some(node);
        }
    }
    Ok(())
}

/// Namespace URIs seen in every envelope, shared instead of allocated per element.
const KNOWN_NS: [&str; 9] = [
    ns::SOAP,
    ns::ADDRESSING,
    ns::WSMAN,
    ns::WSMV,
    ns::SHELL,
    ns::POWERSHELL,
    ns::TRANSFER,
    ns::ENUMERATION,
    ns::XML,
];

fn resolve(r: ResolveResult<'_>, pos: u64) -> Result<Option<Cow<'static, str>>, Error> {
    match r {
        ResolveResult::Bound(n) => Ok(Some(match KNOWN_NS.iter().find(|k| **k == n.0) {
            Some(k) => Cow::Borrowed(*k),
            None => Cow::Owned(n.0.to_owned()),
        })),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => {
            Err(malformed(pos, &format!("unbound namespace prefix {p:?}")))
        }
    }
}

fn start_node<'a>(
    reader: &NsReader<&'a [u8]>,
    e: &BytesStart<'a>,
    pos: u64,
    depth: usize,
    elements: usize,
    limits: &Limits,
) -> Result<Node<'a>, Error> {
    if depth > limits.max_depth {
        return Err(Error::TooDeep {
            offset: pos,
            limit: limits.max_depth,
        });
    }
    if elements > limits.max_elements {
        return Err(Error::TooManyElements {
            offset: pos,
            limit: limits.max_elements,
        });
    }
    let name = e.name();
    let (res, local) = reader.resolver().resolve_element(name);
    let ns = resolve(res, pos)?;
    let prefix = name.prefix().map(|p| p.into_inner().to_owned());
    let local = local.into_inner().to_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| malformed(pos, &err.to_string()))?;
        if a.value.contains('<') {
            return Err(malformed(pos, "`<` in an attribute value"));
        }
        if a.key.as_namespace_binding().is_some() {
            // The namespace resolver takes declarations as written: an escaped URI would
            // resolve to its escaped text. Refuse it rather than misread it.
            if a.value.contains('&') {
                return Err(malformed(
                    pos,
                    "character or entity references in a namespace URI are not supported",
                ));
            }
            continue;
        }
        let (res, alocal) = reader.resolver().resolve_attribute(a.key);
        let ans = resolve(res, pos)?;
        let aprefix = a.key.prefix().map(|p| p.into_inner().to_owned());
        let value = match a.normalized_value(XmlVersion::Implicit1_0) {
            Ok(v) => v,
            Err(quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                _,
                name,
            ))) => return Err(Error::UnknownEntity { offset: pos, name }),
            Err(err) => return Err(malformed(pos, &err.to_string())),
        };
        check_chars(&value, pos)?;
        attrs.push(Attr {
            ns: ans,
            prefix: aprefix,
            local: alocal.into_inner().to_owned(),
            value: Cow::Owned(value.into_owned()),
        });
    }
    Ok(Node {
        ns,
        prefix,
        local,
        attrs,
        children: Vec::new(),
        text: Cow::Borrowed(""),
        text_qname_ns: None,
        offset: pos,
    })
}

fn resolve_text_qname(reader: &NsReader<&[u8]>, node: &mut Node<'_>) {
    if !node.children.is_empty() {
        return;
    }
    let t = trim_xml(&node.text);
    if t.len() > 256 || !t.contains(':') || t.contains('/') || t.contains(' ') {
        return;
    }
    let q = QName(t);
    if let Some(p) = q.prefix()
        && let ResolveResult::Bound(ns) = reader.resolver().resolve_prefix(Some(p), false)
    {
        node.text_qname_ns = Some(ns.0.to_owned());
    }
}

/// Escape character data. Characters XML 1.0 cannot carry become U+FFFD.
pub(crate) fn escape_text(out: &mut String, s: &str) {
    escape(out, s, false)
}

/// Escape an attribute value (double-quoted).
pub(crate) fn escape_attr(out: &mut String, s: &str) {
    escape(out, s, true)
}

fn escape(out: &mut String, s: &str, attr: bool) {
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep: Option<&str> = match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '\r' => Some("&#13;"),
            '"' if attr => Some("&quot;"),
            '\n' if attr => Some("&#10;"),
            '\t' if attr => Some("&#9;"),
            '\t' | '\n' => None,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => Some("\u{FFFD}"),
            _ => None,
        };
        if let Some(rep) = rep {
            out.push_str(&s[last..i]);
            out.push_str(rep);
            last = i + c.len_utf8();
        }
    }
    out.push_str(&s[last..]);
}

/// Write `<prefix:local` + attributes + `>` text `</...>`.
pub(crate) fn text_element(out: &mut String, qname: &str, attrs: &[(&str, &str)], text: &str) {
    out.push('<');
    out.push_str(qname);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr(out, v);
        out.push('"');
    }
    out.push('>');
    escape_text(out, text);
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

/// Serialize a node with the namespace declarations it needs relative to `scope`.
fn serialize(node: &Node<'_>, out: &mut String, scope: &mut Vec<(String, String)>) {
    let mark = scope.len();
    let prefix = node.prefix.clone().unwrap_or_default();
    let qname = if prefix.is_empty() {
        node.local.clone()
    } else {
        format!("{prefix}:{}", node.local)
    };
    out.push('<');
    out.push_str(&qname);
    declare(out, scope, &prefix, node.ns.as_deref().unwrap_or(""));
    for a in &node.attrs {
        if let (Some(p), Some(ns)) = (&a.prefix, &a.ns)
            && p != "xml"
        {
            declare(out, scope, p, ns);
        }
    }
    for a in &node.attrs {
        out.push(' ');
        if let Some(p) = &a.prefix {
            out.push_str(p);
            out.push(':');
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr(out, &a.value);
        out.push('"');
    }
    if let Some(ns) = &node.text_qname_ns
        && let Some(p) = QName(trim_xml(&node.text)).prefix()
    {
        declare(out, scope, p.into_inner(), ns);
    }
    let skip_text = !node.children.is_empty() && trim_xml(&node.text).is_empty();
    if node.children.is_empty() && node.text.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        if !skip_text {
            escape_text(out, &node.text);
        }
        for c in &node.children {
            serialize(c, out, scope);
        }
        out.push_str("</");
        out.push_str(&qname);
        out.push('>');
    }
    scope.truncate(mark);
}

fn declare(out: &mut String, scope: &mut Vec<(String, String)>, prefix: &str, ns: &str) {
    let current = scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, n)| n.as_str())
        .unwrap_or("");
    if current == ns {
        return;
    }
    if prefix.is_empty() {
        out.push_str(" xmlns=\"");
    } else {
        out.push_str(" xmlns:");
        out.push_str(prefix);
        out.push_str("=\"");
    }
    escape_attr(out, ns);
    out.push('"');
    scope.push((prefix.to_owned(), ns.to_owned()));
}
