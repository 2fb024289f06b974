//! The server side of a runspace pool and its pipelines ([MS-PSRP] 3.2), sans-IO; the base
//! of a fake Exchange endpoint.
//!
//! # Call order
//!
//! 1. [`ServerRunspacePool::new`] with the pool id (the ShellId of the WS-Man Create) and a
//!    [`ServerConfig`].
//! 2. [`ServerRunspacePool::receive`] the client's bytes (`creationXml`, Send streams,
//!    Command `Arguments`), then pull [`ServerRunspacePool::next_event`] until `None`. The
//!    machine answers the handshake itself: SESSION_CAPABILITY for the client's, then
//!    APPLICATION_PRIVATE_DATA and RUNSPACEPOOL_STATE Opened for INIT_RUNSPACEPOOL (init
//!    data for CONNECT_RUNSPACEPOOL).
//! 3. For [`ServerEvent::CreatePipeline`] (after [`ServerEvent::EndOfInput`] when the request
//!    takes input) call [`ServerRunspacePool::run_pipeline`] with a [`PipelineHandler`], or
//!    drive a [`PipelineSink`] from [`ServerRunspacePool::sink`] by hand and
//!    [`PipelineSink::finish`] it. Answer call-id requests with
//!    [`ServerRunspacePool::answer_availability`] and keys with
//!    [`ServerRunspacePool::send_session_key`].
//! 4. Drain [`ServerRunspacePool::data_to_send`] into Receive responses for the
//!    [`crate::event::Target`] each batch names.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rsa::RsaPublicKey;
use rsa::rand_core::CryptoRngCore;
use uuid::Uuid;

use crate::clixml::{self, Value};
use crate::crypto::{SessionKey, parse_public_key_blob};
use crate::engine::{Engine, negotiate};
use crate::error::{ProtocolError, PsrpError, StateError};
use crate::event::{OutgoingData, RecordKind, ServerEvent, StreamKind, Target};
use crate::fragment::DefragLimits;
use crate::message::{Destination, MessageType};
use crate::messages::{
    ApplicationPrivateData, Availability, CreatePipeline, EncryptedSessionKey, HostCall,
    HostMethod, Message, PipelineStateInfo, PsInvocationState, RunspaceAvailability,
    RunspacePoolInitData, RunspacePoolState, RunspacePoolStateInfo, SessionCapability,
};

const POOL_TARGET: Target = Target {
    pipeline_id: None,
    stream: StreamKind::Default,
};

/// How the server pool answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The protocol version announced.
    pub protocol_version: String,
    /// APPLICATION_PRIVATE_DATA sent when the pool opens (`None` sends `<Nil/>`).
    pub application_private_data: Option<Value>,
    /// Caps on data buffered for incomplete incoming messages (and so on the size of one
    /// message).
    pub limits: DefragLimits,
    /// Bounds on the CLIXML of every message the client sends (nesting depth, RefIds, string
    /// length, elements): a payload over them makes [`ServerRunspacePool::next_event`] fail
    /// with [`PayloadError::Clixml`](crate::messages::PayloadError::Clixml). Defaults to
    /// [`clixml::Limits::default`].
    pub clixml_limits: clixml::Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            protocol_version: "2.3".to_owned(),
            application_private_data: None,
            limits: DefragLimits::default(),
            clixml_limits: clixml::Limits::default(),
        }
    }
}

#[derive(Debug, Default)]
struct ServerPipeline {
    request: Option<Box<CreatePipeline>>,
    input: Vec<Value>,
    input_done: bool,
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    SetMax(i32),
    SetMin(i32),
    Other,
}

/// How a pipeline ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineOutcome {
    /// Completed.
    Completed,
    /// Failed with this error record.
    Failed(Value),
    /// Stopped by the client.
    Stopped,
}

/// Runs one pipeline for [`ServerRunspacePool::run_pipeline`].
pub trait PipelineHandler {
    /// Runs `request` over `input`, writing objects and records to `sink`.
    fn invoke(
        &mut self,
        request: &CreatePipeline,
        input: &[Value],
        sink: &mut PipelineSink<'_>,
    ) -> PipelineOutcome;
}

/// Writes one pipeline's output, records and host calls; [`PipelineSink::finish`] sends
/// the final state.
#[derive(Debug)]
pub struct PipelineSink<'a> {
    server: &'a mut ServerRunspacePool,
    id: Uuid,
}

impl PipelineSink<'_> {
    /// The pipeline id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Queues PIPELINE_OUTPUT.
    pub fn output(&mut self, value: Value) {
        self.server
            .queue(Some(self.id), &Message::PipelineOutput(value));
    }

    /// Queues a record on stream `kind`.
    pub fn record(&mut self, kind: RecordKind, value: Value) {
        let msg = match kind {
            RecordKind::Error => Message::ErrorRecord(value),
            RecordKind::Warning => Message::WarningRecord(value),
            RecordKind::Verbose => Message::VerboseRecord(value),
            RecordKind::Debug => Message::DebugRecord(value),
            RecordKind::Progress => Message::ProgressRecord(value),
            RecordKind::Information => Message::InformationRecord(value),
        };
        self.server.queue(Some(self.id), &msg);
    }

    /// Queues PIPELINE_HOST_CALL; returns the call id (-100 for methods with no reply).
    pub fn host_call(&mut self, method: HostMethod, parameters: Vec<Value>) -> i64 {
        self.server.host_call(Some(self.id), method, parameters)
    }

    /// Queues the final PIPELINE_STATE.
    pub fn finish(self, outcome: PipelineOutcome) {
        let (state, error_record) = match outcome {
            PipelineOutcome::Completed => (PsInvocationState::Completed, None),
            PipelineOutcome::Failed(e) => (PsInvocationState::Failed, Some(e)),
            PipelineOutcome::Stopped => (PsInvocationState::Stopped, None),
        };
        let info = PipelineStateInfo {
            state,
            error_record,
        };
        self.server.queue(Some(self.id), &info.into());
        if let Some(p) = self.server.pipelines.get_mut(&self.id) {
            p.finished = true;
        }
    }
}

/// The server end of a runspace pool. See the [module docs](self) for the call order.
#[derive(Debug)]
pub struct ServerRunspacePool {
    engine: Engine,
    config: ServerConfig,
    state: RunspacePoolState,
    protocol_version: Option<String>,
    runspaces: (i32, i32),
    pipelines: HashMap<Uuid, ServerPipeline>,
    pending: HashMap<i64, Pending>,
    next_host_call_id: i64,
    session_key: Option<SessionKey>,
    events: VecDeque<ServerEvent>,
}

impl ServerRunspacePool {
    /// A pool waiting for the client's handshake.
    pub fn new(id: Uuid, config: ServerConfig) -> Self {
        ServerRunspacePool {
            engine: Engine::new(
                id,
                Destination::Server,
                config.limits,
                config.clixml_limits.clone(),
            ),
            config,
            state: RunspacePoolState::BeforeOpen,
            protocol_version: None,
            runspaces: (1, 1),
            pipelines: HashMap::new(),
            pending: HashMap::new(),
            next_host_call_id: 1,
            session_key: None,
            events: VecDeque::new(),
        }
    }

    /// The pool's state.
    pub fn state(&self) -> RunspacePoolState {
        self.state
    }

    /// `(min, max)` runspaces.
    pub fn runspaces(&self) -> (i32, i32) {
        self.runspaces
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// The session key, once sent.
    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session_key.as_ref()
    }

    fn queue(&mut self, pipeline_id: Option<Uuid>, msg: &Message) {
        let target = Target {
            pipeline_id,
            stream: StreamKind::Default,
        };
        self.engine.queue(target, msg);
    }

    /// Queues a host call for the pool (`None`) or a pipeline; returns its call id.
    pub fn host_call(
        &mut self,
        pipeline_id: Option<Uuid>,
        method: HostMethod,
        parameters: Vec<Value>,
    ) -> i64 {
        let call_id = if method.expects_response() {
            let ci = self.next_host_call_id;
            self.next_host_call_id += 1;
            ci
        } else {
            -100
        };
        let call = HostCall {
            call_id,
            method,
            parameters,
        };
        let msg = match pipeline_id {
            Some(_) => Message::PipelineHostCall(call),
            None => Message::RunspacePoolHostCall(call),
        };
        self.queue(pipeline_id, &msg);
        call_id
    }

    /// Queues RUNSPACEPOOL_STATE (Broken with an error, Closed, ...).
    pub fn set_state(&mut self, state: RunspacePoolState, error: Option<Value>) {
        self.state = state;
        self.queue(None, &RunspacePoolStateInfo { state, error }.into());
    }

    /// Queues PUBLIC_KEY_REQUEST (the client answers with PUBLIC_KEY).
    pub fn request_public_key(&mut self) -> Result<(), StateError> {
        self.require_opened("request the public key")?;
        self.queue(None, &Message::PublicKeyRequest);
        Ok(())
    }

    /// Queues ENCRYPTED_SESSION_KEY: `key` (32 random bytes from the caller) encrypted for
    /// `client_key` with randomness from `rng`.
    pub fn send_session_key<R: CryptoRngCore>(
        &mut self,
        rng: &mut R,
        client_key: &RsaPublicKey,
        key: SessionKey,
    ) -> Result<(), PsrpError> {
        self.require_opened("send the session key")?;
        let blob = key.encrypt_for(rng, client_key)?;
        use base64::Engine as _;
        let encrypted_session_key = base64::engine::general_purpose::STANDARD.encode(blob);
        // [MS-PSRP] 3.2.5.4.4: the RPID of this message is zeroed.
        let msg = EncryptedSessionKey {
            encrypted_session_key,
        }
        .into();
        self.engine.queue_as(POOL_TARGET, Uuid::nil(), &msg);
        self.session_key = Some(key);
        Ok(())
    }

    /// Answers a call-id request (SET_MAX/MIN_RUNSPACES, GET_AVAILABLE_RUNSPACES,
    /// RESET_RUNSPACE_STATE).
    pub fn answer_availability(
        &mut self,
        call_id: i64,
        response: Availability,
    ) -> Result<(), StateError> {
        let Some(kind) = self.pending.remove(&call_id) else {
            return Err(StateError::Pool {
                action: "answer an unknown call id",
                state: self.state.label(),
                expected: "a pending request",
            });
        };
        match (kind, response) {
            (Pending::SetMax(n), Availability::Success(true)) => self.runspaces.1 = n,
            (Pending::SetMin(n), Availability::Success(true)) => self.runspaces.0 = n,
            _ => {}
        }
        self.queue(None, &RunspaceAvailability { response, call_id }.into());
        Ok(())
    }

    fn require_opened(&self, action: &'static str) -> Result<(), StateError> {
        if self.state == RunspacePoolState::Opened {
            Ok(())
        } else {
            Err(StateError::Pool {
                action,
                state: self.state.label(),
                expected: "Opened",
            })
        }
    }

    /// A sink for pipeline `pipeline_id` (created by the client, not finished).
    pub fn sink(&mut self, pipeline_id: Uuid) -> Result<PipelineSink<'_>, StateError> {
        match self.pipelines.get(&pipeline_id) {
            None => Err(StateError::UnknownPipeline(pipeline_id)),
            Some(p) if p.finished => Err(StateError::Pipeline {
                action: "write to",
                id: pipeline_id,
                state: "finished",
            }),
            Some(_) => Ok(PipelineSink {
                server: self,
                id: pipeline_id,
            }),
        }
    }

    /// Runs a created pipeline through `handler` and queues its output, records and final
    /// state. A pipeline that takes input must have received END_OF_PIPELINE_INPUT.
    pub fn run_pipeline(
        &mut self,
        pipeline_id: Uuid,
        handler: &mut dyn PipelineHandler,
    ) -> Result<(), StateError> {
        let p = self
            .pipelines
            .get_mut(&pipeline_id)
            .ok_or(StateError::UnknownPipeline(pipeline_id))?;
        let Some(request) = p.request.take() else {
            return Err(StateError::Pipeline {
                action: "run",
                id: pipeline_id,
                state: "not a CREATE_PIPELINE",
            });
        };
        if p.finished || (!request.no_input && !p.input_done) {
            let state = if p.finished {
                "finished"
            } else {
                "awaiting input"
            };
            p.request = Some(request);
            return Err(StateError::Pipeline {
                action: "run",
                id: pipeline_id,
                state,
            });
        }
        let input = std::mem::take(&mut p.input);
        let mut sink = PipelineSink {
            server: self,
            id: pipeline_id,
        };
        let outcome = handler.invoke(&request, &input, &mut sink);
        sink.finish(outcome);
        Ok(())
    }

    /// Fragments for one target in at most `max_bytes` bytes; `None` when nothing is queued.
    pub fn data_to_send(&mut self, max_bytes: usize) -> Result<Option<OutgoingData>, PsrpError> {
        self.engine.data_to_send(max_bytes)
    }

    /// Takes the bytes of received fragments.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), PsrpError> {
        self.engine.receive(Bytes::copy_from_slice(data), None)
    }

    /// The next event, or `None` when every received message was handled.
    pub fn next_event(&mut self) -> Result<Option<ServerEvent>, PsrpError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            let Some((h, _, msg)) = self.engine.next_message()? else {
                return Ok(None);
            };
            let pid = (!h.pid.is_nil()).then_some(h.pid);
            if let Some(e) = self.handle(h.message_type, pid, msg)? {
                return Ok(Some(e));
            }
        }
    }

    fn known_pipeline(
        &mut self,
        ty: MessageType,
        pid: Option<Uuid>,
    ) -> Result<(Uuid, &mut ServerPipeline), ProtocolError> {
        let id = pid.unwrap_or(Uuid::nil());
        match self.pipelines.get_mut(&id) {
            Some(p) => Ok((id, p)),
            None => Err(ProtocolError::UnknownPipeline {
                message_type: ty,
                pid: id,
            }),
        }
    }

    fn handle(
        &mut self,
        ty: MessageType,
        pid: Option<Uuid>,
        msg: Message,
    ) -> Result<Option<ServerEvent>, PsrpError> {
        let unexpected = ProtocolError::Unexpected {
            message_type: ty,
            state: self.state.label(),
        };
        Ok(Some(match msg {
            Message::SessionCapability(client) => {
                let v = negotiate(&self.config.protocol_version, &client.protocol_version)?;
                self.protocol_version = Some(v.clone());
                let ours = SessionCapability::new(&self.config.protocol_version);
                // As Windows does: the server's capability carries a nil RPID.
                self.engine.queue_as(POOL_TARGET, Uuid::nil(), &ours.into());
                ServerEvent::Negotiated {
                    client,
                    protocol_version: v,
                }
            }
            Message::InitRunspacePool(init) => {
                if self.state != RunspacePoolState::BeforeOpen {
                    return Err(unexpected.into());
                }
                self.runspaces = (init.min_runspaces, init.max_runspaces);
                let apd = ApplicationPrivateData {
                    data: self.config.application_private_data.clone(),
                };
                self.queue(None, &apd.into());
                self.set_state(RunspacePoolState::Opened, None);
                ServerEvent::Opened(init)
            }
            Message::ConnectRunspacePool(c) => {
                if let Some(n) = c.min_runspaces {
                    self.runspaces.0 = n;
                }
                if let Some(n) = c.max_runspaces {
                    self.runspaces.1 = n;
                }
                let (min_runspaces, max_runspaces) = self.runspaces;
                self.queue(
                    None,
                    &RunspacePoolInitData {
                        min_runspaces,
                        max_runspaces,
                    }
                    .into(),
                );
                let apd = ApplicationPrivateData {
                    data: self.config.application_private_data.clone(),
                };
                self.queue(None, &apd.into());
                self.state = RunspacePoolState::Opened;
                ServerEvent::Connected {
                    min_runspaces: c.min_runspaces,
                    max_runspaces: c.max_runspaces,
                }
            }
            Message::PublicKey(pk) => {
                use base64::Engine as _;
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(pk.public_key.trim())
                    .map_err(|_| crate::crypto::CryptoError::Base64("PublicKey"))?;
                ServerEvent::PublicKey(parse_public_key_blob(&blob)?)
            }
            Message::SetMaxRunspaces(s) => {
                self.pending
                    .insert(s.call_id, Pending::SetMax(s.max_runspaces));
                ServerEvent::SetMaxRunspaces {
                    call_id: s.call_id,
                    max_runspaces: s.max_runspaces,
                }
            }
            Message::SetMinRunspaces(s) => {
                self.pending
                    .insert(s.call_id, Pending::SetMin(s.min_runspaces));
                ServerEvent::SetMinRunspaces {
                    call_id: s.call_id,
                    min_runspaces: s.min_runspaces,
                }
            }
            Message::GetAvailableRunspaces(g) => {
                self.pending.insert(g.call_id, Pending::Other);
                ServerEvent::GetAvailableRunspaces { call_id: g.call_id }
            }
            Message::ResetRunspaceState(r) => {
                self.pending.insert(r.call_id, Pending::Other);
                ServerEvent::ResetRunspaceState { call_id: r.call_id }
            }
            Message::CreatePipeline(request) => {
                let id = self.new_pipeline(ty, pid)?;
                if let Some(p) = self.pipelines.get_mut(&id) {
                    p.request = Some(request.clone());
                }
                ServerEvent::CreatePipeline {
                    pipeline_id: id,
                    request,
                }
            }
            Message::GetCommandMetadata(request) => {
                let id = self.new_pipeline(ty, pid)?;
                ServerEvent::GetCommandMetadata {
                    pipeline_id: id,
                    request,
                }
            }
            Message::PipelineInput(value) => {
                let (id, p) = self.known_pipeline(ty, pid)?;
                if p.input_done {
                    return Err(unexpected.into());
                }
                p.input.push(value.clone());
                ServerEvent::Input {
                    pipeline_id: id,
                    value,
                }
            }
            Message::EndOfPipelineInput => {
                let (id, p) = self.known_pipeline(ty, pid)?;
                p.input_done = true;
                ServerEvent::EndOfInput { pipeline_id: id }
            }
            Message::PipelineHostResponse(response) => {
                let (id, _) = self.known_pipeline(ty, pid)?;
                ServerEvent::HostResponse {
                    pipeline_id: Some(id),
                    response,
                }
            }
            Message::RunspacePoolHostResponse(response) => ServerEvent::HostResponse {
                pipeline_id: None,
                response,
            },
            _ => return Err(unexpected.into()),
        }))
    }

    fn new_pipeline(&mut self, ty: MessageType, pid: Option<Uuid>) -> Result<Uuid, PsrpError> {
        self.require_opened("create a pipeline")?;
        let Some(id) = pid else {
            return Err(ProtocolError::UnknownPipeline {
                message_type: ty,
                pid: Uuid::nil(),
            }
            .into());
        };
        if self.pipelines.get(&id).is_some_and(|p| !p.finished) {
            return Err(StateError::DuplicatePipeline(id).into());
        }
        self.pipelines.insert(id, ServerPipeline::default());
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clixml::ClixmlError;
    use crate::messages::{Command, PayloadError, PowerShell};
    use crate::pool::{PoolConfig, RunspacePool};

    const RPID: Uuid = Uuid::from_u128(0x2d35_3305_c595_1547_bf50_1f44_9ff1_fc9b);
    const PID: Uuid = Uuid::from_u128(0x1fd6_1bf9_c7ce_a347_8ce3_de7e_b7aa_5773);

    /// Moves the client's queued data to the server and collects the server's events, up to
    /// the first error.
    fn to_server(
        client: &mut RunspacePool,
        server: &mut ServerRunspacePool,
    ) -> Result<Vec<ServerEvent>, PsrpError> {
        while let Some(out) = client.data_to_send(64 * 1024).expect("client data") {
            server.receive(&out.data)?;
        }
        let mut events = Vec::new();
        while let Some(e) = server.next_event()? {
            events.push(e);
        }
        Ok(events)
    }

    /// Opens a pool against a server configured with `config`, then sends a pipeline whose
    /// one argument is `argument`; returns the server's events for it.
    fn pipeline_through(
        config: ServerConfig,
        argument: &str,
    ) -> Result<Vec<ServerEvent>, PsrpError> {
        let mut client = RunspacePool::new(RPID, PoolConfig::default());
        let mut server = ServerRunspacePool::new(RPID, config);
        client.open().expect("open");
        to_server(&mut client, &mut server).expect("the handshake is small");
        while let Some(out) = server.data_to_send(64 * 1024).expect("server data") {
            client.receive(&out.data).expect("client receives");
        }
        while client.next_event().expect("client event").is_some() {}
        assert_eq!(client.state(), RunspacePoolState::Opened);
        let cmd = Command::cmdlet("Set-Item").arg("Value", argument);
        client
            .create_pipeline(PID, CreatePipeline::new(PowerShell::new(vec![cmd])))
            .expect("create");
        to_server(&mut client, &mut server)
    }

    #[test]
    fn the_server_reads_client_payloads_under_its_clixml_limits() {
        let long = "x".repeat(4096);
        let events = pipeline_through(ServerConfig::default(), &long).expect("default limits");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ServerEvent::CreatePipeline { pipeline_id, .. } if *pipeline_id == PID)),
            "{events:?}"
        );
        let mut config = ServerConfig::default();
        config.clixml_limits.max_string_len = 1024;
        let err = pipeline_through(config, &long).expect_err("over the string limit");
        assert!(
            matches!(
                err,
                PsrpError::Payload(PayloadError::Clixml {
                    message: "CREATE_PIPELINE",
                    source: ClixmlError::LimitExceeded {
                        what: "string length",
                        limit: 1024,
                        ..
                    },
                })
            ),
            "{err:?}"
        );
    }
}
