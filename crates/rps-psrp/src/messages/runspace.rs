//! Runspace pool messages ([MS-PSRP] 2.2.2.8–2.2.2.14, 2.2.2.16–2.2.2.18).

use crate::clixml::Value;
use crate::message::MessageType;

use super::util::{Props, dotnet_enum, list_value, ms_object};
use super::{Payload, PayloadError};

dotnet_enum! {
    /// `RunspacePoolState` ([MS-PSRP] 2.2.3.4).
    RunspacePoolState: "System.Management.Automation.Runspaces.RunspacePoolState" {
        /// Not opened yet.
        BeforeOpen = 0,
        /// Opening.
        Opening = 1,
        /// Open and usable.
        Opened = 2,
        /// Closed.
        Closed = 3,
        /// Closing.
        Closing = 4,
        /// Failed; see the error.
        Broken = 5,
        /// Capability sent, waiting for the server's.
        NegotiationSent = 6,
        /// Capabilities agreed.
        NegotiationSucceeded = 7,
        /// Reconnecting.
        Connecting = 8,
        /// Disconnected from the client.
        Disconnected = 9,
    }
}

/// `RUNSPACEPOOL_STATE`: the pool's new state, with the error that broke it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunspacePoolStateInfo {
    /// The new state.
    pub state: RunspacePoolState,
    /// `ExceptionAsErrorRecord`, when the state is Broken or Closed by a failure.
    pub error: Option<Value>,
}

impl Payload for RunspacePoolStateInfo {
    const MESSAGE_TYPE: MessageType = MessageType::RunspacePoolState;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(RunspacePoolStateInfo {
            state: p.enum_of("RunspaceState", RunspacePoolState::from_i32)?,
            error: p.opt("ExceptionAsErrorRecord").cloned(),
        })
    }

    fn to_value(&self) -> Value {
        let mut props = vec![("RunspaceState", Value::I32(self.state.to_i32()))];
        if let Some(e) = &self.error {
            props.push(("ExceptionAsErrorRecord", e.clone()));
        }
        ms_object(props)
    }
}

/// `SET_MAX_RUNSPACES`: asks to change the most runspaces (answered by
/// `RUNSPACE_AVAILABILITY` with the same call id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetMaxRunspaces {
    /// The new maximum.
    pub max_runspaces: i32,
    /// The call id.
    pub call_id: i64,
}

impl Payload for SetMaxRunspaces {
    const MESSAGE_TYPE: MessageType = MessageType::SetMaxRunspaces;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(SetMaxRunspaces {
            max_runspaces: p.i32("MaxRunspaces")?,
            call_id: p.i64("ci")?,
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("MaxRunspaces", Value::I32(self.max_runspaces)),
            ("ci", Value::I64(self.call_id)),
        ])
    }
}

/// `SET_MIN_RUNSPACES`: asks to change the fewest runspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetMinRunspaces {
    /// The new minimum.
    pub min_runspaces: i32,
    /// The call id.
    pub call_id: i64,
}

impl Payload for SetMinRunspaces {
    const MESSAGE_TYPE: MessageType = MessageType::SetMinRunspaces;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(SetMinRunspaces {
            min_runspaces: p.i32("MinRunspaces")?,
            call_id: p.i64("ci")?,
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("MinRunspaces", Value::I32(self.min_runspaces)),
            ("ci", Value::I64(self.call_id)),
        ])
    }
}

/// What a `RUNSPACE_AVAILABILITY` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Whether SET_MAX/MIN_RUNSPACES or RESET_RUNSPACE_STATE succeeded.
    Success(bool),
    /// The free runspaces, for GET_AVAILABLE_RUNSPACES.
    Count(i64),
}

/// `RUNSPACE_AVAILABILITY`: the answer to a call-id request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunspaceAvailability {
    /// The answer.
    pub response: Availability,
    /// The call id of the request.
    pub call_id: i64,
}

impl Payload for RunspaceAvailability {
    const MESSAGE_TYPE: MessageType = MessageType::RunspaceAvailability;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        let raw = p.req("SetMinMaxRunspacesResponse")?;
        let response = match (raw.as_bool(), raw.as_i64()) {
            (Some(b), _) => Availability::Success(b),
            (None, Some(n)) => Availability::Count(n),
            _ => {
                return Err(PayloadError::WrongType {
                    message: Self::MESSAGE_TYPE.name(),
                    field: "SetMinMaxRunspacesResponse",
                    expected: "boolean or integer",
                });
            }
        };
        Ok(RunspaceAvailability {
            response,
            call_id: p.i64("ci")?,
        })
    }

    fn to_value(&self) -> Value {
        let r = match self.response {
            Availability::Success(b) => Value::Bool(b),
            Availability::Count(n) => Value::I64(n),
        };
        ms_object(vec![
            ("SetMinMaxRunspacesResponse", r),
            ("ci", Value::I64(self.call_id)),
        ])
    }
}

/// `GET_AVAILABLE_RUNSPACES`: asks how many runspaces are free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetAvailableRunspaces {
    /// The call id.
    pub call_id: i64,
}

impl Payload for GetAvailableRunspaces {
    const MESSAGE_TYPE: MessageType = MessageType::GetAvailableRunspaces;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(GetAvailableRunspaces {
            call_id: p.i64("ci")?,
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![("ci", Value::I64(self.call_id))])
    }
}

/// `RESET_RUNSPACE_STATE` (protocol 2.3): resets variables and state of the runspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetRunspaceState {
    /// The call id.
    pub call_id: i64,
}

impl Payload for ResetRunspaceState {
    const MESSAGE_TYPE: MessageType = MessageType::ResetRunspaceState;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(ResetRunspaceState {
            call_id: p.i64("ci")?,
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![("ci", Value::I64(self.call_id))])
    }
}

/// `APPLICATION_PRIVATE_DATA`: a `PSPrimitiveDictionary` the server application shares
/// (for PowerShell: `PSVersionTable`, debug mode, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationPrivateData {
    /// The dictionary, or `None` when the server sent `<Nil/>`.
    pub data: Option<Value>,
}

impl Payload for ApplicationPrivateData {
    const MESSAGE_TYPE: MessageType = MessageType::ApplicationPrivateData;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(ApplicationPrivateData {
            data: p.opt("ApplicationPrivateData").cloned(),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![(
            "ApplicationPrivateData",
            self.data.clone().unwrap_or(Value::Nil),
        )])
    }
}

/// `GET_COMMAND_METADATA`: asks which commands match (as `Get-Command` does).
#[derive(Debug, Clone, PartialEq)]
pub struct GetCommandMetadata {
    /// Name patterns.
    pub names: Vec<String>,
    /// `CommandTypes` flags (e.g. `0x7f` for the usual kinds).
    pub command_type: i32,
    /// Module name patterns, if limited.
    pub namespace: Option<Vec<String>>,
    /// `ArgumentList`, if any.
    pub argument_list: Option<Value>,
}

fn string_array(items: &[String]) -> Value {
    list_value(
        &["System.String[]", "System.Array", "System.Object"],
        items.iter().map(|s| Value::Str(s.clone())).collect(),
    )
}

fn read_strings(v: &Value, field: &'static str) -> Result<Vec<String>, PayloadError> {
    let wrong = || PayloadError::WrongType {
        message: MessageType::GetCommandMetadata.name(),
        field,
        expected: "string list",
    };
    if let Some(s) = v.as_str() {
        return Ok(vec![s.to_owned()]);
    }
    super::util::list_items(v)
        .ok_or_else(wrong)?
        .iter()
        .map(|i| i.as_str().map(str::to_owned).ok_or_else(wrong))
        .collect()
}

impl Payload for GetCommandMetadata {
    const MESSAGE_TYPE: MessageType = MessageType::GetCommandMetadata;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(GetCommandMetadata {
            names: match p.opt("Name") {
                Some(n) => read_strings(n, "Name")?,
                None => Vec::new(),
            },
            command_type: p.i32("CommandType")?,
            namespace: p
                .opt("Namespace")
                .map(|n| read_strings(n, "Namespace"))
                .transpose()?,
            argument_list: p.opt("ArgumentList").cloned(),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("Name", string_array(&self.names)),
            (
                "CommandType",
                super::util::enum_value(
                    "System.Management.Automation.CommandTypes",
                    "Alias, Function, Filter, Cmdlet",
                    self.command_type,
                ),
            ),
            (
                "Namespace",
                self.namespace
                    .as_deref()
                    .map(string_array)
                    .unwrap_or(Value::Nil),
            ),
            (
                "ArgumentList",
                self.argument_list.clone().unwrap_or(Value::Nil),
            ),
        ])
    }
}

/// `USER_EVENT`: an event forwarded from the server (`PSEventArgs`), kept as received.
#[derive(Debug, Clone, PartialEq)]
pub struct UserEvent {
    /// The event object.
    pub value: Value,
}

impl UserEvent {
    /// `PSEventArgs.EventIdentifier`.
    pub fn event_identifier(&self) -> Option<i64> {
        self.value
            .as_object()?
            .get("PSEventArgs.EventIdentifier")?
            .as_i64()
    }

    /// `PSEventArgs.SourceIdentifier`.
    pub fn source_identifier(&self) -> Option<&str> {
        self.value
            .as_object()?
            .get("PSEventArgs.SourceIdentifier")?
            .as_str()
    }
}

impl Payload for UserEvent {
    const MESSAGE_TYPE: MessageType = MessageType::UserEvent;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(UserEvent { value: v.clone() })
    }

    fn to_value(&self) -> Value {
        self.value.clone()
    }
}
