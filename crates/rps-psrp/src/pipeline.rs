//! The client side of a pipeline ([MS-PSRP] 3.1.4.3–3.1.4.7), as a handle on its pool.
//!
//! # Call order
//!
//! 1. Build the request: [`CreatePipeline::new`] over [`PowerShell::new`] of
//!    [`Command::cmdlet`]s with [`Command::arg`] / [`Command::positional`] /
//!    [`Command::switch`] (and [`Merges`] for redirected streams).
//! 2. [`crate::pool::RunspacePool::create_pipeline`] with the pipeline id (the WS-Man
//!    CommandId) queues CREATE_PIPELINE and returns this handle; the first batch from
//!    `data_to_send` for that target goes in the WS-Man Command's `Arguments`.
//! 3. When the request has `no_input: false`: [`ClientPipeline::send_input`] any number of
//!    times, then [`ClientPipeline::end_input`].
//! 4. Receive on the pool: output, records, host calls and finally
//!    [`crate::event::ClientEvent::PipelineState`] with a terminal state.
//! 5. To cancel: [`ClientPipeline::stop`] (the transport sends the WS-Man stop signal); the
//!    server answers with PIPELINE_STATE Stopped.
//!
//! [`CreatePipeline::new`]: crate::messages::CreatePipeline::new
//! [`PowerShell::new`]: crate::messages::PowerShell::new
//! [`Command::cmdlet`]: crate::messages::Command::cmdlet
//! [`Command::arg`]: crate::messages::Command::arg
//! [`Command::positional`]: crate::messages::Command::positional
//! [`Command::switch`]: crate::messages::Command::switch
//! [`Merges`]: crate::messages::Merges

use uuid::Uuid;

use crate::clixml::Value;
use crate::error::StateError;
use crate::messages::{Message, PsInvocationState};
use crate::pool::RunspacePool;

/// A pipeline of a [`RunspacePool`]; borrows the pool to queue its messages.
#[derive(Debug)]
pub struct ClientPipeline<'a> {
    pool: &'a mut RunspacePool,
    id: Uuid,
}

impl<'a> ClientPipeline<'a> {
    pub(crate) fn new(pool: &'a mut RunspacePool, id: Uuid) -> Self {
        ClientPipeline { pool, id }
    }

    /// The pipeline id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The last known state.
    pub fn state(&self) -> PsInvocationState {
        self.pool
            .pipelines
            .get(&self.id)
            .copied()
            .unwrap_or(PsInvocationState::NotStarted)
    }

    fn require_running(&self, action: &'static str) -> Result<(), StateError> {
        match self.state() {
            PsInvocationState::Running => Ok(()),
            other => Err(StateError::Pipeline {
                action,
                id: self.id,
                state: other.label(),
            }),
        }
    }

    /// Queues one PIPELINE_INPUT object.
    pub fn send_input(&mut self, value: Value) -> Result<(), StateError> {
        self.require_running("send input to")?;
        self.pool
            .queue(Some(self.id), &Message::PipelineInput(value));
        Ok(())
    }

    /// Queues END_OF_PIPELINE_INPUT.
    pub fn end_input(&mut self) -> Result<(), StateError> {
        self.require_running("end input of")?;
        self.pool.queue(Some(self.id), &Message::EndOfPipelineInput);
        Ok(())
    }

    /// Marks the pipeline Stopping; the transport sends the stop signal.
    pub fn stop(&mut self) -> Result<(), StateError> {
        self.require_running("stop")?;
        self.pool
            .pipelines
            .insert(self.id, PsInvocationState::Stopping);
        Ok(())
    }

    /// Forgets a finished pipeline (after its terminal state, or after the transport
    /// closed the command).
    pub fn close(self) -> Result<(), StateError> {
        let state = self.state();
        if !state.is_terminal() && state != PsInvocationState::Stopping {
            return Err(StateError::Pipeline {
                action: "close",
                id: self.id,
                state: state.label(),
            });
        }
        self.pool.pipelines.remove(&self.id);
        Ok(())
    }
}
