//! Re-enacting a transcript: derive what a client must do from it, drive our client through
//! it against the [`Replayer`], and check that the client reaches the recorded results.
//!
//! [`Scenario::from_transcript`] reads the recorded requests: the configuration (resource
//! URI), the protocol version and pool settings (from `INIT_RUNSPACEPOOL`), the commands
//! (the typed `CREATE_PIPELINE` of each Command), pipeline input (`PIPELINE_INPUT` /
//! `END_OF_PIPELINE_INPUT` in the Sends), host responses, stops and the close; and, from the
//! recorded responses, the expected results: each pipeline's output objects, records and
//! final state, and the pool states. Operations our client does not implement (disconnect,
//! reconnect, key exchange, runspace limits, ...) are listed in
//! [`Scenario::unsupported`].
//!
//! [`check_in_memory`] drives the sans-IO [`Session`] machine against a [`Replayer`] without
//! sockets; [`check_over_loopback`] serves the replayer over HTTP on 127.0.0.1 and runs the
//! async [`RunspacePool`] client against it. Both return a [`Report`]; [`render_outputs`]
//! prints what a transcript's pipelines produced.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rps_psrp::clixml::{self, Value};
use rps_psrp::event::{HostReply, RecordKind};
use rps_psrp::fragment::Defragmenter;
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{
    Argument, CreatePipeline, HostResponse, Message, PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::PoolConfig;
use rps_session::machine::{Operation, Session, SessionConfig, SessionEvent};
use rps_session::{ConnectOptions, PipelineEvent, RunspacePool};
use rps_wsman::ns::{resource, signal};
use rps_wsman::{Body, Envelope, parse_uuid_urn};
use uuid::Uuid;

use crate::replayer::{
    GuidOrder, Mismatch, ReplayResponse, Replayer, Tolerated, detect_guid_order, diff_values,
};
use crate::transcript::Transcript;

/// Why a transcript cannot be re-enacted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReenactError {
    /// The transcript opens no PowerShell runspace pool (a WinRS `cmd` shell, or WS-Man
    /// calls only).
    #[error("not a PowerShell session: {0}")]
    NotPowerShell(String),
    /// A recorded request does not decode.
    #[error("exchange #{exchange}: recorded request does not decode: {error}")]
    Request {
        /// The exchange.
        exchange: usize,
        /// The decode error.
        error: String,
    },
    /// A recorded PSRP message does not decode.
    #[error("exchange #{exchange}: recorded PSRP data does not decode: {error}")]
    Psrp {
        /// The exchange.
        exchange: usize,
        /// The error.
        error: String,
    },
}

/// A recorded operation our client does not perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The recorded exchange.
    pub exchange: usize,
    /// The missing feature, e.g. `disconnect/reconnect (WS-Man Disconnect)`.
    pub feature: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange #{}: {}", self.exchange, self.feature)
    }
}

/// One thing the client must do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Start pipeline [`Scenario::pipelines`]`[pipeline]`.
    Invoke {
        /// The pipeline index.
        pipeline: usize,
    },
    /// Send one input object.
    Input {
        /// The pipeline index.
        pipeline: usize,
        /// The object.
        value: Value,
    },
    /// End a pipeline's input.
    EndInput {
        /// The pipeline index.
        pipeline: usize,
    },
    /// Answer a host call.
    HostReply {
        /// The pipeline index, `None` for a pool host call.
        pipeline: Option<usize>,
        /// The recorded response.
        response: HostResponse,
    },
    /// Stop a pipeline (PowerShell's Ctrl+C signal).
    Stop {
        /// The pipeline index.
        pipeline: usize,
    },
    /// A call-id request on the pool (SET_MAX/SET_MIN_RUNSPACES, GET_AVAILABLE_RUNSPACES,
    /// RESET_RUNSPACE_STATE).
    PoolCall(PoolCallKind),
    /// Ask the server whether the shell is alive (WS-Transfer Get of the shell).
    ShellState,
    /// Exchange a session key (PUBLIC_KEY).
    ExchangeKey,
    /// Disconnect the shell.
    Disconnect,
    /// Reconnect the shell.
    Reconnect,
    /// Read the output of a command the client did not start
    /// ([`Scenario::attached`]`[attached]`).
    Attach {
        /// The index in [`Scenario::attached`].
        attached: usize,
    },
    /// Close the pool (delete the shell).
    Close,
}

/// Which pool call a [`Action::PoolCall`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolCallKind {
    /// SET_MAX_RUNSPACES.
    SetMax(i32),
    /// SET_MIN_RUNSPACES.
    SetMin(i32),
    /// GET_AVAILABLE_RUNSPACES.
    Available,
    /// RESET_RUNSPACE_STATE.
    Reset,
}

/// An action and the recorded exchange that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The recorded exchange.
    pub exchange: usize,
    /// The action.
    pub action: Action,
}

/// A pipeline the recorded client ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPipeline {
    /// The recorded pipeline id (PID, the CommandId the client chose).
    pub recorded_id: Uuid,
    /// The exchange of its Command.
    pub exchange: usize,
    /// The typed CREATE_PIPELINE.
    pub request: CreatePipeline,
}

impl PlannedPipeline {
    /// The commands as PowerShell-like text (`Get-Service -Name winrm | Select-Object`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (si, statement) in self.request.power_shell.statements.iter().enumerate() {
            if si > 0 {
                out.push_str("; ");
            }
            for (ci, c) in statement.iter().enumerate() {
                if ci > 0 {
                    out.push_str(" | ");
                }
                if c.is_script {
                    let _ = write!(out, "{{ {} }}", c.name.trim());
                } else {
                    out.push_str(&c.name);
                }
                for Argument { name, value } in &c.args {
                    out.push(' ');
                    match (name, value) {
                        (Some(n), Value::Nil) => {
                            let _ = write!(out, "-{n}");
                        }
                        (Some(n), v) => {
                            let _ = write!(out, "-{n} {}", short(v));
                        }
                        (None, v) => out.push_str(&short(v)),
                    }
                }
            }
        }
        out
    }
}

/// What the recorded server produced for one pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedPipeline {
    /// Output objects, in order.
    pub output: Vec<Value>,
    /// Records, in order.
    pub records: Vec<(RecordKind, Value)>,
    /// The final state.
    pub state: Option<PsInvocationState>,
    /// Host calls the server made.
    pub host_calls: usize,
}

/// What the recorded server produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Per pipeline, in [`Scenario::pipelines`] order.
    pub pipelines: Vec<ExpectedPipeline>,
    /// The pool states the server announced (RUNSPACEPOOL_STATE), in order.
    pub pool_states: Vec<RunspacePoolState>,
    /// The answers to shell-state queries, in order: alive or not, `None` for an error.
    pub shell_states: Vec<Option<bool>>,
    /// True when the server sent the session key (ENCRYPTED_SESSION_KEY).
    pub key_exchanged: bool,
    /// True when the shell was deleted successfully.
    pub closed: bool,
}

/// What a client must do to re-enact a transcript, and what it must get.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The transcript's source.
    pub source: String,
    /// The recorded `wsa:To`.
    pub to: String,
    /// The resource URI of the configuration.
    pub resource_uri: String,
    /// The configuration name (the resource URI's last segment).
    pub configuration: String,
    /// The PSRP protocol version the client announced.
    pub protocol_version: String,
    /// True when the recorded client sent a `wsmv:SessionId`.
    pub session_id: bool,
    /// True when the recorded client sent terminate Signals for finished pipelines.
    pub terminate_finished_pipelines: bool,
    /// The recorded Create's WS-Man options besides `protocolversion` (e.g. `WINRS_NOPROFILE`).
    pub create_options: Vec<(String, String)>,
    /// The pool settings (from the recorded INIT_RUNSPACEPOOL).
    pub pool: PoolConfig,
    /// The pipelines, in the order they were started.
    pub pipelines: Vec<PlannedPipeline>,
    /// Commands the client read without having started them (recorded CommandIds).
    pub attached: Vec<Uuid>,
    /// True when the recorded client read the server's WinRM configuration before the
    /// Create (for its maximum envelope size).
    pub read_server_config: bool,
    /// The client's actions, in recorded order.
    pub steps: Vec<Step>,
    /// The recorded results.
    pub expected: Expected,
    /// Recorded operations our client does not perform.
    pub unsupported: Vec<Unsupported>,
    /// The recording's RPID/PID byte order.
    pub guid_order: GuidOrder,
}

fn short(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Bool(b) => format!("${b}"),
        Value::Nil => "$null".to_owned(),
        v => match v.as_i64() {
            Some(i) if !matches!(v, Value::Object(_)) => i.to_string(),
            _ => display_value(v),
        },
    }
}

/// Renders a value on one line: strings as they are, objects by their `ToString` or as
/// JSON.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Nil => String::new(),
        Value::Object(o) => match &o.to_string {
            Some(s) => s.clone(),
            None => clixml::json::to_json(v).to_string(),
        },
        other => match clixml::json::to_json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

fn record_kind(t: MessageType) -> Option<RecordKind> {
    Some(match t {
        MessageType::ErrorRecord => RecordKind::Error,
        MessageType::WarningRecord => RecordKind::Warning,
        MessageType::VerboseRecord => RecordKind::Verbose,
        MessageType::DebugRecord => RecordKind::Debug,
        MessageType::ProgressRecord => RecordKind::Progress,
        MessageType::InformationRecord => RecordKind::Information,
        _ => return None,
    })
}

/// Every PSRP message completed by `payloads`.
fn messages(
    defrag: &mut Defragmenter,
    payloads: impl IntoIterator<Item = Vec<u8>>,
) -> Result<Vec<RawMessage>, String> {
    let mut out = Vec::new();
    for p in payloads {
        let mut assembled = Vec::new();
        defrag
            .feed(Bytes::from(p), &mut assembled)
            .map_err(|e| e.to_string())?;
        for a in assembled {
            out.push(RawMessage::decode(a.data).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

impl Scenario {
    /// Reads a transcript. See the [module docs](self).
    pub fn from_transcript(transcript: &Transcript) -> Result<Scenario, ReenactError> {
        let order = detect_guid_order(transcript);
        let mut sc = Scenario {
            source: transcript.meta.source.clone(),
            to: String::new(),
            resource_uri: String::new(),
            configuration: String::new(),
            protocol_version: "2.3".to_owned(),
            session_id: false,
            terminate_finished_pipelines: false,
            create_options: Vec::new(),
            pool: PoolConfig::default(),
            pipelines: Vec::new(),
            attached: Vec::new(),
            read_server_config: false,
            steps: Vec::new(),
            expected: Expected::default(),
            unsupported: Vec::new(),
            guid_order: order,
        };
        let mut created = false;
        let mut deleted = false;
        // A Command whose CREATE_PIPELINE continues in the next Sends: (exchange, CommandId).
        let mut split_command: Option<(usize, Option<Uuid>)> = None;
        let mut to_server = Defragmenter::default();
        let mut to_client = Defragmenter::default();
        // WS-Man CommandId (as the server chose it) -> pipeline index.
        let mut by_command: HashMap<Uuid, usize> = HashMap::new();
        let mut by_pid: HashMap<Uuid, usize> = HashMap::new();
        let mut unsupported = |exchange: usize, feature: &str| {
            sc.unsupported.push(Unsupported {
                exchange,
                feature: feature.to_owned(),
            });
        };
        for (i, ex) in transcript.exchanges.iter().enumerate() {
            let env = Envelope::decode(ex.request.body.as_bytes()).map_err(|e| {
                ReenactError::Request {
                    exchange: i,
                    error: e.to_string(),
                }
            })?;
            let psrp = |error: String| ReenactError::Psrp { exchange: i, error };
            let response = ex
                .response
                .as_ref()
                .filter(|r| r.status == 200)
                .and_then(|r| Envelope::decode(r.body.as_bytes()).ok());
            match &env.body {
                Body::Create(shell) => {
                    let uri = env.resource_uri().unwrap_or_default();
                    if uri.eq_ignore_ascii_case(resource::CMD) || shell.creation_xml.is_none() {
                        return Err(ReenactError::NotPowerShell(format!(
                            "exchange #{i} creates a WinRS shell ({uri})"
                        )));
                    }
                    if created && !deleted {
                        unsupported(i, "a second runspace pool while the first is open");
                        continue;
                    }
                    created = true;
                    deleted = false;
                    sc.to = env.header.to.clone().unwrap_or_default();
                    sc.resource_uri = uri.to_owned();
                    sc.configuration = uri.rsplit('/').next().unwrap_or_default().to_owned();
                    sc.session_id = env.header.session_id.is_some();
                    if let Some(v) = env.header.option("protocolversion") {
                        sc.protocol_version = v.trim().to_owned();
                    }
                    sc.create_options = env
                        .header
                        .options
                        .iter()
                        .flat_map(|set| set.options.iter())
                        .filter(|o| !o.name.eq_ignore_ascii_case("protocolversion"))
                        .map(|o| (o.name.clone(), o.value.clone()))
                        .collect();
                    let data = shell.creation_xml.clone().unwrap_or_default();
                    for m in messages(&mut to_server, [data]).map_err(psrp)? {
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        if let Message::InitRunspacePool(init) = typed {
                            sc.pool = PoolConfig {
                                min_runspaces: init.min_runspaces,
                                max_runspaces: init.max_runspaces,
                                thread_options: init.thread_options,
                                apartment_state: init.apartment_state,
                                host_info: init.host_info,
                                application_arguments: init.application_arguments,
                                protocol_version: sc.protocol_version.clone(),
                                ..PoolConfig::default()
                            };
                        }
                    }
                }
                Body::Command(cmd) => {
                    let payload = cmd.psrp_payload().map_err(|e| psrp(e.to_string()))?;
                    let cid = response.as_ref().and_then(|r| r.command_uuid());
                    let done = messages(&mut to_server, [payload]).map_err(psrp)?;
                    if done.is_empty() {
                        // CREATE_PIPELINE is larger than one envelope: its other fragments
                        // follow in Sends.
                        split_command = Some((i, cid));
                    }
                    for m in done {
                        match Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?
                        {
                            Message::CreatePipeline(cp) => {
                                let pid = order.intended(m.header.pid);
                                let index = sc.pipelines.len();
                                sc.pipelines.push(PlannedPipeline {
                                    recorded_id: pid,
                                    exchange: i,
                                    request: *cp,
                                });
                                sc.expected.pipelines.push(ExpectedPipeline::default());
                                by_pid.insert(pid, index);
                                by_command.insert(pid, index);
                                if let Some(cid) = cid {
                                    by_command.insert(cid, index);
                                }
                                sc.steps.push(Step {
                                    exchange: i,
                                    action: Action::Invoke { pipeline: index },
                                });
                            }
                            other => unsupported(
                                i,
                                &format!("{} in a Command", message_name(&other, &m)),
                            ),
                        }
                    }
                }
                Body::Send(send) => {
                    let payloads = send.streams.iter().map(|s| s.data.clone());
                    for m in messages(&mut to_server, payloads).map_err(psrp)? {
                        let pipeline = by_pid.get(&order.intended(m.header.pid)).copied();
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        let action = match (typed, pipeline) {
                            (Message::CreatePipeline(cp), None) if split_command.is_some() => {
                                // The end of a CREATE_PIPELINE whose Command carried the
                                // first fragments: the client invoked it there.
                                let Some((at, cid)) = split_command.take() else {
                                    continue;
                                };
                                let pid = order.intended(m.header.pid);
                                let index = sc.pipelines.len();
                                sc.pipelines.push(PlannedPipeline {
                                    recorded_id: pid,
                                    exchange: at,
                                    request: *cp,
                                });
                                sc.expected.pipelines.push(ExpectedPipeline::default());
                                by_pid.insert(pid, index);
                                by_command.insert(pid, index);
                                if let Some(cid) = cid {
                                    by_command.insert(cid, index);
                                }
                                Action::Invoke { pipeline: index }
                            }
                            (Message::PipelineInput(value), Some(pipeline)) => {
                                Action::Input { pipeline, value }
                            }
                            (Message::EndOfPipelineInput, Some(pipeline)) => {
                                Action::EndInput { pipeline }
                            }
                            (Message::PipelineHostResponse(response), Some(p)) => {
                                Action::HostReply {
                                    pipeline: Some(p),
                                    response,
                                }
                            }
                            (Message::RunspacePoolHostResponse(response), _) => Action::HostReply {
                                pipeline: None,
                                response,
                            },
                            (Message::SetMaxRunspaces(m), _) => {
                                Action::PoolCall(PoolCallKind::SetMax(m.max_runspaces))
                            }
                            (Message::SetMinRunspaces(m), _) => {
                                Action::PoolCall(PoolCallKind::SetMin(m.min_runspaces))
                            }
                            (Message::GetAvailableRunspaces(_), _) => {
                                Action::PoolCall(PoolCallKind::Available)
                            }
                            (Message::ResetRunspaceState(_), _) => {
                                Action::PoolCall(PoolCallKind::Reset)
                            }
                            (other, _) => {
                                let feature = match m.header.message_type {
                                    MessageType::PublicKey => {
                                        sc.steps.push(Step {
                                            exchange: i,
                                            action: Action::ExchangeKey,
                                        });
                                        continue;
                                    }
                                    MessageType::GetCommandMetadata => {
                                        "GET_COMMAND_METADATA".to_owned()
                                    }
                                    _ => format!("{} in a Send", message_name(&other, &m)),
                                };
                                unsupported(i, &feature);
                                continue;
                            }
                        };
                        // An Invoke belongs to the Command that began it.
                        let exchange = match &action {
                            Action::Invoke { pipeline } => {
                                sc.pipelines.get(*pipeline).map_or(i, |p| p.exchange)
                            }
                            _ => i,
                        };
                        sc.steps.push(Step { exchange, action });
                    }
                }
                Body::Signal(s) => {
                    let cid = s.command_id.as_deref().and_then(parse_uuid_urn);
                    let pipeline = cid.and_then(|c| by_command.get(&c).copied());
                    if s.code.trim().eq_ignore_ascii_case(signal::TERMINATE) {
                        sc.terminate_finished_pipelines = true;
                    } else if let (true, Some(pipeline)) = (
                        s.code.trim().eq_ignore_ascii_case(signal::PS_CTRL_C),
                        pipeline,
                    ) {
                        sc.steps.push(Step {
                            exchange: i,
                            action: Action::Stop { pipeline },
                        });
                    } else {
                        unsupported(i, &format!("Signal {}", s.code));
                    }
                }
                Body::Delete => {
                    deleted = true;
                    sc.steps.push(Step {
                        exchange: i,
                        action: Action::Close,
                    });
                }
                Body::Receive(r) => {
                    let cid = r.command_id.as_deref().and_then(parse_uuid_urn);
                    if let Some(c) =
                        cid.filter(|c| !by_command.contains_key(c) && !sc.attached.contains(c))
                    {
                        // A command this client never started: read it as another's.
                        let index = sc.attached.len();
                        sc.attached.push(c);
                        sc.steps.push(Step {
                            exchange: i,
                            action: Action::Attach { attached: index },
                        });
                    }
                }
                Body::Disconnect(_) => sc.steps.push(Step {
                    exchange: i,
                    action: Action::Disconnect,
                }),
                Body::Reconnect => sc.steps.push(Step {
                    exchange: i,
                    action: Action::Reconnect,
                }),
                Body::Connect(_) => {
                    unsupported(i, "connect to a disconnected pool (WS-Man Connect)")
                }
                Body::Enumerate(_) | Body::Pull(_) => {
                    unsupported(i, "shell enumeration (WS-Enumeration)")
                }
                Body::Get => match env.resource_uri().unwrap_or_default() {
                    uri if uri.eq_ignore_ascii_case(resource::CONFIG) && !created => {
                        sc.read_server_config = true;
                    }
                    uri if uri.eq_ignore_ascii_case(resource::SHELL) && created => {
                        sc.steps.push(Step {
                            exchange: i,
                            action: Action::ShellState,
                        });
                        sc.expected.shell_states.push(recorded_shell_state(ex));
                    }
                    uri => unsupported(i, &format!("WS-Transfer Get of {uri}")),
                },
                _ => unsupported(i, &format!("{} request", env.action().unwrap_or("unknown"))),
            }
            // Expected results, from the recorded responses.
            let Some(resp) = response else { continue };
            match &resp.body {
                Body::ReceiveResponse(r) => {
                    let payloads = r.streams.iter().map(|s| s.data.clone());
                    for m in messages(&mut to_client, payloads).map_err(psrp)? {
                        let pipeline = by_pid.get(&order.intended(m.header.pid)).copied();
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        let slot = pipeline.and_then(|p| sc.expected.pipelines.get_mut(p));
                        match (typed, slot) {
                            (Message::RunspacePoolState(s), _) => {
                                sc.expected.pool_states.push(s.state)
                            }
                            (Message::PipelineOutput(v), Some(p)) => p.output.push(v),
                            (Message::PipelineState(s), Some(p)) => p.state = Some(s.state),
                            (Message::PipelineHostCall(_), Some(p)) => p.host_calls += 1,
                            (Message::EncryptedSessionKey(_), _) => {
                                sc.expected.key_exchanged = true;
                            }
                            (typed, Some(p)) => {
                                if let Some(kind) = record_kind(m.header.message_type) {
                                    let value = match typed {
                                        Message::ErrorRecord(v)
                                        | Message::WarningRecord(v)
                                        | Message::VerboseRecord(v)
                                        | Message::DebugRecord(v)
                                        | Message::ProgressRecord(v)
                                        | Message::InformationRecord(v) => v,
                                        _ => continue,
                                    };
                                    p.records.push((kind, value));
                                }
                            }
                            _ => {}
                        }
                    }
                    if let Some(cs) = &r.command_state
                        && cs.is_done()
                        && let Some(cid) = cs.command_id.as_deref().and_then(parse_uuid_urn)
                        && let Some(p) = by_command
                            .get(&cid)
                            .and_then(|p| sc.expected.pipelines.get_mut(*p))
                        && p.state.is_none()
                    {
                        p.state = Some(PsInvocationState::Completed);
                    }
                }
                Body::DeleteResponse | Body::Empty if matches!(env.body, Body::Delete) => {
                    sc.expected.closed = true;
                }
                _ => {}
            }
        }
        if !created {
            return Err(ReenactError::NotPowerShell(
                "no exchange creates a PowerShell runspace pool".to_owned(),
            ));
        }
        Ok(sc)
    }
}

/// What a recorded shell-state Get answered: alive, not alive (gone, disconnected, timed
/// out, unreachable), or `None` for another error.
fn recorded_shell_state(ex: &crate::transcript::Exchange) -> Option<bool> {
    if matches!(
        ex.transport,
        Some(crate::transcript::TransportEvent::ConnectionError)
    ) {
        return Some(false);
    }
    let resp = ex.response.as_ref()?;
    let env = Envelope::decode(resp.body.as_bytes()).ok()?;
    match env.body {
        Body::GetResponse(rps_wsman::Item::Shell(shell)) => Some(
            !shell
                .state
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("Disconnected")),
        ),
        Body::Fault(f) if f.is_operation_timeout() || f.is_invalid_selectors() => Some(false),
        _ => None,
    }
}

fn message_name(m: &Message, raw: &RawMessage) -> String {
    match m {
        Message::Other { message_type, .. } => message_type.name().to_owned(),
        _ => raw.header.message_type.name().to_owned(),
    }
}

/// How a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The sans-IO session machine, no sockets.
    InMemory,
    /// The async client over HTTP on the loopback interface.
    Loopback,
}

/// One pipeline's recorded and live results.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineReport {
    /// The commands, as text.
    pub commands: String,
    /// Recorded output objects.
    pub expected_output: usize,
    /// Live output objects.
    pub output: usize,
    /// Recorded final state.
    pub expected_state: Option<PsInvocationState>,
    /// Live final state.
    pub state: Option<PsInvocationState>,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The transcript's source.
    pub source: String,
    /// How the check ran.
    pub mode: Mode,
    /// Recorded exchanges.
    pub exchanges: usize,
    /// Live requests that matched a recorded exchange.
    pub matched: usize,
    /// Requests that did not match (the check stops at the first).
    pub mismatches: Vec<Mismatch>,
    /// Differences the replayer accepted.
    pub tolerated: Vec<Tolerated>,
    /// Per pipeline.
    pub pipelines: Vec<PipelineReport>,
    /// Recorded pool states.
    pub expected_pool_states: Vec<RunspacePoolState>,
    /// Pool states the client reported.
    pub pool_states: Vec<RunspacePoolState>,
    /// Differences in results (outputs, records, states), one line each.
    pub diffs: Vec<String>,
    /// Recorded operations the client does not perform (in memory, the check stops at the
    /// first; over loopback it is not run).
    pub unsupported: Vec<Unsupported>,
    /// Errors the client reported (a recorded fault is expected to produce one).
    pub client_errors: Vec<String>,
}

impl Report {
    /// True when every exchange matched and every result is equal.
    pub fn passed(&self) -> bool {
        self.unsupported.is_empty()
            && self.mismatches.is_empty()
            && self.diffs.is_empty()
            && self.matched + self.skipped() == self.exchanges
    }

    /// Recorded exchanges skipped as tolerated.
    pub fn skipped(&self) -> usize {
        self.tolerated
            .iter()
            .filter(|t| t.kind == crate::replayer::ToleranceKind::SkippedRecordedSignal)
            .count()
    }

    /// True when every pipeline's outputs are equal, object by object.
    pub fn outputs_equal(&self) -> bool {
        !self.diffs.iter().any(|d| d.contains("output"))
            && self.pipelines.iter().all(|p| p.expected_output == p.output)
    }

    /// True when pipeline and pool states are equal.
    pub fn states_equal(&self) -> bool {
        self.expected_pool_states == self.pool_states
            && self.pipelines.iter().all(|p| p.expected_state == p.state)
    }

    fn empty(scenario: &Scenario, mode: Mode, exchanges: usize) -> Report {
        Report {
            source: scenario.source.clone(),
            mode,
            exchanges,
            matched: 0,
            mismatches: Vec::new(),
            tolerated: Vec::new(),
            pipelines: Vec::new(),
            expected_pool_states: scenario.expected.pool_states.clone(),
            pool_states: Vec::new(),
            diffs: Vec::new(),
            unsupported: scenario.unsupported.clone(),
            client_errors: Vec::new(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::InMemory => "in memory",
            Mode::Loopback => "over loopback",
        };
        writeln!(
            f,
            "{} ({mode}): {}",
            self.source,
            if self.passed() { "PASS" } else { "FAIL" }
        )?;
        writeln!(
            f,
            "  requests matched: {}/{} ({} skipped as tolerated)",
            self.matched,
            self.exchanges,
            self.skipped()
        )?;
        for u in &self.unsupported {
            writeln!(f, "  unsupported: {u}")?;
        }
        for m in &self.mismatches {
            writeln!(f, "  mismatch: {m}")?;
        }
        for t in &self.tolerated {
            writeln!(f, "  tolerated: {t}")?;
        }
        for (i, p) in self.pipelines.iter().enumerate() {
            writeln!(
                f,
                "  pipeline {i}: {}: outputs {}/{}, state {:?} (recorded {:?})",
                one_line(&p.commands, 100),
                p.output,
                p.expected_output,
                p.state,
                p.expected_state
            )?;
        }
        writeln!(
            f,
            "  pool states: {:?} (recorded {:?})",
            self.pool_states, self.expected_pool_states
        )?;
        for d in &self.diffs {
            writeln!(f, "  diff: {d}")?;
        }
        for e in &self.client_errors {
            writeln!(f, "  client error: {e}")?;
        }
        Ok(())
    }
}

/// `text` on one line (whitespace runs collapsed), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// What the live client produced.
#[derive(Debug, Default)]
struct Actual {
    pipelines: Vec<ExpectedPipeline>,
    pool_states: Vec<RunspacePoolState>,
    shell_states: Vec<Option<bool>>,
}

fn compare(scenario: &Scenario, actual: &Actual, report: &mut Report) {
    for (i, (plan, want)) in scenario
        .pipelines
        .iter()
        .zip(&scenario.expected.pipelines)
        .enumerate()
    {
        let empty = ExpectedPipeline::default();
        let got = actual.pipelines.get(i).unwrap_or(&empty);
        report.pipelines.push(PipelineReport {
            commands: plan.describe(),
            expected_output: want.output.len(),
            output: got.output.len(),
            expected_state: want.state,
            state: got.state,
        });
        if want.output.len() != got.output.len() {
            report.diffs.push(format!(
                "pipeline {i}: {} output objects recorded, {} received",
                want.output.len(),
                got.output.len()
            ));
        }
        for (j, (w, g)) in want.output.iter().zip(&got.output).enumerate() {
            if let Some((p, e, f)) = diff_values(w, g) {
                report.diffs.push(format!(
                    "pipeline {i} output[{j}]{p}: expected {e}, found {f}"
                ));
            }
        }
        let kinds = |r: &[(RecordKind, Value)]| r.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        if kinds(&want.records) != kinds(&got.records) {
            report.diffs.push(format!(
                "pipeline {i}: records {:?} recorded, {:?} received",
                kinds(&want.records),
                kinds(&got.records)
            ));
        } else {
            for (j, ((k, w), (_, g))) in want.records.iter().zip(&got.records).enumerate() {
                if let Some((p, e, f)) = diff_values(w, g) {
                    report.diffs.push(format!(
                        "pipeline {i} record[{j}] ({k:?}){p}: expected {e}, found {f}"
                    ));
                }
            }
        }
        if want.state != got.state {
            report.diffs.push(format!(
                "pipeline {i}: state {:?} recorded, {:?} reached",
                want.state, got.state
            ));
        }
        if want.host_calls != got.host_calls {
            report.diffs.push(format!(
                "pipeline {i}: {} host calls recorded, {} received",
                want.host_calls, got.host_calls
            ));
        }
    }
    if actual.shell_states != scenario.expected.shell_states {
        report.diffs.push(format!(
            "shell states {:?} recorded, {:?} reached",
            scenario.expected.shell_states, actual.shell_states
        ));
    }
    report.pool_states = actual.pool_states.clone();
    if actual.pool_states != scenario.expected.pool_states {
        report.diffs.push(format!(
            "pool states {:?} recorded, {:?} reached",
            scenario.expected.pool_states, actual.pool_states
        ));
    }
}

/// Deterministic live ids, distinct from any recorded one.
fn live_uuid(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128(
        0x7e57_0000_0000_4000_8000_0000_0000_0000 | (u128::from(kind) << 96) | n as u128,
    )
}

/// Drives the sans-IO session machine through `transcript` against a [`Replayer`], in
/// memory. Stops at the first mismatch, or at the first recorded operation the client does
/// not perform ([`Report::unsupported`]; the exchanges before it are still checked).
pub fn check_in_memory(transcript: &Transcript) -> Result<Report, ReenactError> {
    let scenario = Scenario::from_transcript(transcript)?;
    Ok(check_scenario_in_memory(&scenario, transcript))
}

/// Like [`check_in_memory`], but the client follows `scenario` (derived from another
/// transcript, or edited) while the replayer serves `transcript`: shows how a recording
/// differs from what a client does.
pub fn check_scenario_in_memory(scenario: &Scenario, transcript: &Transcript) -> Report {
    let mut report = Report::empty(scenario, Mode::InMemory, transcript.exchanges.len());
    // With an unsupported operation, re-enact what comes before it.
    let stop_at = scenario.unsupported.first().map(|u| u.exchange);
    let mut replayer = Replayer::new(transcript.clone());
    let mut config = SessionConfig::new(scenario.to.clone(), &scenario.configuration);
    config.resource_uri = scenario.resource_uri.clone();
    config.pool = scenario.pool.clone();
    config.terminate_finished_pipelines = scenario.terminate_finished_pipelines;
    config.create_options = scenario.create_options.clone();
    config.read_server_config = scenario.read_server_config;
    if scenario.session_id {
        config.session_id = Some(live_uuid(1, 0));
    }
    let mut session = Session::new(
        config,
        live_uuid(2, 0),
        Box::new(rps_session::machine::SequentialIds::default()),
    );
    let live_pid: Vec<Uuid> = (0..scenario.pipelines.len())
        .map(|i| live_uuid(3, i))
        .collect();
    let live_attached: Vec<Uuid> = (0..scenario.attached.len())
        .map(|i| live_uuid(4, i))
        .collect();
    let pipeline_of = |id: Uuid| live_pid.iter().position(|p| *p == id);
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    if let Err(e) = session.open() {
        report.client_errors.push(e.to_string());
        return report;
    }
    let mut next_step = 0;
    let mut guard = 0usize;
    loop {
        if stop_at.is_some_and(|at| replayer.position() >= at) {
            break;
        }
        guard += 1;
        if guard > 100_000 {
            report
                .client_errors
                .push("the client loops without end".to_owned());
            break;
        }
        // Carry out the actions the recording has reached.
        let apply_one = |step: &Step, session: &mut Session| -> Result<(), String> {
            let pid = |p: usize| live_pid.get(p).copied().unwrap_or_default();
            match &step.action {
                Action::Invoke { pipeline } => {
                    let Some(plan) = scenario.pipelines.get(*pipeline) else {
                        return Err(format!("no pipeline {pipeline}"));
                    };
                    session
                        .invoke(pid(*pipeline), plan.request.clone())
                        .map_err(|e| e.to_string())
                }
                Action::Input { pipeline, value } => session
                    .send_input(pid(*pipeline), value.clone())
                    .map_err(|e| e.to_string()),
                Action::EndInput { pipeline } => {
                    session.end_input(pid(*pipeline)).map_err(|e| e.to_string())
                }
                Action::HostReply { pipeline, response } => session
                    .host_reply(HostReply {
                        pipeline_id: pipeline.map(pid),
                        response: response.clone(),
                    })
                    .map_err(|e| e.to_string()),
                Action::Stop { pipeline } => {
                    session.stop(pid(*pipeline)).map_err(|e| e.to_string())
                }
                Action::PoolCall(call) => match call {
                    PoolCallKind::SetMax(n) => session.set_max_runspaces(*n),
                    PoolCallKind::SetMin(n) => session.set_min_runspaces(*n),
                    PoolCallKind::Available => session.get_available_runspaces(),
                    PoolCallKind::Reset => session.reset_runspace_state(),
                }
                .map(|_| ())
                .map_err(|e| e.to_string()),
                Action::ShellState => session.query_shell_state().map_err(|e| e.to_string()),
                Action::ExchangeKey => session
                    .exchange_key(replay_key().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string()),
                Action::Disconnect => session.disconnect().map_err(|e| e.to_string()),
                Action::Reconnect => session.reconnect().map_err(|e| e.to_string()),
                Action::Attach { attached } => session
                    .attach_pipeline(live_attached.get(*attached).copied().unwrap_or_default())
                    .map_err(|e| e.to_string()),
                Action::Close => {
                    session.close();
                    Ok(())
                }
            }
        };
        while let Some(step) = scenario.steps.get(next_step)
            && step.exchange <= replayer.position()
        {
            if let Err(e) = apply_one(step, &mut session) {
                report
                    .client_errors
                    .push(format!("exchange #{}: {e}", step.exchange));
            }
            next_step += 1;
        }
        let request = match session.poll_request() {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Idle: the next action is due (its exchange follows a skipped one), or done.
                if let Some(step) = scenario.steps.get(next_step) {
                    if let Err(e) = apply_one(step, &mut session) {
                        report
                            .client_errors
                            .push(format!("exchange #{}: {e}", step.exchange));
                    }
                    next_step += 1;
                    continue;
                }
                break;
            }
            Err(e) => {
                report.client_errors.push(e.to_string());
                break;
            }
        };
        match replayer.handle(&request.body) {
            Ok(resp) => {
                let r = if resp.drop_connection {
                    session.handle_transport_error("connection dropped (recorded)")
                } else {
                    session.handle_response(resp.status, &resp.body)
                };
                if r.is_err() && request.operation == Operation::ShellState {
                    actual.shell_states.push(None);
                }
                if let Err(e) = r {
                    report.client_errors.push(format!(
                        "exchange #{}: {e}",
                        replayer.position().saturating_sub(1)
                    ));
                }
            }
            Err(m) => {
                report.mismatches.push(m);
                break;
            }
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Opened { .. } => actual.pool_states.push(RunspacePoolState::Opened),
                SessionEvent::ShellState { alive, .. } => actual.shell_states.push(Some(alive)),
                SessionEvent::PoolState { state, .. } => actual.pool_states.push(state),
                SessionEvent::Output { pipeline_id, value } => {
                    if let Some(slot) =
                        pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p))
                    {
                        slot.output.push(value);
                    }
                }
                SessionEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                } => {
                    if let Some(slot) =
                        pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p))
                    {
                        slot.records.push((kind, value));
                    }
                }
                SessionEvent::HostCall(call) => {
                    if let Some(slot) = call
                        .pipeline_id
                        .and_then(pipeline_of)
                        .and_then(|p| actual.pipelines.get_mut(p))
                    {
                        slot.host_calls += 1;
                    }
                }
                SessionEvent::PipelineFinished {
                    pipeline_id, state, ..
                } => {
                    if let Some(slot) =
                        pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p))
                    {
                        slot.state = Some(state);
                    }
                }
                SessionEvent::PipelineError { message, .. } => {
                    report.client_errors.push(message);
                }
                _ => {}
            }
        }
    }
    finish(scenario, &replayer, &actual, &mut report);
    report
}

fn finish(scenario: &Scenario, replayer: &Replayer, actual: &Actual, report: &mut Report) {
    report.matched = replayer.matched();
    report.tolerated = replayer.tolerated().to_vec();
    if report.mismatches.is_empty() && report.unsupported.is_empty() && !replayer.is_finished() {
        let at = replayer.position();
        let next = replayer
            .transcript()
            .exchanges
            .get(at)
            .and_then(|e| Envelope::decode(e.request.body.as_bytes()).ok())
            .and_then(|e| {
                e.action()
                    .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
            })
            .unwrap_or_default();
        report.mismatches.push(Mismatch {
            exchange: at,
            field_path: "exchange".to_owned(),
            expected: format!("a {next} request"),
            found: "no request: the client stopped".to_owned(),
        });
    }
    compare(scenario, actual, report);
}

/// The RSA key the re-enacting client offers for a session key exchange: made once per
/// process (1024 bits: a replayed server never uses it, and the recorded key is replaced
/// by the live one under [`crate::replayer::ToleranceKind::ClientPublicKey`]).
fn replay_key() -> Result<rsa::RsaPrivateKey, rsa::Error> {
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    if let Some(k) = KEY.get() {
        return Ok(k.clone());
    }
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024)?;
    Ok(KEY.get_or_init(|| key).clone())
}

/// How long the loopback client waits for a session key the recording never sent.
const KEY_WAIT_UNANSWERED: Duration = Duration::from_millis(300);

/// The longest a recorded delay is honoured over loopback.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// How long a loopback check may take.
const LOOPBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves a [`Replayer`] over HTTP on 127.0.0.1 and runs the async [`RunspacePool`] client
/// against it (plain http, no credentials). Pipelines run one after the other, in recorded
/// order, with their recorded input; host calls that need an answer get the recorded host
/// responses, in order.
pub async fn check_over_loopback(transcript: &Transcript) -> Result<Report, ReenactError> {
    let scenario = Scenario::from_transcript(transcript)?;
    let mut report = Report::empty(&scenario, Mode::Loopback, transcript.exchanges.len());
    if !scenario.unsupported.is_empty() {
        return Ok(report);
    }
    let replayer = Arc::new(Mutex::new(Replayer::new(transcript.clone())));
    let mismatches: Arc<Mutex<Vec<Mismatch>>> = Arc::default();
    let gate = Arc::new(InputGate::default());
    let server = {
        let replayer = replayer.clone();
        let mismatches = mismatches.clone();
        let gate = gate.clone();
        crate::server::Server::bind("127.0.0.1:0", move |req: crate::server::Request| {
            let replayer = replayer.clone();
            let mismatches = mismatches.clone();
            let gate = gate.clone();
            async move {
                let (result, hold) = match replayer.lock() {
                    Ok(mut r) => {
                        let result = r.handle(&req.body);
                        (result, input_follows(&r))
                    }
                    Err(_) => {
                        return crate::server::Response::text(500, "replayer poisoned");
                    }
                };
                match result {
                    Ok(resp) => {
                        if hold {
                            gate.command_seen.notify_one();
                            let _ =
                                tokio::time::timeout(GATE_WAIT, gate.input_queued.notified()).await;
                        }
                        serve(resp).await
                    }
                    Err(m) => {
                        let text = m.to_string();
                        if let Ok(mut all) = mismatches.lock()
                            && all.is_empty()
                        {
                            all.push(m);
                        }
                        crate::server::Response::text(500, format!("replay mismatch: {text}"))
                    }
                }
            }
        })
        .await
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            report.client_errors.push(format!("loopback server: {e}"));
            return Ok(report);
        }
    };
    let url = format!("{}/wsman", server.url());
    let actual = tokio::time::timeout(LOOPBACK_TIMEOUT, run_client(&scenario, &url, &gate))
        .await
        .unwrap_or_else(|_| {
            (
                Actual::default(),
                vec![format!(
                    "the client did not finish within {LOOPBACK_TIMEOUT:?}"
                )],
            )
        });
    server.shutdown().await;
    report.client_errors.extend(actual.1);
    if let Ok(m) = mismatches.lock() {
        report.mismatches.extend(m.iter().cloned());
    }
    let replayer = match replayer.lock() {
        Ok(r) => r.clone(),
        Err(_) => return Ok(report),
    };
    finish(&scenario, &replayer, &actual.0, &mut report);
    Ok(report)
}

/// The handshake that keeps a pipeline's input in the recorded order over loopback.
///
/// The async API takes a pipeline's input only after `invoke_request` returns, so the
/// input may reach the driver before the Command goes out (the machine then packs it into
/// the Command) or after the driver has polled a Receive; a real server accepts both, a
/// replay does not. When the recording sends input right after a Command, the server
/// holds the CommandResponse until the client has queued the input.
#[derive(Debug, Default)]
struct InputGate {
    /// The server received the Command.
    command_seen: tokio::sync::Notify,
    /// The client queued the pipeline's input.
    input_queued: tokio::sync::Notify,
}

/// The longest either side of the [`InputGate`] waits.
const GATE_WAIT: Duration = Duration::from_secs(5);

/// True when the exchange just replayed was a Command and the recording sends input next
/// (see [`InputGate`]).
fn input_follows(replayer: &Replayer) -> bool {
    let at = replayer.position();
    let action = |i: usize| {
        let ex = replayer.transcript().exchanges.get(i)?;
        let env = Envelope::decode(ex.request.body.as_bytes()).ok()?;
        env.action().map(str::to_owned)
    };
    at > 0
        && action(at - 1).as_deref() == Some(rps_wsman::ns::action::COMMAND)
        && action(at).as_deref() == Some(rps_wsman::ns::action::SEND)
}

async fn serve(resp: ReplayResponse) -> crate::server::Response {
    if let Some(d) = resp.delay {
        tokio::time::sleep(d.min(MAX_DELAY)).await;
    }
    if resp.drop_connection {
        return crate::server::Response::dropped();
    }
    let mut out = crate::server::Response::new(resp.status).with_body(resp.body);
    if !resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        out = out.with_header("Content-Type", "application/soap+xml;charset=UTF-8");
    }
    for (n, v) in resp.headers {
        out = out.with_header(n, v);
    }
    out
}

async fn run_client(scenario: &Scenario, url: &str, gate: &InputGate) -> (Actual, Vec<String>) {
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut errors = Vec::new();
    let url = match url.parse() {
        Ok(u) => u,
        Err(e) => return (actual, vec![format!("bad loopback url {url}: {e}")]),
    };
    let endpoint = rps_session::http::Endpoint {
        url,
        configuration: scenario.configuration.clone(),
        allow_redirection: false,
    };
    let mut options = ConnectOptions::new(endpoint, None);
    options.pool = scenario.pool.clone();
    options.create_options = scenario.create_options.clone();
    options.allow_insecure_http = true;
    options.read_server_config = scenario.read_server_config;
    let pool = match RunspacePool::connect(options).await {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("connect: {e}"));
            return (actual, errors);
        }
    };
    actual.pool_states.push(RunspacePoolState::Opened);
    // Pool-level actions go first, in recorded order (the recordings that make them run no
    // pipeline).
    let mut alive = true;
    for step in &scenario.steps {
        let result = match &step.action {
            Action::PoolCall(call) => match *call {
                PoolCallKind::SetMax(n) => pool.set_max_runspaces(n).await.map(|_| ()),
                PoolCallKind::SetMin(n) => pool.set_min_runspaces(n).await.map(|_| ()),
                PoolCallKind::Available => pool.available_runspaces().await.map(|_| ()),
                PoolCallKind::Reset => pool.reset_runspace_state().await.map(|_| ()),
            },
            Action::ShellState => {
                let r = pool.is_alive().await;
                actual.shell_states.push(r.as_ref().ok().copied());
                alive &= r.as_ref().map_or(true, |a| *a);
                r.map(|_| ())
            }
            Action::ExchangeKey => match replay_key() {
                Ok(key) => {
                    let wait = if scenario.expected.key_exchanged {
                        GATE_WAIT
                    } else {
                        KEY_WAIT_UNANSWERED
                    };
                    pool.exchange_key_with(key, wait).await
                }
                Err(e) => Err(rps_session::Error::KeyGeneration(e.to_string())),
            },
            Action::Disconnect => pool.disconnect().await,
            Action::Reconnect => pool.reconnect().await,
            Action::Attach { attached } => {
                match pool.attach_pipeline(live_uuid(4, *attached)).await {
                    Ok(p) => p.collect().await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            _ => continue,
        };
        if let Err(e) = result {
            errors.push(format!("exchange #{}: {e}", step.exchange));
        }
    }
    for (index, plan) in scenario.pipelines.iter().enumerate() {
        let pipeline = match pool.invoke_request(plan.request.clone()).await {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("pipeline {index}: {e}"));
                continue;
            }
        };
        let has_input = scenario.steps.iter().any(|s| {
            matches!(&s.action, Action::Input { pipeline: p, .. } | Action::EndInput { pipeline: p } if *p == index)
        });
        if has_input {
            let _ = tokio::time::timeout(GATE_WAIT, gate.command_seen.notified()).await;
        }
        for step in &scenario.steps {
            let r = match &step.action {
                Action::Input { pipeline: p, value } if *p == index => {
                    pipeline.send_input(value.clone())
                }
                Action::EndInput { pipeline: p } if *p == index => pipeline.end_input(),
                Action::Stop { pipeline: p } if *p == index => pipeline.stop(),
                _ => Ok(()),
            };
            if let Err(e) = r {
                errors.push(format!("pipeline {index}: {e}"));
            }
        }
        if has_input {
            gate.input_queued.notify_one();
        }
        // The recorded answers to this pipeline's host calls, in order.
        let mut replies: std::collections::VecDeque<HostResponse> = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::HostReply {
                    pipeline: Some(p),
                    response,
                } if *p == index => Some(response.clone()),
                _ => None,
            })
            .collect();
        let mut pipeline = pipeline;
        let Some(slot) = actual.pipelines.get_mut(index) else {
            continue;
        };
        while let Some(event) = pipeline.next_event().await {
            match event {
                Ok(PipelineEvent::Output(v)) => slot.output.push(v),
                Ok(PipelineEvent::Record { kind, value }) => slot.records.push((kind, value)),
                Ok(PipelineEvent::HostCall(call)) => {
                    slot.host_calls += 1;
                    if call.needs_reply() {
                        let reply = match replies.pop_front() {
                            Some(response) => HostReply {
                                pipeline_id: call.pipeline_id,
                                response,
                            },
                            None => call.fail(Value::Str("no recorded host response".into())),
                        };
                        if let Err(e) = pipeline.host_reply(reply) {
                            errors.push(format!("pipeline {index}: {e}"));
                        }
                    }
                }
                Ok(PipelineEvent::Finished { state, .. }) => slot.state = Some(state),
                Ok(_) => {}
                Err(e) => {
                    errors.push(format!("pipeline {index}: {e}"));
                    break;
                }
            }
        }
    }
    if alive && let Err(e) = pool.close().await {
        errors.push(format!("close: {e}"));
    }
    (actual, errors)
}

/// Renders what the transcript's pipelines produced (the recorded outputs), for printing:
/// one block per pipeline with its commands, its output objects one per line, its records
/// and its final state.
pub fn render_outputs(scenario: &Scenario) -> String {
    let mut out = String::new();
    for (i, (plan, want)) in scenario
        .pipelines
        .iter()
        .zip(&scenario.expected.pipelines)
        .enumerate()
    {
        let _ = writeln!(out, "# pipeline {i}: {}", plan.describe());
        for v in &want.output {
            let _ = writeln!(out, "{}", display_value(v));
        }
        for (kind, v) in &want.records {
            let text = v
                .as_object()
                .and_then(|o| o.to_string.clone())
                .unwrap_or_else(|| display_value(v));
            let _ = writeln!(out, "[{kind:?}] {text}");
        }
        let state = want
            .state
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}"));
        let _ = writeln!(
            out,
            "# state: {state}, {} output objects",
            want.output.len()
        );
    }
    if !scenario.expected.pool_states.is_empty() {
        let _ = writeln!(out, "# pool states: {:?}", scenario.expected.pool_states);
    }
    out
}
