//! The client side of a runspace pool ([MS-PSRP] 3.1), sans-IO.
//!
//! # Call order
//!
//! 1. [`RunspacePool::new`] with the pool id (the WS-Man ShellId) and a [`PoolConfig`].
//! 2. [`RunspacePool::open`] (or [`RunspacePool::connect`] to take over a disconnected pool):
//!    queues SESSION_CAPABILITY and INIT_RUNSPACEPOOL (CONNECT_RUNSPACEPOOL).
//! 3. Drain [`RunspacePool::data_to_send`] until `None`; the first batch goes in the WS-Man
//!    Create's `creationXml` (Connect's `connectXml`), later ones in Send requests to the
//!    [`crate::event::Target`] given.
//! 4. Feed every received stream's bytes to [`RunspacePool::receive`], then pull
//!    [`RunspacePool::next_event`] until `None`. The pool is usable once a
//!    [`ClientEvent::PoolState`] reports [`RunspacePoolState::Opened`].
//! 5. Act: [`RunspacePool::create_pipeline`] (then the [`ClientPipeline`] handle for input
//!    and stop), [`RunspacePool::set_max_runspaces`], [`RunspacePool::exchange_key`],
//!    [`RunspacePool::send_host_reply`], ... Each action only queues messages: go back to 3.
//! 6. [`RunspacePool::close`], delete the shell, then [`RunspacePool::closed`].
//!
//! No I/O, no clock, no random numbers: ids and keys are the caller's.
//!
//! ```
//! use rps_psrp::event::ClientEvent;
//! use rps_psrp::messages::{Command, CreatePipeline, PowerShell, RunspacePoolState};
//! use rps_psrp::pool::{PoolConfig, RunspacePool};
//! use rps_psrp::server::{ServerConfig, ServerRunspacePool};
//! use uuid::Uuid;
//!
//! let id = Uuid::from_u128(1);
//! let mut pool = RunspacePool::new(id, PoolConfig { allow_scripts: false, ..PoolConfig::default() });
//! let mut server = ServerRunspacePool::new(id, ServerConfig::default()); // stands in for WinRM
//! pool.open()?;
//! while let Some(out) = pool.data_to_send(150 * 1024)? {
//!     server.receive(&out.data)?; // a real transport sends `out.data` to `out.target`
//! }
//! while server.next_event()?.is_some() {}
//! while let Some(out) = server.data_to_send(150 * 1024)? {
//!     pool.receive(&out.data)?;
//! }
//! while let Some(event) = pool.next_event()? {
//!     if let ClientEvent::PoolState { state, .. } = event {
//!         assert_eq!(state, RunspacePoolState::Opened);
//!     }
//! }
//! let cmd = Command::cmdlet("Get-Mailbox").arg("Identity", "alice").switch("IgnoreDefaultScope");
//! pool.create_pipeline(Uuid::from_u128(2), CreatePipeline::new(PowerShell::new(vec![cmd])))?;
//! assert!(pool.has_data_to_send());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rsa::RsaPrivateKey;
use uuid::Uuid;

use crate::clixml::{self, Value};
use crate::crypto::SessionKey;
use crate::engine::{Engine, negotiate};
use crate::error::{ProtocolError, PsrpError, StateError};
use crate::event::{
    ClientEvent, HostReply, OutgoingData, PendingHostCall, RecordKind, StreamKind, Target,
};
use crate::fragment::DefragLimits;
use crate::message::{Destination, MessageType};
use crate::messages::{
    ApartmentState, Availability, ConnectRunspacePool, CreatePipeline, GetAvailableRunspaces,
    GetCommandMetadata, HostInfo, InitRunspacePool, Message, PsInvocationState, PsThreadOptions,
    PublicKey, ResetRunspaceState, RunspacePoolState, SessionCapability, SetMaxRunspaces,
    SetMinRunspaces, parse_version,
};
pub use crate::pipeline::ClientPipeline;

/// How to open a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Fewest runspaces.
    pub min_runspaces: i32,
    /// Most runspaces.
    pub max_runspaces: i32,
    /// Thread options.
    pub thread_options: PsThreadOptions,
    /// Apartment state.
    pub apartment_state: ApartmentState,
    /// The host offered to the server.
    pub host_info: HostInfo,
    /// `ApplicationArguments` (a `PSPrimitiveDictionary`), if any.
    pub application_arguments: Option<Value>,
    /// The highest protocol version to announce (`2.1`, `2.2` or `2.3`).
    pub protocol_version: String,
    /// Allow commands with `IsScript` true (Exchange endpoints reject them: set false there).
    pub allow_scripts: bool,
    /// Caps on data buffered for incomplete incoming messages (and so on the size of one
    /// message): over them, [`RunspacePool::receive`] fails with
    /// [`FragmentError`](crate::fragment::FragmentError).
    pub limits: DefragLimits,
    /// Bounds on the CLIXML of every message the server sends (nesting depth, RefIds, string
    /// length, elements): a payload over them makes [`RunspacePool::next_event`] fail with
    /// [`PayloadError::Clixml`](crate::messages::PayloadError::Clixml). Defaults to
    /// [`clixml::Limits::default`].
    pub clixml_limits: clixml::Limits,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_runspaces: 1,
            max_runspaces: 1,
            thread_options: PsThreadOptions::Default,
            apartment_state: ApartmentState::Unknown,
            host_info: HostInfo::default(),
            application_arguments: None,
            protocol_version: "2.3".to_owned(),
            allow_scripts: true,
            limits: DefragLimits::default(),
            clixml_limits: clixml::Limits::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingCall {
    SetMax(i32),
    SetMin(i32),
    Available,
    Reset,
}

/// The client end of a runspace pool. See the [module docs](self) for the call order.
#[derive(Debug)]
pub struct RunspacePool {
    engine: Engine,
    config: PoolConfig,
    state: RunspacePoolState,
    protocol_version: Option<String>,
    application_private_data: Option<Value>,
    pub(crate) pipelines: HashMap<Uuid, PsInvocationState>,
    next_call_id: i64,
    pending_calls: HashMap<i64, PendingCall>,
    private_key: Option<RsaPrivateKey>,
    session_key: Option<SessionKey>,
    events: VecDeque<ClientEvent>,
}

fn state_name(s: RunspacePoolState) -> &'static str {
    s.label()
}

impl RunspacePool {
    /// A pool in state BeforeOpen; `id` is the RPID (the WS-Man ShellId).
    pub fn new(id: Uuid, config: PoolConfig) -> Self {
        RunspacePool {
            engine: Engine::new(
                id,
                Destination::Client,
                config.limits,
                config.clixml_limits.clone(),
            ),
            config,
            state: RunspacePoolState::BeforeOpen,
            protocol_version: None,
            application_private_data: None,
            pipelines: HashMap::new(),
            next_call_id: 0,
            pending_calls: HashMap::new(),
            private_key: None,
            session_key: None,
            events: VecDeque::new(),
        }
    }

    /// The pool id.
    pub fn id(&self) -> Uuid {
        self.engine.rpid
    }

    /// The current state.
    pub fn state(&self) -> RunspacePoolState {
        self.state
    }

    /// The negotiated protocol version, once the server's capability arrived.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// The last APPLICATION_PRIVATE_DATA received.
    pub fn application_private_data(&self) -> Option<&Value> {
        self.application_private_data.as_ref()
    }

    /// The configured (or server-confirmed) pool sizes.
    pub fn runspaces(&self) -> (i32, i32) {
        (self.config.min_runspaces, self.config.max_runspaces)
    }

    /// The session key, once exchanged.
    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session_key.as_ref()
    }

    pub(crate) fn require(
        &self,
        action: &'static str,
        ok: &[RunspacePoolState],
        expected: &'static str,
    ) -> Result<(), StateError> {
        if ok.contains(&self.state) {
            Ok(())
        } else {
            Err(StateError::Pool {
                action,
                state: state_name(self.state),
                expected,
            })
        }
    }

    fn need_version(&self, action: &'static str, need: &'static str) -> Result<(), StateError> {
        let have = self.protocol_version.clone().unwrap_or_default();
        if parse_version(&have) < parse_version(need) {
            return Err(StateError::ProtocolTooOld { action, need, have });
        }
        Ok(())
    }

    pub(crate) fn queue(&mut self, pipeline_id: Option<Uuid>, msg: &Message) {
        let target = Target {
            pipeline_id,
            stream: StreamKind::Default,
        };
        self.engine.queue(target, msg);
    }

    /// Queues SESSION_CAPABILITY and INIT_RUNSPACEPOOL. Needs state BeforeOpen; moves to
    /// Opening.
    pub fn open(&mut self) -> Result<(), StateError> {
        self.require("open", &[RunspacePoolState::BeforeOpen], "BeforeOpen")?;
        let c = &self.config;
        let init = InitRunspacePool {
            min_runspaces: c.min_runspaces,
            max_runspaces: c.max_runspaces,
            thread_options: c.thread_options,
            apartment_state: c.apartment_state,
            host_info: c.host_info.clone(),
            application_arguments: c.application_arguments.clone(),
        };
        let cap = SessionCapability::new(&c.protocol_version);
        self.queue(None, &cap.into());
        self.queue(None, &init.into());
        self.state = RunspacePoolState::Opening;
        Ok(())
    }

    /// Queues SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL to take over a disconnected pool
    /// (protocol 2.2+ servers). Needs state BeforeOpen; moves to Connecting.
    pub fn connect(&mut self) -> Result<(), StateError> {
        self.require("connect", &[RunspacePoolState::BeforeOpen], "BeforeOpen")?;
        let cap = SessionCapability::new(&self.config.protocol_version);
        self.queue(None, &cap.into());
        self.queue(None, &ConnectRunspacePool::default().into());
        self.state = RunspacePoolState::Connecting;
        Ok(())
    }

    /// Records that the transport disconnected the shell. Needs Opened; moves to
    /// Disconnected.
    pub fn disconnect(&mut self) -> Result<(), StateError> {
        self.require("disconnect", &[RunspacePoolState::Opened], "Opened")?;
        self.state = RunspacePoolState::Disconnected;
        Ok(())
    }

    /// Records that the transport reconnected the shell. Needs Disconnected; moves to Opened.
    pub fn reconnect(&mut self) -> Result<(), StateError> {
        self.require(
            "reconnect",
            &[RunspacePoolState::Disconnected],
            "Disconnected",
        )?;
        self.state = RunspacePoolState::Opened;
        Ok(())
    }

    /// Starts closing (the transport then deletes the shell). Moves to Closing.
    pub fn close(&mut self) -> Result<(), StateError> {
        use RunspacePoolState::*;
        self.require(
            "close",
            &[Opened, Disconnected, Broken, Opening, Connecting],
            "Opened, Disconnected or Broken",
        )?;
        self.state = Closing;
        Ok(())
    }

    /// Records that the shell was deleted. Moves to Closed.
    pub fn closed(&mut self) {
        self.state = RunspacePoolState::Closed;
    }

    fn call_id(&mut self, kind: PendingCall) -> i64 {
        let ci = self.next_call_id;
        self.next_call_id += 1;
        self.pending_calls.insert(ci, kind);
        ci
    }

    /// Queues SET_MAX_RUNSPACES; returns the call id the answer will carry.
    pub fn set_max_runspaces(&mut self, max_runspaces: i32) -> Result<i64, StateError> {
        self.require("set max runspaces", &[RunspacePoolState::Opened], "Opened")?;
        let call_id = self.call_id(PendingCall::SetMax(max_runspaces));
        self.queue(
            None,
            &SetMaxRunspaces {
                max_runspaces,
                call_id,
            }
            .into(),
        );
        Ok(call_id)
    }

    /// Queues SET_MIN_RUNSPACES; returns the call id the answer will carry.
    pub fn set_min_runspaces(&mut self, min_runspaces: i32) -> Result<i64, StateError> {
        self.require("set min runspaces", &[RunspacePoolState::Opened], "Opened")?;
        let call_id = self.call_id(PendingCall::SetMin(min_runspaces));
        self.queue(
            None,
            &SetMinRunspaces {
                min_runspaces,
                call_id,
            }
            .into(),
        );
        Ok(call_id)
    }

    /// Queues GET_AVAILABLE_RUNSPACES; returns the call id.
    pub fn get_available_runspaces(&mut self) -> Result<i64, StateError> {
        self.require(
            "get available runspaces",
            &[RunspacePoolState::Opened],
            "Opened",
        )?;
        let call_id = self.call_id(PendingCall::Available);
        self.queue(None, &GetAvailableRunspaces { call_id }.into());
        Ok(call_id)
    }

    /// Queues RESET_RUNSPACE_STATE (protocol 2.3); returns the call id.
    pub fn reset_runspace_state(&mut self) -> Result<i64, StateError> {
        self.require(
            "reset runspace state",
            &[RunspacePoolState::Opened],
            "Opened",
        )?;
        self.need_version("reset runspace state", "2.3")?;
        let call_id = self.call_id(PendingCall::Reset);
        self.queue(None, &ResetRunspaceState { call_id }.into());
        Ok(call_id)
    }

    /// Queues GET_COMMAND_METADATA as pipeline `pipeline_id` (sent like a CREATE_PIPELINE:
    /// the answer comes as that pipeline's output and state).
    pub fn get_command_metadata(
        &mut self,
        pipeline_id: Uuid,
        request: GetCommandMetadata,
    ) -> Result<ClientPipeline<'_>, StateError> {
        self.require(
            "get command metadata",
            &[RunspacePoolState::Opened],
            "Opened",
        )?;
        self.add_pipeline(pipeline_id)?;
        self.queue(Some(pipeline_id), &request.into());
        Ok(ClientPipeline::new(self, pipeline_id))
    }

    pub(crate) fn add_pipeline(&mut self, id: Uuid) -> Result<(), StateError> {
        // A finished pipeline may be invoked again under the same id.
        if self.pipelines.get(&id).is_some_and(|s| !s.is_terminal()) {
            return Err(StateError::DuplicatePipeline(id));
        }
        self.pipelines.insert(id, PsInvocationState::Running);
        Ok(())
    }

    /// Queues CREATE_PIPELINE for `request` as pipeline `pipeline_id` (the WS-Man
    /// CommandId); merges the server does not know are dropped. Needs state Opened.
    pub fn create_pipeline(
        &mut self,
        pipeline_id: Uuid,
        mut request: CreatePipeline,
    ) -> Result<ClientPipeline<'_>, StateError> {
        self.require("create pipeline", &[RunspacePoolState::Opened], "Opened")?;
        let version = self
            .protocol_version
            .clone()
            .unwrap_or_else(|| "2.1".into());
        for cmd in request.power_shell.statements.iter_mut().flatten() {
            if cmd.is_script && !self.config.allow_scripts {
                return Err(StateError::Pipeline {
                    action: "create a script",
                    id: pipeline_id,
                    state: "NoLanguage",
                });
            }
            cmd.merges = cmd.merges.for_protocol(&version);
        }
        self.add_pipeline(pipeline_id)?;
        self.queue(
            Some(pipeline_id),
            &Message::CreatePipeline(Box::new(request)),
        );
        Ok(ClientPipeline::new(self, pipeline_id))
    }

    /// Takes over a pipeline of a pool this client connected to (after the transport's
    /// WS-Man Connect for the command); its output then arrives as for a created one.
    pub fn connect_pipeline(
        &mut self,
        pipeline_id: Uuid,
    ) -> Result<ClientPipeline<'_>, StateError> {
        self.require("connect a pipeline", &[RunspacePoolState::Opened], "Opened")?;
        self.add_pipeline(pipeline_id)?;
        Ok(ClientPipeline::new(self, pipeline_id))
    }

    /// The last known state of a pipeline, if it is known.
    pub fn pipeline_state(&self, pipeline_id: Uuid) -> Option<PsInvocationState> {
        self.pipelines.get(&pipeline_id).copied()
    }

    /// The handle of a known pipeline.
    pub fn pipeline(&mut self, pipeline_id: Uuid) -> Result<ClientPipeline<'_>, StateError> {
        if !self.pipelines.contains_key(&pipeline_id) {
            return Err(StateError::UnknownPipeline(pipeline_id));
        }
        Ok(ClientPipeline::new(self, pipeline_id))
    }

    /// Queues PUBLIC_KEY for `key`'s public half (the caller makes the 2048-bit key pair).
    /// The session key arrives as [`ClientEvent::SessionKeyReady`].
    pub fn exchange_key(&mut self, key: RsaPrivateKey) -> Result<(), PsrpError> {
        self.require("exchange keys", &[RunspacePoolState::Opened], "Opened")?;
        let blob = crate::crypto::public_key_blob(&key.to_public_key())?;
        use base64::Engine as _;
        let public_key = base64::engine::general_purpose::STANDARD.encode(blob);
        self.queue(None, &PublicKey { public_key }.into());
        self.private_key = Some(key);
        Ok(())
    }

    /// Encrypts `plain` as a `<SS>` value with the session key.
    pub fn encrypt_secure_string(&self, plain: &str) -> Result<Value, StateError> {
        let key = self.session_key.as_ref().ok_or(StateError::NoSessionKey)?;
        Ok(Value::SecureString(key.encrypt_secure_string(plain)))
    }

    /// Decrypts a `<SS>` value with the session key.
    pub fn decrypt_secure_string(&self, value: &Value) -> Result<String, PsrpError> {
        let key = self.session_key.as_ref().ok_or(StateError::NoSessionKey)?;
        match value {
            Value::SecureString(b64) => Ok(key.decrypt_secure_string(b64)?),
            _ => Err(crate::crypto::CryptoError::Base64("non-securestring value").into()),
        }
    }

    /// Queues the answer to a host call, on the prompt-response stream.
    pub fn send_host_reply(&mut self, reply: HostReply) -> Result<(), StateError> {
        let target = Target {
            pipeline_id: reply.pipeline_id,
            stream: StreamKind::PromptResponse,
        };
        let msg = match reply.pipeline_id {
            Some(pid) => {
                if !self.pipelines.contains_key(&pid) {
                    return Err(StateError::UnknownPipeline(pid));
                }
                Message::PipelineHostResponse(reply.response)
            }
            None => Message::RunspacePoolHostResponse(reply.response),
        };
        self.engine.queue(target, &msg);
        Ok(())
    }

    /// True when [`RunspacePool::data_to_send`] has something.
    pub fn has_data_to_send(&self) -> bool {
        self.engine.has_data()
    }

    /// Fragments for one target in at most `max_bytes` bytes, oldest first; `None` when
    /// nothing is queued.
    pub fn data_to_send(&mut self, max_bytes: usize) -> Result<Option<OutgoingData>, PsrpError> {
        self.engine.data_to_send(max_bytes)
    }

    /// Takes the bytes of received fragments (one `rsp:Stream`, or several concatenated).
    /// Messages become events in [`RunspacePool::next_event`].
    pub fn receive(&mut self, data: &[u8]) -> Result<(), PsrpError> {
        self.engine.receive(Bytes::copy_from_slice(data), None)
    }

    /// Like [`RunspacePool::receive`], without copying, for data that came on the stream of
    /// `pipeline_id` (the WS-Man CommandId of the Receive), or the pool's (`None`).
    ///
    /// A pipeline message whose PID this pool does not know is given to the stream's
    /// pipeline: Windows sends records of nested pipelines (e.g. warnings) with their own
    /// RPID and PID on the command's stream.
    pub fn receive_on(&mut self, pipeline_id: Option<Uuid>, data: Bytes) -> Result<(), PsrpError> {
        self.engine.receive(data, pipeline_id)
    }

    /// The next event, or `None` when every received message was handled.
    pub fn next_event(&mut self) -> Result<Option<ClientEvent>, PsrpError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            let Some((h, stream, msg)) = self.engine.next_message()? else {
                return Ok(None);
            };
            let pid = match (!h.pid.is_nil()).then_some(h.pid) {
                Some(p) if !self.pipelines.contains_key(&p) => stream.or(Some(p)),
                other => other,
            };
            if let Some(e) = self.handle(h.message_type, pid, msg)? {
                return Ok(Some(e));
            }
        }
    }

    fn pipeline_id(&self, ty: MessageType, pid: Option<Uuid>) -> Result<Uuid, ProtocolError> {
        match pid {
            Some(p) if self.pipelines.contains_key(&p) => Ok(p),
            other => Err(ProtocolError::UnknownPipeline {
                message_type: ty,
                pid: other.unwrap_or(Uuid::nil()),
            }),
        }
    }

    fn handle(
        &mut self,
        ty: MessageType,
        pid: Option<Uuid>,
        msg: Message,
    ) -> Result<Option<ClientEvent>, PsrpError> {
        let unexpected = |s: RunspacePoolState| ProtocolError::Unexpected {
            message_type: ty,
            state: state_name(s),
        };
        let record = |kind, value, this: &Self| -> Result<Option<ClientEvent>, PsrpError> {
            Ok(Some(ClientEvent::Record {
                pipeline_id: this.pipeline_id(ty, pid)?,
                kind,
                value,
            }))
        };
        Ok(match msg {
            Message::SessionCapability(server) => {
                let v = negotiate(&self.config.protocol_version, &server.protocol_version)?;
                self.protocol_version = Some(v.clone());
                if self.state == RunspacePoolState::Opening {
                    self.state = RunspacePoolState::NegotiationSucceeded;
                }
                Some(ClientEvent::Negotiated {
                    server,
                    protocol_version: v,
                })
            }
            Message::ApplicationPrivateData(apd) => {
                self.application_private_data = apd.data.clone();
                if self.state == RunspacePoolState::Connecting {
                    self.state = RunspacePoolState::Opened;
                    self.events.push_back(ClientEvent::PoolState {
                        state: RunspacePoolState::Opened,
                        error: None,
                    });
                }
                Some(ClientEvent::ApplicationPrivateData(apd.data))
            }
            Message::RunspacePoolState(s) => {
                self.state = s.state;
                Some(ClientEvent::PoolState {
                    state: s.state,
                    error: s.error,
                })
            }
            Message::RunspacePoolInitData(d) => {
                self.config.min_runspaces = d.min_runspaces;
                self.config.max_runspaces = d.max_runspaces;
                Some(ClientEvent::InitData(d))
            }
            Message::RunspaceAvailability(a) => {
                match (self.pending_calls.remove(&a.call_id), a.response) {
                    (Some(PendingCall::SetMax(n)), Availability::Success(true)) => {
                        self.config.max_runspaces = n;
                    }
                    (Some(PendingCall::SetMin(n)), Availability::Success(true)) => {
                        self.config.min_runspaces = n;
                    }
                    (Some(_), _) => {}
                    (None, _) => return Err(unexpected(self.state).into()),
                }
                Some(ClientEvent::Availability {
                    call_id: a.call_id,
                    response: a.response,
                })
            }
            Message::PublicKeyRequest => Some(ClientEvent::PublicKeyRequested),
            Message::EncryptedSessionKey(esk) => {
                let key = self.private_key.as_ref().ok_or(StateError::NoKeyExchange)?;
                use base64::Engine as _;
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(esk.encrypted_session_key.trim())
                    .map_err(|_| crate::crypto::CryptoError::Base64("EncryptedSessionKey"))?;
                self.session_key = Some(SessionKey::decrypt_from(&blob, key)?);
                Some(ClientEvent::SessionKeyReady)
            }
            Message::UserEvent(e) => Some(ClientEvent::UserEvent(e)),
            Message::RunspacePoolHostCall(call) => Some(ClientEvent::HostCall(PendingHostCall {
                pipeline_id: None,
                call,
            })),
            Message::PipelineHostCall(call) => Some(ClientEvent::HostCall(PendingHostCall {
                pipeline_id: Some(self.pipeline_id(ty, pid)?),
                call,
            })),
            Message::PipelineOutput(value) => Some(ClientEvent::Output {
                pipeline_id: self.pipeline_id(ty, pid)?,
                value,
            }),
            Message::ErrorRecord(v) => record(RecordKind::Error, v, self)?,
            Message::WarningRecord(v) => record(RecordKind::Warning, v, self)?,
            Message::VerboseRecord(v) => record(RecordKind::Verbose, v, self)?,
            Message::DebugRecord(v) => record(RecordKind::Debug, v, self)?,
            Message::ProgressRecord(v) => record(RecordKind::Progress, v, self)?,
            Message::InformationRecord(v) => record(RecordKind::Information, v, self)?,
            Message::PipelineState(s) => {
                let id = self.pipeline_id(ty, pid)?;
                self.pipelines.insert(id, s.state);
                Some(ClientEvent::PipelineState {
                    pipeline_id: id,
                    state: s.state,
                    error_record: s.error_record,
                })
            }
            _ => return Err(unexpected(self.state).into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clixml::{ClixmlError, ListKind, Object, ObjectBase};
    use crate::messages::{Command, PayloadError, PowerShell};
    use crate::server::{PipelineOutcome, ServerConfig, ServerRunspacePool};

    const RPID: Uuid = Uuid::from_u128(0x2d35_3305_c595_1547_bf50_1f44_9ff1_fc9b);
    const PID: Uuid = Uuid::from_u128(0x1fd6_1bf9_c7ce_a347_8ce3_de7e_b7aa_5773);

    /// Moves the client's queued data to the server and drains the server's events.
    fn to_server(client: &mut RunspacePool, server: &mut ServerRunspacePool) {
        while let Some(out) = client.data_to_send(64 * 1024).expect("client data") {
            server.receive(&out.data).expect("server receives");
        }
        while server.next_event().expect("server event").is_some() {}
    }

    /// Moves the server's queued data to the client and collects its events, up to the
    /// first error.
    fn to_client(
        server: &mut ServerRunspacePool,
        client: &mut RunspacePool,
    ) -> Result<Vec<ClientEvent>, PsrpError> {
        while let Some(out) = server.data_to_send(64 * 1024).expect("server data") {
            client.receive(&out.data)?;
        }
        let mut events = Vec::new();
        while let Some(e) = client.next_event()? {
            events.push(e);
        }
        Ok(events)
    }

    /// Opens a pool configured with `config`, starts pipeline [`PID`], has the server
    /// answer with `value` as PIPELINE_OUTPUT, and returns what the client made of it.
    fn output_through(config: PoolConfig, value: Value) -> Result<Vec<ClientEvent>, PsrpError> {
        let mut client = RunspacePool::new(RPID, config);
        let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
        client.open().expect("open");
        to_server(&mut client, &mut server);
        let opened = to_client(&mut server, &mut client).expect("the handshake is small");
        assert!(opened.iter().any(|e| matches!(
            e,
            ClientEvent::PoolState {
                state: RunspacePoolState::Opened,
                ..
            }
        )));
        let request = CreatePipeline::new(PowerShell::new(vec![Command::cmdlet("Get-Item")]));
        client.create_pipeline(PID, request).expect("create");
        to_server(&mut client, &mut server);
        let mut sink = server.sink(PID).expect("pipeline known to the server");
        sink.output(value);
        sink.finish(PipelineOutcome::Completed);
        to_client(&mut server, &mut client)
    }

    /// Lists nested `depth` deep around a string.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(Value::Str("core".into()), |inner, _| {
            Value::object(Object {
                base: ObjectBase::List(ListKind::List, vec![inner]),
                ..Object::default()
            })
        })
    }

    fn output_of(events: &[ClientEvent]) -> Option<&Value> {
        events.iter().find_map(|e| match e {
            ClientEvent::Output { pipeline_id, value } if *pipeline_id == PID => Some(value),
            _ => None,
        })
    }

    #[test]
    fn the_default_config_reads_payloads_under_the_default_clixml_limits() {
        assert_eq!(
            PoolConfig::default().clixml_limits,
            clixml::Limits::default()
        );
        let long = Value::Str("x".repeat(4096));
        let events = output_through(PoolConfig::default(), long.clone()).expect("accepted");
        assert_eq!(output_of(&events), Some(&long));
        let deep = nested(40);
        let events = output_through(PoolConfig::default(), deep.clone()).expect("accepted");
        assert_eq!(output_of(&events), Some(&deep));
    }

    #[test]
    fn a_small_string_limit_rejects_long_pipeline_output() {
        let mut config = PoolConfig::default();
        config.clixml_limits.max_string_len = 1024;
        // Under the limit: delivered.
        let short = Value::Str("x".repeat(1000));
        let events = output_through(config.clone(), short.clone()).expect("short output");
        assert_eq!(output_of(&events), Some(&short));
        // Over it: the typed error, naming the message and the limit.
        let err = output_through(config, Value::Str("x".repeat(4096))).expect_err("too long");
        match &err {
            PsrpError::Payload(PayloadError::Clixml {
                message: "PIPELINE_OUTPUT",
                source:
                    ClixmlError::LimitExceeded {
                        what: "string length",
                        limit: 1024,
                        ..
                    },
            }) => {}
            other => panic!("expected a string-length PayloadError, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("invalid clixml in PIPELINE_OUTPUT"),
            "{err}"
        );
    }

    #[test]
    fn a_small_depth_limit_rejects_deep_pipeline_output() {
        let mut config = PoolConfig::default();
        config.clixml_limits.max_depth = 8;
        let shallow = nested(8);
        let events = output_through(config.clone(), shallow.clone()).expect("within the limit");
        assert_eq!(output_of(&events), Some(&shallow));
        let err = output_through(config, nested(40)).expect_err("too deep");
        assert!(
            matches!(
                err,
                PsrpError::Payload(PayloadError::Clixml {
                    message: "PIPELINE_OUTPUT",
                    source: ClixmlError::DepthExceeded { limit: 8, .. },
                })
            ),
            "{err:?}"
        );
    }
}
