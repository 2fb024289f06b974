//! ProgressRecord.

use super::Result;
use super::common::{View, enum_value, opt_s, prop, text_of};
use crate::clixml::{Object, Value};

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
