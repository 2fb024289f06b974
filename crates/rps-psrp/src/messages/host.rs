//! Host calls and responses ([MS-PSRP] 2.2.2.15, 2.2.2.16, 2.2.2.27, 2.2.2.28; methods in
//! 2.2.3.17): the server asks the client's host to prompt, write, or report its UI state.

use crate::clixml::Value;
use crate::message::MessageType;

use super::PayloadError;
use super::util::{Props, list_items, list_value, ms_object};

macro_rules! host_methods {
    ($($variant:ident = $value:literal),* $(,)?) => {
        /// `RemoteHostMethodId` ([MS-PSRP] 2.2.3.17): which host method a call invokes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HostMethod {
            $(
                #[doc = concat!("`", stringify!($variant), "` (", stringify!($value), ").")]
                $variant,
            )*
            /// A method id this crate does not know.
            Unknown(i32),
        }

        impl HostMethod {
            /// The .NET type name.
            pub const TYPE_NAME: &'static str =
                "System.Management.Automation.Remoting.RemoteHostMethodId";

            /// The method id.
            pub fn to_i32(self) -> i32 {
                match self { $(HostMethod::$variant => $value,)* HostMethod::Unknown(v) => v }
            }

            /// The method for an id.
            pub fn from_i32(v: i32) -> Self {
                match v { $($value => HostMethod::$variant,)* other => HostMethod::Unknown(other) }
            }

            /// The method name, e.g. `"ReadLine"`.
            pub fn name(self) -> &'static str {
                match self { $(HostMethod::$variant => stringify!($variant),)* HostMethod::Unknown(_) => "Unknown" }
            }
        }
    };
}

host_methods! {
    GetName = 1, GetVersion = 2, GetInstanceId = 3, GetCurrentCulture = 4,
    GetCurrentUICulture = 5, SetShouldExit = 6, EnterNestedPrompt = 7, ExitNestedPrompt = 8,
    NotifyBeginApplication = 9, NotifyEndApplication = 10, ReadLine = 11,
    ReadLineAsSecureString = 12, Write1 = 13, Write2 = 14, WriteLine1 = 15, WriteLine2 = 16,
    WriteLine3 = 17, WriteErrorLine = 18, WriteDebugLine = 19, WriteProgress = 20,
    WriteVerboseLine = 21, WriteWarningLine = 22, Prompt = 23, PromptForCredential1 = 24,
    PromptForCredential2 = 25, PromptForChoice = 26, GetForegroundColor = 27,
    SetForegroundColor = 28, GetBackgroundColor = 29, SetBackgroundColor = 30,
    GetCursorPosition = 31, SetCursorPosition = 32, GetWindowPosition = 33,
    SetWindowPosition = 34, GetCursorSize = 35, SetCursorSize = 36, GetBufferSize = 37,
    SetBufferSize = 38, GetWindowSize = 39, SetWindowSize = 40, GetWindowTitle = 41,
    SetWindowTitle = 42, GetMaxWindowSize = 43, GetMaxPhysicalWindowSize = 44,
    GetKeyAvailable = 45, ReadKey = 46, FlushInputBuffer = 47, SetBufferContents1 = 48,
    SetBufferContents2 = 49, GetBufferContents = 50, ScrollBufferContents = 51,
    PushRunspace = 52, PopRunspace = 53, GetIsRunspacePushed = 54, GetRunspace = 55,
    PromptForChoiceMultipleSelection = 56,
}

impl HostMethod {
    /// True for methods the server waits on: the client must send a host response.
    pub fn expects_response(self) -> bool {
        use HostMethod::*;
        matches!(
            self,
            GetName
                | GetVersion
                | GetInstanceId
                | GetCurrentCulture
                | GetCurrentUICulture
                | ReadLine
                | ReadLineAsSecureString
                | Prompt
                | PromptForCredential1
                | PromptForCredential2
                | PromptForChoice
                | GetForegroundColor
                | GetBackgroundColor
                | GetCursorPosition
                | GetWindowPosition
                | GetCursorSize
                | GetBufferSize
                | GetWindowSize
                | GetWindowTitle
                | GetMaxWindowSize
                | GetMaxPhysicalWindowSize
                | GetKeyAvailable
                | ReadKey
                | GetBufferContents
                | GetIsRunspacePushed
                | GetRunspace
                | PromptForChoiceMultipleSelection
        )
    }

    fn to_value(self) -> Value {
        super::util::enum_value(Self::TYPE_NAME, self.name(), self.to_i32())
    }
}

/// `RUNSPACEPOOL_HOST_CALL` / `PIPELINE_HOST_CALL`: the server calls a host method.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCall {
    /// The call id, echoed in the response.
    pub call_id: i64,
    /// The method.
    pub method: HostMethod,
    /// The arguments, in order.
    pub parameters: Vec<Value>,
}

impl HostCall {
    /// Reads a host call of message type `ty`.
    pub fn from_value(v: &Value, ty: MessageType) -> Result<Self, PayloadError> {
        let p = Props::of(v, ty.name())?;
        let parameters = match p.opt("mp") {
            None => Vec::new(),
            Some(mp) => list_items(mp)
                .ok_or(PayloadError::WrongType {
                    message: ty.name(),
                    field: "mp",
                    expected: "list",
                })?
                .to_vec(),
        };
        Ok(HostCall {
            call_id: p.i64("ci")?,
            method: HostMethod::from_i32(p.i32("mi")?),
            parameters,
        })
    }

    /// The call object.
    pub fn to_value(&self) -> Value {
        ms_object(vec![
            ("ci", Value::I64(self.call_id)),
            ("mi", self.method.to_value()),
            (
                "mp",
                list_value(
                    &["System.Collections.ArrayList", "System.Object"],
                    self.parameters.clone(),
                ),
            ),
        ])
    }
}

/// `RUNSPACEPOOL_HOST_RESPONSE` / `PIPELINE_HOST_RESPONSE`: the client's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HostResponse {
    /// The call id of the call answered.
    pub call_id: i64,
    /// The method that was called.
    pub method: HostMethod,
    /// The return value (`mr`), if any.
    pub result: Option<Value>,
    /// The error record (`me`) when the method failed.
    pub error: Option<Value>,
}

impl HostResponse {
    /// Reads a host response of message type `ty`.
    pub fn from_value(v: &Value, ty: MessageType) -> Result<Self, PayloadError> {
        let p = Props::of(v, ty.name())?;
        Ok(HostResponse {
            call_id: p.i64("ci")?,
            method: HostMethod::from_i32(p.i32("mi")?),
            result: p.opt("mr").cloned(),
            error: p.opt("me").cloned(),
        })
    }

    /// The response object.
    pub fn to_value(&self) -> Value {
        let mut props = Vec::new();
        if let Some(r) = &self.result {
            props.push(("mr", r.clone()));
        }
        if let Some(e) = &self.error {
            props.push(("me", e.clone()));
        }
        props.push(("ci", Value::I64(self.call_id)));
        props.push(("mi", self.method.to_value()));
        ms_object(props)
    }
}
