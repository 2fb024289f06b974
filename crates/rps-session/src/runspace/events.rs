//! What a pipeline produces.

use rps_psrp::clixml::Value;
use rps_psrp::event::{PendingHostCall, RecordKind};
use rps_psrp::messages::PsInvocationState;

#[cfg(doc)]
use super::Pipeline;

/// One event of a running pipeline.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PipelineEvent {
    /// An output object.
    Output(Value),
    /// A record on another stream.
    Record {
        /// The stream.
        kind: RecordKind,
        /// The record.
        value: Value,
    },
    /// The server calls the host; answer with [`Pipeline::host_reply`] when it needs a reply.
    HostCall(PendingHostCall),
    /// The final state; no event follows.
    Finished {
        /// Completed, Failed or Stopped.
        state: PsInvocationState,
        /// The error record, when failed.
        error_record: Option<Value>,
    },
}

/// Everything a pipeline produced, from [`Pipeline::collect`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineResult {
    /// Output objects.
    pub output: Vec<Value>,
    /// Records by stream, in arrival order.
    pub records: Vec<(RecordKind, Value)>,
    /// The final state.
    pub state: Option<PsInvocationState>,
    /// The error record of a failed pipeline.
    pub error_record: Option<Value>,
}

impl PipelineResult {
    /// The error records.
    pub fn errors(&self) -> impl Iterator<Item = &Value> {
        self.records
            .iter()
            .filter(|(k, _)| *k == RecordKind::Error)
            .map(|(_, v)| v)
    }

    /// True when the pipeline completed and wrote no error record.
    pub fn succeeded(&self) -> bool {
        self.state == Some(PsInvocationState::Completed) && self.errors().next().is_none()
    }
}
