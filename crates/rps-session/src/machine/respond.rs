//! What comes back: the answers to requests and Signals, transport failures, and the pool's
//! events turned into [`SessionEvent`]s.

use bytes::Bytes;
use rps_psrp::event::ClientEvent;
use rps_psrp::messages::{PsInvocationState, RunspacePoolState};
use rps_wsman::{Body, Envelope, Item};
use uuid::Uuid;

use super::error::{INVALID_SELECTORS_CODE, OPERATION_TIMEDOUT_CODE};
use super::{Operation, Phase, Session, SessionError, SessionEvent, config_value};

impl Session {
    /// Handles the answer to the extra Signal of [`Session::poll_signal`]. A fault is not an
    /// error (the pipeline may have finished first); an HTTP error is returned and the stop
    /// queued again, to go out through [`Session::poll_request`] after the request in
    /// flight; the pipeline's Receive carries on.
    pub fn handle_signal_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let Some(pid) = self.signal_in_flight.take() else {
            return Err(SessionError::State {
                action: "handle a signal response",
                state: "not signalling",
            });
        };
        match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) if matches!(env.body, Body::Fault(_) | Body::SignalResponse) => Ok(()),
            Ok(env) => Err(SessionError::Unexpected {
                operation: Operation::Signal(pid).name(),
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
            Err(_) if status == 200 => Ok(()),
            Err(_) => {
                // Refused before it was looked at (503, a proxy): send the stop again once
                // the request in flight has been answered.
                self.signal_blocked = true;
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.stop_sent = false;
                }
                Err(SessionError::Http {
                    operation: Operation::Signal(pid).name(),
                    status,
                    text: String::from_utf8_lossy(&body[..body.len().min(512)])
                        .trim()
                        .to_owned(),
                })
            }
        }
    }

    /// Handles a transport failure of the extra Signal: the stop is queued again, to go out
    /// through [`Session::poll_request`] once the request in flight has been answered.
    pub fn handle_signal_transport_error(&mut self, message: &str) -> SessionError {
        let pid = self.signal_in_flight.take();
        self.signal_blocked = true;
        if let Some(slot) = pid.and_then(|p| self.pipelines.get_mut(&p))
            && !slot.finished
        {
            slot.stop_sent = false;
        }
        SessionError::Transport {
            operation: "Signal",
            message: message.to_owned(),
        }
    }

    /// Handles the HTTP status and body that answered the request in flight. A Receive
    /// answered with HTTP 503 returns the error but fails nothing: send it again.
    pub fn handle_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Err(SessionError::State {
                action: "handle a response",
                state: "not waiting",
            });
        };
        self.signal_blocked = false;
        if op == Operation::ShellState {
            return self.handle_shell_state(status, body);
        }
        let result = self.handle(op, status, body);
        if let Err(e) = &result {
            if matches!(op, Operation::Receive(_)) && e.http_status() == Some(503) {
                // Briefly unavailable: like a dropped connection, nothing was delivered and
                // the server keeps the output for the next Receive.
                return result;
            }
            let command_scoped = matches!(
                op,
                Operation::Receive(Some(_)) | Operation::Send(Some(_)) | Operation::Signal(_)
            );
            if e.is_shell_gone()
                && op != Operation::Delete
                && !(command_scoped && e.is_command_gone())
            {
                // The server deleted the shell (or lost it): nothing can run on it any more.
                self.created = false;
                self.phase = Phase::Failed;
                for (pid, slot) in self.pipelines.iter_mut() {
                    if !slot.finished {
                        slot.finished = true;
                        self.events.push_back(SessionEvent::PipelineError {
                            pipeline_id: *pid,
                            message: e.to_string(),
                        });
                    }
                }
                return result;
            }
            self.fail(op, e);
        }
        result
    }

    /// Handles a transport failure of the request in flight: the session fails, except that
    /// a failed Receive is retried on the next [`Session::poll_request`].
    pub fn handle_transport_error(&mut self, message: &str) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Ok(());
        };
        self.signal_blocked = false;
        if op == Operation::ShellState {
            // The server cannot be reached: as good as gone (no Delete is attempted).
            self.shell_state_answer(false, None);
            return Ok(());
        }
        let err = SessionError::Transport {
            operation: op.name(),
            message: message.to_owned(),
        };
        if matches!(op, Operation::Receive(_)) {
            // Nothing was lost: the server keeps undelivered output for the next Receive.
            return Err(err);
        }
        self.fail(op, &err);
        Err(err)
    }

    fn fail(&mut self, op: Operation, e: &SessionError) {
        match op {
            Operation::Command(pid)
            | Operation::Receive(Some(pid))
            | Operation::Send(Some(pid))
                if self.phase == Phase::Opened || self.phase == Phase::Closing =>
            {
                // The pipeline is lost; the pool may live on.
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.finished = true;
                    // Nothing to terminate on a server that does not know the command.
                    slot.terminate_sent |= e.is_command_gone();
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: pid,
                        message: e.to_string(),
                    });
                }
            }
            Operation::Connect(Some(pid)) => {
                if let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: pid,
                        message: e.to_string(),
                    });
                }
            }
            Operation::Connect(None) => {
                // The shell is someone else's until the Connect succeeds: never delete it.
                self.created = false;
                self.phase = Phase::Failed;
            }
            // The shell stays as it was.
            Operation::Signal(_)
            | Operation::Disconnect
            | Operation::Reconnect
            | Operation::ShellState => {}
            Operation::Delete => {
                self.phase = Phase::Closed;
                self.pool.closed();
                self.events.push_back(SessionEvent::Closed);
            }
            _ => self.phase = Phase::Failed,
        }
    }

    /// Reports the shell's state; a shell that is not alive ends the session without a
    /// Delete.
    fn shell_state_answer(&mut self, alive: bool, state: Option<String>) {
        if !alive && self.phase != Phase::Closed {
            self.created = false;
            self.phase = Phase::Closed;
            self.pool.closed();
            for (pid, slot) in self.pipelines.iter_mut() {
                if !slot.finished {
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineError {
                        pipeline_id: *pid,
                        message: "the shell is no longer alive on the server".to_owned(),
                    });
                }
            }
        }
        self.events
            .push_back(SessionEvent::ShellState { alive, state });
    }

    fn handle_shell_state(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let op = Operation::ShellState.name();
        let env = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => env,
            Err(source) if status == 200 => {
                return Err(SessionError::Envelope {
                    operation: op,
                    source,
                });
            }
            Err(_) => {
                // An HTTP refusal says nothing about the shell: report it, change nothing.
                return Err(SessionError::Http {
                    operation: op,
                    status,
                    text: String::from_utf8_lossy(&body[..body.len().min(512)])
                        .trim()
                        .to_owned(),
                });
            }
        };
        match env.body {
            Body::GetResponse(Item::Shell(shell)) => {
                let state = shell.state.map(|s| s.trim().to_owned());
                let disconnected = state
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("Disconnected"));
                // A shell this session disconnected itself is still alive.
                let alive = !disconnected || self.phase == Phase::Disconnected;
                self.shell_state_answer(alive, state);
                Ok(())
            }
            Body::Fault(fault)
                if fault.is_operation_timeout()
                    || fault.is_invalid_selectors()
                    || fault.wsman_code() == Some(INVALID_SELECTORS_CODE)
                    || fault.wsman_code() == Some(OPERATION_TIMEDOUT_CODE) =>
            {
                self.shell_state_answer(false, None);
                Ok(())
            }
            Body::Fault(fault) => Err(SessionError::Fault {
                operation: op,
                fault: Box::new(fault),
            }),
            _ => Err(SessionError::Unexpected {
                operation: op,
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        }
    }

    fn handle(&mut self, op: Operation, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let env = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => env,
            Err(source) if status == 200 => {
                return Err(SessionError::Envelope {
                    operation: op.name(),
                    source,
                });
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_owned();
                return Err(SessionError::Http {
                    operation: op.name(),
                    status,
                    text,
                });
            }
        };
        if let Body::Fault(fault) = env.body {
            if matches!(op, Operation::Receive(_)) && fault.is_operation_timeout() {
                // Normal: nothing arrived within OperationTimeout. Receive again.
                return Ok(());
            }
            if let Operation::Signal(_) = op {
                // The pipeline may have finished before the signal arrived.
                return Ok(());
            }
            return Err(SessionError::Fault {
                operation: op.name(),
                fault: Box::new(fault),
            });
        }
        if status != 200 {
            return Err(SessionError::Http {
                operation: op.name(),
                status,
                text: String::new(),
            });
        }
        match (op, env.body) {
            (Operation::Create, Body::CreateResponse(resp)) => {
                // Older servers choose their own ShellId; WS-Man selectors must use theirs.
                if let Some(id) = resp.shell_id().and_then(|s| s.parse().ok()) {
                    self.shell_id = id;
                }
                self.phase = Phase::Opening;
                self.created = true;
                Ok(())
            }
            (Operation::Receive(pid), Body::ReceiveResponse(resp)) => {
                for s in resp.streams {
                    let from = s
                        .command_id
                        .as_deref()
                        .and_then(|c| c.parse().ok())
                        .map(|c| self.pipeline_of(c))
                        .or(pid);
                    self.pool.receive_on(from, Bytes::from(s.data))?;
                }
                self.drain_pool()?;
                if let (Some(pid), Some(state)) = (pid, resp.command_state)
                    && state.is_done()
                    && let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.finished
                {
                    // The command ended without a final PIPELINE_STATE.
                    slot.finished = true;
                    self.events.push_back(SessionEvent::PipelineFinished {
                        pipeline_id: pid,
                        state: PsInvocationState::Completed,
                        error_record: None,
                    });
                }
                Ok(())
            }
            (Operation::Command(pid), Body::CommandResponse { command_id }) => {
                // Older servers choose their own CommandId.
                if let (Ok(cid), Some(slot)) =
                    (command_id.parse::<Uuid>(), self.pipelines.get_mut(&pid))
                {
                    slot.command_id = cid;
                }
                Ok(())
            }
            (Operation::Send(_), Body::SendResponse)
            | (Operation::Signal(_), Body::SignalResponse) => Ok(()),
            (Operation::Config, Body::GetResponse(Item::Raw(config))) => {
                let kb = config_value(&config.xml, "MaxEnvelopeSizekb")
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|kb| (1..=1 << 20).contains(kb))
                    .ok_or_else(|| SessionError::Unexpected {
                        operation: op.name(),
                        found: "a WinRM configuration without a valid MaxEnvelopeSizekb".to_owned(),
                    })?;
                self.max_envelope_size = kb * 1024;
                // The server's own limit: never raise it after negotiation.
                self.config.raise_envelope_size = false;
                self.config_read = true;
                self.events.push_back(SessionEvent::ServerConfig {
                    max_envelope_size: self.max_envelope_size,
                });
                Ok(())
            }
            (Operation::Disconnect, Body::DisconnectResponse | Body::Empty) => {
                self.pool.disconnect()?;
                if self.phase == Phase::Closing {
                    // Closed while the Disconnect was in flight: the Delete still follows.
                    for slot in self.pipelines.values_mut() {
                        slot.finished = true;
                        slot.terminate_sent = true;
                    }
                } else {
                    self.phase = Phase::Disconnected;
                }
                self.events.push_back(SessionEvent::Disconnected);
                Ok(())
            }
            (Operation::Reconnect, Body::ReconnectResponse | Body::Empty) => {
                if self.phase == Phase::Disconnected {
                    self.pool.reconnect()?;
                    self.phase = Phase::Opened;
                }
                self.events.push_back(SessionEvent::Reconnected);
                Ok(())
            }
            (Operation::Connect(None), Body::ConnectResponse(resp)) => {
                // The pool's answer (SESSION_CAPABILITY, RUNSPACEPOOL_INIT_DATA) comes in
                // the connectResponseXml; the application private data follows on the
                // shell's stream.
                self.phase = Phase::Opening;
                if let Some(data) = resp.connect_response_xml {
                    self.pool.receive_on(None, Bytes::from(data))?;
                }
                self.drain_pool()
            }
            (Operation::Connect(Some(pid)), Body::ConnectResponse(_)) => {
                if let Some(slot) = self.pipelines.get_mut(&pid) {
                    slot.connect_pending = false;
                }
                Ok(())
            }
            (Operation::Delete, Body::DeleteResponse | Body::Empty) => {
                self.phase = Phase::Closed;
                self.pool.closed();
                self.events.push_back(SessionEvent::Closed);
                Ok(())
            }
            (op, _) => Err(SessionError::Unexpected {
                operation: op.name(),
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        }
    }

    fn drain_pool(&mut self) -> Result<(), SessionError> {
        while let Some(ev) = self.pool.next_event()? {
            match ev {
                ClientEvent::Negotiated {
                    protocol_version, ..
                } if self.config.raise_envelope_size
                    && protocol_version.as_str() >= "2.2"
                    && self.max_envelope_size < 512_000 =>
                {
                    self.max_envelope_size = 512_000;
                }
                ClientEvent::PoolState { state, error } => {
                    if state == RunspacePoolState::Opened && self.phase == Phase::Opening {
                        self.phase = Phase::Opened;
                        let protocol_version =
                            self.pool.protocol_version().unwrap_or("2.1").to_owned();
                        self.events
                            .push_back(SessionEvent::Opened { protocol_version });
                    } else {
                        if matches!(state, RunspacePoolState::Broken | RunspacePoolState::Closed) {
                            self.phase = Phase::Closing;
                        }
                        self.events
                            .push_back(SessionEvent::PoolState { state, error });
                    }
                }
                ClientEvent::Output { pipeline_id, value } => {
                    self.events
                        .push_back(SessionEvent::Output { pipeline_id, value });
                }
                ClientEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                } => self.events.push_back(SessionEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                }),
                ClientEvent::HostCall(call) => self.events.push_back(SessionEvent::HostCall(call)),
                ClientEvent::SessionKeyReady => {
                    self.key_pending = false;
                    self.events.push_back(SessionEvent::SessionKeyReady);
                }
                ClientEvent::Availability { call_id, response } => {
                    self.pool_calls = self.pool_calls.saturating_sub(1);
                    self.events
                        .push_back(SessionEvent::Availability { call_id, response });
                }
                ClientEvent::PipelineState {
                    pipeline_id,
                    state,
                    error_record,
                } => {
                    if state.is_terminal()
                        && let Some(slot) = self.pipelines.get_mut(&pipeline_id)
                    {
                        slot.finished = true;
                        self.events.push_back(SessionEvent::PipelineFinished {
                            pipeline_id,
                            state,
                            error_record,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
