//! SOAP header: WS-Addressing and WS-Management header blocks.

use uuid::Uuid;

use crate::error::Error;
use crate::ns;
use crate::xml::{Node, RawElement, escape_attr, escape_text, parse_bool, text_element};

/// A `wsman:Selector` (`Name` attribute and text value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Selector name, e.g. `ShellId`.
    pub name: String,
    /// Selector value.
    pub value: String,
}

impl Selector {
    /// A selector.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Selector {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A `wsman:Option` of an `OptionSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOption {
    /// Option name, e.g. [`ns::option::PROTOCOL_VERSION`].
    pub name: String,
    /// Option value.
    pub value: String,
    /// `MustComply` attribute, when present.
    pub must_comply: Option<bool>,
}

/// `wsman:OptionSet`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionSet {
    /// `s:mustUnderstand` on the set.
    pub must_understand: Option<bool>,
    /// The options, in document order.
    pub options: Vec<WsOption>,
}

/// `wsman:Locale` or `wsmv:DataLocale` (`xml:lang` attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale {
    /// Language tag, e.g. `en-US`.
    pub lang: String,
    /// `s:mustUnderstand`, when present.
    pub must_understand: Option<bool>,
}

/// `wsman:MaxEnvelopeSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxEnvelopeSize {
    /// Size in bytes.
    pub value: u64,
    /// `s:mustUnderstand`, when present.
    pub must_understand: Option<bool>,
}

/// The SOAP header, with every WS-Addressing / WS-Management block typed and
/// anything else preserved in [`Header::unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// `wsa:To`.
    pub to: Option<String>,
    /// `wsa:ReplyTo/wsa:Address`.
    pub reply_to: Option<String>,
    /// `wsa:Action`.
    pub action: Option<String>,
    /// `wsa:MessageID`, as written (`uuid:...`).
    pub message_id: Option<String>,
    /// `wsa:RelatesTo`, as written (`uuid:...`).
    pub relates_to: Option<String>,
    /// `wsman:ResourceURI`.
    pub resource_uri: Option<String>,
    /// `wsman:SelectorSet` (empty when absent).
    pub selectors: Vec<Selector>,
    /// `wsman:OptionSet`.
    pub options: Option<OptionSet>,
    /// `wsman:OperationTimeout` (`xs:duration`, e.g. `PT20S`).
    pub operation_timeout: Option<String>,
    /// `wsman:MaxEnvelopeSize`.
    pub max_envelope_size: Option<MaxEnvelopeSize>,
    /// `wsman:Locale`.
    pub locale: Option<Locale>,
    /// `wsmv:DataLocale`.
    pub data_locale: Option<Locale>,
    /// `wsmv:SessionId`, as written (`uuid:...`).
    pub session_id: Option<String>,
    /// `wsmv:OperationID`, as written (`uuid:...`).
    pub operation_id: Option<String>,
    /// `wsmv:SequenceId`.
    pub sequence_id: Option<u64>,
    /// Every other header block, in document order (e.g. `wsmv:ActivityId`).
    pub unknown: Vec<RawElement>,
}

/// `uuid:XXXXXXXX-...` in upper case, the form Windows writes.
pub fn uuid_urn(id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    format!("uuid:{}", id.as_hyphenated().encode_upper(&mut buf))
}

/// Upper-case hyphenated UUID, the form Windows writes ShellId and CommandId in.
pub fn uuid_upper(id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    id.as_hyphenated().encode_upper(&mut buf).to_owned()
}

/// Parse `uuid:...` or a bare UUID.
pub fn parse_uuid_urn(s: &str) -> Option<Uuid> {
    let s = s.trim();
    let s = s
        .strip_prefix("uuid:")
        .or_else(|| s.strip_prefix("urn:uuid:"))
        .unwrap_or(s);
    Uuid::parse_str(s).ok()
}

/// Seconds in an `xs:duration` of the forms WinRM uses (`PT20S`,
/// `PT7200.000S`, `P0DT0H0M9S`). Years and months are refused (`None`), as is
/// anything malformed or negative.
pub fn duration_secs(s: &str) -> Option<f64> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut parse = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut next = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c)?;
            if pos < next || num.is_empty() {
                return None;
            }
            let v: f64 = num.parse().ok()?;
            total += v * units.get(pos)?.1;
            any = true;
            num.clear();
            next = pos + 1;
        }
        num.is_empty().then_some(())
    };
    parse(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        parse(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    any.then_some(total)
}

impl Header {
    /// A client request header shaped like the ones Windows accepts: the given
    /// `To`, `Action`, `ResourceURI` and `MessageID`, anonymous `ReplyTo`,
    /// `MaxEnvelopeSize` 153600 (mustUnderstand), `Locale`/`DataLocale` en-US
    /// and `OperationTimeout` PT20S. Adjust with the `with_*` methods.
    pub fn request(
        to: impl Into<String>,
        action: impl Into<String>,
        resource_uri: impl Into<String>,
        message_id: Uuid,
    ) -> Self {
        Header {
            to: Some(to.into()),
            reply_to: Some(ns::ANONYMOUS.to_owned()),
            action: Some(action.into()),
            message_id: Some(uuid_urn(message_id)),
            resource_uri: Some(resource_uri.into()),
            operation_timeout: Some("PT20S".to_owned()),
            max_envelope_size: Some(MaxEnvelopeSize {
                value: 153_600,
                must_understand: Some(true),
            }),
            locale: Some(Locale {
                lang: "en-US".to_owned(),
                must_understand: Some(false),
            }),
            data_locale: Some(Locale {
                lang: "en-US".to_owned(),
                must_understand: Some(false),
            }),
            ..Header::default()
        }
    }

    /// A server response header: `To` anonymous, the given `Action`, a
    /// `MessageID` and `RelatesTo` (the request's MessageID, as written).
    pub fn response(
        action: impl Into<String>,
        message_id: Uuid,
        relates_to: impl Into<String>,
    ) -> Self {
        Header {
            to: Some(ns::ANONYMOUS.to_owned()),
            action: Some(action.into()),
            message_id: Some(uuid_urn(message_id)),
            relates_to: Some(relates_to.into()),
            ..Header::default()
        }
    }

    /// Set `wsmv:SessionId`.
    pub fn with_session_id(mut self, id: Uuid) -> Self {
        self.session_id = Some(uuid_urn(id));
        self
    }

    /// Add a selector (e.g. `ShellId`).
    pub fn with_selector(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.selectors.push(Selector::new(name, value));
        self
    }

    /// Add the `ShellId` selector, formatted in upper case.
    pub fn with_shell_id(self, shell_id: Uuid) -> Self {
        self.with_selector("ShellId", uuid_upper(shell_id))
    }

    /// Add an option; creates the OptionSet (mustUnderstand) on first use.
    pub fn with_option(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
        must_comply: Option<bool>,
    ) -> Self {
        let set = self.options.get_or_insert_with(|| OptionSet {
            must_understand: Some(true),
            options: Vec::new(),
        });
        set.options.push(WsOption {
            name: name.into(),
            value: value.into(),
            must_comply,
        });
        self
    }

    /// Set `wsman:OperationTimeout` in whole seconds (`PT<n>S`).
    pub fn with_operation_timeout_secs(mut self, secs: u64) -> Self {
        self.operation_timeout = Some(format!("PT{secs}S"));
        self
    }

    /// Set `wsman:MaxEnvelopeSize` (mustUnderstand).
    pub fn with_max_envelope_size(mut self, bytes: u64) -> Self {
        self.max_envelope_size = Some(MaxEnvelopeSize {
            value: bytes,
            must_understand: Some(true),
        });
        self
    }

    /// Set `wsman:Locale` and `wsmv:DataLocale`.
    pub fn with_locale(mut self, locale: &str, data_locale: &str) -> Self {
        self.locale = Some(Locale {
            lang: locale.to_owned(),
            must_understand: Some(false),
        });
        self.data_locale = Some(Locale {
            lang: data_locale.to_owned(),
            must_understand: Some(false),
        });
        self
    }

    /// Set `wsa:RelatesTo` (for responses).
    pub fn with_relates_to(mut self, message_id: impl Into<String>) -> Self {
        self.relates_to = Some(message_id.into());
        self
    }

    /// Value of the selector `name`.
    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.value.as_str())
    }

    /// Value of the option `name`.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .as_ref()?
            .options
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.value.as_str())
    }

    /// `wsman:OperationTimeout` in seconds.
    pub fn operation_timeout_secs(&self) -> Option<f64> {
        duration_secs(self.operation_timeout.as_deref()?)
    }

    /// `wsa:MessageID` as a UUID.
    pub fn message_uuid(&self) -> Option<Uuid> {
        parse_uuid_urn(self.message_id.as_deref()?)
    }

    /// `wsa:RelatesTo` as a UUID.
    pub fn relates_to_uuid(&self) -> Option<Uuid> {
        parse_uuid_urn(self.relates_to.as_deref()?)
    }

    pub(crate) fn decode(node: &Node<'_>) -> Result<Header, Error> {
        let mut h = Header::default();
        for c in &node.children {
            let ns = c.ns.as_deref().unwrap_or("");
            let text = || Some(c.text_trim().to_owned());
            let slot_taken = match (ns, c.local.as_str()) {
                (ns::ADDRESSING, "To") => set(&mut h.to, text()),
                (ns::ADDRESSING, "Action") => set(&mut h.action, text()),
                (ns::ADDRESSING, "MessageID") => set(&mut h.message_id, text()),
                (ns::ADDRESSING, "RelatesTo") => set(&mut h.relates_to, text()),
                (ns::ADDRESSING, "ReplyTo") => set(
                    &mut h.reply_to,
                    Some(c.child_text(ns::ADDRESSING, "Address").unwrap_or_default()),
                ),
                (ns::WSMAN, "ResourceURI") => set(&mut h.resource_uri, text()),
                (ns::WSMAN, "OperationTimeout") => set(&mut h.operation_timeout, text()),
                (ns::WSMAN, "SelectorSet") if h.selectors.is_empty() => {
                    h.selectors = decode_selectors(c);
                    false
                }
                (ns::WSMAN, "OptionSet") if h.options.is_none() => {
                    let options = c
                        .children_named(ns::WSMAN, "Option")
                        .map(|o| WsOption {
                            name: o.attr("Name").unwrap_or_default().to_owned(),
                            value: o.text_trim().to_owned(),
                            must_comply: o.attr("MustComply").and_then(parse_bool),
                        })
                        .collect();
                    h.options = Some(OptionSet {
                        must_understand: c.must_understand(),
                        options,
                    });
                    false
                }
                (ns::WSMAN, "MaxEnvelopeSize") => {
                    let value = c.text_trim().parse::<u64>().map_err(|_| {
                        Error::invalid(
                            "Envelope/Header/MaxEnvelopeSize",
                            c.offset,
                            "an unsigned integer",
                            c.text_trim(),
                        )
                    })?;
                    set(
                        &mut h.max_envelope_size,
                        Some(MaxEnvelopeSize {
                            value,
                            must_understand: c.must_understand(),
                        }),
                    )
                }
                (ns::WSMAN, "Locale") => set(&mut h.locale, Some(decode_locale(c))),
                (ns::WSMV, "DataLocale") => set(&mut h.data_locale, Some(decode_locale(c))),
                (ns::WSMV, "SessionId") => set(&mut h.session_id, text()),
                (ns::WSMV, "OperationID") => set(&mut h.operation_id, text()),
                (ns::WSMV, "SequenceId") => {
                    let value = c.text_trim().parse::<u64>().map_err(|_| {
                        Error::invalid(
                            "Envelope/Header/SequenceId",
                            c.offset,
                            "an unsigned integer",
                            c.text_trim(),
                        )
                    })?;
                    set(&mut h.sequence_id, Some(value))
                }
                _ => true,
            };
            if slot_taken {
                h.unknown.push(RawElement::from_node(c));
            }
        }
        Ok(h)
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<s:Header>");
        if let Some(a) = &self.action {
            text_element(out, "wsa:Action", &[("s:mustUnderstand", "true")], a);
        }
        if let Some(l) = &self.data_locale {
            locale_element(out, "wsmv:DataLocale", l);
        }
        if let Some(l) = &self.locale {
            locale_element(out, "wsman:Locale", l);
        }
        if let Some(m) = &self.max_envelope_size {
            let v = m.value.to_string();
            match m.must_understand {
                Some(mu) => text_element(
                    out,
                    "wsman:MaxEnvelopeSize",
                    &[("s:mustUnderstand", bool_str(mu))],
                    &v,
                ),
                None => text_element(out, "wsman:MaxEnvelopeSize", &[], &v),
            }
        }
        if let Some(m) = &self.message_id {
            text_element(out, "wsa:MessageID", &[], m);
        }
        if let Some(t) = &self.operation_timeout {
            text_element(out, "wsman:OperationTimeout", &[], t);
        }
        if let Some(r) = &self.reply_to {
            out.push_str("<wsa:ReplyTo>");
            text_element(out, "wsa:Address", &[("s:mustUnderstand", "true")], r);
            out.push_str("</wsa:ReplyTo>");
        }
        if let Some(r) = &self.resource_uri {
            text_element(out, "wsman:ResourceURI", &[("s:mustUnderstand", "true")], r);
        }
        if let Some(s) = &self.session_id {
            text_element(out, "wsmv:SessionId", &[("s:mustUnderstand", "false")], s);
        }
        if let Some(t) = &self.to {
            text_element(out, "wsa:To", &[], t);
        }
        if let Some(r) = &self.relates_to {
            text_element(out, "wsa:RelatesTo", &[], r);
        }
        if let Some(o) = &self.operation_id {
            text_element(out, "wsmv:OperationID", &[("s:mustUnderstand", "false")], o);
        }
        if let Some(s) = self.sequence_id {
            text_element(out, "wsmv:SequenceId", &[], &s.to_string());
        }
        if let Some(set) = &self.options {
            out.push_str("<wsman:OptionSet");
            if let Some(mu) = set.must_understand {
                out.push_str(" s:mustUnderstand=\"");
                out.push_str(bool_str(mu));
                out.push('"');
            }
            out.push('>');
            for o in &set.options {
                match o.must_comply {
                    Some(mc) => text_element(
                        out,
                        "wsman:Option",
                        &[("MustComply", bool_str(mc)), ("Name", &o.name)],
                        &o.value,
                    ),
                    None => text_element(out, "wsman:Option", &[("Name", &o.name)], &o.value),
                }
            }
            out.push_str("</wsman:OptionSet>");
        }
        if !self.selectors.is_empty() {
            encode_selectors(out, &self.selectors);
        }
        for u in &self.unknown {
            out.push_str(&u.xml);
        }
        out.push_str("</s:Header>");
    }
}

/// Store `value` in `slot` unless it is already taken; returns whether it was taken.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    if slot.is_some() {
        return true;
    }
    *slot = value;
    false
}

pub(crate) fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn decode_locale(c: &Node<'_>) -> Locale {
    Locale {
        lang: c.attr_ns(ns::XML, "lang").unwrap_or_default().to_owned(),
        must_understand: c.must_understand(),
    }
}

fn locale_element(out: &mut String, qname: &str, l: &Locale) {
    out.push('<');
    out.push_str(qname);
    if let Some(mu) = l.must_understand {
        out.push_str(" s:mustUnderstand=\"");
        out.push_str(bool_str(mu));
        out.push('"');
    }
    out.push_str(" xml:lang=\"");
    escape_attr(out, &l.lang);
    out.push_str("\"/>");
}

pub(crate) fn decode_selectors(set: &Node<'_>) -> Vec<Selector> {
    set.children_named(ns::WSMAN, "Selector")
        .map(|s| Selector {
            name: s.attr("Name").unwrap_or_default().to_owned(),
            value: s.text_trim().to_owned(),
        })
        .collect()
}

pub(crate) fn encode_selectors(out: &mut String, selectors: &[Selector]) {
    out.push_str("<wsman:SelectorSet>");
    for s in selectors {
        out.push_str("<wsman:Selector Name=\"");
        escape_attr(out, &s.name);
        out.push_str("\">");
        escape_text(out, &s.value);
        out.push_str("</wsman:Selector>");
    }
    out.push_str("</wsman:SelectorSet>");
}

#[cfg(test)]
mod tests {
    use super::duration_secs;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("PT20S"), Some(20.0));
        assert_eq!(duration_secs("PT7200.000S"), Some(7200.0));
        assert_eq!(duration_secs("PT2147483.647S"), Some(2_147_483.647));
        assert_eq!(duration_secs("P0DT0H0M9S"), Some(9.0));
        assert_eq!(duration_secs("P1DT1H1M1.5S"), Some(90_061.5));
        assert_eq!(duration_secs(" PT1M "), Some(60.0));
        for bad in [
            "", "P", "PT", "20S", "PT20", "P1Y", "P1M", "PTS", "PT1S1M", "-PT1S", "PT1.2.3S",
        ] {
            assert_eq!(duration_secs(bad), None, "{bad}");
        }
    }
}
