//! ErrorRecord, with its CategoryInfo and InvocationInfo.

use std::fmt;
use std::sync::Arc;

use super::Result;
use super::common::{View, opt_s, prop, strip_deserialized, text_of};
use crate::clixml::{Object, Property, Value};

/// `System.Management.Automation.ErrorCategory` names, by value.
const ERROR_CATEGORIES: [&str; 32] = [
    "NotSpecified",
    "OpenError",
    "CloseError",
    "DeviceError",
    "DeadlockDetected",
    "InvalidArgument",
    "InvalidData",
    "InvalidOperation",
    "InvalidResult",
    "InvalidType",
    "MetadataError",
    "NotImplemented",
    "NotInstalled",
    "ObjectNotFound",
    "OperationStopped",
    "OperationTimeout",
    "SyntaxError",
    "ParserError",
    "PermissionDenied",
    "ResourceBusy",
    "ResourceExists",
    "ResourceUnavailable",
    "ReadError",
    "WriteError",
    "FromStdErr",
    "SecurityError",
    "ProtocolError",
    "ConnectionError",
    "AuthenticationError",
    "LimitsExceeded",
    "QuotaExceeded",
    "NotEnabled",
];

/// The name of an `ErrorCategory` value (`13` is `ObjectNotFound`).
pub fn error_category_name(category: i32) -> Option<&'static str> {
    usize::try_from(category)
        .ok()
        .and_then(|i| ERROR_CATEGORIES.get(i))
        .copied()
}

/// An ErrorRecord's `CategoryInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryInfo {
    /// The `ErrorCategory` value (`ErrorCategory_Category`).
    pub category: i32,
    /// The activity, usually the command name (`ErrorCategory_Activity`).
    pub activity: String,
    /// The reason, usually the exception type name (`ErrorCategory_Reason`).
    pub reason: String,
    /// The target name (`ErrorCategory_TargetName`).
    pub target_name: String,
    /// The target type (`ErrorCategory_TargetType`).
    pub target_type: String,
    /// The one-line form PowerShell prints (`ErrorCategory_Message`), if sent.
    pub message: Option<String>,
}

impl CategoryInfo {
    /// The category's name (`NotSpecified`, `ObjectNotFound`, ...), or its number.
    pub fn category_name(&self) -> String {
        error_category_name(self.category).map_or_else(|| self.category.to_string(), str::to_owned)
    }
}

impl fmt::Display for CategoryInfo {
    /// `ObjectNotFound: (C:\nope:String) [Get-Item], ItemNotFoundException`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(
                f,
                "{}: ({}:{}) [{}], {}",
                self.category_name(),
                self.target_name,
                self.target_type,
                self.activity,
                self.reason
            ),
        }
    }
}

/// Where a command was invoked (`InvocationInfo`), as far as the record carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvocationInfo {
    /// The command's name (`CommandInfo_Name`, or `MyCommand` when that is a name).
    pub command_name: Option<String>,
    /// The name used to invoke the command.
    pub invocation_name: Option<String>,
    /// The script file, empty for interactive input.
    pub script_name: Option<String>,
    /// The line of script text.
    pub line: Option<String>,
    /// The `At line:1 char:1 ...` text PowerShell prints.
    pub position_message: Option<String>,
    /// 1-based script line number.
    pub script_line_number: Option<i32>,
    /// 1-based column.
    pub offset_in_line: Option<i32>,
    /// History id of the pipeline.
    pub history_id: Option<i64>,
    /// Pipeline length.
    pub pipeline_length: Option<i32>,
    /// Position in the pipeline.
    pub pipeline_position: Option<i32>,
}

impl InvocationInfo {
    /// Reads the flattened `InvocationInfo_*` properties of a record, falling back on a
    /// nested `InvocationInfo` object.
    pub(super) fn read(view: &View<'_>) -> Result<Option<Self>> {
        let nested = view.get("InvocationInfo").and_then(Value::as_object);
        let n = nested.map(|obj| View {
            obj,
            record: view.record,
        });
        let s = |flat: &'static str, short: &'static str| -> Result<Option<String>> {
            match view.opt_str(flat)? {
                Some(v) => Ok(Some(v)),
                None => n.as_ref().map_or(Ok(None), |n| n.opt_str(short)),
            }
        };
        let i = |flat: &'static str, short: &'static str| -> Result<Option<i64>> {
            match view.opt_i64(flat)? {
                Some(v) => Ok(Some(v)),
                None => n.as_ref().map_or(Ok(None), |n| n.opt_i64(short)),
            }
        };
        let to_i32 = |v: Option<i64>| v.and_then(|v| i32::try_from(v).ok());
        let info = InvocationInfo {
            command_name: view
                .opt_str("CommandInfo_Name")?
                .filter(|s| !s.is_empty())
                .or(match n.as_ref().and_then(|n| n.get("MyCommand")) {
                    Some(Value::Str(s)) if !s.contains('\n') && !s.is_empty() => Some(s.clone()),
                    Some(v @ Value::Object(_)) => text_of(v),
                    _ => None,
                }),
            invocation_name: s("InvocationInfo_InvocationName", "InvocationName")?,
            script_name: s("InvocationInfo_ScriptName", "ScriptName")?,
            line: s("InvocationInfo_Line", "Line")?,
            position_message: s("InvocationInfo_PositionMessage", "PositionMessage")?,
            script_line_number: to_i32(i("InvocationInfo_ScriptLineNumber", "ScriptLineNumber")?),
            offset_in_line: to_i32(i("InvocationInfo_OffsetInLine", "OffsetInLine")?),
            history_id: i("InvocationInfo_HistoryId", "HistoryId")?,
            pipeline_length: to_i32(i("InvocationInfo_PipelineLength", "PipelineLength")?),
            pipeline_position: to_i32(i("InvocationInfo_PipelinePosition", "PipelinePosition")?),
        };
        Ok((info != InvocationInfo::default()).then_some(info))
    }

    pub(super) fn write(&self, props: &mut Vec<Property>) {
        let opt_i = |v: Option<i32>| v.map_or(Value::Nil, Value::I32);
        props.push(prop(
            "InvocationInfo_InvocationName",
            opt_s(&self.invocation_name),
        ));
        props.push(prop("InvocationInfo_ScriptName", opt_s(&self.script_name)));
        props.push(prop("InvocationInfo_Line", opt_s(&self.line)));
        props.push(prop(
            "InvocationInfo_PositionMessage",
            opt_s(&self.position_message),
        ));
        props.push(prop(
            "InvocationInfo_ScriptLineNumber",
            opt_i(self.script_line_number),
        ));
        props.push(prop(
            "InvocationInfo_OffsetInLine",
            opt_i(self.offset_in_line),
        ));
        props.push(prop(
            "InvocationInfo_HistoryId",
            self.history_id.map_or(Value::Nil, Value::I64),
        ));
        props.push(prop(
            "InvocationInfo_PipelineLength",
            opt_i(self.pipeline_length),
        ));
        props.push(prop(
            "InvocationInfo_PipelinePosition",
            opt_i(self.pipeline_position),
        ));
        props.push(prop("CommandInfo_Name", opt_s(&self.command_name)));
    }
}

/// An `ErrorRecord` (ERROR_RECORD messages, `ExceptionAsErrorRecord` of a failed pipeline).
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRecord {
    /// The exception's message (`Exception.Message`, else the record's `ToString`).
    pub exception_message: String,
    /// The exception's .NET type (without the `Deserialized.` prefix).
    pub exception_type: Option<String>,
    /// `FullyQualifiedErrorId`.
    pub fully_qualified_error_id: String,
    /// The category.
    pub category: CategoryInfo,
    /// `TargetObject`, if not null.
    pub target_object: Option<Value>,
    /// Where the failing command ran.
    pub invocation: Option<InvocationInfo>,
    /// `ErrorDetails_Message`: replaces the exception message when displayed.
    pub error_details_message: Option<String>,
    /// `ErrorDetails_RecommendedAction`.
    pub recommended_action: Option<String>,
    /// `ErrorDetails_ScriptStackTrace`.
    pub script_stack_trace: Option<String>,
}

const ERROR_RECORD_TYPE: &str = "System.Management.Automation.ErrorRecord";

impl ErrorRecord {
    /// Reads an ErrorRecord object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "ErrorRecord")?;
        let exception = view.get("Exception");
        let exception_message = match exception.and_then(Value::as_object) {
            Some(obj) => View {
                obj,
                record: "ErrorRecord",
            }
            .opt_str("Message")?,
            None => exception.and_then(text_of),
        };
        let exception_message = exception_message
            .or_else(|| view.obj.to_string.clone())
            .ok_or_else(|| view.missing("Exception"))?;
        let exception_type = exception
            .and_then(Value::as_object)
            .and_then(Object::type_name)
            .map(|t| strip_deserialized(t).to_owned());
        let category = CategoryInfo {
            category: view
                .opt_i64("ErrorCategory_Category")?
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(0),
            activity: view.opt_str("ErrorCategory_Activity")?.unwrap_or_default(),
            reason: view.opt_str("ErrorCategory_Reason")?.unwrap_or_default(),
            target_name: view
                .opt_str("ErrorCategory_TargetName")?
                .unwrap_or_default(),
            target_type: view
                .opt_str("ErrorCategory_TargetType")?
                .unwrap_or_default(),
            message: view.opt_str("ErrorCategory_Message")?,
        };
        Ok(ErrorRecord {
            exception_message,
            exception_type,
            fully_qualified_error_id: view.str("FullyQualifiedErrorId")?,
            category,
            target_object: view.get("TargetObject").cloned(),
            invocation: InvocationInfo::read(&view)?,
            error_details_message: view.opt_str("ErrorDetails_Message")?,
            recommended_action: view.opt_str("ErrorDetails_RecommendedAction")?,
            script_stack_trace: view.opt_str("ErrorDetails_ScriptStackTrace")?,
        })
    }

    /// The message PowerShell shows: `ErrorDetails_Message` if set, else the exception's.
    pub fn message(&self) -> &str {
        self.error_details_message
            .as_deref()
            .unwrap_or(&self.exception_message)
    }

    /// The record as PowerShell serializes it (with `SerializeExtendedInfo`).
    pub fn to_value(&self) -> Value {
        let exception_type = self.exception_type.as_deref().unwrap_or("System.Exception");
        let mut tn = vec![exception_type.to_owned()];
        if exception_type != "System.Exception" {
            tn.push("System.Exception".into());
        }
        tn.push("System.Object".into());
        let exception = Value::object(Object {
            type_names: Some(tn.into()),
            to_string: Some(format!("{exception_type}: {}", self.exception_message)),
            adapted: vec![prop("Message", self.exception_message.as_str())],
            ..Object::default()
        });
        let mut ms = vec![
            prop("Exception", exception),
            prop(
                "TargetObject",
                self.target_object.clone().unwrap_or(Value::Nil),
            ),
            prop(
                "FullyQualifiedErrorId",
                self.fully_qualified_error_id.as_str(),
            ),
            prop("ErrorCategory_Category", self.category.category),
            prop("ErrorCategory_Activity", self.category.activity.as_str()),
            prop("ErrorCategory_Reason", self.category.reason.as_str()),
            prop(
                "ErrorCategory_TargetName",
                self.category.target_name.as_str(),
            ),
            prop(
                "ErrorCategory_TargetType",
                self.category.target_type.as_str(),
            ),
            prop("ErrorCategory_Message", self.category.to_string()),
            prop("SerializeExtendedInfo", self.invocation.is_some()),
        ];
        if let Some(inv) = &self.invocation {
            inv.write(&mut ms);
        }
        if let Some(m) = &self.error_details_message {
            ms.push(prop("ErrorDetails_Message", m.as_str()));
        }
        if let Some(m) = &self.recommended_action {
            ms.push(prop("ErrorDetails_RecommendedAction", m.as_str()));
        }
        if let Some(m) = &self.script_stack_trace {
            ms.push(prop("ErrorDetails_ScriptStackTrace", m.as_str()));
        }
        Value::object(Object {
            type_names: Some(Arc::from(vec![
                ERROR_RECORD_TYPE.to_owned(),
                "System.Object".into(),
            ])),
            to_string: Some(self.message().to_owned()),
            extended: ms,
            ..Object::default()
        })
    }
}

impl fmt::Display for ErrorRecord {
    /// PowerShell's error view:
    ///
    /// ```text
    /// Get-Item : Cannot find path 'C:\nope' because it does not exist.
    /// At line:1 char:1
    /// + Get-Item C:\nope
    /// + ~~~~~~~~~~~~~~~~
    ///     + CategoryInfo          : ObjectNotFound: (C:\nope:String) [Get-Item], ItemNotFoundException
    ///     + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inv = self.invocation.as_ref();
        let prefix = inv.and_then(|i| {
            i.command_name
                .as_deref()
                .or(i.invocation_name.as_deref())
                .filter(|s| !s.is_empty())
        });
        match prefix {
            Some(cmd) => write!(f, "{cmd} : {}", self.message())?,
            None => f.write_str(self.message())?,
        }
        if let Some(pos) = inv
            .and_then(|i| i.position_message.as_deref())
            .filter(|p| !p.is_empty())
        {
            write!(f, "\n{}", pos.trim_end().replace("\r\n", "\n"))?;
        }
        write!(f, "\n    + CategoryInfo          : {}", self.category)?;
        write!(
            f,
            "\n    + FullyQualifiedErrorId : {}",
            self.fully_qualified_error_id
        )
    }
}
