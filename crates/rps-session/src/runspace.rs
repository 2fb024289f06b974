//! The public async API: connect a runspace pool, invoke commands, stream their events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rps_session::Error> {
//! use rps_session::{Command, ConnectOptions, RunspacePool};
//! use rps_session::http::{Credentials, Endpoint};
//!
//! let endpoint = Endpoint {
//!     url: "https://exchange.contoso.com/PowerShell".parse().expect("url"),
//!     configuration: "Microsoft.Exchange".into(),
//!     allow_redirection: false,
//! };
//! let options = ConnectOptions::new(endpoint, Some(Credentials::basic("admin", "secret")));
//! let pool = RunspacePool::connect(options).await?;
//! let result = pool
//!     .invoke([Command::new("Get-Mailbox").param("ResultSize", 10)])
//!     .await?
//!     .collect()
//!     .await?;
//! println!("{} mailboxes", result.output.len());
//! pool.close().await?;
//! # Ok(()) }
//! ```
//!
//! A background task (the driver) owns the sans-IO [`Session`] machine and the
//! [`HttpClient`]; it is a loop that sends whatever the machine asks for and feeds back the
//! answers. Handles talk to it over channels, so several pipelines can run on one pool and
//! several pools at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rps_psrp::clixml::Value;
use rps_psrp::event::{HostReply, PendingHostCall, RecordKind};
use rps_psrp::messages::{
    CreatePipeline, GetCommandMetadata, PowerShell, PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::PoolConfig;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::http::{
    ClientError, Credentials, Endpoint, HttpClient, HttpRequest, HttpResponse, RedirectPolicy,
    Transport, TransportConfig, TransportError,
};
use crate::machine::{IdSource, Operation, Session, SessionConfig, SessionError, SessionEvent};

/// A command with its parameters, for [`RunspacePool::invoke`].
#[derive(Debug, Clone, PartialEq)]
pub struct Command(rps_psrp::messages::Command);

impl Command {
    /// A cmdlet (or function) by name.
    pub fn new(name: impl Into<String>) -> Self {
        Command(rps_psrp::messages::Command::cmdlet(name))
    }

    /// A script (only where the endpoint allows scripts; Exchange's don't).
    pub fn script(text: impl Into<String>) -> Self {
        Command(rps_psrp::messages::Command::script(text))
    }

    /// Adds `-name value`.
    pub fn param(self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        Command(self.0.arg(name, value))
    }

    /// Adds a switch `-name`.
    pub fn switch(self, name: impl Into<String>) -> Self {
        Command(self.0.switch(name))
    }

    /// Adds a positional argument.
    pub fn arg(self, value: impl Into<Value>) -> Self {
        Command(self.0.positional(value))
    }

    /// The PSRP command.
    pub fn into_inner(self) -> rps_psrp::messages::Command {
        self.0
    }
}

impl From<rps_psrp::messages::Command> for Command {
    fn from(c: rps_psrp::messages::Command) -> Self {
        Command(c)
    }
}

/// Sees every HTTP exchange of a session, e.g. to record a transcript
/// (`rps_replay::recorder`). Requests are seen without their `Authorization` and `Cookie`
/// headers; observers must still redact what they keep.
pub trait ExchangeObserver: Send + Sync + std::fmt::Debug {
    /// One exchange: the request and the response, or the transport error's text.
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>);
}

/// How to connect.
#[derive(Debug)]
pub struct ConnectOptions {
    /// Where, and which configuration.
    pub endpoint: Endpoint,
    /// Who (`None`: no Authorization header).
    pub credentials: Option<Credentials>,
    /// TLS roots, proxy, timeouts.
    pub transport: TransportConfig,
    /// Send Basic credentials over plain http (refused otherwise).
    pub allow_insecure_http: bool,
    /// The runspace pool's settings (set `allow_scripts` false for Exchange).
    pub pool: PoolConfig,
    /// `wsman:OperationTimeout` in seconds.
    pub operation_timeout_secs: u64,
    /// Initial `wsman:MaxEnvelopeSize` in bytes.
    pub max_envelope_size: u64,
    /// Sees every HTTP exchange (recording).
    pub observer: Option<Arc<dyn ExchangeObserver>>,
}

impl ConnectOptions {
    /// Options with defaults for `endpoint`. Scripts are refused up front for the
    /// `Microsoft.Exchange` configuration, which runs in NoLanguage mode.
    pub fn new(endpoint: Endpoint, credentials: Option<Credentials>) -> Self {
        let pool = PoolConfig {
            allow_scripts: !endpoint
                .configuration
                .eq_ignore_ascii_case("Microsoft.Exchange"),
            ..PoolConfig::default()
        };
        ConnectOptions {
            endpoint,
            credentials,
            transport: TransportConfig::default(),
            allow_insecure_http: false,
            pool,
            operation_timeout_secs: 20,
            max_envelope_size: 153_600,
            observer: None,
        }
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The protocol session failed (a fault, an HTTP status, bad data).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The HTTP layer failed (connect, TLS, redirect, token).
    #[error(transparent)]
    Http(#[from] ClientError),
    /// The transport could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused the credentials.
    #[error("authentication failed (HTTP 401) at {host}: {hint}")]
    Unauthorized {
        /// The host.
        host: String,
        /// What to check.
        hint: &'static str,
    },
    /// The pool opened in a state other than Opened.
    #[error("the runspace pool did not open (state {0:?})")]
    NotOpened(RunspacePoolState),
    /// The session is gone (closed, or its driver stopped).
    #[error("the session is closed")]
    Closed,
}

impl Error {
    /// True for Exchange's throttle on concurrent runspaces.
    pub fn is_max_concurrency(&self) -> bool {
        matches!(self, Error::Session(e) if e.is_max_concurrency())
    }
}

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

enum Request {
    Pipeline(Box<CreatePipeline>),
    Metadata(GetCommandMetadata),
}

enum Cmd {
    Invoke {
        request: Request,
        events: mpsc::UnboundedSender<Result<PipelineEvent, Error>>,
        done: oneshot::Sender<Result<Uuid, Error>>,
    },
    Input(Uuid, Value),
    EndInput(Uuid),
    Stop(Uuid),
    HostReply(HostReply),
    Close(oneshot::Sender<Result<(), Error>>),
}

/// An open runspace pool. Dropping it closes the pool (the shell is deleted in the
/// background); [`RunspacePool::close`] does the same and waits.
#[derive(Debug)]
pub struct RunspacePool {
    tx: mpsc::UnboundedSender<Cmd>,
    shell_id: Uuid,
    protocol_version: String,
}

/// A running pipeline: a [`futures_core::Stream`] of [`PipelineEvent`]s.
#[derive(Debug)]
pub struct Pipeline {
    id: Uuid,
    tx: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<Result<PipelineEvent, Error>>,
}

struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
}

impl RunspacePool {
    /// Connects: creates the shell (following a redirect when allowed), opens the pool and
    /// waits until it is Opened.
    pub async fn connect(options: ConnectOptions) -> Result<RunspacePool, Error> {
        let transport = Transport::new(options.transport)?;
        let policy = if options.endpoint.allow_redirection {
            RedirectPolicy::follow()
        } else {
            RedirectPolicy::none()
        };
        let http = HttpClient::new(transport, options.credentials)
            .with_redirect_policy(policy)
            .allow_insecure_http(options.allow_insecure_http);
        let mut config = SessionConfig::new(
            options.endpoint.url.to_string(),
            &options.endpoint.configuration,
        );
        config.pool = options.pool;
        config.operation_timeout_secs = options.operation_timeout_secs;
        config.max_envelope_size = options.max_envelope_size;
        config.session_id = Some(Uuid::new_v4());
        let shell_id = Uuid::new_v4();
        let mut session = Session::new(config, shell_id, Box::new(RandomIds));
        session.open()?;
        let mut driver = Driver {
            session,
            http,
            observer: options.observer,
            url: options.endpoint.url,
            pipelines: HashMap::new(),
            closers: Vec::new(),
        };
        // Open synchronously: run the loop until the pool is Opened (or fails).
        let protocol_version = driver.open().await?;
        let shell_id = driver.session.shell_id();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(driver.run(rx));
        Ok(RunspacePool {
            tx,
            shell_id,
            protocol_version,
        })
    }

    /// The WS-Man ShellId.
    pub fn shell_id(&self) -> Uuid {
        self.shell_id
    }

    /// The negotiated PSRP protocol version.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// Starts a pipeline of `commands` (piped into each other, like `a | b`).
    pub async fn invoke(
        &self,
        commands: impl IntoIterator<Item = Command>,
    ) -> Result<Pipeline, Error> {
        let ps = PowerShell::new(commands.into_iter().map(Command::into_inner).collect());
        self.invoke_request(CreatePipeline::new(ps)).await
    }

    /// Starts a pipeline from a full CREATE_PIPELINE request (input, merges, host).
    pub async fn invoke_request(&self, request: CreatePipeline) -> Result<Pipeline, Error> {
        self.start(Request::Pipeline(Box::new(request))).await
    }

    /// Lists the commands the endpoint offers (GET_COMMAND_METADATA): the output is a count
    /// followed by one `CommandMetadata` object per command matching `names` (wildcards).
    pub async fn get_command_metadata(&self, names: Vec<String>) -> Result<Pipeline, Error> {
        let request = GetCommandMetadata {
            names,
            // Alias, Function, Filter, Cmdlet, ExternalScript, Application, Script, Workflow
            // and Configuration: everything.
            command_type: 0x1FF,
            namespace: None,
            argument_list: None,
        };
        self.start(Request::Metadata(request)).await
    }

    async fn start(&self, request: Request) -> Result<Pipeline, Error> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send(Cmd::Invoke {
                request,
                events: events_tx,
                done: done_tx,
            })
            .map_err(|_| Error::Closed)?;
        let id = done_rx.await.map_err(|_| Error::Closed)??;
        Ok(Pipeline {
            id,
            tx: self.tx.clone(),
            events: events_rx,
        })
    }

    /// Closes the pool: stops running pipelines and deletes the shell.
    pub async fn close(self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Close(tx)).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Pipeline {
    /// The pipeline id (the WS-Man CommandId).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The next event; `None` after [`PipelineEvent::Finished`].
    pub async fn next_event(&mut self) -> Option<Result<PipelineEvent, Error>> {
        self.events.recv().await
    }

    /// Sends one input object (for pipelines created with input).
    pub fn send_input(&self, value: Value) -> Result<(), Error> {
        self.tx
            .send(Cmd::Input(self.id, value))
            .map_err(|_| Error::Closed)
    }

    /// Ends the input.
    pub fn end_input(&self) -> Result<(), Error> {
        self.tx
            .send(Cmd::EndInput(self.id))
            .map_err(|_| Error::Closed)
    }

    /// Asks the server to stop the pipeline; a `Finished { state: Stopped }` follows.
    pub fn stop(&self) -> Result<(), Error> {
        self.tx.send(Cmd::Stop(self.id)).map_err(|_| Error::Closed)
    }

    /// Answers a host call.
    pub fn host_reply(&self, reply: HostReply) -> Result<(), Error> {
        self.tx
            .send(Cmd::HostReply(reply))
            .map_err(|_| Error::Closed)
    }

    /// Waits for the pipeline to finish and returns everything it produced.
    pub async fn collect(mut self) -> Result<PipelineResult, Error> {
        let mut result = PipelineResult::default();
        while let Some(ev) = self.events.recv().await {
            match ev? {
                PipelineEvent::Output(v) => result.output.push(v),
                PipelineEvent::Record { kind, value } => result.records.push((kind, value)),
                PipelineEvent::HostCall(call) => {
                    if call.needs_reply() {
                        // Nobody to ask: report the method as not implemented.
                        let reply = call.fail(Value::Str("host method not implemented".into()));
                        self.host_reply(reply)?;
                    }
                }
                PipelineEvent::Finished {
                    state,
                    error_record,
                } => {
                    result.state = Some(state);
                    result.error_record = error_record;
                }
            }
        }
        Ok(result)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Stop a pipeline nobody listens to any more; harmless once it has finished.
        let _ = self.tx.send(Cmd::Stop(self.id));
    }
}

impl futures_core::Stream for Pipeline {
    type Item = Result<PipelineEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// The driver: the boring loop around the machine.
struct Driver {
    session: Session,
    http: HttpClient,
    observer: Option<Arc<dyn ExchangeObserver>>,
    url: url::Url,
    pipelines: HashMap<Uuid, mpsc::UnboundedSender<Result<PipelineEvent, Error>>>,
    closers: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Driver {
    /// Sends the machine's next request and hands it the answer. `Ok(false)` when the
    /// machine has nothing to send.
    async fn step(&mut self) -> Result<bool, Error> {
        let Some(req) = self.session.poll_request()? else {
            return Ok(false);
        };
        let http_req = HttpRequest::winrm(self.url.clone(), req.body);
        let sent = if req.operation == Operation::Create {
            self.http.send_following(http_req.clone()).await
        } else {
            self.http.send(http_req.clone()).await
        };
        if let Some(obs) = &self.observer {
            match &sent {
                Ok(resp) => obs.on_exchange(&http_req, Ok(resp)),
                Err(e) => obs.on_exchange(&http_req, Err(&e.to_string())),
            }
        }
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let msg = e.to_string();
                let _ = self.session.handle_transport_error(&msg);
                return Err(e.into());
            }
        };
        if req.operation == Operation::Create && resp.url != self.url {
            tracing::debug!(
                host = resp.url.host_str().unwrap_or(""),
                "session moved after redirect"
            );
            self.url = resp.url.clone();
            self.session.set_endpoint(resp.url.to_string());
        }
        if resp.status == 401 {
            let _ = self.session.handle_transport_error("HTTP 401");
            return Err(Error::Unauthorized {
                host: resp.url.host_str().unwrap_or("").to_owned(),
                hint: "check the user name and the token's audience, roles and expiry (rps token inspect)",
            });
        }
        self.session.handle_response(resp.status, &resp.body)?;
        Ok(true)
    }

    async fn open(&mut self) -> Result<String, Error> {
        loop {
            if !self.step().await? {
                return Err(Error::NotOpened(self.session.pool().state()));
            }
            while let Some(ev) = self.session.poll_event() {
                match ev {
                    SessionEvent::Opened { protocol_version } => return Ok(protocol_version),
                    SessionEvent::PoolState { state, .. } => return Err(Error::NotOpened(state)),
                    _ => {}
                }
            }
        }
    }

    fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Invoke {
                request,
                events,
                done,
            } => {
                let id = Uuid::new_v4();
                let started = match request {
                    Request::Pipeline(r) => self.session.invoke(id, *r),
                    Request::Metadata(r) => self.session.get_command_metadata(id, r),
                };
                match started {
                    Ok(()) => {
                        self.pipelines.insert(id, events);
                        let _ = done.send(Ok(id));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Cmd::Input(id, v) => {
                let r = self.session.send_input(id, v).map_err(Error::from);
                self.report(id, r);
            }
            Cmd::EndInput(id) => {
                let r = self.session.end_input(id).map_err(Error::from);
                self.report(id, r);
            }
            Cmd::Stop(id) => {
                if self.pipelines.contains_key(&id) {
                    let _ = self.session.stop(id);
                }
            }
            Cmd::HostReply(reply) => {
                let id = reply.pipeline_id;
                let r = self.session.host_reply(reply);
                if let Some(id) = id {
                    self.report(id, r.map_err(Error::from));
                }
            }
            Cmd::Close(done) => {
                self.session.close();
                self.closers.push(done);
            }
        }
    }

    fn report(&mut self, id: Uuid, r: Result<(), Error>) {
        if let Err(e) = r
            && let Some(tx) = self.pipelines.get(&id)
        {
            let _ = tx.send(Err(e));
        }
    }

    fn dispatch(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            let (id, event) = match ev {
                SessionEvent::Output { pipeline_id, value } => {
                    (pipeline_id, Ok(PipelineEvent::Output(value)))
                }
                SessionEvent::Record {
                    pipeline_id,
                    kind,
                    value,
                } => (pipeline_id, Ok(PipelineEvent::Record { kind, value })),
                SessionEvent::HostCall(call) => match call.pipeline_id {
                    Some(id) => (id, Ok(PipelineEvent::HostCall(call))),
                    None => {
                        // Pool-level host calls have no listener: fail those that wait.
                        if call.needs_reply() {
                            let reply = call.fail(Value::Str("host method not implemented".into()));
                            let _ = self.session.host_reply(reply);
                        }
                        continue;
                    }
                },
                SessionEvent::PipelineFinished {
                    pipeline_id,
                    state,
                    error_record,
                } => {
                    if let Some(tx) = self.pipelines.remove(&pipeline_id) {
                        let _ = tx.send(Ok(PipelineEvent::Finished {
                            state,
                            error_record,
                        }));
                    }
                    continue;
                }
                SessionEvent::PipelineError {
                    pipeline_id,
                    message,
                } => {
                    if let Some(tx) = self.pipelines.remove(&pipeline_id) {
                        let _ = tx.send(Err(Error::Session(SessionError::Transport {
                            operation: "pipeline",
                            message,
                        })));
                    }
                    continue;
                }
                SessionEvent::Closed => {
                    for done in self.closers.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(tx) = self.pipelines.get(&id) {
                let _ = tx.send(event);
            }
        }
    }

    fn fail_all(&mut self, e: &Error) {
        for (_, tx) in self.pipelines.drain() {
            let _ = tx.send(Err(Error::Session(SessionError::Transport {
                operation: "session",
                message: e.to_string(),
            })));
        }
        for done in self.closers.drain(..) {
            let _ = done.send(Err(Error::Session(SessionError::Transport {
                operation: "close",
                message: e.to_string(),
            })));
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut handles_gone = false;
        let mut transient_failures = 0u32;
        loop {
            while let Ok(cmd) = rx.try_recv() {
                self.apply(cmd);
            }
            match self.step().await {
                Ok(true) => transient_failures = 0,
                Ok(false) => {
                    self.dispatch();
                    if self.session.phase() == crate::machine::Phase::Closed
                        || self.session.phase() == crate::machine::Phase::Failed
                    {
                        self.fail_all(&Error::Closed);
                        return;
                    }
                    if handles_gone {
                        self.session.close();
                        continue;
                    }
                    match rx.recv().await {
                        Some(cmd) => self.apply(cmd),
                        None => {
                            handles_gone = true;
                            self.session.close();
                        }
                    }
                    continue;
                }
                Err(e) => {
                    // A failed Receive is retried a few times: the server keeps the output.
                    let retryable = matches!(
                        &e,
                        Error::Session(SessionError::Transport {
                            operation: "Receive",
                            ..
                        })
                    ) || matches!(&e, Error::Http(ClientError::Transport(_)))
                        && self.session.phase() == crate::machine::Phase::Opened;
                    transient_failures += 1;
                    if retryable && transient_failures <= 3 {
                        tracing::debug!(error = %e, "retrying after a transport failure");
                        continue;
                    }
                    tracing::debug!(error = %e, "session failed");
                    self.dispatch();
                    self.fail_all(&e);
                    if self.session.phase() != crate::machine::Phase::Closed {
                        // Best effort: delete the shell so it does not linger on the server.
                        self.session.close();
                        let _ = self.step().await;
                    }
                    return;
                }
            }
            self.dispatch();
        }
    }
}
