//! The driver: the background task that sends whatever the machine asks for and feeds back
//! the answers, and the HTTP plumbing it shares with [`list_shells`](super::list_shells).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::state::{Cmd, State, Waiters};
use super::{ConnectOptions, Error, ExchangeObserver, RunspacePool};
use crate::http::{
    ClientError, Credentials, HttpClient, HttpRequest, HttpResponse, RedirectPolicy, Transport,
    TransportConfig,
};
use crate::machine::{
    IdSource, Operation, Phase, Session, SessionConfig, SessionEvent, WsmanRequest,
};

/// Random MessageIDs, for sessions with a real server.
pub(crate) struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
}

/// The HTTP client `options` ask for.
pub(crate) fn http_client(options: &ConnectOptions) -> Result<HttpClient, Error> {
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
pub(super) fn session_config(options: &ConnectOptions) -> SessionConfig {
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

/// Sends one request outside a pool's driver; a 401 is an authentication error.
pub(super) async fn send_plain(
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

/// Opens a pool (or takes over the disconnected `takeover`) and spawns its driver.
pub(super) async fn start_driver(
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

/// An HTTP exchange in flight; the signal connection's owns its client and hands it back.
type SendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to a Signal sent on the second connection, with that connection's client.
type SignalOutcome = (HttpClient, Result<HttpResponse, ClientError>);

/// True for the requests that may meet Exchange Online's front door, which redirects a
/// session's first request to the tenant's pod: whatever opens a session (the Create, the
/// configuration Get before it, the Connect that takes a pool over) and shell listings.
pub(super) fn follows_redirects(op: Operation) -> bool {
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
    Box::pin(send_observed(http, observer, http_req, follow))
}

/// Sends `req` with `http` (following redirects when `follow`) and shows the exchange to
/// the observer.
pub(crate) async fn send_observed(
    http: &mut HttpClient,
    observer: Option<Arc<dyn ExchangeObserver>>,
    req: HttpRequest,
    follow: bool,
) -> Result<HttpResponse, ClientError> {
    let sent = if follow {
        http.send_following(req.clone()).await
    } else {
        http.send(req.clone()).await
    };
    if let Some(obs) = &observer {
        match &sent {
            Ok(resp) => obs.on_exchange(&req, Ok(resp)),
            Err(e) => obs.on_exchange(&req, Err(&e.to_string())),
        }
    }
    sent
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
pub(crate) fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Request { source, .. } if matches!(**source, ClientError::Transport(_)))
        || e.http_status() == Some(503)
}
