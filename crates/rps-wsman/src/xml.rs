//! A small namespace-resolved element tree on top of quick-xml, plus the
//! escaping helpers the encoders use.
//!
//! Text is borrowed from the input whenever the parser allows it, so large
//! base64 payloads are not copied before they are decoded.

use std::borrow::Cow;
use std::rc::Rc;

use quick_xml::XmlVersion;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, QName};
use quick_xml::reader::Reader;

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
    pub ns: Option<Rc<str>>,
    pub prefix: Option<String>,
    pub local: String,
    pub value: Cow<'a, str>,
}

/// How the prefix of an element's text resolved, when that text looks like a QName
/// (`prefix:local`, short, no `/` or space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextQName {
    /// The prefix is bound to this namespace URI.
    Bound(Rc<str>),
    /// No declaration of the prefix is in scope.
    Unbound,
}

/// An element, namespace-resolved, with its direct text concatenated.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub ns: Option<Rc<str>>,
    pub prefix: Option<String>,
    pub local: String,
    pub attrs: Vec<Attr<'a>>,
    pub children: Vec<Node<'a>>,
    pub text: Cow<'a, str>,
    /// How the prefix resolved when the text is a short `prefix:local` QName.
    pub text_qname: Option<TextQName>,
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
    let mut scope = Scope::new();
    let mut reader = Reader::from_str(text);
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
                let node = start_node(&mut scope, &e, pos, stack.len() + 1, elements, limits)?;
                if root.is_some() && stack.is_empty() {
                    return Err(malformed(pos, "more than one root element"));
                }
                stack.push(node);
            }
            Event::Empty(e) => {
                elements += 1;
                let depth = stack.len() + 1;
                let node = start_node(&mut scope, &e, pos, depth, elements, limits)?;
                scope.close(depth);
                attach(&mut stack, &mut root, node, pos)?;
            }
            Event::End(_) => {
                let depth = stack.len();
                let Some(mut node) = stack.pop() else {
                    return Err(malformed(pos, "end tag without start tag"));
                };
                resolve_text_qname(&scope, &mut node);
                scope.close(depth);
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

/// Most namespace declarations in scope at once (the built-in `xml` binding aside).
const MAX_NAMESPACE_BINDINGS: usize = 128;

/// The namespace of the `xmlns` attributes themselves (Namespaces in XML 1.0 §3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// One namespace declaration in scope.
#[derive(Debug)]
struct Binding {
    /// The declared prefix, `""` for the default namespace.
    prefix: String,
    /// The namespace URI, expanded; `None` when `xmlns=""` undeclares the default namespace.
    uri: Option<Rc<str>>,
    /// Depth of the element that declared it (the root is 1).
    depth: usize,
}

/// The namespace declarations in scope while parsing.
///
/// Each declaration is expanded (references, whitespace) and allocated once, then shared by
/// every element, attribute and QName that uses it, so a long URI used by many elements
/// costs its length once rather than once per use.
#[derive(Debug)]
struct Scope {
    bindings: Vec<Binding>,
    xml: Rc<str>,
}

impl Scope {
    fn new() -> Self {
        Scope {
            bindings: Vec::new(),
            xml: Rc::from(ns::XML),
        }
    }

    /// The URI `prefix` is bound to (`""`: the default namespace; `Some(None)`: undeclared).
    fn lookup(&self, prefix: &str) -> Option<Option<&Rc<str>>> {
        if prefix == "xml" {
            return Some(Some(&self.xml));
        }
        self.bindings
            .iter()
            .rev()
            .find(|b| b.prefix == prefix)
            .map(|b| b.uri.as_ref())
    }

    /// Namespace of an element (`element`) or attribute name with this prefix.
    fn resolve(
        &self,
        prefix: Option<&str>,
        element: bool,
        pos: u64,
    ) -> Result<Option<Rc<str>>, Error> {
        match prefix {
            None if !element => Ok(None),
            None => Ok(self.lookup("").flatten().cloned()),
            Some(p) => match self.lookup(p).flatten() {
                Some(uri) => Ok(Some(uri.clone())),
                None => Err(malformed(pos, &format!("unbound namespace prefix {p:?}"))),
            },
        }
    }

    /// Adds a declaration made by the element at `depth`, checking it.
    fn declare(
        &mut self,
        prefix: PrefixDeclaration<'_>,
        raw: &str,
        depth: usize,
        pos: u64,
    ) -> Result<(), Error> {
        let uri = namespace_uri(raw, pos)?;
        let (prefix, name) = match prefix {
            PrefixDeclaration::Default => ("", "xmlns".to_owned()),
            PrefixDeclaration::Named(p) => (p, format!("xmlns:{p}")),
        };
        let refused = match prefix {
            "xml" => uri != ns::XML,
            "xmlns" => true,
            "" => uri == ns::XML || uri == XMLNS_NS,
            _ => uri.is_empty() || uri == ns::XML || uri == XMLNS_NS,
        };
        if refused {
            return Err(malformed(
                pos,
                &format!("{name} may not be bound to namespace {uri:?}"),
            ));
        }
        if prefix == "xml" {
            // The built-in binding, declared again: nothing to add.
            return Ok(());
        }
        if self.bindings.len() >= MAX_NAMESPACE_BINDINGS {
            return Err(malformed(
                pos,
                &format!("more than {MAX_NAMESPACE_BINDINGS} namespace declarations in scope"),
            ));
        }
        self.bindings.push(Binding {
            prefix: prefix.to_owned(),
            uri: (!uri.is_empty()).then(|| Rc::from(uri.as_ref())),
            depth,
        });
        Ok(())
    }

    /// Ends the scope of the element at `depth`.
    fn close(&mut self, depth: usize) {
        while self.bindings.last().is_some_and(|b| b.depth >= depth) {
            self.bindings.pop();
        }
    }
}

/// A namespace URI as declared (the raw `xmlns` attribute value) turned into the URI it
/// names: references expanded and whitespace normalized as for any attribute value, so
/// `soap&#x2D;envelope` and `soap-envelope` are the same namespace. The result is never
/// longer than the declaration. A malformed reference is an error, an unknown entity
/// [`Error::UnknownEntity`].
fn namespace_uri(raw: &str, pos: u64) -> Result<Cow<'_, str>, Error> {
    if !raw.contains(['&', '\t', '\n', '\r']) {
        check_chars(raw, pos)?;
        return Ok(Cow::Borrowed(raw));
    }
    let attr = Attribute {
        key: QName("xmlns"),
        value: Cow::Borrowed(raw),
    };
    let uri = attr_value(&attr, pos)?;
    check_chars(&uri, pos)?;
    Ok(uri)
}

/// An attribute value with references expanded and whitespace normalized (XML 1.0 §3.3.3).
fn attr_value<'v>(a: &Attribute<'v>, pos: u64) -> Result<Cow<'v, str>, Error> {
    match a.normalized_value(XmlVersion::Implicit1_0) {
        Ok(v) => Ok(v),
        Err(quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
            _,
            name,
        ))) => Err(Error::UnknownEntity { offset: pos, name }),
        Err(err) => Err(malformed(pos, &err.to_string())),
    }
}

fn start_node<'a>(
    scope: &mut Scope,
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
    // Declarations first: they are in scope for the element's own name and attributes.
    for a in e.attributes() {
        let a = a.map_err(|err| malformed(pos, &err.to_string()))?;
        if a.value.contains('<') {
            return Err(malformed(pos, "`<` in an attribute value"));
        }
        if let Some(prefix) = a.key.as_namespace_binding() {
            scope.declare(prefix, &a.value, depth, pos)?;
        }
    }
    let name = e.name();
    let prefix = name.prefix().map(|p| p.into_inner().to_owned());
    let ns = scope.resolve(prefix.as_deref(), true, pos)?;
    let local = name.local_name().into_inner().to_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| malformed(pos, &err.to_string()))?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let aprefix = a.key.prefix().map(|p| p.into_inner().to_owned());
        let ans = scope.resolve(aprefix.as_deref(), false, pos)?;
        let value = attr_value(&a, pos)?;
        check_chars(&value, pos)?;
        attrs.push(Attr {
            ns: ans,
            prefix: aprefix,
            local: a.key.local_name().into_inner().to_owned(),
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
        text_qname: None,
        offset: pos,
    })
}

fn resolve_text_qname(scope: &Scope, node: &mut Node<'_>) {
    if !node.children.is_empty() {
        return;
    }
    let t = trim_xml(&node.text);
    if t.len() > 256 || !t.contains(':') || t.contains('/') || t.contains(' ') {
        return;
    }
    let Some(p) = QName(t).prefix().map(|p| p.into_inner()) else {
        return;
    };
    if p.is_empty() {
        return;
    }
    node.text_qname = Some(match scope.lookup(p).flatten() {
        Some(uri) => TextQName::Bound(uri.clone()),
        None => TextQName::Unbound,
    });
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
/// Prefixes declared by the enclosing elements being serialized, innermost last.
type SerializeScope = Vec<(String, Option<Rc<str>>)>;

fn serialize(node: &Node<'_>, out: &mut String, scope: &mut SerializeScope) {
    let mark = scope.len();
    let prefix = node.prefix.clone().unwrap_or_default();
    let qname = if prefix.is_empty() {
        node.local.clone()
    } else {
        format!("{prefix}:{}", node.local)
    };
    out.push('<');
    out.push_str(&qname);
    declare(out, scope, &prefix, node.ns.as_ref());
    for a in &node.attrs {
        if let (Some(p), Some(ns)) = (&a.prefix, &a.ns)
            && p != "xml"
        {
            declare(out, scope, p, Some(ns));
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
    // Text that reads like a QName (`p:x`) gets no declaration of its own: whether `p` is
    // bound depends on the document around the element, and declaring it would make the
    // element's XML change with the envelope it is written into (no fixed point).
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

/// Declares `prefix` as `ns` (`None`: no namespace) unless `scope` has it so already. URIs
/// shared from one declaration compare by pointer, so a long URI used by many elements is
/// not compared byte by byte for each.
fn declare(out: &mut String, scope: &mut SerializeScope, prefix: &str, ns: Option<&Rc<str>>) {
    let current = scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .and_then(|(_, n)| n.as_ref());
    let same = match (current, ns) {
        (Some(a), Some(b)) => Rc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        (Some(a), None) | (None, Some(a)) => a.is_empty(),
    };
    if same {
        return;
    }
    if prefix.is_empty() {
        out.push_str(" xmlns=\"");
    } else {
        out.push_str(" xmlns:");
        out.push_str(prefix);
        out.push_str("=\"");
    }
    escape_attr(out, ns.map(|n| &**n).unwrap_or(""));
    out.push('"');
    scope.push((prefix.to_owned(), ns.cloned()));
}
