//! SOAP 1.2 faults with WS-Management detail.

use crate::error::Error;
use crate::ns;
use crate::xml::{Node, RawElement, TextQName, escape_attr, escape_text, text_element, trim_xml};

/// A namespace-qualified name as found in `s:Value` (prefix resolved).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QName {
    /// Namespace the prefix was bound to (`None` if unprefixed or unbound).
    pub namespace: Option<String>,
    /// Local part (the whole text when the prefix could not be resolved).
    pub local: String,
}

impl QName {
    /// A qualified name.
    pub fn new(namespace: &str, local: &str) -> Self {
        QName {
            namespace: Some(namespace.to_owned()),
            local: local.to_owned(),
        }
    }

    /// Whether this is `{namespace}local`.
    pub fn is(&self, namespace: &str, local: &str) -> bool {
        self.local == local && self.namespace.as_deref() == Some(namespace)
    }

    /// Reads an `xs:QName` value (`s:Code/s:Value`, `s:Subcode/s:Value`) at `path`.
    ///
    /// A prefixed value must use a prefix declared in scope there: `wsman:InternalError`
    /// with no `xmlns:wsman` names no namespace, and keeping it as a local name would change
    /// its meaning once written back with the prefixes this crate declares, so it is
    /// [`Error::InvalidValue`] (as an XML Schema validator or WCF would refuse it).
    fn decode(node: &Node<'_>, path: &str) -> Result<QName, Error> {
        let text = node.text_trim();
        Ok(match (&node.text_qname, text.split_once(':')) {
            (Some(TextQName::Bound(ns)), Some((_, local))) => QName {
                namespace: Some(ns.as_ref().to_owned()),
                local: local.to_owned(),
            },
            (Some(TextQName::Unbound), _) => {
                return Err(Error::invalid(
                    path,
                    node.offset,
                    "a QName whose prefix is declared",
                    text,
                ));
            }
            _ => QName {
                namespace: None,
                local: text.to_owned(),
            },
        })
    }

    fn encode_value(&self, out: &mut String) {
        match &self.namespace {
            Some(n) => {
                let (prefix, declare) = match ns::prefix_for(n) {
                    Some(p) => (p, false),
                    None => ("q", true),
                };
                out.push_str("<s:Value");
                if declare {
                    out.push_str(" xmlns:q=\"");
                    escape_attr(out, n);
                    out.push('"');
                }
                out.push('>');
                out.push_str(prefix);
                out.push(':');
                escape_text(out, &self.local);
                out.push_str("</s:Value>");
            }
            None => text_element(out, "s:Value", &[], &self.local),
        }
    }
}

impl std::fmt::Display for QName {
    /// `{namespace}local`, or just `local` without a namespace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(n) => write!(f, "{{{n}}}{}", self.local),
            None => f.write_str(&self.local),
        }
    }
}

/// The provider part of a WSManFault message (`f:ProviderFault`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderFault {
    /// `provider` attribute, e.g. `Shell provider`.
    pub provider: Option<String>,
    /// `path` attribute, e.g. `%systemroot%\system32\WsmSvc.dll`.
    pub path: Option<String>,
    /// Text content of the provider fault (nested messages joined).
    pub text: String,
}

/// Microsoft `f:WSManFault` detail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsmanFault {
    /// `Code` attribute (a Win32/WinRM error number such as 2150858793).
    pub code: Option<u32>,
    /// `Machine` attribute.
    pub machine: Option<String>,
    /// `f:Message` text (from the provider fault when the message only wraps one).
    pub message: Option<String>,
    /// `f:Message/f:ProviderFault`.
    pub provider_fault: Option<ProviderFault>,
}

/// A SOAP 1.2 fault (`s:Fault`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// `s:Code/s:Value` (`s:Sender` or `s:Receiver`).
    pub code: QName,
    /// `s:Subcode/s:Value` chain, outermost first (e.g. `w:TimedOut`).
    pub subcodes: Vec<QName>,
    /// First `s:Reason/s:Text`.
    pub reason: Option<String>,
    /// `xml:lang` of that text (SOAP 1.2 wants one; written only when set).
    pub reason_lang: Option<String>,
    /// `s:Detail/wsman:FaultDetail` URI.
    pub fault_detail: Option<String>,
    /// `s:Detail/f:WSManFault`.
    pub wsman_fault: Option<WsmanFault>,
    /// Every child of `s:Detail`, raw. When non-empty, encoding writes these
    /// instead of [`Fault::fault_detail`] and [`Fault::wsman_fault`].
    pub detail_raw: Vec<RawElement>,
}

fn deep_text(node: &Node<'_>, out: &mut String) {
    let t = trim_xml(&node.text);
    if !t.is_empty() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    }
    for c in &node.children {
        deep_text(c, out);
    }
}

impl Fault {
    /// The innermost (most specific) subcode.
    pub fn subcode(&self) -> Option<&QName> {
        self.subcodes.last()
    }

    /// `s:Sender`: the request was at fault.
    pub fn is_sender(&self) -> bool {
        self.code.is(ns::SOAP, "Sender")
    }

    /// `s:Receiver`: the server was at fault (or timed out).
    pub fn is_receiver(&self) -> bool {
        self.code.is(ns::SOAP, "Receiver")
    }

    /// Whether a subcode is `{namespace}local`.
    pub fn has_subcode(&self, namespace: &str, local: &str) -> bool {
        self.subcodes.iter().any(|q| q.is(namespace, local))
    }

    /// `w:TimedOut`: no output within OperationTimeout. Windows sends it on an
    /// idle Receive; the client simply receives again.
    pub fn is_operation_timeout(&self) -> bool {
        self.has_subcode(ns::WSMAN, ns::fault_code::TIMED_OUT)
    }

    /// `w:InvalidSelectors`: the shell (or other selected resource) does not exist.
    pub fn is_invalid_selectors(&self) -> bool {
        self.has_subcode(ns::WSMAN, ns::fault_code::INVALID_SELECTORS)
    }

    /// The `f:WSManFault/@Code` number.
    pub fn wsman_code(&self) -> Option<u32> {
        self.wsman_fault.as_ref()?.code
    }

    /// The most specific human-readable message (WSManFault message, else reason).
    pub fn message(&self) -> Option<&str> {
        self.wsman_fault
            .as_ref()
            .and_then(|w| w.message.as_deref())
            .filter(|m| !m.is_empty())
            .or(self.reason.as_deref())
    }

    pub(crate) fn decode(node: &Node<'_>) -> Result<Fault, Error> {
        let mut f = Fault::default();
        if let Some(code) = node.child(ns::SOAP, "Code") {
            let mut path = "Envelope/Body/Fault/Code".to_owned();
            if let Some(v) = code.child(ns::SOAP, "Value") {
                f.code = QName::decode(v, &format!("{path}/Value"))?;
            }
            let mut sub = code.child(ns::SOAP, "Subcode");
            while let Some(s) = sub {
                path.push_str("/Subcode");
                if let Some(v) = s.child(ns::SOAP, "Value") {
                    f.subcodes.push(QName::decode(v, &format!("{path}/Value"))?);
                }
                sub = s.child(ns::SOAP, "Subcode");
            }
        }
        if let Some(t) = node
            .child(ns::SOAP, "Reason")
            .and_then(|r| r.child(ns::SOAP, "Text"))
        {
            f.reason = Some(t.text_trim().to_owned());
            f.reason_lang = t.attr_ns(ns::XML, "lang").map(str::to_owned);
        }
        if let Some(detail) = node.child(ns::SOAP, "Detail") {
            f.fault_detail = detail.child_text(ns::WSMAN, "FaultDetail");
            f.wsman_fault = detail.child(ns::WSMAN_FAULT, "WSManFault").map(|w| {
                let msg = w.child(ns::WSMAN_FAULT, "Message");
                let provider_fault = msg
                    .and_then(|m| m.child(ns::WSMAN_FAULT, "ProviderFault"))
                    .map(|p| {
                        let mut text = String::new();
                        deep_text(p, &mut text);
                        ProviderFault {
                            provider: p.attr("provider").map(str::to_owned),
                            path: p.attr("path").map(str::to_owned),
                            text,
                        }
                    });
                let message = msg.map(|m| {
                    let direct = m.text_trim();
                    if direct.is_empty() {
                        provider_fault
                            .as_ref()
                            .map(|p| p.text.clone())
                            .unwrap_or_default()
                    } else {
                        direct.to_owned()
                    }
                });
                WsmanFault {
                    code: w.attr("Code").and_then(|c| trim_xml(c).parse().ok()),
                    machine: w.attr("Machine").map(str::to_owned),
                    message,
                    provider_fault,
                }
            });
            f.detail_raw = detail.children.iter().map(RawElement::from_node).collect();
        }
        Ok(f)
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<s:Fault><s:Code>");
        self.code.encode_value(out);
        for s in &self.subcodes {
            out.push_str("<s:Subcode>");
            s.encode_value(out);
        }
        for _ in &self.subcodes {
            out.push_str("</s:Subcode>");
        }
        out.push_str("</s:Code>");
        if let Some(r) = &self.reason {
            // The language as decoded: a Text without `xml:lang` stays without one.
            let lang: Vec<(&str, &str)> = self
                .reason_lang
                .as_deref()
                .map(|l| ("xml:lang", l))
                .into_iter()
                .collect();
            out.push_str("<s:Reason>");
            text_element(out, "s:Text", &lang, r);
            out.push_str("</s:Reason>");
        }
        if !self.detail_raw.is_empty() {
            out.push_str("<s:Detail>");
            for d in &self.detail_raw {
                out.push_str(&d.xml);
            }
            out.push_str("</s:Detail>");
        } else if self.fault_detail.is_some() || self.wsman_fault.is_some() {
            out.push_str("<s:Detail>");
            if let Some(d) = &self.fault_detail {
                text_element(out, "wsman:FaultDetail", &[], d);
            }
            if let Some(w) = &self.wsman_fault {
                out.push_str("<f:WSManFault");
                if let Some(c) = w.code {
                    out.push_str(" Code=\"");
                    out.push_str(&c.to_string());
                    out.push('"');
                }
                if let Some(m) = &w.machine {
                    out.push_str(" Machine=\"");
                    escape_attr(out, m);
                    out.push('"');
                }
                out.push('>');
                if w.message.is_some() || w.provider_fault.is_some() {
                    out.push_str("<f:Message>");
                    match &w.provider_fault {
                        Some(p) => {
                            out.push_str("<f:ProviderFault");
                            if let Some(v) = &p.provider {
                                out.push_str(" provider=\"");
                                escape_attr(out, v);
                                out.push('"');
                            }
                            if let Some(v) = &p.path {
                                out.push_str(" path=\"");
                                escape_attr(out, v);
                                out.push('"');
                            }
                            out.push('>');
                            escape_text(out, &p.text);
                            out.push_str("</f:ProviderFault>");
                        }
                        None => escape_text(out, w.message.as_deref().unwrap_or_default()),
                    }
                    out.push_str("</f:Message>");
                }
                out.push_str("</f:WSManFault>");
            }
            out.push_str("</s:Detail>");
        }
        out.push_str("</s:Fault>");
    }
}
