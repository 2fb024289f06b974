//! WinRS (`rsp:`) bodies: Shell, CommandLine, Send, Receive, Signal, Connect, Disconnect.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use uuid::Uuid;

use crate::error::Error;
use crate::header::uuid_upper;
use crate::limits::Limits;
use crate::ns;
use crate::xml::{Node, RawElement, escape_attr, escape_text, text_element, trim_xml};

/// Base64 engine: standard alphabet, padding optional on decode, canonical on encode.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decode base64 text (XML whitespace inside is tolerated) straight into bytes.
///
/// The common case (one unbroken base64 run) is decoded in a single pass; only
/// if that fails is the text re-read without whitespace.
pub(crate) fn decode_b64(text: &str, path: &str, offset: u64) -> Result<Vec<u8>, Error> {
    let t = trim_xml(text);
    let mut out = Vec::with_capacity(t.len() / 4 * 3 + 3);
    if B64.decode_vec(t, &mut out).is_ok() {
        return Ok(out);
    }
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    if !t.as_bytes().iter().any(is_ws) {
        return Err(Error::invalid(path, offset, "base64", t));
    }
    let cleaned: Vec<u8> = t.bytes().filter(|b| !is_ws(b)).collect();
    out.clear();
    B64.decode_vec(&cleaned, &mut out)
        .map(|_| out)
        .map_err(|_| Error::invalid(path, offset, "base64", t))
}

/// Append base64 of `data` to `out`.
pub(crate) fn encode_b64(out: &mut String, data: &[u8]) {
    B64.encode_string(data, out);
}

fn base64_element(out: &mut String, qname: &str, attrs: &[(&str, &str)], data: &[u8]) {
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
    encode_b64(out, data);
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

fn opt_text(out: &mut String, qname: &str, v: &Option<String>) {
    if let Some(v) = v {
        if v.is_empty() {
            out.push('<');
            out.push_str(qname);
            out.push_str("/>");
        } else {
            text_element(out, qname, &[], v);
        }
    }
}

/// An environment variable of a WinRS shell (`rsp:Environment/rsp:Variable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// `rsp:Shell`: the Create request body, and the shell description in
/// CreateResponse, GetResponse and enumeration items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shell {
    /// ShellId (attribute in a Create request, child element elsewhere).
    pub shell_id: Option<String>,
    /// `rsp:Name`.
    pub name: Option<String>,
    /// `rsp:ResourceUri`.
    pub resource_uri: Option<String>,
    /// `rsp:Owner`.
    pub owner: Option<String>,
    /// `rsp:ClientIP`.
    pub client_ip: Option<String>,
    /// `rsp:ProcessId`.
    pub process_id: Option<String>,
    /// `rsp:Environment` variables.
    pub environment: Vec<EnvVar>,
    /// `rsp:WorkingDirectory`.
    pub working_directory: Option<String>,
    /// `rsp:Lifetime`.
    pub lifetime: Option<String>,
    /// `rsp:IdleTimeOut` (`xs:duration`).
    pub idle_timeout: Option<String>,
    /// `rsp:InputStreams` (space separated, e.g. `stdin pr`).
    pub input_streams: Option<String>,
    /// `rsp:OutputStreams` (space separated, e.g. `stdout`).
    pub output_streams: Option<String>,
    /// `rsp:MaxIdleTimeOut`.
    pub max_idle_timeout: Option<String>,
    /// `rsp:Locale`.
    pub locale: Option<String>,
    /// `rsp:DataLocale`.
    pub data_locale: Option<String>,
    /// `rsp:CompressionMode`.
    pub compression_mode: Option<String>,
    /// `rsp:ProfileLoaded`.
    pub profile_loaded: Option<String>,
    /// `rsp:Encoding`.
    pub encoding: Option<String>,
    /// `rsp:BufferMode`.
    pub buffer_mode: Option<String>,
    /// `rsp:State` (`Connected`, `Disconnected`, ...).
    pub state: Option<String>,
    /// `rsp:ShellRunTime`.
    pub shell_run_time: Option<String>,
    /// `rsp:ShellInactivity`.
    pub shell_inactivity: Option<String>,
    /// `rsp:MemoryUsed`.
    pub memory_used: Option<String>,
    /// `rsp:ChildProcesses`.
    pub child_processes: Option<String>,
    /// Decoded `creationXml` (PSRP fragments), PowerShell namespace.
    pub creation_xml: Option<Vec<u8>>,
    /// Children this crate does not type, preserved.
    pub extra: Vec<RawElement>,
}

impl Shell {
    /// A PowerShell RunspacePool Create body: ShellId attribute, `stdin pr` /
    /// `stdout` streams and the PSRP `creationXml` bytes.
    pub fn powershell(shell_id: Uuid, creation_xml: Vec<u8>) -> Self {
        Shell {
            shell_id: Some(uuid_upper(shell_id)),
            input_streams: Some("stdin pr".to_owned()),
            output_streams: Some("stdout".to_owned()),
            creation_xml: Some(creation_xml),
            ..Shell::default()
        }
    }

    /// A WinRS `cmd` Create body with `stdin` / `stdout stderr` streams.
    pub fn cmd() -> Self {
        Shell {
            input_streams: Some("stdin".to_owned()),
            output_streams: Some("stdout stderr".to_owned()),
            ..Shell::default()
        }
    }

    pub(crate) fn decode(node: &Node<'_>) -> Result<Shell, Error> {
        let mut s = Shell {
            shell_id: node.attr("ShellId").map(|v| trim_xml(v).to_owned()),
            ..Shell::default()
        };
        for c in &node.children {
            let text = Some(c.text_trim().to_owned());
            let ns = c.ns.as_deref().unwrap_or("");
            let slot = match (ns, c.local.as_str()) {
                (ns::SHELL, "ShellId") => &mut s.shell_id,
                (ns::SHELL, "Name") => &mut s.name,
                (ns::SHELL, "ResourceUri") => &mut s.resource_uri,
                (ns::SHELL, "Owner") => &mut s.owner,
                (ns::SHELL, "ClientIP") => &mut s.client_ip,
                (ns::SHELL, "ProcessId") => &mut s.process_id,
                (ns::SHELL, "WorkingDirectory") => &mut s.working_directory,
                (ns::SHELL, "Lifetime") => &mut s.lifetime,
                (ns::SHELL, "IdleTimeOut") => &mut s.idle_timeout,
                (ns::SHELL, "InputStreams") => &mut s.input_streams,
                (ns::SHELL, "OutputStreams") => &mut s.output_streams,
                (ns::SHELL, "MaxIdleTimeOut") => &mut s.max_idle_timeout,
                (ns::SHELL, "Locale") => &mut s.locale,
                (ns::SHELL, "DataLocale") => &mut s.data_locale,
                (ns::SHELL, "CompressionMode") => &mut s.compression_mode,
                (ns::SHELL, "ProfileLoaded") => &mut s.profile_loaded,
                (ns::SHELL, "Encoding") => &mut s.encoding,
                (ns::SHELL, "BufferMode") => &mut s.buffer_mode,
                (ns::SHELL, "State") => &mut s.state,
                (ns::SHELL, "ShellRunTime") => &mut s.shell_run_time,
                (ns::SHELL, "ShellInactivity") => &mut s.shell_inactivity,
                (ns::SHELL, "MemoryUsed") => &mut s.memory_used,
                (ns::SHELL, "ChildProcesses") => &mut s.child_processes,
                (ns::SHELL, "Environment") => {
                    s.environment = c
                        .children_named(ns::SHELL, "Variable")
                        .map(|v| EnvVar {
                            name: v.attr("Name").unwrap_or_default().to_owned(),
                            value: v.text.to_string(),
                        })
                        .collect();
                    continue;
                }
                (ns::POWERSHELL, "creationXml") => {
                    s.creation_xml = Some(decode_b64(
                        &c.text,
                        "Envelope/Body/Shell/creationXml",
                        c.offset,
                    )?);
                    continue;
                }
                _ => {
                    s.extra.push(RawElement::from_node(c));
                    continue;
                }
            };
            if slot.is_none() {
                *slot = text;
            } else {
                s.extra.push(RawElement::from_node(c));
            }
        }
        Ok(s)
    }

    /// Encode; `id_as_attribute` writes ShellId as an attribute (Create request form).
    pub(crate) fn encode(&self, out: &mut String, id_as_attribute: bool) {
        out.push_str("<rsp:Shell");
        if id_as_attribute && let Some(id) = &self.shell_id {
            out.push_str(" ShellId=\"");
            escape_attr(out, id);
            out.push('"');
        }
        out.push('>');
        if !id_as_attribute {
            opt_text(out, "rsp:ShellId", &self.shell_id);
        }
        opt_text(out, "rsp:Name", &self.name);
        opt_text(out, "rsp:ResourceUri", &self.resource_uri);
        opt_text(out, "rsp:Owner", &self.owner);
        opt_text(out, "rsp:ClientIP", &self.client_ip);
        opt_text(out, "rsp:ProcessId", &self.process_id);
        if !self.environment.is_empty() {
            out.push_str("<rsp:Environment>");
            for v in &self.environment {
                text_element(out, "rsp:Variable", &[("Name", &v.name)], &v.value);
            }
            out.push_str("</rsp:Environment>");
        }
        opt_text(out, "rsp:WorkingDirectory", &self.working_directory);
        opt_text(out, "rsp:Lifetime", &self.lifetime);
        opt_text(out, "rsp:IdleTimeOut", &self.idle_timeout);
        opt_text(out, "rsp:InputStreams", &self.input_streams);
        opt_text(out, "rsp:OutputStreams", &self.output_streams);
        opt_text(out, "rsp:MaxIdleTimeOut", &self.max_idle_timeout);
        opt_text(out, "rsp:Locale", &self.locale);
        opt_text(out, "rsp:DataLocale", &self.data_locale);
        opt_text(out, "rsp:CompressionMode", &self.compression_mode);
        opt_text(out, "rsp:ProfileLoaded", &self.profile_loaded);
        opt_text(out, "rsp:Encoding", &self.encoding);
        opt_text(out, "rsp:BufferMode", &self.buffer_mode);
        opt_text(out, "rsp:State", &self.state);
        opt_text(out, "rsp:ShellRunTime", &self.shell_run_time);
        opt_text(out, "rsp:ShellInactivity", &self.shell_inactivity);
        opt_text(out, "rsp:MemoryUsed", &self.memory_used);
        opt_text(out, "rsp:ChildProcesses", &self.child_processes);
        for e in &self.extra {
            out.push_str(&e.xml);
        }
        if let Some(x) = &self.creation_xml {
            base64_element(out, "creationXml", &[("xmlns", ns::POWERSHELL)], x);
        }
        out.push_str("</rsp:Shell>");
    }
}

/// `rsp:CommandLine`: the Command request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// `CommandId` attribute (PSRP: the pipeline id chosen by the client).
    pub command_id: Option<String>,
    /// `rsp:Command` text (empty for PSRP pipelines).
    pub command: Option<String>,
    /// `rsp:Arguments`, as text. For PSRP this is one base64 CREATE_PIPELINE
    /// payload; see [`CommandLine::psrp_payload`].
    pub arguments: Vec<String>,
}

impl CommandLine {
    /// A PSRP pipeline: `CommandId`, empty `Command`, base64 `Arguments`.
    pub fn psrp(command_id: Uuid, payload: &[u8]) -> Self {
        let mut arg = String::with_capacity(payload.len().div_ceil(3) * 4);
        encode_b64(&mut arg, payload);
        CommandLine {
            command_id: Some(uuid_upper(command_id)),
            command: Some(String::new()),
            arguments: vec![arg],
        }
    }

    /// A WinRS command line with plain-text arguments.
    pub fn winrs(command: impl Into<String>, arguments: Vec<String>) -> Self {
        CommandLine {
            command_id: None,
            command: Some(command.into()),
            arguments,
        }
    }

    /// The first argument decoded from base64 (the PSRP payload).
    pub fn psrp_payload(&self) -> Result<Vec<u8>, Error> {
        match self.arguments.first() {
            Some(a) => decode_b64(a, "Envelope/Body/CommandLine/Arguments", 0),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn decode(node: &Node<'_>) -> CommandLine {
        CommandLine {
            command_id: node.attr("CommandId").map(|v| trim_xml(v).to_owned()),
            command: node.child_text(ns::SHELL, "Command"),
            arguments: node
                .children_named(ns::SHELL, "Arguments")
                .map(|a| a.text_trim().to_owned())
                .collect(),
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:CommandLine");
        if let Some(id) = &self.command_id {
            out.push_str(" CommandId=\"");
            escape_attr(out, id);
            out.push('"');
        }
        out.push('>');
        opt_text(out, "rsp:Command", &self.command);
        for a in &self.arguments {
            text_element(out, "rsp:Arguments", &[], a);
        }
        out.push_str("</rsp:CommandLine>");
    }
}

/// One `rsp:Stream` of a Send or ReceiveResponse, payload decoded from base64.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// `Name` attribute (`stdin`, `pr`, `stdout`, `stderr`).
    pub name: String,
    /// `CommandId` attribute; absent for RunspacePool-level data.
    pub command_id: Option<String>,
    /// `End="true"`: last chunk of this stream.
    pub end: bool,
    /// Decoded payload (PSRP fragments, or console bytes for `cmd` shells).
    pub data: Vec<u8>,
}

impl Stream {
    /// A stream chunk.
    pub fn new(name: impl Into<String>, command_id: Option<Uuid>, data: Vec<u8>) -> Self {
        Stream {
            name: name.into(),
            command_id: command_id.map(uuid_upper),
            end: false,
            data,
        }
    }

    /// Reads one `rsp:Stream` at `path`; its `Name` attribute is required (MS-WSMV
    /// `StreamType`), so a stream without one is [`Error::Missing`].
    fn decode(node: &Node<'_>, path: &str) -> Result<Stream, Error> {
        let name = node.attr("Name").ok_or_else(|| Error::Missing {
            path: path.to_owned(),
            offset: node.offset,
            expected: "Name attribute",
        })?;
        Ok(Stream {
            name: name.to_owned(),
            command_id: node.attr("CommandId").map(|v| trim_xml(v).to_owned()),
            end: node
                .attr("End")
                .and_then(crate::xml::parse_bool)
                .unwrap_or(false),
            data: decode_b64(&node.text, path, node.offset)?,
        })
    }

    fn encode(&self, out: &mut String) {
        let mut attrs: Vec<(&str, &str)> = vec![("Name", &self.name)];
        if let Some(id) = &self.command_id {
            attrs.push(("CommandId", id));
        }
        if self.end {
            attrs.push(("End", "true"));
        }
        base64_element(out, "rsp:Stream", &attrs, &self.data);
    }
}

fn decode_streams(
    node: &Node<'_>,
    path: &str,
    limits: &Limits,
) -> Result<(Vec<Stream>, Vec<RawElement>), Error> {
    let mut streams = Vec::new();
    let mut extra = Vec::new();
    for c in &node.children {
        if c.is(ns::SHELL, "Stream") {
            if streams.len() >= limits.max_streams {
                return Err(Error::TooManyStreams {
                    offset: c.offset,
                    limit: limits.max_streams,
                });
            }
            streams.push(Stream::decode(c, path)?);
        } else if !c.is(ns::SHELL, "CommandState") {
            extra.push(RawElement::from_node(c));
        }
    }
    Ok((streams, extra))
}

/// `rsp:Send`: input data for the shell or a command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Send {
    /// The streams, in order.
    pub streams: Vec<Stream>,
}

impl Send {
    pub(crate) fn decode(node: &Node<'_>, limits: &Limits) -> Result<Send, Error> {
        let (streams, _) = decode_streams(node, "Envelope/Body/Send/Stream", limits)?;
        Ok(Send { streams })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:Send>");
        for s in &self.streams {
            s.encode(out);
        }
        out.push_str("</rsp:Send>");
    }
}

/// `rsp:Receive`: ask for output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receive {
    /// `rsp:DesiredStream` text (space separated stream names).
    pub desired_streams: String,
    /// `CommandId` attribute of DesiredStream; absent for RunspacePool output.
    pub command_id: Option<String>,
    /// `SequenceId` attribute of `rsp:Receive` (MS-WSMV robust connections).
    pub sequence_id: Option<u64>,
}

impl Receive {
    /// Receive `stdout` for the shell (`None`) or a command.
    pub fn stdout(command_id: Option<Uuid>) -> Self {
        Receive {
            desired_streams: ns::stream::STDOUT.to_owned(),
            command_id: command_id.map(uuid_upper),
            sequence_id: None,
        }
    }

    pub(crate) fn decode(node: &Node<'_>) -> Result<Receive, Error> {
        let ds = node.child(ns::SHELL, "DesiredStream");
        let sequence_id = match node.attr("SequenceId") {
            Some(v) => Some(trim_xml(v).parse::<u64>().map_err(|_| {
                Error::invalid(
                    "Envelope/Body/Receive/@SequenceId",
                    node.offset,
                    "an unsigned integer",
                    v,
                )
            })?),
            None => None,
        };
        Ok(Receive {
            desired_streams: ds.map(|d| d.text_trim().to_owned()).unwrap_or_default(),
            command_id: ds
                .and_then(|d| d.attr("CommandId"))
                .map(|v| trim_xml(v).to_owned()),
            sequence_id,
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:Receive");
        if let Some(s) = self.sequence_id {
            out.push_str(" SequenceId=\"");
            out.push_str(&s.to_string());
            out.push('"');
        }
        out.push('>');
        match &self.command_id {
            Some(id) => text_element(
                out,
                "rsp:DesiredStream",
                &[("CommandId", id)],
                &self.desired_streams,
            ),
            None => text_element(out, "rsp:DesiredStream", &[], &self.desired_streams),
        }
        out.push_str("</rsp:Receive>");
    }
}

/// `rsp:CommandState` in a ReceiveResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandState {
    /// `CommandId` attribute.
    pub command_id: Option<String>,
    /// `State` attribute, one of [`ns::command_state`].
    pub state: String,
    /// `rsp:ExitCode`, when the command is done.
    pub exit_code: Option<i64>,
}

impl CommandState {
    /// Whether the state is [`ns::command_state::DONE`].
    pub fn is_done(&self) -> bool {
        self.state == ns::command_state::DONE
    }
}

/// `rsp:ReceiveResponse`: output chunks and, at the end, the command state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiveResponse {
    /// The streams, in order.
    pub streams: Vec<Stream>,
    /// `rsp:CommandState`, when present.
    pub command_state: Option<CommandState>,
    /// Children this crate does not type, preserved.
    pub extra: Vec<RawElement>,
}

impl ReceiveResponse {
    pub(crate) fn decode(node: &Node<'_>, limits: &Limits) -> Result<ReceiveResponse, Error> {
        let (streams, extra) =
            decode_streams(node, "Envelope/Body/ReceiveResponse/Stream", limits)?;
        let command_state = match node.child(ns::SHELL, "CommandState") {
            Some(cs) => {
                let exit_code = match cs.child(ns::SHELL, "ExitCode") {
                    Some(e) => Some(e.text_trim().parse::<i64>().map_err(|_| {
                        Error::invalid(
                            "Envelope/Body/ReceiveResponse/CommandState/ExitCode",
                            e.offset,
                            "an integer",
                            e.text_trim(),
                        )
                    })?),
                    None => None,
                };
                Some(CommandState {
                    command_id: cs.attr("CommandId").map(|v| trim_xml(v).to_owned()),
                    state: cs
                        .attr("State")
                        .map(trim_xml)
                        .unwrap_or_default()
                        .to_owned(),
                    exit_code,
                })
            }
            None => None,
        };
        Ok(ReceiveResponse {
            streams,
            command_state,
            extra,
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:ReceiveResponse>");
        for s in &self.streams {
            s.encode(out);
        }
        for e in &self.extra {
            out.push_str(&e.xml);
        }
        if let Some(cs) = &self.command_state {
            out.push_str("<rsp:CommandState");
            if let Some(id) = &cs.command_id {
                out.push_str(" CommandId=\"");
                escape_attr(out, id);
                out.push('"');
            }
            out.push_str(" State=\"");
            escape_attr(out, &cs.state);
            out.push('"');
            match cs.exit_code {
                Some(code) => {
                    out.push_str("><rsp:ExitCode>");
                    out.push_str(&code.to_string());
                    out.push_str("</rsp:ExitCode></rsp:CommandState>");
                }
                None => out.push_str("/>"),
            }
        }
        out.push_str("</rsp:ReceiveResponse>");
    }
}

/// `rsp:Signal`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signal {
    /// `CommandId` attribute.
    pub command_id: Option<String>,
    /// `rsp:Code`, one of [`ns::signal`].
    pub code: String,
}

impl Signal {
    /// A signal to a command.
    pub fn new(command_id: Option<Uuid>, code: impl Into<String>) -> Self {
        Signal {
            command_id: command_id.map(uuid_upper),
            code: code.into(),
        }
    }

    pub(crate) fn decode(node: &Node<'_>) -> Signal {
        Signal {
            command_id: node.attr("CommandId").map(|v| trim_xml(v).to_owned()),
            code: node.child_text(ns::SHELL, "Code").unwrap_or_default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:Signal");
        if let Some(id) = &self.command_id {
            out.push_str(" CommandId=\"");
            escape_attr(out, id);
            out.push('"');
        }
        out.push('>');
        text_element(out, "rsp:Code", &[], &self.code);
        out.push_str("</rsp:Signal>");
    }
}

/// `rsp:Connect`: attach to a disconnected shell (`connectXml`) or command (`CommandId`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// `CommandId` attribute when connecting to a command.
    pub command_id: Option<String>,
    /// Decoded `connectXml` (PSRP fragments).
    pub connect_xml: Option<Vec<u8>>,
}

impl Connect {
    pub(crate) fn decode(node: &Node<'_>) -> Result<Connect, Error> {
        Ok(Connect {
            command_id: node.attr("CommandId").map(|v| trim_xml(v).to_owned()),
            connect_xml: match node.child(ns::POWERSHELL, "connectXml") {
                Some(c) => Some(decode_b64(
                    &c.text,
                    "Envelope/Body/Connect/connectXml",
                    c.offset,
                )?),
                None => None,
            },
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:Connect");
        if let Some(id) = &self.command_id {
            out.push_str(" CommandId=\"");
            escape_attr(out, id);
            out.push('"');
        }
        match &self.connect_xml {
            Some(x) => {
                out.push('>');
                base64_element(out, "connectXml", &[("xmlns", ns::POWERSHELL)], x);
                out.push_str("</rsp:Connect>");
            }
            None => out.push_str("/>"),
        }
    }
}

/// `rsp:ConnectResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// `rsp:InputStreams`.
    pub input_streams: Option<String>,
    /// `rsp:OutputStreams`.
    pub output_streams: Option<String>,
    /// Decoded `connectResponseXml` (PSRP fragments).
    pub connect_response_xml: Option<Vec<u8>>,
}

impl ConnectResponse {
    pub(crate) fn decode(node: &Node<'_>) -> Result<ConnectResponse, Error> {
        Ok(ConnectResponse {
            input_streams: node.child_text(ns::SHELL, "InputStreams"),
            output_streams: node.child_text(ns::SHELL, "OutputStreams"),
            connect_response_xml: match node.child(ns::POWERSHELL, "connectResponseXml") {
                Some(c) => Some(decode_b64(
                    &c.text,
                    "Envelope/Body/ConnectResponse/connectResponseXml",
                    c.offset,
                )?),
                None => None,
            },
        })
    }

    pub(crate) fn encode(&self, out: &mut String) {
        out.push_str("<rsp:ConnectResponse>");
        opt_text(out, "rsp:InputStreams", &self.input_streams);
        opt_text(out, "rsp:OutputStreams", &self.output_streams);
        if let Some(x) = &self.connect_response_xml {
            base64_element(out, "connectResponseXml", &[("xmlns", ns::POWERSHELL)], x);
        }
        out.push_str("</rsp:ConnectResponse>");
    }
}

/// `rsp:Disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// `rsp:IdleTimeOut`: how long the server keeps the disconnected shell.
    pub idle_timeout: Option<String>,
}

impl Disconnect {
    pub(crate) fn decode(node: &Node<'_>) -> Disconnect {
        Disconnect {
            idle_timeout: node.child_text(ns::SHELL, "IdleTimeOut"),
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        match &self.idle_timeout {
            Some(t) => {
                out.push_str("<rsp:Disconnect>");
                text_element(out, "rsp:IdleTimeOut", &[], t);
                out.push_str("</rsp:Disconnect>");
            }
            None => out.push_str("<rsp:Disconnect/>"),
        }
    }
}

/// `rsp:CommandResponse/rsp:CommandId`.
pub(crate) fn decode_command_response(node: &Node<'_>) -> Result<String, Error> {
    node.child_text(ns::SHELL, "CommandId")
        .ok_or(Error::Missing {
            path: "Envelope/Body/CommandResponse".to_owned(),
            offset: node.offset,
            expected: "rsp:CommandId",
        })
}

pub(crate) fn encode_command_response(out: &mut String, id: &str) {
    out.push_str("<rsp:CommandResponse><rsp:CommandId>");
    escape_text(out, id);
    out.push_str("</rsp:CommandId></rsp:CommandResponse>");
}
