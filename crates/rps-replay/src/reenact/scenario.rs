//! What a transcript asks of a client: the steps, the pools and pipelines, and the
//! recorded results.

use std::fmt::Write as _;

use rps_psrp::clixml::Value;
use rps_psrp::event::RecordKind;
use rps_psrp::messages::{
    Argument, CreatePipeline, HostResponse, PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::PoolConfig;
use uuid::Uuid;

use super::Unsupported;
use super::render::short;
use crate::replayer::GuidOrder;

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
