//! Typed PSRP message payloads ([MS-PSRP] 2.2.2), read from and written to CLIXML.
//!
//! [`Message::decode`] (or [`Message::decode_with`], under given CLIXML
//! [`Limits`](clixml::Limits)) turns a message type and its data into a [`Message`]; every type in
//! [MS-PSRP] 2.2.1 has a typed arm, and types this crate does not know come back as
//! [`Message::Other`] with their bytes. [`Message::encode_data`] writes the data again.
//! Output and record payloads keep the CLIXML [`Value`] as received.
//!
//! [MS-PSRP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-psrp/

mod host;
mod pipeline;
mod runspace;
mod session;
pub(crate) mod util;

use bytes::Bytes;

use crate::clixml::{self, ClixmlError, Value};
use crate::message::{MessageType, UTF8_BOM};

pub use host::{HostCall, HostMethod, HostResponse};
pub use pipeline::{
    Argument, Command, CreatePipeline, Merges, PipelineResultTypes, PipelineStateInfo, PowerShell,
    PsInvocationState, RemoteStreamOptions,
};
pub use runspace::{
    ApplicationPrivateData, Availability, GetAvailableRunspaces, GetCommandMetadata,
    ResetRunspaceState, RunspaceAvailability, RunspacePoolState, RunspacePoolStateInfo,
    SetMaxRunspaces, SetMinRunspaces, UserEvent,
};
pub use session::{
    ApartmentState, ConnectRunspacePool, EncryptedSessionKey, HostInfo, InitRunspacePool,
    PsThreadOptions, PublicKey, RunspacePoolInitData, SessionCapability,
};

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The data is not valid CLIXML.
    #[error("invalid clixml in {message}: {source}")]
    Clixml {
        /// The message type name.
        message: &'static str,
        /// The reader's error.
        #[source]
        source: ClixmlError,
    },
    /// A required property is absent.
    #[error("{message}: missing property {field}")]
    MissingProperty {
        /// The message type name.
        message: &'static str,
        /// The property.
        field: &'static str,
    },
    /// A property has the wrong CLIXML type.
    #[error("{message}: property {field} is not a {expected}")]
    WrongType {
        /// The message type name.
        message: &'static str,
        /// The property.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A property's value is out of range.
    #[error("{message}: invalid {field} value {value}")]
    InvalidValue {
        /// The message type name.
        message: &'static str,
        /// The property.
        field: &'static str,
        /// The value found.
        value: String,
    },
}

/// A payload with a fixed message type.
pub trait Payload: Sized {
    /// The message type that carries this payload.
    const MESSAGE_TYPE: MessageType;
    /// Reads the payload from its CLIXML value.
    fn from_value(v: &Value) -> Result<Self, PayloadError>;
    /// The CLIXML value of the payload.
    fn to_value(&self) -> Value;
}

/// Parses `major.minor` of a version string (missing parts are 0).
pub(crate) fn parse_version(v: &str) -> (u32, u32) {
    let mut it = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// A PSRP message payload, typed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `SESSION_CAPABILITY`.
    SessionCapability(SessionCapability),
    /// `INIT_RUNSPACEPOOL`.
    InitRunspacePool(InitRunspacePool),
    /// `PUBLIC_KEY`.
    PublicKey(PublicKey),
    /// `ENCRYPTED_SESSION_KEY`.
    EncryptedSessionKey(EncryptedSessionKey),
    /// `PUBLIC_KEY_REQUEST` (no content).
    PublicKeyRequest,
    /// `CONNECT_RUNSPACEPOOL`.
    ConnectRunspacePool(ConnectRunspacePool),
    /// `SET_MAX_RUNSPACES`.
    SetMaxRunspaces(SetMaxRunspaces),
    /// `SET_MIN_RUNSPACES`.
    SetMinRunspaces(SetMinRunspaces),
    /// `RUNSPACE_AVAILABILITY`.
    RunspaceAvailability(RunspaceAvailability),
    /// `RUNSPACEPOOL_STATE`.
    RunspacePoolState(RunspacePoolStateInfo),
    /// `CREATE_PIPELINE`.
    CreatePipeline(Box<CreatePipeline>),
    /// `GET_AVAILABLE_RUNSPACES`.
    GetAvailableRunspaces(GetAvailableRunspaces),
    /// `USER_EVENT`.
    UserEvent(UserEvent),
    /// `APPLICATION_PRIVATE_DATA`.
    ApplicationPrivateData(ApplicationPrivateData),
    /// `GET_COMMAND_METADATA`.
    GetCommandMetadata(GetCommandMetadata),
    /// `RUNSPACEPOOL_INIT_DATA`.
    RunspacePoolInitData(RunspacePoolInitData),
    /// `RESET_RUNSPACE_STATE`.
    ResetRunspaceState(ResetRunspaceState),
    /// `RUNSPACEPOOL_HOST_CALL`.
    RunspacePoolHostCall(HostCall),
    /// `RUNSPACEPOOL_HOST_RESPONSE`.
    RunspacePoolHostResponse(HostResponse),
    /// `PIPELINE_INPUT`: one input object (`<Nil/>` for empty data).
    PipelineInput(Value),
    /// `END_OF_PIPELINE_INPUT` (no content).
    EndOfPipelineInput,
    /// `PIPELINE_OUTPUT`: one output object.
    PipelineOutput(Value),
    /// `ERROR_RECORD`.
    ErrorRecord(Value),
    /// `PIPELINE_STATE`.
    PipelineState(PipelineStateInfo),
    /// `DEBUG_RECORD`.
    DebugRecord(Value),
    /// `VERBOSE_RECORD`.
    VerboseRecord(Value),
    /// `WARNING_RECORD`.
    WarningRecord(Value),
    /// `PROGRESS_RECORD`.
    ProgressRecord(Value),
    /// `INFORMATION_RECORD`.
    InformationRecord(Value),
    /// `PIPELINE_HOST_CALL`.
    PipelineHostCall(HostCall),
    /// `PIPELINE_HOST_RESPONSE`.
    PipelineHostResponse(HostResponse),
    /// A type this crate does not know, with its data as received.
    Other {
        /// The message type.
        message_type: MessageType,
        /// The data.
        data: Bytes,
    },
}

fn typed<P: Payload>(v: &Value) -> Result<P, PayloadError> {
    P::from_value(v)
}

impl Message {
    /// The message type of this payload.
    pub fn message_type(&self) -> MessageType {
        use MessageType as T;
        match self {
            Message::SessionCapability(_) => T::SessionCapability,
            Message::InitRunspacePool(_) => T::InitRunspacePool,
            Message::PublicKey(_) => T::PublicKey,
            Message::EncryptedSessionKey(_) => T::EncryptedSessionKey,
            Message::PublicKeyRequest => T::PublicKeyRequest,
            Message::ConnectRunspacePool(_) => T::ConnectRunspacePool,
            Message::SetMaxRunspaces(_) => T::SetMaxRunspaces,
            Message::SetMinRunspaces(_) => T::SetMinRunspaces,
            Message::RunspaceAvailability(_) => T::RunspaceAvailability,
            Message::RunspacePoolState(_) => T::RunspacePoolState,
            Message::CreatePipeline(_) => T::CreatePipeline,
            Message::GetAvailableRunspaces(_) => T::GetAvailableRunspaces,
            Message::UserEvent(_) => T::UserEvent,
            Message::ApplicationPrivateData(_) => T::ApplicationPrivateData,
            Message::GetCommandMetadata(_) => T::GetCommandMetadata,
            Message::RunspacePoolInitData(_) => T::RunspacePoolInitData,
            Message::ResetRunspaceState(_) => T::ResetRunspaceState,
            Message::RunspacePoolHostCall(_) => T::RunspacePoolHostCall,
            Message::RunspacePoolHostResponse(_) => T::RunspacePoolHostResponse,
            Message::PipelineInput(_) => T::PipelineInput,
            Message::EndOfPipelineInput => T::EndOfPipelineInput,
            Message::PipelineOutput(_) => T::PipelineOutput,
            Message::ErrorRecord(_) => T::ErrorRecord,
            Message::PipelineState(_) => T::PipelineState,
            Message::DebugRecord(_) => T::DebugRecord,
            Message::VerboseRecord(_) => T::VerboseRecord,
            Message::WarningRecord(_) => T::WarningRecord,
            Message::ProgressRecord(_) => T::ProgressRecord,
            Message::InformationRecord(_) => T::InformationRecord,
            Message::PipelineHostCall(_) => T::PipelineHostCall,
            Message::PipelineHostResponse(_) => T::PipelineHostResponse,
            Message::Other { message_type, .. } => *message_type,
        }
    }

    /// Reads the data of a message of type `ty` (a leading BOM is skipped), under the default
    /// CLIXML [`Limits`](clixml::Limits). See [`Message::decode_with`].
    pub fn decode(ty: MessageType, data: &Bytes) -> Result<Message, PayloadError> {
        Message::decode_with(ty, data, &clixml::Limits::default())
    }

    /// Reads the data of a message of type `ty` (a leading BOM is skipped), its CLIXML under
    /// `limits`: a payload nested deeper, holding longer strings, more elements or larger
    /// RefIds than they allow is [`PayloadError::Clixml`] with the reader's
    /// [`ClixmlError::DepthExceeded`] or [`ClixmlError::LimitExceeded`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rps_psrp::clixml::{self, ClixmlError};
    /// use rps_psrp::message::MessageType;
    /// use rps_psrp::messages::{Message, PayloadError};
    ///
    /// let data = Bytes::from_static(b"<S>a long line of output</S>");
    /// let mut limits = clixml::Limits::default();
    /// limits.max_string_len = 8;
    /// let err = Message::decode_with(MessageType::PipelineOutput, &data, &limits).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     PayloadError::Clixml { source: ClixmlError::LimitExceeded { limit: 8, .. }, .. }
    /// ));
    /// assert!(Message::decode(MessageType::PipelineOutput, &data).is_ok());
    /// ```
    pub fn decode_with(
        ty: MessageType,
        data: &Bytes,
        limits: &clixml::Limits,
    ) -> Result<Message, PayloadError> {
        use MessageType as T;
        let body = data.strip_prefix(UTF8_BOM).unwrap_or(data);
        match ty {
            T::EndOfPipelineInput => return Ok(Message::EndOfPipelineInput),
            T::PublicKeyRequest => return Ok(Message::PublicKeyRequest),
            T::PipelineInput if body.iter().all(u8::is_ascii_whitespace) => {
                return Ok(Message::PipelineInput(Value::Nil));
            }
            T::Unknown(_) => {
                return Ok(Message::Other {
                    message_type: ty,
                    data: data.clone(),
                });
            }
            _ => {}
        }
        let v = clixml::from_slice_with(body, limits).map_err(|source| PayloadError::Clixml {
            message: ty.name(),
            source,
        })?;
        Ok(match ty {
            T::SessionCapability => Message::SessionCapability(typed(&v)?),
            T::InitRunspacePool => Message::InitRunspacePool(typed(&v)?),
            T::PublicKey => Message::PublicKey(typed(&v)?),
            T::EncryptedSessionKey => Message::EncryptedSessionKey(typed(&v)?),
            T::ConnectRunspacePool => Message::ConnectRunspacePool(typed(&v)?),
            T::SetMaxRunspaces => Message::SetMaxRunspaces(typed(&v)?),
            T::SetMinRunspaces => Message::SetMinRunspaces(typed(&v)?),
            T::RunspaceAvailability => Message::RunspaceAvailability(typed(&v)?),
            T::RunspacePoolState => Message::RunspacePoolState(typed(&v)?),
            T::CreatePipeline => Message::CreatePipeline(Box::new(typed(&v)?)),
            T::GetAvailableRunspaces => Message::GetAvailableRunspaces(typed(&v)?),
            T::UserEvent => Message::UserEvent(typed(&v)?),
            T::ApplicationPrivateData => Message::ApplicationPrivateData(typed(&v)?),
            T::GetCommandMetadata => Message::GetCommandMetadata(typed(&v)?),
            T::RunspacePoolInitData => Message::RunspacePoolInitData(typed(&v)?),
            T::ResetRunspaceState => Message::ResetRunspaceState(typed(&v)?),
            T::RunspacePoolHostCall => Message::RunspacePoolHostCall(HostCall::from_value(&v, ty)?),
            T::RunspacePoolHostResponse => {
                Message::RunspacePoolHostResponse(HostResponse::from_value(&v, ty)?)
            }
            T::PipelineInput => Message::PipelineInput(v),
            T::PipelineOutput => Message::PipelineOutput(v),
            T::ErrorRecord => Message::ErrorRecord(v),
            T::PipelineState => Message::PipelineState(typed(&v)?),
            T::DebugRecord => Message::DebugRecord(v),
            T::VerboseRecord => Message::VerboseRecord(v),
            T::WarningRecord => Message::WarningRecord(v),
            T::ProgressRecord => Message::ProgressRecord(v),
            T::InformationRecord => Message::InformationRecord(v),
            T::PipelineHostCall => Message::PipelineHostCall(HostCall::from_value(&v, ty)?),
            T::PipelineHostResponse => {
                Message::PipelineHostResponse(HostResponse::from_value(&v, ty)?)
            }
            T::EndOfPipelineInput | T::PublicKeyRequest | T::Unknown(_) => Message::Other {
                message_type: ty,
                data: data.clone(),
            },
        })
    }

    /// The CLIXML value of the payload; `None` for the types without content and for
    /// [`Message::Other`].
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            Message::SessionCapability(p) => p.to_value(),
            Message::InitRunspacePool(p) => p.to_value(),
            Message::PublicKey(p) => p.to_value(),
            Message::EncryptedSessionKey(p) => p.to_value(),
            Message::ConnectRunspacePool(p) => p.to_value(),
            Message::SetMaxRunspaces(p) => p.to_value(),
            Message::SetMinRunspaces(p) => p.to_value(),
            Message::RunspaceAvailability(p) => p.to_value(),
            Message::RunspacePoolState(p) => p.to_value(),
            Message::CreatePipeline(p) => p.to_value(),
            Message::GetAvailableRunspaces(p) => p.to_value(),
            Message::UserEvent(p) => p.to_value(),
            Message::ApplicationPrivateData(p) => p.to_value(),
            Message::GetCommandMetadata(p) => p.to_value(),
            Message::RunspacePoolInitData(p) => p.to_value(),
            Message::ResetRunspaceState(p) => p.to_value(),
            Message::RunspacePoolHostCall(c) | Message::PipelineHostCall(c) => c.to_value(),
            Message::RunspacePoolHostResponse(r) | Message::PipelineHostResponse(r) => r.to_value(),
            Message::PipelineState(p) => p.to_value(),
            Message::PipelineInput(v)
            | Message::PipelineOutput(v)
            | Message::ErrorRecord(v)
            | Message::DebugRecord(v)
            | Message::VerboseRecord(v)
            | Message::WarningRecord(v)
            | Message::ProgressRecord(v)
            | Message::InformationRecord(v) => v.clone(),
            Message::PublicKeyRequest => Value::Str(String::new()),
            Message::EndOfPipelineInput | Message::Other { .. } => return None,
        })
    }

    /// The message data (CLIXML, no BOM; empty for END_OF_PIPELINE_INPUT).
    pub fn encode_data(&self) -> Bytes {
        match self {
            Message::Other { data, .. } => data.clone(),
            other => match other.to_value() {
                Some(v) => Bytes::from(clixml::to_string(&v)),
                None => Bytes::new(),
            },
        }
    }
}

macro_rules! wrap {
    ($($ty:ty => $arm:ident),* $(,)?) => {
        $(impl From<$ty> for Message {
            fn from(p: $ty) -> Message { Message::$arm(p.into()) }
        })*
    };
}

wrap! {
    SessionCapability => SessionCapability,
    InitRunspacePool => InitRunspacePool,
    PublicKey => PublicKey,
    EncryptedSessionKey => EncryptedSessionKey,
    ConnectRunspacePool => ConnectRunspacePool,
    SetMaxRunspaces => SetMaxRunspaces,
    SetMinRunspaces => SetMinRunspaces,
    RunspaceAvailability => RunspaceAvailability,
    RunspacePoolStateInfo => RunspacePoolState,
    CreatePipeline => CreatePipeline,
    GetAvailableRunspaces => GetAvailableRunspaces,
    UserEvent => UserEvent,
    ApplicationPrivateData => ApplicationPrivateData,
    GetCommandMetadata => GetCommandMetadata,
    RunspacePoolInitData => RunspacePoolInitData,
    ResetRunspaceState => ResetRunspaceState,
    PipelineStateInfo => PipelineState,
}
