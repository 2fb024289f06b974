//! What the state machines hand back: typed events, outgoing data, host-call tokens.

use uuid::Uuid;

use crate::clixml::Value;
use crate::messages::{
    Availability, CreatePipeline, GetCommandMetadata, HostCall, HostResponse, InitRunspacePool,
    PsInvocationState, RunspacePoolInitData, RunspacePoolState, SessionCapability, UserEvent,
};

/// Which WS-Man input stream outgoing data belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `stdin` (client) or `stdout` (server): everything but host responses.
    Default,
    /// `pr`: the client's host responses.
    PromptResponse,
}

/// Where a batch of fragments goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The pipeline (the WS-Man CommandId), or `None` for the pool (the shell).
    pub pipeline_id: Option<Uuid>,
    /// The stream.
    pub stream: StreamKind,
}

/// Fragments ready for the transport, from `data_to_send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingData {
    /// Where they go.
    pub target: Target,
    /// Concatenated fragments, at most the budget given.
    pub data: Vec<u8>,
}

/// Which record stream a record came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `ERROR_RECORD`.
    Error,
    /// `WARNING_RECORD`.
    Warning,
    /// `VERBOSE_RECORD`.
    Verbose,
    /// `DEBUG_RECORD`.
    Debug,
    /// `PROGRESS_RECORD`.
    Progress,
    /// `INFORMATION_RECORD`.
    Information,
}

/// A host call the server made; answer it with [`PendingHostCall::respond`] or
/// [`PendingHostCall::fail`] and hand the [`HostReply`] to the pool, unless
/// [`PendingHostCall::needs_reply`] is false.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a host call that needs a reply blocks the server until answered"]
pub struct PendingHostCall {
    /// The pipeline that made the call, or `None` for the pool.
    pub pipeline_id: Option<Uuid>,
    /// The call.
    pub call: HostCall,
}

impl PendingHostCall {
    /// True when the server waits for an answer.
    pub fn needs_reply(&self) -> bool {
        self.call.method.expects_response()
    }

    /// The answer carrying a return value (`None` for void methods).
    pub fn respond(self, result: Option<Value>) -> HostReply {
        HostReply {
            pipeline_id: self.pipeline_id,
            response: HostResponse {
                call_id: self.call.call_id,
                method: self.call.method,
                result,
                error: None,
            },
        }
    }

    /// The answer reporting that the method failed with `error_record`.
    pub fn fail(self, error_record: Value) -> HostReply {
        HostReply {
            pipeline_id: self.pipeline_id,
            response: HostResponse {
                call_id: self.call.call_id,
                method: self.call.method,
                result: None,
                error: Some(error_record),
            },
        }
    }
}

/// A host response ready to send (made from a [`PendingHostCall`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostReply {
    /// The pipeline, or `None` for the pool.
    pub pipeline_id: Option<Uuid>,
    /// The response.
    pub response: HostResponse,
}

/// What a client [`crate::pool::RunspacePool`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server's SESSION_CAPABILITY arrived; `protocol_version` is the version both speak.
    Negotiated {
        /// The server's capability.
        server: SessionCapability,
        /// The negotiated protocol version.
        protocol_version: String,
    },
    /// APPLICATION_PRIVATE_DATA.
    ApplicationPrivateData(Option<Value>),
    /// The pool changed state.
    PoolState {
        /// The new state.
        state: RunspacePoolState,
        /// The error, when broken.
        error: Option<Value>,
    },
    /// RUNSPACEPOOL_INIT_DATA (after a connect).
    InitData(RunspacePoolInitData),
    /// The answer to a call-id request.
    Availability {
        /// The request's call id.
        call_id: i64,
        /// The answer.
        response: Availability,
    },
    /// The server asked for the public key (call `exchange_key`).
    PublicKeyRequested,
    /// The session key arrived: SecureStrings can be used.
    SessionKeyReady,
    /// USER_EVENT.
    UserEvent(UserEvent),
    /// A host call; answer it when it needs a reply.
    HostCall(PendingHostCall),
    /// PIPELINE_OUTPUT.
    Output {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The object.
        value: Value,
    },
    /// A record on one of the other streams.
    Record {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The stream.
        kind: RecordKind,
        /// The record.
        value: Value,
    },
    /// PIPELINE_STATE.
    PipelineState {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The new state.
        state: PsInvocationState,
        /// The error record, when failed.
        error_record: Option<Value>,
    },
}

/// What a server [`crate::server::ServerRunspacePool`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The client's SESSION_CAPABILITY (the server's own was queued in reply).
    Negotiated {
        /// The client's capability.
        client: SessionCapability,
        /// The negotiated protocol version.
        protocol_version: String,
    },
    /// INIT_RUNSPACEPOOL: the pool is now opened (APPLICATION_PRIVATE_DATA and
    /// RUNSPACEPOOL_STATE were queued).
    Opened(InitRunspacePool),
    /// CONNECT_RUNSPACEPOOL: the client reconnected (init data was queued).
    Connected {
        /// New fewest runspaces, if asked.
        min_runspaces: Option<i32>,
        /// New most runspaces, if asked.
        max_runspaces: Option<i32>,
    },
    /// PUBLIC_KEY: call `send_session_key`.
    PublicKey(rsa::RsaPublicKey),
    /// SET_MAX_RUNSPACES; answer with `answer_availability`.
    SetMaxRunspaces {
        /// The call id.
        call_id: i64,
        /// The new maximum.
        max_runspaces: i32,
    },
    /// SET_MIN_RUNSPACES; answer with `answer_availability`.
    SetMinRunspaces {
        /// The call id.
        call_id: i64,
        /// The new minimum.
        min_runspaces: i32,
    },
    /// GET_AVAILABLE_RUNSPACES; answer with `answer_availability`.
    GetAvailableRunspaces {
        /// The call id.
        call_id: i64,
    },
    /// RESET_RUNSPACE_STATE; answer with `answer_availability`.
    ResetRunspaceState {
        /// The call id.
        call_id: i64,
    },
    /// GET_COMMAND_METADATA, run as a pipeline with this id.
    GetCommandMetadata {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The request.
        request: GetCommandMetadata,
    },
    /// CREATE_PIPELINE; run it with `run_pipeline` (after its input, unless `no_input`).
    CreatePipeline {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The request.
        request: Box<CreatePipeline>,
    },
    /// PIPELINE_INPUT (also kept for `run_pipeline`).
    Input {
        /// The pipeline.
        pipeline_id: Uuid,
        /// The object.
        value: Value,
    },
    /// END_OF_PIPELINE_INPUT.
    EndOfInput {
        /// The pipeline.
        pipeline_id: Uuid,
    },
    /// A host response from the client.
    HostResponse {
        /// The pipeline, or `None` for the pool.
        pipeline_id: Option<Uuid>,
        /// The response.
        response: HostResponse,
    },
}

/// A record read through its typed view ([`crate::records`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypedRecord {
    /// `ERROR_RECORD`.
    Error(Box<crate::records::ErrorRecord>),
    /// `WARNING_RECORD`, `VERBOSE_RECORD` or `DEBUG_RECORD`.
    Informational(crate::records::InformationalRecord),
    /// `PROGRESS_RECORD`.
    Progress(crate::records::ProgressRecord),
    /// `INFORMATION_RECORD`.
    Information(crate::records::InformationRecord),
}

impl RecordKind {
    /// Reads `value`, a record of this kind, through its typed view.
    pub fn read(self, value: &Value) -> Result<TypedRecord, crate::records::RecordError> {
        use crate::records as r;
        Ok(match self {
            RecordKind::Error => TypedRecord::Error(Box::new(r::ErrorRecord::from_value(value)?)),
            RecordKind::Warning | RecordKind::Verbose | RecordKind::Debug => {
                TypedRecord::Informational(r::InformationalRecord::from_value(value)?)
            }
            RecordKind::Progress => TypedRecord::Progress(r::ProgressRecord::from_value(value)?),
            RecordKind::Information => {
                TypedRecord::Information(r::InformationRecord::from_value(value)?)
            }
        })
    }
}

impl ClientEvent {
    /// The typed error record of an error record event or of a failed pipeline state.
    pub fn error_record(
        &self,
    ) -> Option<Result<crate::records::ErrorRecord, crate::records::RecordError>> {
        match self {
            ClientEvent::Record {
                kind: RecordKind::Error,
                value,
                ..
            }
            | ClientEvent::PipelineState {
                error_record: Some(value),
                ..
            } => Some(crate::records::ErrorRecord::from_value(value)),
            _ => None,
        }
    }
}
