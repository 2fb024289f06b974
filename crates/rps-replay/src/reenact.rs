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
use rps_session::enumerate::ShellLister;
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
    /// Open the pool (create the shell).
    OpenPool,
    /// Take over the disconnected pool of [`PlannedPool::takes_over`] (WS-Man Connect).
    ConnectPool,
    /// List the user's shells and their commands (WS-Enumeration).
    ListShells,
    /// Take over a pipeline of a pool taken over (WS-Man Connect to the command).
    ConnectPipeline {
        /// The pipeline index.
        pipeline: usize,
    },
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
    /// The pool it acts on ([`Scenario::pools`]).
    pub pool: usize,
    /// The action.
    pub action: Action,
}

/// A runspace pool the recorded client opened or took over.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPool {
    /// The recorded ShellId.
    pub recorded_shell: Option<Uuid>,
    /// The exchange of its Create or Connect.
    pub exchange: usize,
    /// Its settings (from the recorded INIT_RUNSPACEPOOL).
    pub config: PoolConfig,
    /// For a pool taken over with a WS-Man Connect: the pool (index) whose shell it is.
    pub takes_over: Option<usize>,
}

/// A pipeline the recorded client ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPipeline {
    /// The recorded pipeline id (PID, the CommandId the client chose).
    pub recorded_id: Uuid,
    /// The exchange of its Command.
    pub exchange: usize,
    /// The pool it runs in.
    pub pool: usize,
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
    /// The pools, in the order they were opened or taken over.
    pub pools: Vec<PlannedPool>,
    /// The pool each recorded exchange belongs to (`None` for enumerations).
    pub exchange_pools: Vec<Option<usize>>,
    /// The WS-Man session each recorded exchange was sent in: the index of its
    /// `wsmv:SessionId` among the distinct ones of the recording (`None` without one).
    pub exchange_sessions: Vec<Option<usize>>,
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
            pools: Vec::new(),
            exchange_pools: Vec::new(),
            exchange_sessions: Vec::new(),
            pipelines: Vec::new(),
            attached: Vec::new(),
            read_server_config: false,
            steps: Vec::new(),
            expected: Expected::default(),
            unsupported: Vec::new(),
            guid_order: order,
        };
        let mut created = false;
        // ShellId (recorded) -> pool index.
        let mut by_shell: HashMap<Uuid, usize> = HashMap::new();
        let mut last_pool = 0usize;
        // The distinct recorded WS-Man SessionIds, in order of appearance.
        let mut session_ids: Vec<Uuid> = Vec::new();
        // Pools taken over that opened on their application private data.
        let mut opened_on_data: std::collections::HashSet<Uuid> = Default::default();
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
            // The pool this exchange belongs to: a new one for a Create or a pool Connect,
            // else the one its ShellId names.
            let named = env
                .header
                .selectors
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case("ShellId"))
                .and_then(|s| parse_uuid_urn(&s.value))
                .and_then(|id| by_shell.get(&id).copied());
            let cur_pool = match &env.body {
                Body::Create(_) => sc.pools.len(),
                Body::Connect(c) if c.connect_xml.is_some() => sc.pools.len(),
                Body::Enumerate(_) | Body::Pull(_) => usize::MAX,
                _ => named.unwrap_or(last_pool),
            };
            sc.exchange_pools
                .push((cur_pool != usize::MAX).then_some(cur_pool));
            let session = env
                .header
                .session_id
                .as_deref()
                .and_then(parse_uuid_urn)
                .map(|s| match session_ids.iter().position(|k| *k == s) {
                    Some(k) => k,
                    None => {
                        session_ids.push(s);
                        session_ids.len() - 1
                    }
                });
            sc.exchange_sessions.push(session);
            if cur_pool != usize::MAX {
                last_pool = cur_pool;
            }
            match &env.body {
                Body::Create(shell) => {
                    let uri = env.resource_uri().unwrap_or_default();
                    if uri.eq_ignore_ascii_case(resource::CMD) || shell.creation_xml.is_none() {
                        return Err(ReenactError::NotPowerShell(format!(
                            "exchange #{i} creates a WinRS shell ({uri})"
                        )));
                    }
                    let first = !created;
                    created = true;
                    let recorded_shell = shell
                        .shell_id
                        .as_deref()
                        .and_then(parse_uuid_urn)
                        .or_else(|| response.as_ref().and_then(|r| r.shell_uuid()));
                    for id in [
                        recorded_shell,
                        response.as_ref().and_then(|r| r.shell_uuid()),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        by_shell.insert(id, cur_pool);
                    }
                    let data = shell.creation_xml.clone().unwrap_or_default();
                    let mut config = PoolConfig::default();
                    let version = env
                        .header
                        .option("protocolversion")
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_else(|| "2.3".to_owned());
                    for m in messages(&mut to_server, [data]).map_err(psrp)? {
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        if let Message::InitRunspacePool(init) = typed {
                            config = PoolConfig {
                                min_runspaces: init.min_runspaces,
                                max_runspaces: init.max_runspaces,
                                thread_options: init.thread_options,
                                apartment_state: init.apartment_state,
                                host_info: init.host_info,
                                application_arguments: init.application_arguments,
                                protocol_version: version.clone(),
                                ..PoolConfig::default()
                            };
                        }
                    }
                    sc.pools.push(PlannedPool {
                        recorded_shell,
                        exchange: i,
                        config: config.clone(),
                        takes_over: None,
                    });
                    sc.steps.push(Step {
                        exchange: i,
                        pool: cur_pool,
                        action: Action::OpenPool,
                    });
                    if !first {
                        continue;
                    }
                    sc.pool = config;
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
                                    pool: cur_pool,
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
                                    pool: cur_pool,
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
                                    pool: cur_pool,
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
                                            pool: cur_pool,
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
                        sc.steps.push(Step {
                            exchange,
                            pool: cur_pool,
                            action,
                        });
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
                            pool: cur_pool,
                            action: Action::Stop { pipeline },
                        });
                    } else {
                        unsupported(i, &format!("Signal {}", s.code));
                    }
                }
                Body::Delete => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Close,
                }),
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
                            pool: cur_pool,
                            action: Action::Attach { attached: index },
                        });
                    }
                }
                Body::Disconnect(_) => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Disconnect,
                }),
                Body::Reconnect => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Reconnect,
                }),
                Body::Connect(c) if c.connect_xml.is_some() => {
                    // A new pool object takes over the disconnected shell.
                    let Some(orig) = named else {
                        unsupported(i, "connect to a pool the recording did not open");
                        continue;
                    };
                    let data = c.connect_xml.clone().unwrap_or_default();
                    messages(&mut to_server, [data]).map_err(psrp)?;
                    let recorded_shell = sc.pools.get(orig).and_then(|p| p.recorded_shell);
                    let config = sc
                        .pools
                        .get(orig)
                        .map(|p| p.config.clone())
                        .unwrap_or_default();
                    if let Some(id) = recorded_shell {
                        by_shell.insert(id, cur_pool);
                    }
                    sc.pools.push(PlannedPool {
                        recorded_shell,
                        exchange: i,
                        config,
                        takes_over: Some(orig),
                    });
                    sc.steps.push(Step {
                        exchange: i,
                        pool: cur_pool,
                        action: Action::ConnectPool,
                    });
                }
                Body::Connect(c) => {
                    let cid = c.command_id.as_deref().and_then(parse_uuid_urn);
                    match cid.and_then(|c| by_command.get(&c).copied()) {
                        Some(pipeline) => sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
                            action: Action::ConnectPipeline { pipeline },
                        }),
                        None => unsupported(i, "connect to a command the recording did not start"),
                    }
                }
                Body::Enumerate(e)
                    if env
                        .resource_uri()
                        .is_some_and(|u| u.eq_ignore_ascii_case(resource::SHELL))
                        && e.filter.is_none() =>
                {
                    sc.steps.push(Step {
                        exchange: i,
                        pool: last_pool,
                        action: Action::ListShells,
                    });
                }
                // The command enumerations and Pulls of a shell listing.
                Body::Enumerate(_) | Body::Pull(_) => {}
                Body::Get => match env.resource_uri().unwrap_or_default() {
                    uri if uri.eq_ignore_ascii_case(resource::CONFIG) && !created => {
                        sc.read_server_config = true;
                    }
                    uri if uri.eq_ignore_ascii_case(resource::SHELL) && created => {
                        sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
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
                Body::ConnectResponse(c) => {
                    if let Some(x) = &c.connect_response_xml {
                        messages(&mut to_client, [x.clone()]).map_err(psrp)?;
                    }
                }
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
                            (Message::ApplicationPrivateData(_), _) => {
                                // A pool taken over opens on its private data when the
                                // server announces no state.
                                let rpid = order.intended(m.header.rpid);
                                let taken_over = by_shell
                                    .get(&rpid)
                                    .and_then(|p| sc.pools.get(*p))
                                    .is_some_and(|p| p.takes_over.is_some());
                                if taken_over && opened_on_data.insert(rpid) {
                                    sc.expected.pool_states.push(RunspacePoolState::Opened);
                                }
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
    let base = in_memory_config(scenario);
    let live_pid: Vec<Uuid> = (0..scenario.pipelines.len())
        .map(|i| live_uuid(3, i))
        .collect();
    let live_attached: Vec<Uuid> = (0..scenario.attached.len())
        .map(|i| live_uuid(4, i))
        .collect();
    // A pool taken over keeps the shell (and pool) id of the one it takes over.
    let live_shell = |mut pool: usize| {
        while let Some(orig) = scenario.pools.get(pool).and_then(|p| p.takes_over) {
            pool = orig;
        }
        live_uuid(2, pool)
    };
    let pipeline_of = |id: Uuid| live_pid.iter().position(|p| *p == id);
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut sessions: Vec<Option<Session>> = Vec::new();
    sessions.resize_with(scenario.pools.len().max(1), || None);
    let mut lister: Option<ShellLister> = None;
    // One MessageID sequence for every pool and the listing, as one client has.
    let ids = SharedIds::default();
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
        let apply_one = |step: &Step,
                         sessions: &mut Vec<Option<Session>>,
                         lister: &mut Option<ShellLister>|
         -> Result<(), String> {
            let pid = |p: usize| live_pid.get(p).copied().unwrap_or_default();
            let plan = scenario.pools.get(step.pool);
            let mut base = base.clone();
            if scenario.session_id {
                let k = scenario
                    .exchange_sessions
                    .get(step.exchange)
                    .copied()
                    .flatten()
                    .unwrap_or(0);
                base.session_id = Some(live_uuid(1, k));
            }
            if matches!(step.action, Action::OpenPool | Action::ConnectPool) {
                let mut config = base.clone();
                if let Some(plan) = plan {
                    config.pool = plan.config.clone();
                }
                let mut session =
                    Session::new(config, live_shell(step.pool), Box::new(ids.clone()));
                match step.action {
                    Action::OpenPool => session.open(),
                    _ => session.connect(),
                }
                .map_err(|e| e.to_string())?;
                if let Some(slot) = sessions.get_mut(step.pool) {
                    *slot = Some(session);
                }
                return Ok(());
            }
            if step.action == Action::ListShells {
                *lister = Some(ShellLister::new(&base, Box::new(ids.clone())));
                return Ok(());
            }
            let Some(session) = sessions.get_mut(step.pool).and_then(Option::as_mut) else {
                return Err(format!("pool {} is not open", step.pool));
            };
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
                Action::ConnectPipeline { pipeline } => session
                    .connect_pipeline(pid(*pipeline))
                    .map_err(|e| e.to_string()),
                Action::Close => {
                    session.close();
                    Ok(())
                }
                Action::OpenPool | Action::ConnectPool | Action::ListShells => Ok(()),
            }
        };
        while let Some(step) = scenario.steps.get(next_step)
            && step.exchange <= replayer.position()
        {
            if let Err(e) = apply_one(step, &mut sessions, &mut lister) {
                report
                    .client_errors
                    .push(format!("exchange #{}: {e}", step.exchange));
            }
            next_step += 1;
        }
        // The listing first, else the pool the recording's next exchange belongs to.
        let pool = scenario
            .exchange_pools
            .get(replayer.position())
            .copied()
            .flatten()
            .unwrap_or(0);
        let polled = match lister.as_mut().and_then(ShellLister::poll_request) {
            Some(r) => Ok(Some(r)),
            None => match sessions.get_mut(pool).and_then(Option::as_mut) {
                Some(session) => session.poll_request(),
                None => Ok(None),
            },
        };
        let request = match polled {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Idle: the next action is due (its exchange follows a skipped one), or done.
                if let Some(step) = scenario.steps.get(next_step) {
                    if let Err(e) = apply_one(step, &mut sessions, &mut lister) {
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
        let listing = matches!(request.operation, Operation::Enumerate | Operation::Pull);
        match replayer.handle(&request.body) {
            Ok(resp) => {
                let r = match (listing, lister.as_mut(), sessions.get_mut(pool)) {
                    (true, Some(l), _) => {
                        let r = if resp.drop_connection {
                            Err(rps_session::machine::SessionError::Transport {
                                operation: request.operation.name(),
                                message: "connection dropped (recorded)".to_owned(),
                            })
                        } else {
                            l.handle_response(resp.status, &resp.body)
                        };
                        if l.is_done() || r.is_err() {
                            lister = None;
                        }
                        r
                    }
                    (false, _, Some(Some(session))) => {
                        if resp.drop_connection {
                            session.handle_transport_error("connection dropped (recorded)")
                        } else {
                            session.handle_response(resp.status, &resp.body)
                        }
                    }
                    _ => Ok(()),
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
        for session in sessions.iter_mut().flatten() {
            while let Some(ev) = session.poll_event() {
                record_event(ev, &pipeline_of, &mut actual, &mut report);
            }
        }
    }
    finish(scenario, &replayer, &actual, &mut report);
    report
}

/// MessageIDs `...01`, `...02`, ... shared by every request source of one re-enactment.
#[derive(Debug, Default, Clone)]
struct SharedIds(Arc<std::sync::atomic::AtomicU64>);

impl rps_session::machine::IdSource for SharedIds {
    fn next_id(&mut self) -> Uuid {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Uuid::from_u128(u128::from(n))
    }
}

/// The session configuration of an in-memory re-enactment.
fn in_memory_config(scenario: &Scenario) -> SessionConfig {
    let mut config = SessionConfig::new(scenario.to.clone(), &scenario.configuration);
    config.resource_uri = scenario.resource_uri.clone();
    config.pool = scenario.pool.clone();
    config.terminate_finished_pipelines = scenario.terminate_finished_pipelines;
    config.create_options = scenario.create_options.clone();
    config.read_server_config = scenario.read_server_config;
    if scenario.session_id {
        config.session_id = Some(live_uuid(1, 0));
    }
    config
}

/// Files one machine event under the results.
fn record_event(
    ev: SessionEvent,
    pipeline_of: &dyn Fn(Uuid) -> Option<usize>,
    actual: &mut Actual,
    report: &mut Report,
) {
    match ev {
        SessionEvent::Opened { .. } => actual.pool_states.push(RunspacePoolState::Opened),
        SessionEvent::ShellState { alive, .. } => actual.shell_states.push(Some(alive)),
        SessionEvent::PoolState { state, .. } => actual.pool_states.push(state),
        SessionEvent::Output { pipeline_id, value } => {
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
                slot.output.push(value);
            }
        }
        SessionEvent::Record {
            pipeline_id,
            kind,
            value,
        } => {
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
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
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
                slot.state = Some(state);
            }
        }
        SessionEvent::PipelineError { message, .. } => {
            report.client_errors.push(message);
        }
        _ => {}
    }
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
    let client = async {
        if scenario.is_sequential() {
            run_client_steps(&scenario, &url, &gate).await
        } else {
            run_client(&scenario, &url, &gate).await
        }
    };
    let actual = tokio::time::timeout(LOOPBACK_TIMEOUT, client)
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
        && matches!(
            action(at).as_deref(),
            Some(rps_wsman::ns::action::SEND | rps_wsman::ns::action::DISCONNECT)
        )
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

impl Scenario {
    /// True when the recorded client used several pools, disconnected or listed shells:
    /// the loopback client then follows the steps one by one.
    fn is_sequential(&self) -> bool {
        self.pools.len() > 1
            || self.steps.iter().any(|s| {
                matches!(
                    s.action,
                    Action::Disconnect
                        | Action::Reconnect
                        | Action::ConnectPool
                        | Action::ListShells
                        | Action::ConnectPipeline { .. }
                )
            })
    }
}

/// The loopback client's options for `scenario`'s pool `pool`, in the WS-Man session of
/// recorded exchange `exchange`.
fn loopback_options(
    scenario: &Scenario,
    url: &url::Url,
    pool: usize,
    exchange: usize,
) -> ConnectOptions {
    let endpoint = rps_session::http::Endpoint {
        url: url.clone(),
        configuration: scenario.configuration.clone(),
        allow_redirection: false,
    };
    let mut options = ConnectOptions::new(endpoint, None);
    options.pool = scenario
        .pools
        .get(pool)
        .map_or_else(|| scenario.pool.clone(), |p| p.config.clone());
    options.create_options = scenario.create_options.clone();
    options.allow_insecure_http = true;
    options.read_server_config = scenario.read_server_config;
    options.session_id = scenario
        .exchange_sessions
        .get(exchange)
        .copied()
        .flatten()
        .map(|k| live_uuid(1, k));
    options
}

/// Collects a pipeline's events into `slot`; errors go to `errors`.
async fn drain_pipeline(
    mut pipeline: rps_session::Pipeline,
    slot: &mut ExpectedPipeline,
    errors: &mut Vec<String>,
    label: &str,
) {
    while let Some(event) = pipeline.next_event().await {
        match event {
            Ok(PipelineEvent::Output(v)) => slot.output.push(v),
            Ok(PipelineEvent::Record { kind, value }) => slot.records.push((kind, value)),
            Ok(PipelineEvent::HostCall(_)) => slot.host_calls += 1,
            Ok(PipelineEvent::Finished { state, .. }) => slot.state = Some(state),
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("{label}: {e}"));
                break;
            }
        }
    }
}

/// The loopback client for scenarios with several pools, disconnections or shell
/// listings: each recorded step in order, each pool its own [`RunspacePool`]. A pipeline
/// is read to its end when it starts, unless the recording disconnects its pool next
/// (it is then read when taken over).
async fn run_client_steps(
    scenario: &Scenario,
    url: &str,
    gate: &InputGate,
) -> (Actual, Vec<String>) {
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut errors = Vec::new();
    let url: url::Url = match url.parse() {
        Ok(u) => u,
        Err(e) => return (actual, vec![format!("bad loopback url {url}: {e}")]),
    };
    let mut pools: Vec<Option<RunspacePool>> = Vec::new();
    pools.resize_with(scenario.pools.len(), || None);
    // Disconnected pools are kept (not dropped) until the end, like the recorded client's.
    let mut parked: Vec<RunspacePool> = Vec::new();
    let mut shells: Vec<Option<Uuid>> = vec![None; scenario.pools.len()];
    let mut live_pids: Vec<Option<Uuid>> = vec![None; scenario.pipelines.len()];
    let mut waiting: Vec<rps_session::Pipeline> = Vec::new();
    for (k, step) in scenario.steps.iter().enumerate() {
        let at = step.exchange;
        let label = format!("exchange #{at}");
        match &step.action {
            Action::OpenPool | Action::ConnectPool => {
                let options = loopback_options(scenario, &url, step.pool, at);
                let takes_over = scenario.pools.get(step.pool).and_then(|p| p.takes_over);
                let opened = match takes_over {
                    None => RunspacePool::connect(options).await,
                    Some(orig) => match shells.get(orig).copied().flatten() {
                        Some(shell) => RunspacePool::connect_disconnected(options, shell).await,
                        None => {
                            errors.push(format!("{label}: pool {orig} has no shell"));
                            continue;
                        }
                    },
                };
                match opened {
                    Ok(p) => {
                        actual.pool_states.push(RunspacePoolState::Opened);
                        if let Some(slot) = shells.get_mut(step.pool) {
                            *slot = Some(p.shell_id());
                        }
                        if let Some(old) = takes_over.and_then(|o| pools.get_mut(o)?.take()) {
                            parked.push(old);
                        }
                        if let Some(slot) = pools.get_mut(step.pool) {
                            *slot = Some(p);
                        }
                    }
                    Err(e) => errors.push(format!("{label}: {e}")),
                }
                continue;
            }
            Action::ListShells => {
                let options = loopback_options(scenario, &url, step.pool, at);
                if let Err(e) = rps_session::list_shells(&options).await {
                    errors.push(format!("{label}: {e}"));
                }
                continue;
            }
            _ => {}
        }
        let Some(pool) = pools.get(step.pool).and_then(Option::as_ref) else {
            errors.push(format!("{label}: pool {} is not open", step.pool));
            continue;
        };
        let result = match &step.action {
            Action::Invoke { pipeline } => {
                let Some(plan) = scenario.pipelines.get(*pipeline) else {
                    continue;
                };
                match pool.invoke_request(plan.request.clone()).await {
                    Ok(p) => {
                        if let Some(slot) = live_pids.get_mut(*pipeline) {
                            *slot = Some(p.id());
                        }
                        let disconnect_next = scenario
                            .steps
                            .get(k + 1)
                            .is_some_and(|n| n.pool == step.pool && n.action == Action::Disconnect);
                        if disconnect_next {
                            // Read when taken over; the server holds the CommandResponse
                            // until the Disconnect is queued.
                            let _ =
                                tokio::time::timeout(GATE_WAIT, gate.command_seen.notified()).await;
                            waiting.push(p);
                            let disconnect = pool.disconnect();
                            tokio::pin!(disconnect);
                            let early = tokio::select! {
                                biased;
                                r = &mut disconnect => Some(r),
                                () = std::future::ready(()) => None,
                            };
                            gate.input_queued.notify_one();
                            let r = match early {
                                Some(r) => r,
                                None => disconnect.await,
                            };
                            if let Err(e) = r {
                                errors.push(format!("{label}: {e}"));
                            }
                            continue;
                        }
                        if let Some(slot) = actual.pipelines.get_mut(*pipeline) {
                            drain_pipeline(p, slot, &mut errors, &label).await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::ConnectPipeline { pipeline } => {
                let Some(id) = live_pids.get(*pipeline).copied().flatten() else {
                    errors.push(format!("{label}: pipeline {pipeline} was not started"));
                    continue;
                };
                match pool.connect_pipeline(id).await {
                    Ok(p) => {
                        if let Some(slot) = actual.pipelines.get_mut(*pipeline) {
                            drain_pipeline(p, slot, &mut errors, &label).await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::Disconnect => pool.disconnect().await,
            Action::Reconnect => pool.reconnect().await,
            Action::ShellState => {
                let r = pool.is_alive().await;
                actual.shell_states.push(r.as_ref().ok().copied());
                r.map(|_| ())
            }
            Action::Close => match pools.get_mut(step.pool).and_then(Option::take) {
                Some(p) => p.close().await,
                None => Ok(()),
            },
            other => {
                errors.push(format!(
                    "{label}: {other:?} is not re-enacted with several pools"
                ));
                Ok(())
            }
        };
        if let Err(e) = result {
            errors.push(format!("{label}: {e}"));
        }
    }
    drop(waiting);
    drop(parked);
    (actual, errors)
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
