//! What goes out next: [`Session::poll_request`], [`Session::poll_signal`] and the request
//! builders.

use bytes::Bytes;
use rps_psrp::event::StreamKind;
use rps_wsman::ns::{action, resource, signal};
use rps_wsman::{Body, Envelope, Header};
use uuid::Uuid;

use super::{Operation, Phase, Session, SessionError, WsmanRequest, request_header};

/// The length of the fragments of `data` up to the end of its first message, or `None`
/// when that message does not end in `data` (or `data` cannot be parsed: the server will
/// judge it).
fn first_message_end(data: &[u8]) -> Option<usize> {
    let mut rest = data;
    let mut first_object = None;
    while let Ok((frag, after)) = rps_psrp::fragment::parse_fragment(rest) {
        let object = *first_object.get_or_insert(frag.header.object_id);
        rest = after;
        if frag.header.object_id == object && frag.header.is_end() {
            return Some(data.len() - rest.len());
        }
    }
    None
}

/// Bytes an envelope adds around a stream payload: measured by encoding an empty one.
fn payload_budget(max_envelope: u64, overhead: usize) -> usize {
    let room = usize::try_from(max_envelope)
        .unwrap_or(usize::MAX)
        .saturating_sub(overhead)
        .saturating_sub(256);
    // base64 turns 3 bytes into 4 characters.
    (room / 4 * 3).max(64)
}

impl Session {
    fn header(&mut self, action: &str) -> Header {
        let uri = self.config.resource_uri.clone();
        self.header_for(action, uri)
    }

    fn header_for(&mut self, action: &str, resource_uri: String) -> Header {
        let id = self.ids.next_id();
        request_header(
            &self.config,
            action,
            resource_uri,
            id,
            self.max_envelope_size,
        )
    }

    fn shell_header(&mut self, action: &str) -> Header {
        let shell_id = self.shell_id;
        self.header(action).with_shell_id(shell_id)
    }

    fn budget(&mut self, stream: &str, command_id: Option<Uuid>) -> usize {
        let probe = Envelope::new(
            self.shell_header(action::SEND),
            Body::send(stream, command_id, Vec::new()),
        );
        payload_budget(self.max_envelope_size, probe.encode().len())
    }

    fn request(&mut self, operation: Operation, header: Header, body: Body) -> WsmanRequest {
        self.in_flight = Some(operation);
        Self::build(operation, header, body)
    }

    fn build(operation: Operation, header: Header, body: Body) -> WsmanRequest {
        let message_id = header.message_uuid().unwrap_or_default();
        let env = Envelope::new(header, body);
        WsmanRequest {
            operation,
            message_id,
            body: Bytes::from(env.encode()),
        }
    }

    /// A Receive of the shell's stream (`None`) or of a pipeline's.
    fn receive_request(&mut self, pipeline: Option<Uuid>) -> WsmanRequest {
        let header = self.shell_header(action::RECEIVE).with_option(
            rps_wsman::ns::option::KEEPALIVE,
            "True",
            None,
        );
        let body = Body::receive(pipeline.map(|p| self.command_id(p)));
        self.request(Operation::Receive(pipeline), header, body)
    }

    /// The next request to send, or `None` while one is in flight or nothing is to be done.
    pub fn poll_request(&mut self) -> Result<Option<WsmanRequest>, SessionError> {
        if self.in_flight.is_some() {
            return Ok(None);
        }
        match self.phase {
            Phase::New | Phase::Closed | Phase::Failed => return Ok(None),
            Phase::Creating if self.config.read_server_config && !self.config_read => {
                let header = self.header_for(action::GET, resource::CONFIG.to_owned());
                return Ok(Some(self.request(Operation::Config, header, Body::Get)));
            }
            Phase::Connecting => {
                // SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL travel in the connectXml.
                let probe = Envelope::new(
                    self.shell_header(action::CONNECT),
                    Body::connect(Vec::new()),
                );
                let budget = payload_budget(self.max_envelope_size, probe.encode().len());
                let data = self
                    .pool
                    .data_to_send(budget)?
                    .map(|d| d.data)
                    .unwrap_or_default();
                let version = self.config.pool.protocol_version.clone();
                let header = self.shell_header(action::CONNECT).with_option(
                    "protocolversion",
                    version,
                    Some(true),
                );
                let body = Body::connect(data);
                return Ok(Some(self.request(Operation::Connect(None), header, body)));
            }
            Phase::Creating => {
                // The opening messages travel in the Create's creationXml.
                let probe = Envelope::new(
                    self.header(action::CREATE),
                    Body::create_powershell(self.shell_id, Vec::new()),
                );
                let budget = payload_budget(self.max_envelope_size, probe.encode().len());
                let data = self
                    .pool
                    .data_to_send(budget)?
                    .map(|d| d.data)
                    .unwrap_or_default();
                let version = self.config.pool.protocol_version.clone();
                let mut header =
                    self.header(action::CREATE)
                        .with_option("protocolversion", version, Some(true));
                for (name, value) in &self.config.create_options {
                    header = header.with_option(name.clone(), value.clone(), None);
                }
                let body = Body::create_powershell(self.shell_id, data);
                return Ok(Some(self.request(Operation::Create, header, body)));
            }
            _ => {}
        }
        if self.state_query {
            self.state_query = false;
            let shell_id = self.shell_id;
            let header = self
                .header_for(action::GET, resource::SHELL.to_owned())
                .with_shell_id(shell_id);
            return Ok(Some(self.request(Operation::ShellState, header, Body::Get)));
        }
        if self.reconnect_requested {
            self.reconnect_requested = false;
            let header = self.shell_header(action::RECONNECT);
            return Ok(Some(self.request(
                Operation::Reconnect,
                header,
                Body::Reconnect,
            )));
        }
        if self.phase == Phase::Disconnected {
            // Nothing goes to a disconnected shell.
            return Ok(None);
        }
        // Connects to taken-over commands go before their Receives.
        let to_connect = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.connect_pending && !p.finished)
        });
        if let Some(pid) = to_connect {
            let header = self.shell_header(action::CONNECT);
            let body = Body::connect_command(self.command_id(pid));
            return Ok(Some(self.request(
                Operation::Connect(Some(pid)),
                header,
                body,
            )));
        }
        // Signals first: a stop must not wait behind queued input.
        let to_signal = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.commanded && p.stop_requested && !p.stop_sent && !p.finished)
        });
        if let Some(pid) = to_signal {
            if let Some(slot) = self.pipelines.get_mut(&pid) {
                slot.stop_sent = true;
            }
            let header = self.shell_header(action::SIGNAL);
            let body = Body::signal(Some(self.command_id(pid)), signal::PS_CTRL_C);
            return Ok(Some(self.request(Operation::Signal(pid), header, body)));
        }
        // Terminate finished commands.
        if self.config.terminate_finished_pipelines {
            let done = self.order.iter().copied().find(|id| {
                self.pipelines
                    .get(id)
                    .is_some_and(|p| p.commanded && p.finished && !p.terminate_sent)
            });
            if let Some(pid) = done {
                if let Some(slot) = self.pipelines.get_mut(&pid) {
                    slot.terminate_sent = true;
                }
                let header = self.shell_header(action::SIGNAL);
                let body = Body::signal(Some(self.command_id(pid)), signal::TERMINATE);
                return Ok(Some(self.request(Operation::Signal(pid), header, body)));
            }
        }
        // Queued PSRP data: CREATE_PIPELINE goes in a Command, the rest in Sends. Data split
        // off a Command (input queued behind CREATE_PIPELINE) goes first.
        if !self.abandoned && (self.held.is_some() || self.pool.has_data_to_send()) {
            let budget = self.budget("stdin", Some(self.shell_id));
            let next = match self.held.take() {
                Some(out) => Some(out),
                None => self.pool.data_to_send(budget)?,
            };
            if let Some(mut out) = next {
                let pid = out.target.pipeline_id;
                if self.continuing {
                    // The rest of a CREATE_PIPELINE too large for its Command goes alone,
                    // as the Command's part did.
                    if let Some(split) = first_message_end(&out.data) {
                        self.continuing = false;
                        if split < out.data.len() {
                            let rest = out.data.split_off(split);
                            self.held = Some(rps_psrp::event::OutgoingData {
                                target: out.target,
                                data: rest,
                            });
                        }
                    }
                }
                if let Some(pid) = pid
                    && let Some(slot) = self.pipelines.get_mut(&pid)
                    && !slot.commanded
                {
                    slot.commanded = true;
                    // The Command carries CREATE_PIPELINE alone, as PowerShell sends it;
                    // input that came in the same batch follows in a Send.
                    match first_message_end(&out.data) {
                        Some(split) if split < out.data.len() => {
                            let rest = out.data.split_off(split);
                            self.held = Some(rps_psrp::event::OutgoingData {
                                target: out.target,
                                data: rest,
                            });
                        }
                        Some(_) => {}
                        None => self.continuing = true,
                    }
                    let mut header = self.shell_header(action::COMMAND);
                    header = header.with_option("WINRS_SKIP_CMD_SHELL", "False", None);
                    let body = Body::command_psrp(pid, &out.data);
                    return Ok(Some(self.request(Operation::Command(pid), header, body)));
                }
                let stream = match out.target.stream {
                    StreamKind::Default => "stdin",
                    StreamKind::PromptResponse => "pr",
                };
                let header = self.shell_header(action::SEND);
                let body = Body::send(stream, pid.map(|p| self.command_id(p)), out.data);
                return Ok(Some(self.request(Operation::Send(pid), header, body)));
            }
        }
        // A Disconnect goes once queued commands and input are out (the pipelines keep
        // running on the server), before any Receive.
        if self.disconnect_requested {
            self.disconnect_requested = false;
            let header = self.shell_header(action::DISCONNECT);
            let idle = self
                .config
                .disconnect_idle_timeout_secs
                .map(|s| format!("PT{s}S"));
            return Ok(Some(self.request(
                Operation::Disconnect,
                header,
                Body::disconnect(idle),
            )));
        }
        match self.phase {
            // The pool's opening messages, and the RUNSPACE_AVAILABILITY a pool call waits
            // for, come on the shell's own stream.
            Phase::Opening => return Ok(Some(self.receive_request(None))),
            Phase::Opened | Phase::Closing if self.pool_calls > 0 => {
                return Ok(Some(self.receive_request(None)));
            }
            // The session key comes on the shell's stream too.
            Phase::Opened if self.key_pending => {
                return Ok(Some(self.receive_request(None)));
            }
            Phase::Opened | Phase::Closing => {
                let running = self.order.iter().copied().find(|id| {
                    self.pipelines
                        .get(id)
                        .is_some_and(|p| p.commanded && !p.finished)
                });
                if let Some(pid) = running {
                    // Round robin between running pipelines.
                    self.order.retain(|id| *id != pid);
                    self.order.push_back(pid);
                    return Ok(Some(self.receive_request(Some(pid))));
                }
                if self.phase == Phase::Closing && self.signal_in_flight.is_none() {
                    let header = self.shell_header(action::DELETE);
                    return Ok(Some(self.request(Operation::Delete, header, Body::Delete)));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// A stop Signal to send now, beside the request in flight, on another connection.
    ///
    /// `None` unless a request is in flight, no other extra Signal is, and a running
    /// pipeline that the server knows (its Command was answered or is in flight) has a stop
    /// pending. Answer with [`Session::handle_signal_response`] or
    /// [`Session::handle_signal_transport_error`]. When nothing is in flight the stop goes
    /// out through [`Session::poll_request`] instead.
    pub fn poll_signal(&mut self) -> Option<WsmanRequest> {
        if self.signal_in_flight.is_some()
            || self.signal_blocked
            || !matches!(self.in_flight, Some(Operation::Receive(_)))
            || !matches!(self.phase, Phase::Opened | Phase::Closing)
        {
            return None;
        }
        let pid = self.order.iter().copied().find(|id| {
            self.pipelines
                .get(id)
                .is_some_and(|p| p.commanded && p.stop_requested && !p.stop_sent && !p.finished)
        })?;
        if let Some(slot) = self.pipelines.get_mut(&pid) {
            slot.stop_sent = true;
        }
        self.signal_in_flight = Some(pid);
        let header = self.shell_header(action::SIGNAL);
        let body = Body::signal(Some(self.command_id(pid)), signal::PS_CTRL_C);
        Some(Self::build(Operation::Signal(pid), header, body))
    }
}
