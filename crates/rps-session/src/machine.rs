//! The session machine: sequences WinRS operations around a PSRP runspace pool, sans-IO.
//!
//! The machine knows which WS-Man request must go next (Create with the pool's opening
//! messages, the Receive loop, a Command carrying CREATE_PIPELINE, Send for input and host
//! replies, Signal to stop, Delete on close) and turns the responses into typed events. It
//! does no I/O and reads no clock: MessageIDs come from an injected [`IdSource`], and the
//! shell, session and pipeline ids from the caller.
//!
//! # Call order
//!
//! 1. [`Session::new`] with a [`SessionConfig`], the shell id (the RunspacePool id) and an id
//!    source; then [`Session::open`].
//! 2. Loop: [`Session::poll_request`] gives the next [`WsmanRequest`] (or `None` when the
//!    machine waits for the caller); send it, hand the answer to
//!    [`Session::handle_response`] (or [`Session::handle_transport_error`]); drain
//!    [`Session::poll_event`].
//! 3. Act at any time: [`Session::invoke`], [`Session::send_input`], [`Session::end_input`],
//!    [`Session::stop`], [`Session::host_reply`], [`Session::close`]. Actions only queue
//!    work; the loop carries it out.
//!
//! Only one request is in flight at a time: [`Session::poll_request`] returns `None` until
//! the answer to the previous one has been handled. The one exception is a stop: while a
//! request (typically a Receive long-poll) is in flight, [`Session::poll_signal`] hands out
//! one extra Signal so the driver can send it at once on a second connection, and
//! [`Session::handle_signal_response`] takes its answer. A stop thus never waits for the
//! long-poll to return.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rps_psrp::clixml::Value;
use rps_psrp::event::{ClientEvent, HostReply, PendingHostCall, RecordKind, StreamKind};
use rps_psrp::messages::{CreatePipeline, PsInvocationState, RunspacePoolState};
use rps_psrp::pool::{PoolConfig, RunspacePool};
use rps_wsman::ns::{action, resource, signal};
use rps_wsman::{Body, Envelope, Fault, Header, Item};
use uuid::Uuid;

/// Where MessageIDs come from. The driver uses random ids; tests use a sequence.
pub trait IdSource: Send {
    /// The next id.
    fn next_id(&mut self) -> Uuid;
}

/// Ids `00000000-0000-0000-0000-000000000001`, `...02`, ... for exact tests.
#[derive(Debug, Default, Clone)]
pub struct SequentialIds(u128);

impl IdSource for SequentialIds {
    fn next_id(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}

/// How to open the session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The `wsa:To` address (the endpoint URL).
    pub to: String,
    /// The resource URI of the configuration, e.g.
    /// `http://schemas.microsoft.com/powershell/Microsoft.Exchange`.
    pub resource_uri: String,
    /// `wsman:MaxEnvelopeSize` in bytes for the first requests.
    pub max_envelope_size: u64,
    /// Raise [`SessionConfig::max_envelope_size`] to 512,000 bytes once the server speaks
    /// protocol 2.2 or later (as PowerShell and pypsrp do).
    pub raise_envelope_size: bool,
    /// `wsman:OperationTimeout` in seconds: how long a Receive waits for data.
    pub operation_timeout_secs: u64,
    /// `wsman:Locale` and `wsmv:DataLocale`.
    pub locale: String,
    /// The WS-Man session id (`wsmv:SessionId`), if any.
    pub session_id: Option<Uuid>,
    /// Send a WinRS terminate Signal for each pipeline once it has finished, so the server
    /// frees the command at once (PowerShell does; some clients don't).
    pub terminate_finished_pipelines: bool,
    /// Further WS-Man options on the Create besides `protocolversion`, e.g.
    /// `("WINRS_NOPROFILE", "TRUE")` to skip loading the user's profile.
    pub create_options: Vec<(String, String)>,
    /// The runspace pool's settings.
    pub pool: PoolConfig,
    /// Read the server's WinRM configuration (a WS-Transfer Get) before the Create and use
    /// its `MaxEnvelopeSizekb` instead of [`SessionConfig::max_envelope_size`], for servers
    /// configured below the usual 150 KiB (as pypsrp does when asked).
    pub read_server_config: bool,
    /// The idle timeout a Disconnect asks the server to keep the shell for, in seconds
    /// (`None`: the server's default).
    pub disconnect_idle_timeout_secs: Option<u64>,
    /// Limits on the envelopes the server sends (size, nesting, streams).
    pub wsman_limits: rps_wsman::Limits,
}

impl SessionConfig {
    /// A configuration for `to` and the PowerShell configuration `configuration_name`.
    pub fn new(to: impl Into<String>, configuration_name: &str) -> Self {
        SessionConfig {
            to: to.into(),
            resource_uri: format!("http://schemas.microsoft.com/powershell/{configuration_name}"),
            max_envelope_size: 153_600,
            raise_envelope_size: true,
            operation_timeout_secs: 20,
            locale: "en-US".to_owned(),
            session_id: None,
            terminate_finished_pipelines: true,
            create_options: Vec::new(),
            pool: PoolConfig::default(),
            read_server_config: false,
            disconnect_idle_timeout_secs: None,
            wsman_limits: rps_wsman::Limits::default(),
        }
    }
}

/// The WS-Man operation a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// WS-Transfer Create of the shell.
    Create,
    /// WinRS Receive, from the pool (`None`) or a pipeline.
    Receive(Option<Uuid>),
    /// WinRS Command starting a pipeline.
    Command(Uuid),
    /// WinRS Send to the pool or a pipeline.
    Send(Option<Uuid>),
    /// WinRS Signal to a pipeline.
    Signal(Uuid),
    /// WS-Transfer Delete of the shell.
    Delete,
    /// WS-Transfer Get of the shell: its state on the server ([`Session::query_shell_state`]).
    ShellState,
    /// WS-Transfer Get of the WinRM configuration, for the server's maximum envelope size
    /// ([`SessionConfig::read_server_config`]).
    Config,
    /// WinRS Disconnect of the shell ([`Session::disconnect`]).
    Disconnect,
    /// WinRS Reconnect of the shell ([`Session::reconnect`]).
    Reconnect,
    /// WinRS Connect to a disconnected pool (`None`, [`Session::connect`]) or to one of its
    /// commands ([`Session::connect_pipeline`]).
    Connect(Option<Uuid>),
    /// WS-Enumeration Enumerate of shells or commands ([`crate::enumerate`]).
    Enumerate,
    /// WS-Enumeration Pull of the next page ([`crate::enumerate`]).
    Pull,
}

impl Operation {
    /// The operation's name, for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "Create",
            Operation::Receive(_) => "Receive",
            Operation::Command(_) => "Command",
            Operation::Send(_) => "Send",
            Operation::Signal(_) => "Signal",
            Operation::Delete => "Delete",
            Operation::ShellState | Operation::Config => "Get",
            Operation::Disconnect => "Disconnect",
            Operation::Reconnect => "Reconnect",
            Operation::Connect(_) => "Connect",
            Operation::Enumerate => "Enumerate",
            Operation::Pull => "Pull",
        }
    }
}

/// A request for the driver to send.
#[derive(Debug, Clone)]
pub struct WsmanRequest {
    /// What it is.
    pub operation: Operation,
    /// The MessageID it carries.
    pub message_id: Uuid,
    /// The SOAP envelope.
    pub body: Bytes,
}

/// Why the session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server answered an operation with a SOAP fault.
    #[error("{operation} failed: {}", fault_text(.fault))]
    Fault {
        /// The operation.
        operation: &'static str,
        /// The fault.
        fault: Box<Fault>,
    },
    /// The server answered with an HTTP error and no SOAP fault.
    #[error("{operation} failed with HTTP {status}: {text}")]
    Http {
        /// The operation.
        operation: &'static str,
        /// The status.
        status: u16,
        /// The server's text, shortened.
        text: String,
    },
    /// The response was not a WS-Man envelope.
    #[error("{operation}: bad response: {source}")]
    Envelope {
        /// The operation.
        operation: &'static str,
        /// The decode error.
        source: rps_wsman::Error,
    },
    /// The response was an envelope of the wrong kind.
    #[error("{operation}: unexpected response {found}")]
    Unexpected {
        /// The operation.
        operation: &'static str,
        /// The action found.
        found: String,
    },
    /// The PSRP layer refused the data or the action.
    #[error(transparent)]
    Psrp(#[from] rps_psrp::error::PsrpError),
    /// The PSRP machines refused the action in their state.
    #[error(transparent)]
    PsrpState(#[from] rps_psrp::error::StateError),
    /// The action is not possible in the session's state.
    #[error("cannot {action} while the session is {state}")]
    State {
        /// The action.
        action: &'static str,
        /// The session state.
        state: &'static str,
    },
    /// The transport failed.
    #[error("{operation}: transport failed: {message}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// What happened.
        message: String,
    },
}

impl SessionError {
    /// The WS-Man operation that failed (`Create`, `Receive`, `Command`, `Send`, `Signal`,
    /// `Delete`), when the error came from one.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            SessionError::Fault { operation, .. }
            | SessionError::Http { operation, .. }
            | SessionError::Envelope { operation, .. }
            | SessionError::Unexpected { operation, .. }
            | SessionError::Transport { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// The HTTP status of an HTTP-level refusal, or of the response that carried a fault
    /// (`None` for faults: their status is always 500 on WinRM).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            SessionError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the server no longer knows the shell (deleted, expired or never created):
    /// WS-Man's `InvalidSelectors` fault.
    pub fn is_shell_gone(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => {
                fault.is_invalid_selectors() || fault.wsman_code() == Some(INVALID_SELECTORS_CODE)
            }
            _ => false,
        }
    }

    /// True when the server does not know the command an operation named (it finished and
    /// was freed, or never existed): WinRS answers with the same `InvalidSelectors` fault as
    /// for a missing shell, and says "command identifier" in its message. Only that
    /// pipeline is lost.
    pub fn is_command_gone(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => {
                self.is_shell_gone()
                    && fault
                        .message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("command identifier"))
            }
            _ => false,
        }
    }

    /// True for Exchange's throttle: too many concurrent runspaces for the user.
    pub fn is_max_concurrency(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => fault_text(fault).contains("MaxConcurrency"),
            SessionError::Http { text, .. } => text.contains("MaxConcurrency"),
            _ => false,
        }
    }
}

/// `ERROR_WSMAN_INVALID_SELECTORS`: the shell named in the request does not exist.
const INVALID_SELECTORS_CODE: u32 = 2_150_858_843;

/// The header every request of `config` carries: address, action, resource URI, MessageID,
/// envelope size, OperationTimeout, locales and the session id.
pub(crate) fn request_header(
    config: &SessionConfig,
    action: &str,
    resource_uri: String,
    message_id: Uuid,
    max_envelope_size: u64,
) -> Header {
    let mut h = Header::request(config.to.clone(), action, resource_uri, message_id)
        .with_max_envelope_size(max_envelope_size)
        .with_operation_timeout_secs(config.operation_timeout_secs)
        .with_locale(&config.locale, &config.locale);
    if let Some(sid) = config.session_id {
        h = h.with_session_id(sid);
    }
    h
}

/// `ERROR_WSMAN_OPERATION_TIMEDOUT`.
const OPERATION_TIMEDOUT_CODE: u32 = 0x8033_8029;

/// The text of the first element named `name` (any prefix) in `xml`, trimmed: for the
/// flat WinRM configuration document, whose values are plain text.
pub(crate) fn config_value<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        let end = rest.find(['>', ' ', '/', '\t', '\n', '\r'])?;
        let tag = &rest[..end];
        let local = tag.rsplit(':').next().unwrap_or(tag);
        if local == name {
            let open_end = rest.find('>')?;
            if rest[..open_end].ends_with('/') {
                return Some("");
            }
            let text = &rest[open_end + 1..];
            let close = text.find('<')?;
            return Some(text[..close].trim());
        }
    }
    None
}

fn fault_text(f: &Fault) -> String {
    let msg = f.message().or(f.reason.as_deref()).unwrap_or("SOAP fault");
    match f.wsman_code() {
        Some(code) => format!("{} (code {code})", msg.trim()),
        None => msg.trim().to_owned(),
    }
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The pool is open.
    Opened {
        /// The negotiated protocol version.
        protocol_version: String,
    },
    /// The pool changed state (Broken carries the error).
    PoolState {
        /// The state.
        state: RunspacePoolState,
        /// The error record, when broken.
        error: Option<Value>,
    },
    /// A pipeline output object.
    Output {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The object.
        value: Value,
    },
    /// A record on the error, warning, verbose, debug, progress or information stream.
    Record {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The stream.
        kind: RecordKind,
        /// The record.
        value: Value,
    },
    /// A host call from the server.
    HostCall(PendingHostCall),
    /// A pipeline reached a final state.
    PipelineFinished {
        /// The pipeline.
        pipeline_id: Uuid,
        /// Completed, Failed or Stopped.
        state: PsInvocationState,
        /// The error record, when failed.
        error_record: Option<Value>,
    },
    /// A pipeline failed at the WS-Man level (its command faulted).
    PipelineError {
        /// The pipeline.
        pipeline_id: Uuid,
        /// What went wrong.
        message: String,
    },
    /// The answer to a pool call ([`Session::set_max_runspaces`] and the like).
    Availability {
        /// The call id the call returned.
        call_id: i64,
        /// Success, or the number of free runspaces.
        response: rps_psrp::messages::Availability,
    },
    /// The answer to [`Session::query_shell_state`].
    ShellState {
        /// True when the shell exists and is connected. False when the server no longer
        /// knows it (an `InvalidSelectors` fault), reports it `Disconnected`, timed out, or
        /// could not be reached: the session is then over and no Delete is sent.
        alive: bool,
        /// The `rsp:State` the server reported (`Connected`, `Disconnected`), when it
        /// answered with the shell.
        state: Option<String>,
    },
    /// The shell was disconnected ([`Session::disconnect`]): it lives on the server, its
    /// pipelines keep running, and this or another client can reconnect or connect to it.
    Disconnected,
    /// The shell was reconnected ([`Session::reconnect`]).
    Reconnected,
    /// The session key exchange ([`Session::exchange_key`]) finished: SecureStrings can be
    /// sent and read.
    SessionKeyReady,
    /// The server's WinRM configuration was read ([`SessionConfig::read_server_config`]):
    /// later requests use its maximum envelope size.
    ServerConfig {
        /// The server's `MaxEnvelopeSizekb`, in bytes.
        max_envelope_size: u64,
    },
    /// The shell was deleted.
    Closed,
}

/// The session's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Created by [`Session::new`]; call [`Session::open`] or [`Session::connect`].
    New,
    /// The Create is queued or in flight.
    Creating,
    /// The Connect to a disconnected pool is queued or in flight ([`Session::connect`]).
    Connecting,
    /// The shell is disconnected ([`Session::disconnect`]); [`Session::reconnect`] resumes.
    Disconnected,
    /// The shell exists; waiting for the pool to open.
    Opening,
    /// The pool is open.
    Opened,
    /// Close requested: Delete once pipelines are done.
    Closing,
    /// The shell is gone.
    Closed,
    /// A fatal error ended the session.
    Failed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::New => "new",
            Phase::Creating => "creating",
            Phase::Connecting => "connecting",
            Phase::Disconnected => "disconnected",
            Phase::Opening => "opening",
            Phase::Opened => "opened",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
            Phase::Failed => "failed",
        }
    }
}

#[derive(Debug)]
struct PipeSlot {
    /// The WS-Man CommandId: the pipeline id, unless the server chose another.
    command_id: Uuid,
    commanded: bool,
    finished: bool,
    stop_requested: bool,
    stop_sent: bool,
    terminate_sent: bool,
    /// A WS-Man Connect to the command must go out before its Receives.
    connect_pending: bool,
}

/// The session machine. See the [module docs](self) for the call order.
pub struct Session {
    config: SessionConfig,
    /// The WS-Man ShellId (the pool id, unless the server chose another).
    shell_id: Uuid,
    ids: Box<dyn IdSource>,
    pool: RunspacePool,
    phase: Phase,
    in_flight: Option<Operation>,
    /// The extra stop Signal sent beside the request in flight.
    signal_in_flight: Option<Uuid>,
    /// The extra Signal failed in transit: no other until the request in flight is answered.
    signal_blocked: bool,
    /// The Create succeeded, so the shell exists on the server until deleted.
    created: bool,
    /// Set by [`Session::abandon`]: send nothing but the Delete.
    abandoned: bool,
    /// Fragments split off a Command, to go out in the next Send.
    held: Option<rps_psrp::event::OutgoingData>,
    /// The last Command (or Send) carried the first fragments of a CREATE_PIPELINE that
    /// did not fit: its remaining fragments go out alone.
    continuing: bool,
    /// Pool calls (call-id requests) still waiting for their RUNSPACE_AVAILABILITY.
    pool_calls: usize,
    pipelines: HashMap<Uuid, PipeSlot>,
    order: VecDeque<Uuid>,
    events: VecDeque<SessionEvent>,
    max_envelope_size: u64,
    /// A shell-state Get is queued.
    state_query: bool,
    /// A Disconnect is queued.
    disconnect_requested: bool,
    /// A Reconnect is queued.
    reconnect_requested: bool,
    /// PUBLIC_KEY was queued; the shell stream is read until the session key arrives.
    key_pending: bool,
    /// The server's configuration was read (or is not wanted).
    config_read: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("shell_id", &self.shell_id)
            .field("phase", &self.phase)
            .field("in_flight", &self.in_flight)
            .field("pipelines", &self.pipelines.len())
            .finish_non_exhaustive()
    }
}

/// The length of the fragments of `data` up to the end of its first message, or `None`
/// when that message does not end in `data` (or `data` cannot be parsed: the server will
/// judge it).
fn first_message_end(data: &[u8]) -> Option<usize> {
    let mut rest = data;
    let mut first_object = None;
    while let Ok((frag, after)) = rps_psrp::fragment::parse_fragment(rest) {
        let object = *first_object.get_or_insert(frag.header.object_id);
        rest = after;
        if frag.header.object_id == object && frag.header.is_end() {
            return Some(data.len() - rest.len());
        }
    }
    None
}

/// Bytes an envelope adds around a stream payload: measured by encoding an empty one.
fn payload_budget(max_envelope: u64, overhead: usize) -> usize {
    let room = usize::try_from(max_envelope)
        .unwrap_or(usize::MAX)
        .saturating_sub(overhead)
        .saturating_sub(256);
    // base64 turns 3 bytes into 4 characters.
    (room / 4 * 3).max(64)
}

impl Session {
    /// A session for the shell (runspace pool) `shell_id`.
    pub fn new(config: SessionConfig, shell_id: Uuid, ids: Box<dyn IdSource>) -> Self {
        let pool = RunspacePool::new(shell_id, config.pool.clone());
        let max_envelope_size = config.max_envelope_size;
        Session {
            config,
            shell_id,
            ids,
            pool,
            phase: Phase::New,
            in_flight: None,
            signal_in_flight: None,
            signal_blocked: false,
            created: false,
            abandoned: false,
            held: None,
            continuing: false,
            pool_calls: 0,
            pipelines: HashMap::new(),
            order: VecDeque::new(),
            events: VecDeque::new(),
            max_envelope_size,
            state_query: false,
            disconnect_requested: false,
            reconnect_requested: false,
            key_pending: false,
            config_read: false,
        }
    }

    /// The shell (runspace pool) id.
    pub fn shell_id(&self) -> Uuid {
        self.shell_id
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The endpoint requests go to (updated after a redirect).
    pub fn endpoint(&self) -> &str {
        &self.config.to
    }

    /// Points later requests at `to` (after the transport followed a redirect).
    pub fn set_endpoint(&mut self, to: impl Into<String>) {
        self.config.to = to.into();
    }

    /// The runspace pool (for application private data, protocol version, SecureStrings).
    pub fn pool(&self) -> &RunspacePool {
        &self.pool
    }

    /// True when a request is in flight.
    pub fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// True when the extra stop Signal of [`Session::poll_signal`] is in flight.
    pub fn is_signalling(&self) -> bool {
        self.signal_in_flight.is_some()
    }

    /// True once the server created the shell and until it is deleted: the shell must be
    /// deleted (see [`Session::abandon`]) before the session is dropped.
    pub fn shell_exists(&self) -> bool {
        self.created && self.phase != Phase::Closed
    }

    /// True while the session can still run pipelines or be closed (not Closed or Failed).
    pub fn is_alive(&self) -> bool {
        !matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// Pipelines started and not finished, in start order.
    pub fn running_pipelines(&self) -> Vec<Uuid> {
        self.order
            .iter()
            .copied()
            .filter(|id| self.pipelines.get(id).is_some_and(|p| !p.finished))
            .collect()
    }

    /// True when pipeline `pipeline_id` has been sent to the server in a Command.
    pub fn is_commanded(&self, pipeline_id: Uuid) -> bool {
        self.pipelines
            .get(&pipeline_id)
            .is_some_and(|p| p.commanded)
    }

    /// Gives up on the session after an error (or a refusal to wait any longer): every
    /// pipeline is considered finished without telling the server, and, when the shell
    /// exists, the next [`Session::poll_request`] is its Delete. Events of pipelines that
    /// were running are not produced; the caller reports its own error to them.
    pub fn abandon(&mut self) {
        for slot in self.pipelines.values_mut() {
            slot.finished = true;
            slot.stop_requested = false;
            slot.terminate_sent = true;
        }
        // Undelivered PSRP data (inputs, host replies) would only go to a doomed shell.
        self.abandoned = true;
        if self.created && self.phase != Phase::Closed {
            self.phase = Phase::Closing;
        } else {
            self.phase = Phase::Closed;
        }
    }

    /// True when no pipeline is running and nothing is queued for the server.
    pub fn is_idle(&self) -> bool {
        self.pipelines.values().all(|p| p.finished)
            && !self.pool.has_data_to_send()
            && self.held.is_none()
    }

    /// Queues the Create that opens the pool.
    pub fn open(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::New {
            return Err(self.state_error("open"));
        }
        self.pool.open()?;
        self.phase = Phase::Creating;
        Ok(())
    }

    /// Starts pipeline `pipeline_id` (it becomes the WS-Man CommandId).
    pub fn invoke(
        &mut self,
        pipeline_id: Uuid,
        request: CreatePipeline,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("invoke a pipeline"));
        }
        self.pool.create_pipeline(pipeline_id, request)?;
        self.add_slot(pipeline_id);
        Ok(())
    }

    /// Asks the server to change the pool's maximum runspaces; returns the call id its
    /// [`SessionEvent::Availability`] answer carries.
    pub fn set_max_runspaces(&mut self, max: i32) -> Result<i64, SessionError> {
        self.pool_call("set the maximum runspaces", |p| p.set_max_runspaces(max))
    }

    /// Asks the server to change the pool's minimum runspaces; returns the call id its
    /// [`SessionEvent::Availability`] answer carries.
    pub fn set_min_runspaces(&mut self, min: i32) -> Result<i64, SessionError> {
        self.pool_call("set the minimum runspaces", |p| p.set_min_runspaces(min))
    }

    /// Asks how many runspaces are free; returns the call id of the answer.
    pub fn get_available_runspaces(&mut self) -> Result<i64, SessionError> {
        self.pool_call("get the available runspaces", |p| {
            p.get_available_runspaces()
        })
    }

    /// Asks the server to reset the runspace state (protocol 2.3); returns the call id.
    pub fn reset_runspace_state(&mut self) -> Result<i64, SessionError> {
        self.pool_call("reset the runspace state", |p| p.reset_runspace_state())
    }

    fn pool_call(
        &mut self,
        action: &'static str,
        call: impl FnOnce(&mut RunspacePool) -> Result<i64, rps_psrp::error::StateError>,
    ) -> Result<i64, SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error(action));
        }
        let id = call(&mut self.pool)?;
        self.pool_calls += 1;
        Ok(id)
    }

    /// Asks for command metadata (`Get-Command`-like); the answer arrives as pipeline
    /// `pipeline_id`'s output: a count, then one CommandMetadata object per command.
    pub fn get_command_metadata(
        &mut self,
        pipeline_id: Uuid,
        request: rps_psrp::messages::GetCommandMetadata,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("get command metadata"));
        }
        self.pool.get_command_metadata(pipeline_id, request)?;
        self.add_slot(pipeline_id);
        Ok(())
    }

    fn add_slot(&mut self, pipeline_id: Uuid) {
        self.pipelines.insert(
            pipeline_id,
            PipeSlot {
                command_id: pipeline_id,
                commanded: false,
                finished: false,
                stop_requested: false,
                stop_sent: false,
                terminate_sent: false,
                connect_pending: false,
            },
        );
        self.order.push_back(pipeline_id);
    }

    /// Queues a Connect that takes over the disconnected pool whose shell is this session's
    /// (instead of [`Session::open`]): the shell id passed to [`Session::new`] must be the
    /// server's ShellId, which is the pool's id. The pool is opened once the server has
    /// answered with its state and settings (RUNSPACEPOOL_INIT_DATA); pipelines it still
    /// runs can then be taken over with [`Session::connect_pipeline`].
    pub fn connect(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::New {
            return Err(self.state_error("connect"));
        }
        self.pool.connect()?;
        self.created = true;
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Queues a WS-Transfer Get of the shell, answered by [`SessionEvent::ShellState`]:
    /// whether the shell still exists and is connected. A shell the server no longer knows
    /// or reports disconnected, and a server that cannot be reached, mean "not alive"; the
    /// session is then over without a Delete. Other faults are returned as errors and leave
    /// the session as it was.
    pub fn query_shell_state(&mut self) -> Result<(), SessionError> {
        if !matches!(
            self.phase,
            Phase::Opened | Phase::Opening | Phase::Disconnected
        ) {
            return Err(self.state_error("query the shell state"));
        }
        self.state_query = true;
        Ok(())
    }

    /// Queues a Disconnect: the shell and its running pipelines stay on the server, no
    /// request goes out until [`Session::reconnect`] (or [`Session::close`], which deletes
    /// the shell); another client may take the pool over with [`Session::connect`].
    pub fn disconnect(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("disconnect"));
        }
        self.disconnect_requested = true;
        Ok(())
    }

    /// Queues a Reconnect of a disconnected shell; its pipelines then carry on. A Reconnect
    /// of a connected shell is sent too (some clients send one before closing a pool they
    /// took over) and changes nothing.
    pub fn reconnect(&mut self) -> Result<(), SessionError> {
        if !matches!(self.phase, Phase::Disconnected | Phase::Opened) || self.disconnect_requested {
            return Err(self.state_error("reconnect"));
        }
        self.reconnect_requested = true;
        Ok(())
    }

    /// Takes over pipeline `pipeline_id` of a pool this session connected to
    /// ([`Session::connect`]): a WS-Man Connect to the command, then its output arrives as
    /// for a pipeline started here.
    pub fn connect_pipeline(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.attach(pipeline_id, true)
    }

    /// Reads the output of pipeline `pipeline_id`, running in this shell but not started by
    /// this session (its CommandId must be the pipeline id), without a WS-Man Connect: for
    /// a shell shared with another connection. A server that does not know the command
    /// answers with a fault, reported as [`SessionEvent::PipelineError`].
    pub fn attach_pipeline(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.attach(pipeline_id, false)
    }

    fn attach(&mut self, pipeline_id: Uuid, connect: bool) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("take over a pipeline"));
        }
        self.pool.connect_pipeline(pipeline_id)?;
        self.add_slot(pipeline_id);
        if let Some(slot) = self.pipelines.get_mut(&pipeline_id) {
            slot.commanded = true;
            slot.connect_pending = connect;
        }
        Ok(())
    }

    /// Starts the session key exchange: PUBLIC_KEY for `key`'s public half goes to the
    /// server, and the shell's stream is read until the encrypted session key arrives
    /// ([`SessionEvent::SessionKeyReady`]). The caller makes the 2048-bit RSA key (the
    /// machine has no randomness) and enforces its own deadline with
    /// [`Session::cancel_key_exchange`].
    pub fn exchange_key(&mut self, key: rsa::RsaPrivateKey) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("exchange keys"));
        }
        self.pool.exchange_key(key)?;
        self.key_pending = true;
        Ok(())
    }

    /// True while a key exchange waits for the server's session key.
    pub fn key_exchange_pending(&self) -> bool {
        self.key_pending
    }

    /// Stops waiting for the session key (the caller's deadline passed): the shell's stream
    /// is no longer read for it.
    pub fn cancel_key_exchange(&mut self) {
        self.key_pending = false;
    }

    /// Queues one input object for a pipeline created with input.
    pub fn send_input(&mut self, pipeline_id: Uuid, value: Value) -> Result<(), SessionError> {
        self.pool.pipeline(pipeline_id)?.send_input(value)?;
        Ok(())
    }

    /// Queues the end of a pipeline's input.
    pub fn end_input(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.pool.pipeline(pipeline_id)?.end_input()?;
        Ok(())
    }

    /// Asks the server to stop a pipeline (a PowerShell Ctrl+C signal).
    pub fn stop(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        let slot = self
            .pipelines
            .get_mut(&pipeline_id)
            .ok_or(rps_psrp::error::StateError::UnknownPipeline(pipeline_id))?;
        if !slot.finished {
            slot.stop_requested = true;
        }
        Ok(())
    }

    /// Queues the answer to a host call.
    pub fn host_reply(&mut self, reply: HostReply) -> Result<(), SessionError> {
        self.pool.send_host_reply(reply)?;
        Ok(())
    }

    /// Closes the session: running pipelines are stopped, then the shell is deleted.
    pub fn close(&mut self) {
        self.key_pending = false;
        self.state_query = false;
        // The shell is deleted instead, disconnected or not.
        self.disconnect_requested = false;
        self.reconnect_requested = false;
        match self.phase {
            Phase::New => self.phase = Phase::Closed,
            Phase::Closed | Phase::Closing => {}
            // Nothing to delete: the shell was never ours (a failed Create or Connect) or
            // the server no longer has it.
            Phase::Failed if !self.created => self.phase = Phase::Closed,
            Phase::Disconnected => {
                // Nothing can be signalled to a disconnected shell: delete it with its
                // pipelines.
                for slot in self.pipelines.values_mut() {
                    slot.finished = true;
                    slot.terminate_sent = true;
                }
                self.phase = Phase::Closing;
            }
            _ => {
                for slot in self.pipelines.values_mut() {
                    if !slot.finished {
                        slot.stop_requested = true;
                    }
                }
                self.phase = Phase::Closing;
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The WS-Man CommandId of a pipeline.
    fn command_id(&self, pipeline_id: Uuid) -> Uuid {
        self.pipelines
            .get(&pipeline_id)
            .map_or(pipeline_id, |p| p.command_id)
    }

    /// The pipeline a WS-Man CommandId belongs to.
    fn pipeline_of(&self, command_id: Uuid) -> Uuid {
        self.pipelines
            .iter()
            .find(|(_, p)| p.command_id == command_id)
            .map_or(command_id, |(id, _)| *id)
    }

    fn state_error(&self, action: &'static str) -> SessionError {
        SessionError::State {
            action,
            state: self.phase.name(),
        }
    }

    fn header(&mut self, action: &str) -> Header {
        let uri = self.config.resource_uri.clone();
        self.header_for(action, uri)
    }

    fn header_for(&mut self, action: &str, resource_uri: String) -> Header {
        let id = self.ids.next_id();
        request_header(
            &self.config,
            action,
            resource_uri,
            id,
            self.max_envelope_size,
        )
    }

    fn shell_header(&mut self, action: &str) -> Header {
        let shell_id = self.shell_id;
        self.header(action).with_shell_id(shell_id)
    }

    fn budget(&mut self, stream: &str, command_id: Option<Uuid>) -> usize {
        let probe = Envelope::new(
            self.shell_header(action::SEND),
            Body::send(stream, command_id, Vec::new()),
        );
        payload_budget(self.max_envelope_size, probe.encode().len())
    }

    fn request(&mut self, operation: Operation, header: Header, body: Body) -> WsmanRequest {
        self.in_flight = Some(operation);
        Self::build(operation, header, body)
    }

    fn build(operation: Operation, header: Header, body: Body) -> WsmanRequest {
        let message_id = header.message_uuid().unwrap_or_default();
        let env = Envelope::new(header, body);
        WsmanRequest {
            operation,
            message_id,
            body: Bytes::from(env.encode()),
        }
    }

    /// A Receive of the shell's stream (`None`) or of a pipeline's.
    fn receive_request(&mut self, pipeline: Option<Uuid>) -> WsmanRequest {
        let header = self.shell_header(action::RECEIVE).with_option(
            rps_wsman::ns::option::KEEPALIVE,
            "True",
            None,
        );
        let body = Body::receive(pipeline.map(|p| self.command_id(p)));
        self.request(Operation::Receive(pipeline), header, body)
    }

    /// The next request to send, or `None` while one is in flight or nothing is to be done.
    pub fn poll_request(&mut self) -> Result<Option<WsmanRequest>, SessionError> {
        if self.in_flight.is_some() {
            return Ok(None);
        }
        match self.phase {
            Phase::New | Phase::Closed | Phase::Failed => return Ok(None),
            Phase::Creating if self.config.read_server_config && !self.config_read => {
                let header = self.header_for(action::GET, resource::CONFIG.to_owned());
                return Ok(Some(self.request(Operation::Config, header, Body::Get)));
            }
            Phase::Connecting => {
                // SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL travel in the connectXml.
                let probe = Envelope::new(
                    self.shell_header(action::CONNECT),
                    Body::connect(Vec::new()),
                );
                let budget = payload_budget(self.max_envelope_size, probe.encode().len());
                let data = self
                    .pool
                    .data_to_send(budget)?
                    .map(|d| d.data)
                    .unwrap_or_default();
                let version = self.config.pool.protocol_version.clone();
                let header = self.shell_header(action::CONNECT).with_option(
                    "protocolversion",
                    version,
                    Some(true),
                );
                let body = Body::connect(data);
                return Ok(Some(self.request(Operation::Connect(None), header, body)));
            }
            Phase::Creating => {
                // The opening messages travel in the Create's creationXml.
                let probe = Envelope::new(
                    self.header(action::CREATE),
                    Body::create_powershell(self.shell_id, Vec::new()),
                );
                let budget = payload_budget(self.max_envelope_size, probe.encode().len());
                let data = self
                    .pool
                    .data_to_send(budget)?
                    .map(|d| d.data)
                    .unwrap_or_default();
                let version = self.config.pool.protocol_version.clone();
                let mut header =
                    self.header(action::CREATE)
                        .with_option("protocolversion", version, Some(true));
                for (name, value) in &self.config.create_options {
                    header = header.with_option(name.clone(), value.clone(), None);
                }
                let body = Body::create_powershell(self.shell_id, data);
                return Ok(Some(self.request(Operation::Create, header, body)));
            }
            _ => {}
        }
        if self.state_query {
            self.state_query = false;
            let shell_id = self.shell_id;
            let header = self
                .header_for(action::GET, resource::SHELL.to_owned())
                .with_shell_id(shell_id);
            return Ok(Some(self.request(Operation::ShellState, header, Body::Get)));
        }
        if self.reconnect_requested {
            self.reconnect_requested = false;
            let header = self.shell_header(action::RECONNECT);
            return Ok(Some(self.request(
                Operation::Reconnect,
                header,
                Body::Reconnect,
            )));
        }
        if self.phase == Phase::Disconnected {
            // Nothing goes to a disconnected shell.
            return Ok(None);
        }
        // Connects to taken-over commands go before their Receives.
        let to_connect = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.connect_pending && !p.finished)
        });
        if let Some(pid) = to_connect {
            let header = self.shell_header(action::CONNECT);
            let body = Body::connect_command(self.command_id(pid));
            return Ok(Some(self.request(
                Operation::Connect(Some(pid)),
                header,
                body,
            )));
        }
        // Signals first: a stop must not wait behind queued input.
        let to_signal = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.commanded && p.stop_requested && !p.stop_sent && !p.finished)
        });
        if let Some(pid) = to_signal {
            if let Some(slot) = self.pipelines.get_mut(&pid) {
                slot.stop_sent = true;
            }
            let header = self.shell_header(action::SIGNAL);
            let body = Body::signal(Some(self.command_id(pid)), signal::PS_CTRL_C);
            return Ok(Some(self.request(Operation::Signal(pid), header, body)));
        }
        // Terminate finished commands.
        if self.config.terminate_finished_pipelines {
            let done = self.order.iter().copied().find(|id| {
                self.pipelines
                    .get(id)
                    .is_some_and(|p| p.commanded && p.finished && !p.terminate_sent)
            });
            if let Some(pid) = done {
                if let Some(slot) = self.pipelines.get_mut(&pid) {
                    slot.terminate_sent = true;
                }
                let header = self.shell_header(action::SIGNAL);
                let body = Body::signal(Some(self.command_id(pid)), signal::TERMINATE);
                return Ok(Some(self.request(Operation::Signal(pid), header, body)));
            }
        }
        // Queued PSRP data: CREATE_PIPELINE goes in a Command, the rest in Sends. Data split
        // off a Command (input queued behind CREATE_PIPELINE) goes first.
        if !self.abandoned && (self.held.is_some() || self.pool.has_data_to_send()) {
            let budget = self.budget("stdin", Some(self.shell_id));
            let next = match self.held.take() {
                Some(out) => Some(out),
                None => self.pool.data_to_send(budget)?,
            };
            if let Some(mut out) = next {
                let pid = out.target.pipeline_id;
                if self.continuing {
                    // The rest of a CREATE_PIPELINE too large for its Command goes alone,
                    // as the Command's part did.
                    if let Some(split) = first_message_end(&out.data) {
                        self.continuing = false;
                        if split < out.data.len() {
                            let rest = out.data.split_off(split);
                            self.held = Some(rps_psrp::event::OutgoingData {
                                target: out.target,
                                data: rest,
                            });
                        }
                    }
                }
                if let Some(pid) = pid
                    && let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.commanded
                {
                    slot.commanded = true;
                    // The Command carries CREATE_PIPELINE alone, as PowerShell sends it;
                    // input that came in the same batch follows in a Send.
                    match first_message_end(&out.data) {
                        Some(split) if split < out.data.len() => {
                            let rest = out.data.split_off(split);
                            self.held = Some(rps_psrp::event::OutgoingData {
                                target: out.target,
                                data: rest,
                            });
                        }
                        Some(_) => {}
                        None => self.continuing = true,
                    }
                    let mut header = self.shell_header(action::COMMAND);
                    header = header.with_option("WINRS_SKIP_CMD_SHELL", "False", None);
                    let body = Body::command_psrp(pid, &out.data);
                    return Ok(Some(self.request(Operation::Command(pid), header, body)));
                }
                let stream = match out.target.stream {
                    StreamKind::Default => "stdin",
                    StreamKind::PromptResponse => "pr",
                };
                let header = self.shell_header(action::SEND);
                let body = Body::send(stream, pid.map(|p| self.command_id(p)), out.data);
                return Ok(Some(self.request(Operation::Send(pid), header, body)));
            }
        }
        // A Disconnect goes once queued commands and input are out (the pipelines keep
        // running on the server), before any Receive.
        if self.disconnect_requested {
            self.disconnect_requested = false;
            let header = self.shell_header(action::DISCONNECT);
            let idle = self
                .config
                .disconnect_idle_timeout_secs
                .map(|s| format!("PT{s}S"));
            return Ok(Some(self.request(
                Operation::Disconnect,
                header,
                Body::disconnect(idle),
            )));
        }
        match self.phase {
            // The pool's opening messages, and the RUNSPACE_AVAILABILITY a pool call waits
            // for, come on the shell's own stream.
            Phase::Opening => return Ok(Some(self.receive_request(None))),
            Phase::Opened | Phase::Closing if self.pool_calls > 0 => {
                return Ok(Some(self.receive_request(None)));
            }
            // The session key comes on the shell's stream too.
            Phase::Opened if self.key_pending => {
                return Ok(Some(self.receive_request(None)));
            }
            Phase::Opened | Phase::Closing => {
                let running = self.order.iter().copied().find(|id| {
                    self.pipelines
                        .get(id)
                        .is_some_and(|p| p.commanded && !p.finished)
                });
                if let Some(pid) = running {
                    // Round robin between running pipelines.
                    self.order.retain(|id| *id != pid);
                    self.order.push_back(pid);
                    return Ok(Some(self.receive_request(Some(pid))));
                }
                if self.phase == Phase::Closing && self.signal_in_flight.is_none() {
                    let header = self.shell_header(action::DELETE);
                    return Ok(Some(self.request(Operation::Delete, header, Body::Delete)));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// A stop Signal to send now, beside the request in flight, on another connection.
    ///
    /// `None` unless a request is in flight, no other extra Signal is, and a running
    /// pipeline that the server knows (its Command was answered or is in flight) has a stop
    /// pending. Answer with [`Session::handle_signal_response`] or
    /// [`Session::handle_signal_transport_error`]. When nothing is in flight the stop goes
    /// out through [`Session::poll_request`] instead.
    pub fn poll_signal(&mut self) -> Option<WsmanRequest> {
        if self.signal_in_flight.is_some()
            || self.signal_blocked
            || !matches!(self.in_flight, Some(Operation::Receive(_)))
            || !matches!(self.phase, Phase::Opened | Phase::Closing)
        {
            return None;
        }
        let pid = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.commanded && p.stop_requested && !p.stop_sent && !p.finished)
        })?;
        if let Some(slot) = self.pipelines.get_mut(&pid) {
            slot.stop_sent = true;
        }
        self.signal_in_flight = Some(pid);
        let header = self.shell_header(action::SIGNAL);
        let body = Body::signal(Some(self.command_id(pid)), signal::PS_CTRL_C);
        Some(Self::build(Operation::Signal(pid), header, body))
    }

    /// Handles the answer to the extra Signal of [`Session::poll_signal`]. A fault is not an
    /// error (the pipeline may have finished first); an HTTP error is returned and the stop
    /// queued again, to go out through [`Session::poll_request`] after the request in
    /// flight; the pipeline's Receive carries on.
    pub fn handle_signal_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let Some(pid) = self.signal_in_flight.take() else {
            return Err(SessionError::State {
                action: "handle a signal response",
                state: "not signalling",
            });
        };
        match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) if matches!(env.body, Body::Fault(_) | Body::SignalResponse) => Ok(()),
            Ok(env) => Err(SessionError::Unexpected {
                operation: Operation::Signal(pid).name(),
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
            Err(_) if status == 200 => Ok(()),
            Err(_) => {
                // Refused before it was looked at (503, a proxy): send the stop again once
                // the request in flight has been answered.
                self.signal_blocked = true;
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.stop_sent = false;
                }
                Err(SessionError::Http {
                    operation: Operation::Signal(pid).name(),
                    status,
                    text: String::from_utf8_lossy(&body[..body.len().min(512)])
                        .trim()
                        .to_owned(),
                })
            }
        }
    }

    /// Handles a transport failure of the extra Signal: the stop is queued again, to go out
    /// through [`Session::poll_request`] once the request in flight has been answered.
    pub fn handle_signal_transport_error(&mut self, message: &str) -> SessionError {
        let pid = self.signal_in_flight.take();
        self.signal_blocked = true;
        if let Some(slot) = pid.and_then(|p| self.pipelines.get_mut(&p))
            && !slot.finished
        {
            slot.stop_sent = false;
        }
        SessionError::Transport {
            operation: "Signal",
            message: message.to_owned(),
        }
    }

    /// Handles the HTTP status and body that answered the request in flight. A Receive
    /// answered with HTTP 503 returns the error but fails nothing: send it again.
    pub fn handle_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Err(SessionError::State {
                action: "handle a response",
                state: "not waiting",
            });
        };
        self.signal_blocked = false;
        if op == Operation::ShellState {
            return self.handle_shell_state(status, body);
        }
        let result = self.handle(op, status, body);
        if let Err(e) = &result {
            if matches!(op, Operation::Receive(_)) && e.http_status() == Some(503) {
                // Briefly unavailable: like a dropped connection, nothing was delivered and
                // the server keeps the output for the next Receive.
                return result;
            }
            let command_scoped = matches!(
                op,
                Operation::Receive(Some(_)) | Operation::Send(Some(_)) | Operation::Signal(_)
            );
            if e.is_shell_gone()
                && op != Operation::Delete
                && !(command_scoped && e.is_command_gone())
            {
                // The server deleted the shell (or lost it): nothing can run on it any more.
                self.created = false;
                self.phase = Phase::Failed;
                for (pid, slot) in self.pipelines.iter_mut() {
                    if !slot.finished {
                        slot.finished = true;
                        self.events.push_back(SessionEvent::PipelineError {
                            pipeline_id: *pid,
                            message: e.to_string(),
                        });
                    }
                }
                return result;
            }
            self.fail(op, e);
        }
        result
    }

    /// Handles a transport failure of the request in flight: the session fails, except that
    /// a failed Receive is retried on the next [`Session::poll_request`].
    pub fn handle_transport_error(&mut self, message: &str) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Ok(());
        };
        self.signal_blocked = false;
        if op == Operation::ShellState {
            // The server cannot be reached: as good as gone (no Delete is attempted).
            self.shell_state_answer(false, None);
            return Ok(());
        }
        let err = SessionError::Transport {
            operation: op.name(),
            message: message.to_owned(),
        };
        if matches!(op, Operation::Receive(_)) {
            // Nothing was lost: the server keeps undelivered output for the next Receive.
            return Err(err);
        }
        self.fail(op, &err);
        Err(err)
    }

    fn fail(&mut self, op: Operation, e: &SessionError) {
        match op {
            Operation::Command(pid)
            | Operation::Receive(Some(pid))
            | Operation::Send(Some(pid))
                if self.phase == Phase::Opened || self.phase == Phase::Closing =>
            {
                // The pipeline is lost; the pool may live on.
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.finished = true;
                    // Nothing to terminate on a server that does not know the command.
                    slot.terminate_sent |= e.is_command_gone();
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: pid,
                        message: e.to_string(),
                    });
                }
            }
            Operation::Connect(Some(pid)) => {
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: pid,
                        message: e.to_string(),
                    });
                }
            }
            Operation::Connect(None) => {
                // The shell is someone else's until the Connect succeeds: never delete it.
                self.created = false;
                self.phase = Phase::Failed;
            }
            // The shell stays as it was.
            Operation::Signal(_)
            | Operation::Disconnect
            | Operation::Reconnect
            | Operation::ShellState => {}
            Operation::Delete => {
                self.phase = Phase::Closed;
                self.pool.closed();
                self.events.push_back(SessionEvent::Closed);
            }
            _ => self.phase = Phase::Failed,
        }
    }

    /// Reports the shell's state; a shell that is not alive ends the session without a
    /// Delete.
    fn shell_state_answer(&mut self, alive: bool, state: Option<String>) {
        if !alive && self.phase != Phase::Closed {
            self.created = false;
            self.phase = Phase::Closed;
            self.pool.closed();
            for (pid, slot) in self.pipelines.iter_mut() {
                if !slot.finished {
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: *pid,
                        message: "the shell is no longer alive on the server".to_owned(),
                    });
                }
            }
        }
        self.events
            .push_back(SessionEvent::ShellState { alive, state });
    }

    fn handle_shell_state(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let op = Operation::ShellState.name();
        let env = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => env,
            Err(source) if status == 200 => {
                return Err(SessionError::Envelope {
                    operation: op,
                    source,
                });
            }
            Err(_) => {
                // An HTTP refusal says nothing about the shell: report it, change nothing.
                return Err(SessionError::Http {
                    operation: op,
                    status,
                    text: String::from_utf8_lossy(&body[..body.len().min(512)])
                        .trim()
                        .to_owned(),
                });
            }
        };
        match env.body {
            Body::GetResponse(Item::Shell(shell)) => {
                let state = shell.state.map(|s| s.trim().to_owned());
                let disconnected = state
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("Disconnected"));
                // A shell this session disconnected itself is still alive.
                let alive = !disconnected || self.phase == Phase::Disconnected;
                self.shell_state_answer(alive, state);
                Ok(())
            }
            Body::Fault(fault)
                if fault.is_operation_timeout()
                    || fault.is_invalid_selectors()
                    || fault.wsman_code() == Some(INVALID_SELECTORS_CODE)
                    || fault.wsman_code() == Some(OPERATION_TIMEDOUT_CODE) =>
            {
                self.shell_state_answer(false, None);
                Ok(())
            }
            Body::Fault(fault) => Err(SessionError::Fault {
                operation: op,
                fault: Box::new(fault),
            }),
            _ => Err(SessionError::Unexpected {
                operation: op,
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        }
    }

    fn handle(&mut self, op: Operation, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let env = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => env,
            Err(source) if status == 200 => {
                return Err(SessionError::Envelope {
                    operation: op.name(),
                    source,
                });
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_owned();
                return Err(SessionError::Http {
                    operation: op.name(),
                    status,
                    text,
                });
            }
        };
        if let Body::Fault(fault) = env.body {
            if matches!(op, Operation::Receive(_)) && fault.is_operation_timeout() {
                // Normal: nothing arrived within OperationTimeout. Receive again.
                return Ok(());
            }
            if let Operation::Signal(_) = op {
                // The pipeline may have finished before the signal arrived.
                return Ok(());
            }
            return Err(SessionError::Fault {
                operation: op.name(),
                fault: Box::new(fault),
            });
        }
        if status != 200 {
            return Err(SessionError::Http {
                operation: op.name(),
                status,
                text: String::new(),
            });
        }
        match (op, env.body) {
            (Operation::Create, Body::CreateResponse(resp)) => {
                // Older servers choose their own ShellId; WS-Man selectors must use theirs.
                if let Some(id) = resp.shell_id().and_then(|s| s.parse().ok()) {
                    self.shell_id = id;
                }
                self.phase = Phase::Opening;
                self.created = true;
                Ok(())
            }
            (Operation::Receive(pid), Body::ReceiveResponse(resp)) => {
                for s in resp.streams {
                    let from = s
                        .command_id
                        .as_deref()
                        .and_then(|c| c.parse().ok())
                        .map(|c| self.pipeline_of(c))
                        .or(pid);
                    self.pool.receive_on(from, Bytes::from(s.data))?;
                }
                self.drain_pool()?;
                if let (Some(pid), Some(state)) = (pid, resp.command_state)
                    && state.is_done()
                    && let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    // The command ended without a final PIPELINE_STATE.
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineFinished {
                        pipeline_id: pid,
                        state: PsInvocationState::Completed,
                        error_record: None,
                    });
                }
                Ok(())
            }
            (Operation::Command(pid), Body::CommandResponse { command_id }) => {
                // Older servers choose their own CommandId.
                if let (Ok(cid), Some(slot)) =
                    (command_id.parse::<Uuid>(), self.pipelines.get_mut(&pid))
                {
                    slot.command_id = cid;
                }
                Ok(())
            }
            (Operation::Send(_), Body::SendResponse)
            | (Operation::Signal(_), Body::SignalResponse) => Ok(()),
            (Operation::Config, Body::GetResponse(Item::Raw(config))) => {
                let kb = config_value(&config.xml, "MaxEnvelopeSizekb")
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|kb| (1..=1 << 20).contains(kb))
                    .ok_or_else(|| SessionError::Unexpected {
                        operation: op.name(),
                        found: "a WinRM configuration without a valid MaxEnvelopeSizekb".to_owned(),
                    })?;
                self.max_envelope_size = kb * 1024;
                // The server's own limit: never raise it after negotiation.
                self.config.raise_envelope_size = false;
                self.config_read = true;
                self.events.push_back(SessionEvent::ServerConfig {
                    max_envelope_size: self.max_envelope_size,
                });
                Ok(())
            }
            (Operation::Disconnect, Body::DisconnectResponse | Body::Empty) => {
                self.pool.disconnect()?;
                if self.phase == Phase::Closing {
                    // Closed while the Disconnect was in flight: the Delete still follows.
                    for slot in self.pipelines.values_mut() {
                        slot.finished = true;
                        slot.terminate_sent = true;
                    }
                } else {
                    self.phase = Phase::Disconnected;
                }
                self.events.push_back(SessionEvent::Disconnected);
                Ok(())
            }
            (Operation::Reconnect, Body::ReconnectResponse | Body::Empty) => {
                if self.phase == Phase::Disconnected {
                    self.pool.reconnect()?;
                    self.phase = Phase::Opened;
                }
                self.events.push_back(SessionEvent::Reconnected);
                Ok(())
            }
            (Operation::Connect(None), Body::ConnectResponse(resp)) => {
                // The pool's answer (SESSION_CAPABILITY, RUNSPACEPOOL_INIT_DATA) comes in
                // the connectResponseXml; the application private data follows on the
                // shell's stream.
                self.phase = Phase::Opening;
                if let Some(data) = resp.connect_response_xml {
                    self.pool.receive_on(None, Bytes::from(data))?;
                }
                self.drain_pool()
            }
            (Operation::Connect(Some(pid)), Body::ConnectResponse(_)) => {
                if let Some(slot) = self.pipelines.get_mut(&pid) {
                    slot.connect_pending = false;
                }
                Ok(())
            }
            (Operation::Delete, Body::DeleteResponse | Body::Empty) => {
                self.phase = Phase::Closed;
                self.pool.closed();
                self.events.push_back(SessionEvent::Closed);
                Ok(())
            }
            (op, _) => Err(SessionError::Unexpected {
                operation: op.name(),
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        }
    }

    fn drain_pool(&mut self) -> Result<(), SessionError> {
        while let Some(ev) = self.pool.next_event()? {
            match ev {
                ClientEvent::Negotiated {
                    protocol_version, ..
                } if self.config.raise_envelope_size
                    && protocol_version.as_str() >= "2.2"
                    && self.max_envelope_size < 512_000 =>
                {
                    self.max_envelope_size = 512_000;
                }
                ClientEvent::PoolState { state, error } => {
                    if state == RunspacePoolState::Opened && self.phase == Phase::Opening {
                        self.phase = Phase::Opened;
                        let protocol_version =
                            self.pool.protocol_version().unwrap_or("2.1").to_owned();
                        self.events
                            .push_back(SessionEvent::Opened { protocol_version });
                    } else {
                        if matches!(state, RunspacePoolState::Broken | RunspacePoolState::Closed) {
                            self.phase = Phase::Closing;
                        }
                        self.events
                            .push_back(SessionEvent::PoolState { state, error });
                    }
                }
                ClientEvent::Output { pipeline_id, value } => {
                    self.events
                        .push_back(SessionEvent::Output { pipeline_id, value });
                }
                ClientEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                } => self.events.push_back(SessionEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                }),
                ClientEvent::HostCall(call) => self.events.push_back(SessionEvent::HostCall(call)),
                ClientEvent::SessionKeyReady => {
                    self.key_pending = false;
                    self.events.push_back(SessionEvent::SessionKeyReady);
                }
                ClientEvent::Availability { call_id, response } => {
                    self.pool_calls = self.pool_calls.saturating_sub(1);
                    self.events
                        .push_back(SessionEvent::Availability { call_id, response });
                }
                ClientEvent::PipelineState {
                    pipeline_id,
                    state,
                    error_record,
                } => {
                    if state.is_terminal()
                        && let Some(slot) = self.pipelines.get_mut(&pipeline_id)
                    {
                        slot.finished = true;
                        self.events.push_back(SessionEvent::PipelineFinished {
                            pipeline_id,
                            state,
                            error_record,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
