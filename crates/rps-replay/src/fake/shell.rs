//! One WinRS shell carrying a server runspace pool: the PSRP side of Create, Command, Send,
//! Receive, Signal, Disconnect/Reconnect and Connect, sans-IO (the HTTP glue in the parent
//! module does the waiting).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use bytes::Bytes;
use rps_psrp::clixml::Value;
use rps_psrp::crypto::SessionKey;
use rps_psrp::event::ServerEvent;
use rps_psrp::fragment::FragmentReader;
use rps_psrp::message::{MessageHeader, MessageType};
use rps_psrp::messages::Availability;
use rps_psrp::server::{PipelineOutcome, ServerConfig, ServerRunspacePool};
use uuid::Uuid;

use super::cmdlets::{Env, Producer, command_metadata, plan};

/// Bytes of fragments taken from the pool at a time.
const CHUNK: usize = 32 * 1024;
/// Objects generated per producer step.
const STEP_OBJECTS: usize = 32;

/// Why a shell operation failed (answered as a WS-Man fault).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShellError {
    /// The client sent PSRP data the pool machine refused.
    #[error("PSRP: {0}")]
    Psrp(#[from] rps_psrp::error::PsrpError),
    /// A CommandId this shell does not know.
    #[error("unknown command {0}")]
    UnknownCommand(Uuid),
}

/// What a Receive found.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Fragments to send (concatenated).
    pub data: Vec<u8>,
    /// The command is done (send CommandState Done).
    pub done: bool,
}

/// One fragment waiting for a Receive.
#[derive(Debug)]
struct Queued {
    bytes: Vec<u8>,
    /// It ends its message.
    end: bool,
}

#[derive(Debug)]
pub(crate) struct Shell {
    pub owner: String,
    pub cookie: Option<String>,
    /// The configuration's resource URI (reported by a WS-Transfer Get).
    pub resource_uri: String,
    /// The address of the client that created (or last connected to) the shell.
    pub client_ip: String,
    /// When the shell was created (the fake's clock).
    pub created_at: SystemTime,
    /// Disconnected (WinRS Disconnect): only Get, Reconnect, Connect and Delete are served.
    pub disconnected: bool,
    /// Answer PUBLIC_KEY with ENCRYPTED_SESSION_KEY (off: the key never comes).
    pub answer_key_exchange: bool,
    pool: ServerRunspacePool,
    /// Fragments waiting for a Receive, per target, each with its End flag.
    queues: HashMap<Option<Uuid>, VecDeque<Queued>>,
    producers: HashMap<Uuid, Box<dyn Producer>>,
    awaiting_input: HashMap<Uuid, (Box<rps_psrp::messages::CreatePipeline>, Vec<Value>)>,
    finished: HashSet<Uuid>,
    done_sent: HashSet<Uuid>,
}

impl Shell {
    pub fn new(id: Uuid, owner: String, cookie: Option<String>, config: ServerConfig) -> Self {
        Shell {
            owner,
            cookie,
            resource_uri: String::new(),
            client_ip: String::new(),
            created_at: SystemTime::UNIX_EPOCH,
            disconnected: false,
            answer_key_exchange: true,
            pool: ServerRunspacePool::new(id, config),
            queues: HashMap::new(),
            producers: HashMap::new(),
            awaiting_input: HashMap::new(),
            finished: HashSet::new(),
            done_sent: HashSet::new(),
        }
    }

    /// Feeds client bytes (creationXml, Command arguments, Send streams) and handles what
    /// they carried; `new_env` makes the environment of each new pipeline.
    pub fn receive(
        &mut self,
        data: &[u8],
        new_env: &mut dyn FnMut() -> Env,
    ) -> Result<Vec<Uuid>, ShellError> {
        self.pool.receive(data)?;
        let mut created = Vec::new();
        while let Some(ev) = self.pool.next_event()? {
            match ev {
                ServerEvent::CreatePipeline {
                    pipeline_id,
                    request,
                } => {
                    created.push(pipeline_id);
                    self.finished.remove(&pipeline_id);
                    self.done_sent.remove(&pipeline_id);
                    if request.no_input {
                        let p = plan(&request, Vec::new(), new_env());
                        self.producers.insert(pipeline_id, p);
                    } else {
                        self.awaiting_input
                            .insert(pipeline_id, (request, Vec::new()));
                    }
                }
                ServerEvent::Input { pipeline_id, value } => {
                    if let Some((_, input)) = self.awaiting_input.get_mut(&pipeline_id) {
                        input.push(value);
                    }
                }
                ServerEvent::EndOfInput { pipeline_id } => {
                    if let Some((request, input)) = self.awaiting_input.remove(&pipeline_id) {
                        let p = plan(&request, input, new_env());
                        self.producers.insert(pipeline_id, p);
                    }
                }
                ServerEvent::GetCommandMetadata {
                    pipeline_id,
                    request,
                } => {
                    created.push(pipeline_id);
                    let env = new_env();
                    if let Ok(mut sink) = self.pool.sink(pipeline_id) {
                        for v in command_metadata(&env.catalog, &request.names) {
                            sink.output(v);
                        }
                        sink.finish(PipelineOutcome::Completed);
                    }
                    self.finished.insert(pipeline_id);
                }
                ServerEvent::SetMaxRunspaces { call_id, .. }
                | ServerEvent::SetMinRunspaces { call_id, .. }
                | ServerEvent::ResetRunspaceState { call_id } => {
                    let _ = self
                        .pool
                        .answer_availability(call_id, Availability::Success(true));
                }
                ServerEvent::GetAvailableRunspaces { call_id } => {
                    let _ = self
                        .pool
                        .answer_availability(call_id, Availability::Count(1));
                }
                ServerEvent::PublicKey(client_key) if self.answer_key_exchange => {
                    // A fresh AES-256 key for every exchange, as Windows makes one.
                    use rsa::rand_core::RngCore as _;
                    let mut key = [0u8; 32];
                    rsa::rand_core::OsRng.fill_bytes(&mut key);
                    self.pool.send_session_key(
                        &mut rsa::rand_core::OsRng,
                        &client_key,
                        SessionKey::from_bytes(key),
                    )?;
                }
                _ => {}
            }
        }
        self.drain()?;
        Ok(created)
    }

    fn drain(&mut self) -> Result<(), ShellError> {
        while let Some(out) = self.pool.data_to_send(CHUNK)? {
            self.queue_fragments(out.target.pipeline_id, &out.data);
        }
        Ok(())
    }

    /// Queues the whole fragments in `data` for `target`.
    fn queue_fragments(&mut self, target: Option<Uuid>, data: &[u8]) {
        let q = self.queues.entry(target).or_default();
        for frag in FragmentReader::new(Bytes::copy_from_slice(data)) {
            // Our own pool machine's output: always whole fragments.
            let Ok(frag) = frag else { break };
            let mut bytes = Vec::with_capacity(rps_psrp::fragment::HEADER_LEN + frag.blob.len());
            frag.header.write(&mut bytes);
            bytes.extend_from_slice(&frag.blob);
            q.push_back(Queued {
                bytes,
                end: frag.header.is_end(),
            });
        }
    }

    fn queued(&self, target: Option<Uuid>) -> usize {
        self.queues
            .get(&target)
            .map_or(0, |q| q.iter().map(|f| f.bytes.len()).sum())
    }

    /// Whether `pipeline` is known (running, awaiting input, or finished but not
    /// terminated).
    pub fn knows(&self, pipeline: Uuid) -> bool {
        self.producers.contains_key(&pipeline)
            || self.awaiting_input.contains_key(&pipeline)
            || self.finished.contains(&pipeline)
    }

    /// Runs producers until `budget` bytes are queued for `target` (or it finished).
    pub fn fill(&mut self, target: Option<Uuid>, budget: usize) -> Result<(), ShellError> {
        let Some(pid) = target else {
            return Ok(());
        };
        if !self.knows(pid) {
            return Err(ShellError::UnknownCommand(pid));
        }
        while self.queued(target) < budget {
            let Some(mut producer) = self.producers.remove(&pid) else {
                break;
            };
            let outcome = match self.pool.sink(pid) {
                Ok(mut sink) => {
                    let outcome = producer.step(&mut sink, STEP_OBJECTS);
                    if let Some(o) = outcome.clone() {
                        sink.finish(o);
                    }
                    outcome
                }
                Err(_) => Some(PipelineOutcome::Completed),
            };
            match outcome {
                None => {
                    self.producers.insert(pid, producer);
                }
                Some(_) => {
                    self.finished.insert(pid);
                }
            }
            self.drain()?;
        }
        Ok(())
    }

    /// Whether a Receive for `target` would return something now.
    pub fn ready(&self, target: Option<Uuid>) -> bool {
        self.queued(target) > 0
            || target.is_some_and(|p| self.finished.contains(&p) && !self.done_sent.contains(&p))
    }

    /// Takes up to `budget` bytes for `target` (at least one fragment when any is queued),
    /// ending with a whole message when one fits: a message is split across Receives only
    /// when it is larger than the budget, so a client that disconnects between Receives
    /// leaves no half-delivered message behind for the next one.
    pub fn take(&mut self, target: Option<Uuid>, budget: usize) -> Received {
        let mut out = Received::default();
        if let Some(q) = self.queues.get_mut(&target) {
            let (mut fit, mut size, mut whole) = (0, 0, 0);
            for f in q.iter() {
                if fit > 0 && size + f.bytes.len() > budget {
                    break;
                }
                size += f.bytes.len();
                fit += 1;
                if f.end {
                    whole = fit;
                }
            }
            let n = if whole > 0 { whole } else { fit };
            for f in q.drain(..n) {
                out.data.extend_from_slice(&f.bytes);
            }
        }
        if let Some(pid) = target
            && self.finished.contains(&pid)
            && self.queued(target) == 0
            && !self.done_sent.contains(&pid)
        {
            self.done_sent.insert(pid);
            out.done = true;
        }
        out
    }

    /// `powershell/signal/crtl_c`: stops a running pipeline.
    pub fn stop(&mut self, pid: Uuid) -> Result<(), ShellError> {
        let running =
            self.producers.remove(&pid).is_some() || self.awaiting_input.remove(&pid).is_some();
        if running {
            if let Ok(sink) = self.pool.sink(pid) {
                sink.finish(PipelineOutcome::Stopped);
            }
            self.finished.insert(pid);
            self.drain()?;
        }
        Ok(())
    }

    /// WinRS terminate: forgets the command.
    pub fn terminate(&mut self, pid: Uuid) {
        if self.producers.contains_key(&pid) || self.awaiting_input.contains_key(&pid) {
            let _ = self.stop(pid);
        }
        self.queues.remove(&Some(pid));
        self.finished.remove(&pid);
        self.done_sent.remove(&pid);
    }

    /// Running pipelines.
    pub fn running(&self) -> usize {
        self.producers.len() + self.awaiting_input.len()
    }

    /// WS-Man Connect to the disconnected pool: takes the client's `connectXml`
    /// (SESSION_CAPABILITY, CONNECT_RUNSPACEPOOL) and returns the `connectResponseXml`
    /// (SESSION_CAPABILITY, RUNSPACEPOOL_INIT_DATA). The APPLICATION_PRIVATE_DATA stays
    /// queued for the next Receive on the shell, as Windows sends it. Pool-level data the
    /// previous client never read is dropped: its call ids mean nothing to the new one.
    pub fn connect(
        &mut self,
        connect_xml: &[u8],
        new_env: &mut dyn FnMut() -> Env,
    ) -> Result<Vec<u8>, ShellError> {
        self.queues.remove(&None);
        self.receive(connect_xml, new_env)?;
        let queued: Vec<u8> = self
            .queues
            .remove(&None)
            .map(|q| q.into_iter().flat_map(|f| f.bytes).collect())
            .unwrap_or_default();
        let split = init_data_end(&queued).unwrap_or(queued.len());
        let (head, rest) = queued.split_at(split);
        self.queue_fragments(None, rest);
        self.disconnected = false;
        Ok(head.to_vec())
    }
}

/// The length of the fragments of `data` up to the end of its RUNSPACEPOOL_INIT_DATA
/// message, if there is one.
fn init_data_end(data: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut types: HashMap<u64, Option<MessageType>> = HashMap::new();
    for frag in FragmentReader::new(Bytes::copy_from_slice(data)) {
        let frag = frag.ok()?;
        at += rps_psrp::fragment::HEADER_LEN + frag.blob.len();
        let ty = types.entry(frag.header.object_id).or_insert_with(|| {
            MessageHeader::parse(&frag.blob)
                .ok()
                .map(|h| h.message_type)
        });
        if frag.header.is_end() && *ty == Some(MessageType::RunspacePoolInitData) {
            return Some(at);
        }
    }
    None
}
