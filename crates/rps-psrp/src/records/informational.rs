//! Informational records: warning, verbose, debug and information.

use std::fmt;

use super::common::{View, items_of, list_value, prop, strip_deserialized, text_of};
use super::{InvocationInfo, Result};
use crate::clixml::{Object, Value};

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
