//! The session machine: sequences WinRS operations around a PSRP runspace pool, sans-IO.
//!
//! The machine knows which WS-Man request must go next (Create with the pool's opening
//! messages, the Receive loop, a Command carrying CREATE_PIPELINE, Send for input and host
//! replies, Signal to stop, Delete on close) and turns the responses into typed events. It
//! does no I/O and reads no clock: MessageIDs come from an injected [`IdSource`], and the
//! shell, session and pipeline ids from the caller.
//!
//! # Call order
//!
//! 1. [`Session::new`] with a [`SessionConfig`], the shell id (the RunspacePool id) and an id
//!    source; then [`Session::open`].
//! 2. Loop: [`Session::poll_request`] gives the next [`WsmanRequest`] (or `None` when the
//!    machine waits for the caller); send it, hand the answer to
//!    [`Session::handle_response`] (or [`Session::handle_transport_error`]); drain
//!    [`Session::poll_event`].
//! 3. Act at any time: [`Session::invoke`], [`Session::send_input`], [`Session::end_input`],
//!    [`Session::stop`], [`Session::host_reply`], [`Session::close`]. Actions only queue
//!    work; the loop carries it out.
//!
//! Only one request is in flight at a time: [`Session::poll_request`] returns `None` until
//! the answer to the previous one has been handled. The one exception is a stop: while a
//! request (typically a Receive long-poll) is in flight, [`Session::poll_signal`] hands out
//! one extra Signal so the driver can send it at once on a second connection, and
//! [`Session::handle_signal_response`] takes its answer. A stop thus never waits for the
//! long-poll to return.

mod config;
mod error;
mod event;
mod poll;
mod respond;

use std::collections::{HashMap, VecDeque};

use rps_psrp::clixml::Value;
use rps_psrp::event::HostReply;
use rps_psrp::messages::CreatePipeline;
use rps_psrp::pool::RunspacePool;
use uuid::Uuid;

pub(crate) use config::request_header;
pub use config::{IdSource, SequentialIds, SessionConfig};
pub use error::SessionError;
pub(crate) use error::config_value;
pub use event::{Operation, Phase, SessionEvent, WsmanRequest};

#[derive(Debug)]
struct PipeSlot {
    /// The WS-Man CommandId: the pipeline id, unless the server chose another.
    command_id: Uuid,
    commanded: bool,
    finished: bool,
    stop_requested: bool,
    stop_sent: bool,
    terminate_sent: bool,
    /// A WS-Man Connect to the command must go out before its Receives.
    connect_pending: bool,
}

/// The session machine. See the [module docs](self) for the call order.
pub struct Session {
    config: SessionConfig,
    /// The WS-Man ShellId (the pool id, unless the server chose another).
    shell_id: Uuid,
    ids: Box<dyn IdSource>,
    pool: RunspacePool,
    phase: Phase,
    in_flight: Option<Operation>,
    /// The extra stop Signal sent beside the request in flight.
    signal_in_flight: Option<Uuid>,
    /// The extra Signal failed in transit: no other until the request in flight is answered.
    signal_blocked: bool,
    /// The Create succeeded, so the shell exists on the server until deleted.
    created: bool,
    /// Set by [`Session::abandon`]: send nothing but the Delete.
    abandoned: bool,
    /// Fragments split off a Command, to go out in the next Send.
    held: Option<rps_psrp::event::OutgoingData>,
    /// The last Command (or Send) carried the first fragments of a CREATE_PIPELINE that
    /// did not fit: its remaining fragments go out alone.
    continuing: bool,
    /// Pool calls (call-id requests) still waiting for their RUNSPACE_AVAILABILITY.
    pool_calls: usize,
    pipelines: HashMap<Uuid, PipeSlot>,
    order: VecDeque<Uuid>,
    events: VecDeque<SessionEvent>,
    max_envelope_size: u64,
    /// A shell-state Get is queued.
    state_query: bool,
    /// A Disconnect is queued.
    disconnect_requested: bool,
    /// A Reconnect is queued.
    reconnect_requested: bool,
    /// PUBLIC_KEY was queued; the shell stream is read until the session key arrives.
    key_pending: bool,
    /// The server's configuration was read (or is not wanted).
    config_read: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("shell_id", &self.shell_id)
            .field("phase", &self.phase)
            .field("in_flight", &self.in_flight)
            .field("pipelines", &self.pipelines.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for the shell (runspace pool) `shell_id`.
    pub fn new(config: SessionConfig, shell_id: Uuid, ids: Box<dyn IdSource>) -> Self {
        let pool = RunspacePool::new(shell_id, config.pool.clone());
        let max_envelope_size = config.max_envelope_size;
        Session {
            config,
            shell_id,
            ids,
            pool,
            phase: Phase::New,
            in_flight: None,
            signal_in_flight: None,
            signal_blocked: false,
            created: false,
            abandoned: false,
            held: None,
            continuing: false,
            pool_calls: 0,
            pipelines: HashMap::new(),
            order: VecDeque::new(),
            events: VecDeque::new(),
            max_envelope_size,
            state_query: false,
            disconnect_requested: false,
            reconnect_requested: false,
            key_pending: false,
            config_read: false,
        }
    }

    /// The shell (runspace pool) id.
    pub fn shell_id(&self) -> Uuid {
        self.shell_id
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The endpoint requests go to (updated after a redirect).
    pub fn endpoint(&self) -> &str {
        &self.config.to
    }

    /// Points later requests at `to` (after the transport followed a redirect).
    pub fn set_endpoint(&mut self, to: impl Into<String>) {
        self.config.to = to.into();
    }

    /// The runspace pool (for application private data, protocol version, SecureStrings).
    pub fn pool(&self) -> &RunspacePool {
        &self.pool
    }

    /// True when a request is in flight.
    pub fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// True when the extra stop Signal of [`Session::poll_signal`] is in flight.
    pub fn is_signalling(&self) -> bool {
        self.signal_in_flight.is_some()
    }

    /// True once the server created the shell and until it is deleted: the shell must be
    /// deleted (see [`Session::abandon`]) before the session is dropped.
    pub fn shell_exists(&self) -> bool {
        self.created && self.phase != Phase::Closed
    }

    /// True while the session can still run pipelines or be closed (not Closed or Failed).
    pub fn is_alive(&self) -> bool {
        !matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// Pipelines started and not finished, in start order.
    pub fn running_pipelines(&self) -> Vec<Uuid> {
        self.order
            .iter()
            .copied()
            .filter(|id| self.pipelines.get(id).is_some_and(|p| !p.finished))
            .collect()
    }

    /// True when pipeline `pipeline_id` has been sent to the server in a Command.
    pub fn is_commanded(&self, pipeline_id: Uuid) -> bool {
        self.pipelines
            .get(&pipeline_id)
            .is_some_and(|p| p.commanded)
    }

    /// Gives up on the session after an error (or a refusal to wait any longer): every
    /// pipeline is considered finished without telling the server, and, when the shell
    /// exists, the next [`Session::poll_request`] is its Delete. Events of pipelines that
    /// were running are not produced; the caller reports its own error to them.
    pub fn abandon(&mut self) {
        for slot in self.pipelines.values_mut() {
            slot.finished = true;
            slot.stop_requested = false;
            slot.terminate_sent = true;
        }
        // Undelivered PSRP data (inputs, host replies) would only go to a doomed shell.
        self.abandoned = true;
        if self.created && self.phase != Phase::Closed {
            self.phase = Phase::Closing;
        } else {
            self.phase = Phase::Closed;
        }
    }

    /// True when no pipeline is running and nothing is queued for the server.
    pub fn is_idle(&self) -> bool {
        self.pipelines.values().all(|p| p.finished)
            && !self.pool.has_data_to_send()
            && self.held.is_none()
    }

    /// Queues the Create that opens the pool.
    pub fn open(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::New {
            return Err(self.state_error("open"));
        }
        self.pool.open()?;
        self.phase = Phase::Creating;
        Ok(())
    }

    /// Starts pipeline `pipeline_id` (it becomes the WS-Man CommandId).
    pub fn invoke(
        &mut self,
        pipeline_id: Uuid,
        request: CreatePipeline,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("invoke a pipeline"));
        }
        self.pool.create_pipeline(pipeline_id, request)?;
        self.add_slot(pipeline_id);
        Ok(())
    }

    /// Asks the server to change the pool's maximum runspaces; returns the call id its
    /// [`SessionEvent::Availability`] answer carries.
    pub fn set_max_runspaces(&mut self, max: i32) -> Result<i64, SessionError> {
        self.pool_call("set the maximum runspaces", |p| p.set_max_runspaces(max))
    }

    /// Asks the server to change the pool's minimum runspaces; returns the call id its
    /// [`SessionEvent::Availability`] answer carries.
    pub fn set_min_runspaces(&mut self, min: i32) -> Result<i64, SessionError> {
        self.pool_call("set the minimum runspaces", |p| p.set_min_runspaces(min))
    }

    /// Asks how many runspaces are free; returns the call id of the answer.
    pub fn get_available_runspaces(&mut self) -> Result<i64, SessionError> {
        self.pool_call("get the available runspaces", |p| {
            p.get_available_runspaces()
        })
    }

    /// Asks the server to reset the runspace state (protocol 2.3); returns the call id.
    pub fn reset_runspace_state(&mut self) -> Result<i64, SessionError> {
        self.pool_call("reset the runspace state", |p| p.reset_runspace_state())
    }

    fn pool_call(
        &mut self,
        action: &'static str,
        call: impl FnOnce(&mut RunspacePool) -> Result<i64, rps_psrp::error::StateError>,
    ) -> Result<i64, SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error(action));
        }
        let id = call(&mut self.pool)?;
        self.pool_calls += 1;
        Ok(id)
    }

    /// Asks for command metadata (`Get-Command`-like); the answer arrives as pipeline
    /// `pipeline_id`'s output: a count, then one CommandMetadata object per command.
    pub fn get_command_metadata(
        &mut self,
        pipeline_id: Uuid,
        request: rps_psrp::messages::GetCommandMetadata,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("get command metadata"));
        }
        self.pool.get_command_metadata(pipeline_id, request)?;
        self.add_slot(pipeline_id);
        Ok(())
    }

    fn add_slot(&mut self, pipeline_id: Uuid) {
        self.pipelines.insert(
            pipeline_id,
            PipeSlot {
                command_id: pipeline_id,
                commanded: false,
                finished: false,
                stop_requested: false,
                stop_sent: false,
                terminate_sent: false,
                connect_pending: false,
            },
        );
        self.order.push_back(pipeline_id);
    }

    /// Queues a Connect that takes over the disconnected pool whose shell is this session's
    /// (instead of [`Session::open`]): the shell id passed to [`Session::new`] must be the
    /// server's ShellId, which is the pool's id. The pool is opened once the server has
    /// answered with its state and settings (RUNSPACEPOOL_INIT_DATA); pipelines it still
    /// runs can then be taken over with [`Session::connect_pipeline`].
    pub fn connect(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::New {
            return Err(self.state_error("connect"));
        }
        self.pool.connect()?;
        self.created = true;
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Queues a WS-Transfer Get of the shell, answered by [`SessionEvent::ShellState`]:
    /// whether the shell still exists and is connected. A shell the server no longer knows
    /// or reports disconnected, and a server that cannot be reached, mean "not alive"; the
    /// session is then over without a Delete. Other faults are returned as errors and leave
    /// the session as it was.
    pub fn query_shell_state(&mut self) -> Result<(), SessionError> {
        if !matches!(
            self.phase,
            Phase::Opened | Phase::Opening | Phase::Disconnected
        ) {
            return Err(self.state_error("query the shell state"));
        }
        self.state_query = true;
        Ok(())
    }

    /// Queues a Disconnect: the shell and its running pipelines stay on the server, no
    /// request goes out until [`Session::reconnect`] (or [`Session::close`], which deletes
    /// the shell); another client may take the pool over with [`Session::connect`].
    pub fn disconnect(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("disconnect"));
        }
        self.disconnect_requested = true;
        Ok(())
    }

    /// Queues a Reconnect of a disconnected shell; its pipelines then carry on. A Reconnect
    /// of a connected shell is sent too (some clients send one before closing a pool they
    /// took over) and changes nothing.
    pub fn reconnect(&mut self) -> Result<(), SessionError> {
        if !matches!(self.phase, Phase::Disconnected | Phase::Opened) || self.disconnect_requested {
            return Err(self.state_error("reconnect"));
        }
        self.reconnect_requested = true;
        Ok(())
    }

    /// Takes over pipeline `pipeline_id` of a pool this session connected to
    /// ([`Session::connect`]): a WS-Man Connect to the command, then its output arrives as
    /// for a pipeline started here.
    pub fn connect_pipeline(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.attach(pipeline_id, true)
    }

    /// Reads the output of pipeline `pipeline_id`, running in this shell but not started by
    /// this session (its CommandId must be the pipeline id), without a WS-Man Connect: for
    /// a shell shared with another connection. A server that does not know the command
    /// answers with a fault, reported as [`SessionEvent::PipelineError`].
    pub fn attach_pipeline(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.attach(pipeline_id, false)
    }

    fn attach(&mut self, pipeline_id: Uuid, connect: bool) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("take over a pipeline"));
        }
        self.pool.connect_pipeline(pipeline_id)?;
        self.add_slot(pipeline_id);
        if let Some(slot) = self.pipelines.get_mut(&pipeline_id) {
            slot.commanded = true;
            slot.connect_pending = connect;
        }
        Ok(())
    }

    /// Starts the session key exchange: PUBLIC_KEY for `key`'s public half goes to the
    /// server, and the shell's stream is read until the encrypted session key arrives
    /// ([`SessionEvent::SessionKeyReady`]). The caller makes the 2048-bit RSA key (the
    /// machine has no randomness) and enforces its own deadline with
    /// [`Session::cancel_key_exchange`].
    pub fn exchange_key(&mut self, key: rsa::RsaPrivateKey) -> Result<(), SessionError> {
        if self.phase != Phase::Opened {
            return Err(self.state_error("exchange keys"));
        }
        self.pool.exchange_key(key)?;
        self.key_pending = true;
        Ok(())
    }

    /// True while a key exchange waits for the server's session key.
    pub fn key_exchange_pending(&self) -> bool {
        self.key_pending
    }

    /// Stops waiting for the session key (the caller's deadline passed): the shell's stream
    /// is no longer read for it.
    pub fn cancel_key_exchange(&mut self) {
        self.key_pending = false;
    }

    /// Queues one input object for a pipeline created with input.
    pub fn send_input(&mut self, pipeline_id: Uuid, value: Value) -> Result<(), SessionError> {
        self.pool.pipeline(pipeline_id)?.send_input(value)?;
        Ok(())
    }

    /// Queues the end of a pipeline's input.
    pub fn end_input(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        self.pool.pipeline(pipeline_id)?.end_input()?;
        Ok(())
    }

    /// Asks the server to stop a pipeline (a PowerShell Ctrl+C signal).
    pub fn stop(&mut self, pipeline_id: Uuid) -> Result<(), SessionError> {
        let slot = self
            .pipelines
            .get_mut(&pipeline_id)
            .ok_or(rps_psrp::error::StateError::UnknownPipeline(pipeline_id))?;
        if !slot.finished {
            slot.stop_requested = true;
        }
        Ok(())
    }

    /// Queues the answer to a host call.
    pub fn host_reply(&mut self, reply: HostReply) -> Result<(), SessionError> {
        self.pool.send_host_reply(reply)?;
        Ok(())
    }

    /// Closes the session: running pipelines are stopped, then the shell is deleted.
    pub fn close(&mut self) {
        self.key_pending = false;
        self.state_query = false;
        // The shell is deleted instead, disconnected or not.
        self.disconnect_requested = false;
        self.reconnect_requested = false;
        match self.phase {
            Phase::New => self.phase = Phase::Closed,
            Phase::Closed | Phase::Closing => {}
            // Nothing to delete: the shell was never ours (a failed Create or Connect) or
            // the server no longer has it.
            Phase::Failed if !self.created => self.phase = Phase::Closed,
            Phase::Disconnected => {
                // Nothing can be signalled to a disconnected shell: delete it with its
                // pipelines.
                for slot in self.pipelines.values_mut() {
                    slot.finished = true;
                    slot.terminate_sent = true;
                }
                self.phase = Phase::Closing;
            }
            _ => {
                for slot in self.pipelines.values_mut() {
                    if !slot.finished {
                        slot.stop_requested = true;
                    }
                }
                self.phase = Phase::Closing;
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The WS-Man CommandId of a pipeline.
    fn command_id(&self, pipeline_id: Uuid) -> Uuid {
        self.pipelines
            .get(&pipeline_id)
            .map_or(pipeline_id, |p| p.command_id)
    }

    /// The pipeline a WS-Man CommandId belongs to.
    fn pipeline_of(&self, command_id: Uuid) -> Uuid {
        self.pipelines
            .iter()
            .find(|(_, p)| p.command_id == command_id)
            .map_or(command_id, |(id, _)| *id)
    }

    fn state_error(&self, action: &'static str) -> SessionError {
        SessionError::State {
            action,
            state: self.phase.name(),
        }
    }
}
