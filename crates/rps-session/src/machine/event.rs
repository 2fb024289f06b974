//! What the machine hands the driver (requests) and the caller (events), and its phases.

use bytes::Bytes;
use rps_psrp::clixml::Value;
use rps_psrp::event::{PendingHostCall, RecordKind};
use rps_psrp::messages::{PsInvocationState, RunspacePoolState};
use uuid::Uuid;

#[cfg(doc)]
use super::{Session, SessionConfig};

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
    pub(super) fn name(self) -> &'static str {
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
