//! Typed views of the records users meet (ErrorRecord, InformationRecord, ProgressRecord, ...).
//!
//! Each view is read from a decoded CLIXML [`Value`] with `from_value` (missing or mistyped
//! properties give a [`RecordError`] naming the record and the property) and turned back into
//! a value PowerShell accepts with `to_value`, for the server side. Property names and shapes
//! follow what Windows PowerShell 5.1 sends ([MS-PSRP] 2.2.3).
//!
//! ```
//! use rps_psrp::{clixml, records::InformationRecord};
//!
//! let v = clixml::from_slice(br#"<Obj RefId="0"><MS><S N="MessageData">hello</S><S N="Source">Write-Information</S>
//!   <DT N="TimeGenerated">2018-06-13T23:46:28.00516+00:00</DT><Obj N="Tags" RefId="1"><LST><S>a</S></LST></Obj>
//!   <S N="User">HOST\user</S><S N="Computer">HOST</S><U32 N="ProcessId">2636</U32>
//!   <U32 N="NativeThreadId">2840</U32><U32 N="ManagedThreadId">7</U32></MS></Obj>"#)?;
//! let info = InformationRecord::from_value(&v)?;
//! assert_eq!(info.message_data.as_str(), Some("hello"));
//! assert_eq!(info.tags, ["a"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use crate::clixml::{ListKind, Object, ObjectBase, Property, Value};

/// Why a value is not the record asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is not an `<Obj>`.
    #[error("{record}: value is not an object")]
    NotAnObject {
        /// The record being read.
        record: &'static str,
    },
    /// A required property is absent (or `<Nil/>`).
    #[error("{record}: missing property {property}")]
    MissingProperty {
        /// The record being read.
        record: &'static str,
        /// The property name.
        property: &'static str,
    },
    /// A property has an unexpected type.
    #[error("{record}: property {property} is not {expected}")]
    WrongType {
        /// The record being read.
        record: &'static str,
        /// The property name.
        property: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

type Result<T> = std::result::Result<T, RecordError>;

// ---------------------------------------------------------------------------------------------
// Reading helpers.

struct View<'v> {
    obj: &'v Object,
    record: &'static str,
}

impl<'v> View<'v> {
    fn of(v: &'v Value, record: &'static str) -> Result<Self> {
        match v.as_object() {
            Some(obj) => Ok(View { obj, record }),
            None => Err(RecordError::NotAnObject { record }),
        }
    }

    fn get(&self, name: &str) -> Option<&'v Value> {
        self.obj.get(name).filter(|v| !v.is_nil())
    }

    fn missing(&self, property: &'static str) -> RecordError {
        RecordError::MissingProperty {
            record: self.record,
            property,
        }
    }

    fn wrong(&self, property: &'static str, expected: &'static str) -> RecordError {
        RecordError::WrongType {
            record: self.record,
            property,
            expected,
        }
    }

    fn opt_str(&self, name: &'static str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => text_of(v)
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string")),
        }
    }

    fn str(&self, name: &'static str) -> Result<String> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    fn opt_i64(&self, name: &'static str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "an integer")),
        }
    }

    fn i32(&self, name: &'static str) -> Result<i32> {
        let n = self.opt_i64(name)?.ok_or_else(|| self.missing(name))?;
        i32::try_from(n).map_err(|_| self.wrong(name, "a 32-bit integer"))
    }

    fn u32(&self, name: &'static str) -> Result<u32> {
        let n = self.opt_i64(name)?.ok_or_else(|| self.missing(name))?;
        u32::try_from(n).map_err(|_| self.wrong(name, "an unsigned 32-bit integer"))
    }

    fn opt_bool(&self, name: &'static str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a boolean")),
        }
    }

    fn bool(&self, name: &'static str) -> Result<bool> {
        self.opt_bool(name)?.ok_or_else(|| self.missing(name))
    }
}

/// The text of a string-like value, or the `ToString` of an object (enums).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Str(s)
        | Value::DateTime(s)
        | Value::Duration(s)
        | Value::Version(s)
        | Value::Uri(s)
        | Value::Decimal(s) => Some(s.clone()),
        Value::Object(o) => match (&o.to_string, &o.base) {
            (Some(s), _) => Some(s.clone()),
            (None, ObjectBase::Primitive(p)) => text_of(p),
            _ => None,
        },
        _ => None,
    }
}

/// The items of a list-like object (or a single value as a one-item list).
fn items_of(v: &Value) -> Vec<&Value> {
    match v {
        Value::Nil => Vec::new(),
        Value::Object(o) => match &o.base {
            ObjectBase::List(_, items) => items.iter().collect(),
            _ => vec![v],
        },
        other => vec![other],
    }
}

// ---------------------------------------------------------------------------------------------
// Building helpers.

fn prop(name: &str, value: impl Into<Value>) -> Property {
    Property {
        name: name.to_owned(),
        value: value.into(),
    }
}

fn opt_s(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Nil, |s| Value::Str(s.clone()))
}

fn enum_value(type_name: &str, text: &str, n: i32) -> Value {
    Value::object(Object {
        type_names: Some(Arc::from(vec![
            type_name.to_owned(),
            "System.Enum".into(),
            "System.ValueType".into(),
            "System.Object".into(),
        ])),
        to_string: Some(text.to_owned()),
        base: ObjectBase::Primitive(Value::I32(n)),
        ..Object::default()
    })
}

fn list_value(type_names: &[&str], items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: Some(type_names.iter().map(|s| s.to_string()).collect()),
        base: ObjectBase::List(ListKind::List, items),
        ..Object::default()
    })
}

fn strip_deserialized(t: &str) -> &str {
    t.strip_prefix("Deserialized.").unwrap_or(t)
}

// ---------------------------------------------------------------------------------------------
// ErrorRecord.

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
    fn read(view: &View<'_>) -> Result<Option<Self>> {
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

    fn write(&self, props: &mut Vec<Property>) {
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

// ---------------------------------------------------------------------------------------------
// Informational records.

/// Which stream an [`InformationalRecord`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InformationalKind {
    /// `DEBUG_RECORD`, `System.Management.Automation.DebugRecord`.
    Debug,
    /// `VERBOSE_RECORD`, `System.Management.Automation.VerboseRecord`.
    Verbose,
    /// `WARNING_RECORD`, `System.Management.Automation.WarningRecord`.
    Warning,
}

impl InformationalKind {
    fn type_name(self) -> &'static str {
        match self {
            InformationalKind::Debug => "System.Management.Automation.DebugRecord",
            InformationalKind::Verbose => "System.Management.Automation.VerboseRecord",
            InformationalKind::Warning => "System.Management.Automation.WarningRecord",
        }
    }
}

/// A warning, verbose or debug record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InformationalRecord {
    /// The stream, from the type name (`None` when the object carries no type names).
    pub kind: Option<InformationalKind>,
    /// `InformationalRecord_Message`.
    pub message: String,
    /// Where it was written, when `InformationalRecord_SerializeInvocationInfo` is set.
    pub invocation: Option<InvocationInfo>,
}

impl InformationalRecord {
    /// Reads a Debug/Verbose/Warning record.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "InformationalRecord")?;
        let kind = view.obj.type_name().map(strip_deserialized).and_then(|t| {
            [
                InformationalKind::Debug,
                InformationalKind::Verbose,
                InformationalKind::Warning,
            ]
            .into_iter()
            .find(|k| k.type_name() == t)
        });
        let invocation =
            if view.opt_bool("InformationalRecord_SerializeInvocationInfo")? == Some(true) {
                InvocationInfo::read(&view)?
            } else {
                None
            };
        Ok(InformationalRecord {
            kind,
            message: view.str("InformationalRecord_Message")?,
            invocation,
        })
    }

    /// The record as PowerShell serializes it.
    pub fn to_value(&self) -> Value {
        let mut ms = vec![
            prop("InformationalRecord_Message", self.message.as_str()),
            prop(
                "InformationalRecord_SerializeInvocationInfo",
                self.invocation.is_some(),
            ),
        ];
        if let Some(inv) = &self.invocation {
            inv.write(&mut ms);
        }
        let mut tn = Vec::new();
        if let Some(k) = self.kind {
            tn.push(k.type_name().to_owned());
        }
        tn.push("System.Management.Automation.InformationalRecord".to_owned());
        tn.push("System.Object".to_owned());
        Value::object(Object {
            type_names: Some(tn.into()),
            to_string: Some(self.message.clone()),
            extended: ms,
            ..Object::default()
        })
    }
}

impl fmt::Display for InformationalRecord {
    /// `WARNING: text`, `VERBOSE: text`, `DEBUG: text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(InformationalKind::Debug) => write!(f, "DEBUG: {}", self.message),
            Some(InformationalKind::Verbose) => write!(f, "VERBOSE: {}", self.message),
            Some(InformationalKind::Warning) => write!(f, "WARNING: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// An `InformationRecord` (INFORMATION_RECORD, `Write-Information`/`Write-Host`).
#[derive(Clone, Debug, PartialEq)]
pub struct InformationRecord {
    /// `MessageData`: any value (a string, or a `HostInformationMessage` for `Write-Host`).
    pub message_data: Value,
    /// `Source`, e.g. `Write-Information`.
    pub source: String,
    /// `TimeGenerated`, as its CLIXML text.
    pub time_generated: String,
    /// `Tags`.
    pub tags: Vec<String>,
    /// `User`.
    pub user: String,
    /// `Computer`.
    pub computer: String,
    /// `ProcessId`.
    pub process_id: u32,
    /// `NativeThreadId`.
    pub native_thread_id: u32,
    /// `ManagedThreadId`.
    pub managed_thread_id: u32,
}

impl InformationRecord {
    /// Reads an InformationRecord.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "InformationRecord")?;
        let tags = match view.get("Tags") {
            None => Vec::new(),
            Some(t) => items_of(t)
                .into_iter()
                .map(|i| text_of(i).ok_or_else(|| view.wrong("Tags", "a list of strings")))
                .collect::<Result<_>>()?,
        };
        Ok(InformationRecord {
            message_data: view
                .obj
                .get("MessageData")
                .cloned()
                .ok_or_else(|| view.missing("MessageData"))?,
            source: view.opt_str("Source")?.unwrap_or_default(),
            time_generated: view.str("TimeGenerated")?,
            tags,
            user: view.opt_str("User")?.unwrap_or_default(),
            computer: view.opt_str("Computer")?.unwrap_or_default(),
            process_id: view.u32("ProcessId")?,
            native_thread_id: view.u32("NativeThreadId")?,
            managed_thread_id: view.u32("ManagedThreadId")?,
        })
    }

    /// The record as PowerShell serializes it.
    pub fn to_value(&self) -> Value {
        let tags = list_value(
            &[
                "System.Collections.Generic.List`1[[System.String]]",
                "System.Object",
            ],
            self.tags.iter().map(|t| Value::Str(t.clone())).collect(),
        );
        Value::object(Object {
            extended: vec![
                prop("MessageData", self.message_data.clone()),
                prop("Source", self.source.as_str()),
                prop(
                    "TimeGenerated",
                    Value::DateTime(self.time_generated.clone()),
                ),
                prop("Tags", tags),
                prop("User", self.user.as_str()),
                prop("Computer", self.computer.as_str()),
                prop("ProcessId", self.process_id),
                prop("NativeThreadId", self.native_thread_id),
                prop("ManagedThreadId", self.managed_thread_id),
            ],
            ..Object::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// `ProgressRecordType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProgressRecordType {
    /// Still running (0).
    #[default]
    Processing,
    /// Done (1): the progress bar goes away.
    Completed,
}

/// A `ProgressRecord` (PROGRESS_RECORD messages, or the `<PR>` primitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressRecord {
    /// `Activity`.
    pub activity: String,
    /// `ActivityId`.
    pub activity_id: i32,
    /// `StatusDescription`.
    pub status_description: String,
    /// `CurrentOperation`.
    pub current_operation: Option<String>,
    /// `ParentActivityId` (-1: none).
    pub parent_activity_id: i32,
    /// `PercentComplete` (-1: unknown).
    pub percent_complete: i32,
    /// `SecondsRemaining` (-1: unknown).
    pub seconds_remaining: i32,
    /// `Type`.
    pub record_type: ProgressRecordType,
}

impl ProgressRecord {
    /// Reads a progress record, from its message form or the `<PR>` primitive.
    pub fn from_value(v: &Value) -> Result<Self> {
        if let Value::Progress(p) = v {
            return Ok(ProgressRecord {
                activity: p.activity.clone(),
                activity_id: p.activity_id,
                status_description: p.status_description.clone().unwrap_or_default(),
                current_operation: p.current_operation.clone(),
                parent_activity_id: p.parent_activity_id,
                percent_complete: p.percent_complete,
                seconds_remaining: p.seconds_remaining,
                record_type: if p.record_type == "Completed" {
                    ProgressRecordType::Completed
                } else {
                    ProgressRecordType::Processing
                },
            });
        }
        let view = View::of(v, "ProgressRecord")?;
        let record_type = match view.get("Type") {
            None => return Err(view.missing("Type")),
            Some(t) => match (t.as_i64(), text_of(t).as_deref()) {
                (Some(1), _) | (None, Some("Completed")) => ProgressRecordType::Completed,
                (Some(0), _) | (None, Some("Processing")) => ProgressRecordType::Processing,
                _ => return Err(view.wrong("Type", "a ProgressRecordType")),
            },
        };
        Ok(ProgressRecord {
            activity: view.str("Activity")?,
            activity_id: view.i32("ActivityId")?,
            status_description: view.opt_str("StatusDescription")?.unwrap_or_default(),
            current_operation: view.opt_str("CurrentOperation")?,
            parent_activity_id: view.i32("ParentActivityId")?,
            percent_complete: view.i32("PercentComplete")?,
            seconds_remaining: view.i32("SecondsRemaining")?,
            record_type,
        })
    }

    /// The message form PowerShell sends in PROGRESS_RECORD.
    pub fn to_value(&self) -> Value {
        let (text, n) = match self.record_type {
            ProgressRecordType::Processing => ("Processing", 0),
            ProgressRecordType::Completed => ("Completed", 1),
        };
        Value::object(Object {
            extended: vec![
                prop("Activity", self.activity.as_str()),
                prop("ActivityId", self.activity_id),
                prop("StatusDescription", self.status_description.as_str()),
                prop("CurrentOperation", opt_s(&self.current_operation)),
                prop("ParentActivityId", self.parent_activity_id),
                prop("PercentComplete", self.percent_complete),
                prop(
                    "Type",
                    enum_value("System.Management.Automation.ProgressRecordType", text, n),
                ),
                prop("SecondsRemaining", self.seconds_remaining),
            ],
            ..Object::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PSCredential.

/// A `PSCredential`: user name and SecureString password (still encrypted with the session
/// key, base64). `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PsCredential {
    /// `UserName`.
    pub user_name: String,
    /// `Password`: the `<SS>` text (base64 of the session-key-encrypted UTF-16 bytes).
    pub password: String,
}

impl fmt::Debug for PsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PsCredential")
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl PsCredential {
    /// Reads a PSCredential object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "PSCredential")?;
        let password = match view.get("Password") {
            Some(Value::SecureString(s)) => s.clone(),
            Some(_) => return Err(view.wrong("Password", "a SecureString")),
            None => return Err(view.missing("Password")),
        };
        Ok(PsCredential {
            user_name: view.str("UserName")?,
            password,
        })
    }

    /// The object PowerShell sends.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            type_names: Some(Arc::from(vec![
                "System.Management.Automation.PSCredential".to_owned(),
                "System.Object".into(),
            ])),
            to_string: Some("System.Management.Automation.PSCredential".into()),
            adapted: vec![
                prop("UserName", self.user_name.as_str()),
                prop("Password", Value::SecureString(self.password.clone())),
            ],
            ..Object::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// HostInfo.

/// The `HostInfo` structure of INIT_RUNSPACEPOOL and CREATE_PIPELINE ([MS-PSRP] 2.2.3.14).
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// `_isHostNull`: no host at all.
    pub is_host_null: bool,
    /// `_isHostUINull`.
    pub is_host_ui_null: bool,
    /// `_isHostRawUINull`.
    pub is_host_raw_ui_null: bool,
    /// `_useRunspaceHost`: a pipeline uses the pool's host.
    pub use_runspace_host: bool,
    /// `_hostDefaultData`: the host's initial values (colors, sizes, title), kept as sent.
    pub host_default_data: Option<Value>,
}

impl Default for HostInfo {
    /// No host: what a non-interactive client sends.
    fn default() -> Self {
        HostInfo {
            is_host_null: true,
            is_host_ui_null: true,
            is_host_raw_ui_null: true,
            use_runspace_host: true,
            host_default_data: None,
        }
    }
}

impl HostInfo {
    /// Reads a HostInfo object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "HostInfo")?;
        Ok(HostInfo {
            is_host_null: view.bool("_isHostNull")?,
            is_host_ui_null: view.bool("_isHostUINull")?,
            is_host_raw_ui_null: view.bool("_isHostRawUINull")?,
            use_runspace_host: view.bool("_useRunspaceHost")?,
            host_default_data: view.get("_hostDefaultData").cloned(),
        })
    }

    /// The object to send.
    pub fn to_value(&self) -> Value {
        let mut ms = Vec::with_capacity(5);
        if let Some(d) = &self.host_default_data {
            ms.push(prop("_hostDefaultData", d.clone()));
        }
        ms.push(prop("_isHostNull", self.is_host_null));
        ms.push(prop("_isHostUINull", self.is_host_ui_null));
        ms.push(prop("_isHostRawUINull", self.is_host_raw_ui_null));
        ms.push(prop("_useRunspaceHost", self.use_runspace_host));
        Value::object(Object {
            extended: ms,
            ..Object::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// ApplicationPrivateData.

const PRIMITIVE_DICTIONARY: &[&str] = &[
    "System.Management.Automation.PSPrimitiveDictionary",
    "System.Collections.Hashtable",
    "System.Object",
];

/// A `PSPrimitiveDictionary`: string keys, primitive or nested-dictionary values, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrimitiveDictionary {
    /// The entries, in document order.
    pub entries: Vec<(String, Value)>,
}

impl PrimitiveDictionary {
    /// Reads a dictionary object (`<DCT>` base).
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "PSPrimitiveDictionary")?;
        let ObjectBase::Dict(entries) = &view.obj.base else {
            return Err(view.wrong("DCT", "a dictionary"));
        };
        let entries = entries
            .iter()
            .map(|(k, v)| {
                Ok((
                    text_of(k).ok_or_else(|| view.wrong("Key", "a string"))?,
                    v.clone(),
                ))
            })
            .collect::<Result<_>>()?;
        Ok(PrimitiveDictionary { entries })
    }

    /// Looks a key up (case-insensitively, as a Hashtable does).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// A nested dictionary.
    pub fn dict(&self, key: &str) -> Option<PrimitiveDictionary> {
        self.get(key)
            .and_then(|v| PrimitiveDictionary::from_value(v).ok())
    }

    /// The dictionary object.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            type_names: Some(PRIMITIVE_DICTIONARY.iter().map(|s| s.to_string()).collect()),
            base: ObjectBase::Dict(
                self.entries
                    .iter()
                    .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                    .collect(),
            ),
            ..Object::default()
        })
    }
}

/// `$PSVersionTable` as sent in ApplicationPrivateData.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PsVersionTable {
    /// `PSVersion`, e.g. `5.1.17763.1971`.
    pub ps_version: Option<String>,
    /// `PSEdition` (`Desktop`, `Core`).
    pub ps_edition: Option<String>,
    /// `PSCompatibleVersions`.
    pub ps_compatible_versions: Vec<String>,
    /// `CLRVersion`.
    pub clr_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `WSManStackVersion`.
    pub ws_man_stack_version: Option<String>,
    /// `PSRemotingProtocolVersion`.
    pub ps_remoting_protocol_version: Option<String>,
    /// `SerializationVersion`.
    pub serialization_version: Option<String>,
}

/// The APPLICATION_PRIVATE_DATA message body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplicationPrivateData {
    /// The `ApplicationPrivateData` dictionary (`PSVersionTable`, and for Exchange its
    /// own entries).
    pub data: PrimitiveDictionary,
}

impl ApplicationPrivateData {
    /// Reads the message body (`<Obj><MS><Obj N="ApplicationPrivateData">...`).
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "ApplicationPrivateData")?;
        let data = match view.get("ApplicationPrivateData") {
            Some(d) => PrimitiveDictionary::from_value(d)?,
            None => PrimitiveDictionary::default(),
        };
        Ok(ApplicationPrivateData { data })
    }

    /// `$PSVersionTable`, if sent.
    pub fn ps_version_table(&self) -> Option<PsVersionTable> {
        let t = self.data.dict("PSVersionTable")?;
        let s = |k: &str| t.get(k).and_then(text_of);
        Some(PsVersionTable {
            ps_version: s("PSVersion"),
            ps_edition: s("PSEdition"),
            ps_compatible_versions: t
                .get("PSCompatibleVersions")
                .map(|v| items_of(v).into_iter().filter_map(text_of).collect())
                .unwrap_or_default(),
            clr_version: s("CLRVersion"),
            build_version: s("BuildVersion"),
            ws_man_stack_version: s("WSManStackVersion"),
            ps_remoting_protocol_version: s("PSRemotingProtocolVersion"),
            serialization_version: s("SerializationVersion"),
        })
    }

    /// The message body.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            extended: vec![prop("ApplicationPrivateData", self.data.to_value())],
            ..Object::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Command metadata.

/// One parameter of a [`CommandMetadata`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterMetadata {
    /// `Name`.
    pub name: String,
    /// `ParameterType`, the .NET type name.
    pub parameter_type: String,
    /// `Aliases`.
    pub aliases: Vec<String>,
    /// `IsDynamic`.
    pub is_dynamic: bool,
    /// `SwitchParameter`.
    pub switch_parameter: bool,
}

/// One command in the reply to GET_COMMAND_METADATA ([MS-PSRP] 2.2.3.22).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandMetadata {
    /// `Name`.
    pub name: String,
    /// `CommandType`, as text (`Cmdlet`, `Function`, `Alias`, ...).
    pub command_type: String,
    /// `CommandType` as its flag value, when sent as an enum.
    pub command_type_value: Option<i64>,
    /// `Namespace` (module name).
    pub namespace: Option<String>,
    /// `HelpUri`.
    pub help_uri: Option<String>,
    /// `OutputType` type names.
    pub output_type: Vec<String>,
    /// `Parameters`, in the order sent.
    pub parameters: Vec<ParameterMetadata>,
}

impl CommandMetadata {
    /// Reads a command metadata object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "CommandMetadata")?;
        let ct = view
            .get("CommandType")
            .ok_or_else(|| view.missing("CommandType"))?;
        let mut parameters = Vec::new();
        if let Some(p) = view.get("Parameters") {
            let Some(ObjectBase::Dict(entries)) = p.as_object().map(|o| &o.base) else {
                return Err(view.wrong("Parameters", "a dictionary"));
            };
            for (k, pv) in entries {
                let pview = View::of(pv, "ParameterMetadata")?;
                parameters.push(ParameterMetadata {
                    name: pview
                        .opt_str("Name")?
                        .or_else(|| text_of(k))
                        .unwrap_or_default(),
                    parameter_type: pview.opt_str("ParameterType")?.unwrap_or_default(),
                    aliases: pview
                        .get("Aliases")
                        .map(|a| items_of(a).into_iter().filter_map(text_of).collect())
                        .unwrap_or_default(),
                    is_dynamic: pview.opt_bool("IsDynamic")?.unwrap_or(false),
                    switch_parameter: pview.opt_bool("SwitchParameter")?.unwrap_or(false),
                });
            }
        }
        Ok(CommandMetadata {
            name: view.str("Name")?,
            command_type: text_of(ct)
                .or_else(|| ct.as_i64().map(|n| n.to_string()))
                .unwrap_or_default(),
            command_type_value: ct.as_i64(),
            namespace: view.opt_str("Namespace")?,
            help_uri: view.opt_str("HelpUri")?,
            output_type: view
                .get("OutputType")
                .map(|o| items_of(o).into_iter().filter_map(text_of).collect())
                .unwrap_or_default(),
            parameters,
        })
    }

    /// The object a server sends.
    pub fn to_value(&self) -> Value {
        let command_type = match self.command_type_value.and_then(|n| i32::try_from(n).ok()) {
            Some(n) => enum_value(
                "System.Management.Automation.CommandTypes",
                &self.command_type,
                n,
            ),
            None => Value::Str(self.command_type.clone()),
        };
        let params = self
            .parameters
            .iter()
            .map(|p| {
                let aliases = list_value(
                    &[
                        "System.Collections.ObjectModel.Collection`1[[System.String]]",
                        "System.Object",
                    ],
                    p.aliases.iter().map(|a| Value::Str(a.clone())).collect(),
                );
                let meta = Value::object(Object {
                    type_names: Some(Arc::from(vec![
                        "System.Management.Automation.ParameterMetadata".to_owned(),
                        "System.Object".into(),
                    ])),
                    to_string: Some("System.Management.Automation.ParameterMetadata".into()),
                    adapted: vec![
                        prop("Name", p.name.as_str()),
                        prop("ParameterType", p.parameter_type.as_str()),
                        prop("Aliases", aliases),
                        prop("IsDynamic", p.is_dynamic),
                        prop("SwitchParameter", p.switch_parameter),
                    ],
                    ..Object::default()
                });
                (Value::Str(p.name.clone()), meta)
            })
            .collect();
        let parameters = Value::object(Object {
            type_names: Some(Arc::from(vec![
                "System.Collections.Generic.Dictionary`2[[System.String],[System.Management.Automation.ParameterMetadata]]"
                    .to_owned(),
                "System.Object".into(),
            ])),
            base: ObjectBase::Dict(params),
            ..Object::default()
        });
        Value::object(Object {
            type_names: Some(Arc::from(vec![
                "Deserialized.System.Management.Automation.CommandInfo".to_owned(),
                "Deserialized.System.Object".into(),
            ])),
            to_string: Some(self.name.clone()),
            adapted: vec![
                prop("Name", self.name.as_str()),
                prop("CommandType", command_type),
                prop("Namespace", opt_s(&self.namespace)),
                prop("HelpUri", opt_s(&self.help_uri)),
                prop(
                    "OutputType",
                    list_value(
                        &[
                            "System.Collections.ObjectModel.ReadOnlyCollection`1[[System.Management.Automation.PSTypeName]]",
                            "System.Object",
                        ],
                        self.output_type
                            .iter()
                            .map(|t| Value::Str(t.clone()))
                            .collect(),
                    ),
                ),
                prop("Parameters", parameters),
            ],
            ..Object::default()
        })
    }
}
