//! WS-Transfer bodies (Create response, Get/Put items) and WS-Enumeration.

use crate::error::Error;
use crate::header::{Selector, decode_selectors, encode_selectors};
use crate::ns;
use crate::winrs::Shell;
use crate::xml::{Node, RawElement, text_element, trim_xml};

/// `wst:ResourceCreated`: the endpoint reference of a new shell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceCreated {
    /// `wsa:Address`.
    pub address: String,
    /// `wsa:ReferenceParameters/wsman:ResourceURI`.
    pub resource_uri: Option<String>,
    /// `wsa:ReferenceParameters/wsman:SelectorSet` (holds the ShellId).
    pub selectors: Vec<Selector>,
}

impl ResourceCreated {
    pub(crate) fn decode(node: &Node<'_>) -> ResourceCreated {
        let refs = node.child(ns::ADDRESSING, "ReferenceParameters");
        ResourceCreated {
            address: node
                .child_text(ns::ADDRESSING, "Address")
                .unwrap_or_default(),
            resource_uri: refs.and_then(|r| r.child_text(ns::WSMAN, "ResourceURI")),
            selectors: refs
                .and_then(|r| r.child(ns::WSMAN, "SelectorSet"))
                .map(decode_selectors)
                .unwrap_or_default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<wst:ResourceCreated>");
        text_element(out, "wsa:Address", &[], &self.address);
        out.push_str("<wsa:ReferenceParameters>");
        if let Some(r) = &self.resource_uri {
            text_element(out, "wsman:ResourceURI", &[], r);
        }
        if !self.selectors.is_empty() {
            encode_selectors(out, &self.selectors);
        }
        out.push_str("</wsa:ReferenceParameters></wst:ResourceCreated>");
    }
}

/// CreateResponse body: `wst:ResourceCreated` and, from Windows, the `rsp:Shell`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateResponse {
    /// The endpoint reference, when present.
    pub resource_created: Option<ResourceCreated>,
    /// The shell description, when present.
    pub shell: Option<Shell>,
}

impl CreateResponse {
    /// The new ShellId: the `ShellId` selector, else the Shell's ShellId.
    pub fn shell_id(&self) -> Option<&str> {
        self.resource_created
            .as_ref()
            .and_then(|r| r.selectors.iter().find(|s| s.name == "ShellId"))
            .map(|s| s.value.as_str())
            .or_else(|| self.shell.as_ref()?.shell_id.as_deref())
    }

    pub(crate) fn encode(&self, out: &mut String) {
        if let Some(r) = &self.resource_created {
            r.encode(out);
        }
        if let Some(s) = &self.shell {
            s.encode(out, false);
        }
    }
}

/// A resource representation: a typed shell, or anything else preserved raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `rsp:Shell`.
    Shell(Box<Shell>),
    /// Any other element (WinRM config, `rsp:Command` items, WMI instances).
    Raw(RawElement),
}

impl Item {
    pub(crate) fn decode(node: &Node<'_>) -> Result<Item, Error> {
        if node.is(ns::SHELL, "Shell") {
            Ok(Item::Shell(Box::new(Shell::decode(node)?)))
        } else {
            Ok(Item::Raw(RawElement::from_node(node)))
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        match self {
            Item::Shell(s) => s.encode(out, false),
            Item::Raw(r) => out.push_str(&r.xml),
        }
    }

    /// The shell, if this item is one.
    pub fn as_shell(&self) -> Option<&Shell> {
        match self {
            Item::Shell(s) => Some(s),
            Item::Raw(_) => None,
        }
    }
}

/// `wsman:Filter` of an Enumerate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// `Dialect` attribute, e.g. [`ns::SELECTOR_FILTER_DIALECT`].
    pub dialect: Option<String>,
    /// Selectors of a selector filter.
    pub selectors: Vec<Selector>,
    /// Text of a textual filter (WQL and similar); empty for selector filters.
    pub text: String,
}

/// `wsen:Enumerate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Enumerate {
    /// `wsman:OptimizeEnumeration` present.
    pub optimize: bool,
    /// `wsman:MaxElements`.
    pub max_elements: Option<u32>,
    /// `wsman:Filter`.
    pub filter: Option<Filter>,
}

impl Enumerate {
    /// Enumerate shells, optimized, up to 32000 items (as Windows clients do).
    pub fn shells() -> Self {
        Enumerate {
            optimize: true,
            max_elements: Some(32000),
            filter: None,
        }
    }

    pub(crate) fn decode(node: &Node<'_>) -> Result<Enumerate, Error> {
        let max_elements = match node.child(ns::WSMAN, "MaxElements") {
            Some(m) => Some(m.text_trim().parse::<u32>().map_err(|_| {
                Error::invalid(
                    "Envelope/Body/Enumerate/MaxElements",
                    m.offset,
                    "an unsigned integer",
                    m.text_trim(),
                )
            })?),
            None => None,
        };
        Ok(Enumerate {
            optimize: node.child(ns::WSMAN, "OptimizeEnumeration").is_some(),
            max_elements,
            filter: node.child(ns::WSMAN, "Filter").map(|f| Filter {
                dialect: f.attr("Dialect").map(|d| trim_xml(d).to_owned()),
                selectors: f
                    .child(ns::WSMAN, "SelectorSet")
                    .map(decode_selectors)
                    .unwrap_or_default(),
                text: f.text_trim().to_owned(),
            }),
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<wsen:Enumerate>");
        if self.optimize {
            out.push_str("<wsman:OptimizeEnumeration/>");
        }
        if let Some(m) = self.max_elements {
            text_element(out, "wsman:MaxElements", &[], &m.to_string());
        }
        if let Some(f) = &self.filter {
            out.push_str("<wsman:Filter");
            if let Some(d) = &f.dialect {
                out.push_str(" Dialect=\"");
                crate::xml::escape_attr(out, d);
                out.push('"');
            }
            out.push('>');
            crate::xml::escape_text(out, &f.text);
            if !f.selectors.is_empty() {
                encode_selectors(out, &f.selectors);
            }
            out.push_str("</wsman:Filter>");
        }
        out.push_str("</wsen:Enumerate>");
    }
}

/// `wsen:EnumerateResponse` or `wsen:PullResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnumerationItems {
    /// `wsen:EnumerationContext` (absent or empty when the sequence ended).
    pub context: Option<String>,
    /// Items (`wsman:Items` or `wsen:Items`).
    pub items: Vec<Item>,
    /// `EndOfSequence` present.
    pub end_of_sequence: bool,
}

impl EnumerationItems {
    pub(crate) fn decode(node: &Node<'_>) -> Result<EnumerationItems, Error> {
        let items_node = node
            .child(ns::WSMAN, "Items")
            .or_else(|| node.child(ns::ENUMERATION, "Items"));
        let mut items = Vec::new();
        if let Some(n) = items_node {
            for c in &n.children {
                items.push(Item::decode(c)?);
            }
        }
        Ok(EnumerationItems {
            context: node.child_text(ns::ENUMERATION, "EnumerationContext"),
            items,
            end_of_sequence: node.child(ns::WSMAN, "EndOfSequence").is_some()
                || node.child(ns::ENUMERATION, "EndOfSequence").is_some(),
        })
    }

    /// `pull`: PullResponse form (`wsen:Items`), else EnumerateResponse (`wsman:Items`).
    pub(crate) fn encode(&self, out: &mut String, pull: bool) {
        let (root, items, eos) = if pull {
            ("wsen:PullResponse", "wsen:Items", "wsen:EndOfSequence")
        } else {
            (
                "wsen:EnumerateResponse",
                "wsman:Items",
                "wsman:EndOfSequence",
            )
        };
        out.push('<');
        out.push_str(root);
        out.push('>');
        if let Some(c) = &self.context {
            text_element(out, "wsen:EnumerationContext", &[], c);
        }
        if !self.items.is_empty() {
            out.push('<');
            out.push_str(items);
            out.push('>');
            for i in &self.items {
                i.encode(out);
            }
            out.push_str("</");
            out.push_str(items);
            out.push('>');
        }
        if self.end_of_sequence {
            out.push('<');
            out.push_str(eos);
            out.push_str("/>");
        }
        out.push_str("</");
        out.push_str(root);
        out.push('>');
    }
}

/// `wsen:Pull`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pull {
    /// `wsen:EnumerationContext` from the previous response.
    pub context: String,
    /// `wsen:MaxElements`.
    pub max_elements: Option<u32>,
}

impl Pull {
    pub(crate) fn decode(node: &Node<'_>) -> Result<Pull, Error> {
        let max_elements = match node.child(ns::ENUMERATION, "MaxElements") {
            Some(m) => Some(m.text_trim().parse::<u32>().map_err(|_| {
                Error::invalid(
                    "Envelope/Body/Pull/MaxElements",
                    m.offset,
                    "an unsigned integer",
                    m.text_trim(),
                )
            })?),
            None => None,
        };
        Ok(Pull {
            context: node
                .child_text(ns::ENUMERATION, "EnumerationContext")
                .unwrap_or_default(),
            max_elements,
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<wsen:Pull>");
        text_element(out, "wsen:EnumerationContext", &[], &self.context);
        if let Some(m) = self.max_elements {
            text_element(out, "wsen:MaxElements", &[], &m.to_string());
        }
        out.push_str("</wsen:Pull>");
    }
}
