//! The SOAP envelope and its typed body.

use std::borrow::Cow;

use uuid::Uuid;

use crate::error::Error;
use crate::fault::Fault;
use crate::header::{Header, parse_uuid_urn, uuid_upper};
use crate::limits::Limits;
use crate::ns::{self, action};
use crate::transfer::{CreateResponse, Enumerate, EnumerationItems, Item, Pull, ResourceCreated};
use crate::winrs::{
    CommandLine, Connect, ConnectResponse, Disconnect, Receive, ReceiveResponse, Send, Shell,
    Signal, Stream, decode_command_response, encode_b64, encode_command_response,
};
use crate::xml::{self, Node, RawElement};

/// The body of an envelope: one variant per WS-Management / WinRS operation
/// and response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// WS-Transfer Create of a shell.
    Create(Shell),
    /// CreateResponse.
    CreateResponse(CreateResponse),
    /// WS-Transfer Delete (empty body).
    Delete,
    /// DeleteResponse (empty body).
    DeleteResponse,
    /// WS-Transfer Get (empty body).
    Get,
    /// GetResponse: the resource (a shell, or the WinRM config raw).
    GetResponse(Item),
    /// WS-Transfer Put.
    Put(Item),
    /// PutResponse (`None` when the body is empty).
    PutResponse(Option<Item>),
    /// WS-Enumeration Enumerate.
    Enumerate(Enumerate),
    /// EnumerateResponse.
    EnumerateResponse(EnumerationItems),
    /// WS-Enumeration Pull.
    Pull(Pull),
    /// PullResponse.
    PullResponse(EnumerationItems),
    /// WinRS Command.
    Command(CommandLine),
    /// CommandResponse with the CommandId.
    CommandResponse {
        /// The command id.
        command_id: String,
    },
    /// WinRS Send.
    Send(Send),
    /// SendResponse.
    SendResponse,
    /// WinRS Receive.
    Receive(Receive),
    /// ReceiveResponse.
    ReceiveResponse(ReceiveResponse),
    /// WinRS Signal.
    Signal(Signal),
    /// SignalResponse.
    SignalResponse,
    /// Disconnect.
    Disconnect(Disconnect),
    /// DisconnectResponse (empty body).
    DisconnectResponse,
    /// Reconnect (empty body).
    Reconnect,
    /// ReconnectResponse (empty body).
    ReconnectResponse,
    /// Connect.
    Connect(Connect),
    /// ConnectResponse.
    ConnectResponse(ConnectResponse),
    /// A SOAP fault.
    Fault(Fault),
    /// An empty body whose action this crate does not know.
    Empty,
    /// A body this crate does not type, preserved.
    Unknown {
        /// Every child of `s:Body`.
        elements: Vec<RawElement>,
    },
}

/// Where in an envelope a PSRP payload travels: see [`Envelope::psrp_payloads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PsrpPart<'a> {
    /// The `creationXml` of a Create's `rsp:Shell`.
    CreationXml,
    /// The first `rsp:Arguments` of a Command's `rsp:CommandLine` (its
    /// [`CommandLine::psrp_payload`]).
    Arguments {
        /// The command line's `CommandId` attribute.
        command_id: Option<&'a str>,
    },
    /// One `rsp:Stream` of a Send or ReceiveResponse.
    Stream {
        /// The stream's `Name` (`stdin`, `pr`, `stdout`, ...).
        name: &'a str,
        /// The stream's `CommandId`; `None` for RunspacePool-level data.
        command_id: Option<&'a str>,
    },
    /// The `connectXml` of a Connect.
    ConnectXml,
    /// The `connectResponseXml` of a ConnectResponse.
    ConnectResponseXml,
}

impl<'a> PsrpPart<'a> {
    /// The local name of the element the payload is in (`creationXml`, `Arguments`,
    /// `connectXml`, `connectResponseXml`), or a stream's `Name`.
    pub fn name(&self) -> &'a str {
        match self {
            PsrpPart::CreationXml => "creationXml",
            PsrpPart::Arguments { .. } => "Arguments",
            PsrpPart::Stream { name, .. } => name,
            PsrpPart::ConnectXml => "connectXml",
            PsrpPart::ConnectResponseXml => "connectResponseXml",
        }
    }
}

/// One PSRP payload of an envelope (fragment bytes, base64-decoded), with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsrpPayload<'a> {
    /// The element or stream the payload came from.
    pub part: PsrpPart<'a>,
    /// The bytes: borrowed from the envelope, or decoded for a Command's `rsp:Arguments`
    /// (which the envelope keeps as text).
    pub data: Cow<'a, [u8]>,
}

/// A SOAP 1.2 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The header blocks.
    pub header: Header,
    /// The typed body.
    pub body: Body,
    /// Further body children after the one typed in [`Envelope::body`], preserved.
    pub body_extra: Vec<RawElement>,
}

/// Actions whose body must carry an element.
fn body_required(action: &str) -> Option<&'static str> {
    Some(match action {
        action::CREATE => "rsp:Shell",
        action::COMMAND => "rsp:CommandLine",
        action::COMMAND_RESPONSE => "rsp:CommandResponse",
        action::SEND => "rsp:Send",
        action::RECEIVE => "rsp:Receive",
        action::RECEIVE_RESPONSE => "rsp:ReceiveResponse",
        action::SIGNAL => "rsp:Signal",
        action::CONNECT => "rsp:Connect",
        action::ENUMERATE => "wsen:Enumerate",
        action::PULL => "wsen:Pull",
        action::CREATE_RESPONSE => "wst:ResourceCreated",
        action::GET_RESPONSE => "a resource",
        action::PUT => "a resource",
        _ => return None,
    })
}

/// Turn the raw bytes into UTF-8 text: UTF-8 (BOM optional) or UTF-16 LE/BE.
fn to_text(bytes: &[u8]) -> Result<Cow<'_, str>, Error> {
    let utf16 = |be: bool, body: &[u8], skip: u64| -> Result<Cow<'_, str>, Error> {
        if !body.len().is_multiple_of(2) {
            return Err(Error::Encoding {
                offset: skip + body.len() as u64 - 1,
                reason: "odd number of bytes in utf-16 input",
            });
        }
        let units = body.chunks_exact(2).map(|c| match c {
            [a, b] if be => u16::from_be_bytes([*a, *b]),
            [a, b] => u16::from_le_bytes([*a, *b]),
            _ => 0,
        });
        let mut s = String::with_capacity(body.len() / 2);
        for (i, r) in char::decode_utf16(units).enumerate() {
            match r {
                Ok(c) => s.push(c),
                Err(_) => {
                    return Err(Error::Encoding {
                        offset: skip + 2 * i as u64,
                        reason: "unpaired utf-16 surrogate",
                    });
                }
            }
        }
        Ok(Cow::Owned(s))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest, 3),
        [0xFF, 0xFE, rest @ ..] => utf16(false, rest, 2),
        [0xFE, 0xFF, rest @ ..] => utf16(true, rest, 2),
        [b'<', 0, _, 0, ..] => utf16(false, bytes, 0),
        [0, b'<', 0, _, ..] => utf16(true, bytes, 0),
        _ => utf8(bytes, 0),
    }
}

fn utf8(bytes: &[u8], skip: u64) -> Result<Cow<'_, str>, Error> {
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| Error::Encoding {
            offset: skip + e.valid_up_to() as u64,
            reason: "invalid utf-8",
        })
}

impl Envelope {
    /// An envelope.
    pub fn new(header: Header, body: Body) -> Self {
        Envelope {
            header,
            body,
            body_extra: Vec::new(),
        }
    }

    /// Decode with the default [`Limits`].
    pub fn decode(bytes: &[u8]) -> Result<Envelope, Error> {
        Envelope::decode_with(bytes, &Limits::default())
    }

    /// Decode UTF-8 or UTF-16 (with BOM) bytes, enforcing `limits`.
    pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Envelope, Error> {
        if bytes.len() > limits.max_envelope_bytes {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit: limits.max_envelope_bytes,
            });
        }
        let text = to_text(bytes)?;
        let root = xml::parse(&text, limits)?;
        if !root.is(ns::SOAP, "Envelope") {
            return Err(Error::NotEnvelope {
                offset: root.offset,
                found: root.display_name(),
            });
        }
        let header = match root.child(ns::SOAP, "Header") {
            Some(h) => Header::decode(h)?,
            None => Header::default(),
        };
        let body_node = root.child(ns::SOAP, "Body").ok_or(Error::Missing {
            path: "Envelope".to_owned(),
            offset: root.offset,
            expected: "s:Body",
        })?;
        let (body, body_extra) = decode_body(body_node, header.action.as_deref(), limits)?;
        Ok(Envelope {
            header,
            body,
            body_extra,
        })
    }

    /// Encode as UTF-8 XML (no XML declaration), with the prefixes Windows
    /// clients use: `s`, `wsa`, `wsman`, `wsmv`, `rsp`, `wst`, `wsen`, `f`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(1024 + self.payload_len() * 4 / 3);
        out.push_str("<s:Envelope xmlns:s=\"");
        out.push_str(ns::SOAP);
        for (p, n) in [
            ("wsa", ns::ADDRESSING),
            ("wsman", ns::WSMAN),
            ("wsmv", ns::WSMV),
            ("rsp", ns::SHELL),
            ("wst", ns::TRANSFER),
            ("wsen", ns::ENUMERATION),
            ("f", ns::WSMAN_FAULT),
        ] {
            out.push_str("\" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
            out.push_str(n);
        }
        out.push_str("\">");
        self.header.encode(&mut out);
        let mut body = String::new();
        self.encode_body(&mut body);
        if body.is_empty() && self.body_extra.is_empty() {
            out.push_str("<s:Body/>");
        } else {
            out.push_str("<s:Body>");
            out.push_str(&body);
            for e in &self.body_extra {
                out.push_str(&e.xml);
            }
            out.push_str("</s:Body>");
        }
        out.push_str("</s:Envelope>");
        out
    }

    fn payload_len(&self) -> usize {
        self.streams().map(|s| s.data.len()).sum()
    }

    fn encode_body(&self, out: &mut String) {
        match &self.body {
            Body::Create(s) => s.encode(out, true),
            Body::CreateResponse(c) => c.encode(out),
            Body::GetResponse(i) | Body::Put(i) | Body::PutResponse(Some(i)) => i.encode(out),
            Body::Enumerate(e) => e.encode(out),
            Body::EnumerateResponse(e) => e.encode(out, false),
            Body::Pull(p) => p.encode(out),
            Body::PullResponse(e) => e.encode(out, true),
            Body::Command(c) => c.encode(out),
            Body::CommandResponse { command_id } => encode_command_response(out, command_id),
            Body::Send(s) => s.encode(out),
            Body::SendResponse => out.push_str("<rsp:SendResponse/>"),
            Body::Receive(r) => r.encode(out),
            Body::ReceiveResponse(r) => r.encode(out),
            Body::Signal(s) => s.encode(out),
            Body::SignalResponse => out.push_str("<rsp:SignalResponse/>"),
            Body::Disconnect(d) => d.encode(out),
            Body::Connect(c) => c.encode(out),
            Body::ConnectResponse(c) => c.encode(out),
            Body::Fault(f) => f.encode(out),
            Body::Unknown { elements } => {
                for e in elements {
                    out.push_str(&e.xml);
                }
            }
            Body::Delete
            | Body::DeleteResponse
            | Body::Get
            | Body::PutResponse(None)
            | Body::DisconnectResponse
            | Body::Reconnect
            | Body::ReconnectResponse
            | Body::Empty => {}
        }
    }

    /// `wsa:Action`.
    pub fn action(&self) -> Option<&str> {
        self.header.action.as_deref()
    }

    /// `wsman:ResourceURI`.
    pub fn resource_uri(&self) -> Option<&str> {
        self.header.resource_uri.as_deref()
    }

    /// The ShellId: the `ShellId` selector, else the one in a Create body,
    /// CreateResponse or GetResponse shell.
    pub fn shell_id(&self) -> Option<&str> {
        if let Some(s) = self.header.selector("ShellId") {
            return Some(s);
        }
        match &self.body {
            Body::Create(s) => s.shell_id.as_deref(),
            Body::GetResponse(Item::Shell(s)) | Body::Put(Item::Shell(s)) => s.shell_id.as_deref(),
            Body::CreateResponse(c) => c.shell_id(),
            _ => None,
        }
    }

    /// [`Envelope::shell_id`] parsed as a UUID (bare or `uuid:` form).
    pub fn shell_uuid(&self) -> Option<Uuid> {
        parse_uuid_urn(self.shell_id()?)
    }

    /// [`Envelope::command_id`] parsed as a UUID.
    pub fn command_uuid(&self) -> Option<Uuid> {
        parse_uuid_urn(self.command_id()?)
    }

    /// The CommandId of a Command, CommandResponse, Send, Receive, Signal,
    /// Connect or ReceiveResponse (first stream, else the CommandState).
    pub fn command_id(&self) -> Option<&str> {
        match &self.body {
            Body::Command(c) => c.command_id.as_deref(),
            Body::CommandResponse { command_id } => Some(command_id),
            Body::Send(s) => s.streams.first()?.command_id.as_deref(),
            Body::Receive(r) => r.command_id.as_deref(),
            Body::Signal(s) => s.command_id.as_deref(),
            Body::Connect(c) => c.command_id.as_deref(),
            Body::ReceiveResponse(r) => r
                .streams
                .iter()
                .find_map(|s| s.command_id.as_deref())
                .or_else(|| r.command_state.as_ref()?.command_id.as_deref()),
            _ => None,
        }
    }

    /// The streams of a Send or ReceiveResponse (empty for anything else).
    pub fn streams(&self) -> std::slice::Iter<'_, Stream> {
        match &self.body {
            Body::Send(s) => s.streams.iter(),
            Body::ReceiveResponse(r) => r.streams.iter(),
            _ => [].iter(),
        }
    }

    /// Every PSRP payload the body carries, in document order: a Create's `creationXml`, a
    /// Command's first `rsp:Arguments` (base64-decoded), each `rsp:Stream` of a Send or
    /// ReceiveResponse, a Connect's `connectXml` or a ConnectResponse's `connectResponseXml`.
    /// Empty for any other body, and when the element is absent (a Create without
    /// `creationXml`, a Command without `rsp:Arguments`, a Connect to a command).
    ///
    /// The envelope does not say which shell it belongs to, so this is structural: the streams
    /// of a WinRS `cmd` shell are listed too (as console bytes), and a `cmd` command line whose
    /// first argument is not base64 is an error. Callers that may see `cmd` shells decide
    /// themselves (e.g. by [`Envelope::resource_uri`] or the CreateResponse's shell).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when a Command's first `rsp:Arguments` is not base64.
    pub fn psrp_payloads(&self) -> Result<Vec<PsrpPayload<'_>>, Error> {
        fn one<'a>(part: PsrpPart<'a>, data: &'a Option<Vec<u8>>) -> Vec<PsrpPayload<'a>> {
            data.iter()
                .map(|x| PsrpPayload {
                    part,
                    data: Cow::Borrowed(x.as_slice()),
                })
                .collect()
        }
        Ok(match &self.body {
            Body::Create(shell) => one(PsrpPart::CreationXml, &shell.creation_xml),
            Body::Command(c) if !c.arguments.is_empty() => vec![PsrpPayload {
                part: PsrpPart::Arguments {
                    command_id: c.command_id.as_deref(),
                },
                data: Cow::Owned(c.psrp_payload()?),
            }],
            Body::Send(_) | Body::ReceiveResponse(_) => self
                .streams()
                .map(|s| PsrpPayload {
                    part: PsrpPart::Stream {
                        name: &s.name,
                        command_id: s.command_id.as_deref(),
                    },
                    data: Cow::Borrowed(s.data.as_slice()),
                })
                .collect(),
            Body::Connect(c) => one(PsrpPart::ConnectXml, &c.connect_xml),
            Body::ConnectResponse(c) => one(PsrpPart::ConnectResponseXml, &c.connect_response_xml),
            _ => Vec::new(),
        })
    }

    /// Replaces the bytes of the payload at `index` in [`Envelope::psrp_payloads`]'s list
    /// (a Command's `rsp:Arguments` is re-encoded as base64). Returns `false`, changing
    /// nothing, when there is no payload at `index`.
    pub fn set_psrp_payload(&mut self, index: usize, data: Vec<u8>) -> bool {
        let slot = match &mut self.body {
            Body::Send(s) => s.streams.get_mut(index).map(|s| &mut s.data),
            Body::ReceiveResponse(r) => r.streams.get_mut(index).map(|s| &mut s.data),
            _ if index != 0 => None,
            Body::Command(c) => {
                let Some(arg) = c.arguments.first_mut() else {
                    return false;
                };
                arg.clear();
                encode_b64(arg, &data);
                return true;
            }
            Body::Create(shell) => shell.creation_xml.as_mut(),
            Body::Connect(c) => c.connect_xml.as_mut(),
            Body::ConnectResponse(c) => c.connect_response_xml.as_mut(),
            _ => None,
        };
        match slot {
            Some(slot) => {
                *slot = data;
                true
            }
            None => false,
        }
    }

    /// The fault, if the body is one.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.body {
            Body::Fault(f) => Some(f),
            _ => None,
        }
    }

    /// Consume the envelope, taking its fault.
    pub fn into_fault(self) -> Option<Fault> {
        match self.body {
            Body::Fault(f) => Some(f),
            _ => None,
        }
    }
}

/// Body constructors for the client requests a session sends.
impl Body {
    /// Create a PowerShell RunspacePool shell.
    pub fn create_powershell(shell_id: Uuid, creation_xml: Vec<u8>) -> Body {
        Body::Create(Shell::powershell(shell_id, creation_xml))
    }

    /// Start a PSRP pipeline (CREATE_PIPELINE payload in `Arguments`).
    pub fn command_psrp(command_id: Uuid, payload: &[u8]) -> Body {
        Body::Command(CommandLine::psrp(command_id, payload))
    }

    /// Send one chunk of `stream` (`stdin` or `pr`) to the shell (`None`) or a command.
    pub fn send(stream: &str, command_id: Option<Uuid>, data: Vec<u8>) -> Body {
        Body::Send(Send {
            streams: vec![Stream::new(stream, command_id, data)],
        })
    }

    /// Receive `stdout` from the shell (`None`) or a command.
    pub fn receive(command_id: Option<Uuid>) -> Body {
        Body::Receive(Receive::stdout(command_id))
    }

    /// Signal a command with `code` (see [`ns::signal`]).
    pub fn signal(command_id: Option<Uuid>, code: &str) -> Body {
        Body::Signal(Signal::new(command_id, code))
    }

    /// Connect to a disconnected RunspacePool with PSRP `connectXml`.
    pub fn connect(connect_xml: Vec<u8>) -> Body {
        Body::Connect(Connect {
            command_id: None,
            connect_xml: Some(connect_xml),
        })
    }

    /// Connect to a disconnected command.
    pub fn connect_command(command_id: Uuid) -> Body {
        Body::Connect(Connect {
            command_id: Some(uuid_upper(command_id)),
            connect_xml: None,
        })
    }

    /// Disconnect, optionally with the server-side idle timeout (`xs:duration`).
    pub fn disconnect(idle_timeout: Option<String>) -> Body {
        Body::Disconnect(Disconnect { idle_timeout })
    }

    /// Enumerate shells.
    pub fn enumerate_shells() -> Body {
        Body::Enumerate(Enumerate::shells())
    }
}

fn decode_body(
    body: &Node<'_>,
    action: Option<&str>,
    limits: &Limits,
) -> Result<(Body, Vec<RawElement>), Error> {
    let action = action.unwrap_or("");
    let Some(first) = body.children.first() else {
        if let Some(expected) = body_required(action) {
            return Err(Error::Missing {
                path: "Envelope/Body".to_owned(),
                offset: body.offset,
                expected,
            });
        }
        let b = match action {
            action::DELETE => Body::Delete,
            action::DELETE_RESPONSE => Body::DeleteResponse,
            action::GET => Body::Get,
            action::PUT_RESPONSE => Body::PutResponse(None),
            action::SEND_RESPONSE => Body::SendResponse,
            action::SIGNAL_RESPONSE => Body::SignalResponse,
            action::DISCONNECT => Body::Disconnect(Disconnect::default()),
            action::DISCONNECT_RESPONSE => Body::DisconnectResponse,
            action::RECONNECT => Body::Reconnect,
            action::RECONNECT_RESPONSE => Body::ReconnectResponse,
            action::CONNECT_RESPONSE => Body::ConnectResponse(ConnectResponse::default()),
            _ => Body::Empty,
        };
        return Ok((b, Vec::new()));
    };
    let mut used = 1;
    let ns = first.ns.as_deref().unwrap_or("");
    let b = match (ns, first.local.as_str()) {
        (ns::SOAP, "Fault") => Body::Fault(Fault::decode(first)?),
        (ns::TRANSFER, "ResourceCreated") => {
            let shell = match body.children.get(1) {
                Some(s) if s.is(ns::SHELL, "Shell") => {
                    used = 2;
                    Some(Shell::decode(s)?)
                }
                _ => None,
            };
            Body::CreateResponse(CreateResponse {
                resource_created: Some(ResourceCreated::decode(first)),
                shell,
            })
        }
        (ns::SHELL, "Shell") => match action {
            action::GET_RESPONSE => Body::GetResponse(Item::Shell(Box::new(Shell::decode(first)?))),
            action::PUT => Body::Put(Item::Shell(Box::new(Shell::decode(first)?))),
            action::PUT_RESPONSE => {
                Body::PutResponse(Some(Item::Shell(Box::new(Shell::decode(first)?))))
            }
            action::CREATE_RESPONSE => Body::CreateResponse(CreateResponse {
                resource_created: None,
                shell: Some(Shell::decode(first)?),
            }),
            _ => Body::Create(Shell::decode(first)?),
        },
        (ns::SHELL, "CommandLine") => Body::Command(CommandLine::decode(first)),
        (ns::SHELL, "CommandResponse") => Body::CommandResponse {
            command_id: decode_command_response(first)?,
        },
        (ns::SHELL, "Send") => Body::Send(Send::decode(first, limits)?),
        (ns::SHELL, "SendResponse") => Body::SendResponse,
        (ns::SHELL, "Receive") => Body::Receive(Receive::decode(first)?),
        (ns::SHELL, "ReceiveResponse") => {
            Body::ReceiveResponse(ReceiveResponse::decode(first, limits)?)
        }
        (ns::SHELL, "Signal") => Body::Signal(Signal::decode(first)),
        (ns::SHELL, "SignalResponse") => Body::SignalResponse,
        (ns::SHELL, "Disconnect") => Body::Disconnect(Disconnect::decode(first)),
        (ns::SHELL, "DisconnectResponse") => Body::DisconnectResponse,
        (ns::SHELL, "Reconnect") => Body::Reconnect,
        (ns::SHELL, "ReconnectResponse") => Body::ReconnectResponse,
        (ns::SHELL, "Connect") => Body::Connect(Connect::decode(first)?),
        (ns::SHELL, "ConnectResponse") => Body::ConnectResponse(ConnectResponse::decode(first)?),
        (ns::ENUMERATION, "Enumerate") => Body::Enumerate(Enumerate::decode(first)?),
        (ns::ENUMERATION, "EnumerateResponse") => {
            Body::EnumerateResponse(EnumerationItems::decode(first)?)
        }
        (ns::ENUMERATION, "Pull") => Body::Pull(Pull::decode(first)?),
        (ns::ENUMERATION, "PullResponse") => Body::PullResponse(EnumerationItems::decode(first)?),
        _ => match action {
            action::GET_RESPONSE => Body::GetResponse(Item::Raw(RawElement::from_node(first))),
            action::PUT => Body::Put(Item::Raw(RawElement::from_node(first))),
            action::PUT_RESPONSE => {
                Body::PutResponse(Some(Item::Raw(RawElement::from_node(first))))
            }
            _ => {
                used = body.children.len();
                Body::Unknown {
                    elements: body.children.iter().map(RawElement::from_node).collect(),
                }
            }
        },
    };
    let extra = body
        .children
        .iter()
        .skip(used)
        .map(RawElement::from_node)
        .collect();
    Ok((b, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winrs::CommandState;

    const CID: &str = "F91BD61F-CEC7-47A3-8CE3-DE7EB7AA5773";

    fn cid() -> Uuid {
        Uuid::parse_str(CID).expect("uuid")
    }

    /// The envelope after an encode/decode trip, so the payloads come from real XML.
    fn wire(body: Body) -> Envelope {
        let env = Envelope::new(Header::default(), body);
        Envelope::decode(env.encode().as_bytes()).expect("decodes")
    }

    fn parts(env: &Envelope) -> Vec<(PsrpPart<'_>, Vec<u8>)> {
        env.psrp_payloads()
            .expect("payloads")
            .into_iter()
            .map(|p| (p.part, p.data.into_owned()))
            .collect()
    }

    #[test]
    fn every_body_that_carries_psrp_lists_it() {
        let env = wire(Body::create_powershell(cid(), b"init".to_vec()));
        assert_eq!(parts(&env), [(PsrpPart::CreationXml, b"init".to_vec())]);

        let env = wire(Body::command_psrp(cid(), b"\x00pipeline"));
        assert_eq!(
            parts(&env),
            [(
                PsrpPart::Arguments {
                    command_id: Some(CID)
                },
                b"\x00pipeline".to_vec()
            )]
        );
        let p = env.psrp_payloads().expect("payloads");
        assert!(matches!(p[0].data, Cow::Owned(_)));

        let env = wire(Body::connect(b"connect".to_vec()));
        assert_eq!(parts(&env), [(PsrpPart::ConnectXml, b"connect".to_vec())]);

        let env = wire(Body::ConnectResponse(ConnectResponse {
            input_streams: Some("stdin pr".into()),
            output_streams: Some("stdout".into()),
            connect_response_xml: Some(b"answer".to_vec()),
        }));
        assert_eq!(
            parts(&env),
            [(PsrpPart::ConnectResponseXml, b"answer".to_vec())]
        );
    }

    #[test]
    fn streams_come_in_order_with_name_and_command_id() {
        let env = wire(Body::Send(Send {
            streams: vec![
                Stream::new("stdin", Some(cid()), b"one".to_vec()),
                Stream::new("pr", None, b"two".to_vec()),
            ],
        }));
        assert_eq!(
            parts(&env),
            [
                (
                    PsrpPart::Stream {
                        name: "stdin",
                        command_id: Some(CID)
                    },
                    b"one".to_vec()
                ),
                (
                    PsrpPart::Stream {
                        name: "pr",
                        command_id: None
                    },
                    b"two".to_vec()
                ),
            ]
        );
        let p = env.psrp_payloads().expect("payloads");
        assert!(p.iter().all(|p| matches!(p.data, Cow::Borrowed(_))));
        assert_eq!(p[0].part.name(), "stdin");

        let env = wire(Body::ReceiveResponse(ReceiveResponse {
            streams: vec![
                Stream::new("stdout", None, b"a".to_vec()),
                Stream::new("stdout", Some(cid()), b"b".to_vec()),
            ],
            command_state: Some(CommandState {
                command_id: Some(CID.to_owned()),
                state: ns::command_state::DONE.to_owned(),
                exit_code: Some(0),
            }),
            extra: Vec::new(),
        }));
        let got: Vec<_> = parts(&env)
            .into_iter()
            .map(|(p, d)| (p.name(), d))
            .collect();
        assert_eq!(got, [("stdout", b"a".to_vec()), ("stdout", b"b".to_vec())]);
    }

    #[test]
    fn absent_elements_and_other_bodies_carry_nothing() {
        for body in [
            Body::Create(Shell::cmd()),
            Body::Command(CommandLine::winrs("dir", Vec::new())),
            Body::connect_command(cid()),
            Body::ConnectResponse(ConnectResponse::default()),
            Body::Send(Send::default()),
            Body::receive(Some(cid())),
            Body::signal(Some(cid()), ns::signal::PS_CTRL_C),
            Body::CommandResponse {
                command_id: CID.to_owned(),
            },
            Body::Delete,
        ] {
            let env = wire(body);
            assert_eq!(parts(&env), [], "{:?}", env.body);
        }
    }

    #[test]
    fn command_arguments_that_are_not_base64_are_an_error() {
        let env = wire(Body::Command(CommandLine::winrs(
            "cmd.exe",
            vec!["/c dir".to_owned()],
        )));
        let err = env.psrp_payloads().expect_err("not base64");
        assert!(matches!(err, Error::InvalidValue { .. }), "{err:?}");
    }

    #[test]
    fn set_psrp_payload_replaces_the_listed_payload() {
        let bodies = [
            Body::create_powershell(cid(), b"old".to_vec()),
            Body::command_psrp(cid(), b"old"),
            Body::connect(b"old".to_vec()),
            Body::ConnectResponse(ConnectResponse {
                connect_response_xml: Some(b"old".to_vec()),
                ..ConnectResponse::default()
            }),
            Body::Send(Send {
                streams: vec![
                    Stream::new("stdin", None, b"keep".to_vec()),
                    Stream::new("pr", None, b"old".to_vec()),
                ],
            }),
        ];
        for body in bodies {
            let mut env = wire(body);
            let last = env.psrp_payloads().expect("payloads").len() - 1;
            assert!(!env.set_psrp_payload(last + 1, b"x".to_vec()));
            assert!(env.set_psrp_payload(last, b"new \x00 bytes".to_vec()));
            // The change is in the typed body, so it survives encoding.
            let back = Envelope::decode(env.encode().as_bytes()).expect("decodes");
            let data: Vec<Vec<u8>> = parts(&back).into_iter().map(|(_, d)| d).collect();
            assert_eq!(data.last().map(Vec::as_slice), Some(&b"new \x00 bytes"[..]));
            if data.len() == 2 {
                assert_eq!(data[0], b"keep");
            }
        }
        for body in [
            Body::Create(Shell::cmd()),
            Body::Command(CommandLine::winrs("dir", Vec::new())),
            Body::Delete,
        ] {
            let mut env = wire(body);
            let before = env.clone();
            assert!(!env.set_psrp_payload(0, b"x".to_vec()));
            assert_eq!(env, before);
        }
    }
}
