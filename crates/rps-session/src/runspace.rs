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
//!
//! # Failures
//!
//! - Commands (stop, input, close, new pipelines) are applied to the machine while a
//!   Receive long-poll is in flight; a stop goes out at once as a Signal on a second
//!   connection, so stopping never waits for the long-poll.
//! - A Receive that fails in transit (dropped connection, 503) is sent again, up to
//!   [`RetryPolicy::receive_attempts`] times in a row: the server keeps undelivered output,
//!   so nothing is lost or repeated.
//! - A fault on a pipeline's Command, Send or Receive fails that pipeline with a typed
//!   error naming the operation ([`Error::operation`]); the pool lives on. A fault that
//!   ends the shell (it was deleted on the server: [`Error::is_shell_gone`]) fails every
//!   pipeline.
//! - Creating the shell is retried on Exchange's MaxConcurrency fault and on HTTP 503
//!   (honouring `Retry-After`) per [`ConnectOptions::retry`].
//! - With OAuth credentials, a shell is replaced by a new one before the next command when
//!   the token it was created with is about to expire
//!   ([`ConnectOptions::token_refresh_margin`]), as the Exchange module's implicit remoting
//!   does; and when the server answers 401 on a Command, the pool is rebuilt and the
//!   command sent again. A pipeline that had already produced output when its shell was
//!   refused ends with [`Error::Unauthorized`], never with silently short output.
//! - After any fatal error, on close, and when the last handle is dropped, the shell is
//!   deleted.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rps_psrp::clixml::Value;
use rps_psrp::event::{HostReply, PendingHostCall, RecordKind};
use rps_psrp::messages::{
    Availability, CreatePipeline, GetCommandMetadata, PowerShell, PsInvocationState,
    RunspacePoolState,
};
use rps_psrp::pool::PoolConfig;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::enumerate::{ShellLister, ShellListing};
use crate::http::{
    ClientError, Credentials, Endpoint, HttpClient, HttpRequest, HttpResponse, RedirectPolicy,
    Transport, TransportConfig, TransportError,
};
use crate::machine::{
    IdSource, Operation, Phase, Session, SessionConfig, SessionError, SessionEvent, WsmanRequest,
};
use crate::token::{Clock, SystemClock};

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
    /// Further WS-Man options on the Create, e.g. `("WINRS_NOPROFILE", "TRUE")`.
    pub create_options: Vec<(String, String)>,
    /// Retries of the shell's creation and of failed Receives.
    pub retry: RetryPolicy,
    /// With OAuth credentials: replace the shell by a new one before the next command once
    /// the token it was created with expires within this margin (`None`: never). Default
    /// five minutes.
    pub token_refresh_margin: Option<Duration>,
    /// The clock token expiry is judged by (default the system clock).
    pub clock: Arc<dyn Clock>,
    /// Read the server's WinRM configuration before creating the shell and use its
    /// maximum envelope size (for servers configured below the usual 150 KiB).
    pub read_server_config: bool,
    /// Limits on the envelopes the server sends (size, nesting, streams).
    pub wsman_limits: rps_wsman::Limits,
    /// The WS-Man session id (`wsmv:SessionId`) the requests carry (`None`: a fresh random
    /// one per pool). Pools and listings that share one, as requests of one client
    /// connection, can be told apart by the server only by their ShellId.
    pub session_id: Option<Uuid>,
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts to create the runspace pool, the first included, when the server refuses
    /// with Exchange's MaxConcurrency fault or HTTP 503 (1: no retry, the default).
    pub attempts: u32,
    /// The delay before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// The longest delay, also the cap on a server's `Retry-After`.
    pub max_delay: Duration,
    /// Consecutive failed Receives (connection dropped, timed out, HTTP 503) sent again
    /// before the session is given up (default 8).
    pub receive_attempts: u32,
}

impl Default for RetryPolicy {
    /// One creation attempt; 8 Receive attempts; delays from 500 ms to 10 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            receive_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// `attempts` creation attempts with delays from `base_delay` doubling up to
    /// `max_delay`.
    pub fn new(attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            attempts,
            base_delay,
            max_delay,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `attempt` (2 for the first retry), at least the server's
    /// `Retry-After`, never more than [`RetryPolicy::max_delay`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(2).min(20);
        let backoff = self.base_delay.saturating_mul(1u32 << exp);
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
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
            create_options: Vec::new(),
            retry: RetryPolicy::default(),
            token_refresh_margin: Some(Duration::from_secs(300)),
            clock: Arc::new(SystemClock),
            read_server_config: false,
            wsman_limits: rps_wsman::Limits::default(),
            session_id: None,
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
    /// A WS-Man request could not be exchanged (connect, TLS, timeout, token).
    #[error("{operation}: {source}")]
    Request {
        /// The operation (`Create`, `Receive`, `Command`, `Send`, `Signal`, `Delete`).
        operation: &'static str,
        /// The cause.
        source: Box<ClientError>,
    },
    /// The session failed, for this pipeline (or close) and every other: the cause.
    #[error("the session failed: {0}")]
    SessionFailed(Arc<Error>),
    /// The server did not send the session key within the time given to
    /// [`RunspacePool::exchange_key`].
    #[error("the server sent no session key within {0:?}")]
    KeyExchangeTimeout(Duration),
    /// The session key could not be made.
    #[error("could not make the session key pair: {0}")]
    KeyGeneration(String),
}

impl Error {
    fn root(&self) -> &Error {
        match self {
            Error::SessionFailed(e) => e.root(),
            e => e,
        }
    }

    /// True for Exchange's throttle on concurrent runspaces.
    pub fn is_max_concurrency(&self) -> bool {
        matches!(self.root(), Error::Session(e) if e.is_max_concurrency())
    }

    /// The WS-Man operation that failed, when known (`Create`, `Receive`, `Command`,
    /// `Send`, `Signal`, `Delete`).
    pub fn operation(&self) -> Option<&'static str> {
        match self.root() {
            Error::Session(e) => e.operation(),
            Error::Request { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// True when a request got no complete answer within
    /// [`TransportConfig::request_timeout`] (or the connect timeout).
    pub fn is_timeout(&self) -> bool {
        let client = match self.root() {
            Error::Request { source, .. } => &**source,
            Error::Http(source) => source,
            _ => return false,
        };
        matches!(
            client,
            ClientError::Transport(
                TransportError::Timeout { .. } | TransportError::ConnectTimeout { .. }
            )
        )
    }

    /// True when the server refused the credentials (HTTP 401, also after a token refresh).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.root(), Error::Unauthorized { .. })
    }

    /// True when the server no longer knows the shell (it was deleted or expired there).
    pub fn is_shell_gone(&self) -> bool {
        matches!(self.root(), Error::Session(e) if e.is_shell_gone())
    }

    /// The HTTP status the server refused with, when the refusal was an HTTP status (e.g.
    /// 503) rather than a SOAP fault.
    pub fn http_status(&self) -> Option<u16> {
        match self.root() {
            Error::Session(e) => e.http_status(),
            Error::Unauthorized { .. } => Some(401),
            _ => None,
        }
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

#[derive(Clone)]
enum Request {
    Pipeline(Box<CreatePipeline>),
    Metadata(GetCommandMetadata),
    /// A pipeline this client took over (it cannot be started again).
    Attached,
}

/// The error for a second call while the first waits.
fn busy(action: &'static str) -> Error {
    Error::Session(SessionError::State {
        action,
        state: "busy with the same request",
    })
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
    PoolCall(PoolCall, oneshot::Sender<Result<Availability, Error>>),
    Close(oneshot::Sender<Result<(), Error>>),
    ShellState(oneshot::Sender<Result<bool, Error>>),
    Disconnect(oneshot::Sender<Result<(), Error>>),
    Reconnect(oneshot::Sender<Result<(), Error>>),
    ExchangeKey(Box<rsa::RsaPrivateKey>, oneshot::Sender<Result<(), Error>>),
    CancelKeyExchange,
    Attach {
        id: Uuid,
        connect: bool,
        events: mpsc::UnboundedSender<Result<PipelineEvent, Error>>,
        done: oneshot::Sender<Result<Uuid, Error>>,
    },
}

/// Callers waiting for the answer to a single shell operation.
#[derive(Default)]
struct Waiters {
    state: Option<oneshot::Sender<Result<bool, Error>>>,
    disconnect: Option<oneshot::Sender<Result<(), Error>>>,
    reconnect: Option<oneshot::Sender<Result<(), Error>>>,
    key: Option<oneshot::Sender<Result<(), Error>>>,
}

impl Waiters {
    /// Tells everyone waiting that the session failed.
    fn fail(&mut self, shared: &Arc<Error>) {
        if let Some(w) = self.state.take() {
            let _ = w.send(Err(Error::SessionFailed(shared.clone())));
        }
        for w in [
            self.disconnect.take(),
            self.reconnect.take(),
            self.key.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = w.send(Err(Error::SessionFailed(shared.clone())));
        }
    }
}

/// A call-id request on the pool.
#[derive(Debug, Clone, Copy)]
enum PoolCall {
    SetMax(i32),
    SetMin(i32),
    Available,
    Reset,
}

/// An open runspace pool. Dropping it closes the pool (the shell is deleted in the
/// background); [`RunspacePool::close`] does the same and waits. A pool dropped while
/// disconnected ([`RunspacePool::disconnect`]) is left on the server, to be taken over later
/// with [`RunspacePool::connect_disconnected`].
#[derive(Debug)]
pub struct RunspacePool {
    tx: mpsc::UnboundedSender<Cmd>,
    shell_id: Arc<Mutex<Uuid>>,
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

/// The HTTP client `options` ask for.
fn http_client(options: &ConnectOptions) -> Result<HttpClient, Error> {
    let transport = Transport::new(options.transport.clone())?;
    let policy = if options.endpoint.allow_redirection {
        RedirectPolicy::follow()
    } else {
        RedirectPolicy::none()
    };
    Ok(HttpClient::new(transport, options.credentials.clone())
        .with_redirect_policy(policy)
        .allow_insecure_http(options.allow_insecure_http))
}

/// The machine's configuration from `options`, with a fresh WS-Man session id.
fn session_config(options: &ConnectOptions) -> SessionConfig {
    let mut config = SessionConfig::new(
        options.endpoint.url.to_string(),
        &options.endpoint.configuration,
    );
    config.pool = options.pool.clone();
    config.operation_timeout_secs = options.operation_timeout_secs;
    config.max_envelope_size = options.max_envelope_size;
    config.create_options = options.create_options.clone();
    config.session_id = Some(options.session_id.unwrap_or_else(Uuid::new_v4));
    config.read_server_config = options.read_server_config;
    config.wsman_limits = options.wsman_limits.clone();
    config
}

/// Lists the user's shells of the endpoint's configuration on the server, with their
/// commands (WS-Enumeration, following Pulls): how to find pools disconnected earlier, by
/// this process or another, to take them over with [`RunspacePool::connect_disconnected`].
pub async fn list_shells(options: &ConnectOptions) -> Result<Vec<ShellListing>, Error> {
    let mut http = http_client(options)?;
    let config = session_config(options);
    let mut lister = ShellLister::new(&config, Box::new(RandomIds));
    while let Some(req) = lister.poll_request() {
        let resp = send_plain(
            &mut http,
            options.observer.clone(),
            options.endpoint.url.clone(),
            &req,
        )
        .await?;
        lister.handle_response(resp.status, &resp.body)?;
    }
    Ok(lister.finish())
}

/// Sends one request outside a pool's driver; a 401 is an authentication error.
async fn send_plain(
    http: &mut HttpClient,
    observer: Option<Arc<dyn ExchangeObserver>>,
    url: url::Url,
    req: &WsmanRequest,
) -> Result<HttpResponse, Error> {
    let resp = exchange(http, observer, url, req)
        .await
        .map_err(|source| Error::Request {
            operation: req.operation.name(),
            source: Box::new(source),
        })?;
    if resp.status == 401 {
        return Err(Error::Unauthorized {
            host: resp.url.host_str().unwrap_or("").to_owned(),
            hint: "check the user name and the token's audience, roles and expiry (rps token inspect)",
        });
    }
    Ok(resp)
}

impl RunspacePool {
    /// Connects: creates the shell (following a redirect when allowed), opens the pool and
    /// waits until it is Opened. The creation is retried per [`ConnectOptions::retry`].
    pub async fn connect(options: ConnectOptions) -> Result<RunspacePool, Error> {
        Self::start_driver(options, None).await
    }

    /// Takes over the disconnected pool `shell_id` (left by [`RunspacePool::disconnect`]
    /// here or by another client): a WS-Man Connect, then the pool's settings and state
    /// from the server. Pipelines it still runs are taken over with
    /// [`RunspacePool::connect_pipeline`]. Needs a protocol 2.2 server (PowerShell 3+).
    pub async fn connect_disconnected(
        options: ConnectOptions,
        shell_id: Uuid,
    ) -> Result<RunspacePool, Error> {
        Self::start_driver(options, Some(shell_id)).await
    }

    async fn start_driver(
        options: ConnectOptions,
        takeover: Option<Uuid>,
    ) -> Result<RunspacePool, Error> {
        let http = http_client(&options)?;
        let config = session_config(&options);
        let mut session = Session::new(
            config.clone(),
            takeover.unwrap_or_else(Uuid::new_v4),
            Box::new(RandomIds),
        );
        match takeover {
            Some(_) => session.connect()?,
            None => session.open()?,
        }
        let shell_id = Arc::new(Mutex::new(session.shell_id()));
        let mut driver = Driver {
            http,
            signal_http: None,
            transport_config: options.transport,
            credentials: options.credentials,
            allow_insecure_http: options.allow_insecure_http,
            st: State {
                session,
                template: config,
                observer: options.observer,
                url: options.endpoint.url.clone(),
                start_url: options.endpoint.url,
                pipelines: HashMap::new(),
                closers: Vec::new(),
                calls: HashMap::new(),
                pending: VecDeque::new(),
                typed: HashMap::new(),
                retry: options.retry,
                margin: options.token_refresh_margin,
                clock: options.clock,
                shell_expiry: None,
                retry_after: None,
                shell_id: shell_id.clone(),
                rebuild: false,
                takeover,
                waiters: Waiters::default(),
            },
        };
        let protocol_version = driver.connect_with_retries().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(driver.run(rx));
        Ok(RunspacePool {
            tx,
            shell_id,
            protocol_version,
        })
    }

    /// The WS-Man ShellId (it changes when the pool is rebuilt after a token expired).
    pub fn shell_id(&self) -> Uuid {
        *self.shell_id.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Sets the pool's maximum runspaces; the server's answer says whether it agreed.
    pub async fn set_max_runspaces(&self, max: i32) -> Result<bool, Error> {
        match self.pool_call(PoolCall::SetMax(max)).await? {
            Availability::Success(ok) => Ok(ok),
            Availability::Count(n) => Ok(n != 0),
        }
    }

    /// Sets the pool's minimum runspaces; the server's answer says whether it agreed.
    pub async fn set_min_runspaces(&self, min: i32) -> Result<bool, Error> {
        match self.pool_call(PoolCall::SetMin(min)).await? {
            Availability::Success(ok) => Ok(ok),
            Availability::Count(n) => Ok(n != 0),
        }
    }

    /// How many runspaces of the pool are free.
    pub async fn available_runspaces(&self) -> Result<i64, Error> {
        match self.pool_call(PoolCall::Available).await? {
            Availability::Count(n) => Ok(n),
            Availability::Success(ok) => Ok(i64::from(ok)),
        }
    }

    /// Resets the runspace state (variables, functions; protocol 2.3); whether it worked.
    pub async fn reset_runspace_state(&self) -> Result<bool, Error> {
        match self.pool_call(PoolCall::Reset).await? {
            Availability::Success(ok) => Ok(ok),
            Availability::Count(n) => Ok(n != 0),
        }
    }

    async fn pool_call(&self, call: PoolCall) -> Result<Availability, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::PoolCall(call, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Asks the server whether the shell still exists and is connected (a WS-Transfer Get
    /// of the shell). `Ok(false)` when the server no longer knows it, reports it
    /// disconnected by someone else, times out or cannot be reached: the pool is then over
    /// (nothing is deleted) and later calls fail with [`Error::Closed`]. Other faults come
    /// back as errors and leave the pool as it was. Waits for a Receive in flight first.
    pub async fn is_alive(&self) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::ShellState(tx)).is_err() {
            return Ok(false);
        }
        rx.await.unwrap_or(Ok(false))
    }

    /// Disconnects the shell: it stays on the server with its running pipelines (for the
    /// server's idle timeout) and nothing is sent until [`RunspacePool::reconnect`]; another
    /// client can take it over with [`RunspacePool::connect_disconnected`] and this pool's
    /// [`RunspacePool::shell_id`]. Needs a protocol 2.2 server (PowerShell 3+).
    pub async fn disconnect(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Disconnect(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Reconnects a shell this pool disconnected; its pipelines carry on.
    pub async fn reconnect(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Reconnect(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Exchanges a session key with the server (PUBLIC_KEY, ENCRYPTED_SESSION_KEY), so
    /// that SecureStrings can be sent and read; makes a 2048-bit RSA key pair first (on a
    /// blocking thread). Fails with [`Error::KeyExchangeTimeout`] when the server sends no
    /// key within `timeout`; the pool is still usable then.
    pub async fn exchange_key(&self, timeout: Duration) -> Result<(), Error> {
        let key = tokio::task::spawn_blocking(|| {
            let mut rng = rsa::rand_core::OsRng;
            rsa::RsaPrivateKey::new(&mut rng, 2048)
        })
        .await
        .map_err(|e| Error::KeyGeneration(e.to_string()))?
        .map_err(|e| Error::KeyGeneration(e.to_string()))?;
        self.exchange_key_with(key, timeout).await
    }

    /// [`RunspacePool::exchange_key`] with a key pair the caller made.
    pub async fn exchange_key_with(
        &self,
        key: rsa::RsaPrivateKey,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::ExchangeKey(Box::new(key), tx))
            .map_err(|_| Error::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(answer) => answer.map_err(|_| Error::Closed)?,
            Err(_) => {
                let _ = self.tx.send(Cmd::CancelKeyExchange);
                Err(Error::KeyExchangeTimeout(timeout))
            }
        }
    }

    /// Takes over pipeline `pipeline_id` (its CommandId) of a pool taken over with
    /// [`RunspacePool::connect_disconnected`]: a WS-Man Connect to the command, then its
    /// remaining output arrives as for a pipeline started here.
    pub async fn connect_pipeline(&self, pipeline_id: Uuid) -> Result<Pipeline, Error> {
        self.attach(pipeline_id, true).await
    }

    /// Reads the output of pipeline `pipeline_id`, running in this shell but started by
    /// another connection, without a WS-Man Connect. A server that does not know the
    /// command fails the returned pipeline with its fault.
    pub async fn attach_pipeline(&self, pipeline_id: Uuid) -> Result<Pipeline, Error> {
        self.attach(pipeline_id, false).await
    }

    async fn attach(&self, id: Uuid, connect: bool) -> Result<Pipeline, Error> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send(Cmd::Attach {
                id,
                connect,
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

type Listener = mpsc::UnboundedSender<Result<PipelineEvent, Error>>;

/// An HTTP exchange in flight; the signal connection's owns its client and hands it back.
type SendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to a Signal sent on the second connection, with that connection's client.
type SignalOutcome = (HttpClient, Result<HttpResponse, ClientError>);

/// A pipeline the driver delivers events to.
struct Piped {
    tx: Listener,
    /// Kept to start the pipeline again on a rebuilt pool, when the old one never ran it.
    request: Request,
}

/// The driver's state beside its HTTP clients (so both can be borrowed at once).
struct State {
    session: Session,
    template: SessionConfig,
    observer: Option<Arc<dyn ExchangeObserver>>,
    /// Where requests go (the pod after a redirect).
    url: url::Url,
    /// The endpoint as configured, for new shells.
    start_url: url::Url,
    pipelines: HashMap<Uuid, Piped>,
    closers: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Pool calls waiting for their answer, by call id.
    calls: HashMap<i64, oneshot::Sender<Result<Availability, Error>>>,
    /// Pipelines to start once the pool has been rebuilt.
    pending: VecDeque<Uuid>,
    /// Typed errors that replace the machine's text of a pipeline's failure.
    typed: HashMap<Uuid, Error>,
    retry: RetryPolicy,
    margin: Option<Duration>,
    clock: Arc<dyn Clock>,
    /// When the token the shell was created with expires.
    shell_expiry: Option<SystemTime>,
    /// The last response's `Retry-After`.
    retry_after: Option<Duration>,
    shell_id: Arc<Mutex<Uuid>>,
    /// Replace the shell by a new one before the next request.
    rebuild: bool,
    /// The disconnected shell this driver took over, instead of creating one.
    takeover: Option<Uuid>,
    waiters: Waiters,
}

impl State {
    fn new_session(&mut self) -> Result<Session, Error> {
        self.url = self.start_url.clone();
        let id = self.takeover.unwrap_or_else(Uuid::new_v4);
        let mut session = Session::new(self.template.clone(), id, Box::new(RandomIds));
        match self.takeover {
            Some(_) => session.connect()?,
            None => session.open()?,
        }
        Ok(session)
    }

    fn token_expiring(&self) -> bool {
        match (self.margin, self.shell_expiry) {
            (Some(margin), Some(expiry)) => self
                .clock
                .now()
                .checked_add(margin)
                .is_none_or(|t| t >= expiry),
            _ => false,
        }
    }

    fn start_pipeline(&mut self, id: Uuid, request: Request) -> Result<(), SessionError> {
        match request {
            Request::Pipeline(r) => self.session.invoke(id, *r),
            Request::Metadata(r) => self.session.get_command_metadata(id, r),
            Request::Attached => Err(SessionError::State {
                action: "start a pipeline taken over from another client again",
                state: "rebuilt",
            }),
        }
    }

    fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::PoolCall(call, done) => {
                let s = &mut self.session;
                let started = match call {
                    PoolCall::SetMax(n) => s.set_max_runspaces(n),
                    PoolCall::SetMin(n) => s.set_min_runspaces(n),
                    PoolCall::Available => s.get_available_runspaces(),
                    PoolCall::Reset => s.reset_runspace_state(),
                };
                match started {
                    Ok(call_id) => {
                        self.calls.insert(call_id, done);
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Cmd::Invoke {
                request,
                events,
                done,
            } => {
                if !self.session.is_alive() {
                    let _ = done.send(Err(Error::Closed));
                    return;
                }
                let id = Uuid::new_v4();
                if self.rebuild
                    || (self.token_expiring() && self.session.running_pipelines().is_empty())
                {
                    // A new shell first: its token is about to expire (or was refused).
                    self.rebuild = true;
                    self.pending.push_back(id);
                    self.pipelines.insert(
                        id,
                        Piped {
                            tx: events,
                            request,
                        },
                    );
                    let _ = done.send(Ok(id));
                    return;
                }
                match self.start_pipeline(id, request.clone()) {
                    Ok(()) => {
                        self.pipelines.insert(
                            id,
                            Piped {
                                tx: events,
                                request,
                            },
                        );
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
                if self.pending.contains(&id) {
                    self.pending.retain(|p| *p != id);
                    if let Some(p) = self.pipelines.remove(&id) {
                        let _ = p.tx.send(Ok(PipelineEvent::Finished {
                            state: PsInvocationState::Stopped,
                            error_record: None,
                        }));
                    }
                } else if self.pipelines.contains_key(&id) {
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
                self.close_now();
                self.closers.push(done);
            }
            Cmd::ShellState(done) => {
                if !self.session.is_alive() {
                    let _ = done.send(Ok(false));
                } else if self.waiters.state.is_some() {
                    let _ = done.send(Err(busy("query the shell state")));
                } else {
                    match self.session.query_shell_state() {
                        Ok(()) => self.waiters.state = Some(done),
                        Err(e) => {
                            let _ = done.send(Err(e.into()));
                        }
                    }
                }
            }
            Cmd::Disconnect(done) => {
                if self.waiters.disconnect.is_some() {
                    let _ = done.send(Err(busy("disconnect")));
                    return;
                }
                match self.session.disconnect() {
                    Ok(()) => self.waiters.disconnect = Some(done),
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Cmd::Reconnect(done) => {
                if self.waiters.reconnect.is_some() {
                    let _ = done.send(Err(busy("reconnect")));
                    return;
                }
                match self.session.reconnect() {
                    Ok(()) => self.waiters.reconnect = Some(done),
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Cmd::ExchangeKey(key, done) => {
                if self.waiters.key.is_some() {
                    let _ = done.send(Err(busy("exchange keys")));
                    return;
                }
                match self.session.exchange_key(*key) {
                    Ok(()) => self.waiters.key = Some(done),
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Cmd::CancelKeyExchange => {
                self.session.cancel_key_exchange();
                self.waiters.key = None;
            }
            Cmd::Attach {
                id,
                connect,
                events,
                done,
            } => {
                let r = if connect {
                    self.session.connect_pipeline(id)
                } else {
                    self.session.attach_pipeline(id)
                };
                match r {
                    Ok(()) => {
                        self.pipelines.insert(
                            id,
                            Piped {
                                tx: events,
                                request: Request::Attached,
                            },
                        );
                        let _ = done.send(Ok(id));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
        }
    }

    /// Stops everything and queues the Delete.
    fn close_now(&mut self) {
        self.rebuild = false;
        for id in self.pending.drain(..) {
            if let Some(p) = self.pipelines.remove(&id) {
                let _ = p.tx.send(Err(Error::Closed));
            }
        }
        self.session.close();
    }

    fn report(&mut self, id: Uuid, r: Result<(), Error>) {
        if let Err(e) = r
            && let Some(p) = self.pipelines.get(&id)
        {
            let _ = p.tx.send(Err(e));
        }
    }

    /// Delivers the machine's events; `quiet` drops pipeline failures (the caller reports
    /// its own error).
    fn dispatch(&mut self, quiet: bool) {
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
                    if let Some(p) = self.pipelines.remove(&pipeline_id) {
                        let _ = p.tx.send(Ok(PipelineEvent::Finished {
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
                    let typed = self.typed.remove(&pipeline_id);
                    if quiet {
                        continue;
                    }
                    if let Some(p) = self.pipelines.remove(&pipeline_id) {
                        let e = typed.unwrap_or(Error::Session(SessionError::Transport {
                            operation: "pipeline",
                            message,
                        }));
                        let _ = p.tx.send(Err(e));
                    }
                    continue;
                }
                SessionEvent::Availability { call_id, response } => {
                    if let Some(done) = self.calls.remove(&call_id) {
                        let _ = done.send(Ok(response));
                    }
                    continue;
                }
                SessionEvent::Closed => {
                    for done in self.closers.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                SessionEvent::ShellState { alive, .. } => {
                    if let Some(w) = self.waiters.state.take() {
                        let _ = w.send(Ok(alive));
                    }
                    continue;
                }
                SessionEvent::Disconnected => {
                    if let Some(w) = self.waiters.disconnect.take() {
                        let _ = w.send(Ok(()));
                    }
                    continue;
                }
                SessionEvent::Reconnected => {
                    if let Some(w) = self.waiters.reconnect.take() {
                        let _ = w.send(Ok(()));
                    }
                    continue;
                }
                SessionEvent::SessionKeyReady => {
                    if let Some(w) = self.waiters.key.take() {
                        let _ = w.send(Ok(()));
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(p) = self.pipelines.get(&id) {
                let _ = p.tx.send(event);
            }
        }
        self.typed.clear();
    }

    /// Fails every pipeline and waiting close with `e`, after delivering what arrived.
    fn fail_all(&mut self, e: Error) {
        self.fail_all_with(Arc::new(e));
    }

    fn fail_all_with(&mut self, shared: Arc<Error>) {
        for done in self.closers.drain(..) {
            let _ = done.send(Err(Error::SessionFailed(shared.clone())));
        }
        self.dispatch(true);
        self.waiters.fail(&shared);
        self.pending.clear();
        for (_, p) in self.pipelines.drain() {
            let _ = p.tx.send(Err(Error::SessionFailed(shared.clone())));
        }
    }

    /// Takes the answer to the request in flight.
    fn absorb(
        &mut self,
        op: Operation,
        sent: Result<HttpResponse, ClientError>,
    ) -> Result<(), Error> {
        let resp = match sent {
            Ok(resp) => resp,
            Err(source) => {
                let _ = self.session.handle_transport_error(&source.to_string());
                if op == Operation::ShellState {
                    // Unreachable means "not alive": the machine has reported it.
                    return Ok(());
                }
                return Err(Error::Request {
                    operation: op.name(),
                    source: Box::new(source),
                });
            }
        };
        if follows_redirects(op) && resp.url != self.url {
            tracing::debug!(
                host = resp.url.host_str().unwrap_or(""),
                "session moved after redirect"
            );
            self.url = resp.url.clone();
            self.session.set_endpoint(resp.url.to_string());
        }
        self.retry_after = resp
            .headers
            .get("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if resp.status == 401 {
            let _ = self.session.handle_transport_error("HTTP 401");
            return Err(Error::Unauthorized {
                host: resp.url.host_str().unwrap_or("").to_owned(),
                hint: "check the user name and the token's audience, roles and expiry (rps token inspect)",
            });
        }
        self.session.handle_response(resp.status, &resp.body)?;
        Ok(())
    }
}

/// True for the requests that may meet Exchange Online's front door, which redirects a
/// session's first request to the tenant's pod: whatever opens a session (the Create, the
/// configuration Get before it, the Connect that takes a pool over) and shell listings.
fn follows_redirects(op: Operation) -> bool {
    matches!(
        op,
        Operation::Create
            | Operation::Config
            | Operation::Connect(None)
            | Operation::Enumerate
            | Operation::Pull
    )
}

/// Sends one WS-Man request with `http` (following redirects where
/// [`follows_redirects`] says so) and shows the exchange to the observer.
fn exchange<'a>(
    http: &'a mut HttpClient,
    observer: Option<Arc<dyn ExchangeObserver>>,
    url: url::Url,
    req: &WsmanRequest,
) -> SendFuture<'a, Result<HttpResponse, ClientError>> {
    let follow = follows_redirects(req.operation);
    let mut http_req = HttpRequest::winrm(url, req.body.clone());
    // A server that dropped the connection is not asked again whether the shell lives.
    http_req.reconnect_stale = req.operation != Operation::ShellState;
    Box::pin(async move {
        let sent = if follow {
            http.send_following(http_req.clone()).await
        } else {
            http.send(http_req.clone()).await
        };
        if let Some(obs) = &observer {
            match &sent {
                Ok(resp) => obs.on_exchange(&http_req, Ok(resp)),
                Err(e) => obs.on_exchange(&http_req, Err(&e.to_string())),
            }
        }
        sent
    })
}

async fn wait_signal(f: &mut Option<SendFuture<'static, SignalOutcome>>) -> SignalOutcome {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

enum Wake {
    Answer(Result<HttpResponse, ClientError>),
    Signal(Box<SignalOutcome>),
    Command(Option<Cmd>),
}

/// The driver: the boring loop around the machine.
struct Driver {
    http: HttpClient,
    /// The second connection, for a stop Signal while a Receive is in flight.
    signal_http: Option<HttpClient>,
    transport_config: TransportConfig,
    credentials: Option<Credentials>,
    allow_insecure_http: bool,
    st: State,
}

impl Driver {
    /// Sends the machine's next request and hands it the answer, one at a time (opening and
    /// deleting). `Ok(false)` when the machine has nothing to send.
    async fn step(&mut self) -> Result<bool, Error> {
        let Some(req) = self.st.session.poll_request()? else {
            return Ok(false);
        };
        let sent = exchange(
            &mut self.http,
            self.st.observer.clone(),
            self.st.url.clone(),
            &req,
        )
        .await;
        self.st.absorb(req.operation, sent)?;
        Ok(true)
    }

    /// Opens the machine's pool: Create, then Receives until it is Opened.
    async fn open(&mut self) -> Result<String, Error> {
        self.st.shell_expiry = token_expiry(self.credentials.clone()).await;
        let mut failures = 0;
        loop {
            match self.step().await {
                Ok(true) => failures = 0,
                Ok(false) => return Err(Error::NotOpened(self.st.session.pool().state())),
                Err(e) => {
                    failures += 1;
                    let transient = self.st.session.is_alive()
                        && self.st.session.shell_exists()
                        && is_transient(&e);
                    if !transient || failures >= self.st.retry.receive_attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(self.transient_delay(&e, failures)).await;
                }
            }
            while let Some(ev) = self.st.session.poll_event() {
                match ev {
                    SessionEvent::Opened { protocol_version } => return Ok(protocol_version),
                    SessionEvent::PoolState { state, .. } => return Err(Error::NotOpened(state)),
                    _ => {}
                }
            }
        }
    }

    fn transient_delay(&self, e: &Error, failures: u32) -> Duration {
        if e.http_status() == Some(503) {
            self.st.retry.delay(failures + 1, self.st.retry_after)
        } else {
            Duration::from_millis(20u64.saturating_mul(u64::from(failures)))
        }
    }

    /// Best effort: deletes the shell, if the server has one, and forgets the session.
    async fn cleanup(&mut self) {
        if !self.st.session.shell_exists() {
            return;
        }
        self.st.session.abandon();
        for _ in 0..4 {
            match self.step().await {
                Ok(true) if self.st.session.shell_exists() => {}
                _ => break,
            }
        }
    }

    /// Opens the pool, retrying the creation per the policy.
    async fn connect_with_retries(&mut self) -> Result<String, Error> {
        let mut attempt = 1;
        loop {
            match self.open().await {
                Ok(version) => {
                    *self
                        .st
                        .shell_id
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = self.st.session.shell_id();
                    return Ok(version);
                }
                Err(e) => {
                    self.cleanup().await;
                    let retryable = e.is_max_concurrency() || e.http_status() == Some(503);
                    if !retryable || attempt >= self.st.retry.attempts {
                        return Err(e);
                    }
                    attempt += 1;
                    let delay = self.st.retry.delay(attempt, self.st.retry_after.take());
                    tracing::debug!(error = %e, attempt, ?delay, "retrying the runspace pool's creation");
                    tokio::time::sleep(delay).await;
                    self.st.session = self.st.new_session()?;
                }
            }
        }
    }

    /// Replaces the shell by a new one and starts the pipelines waiting for it.
    async fn rebuild(&mut self) -> Result<(), Error> {
        tracing::debug!("rebuilding the runspace pool with a fresh token");
        self.cleanup().await;
        self.st.dispatch(true);
        self.st.session = self.st.new_session()?;
        self.connect_with_retries().await?;
        self.st.rebuild = false;
        while let Some(id) = self.st.pending.pop_front() {
            let Some(request) = self.st.pipelines.get(&id).map(|p| p.request.clone()) else {
                continue;
            };
            if let Err(e) = self.st.start_pipeline(id, request)
                && let Some(p) = self.st.pipelines.remove(&id)
            {
                let _ = p.tx.send(Err(e.into()));
            }
        }
        Ok(())
    }

    fn absorb_signal(&mut self, (client, sent): SignalOutcome) {
        self.signal_http = Some(client);
        absorb_signal_result(&mut self.st.session, sent);
    }

    /// Decides what an error means: `Ok` when the session goes on (retry, pipeline lost,
    /// pool to rebuild), `Err` when it is over.
    async fn recover(&mut self, op: Operation, e: Error, failures: &mut u32) -> Result<(), Error> {
        // A shell operation's failure goes to its caller; the session carries on.
        let waiter = match op {
            Operation::ShellState => self.st.waiters.state.take().map(|w| {
                let _ = w.send(Err(e));
            }),
            Operation::Disconnect => self.st.waiters.disconnect.take().map(|w| {
                let _ = w.send(Err(e));
            }),
            Operation::Reconnect => self.st.waiters.reconnect.take().map(|w| {
                let _ = w.send(Err(e));
            }),
            _ => {
                return self.recover_other(op, e, failures).await;
            }
        };
        let _ = waiter;
        self.st.dispatch(false);
        if self.st.session.is_alive() {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    async fn recover_other(
        &mut self,
        op: Operation,
        e: Error,
        failures: &mut u32,
    ) -> Result<(), Error> {
        if matches!(op, Operation::Receive(_)) && is_transient(&e) && self.st.session.is_alive() {
            *failures += 1;
            if *failures < self.st.retry.receive_attempts {
                tracing::debug!(error = %e, failures = *failures, "receiving again");
                tokio::time::sleep(self.transient_delay(&e, *failures)).await;
                return Ok(());
            }
            return Err(e);
        }
        let token = matches!(&self.credentials, Some(c) if c.is_token());
        if e.is_unauthorized()
            && token
            && self.st.session.is_alive()
            && matches!(
                op,
                Operation::Command(_) | Operation::Receive(_) | Operation::Send(_)
            )
        {
            // The shell refuses our (refreshed) token: build a new one. Pipelines the old
            // shell never ran start again there; those it ran are reported, not repeated.
            let shared = Arc::new(e);
            self.st.dispatch(true);
            let ids: Vec<Uuid> = self.st.pipelines.keys().copied().collect();
            for id in ids {
                let replay = op == Operation::Command(id) || !self.st.session.is_commanded(id);
                if replay {
                    if !self.st.pending.contains(&id) {
                        self.st.pending.push_back(id);
                    }
                } else if let Some(p) = self.st.pipelines.remove(&id) {
                    let _ = p.tx.send(Err(Error::SessionFailed(shared.clone())));
                }
            }
            self.st.session.abandon();
            self.st.rebuild = true;
            return Ok(());
        }
        if self.st.session.is_alive() {
            // The machine kept the pool: only the pipeline is lost.
            if let Operation::Command(pid)
            | Operation::Receive(Some(pid))
            | Operation::Send(Some(pid)) = op
            {
                self.st.typed.insert(pid, e);
            }
            self.st.dispatch(false);
            return Ok(());
        }
        Err(e)
    }

    /// Ends the session after a fatal error: the shell is deleted, everyone is told.
    async fn fatal(&mut self, e: Error) {
        tracing::debug!(error = %e, "session failed");
        let shared = Arc::new(e);
        // A failed Delete still ends the machine as Closed: close must not report success.
        for done in self.st.closers.drain(..) {
            let _ = done.send(Err(Error::SessionFailed(shared.clone())));
        }
        self.st.dispatch(true);
        self.cleanup().await;
        self.st.fail_all_with(shared);
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut rx_open = true;
        let mut failures = 0u32;
        loop {
            while let Ok(cmd) = rx.try_recv() {
                self.st.apply(cmd);
            }
            if self.st.rebuild
                && self.st.session.running_pipelines().is_empty()
                && let Err(e) = self.rebuild().await
            {
                self.fatal(e).await;
                return;
            }
            if !rx_open && self.st.session.phase() == Phase::Disconnected {
                self.st.fail_all(Error::Closed);
                return;
            }
            let req = match self.st.session.poll_request() {
                Err(e) => {
                    self.fatal(e.into()).await;
                    return;
                }
                Ok(Some(req)) => req,
                Ok(None) => {
                    self.st.dispatch(false);
                    if !self.st.session.is_alive() {
                        self.st.fail_all(Error::Closed);
                        return;
                    }
                    if !rx_open {
                        self.st.close_now();
                        continue;
                    }
                    match rx.recv().await {
                        Some(cmd) => self.st.apply(cmd),
                        None => {
                            rx_open = false;
                            if self.st.session.phase() == Phase::Disconnected {
                                // Dropped while disconnected: the shell stays on the
                                // server for a later connect.
                                self.st.fail_all(Error::Closed);
                                return;
                            }
                            self.st.close_now();
                        }
                    }
                    continue;
                }
            };
            let op = req.operation;
            let cookies = self.http.cookies().clone();
            let observer = self.st.observer.clone();
            let url = self.st.url.clone();
            let mut answer = exchange(&mut self.http, observer.clone(), url.clone(), &req);
            let mut signal: Option<SendFuture<'static, SignalOutcome>> = None;
            // While the request is in flight, apply commands as they come; a stop goes out
            // at once on the second connection.
            let sent = loop {
                if signal.is_none()
                    && let Some(sreq) = self.st.session.poll_signal()
                {
                    let client = match self.signal_http.take() {
                        Some(c) => Ok(c),
                        None => Transport::new(self.transport_config.clone()).map(|t| {
                            HttpClient::new(t, self.credentials.clone())
                                .allow_insecure_http(self.allow_insecure_http)
                        }),
                    };
                    match client {
                        Ok(mut client) => {
                            *client.cookies_mut() = cookies.clone();
                            let (observer, url) = (observer.clone(), url.clone());
                            signal = Some(Box::pin(async move {
                                let sent = exchange(&mut client, observer, url, &sreq).await;
                                (client, sent)
                            }));
                        }
                        Err(e) => {
                            let _ = self
                                .st
                                .session
                                .handle_signal_transport_error(&e.to_string());
                        }
                    }
                }
                let wake = tokio::select! {
                    biased;
                    r = &mut answer => Wake::Answer(r),
                    r = wait_signal(&mut signal) => Wake::Signal(Box::new(r)),
                    c = rx.recv(), if rx_open => Wake::Command(c),
                };
                match wake {
                    Wake::Answer(r) => break r,
                    Wake::Signal(outcome) => {
                        signal = None;
                        let (client, sent) = *outcome;
                        self.signal_http = Some(client);
                        absorb_signal_result(&mut self.st.session, sent);
                    }
                    Wake::Command(Some(cmd)) => self.st.apply(cmd),
                    Wake::Command(None) => {
                        rx_open = false;
                        if self.st.session.phase() != Phase::Disconnected {
                            self.st.close_now();
                        }
                    }
                }
            };
            drop(answer);
            if let Some(s) = signal.take() {
                let outcome = s.await;
                self.absorb_signal(outcome);
            }
            match self.st.absorb(op, sent) {
                Ok(()) => {
                    failures = 0;
                    self.st.dispatch(false);
                }
                Err(e) => {
                    if let Err(e) = self.recover(op, e, &mut failures).await {
                        self.fatal(e).await;
                        return;
                    }
                }
            }
        }
    }
}

fn absorb_signal_result(session: &mut Session, sent: Result<HttpResponse, ClientError>) {
    let r = match sent {
        Ok(resp) if resp.status == 401 => Err(session.handle_signal_transport_error("HTTP 401")),
        Ok(resp) => session.handle_signal_response(resp.status, &resp.body),
        Err(e) => Err(session.handle_signal_transport_error(&e.to_string())),
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "stop signal failed; it goes out again after the receive");
    }
}

/// When the current token expires (asks the provider, which refreshes ahead of expiry).
async fn token_expiry(credentials: Option<Credentials>) -> Option<SystemTime> {
    match credentials {
        Some(Credentials::OAuthBearerAsBasic { token, .. }) => {
            token.token().await.ok().map(|t| t.expires_at)
        }
        _ => None,
    }
}

/// A failure worth sending the request again: the connection dropped or timed out, or the
/// server was briefly unavailable (503).
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Request { source, .. } if matches!(**source, ClientError::Transport(_)))
        || e.http_status() == Some(503)
}
