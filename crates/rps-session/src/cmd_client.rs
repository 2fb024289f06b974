//! The async API of the WinRS `cmd` shell: run commands on any WinRM endpoint, without
//! PowerShell.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rps_session::Error> {
//! use rps_session::http::{Credentials, Endpoint};
//! use rps_session::{CmdConfig, CmdShell, ConnectOptions};
//!
//! let endpoint = Endpoint {
//!     url: "https://server.contoso.com:5986/wsman".parse().expect("url"),
//!     configuration: String::new(),
//!     allow_redirection: false,
//! };
//! let options = ConnectOptions::new(endpoint, Some(Credentials::basic("admin", "secret")));
//! let config = CmdConfig::from_options(&options);
//! let shell = CmdShell::open(options, config).await?;
//! let out = shell.run("cmd.exe", ["/c", "echo", "hi"]).await?.collect().await?;
//! assert_eq!(out.exit_code, Some(0));
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! shell.close().await?;
//! # Ok(()) }
//! ```
//!
//! A background task (the driver) owns the sans-IO [`cmd::CmdShell`] machine and an
//! [`HttpClient`] built from the [`ConnectOptions`] (credentials, TLS, proxy, timeouts and
//! observer are shared with PowerShell sessions). It sends one request at a time; actions
//! taken while a Receive long-poll is in flight go out once it returns (within
//! OperationTimeout). A command's output is read from the first [`CmdProcess::next_chunk`]
//! or [`CmdProcess::collect`] on, so stdin written before then reaches the command without
//! waiting behind a Receive. Output is flow-controlled: once a process holds
//! [`CmdConfig::max_buffered_output`] bytes it has not taken, its output is no longer
//! received (the server keeps it) until it has taken them.
//!
//! A Receive that fails in transit (dropped connection, timeout, HTTP 503) is sent again up
//! to [`RetryPolicy::receive_attempts`](crate::RetryPolicy) times in a row. When the
//! [`CmdShell`] is closed or dropped, the shell is deleted on the server (with the commands
//! still running in it); a [`CmdProcess`] dropped before its command finished terminates
//! the command.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::cmd::{self, CmdCommand, CmdConfig, CmdEvent, CmdHandle, CmdOperation, duplicate_error};
use crate::http::{ClientError, HttpClient, HttpRequest, HttpResponse};
use crate::machine::SessionError;
use crate::runspace::{
    ConnectOptions, Error, ExchangeObserver, RandomIds, RetryPolicy, http_client, is_transient,
    send_observed,
};

impl CmdConfig {
    /// A configuration carrying the WS-Man settings of `options`: the endpoint URL,
    /// OperationTimeout, MaxEnvelopeSize, session id, server configuration read, envelope
    /// limits, and its `create_options` as extra Create options.
    pub fn from_options(options: &ConnectOptions) -> Self {
        let mut c = CmdConfig::new(options.endpoint.url.to_string());
        c.operation_timeout_secs = options.operation_timeout_secs;
        c.max_envelope_size = options.max_envelope_size;
        c.session_id = options.session_id;
        c.read_server_config = options.read_server_config;
        c.wsman_limits = options.wsman_limits.clone();
        c.extra_options = options.create_options.clone();
        c
    }
}

/// A chunk of a command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmdChunk {
    /// Bytes on stdout, as the server sent them (the console's code page).
    Stdout(Bytes),
    /// Bytes on stderr.
    Stderr(Bytes),
    /// Bytes on another output stream of the shell.
    Stream {
        /// The stream's name.
        name: String,
        /// The bytes.
        data: Bytes,
    },
}

/// Everything a command wrote, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    /// All stdout bytes, in order.
    pub stdout: Vec<u8>,
    /// All stderr bytes, in order.
    pub stderr: Vec<u8>,
    /// The exit code the server reported (`None` when it reported none, e.g. terminated).
    pub exit_code: Option<i64>,
}

/// What the driver tells a process.
#[derive(Debug)]
enum ProcEvent {
    Chunk(CmdChunk),
    Exit(Option<i64>),
    Failed(Error),
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Msg {
    Run {
        command: CmdCommand,
        events: mpsc::UnboundedSender<ProcEvent>,
        backlog: Arc<AtomicUsize>,
        started: Reply<(CmdHandle, String)>,
    },
    ReadOutput(CmdHandle),
    Stdin {
        handle: CmdHandle,
        data: Bytes,
        end: bool,
        done: Reply<()>,
    },
    Signal {
        handle: CmdHandle,
        code: String,
        done: Reply<()>,
    },
    /// The process handle was dropped.
    Release(CmdHandle),
    Close(Option<Reply<()>>),
}

/// An open `cmd` shell on a WinRM endpoint. See the [module docs](self).
#[derive(Debug)]
pub struct CmdShell {
    tx: mpsc::UnboundedSender<Msg>,
    shell_id: String,
    closed: bool,
    limit: usize,
}

/// A command running in a [`CmdShell`].
#[derive(Debug)]
pub struct CmdProcess {
    handle: CmdHandle,
    command_id: String,
    tx: mpsc::UnboundedSender<Msg>,
    events: mpsc::UnboundedReceiver<ProcEvent>,
    reading: bool,
    exit: Option<Option<i64>>,
    over: bool,
    /// Output bytes the driver handed over and this handle has not taken yet.
    backlog: Arc<AtomicUsize>,
    /// Above this backlog the driver stops reading the command's output.
    limit: usize,
}

impl CmdShell {
    /// Creates the shell on `options`' endpoint (its URL replaces [`CmdConfig::to`]) with
    /// `options`' credentials and transport, and waits until the server has it. Without a
    /// session id in `config`, the one of `options` (or a fresh one) is used.
    pub async fn open(options: ConnectOptions, mut config: CmdConfig) -> Result<CmdShell, Error> {
        let http = http_client(&options)?;
        config.to = options.endpoint.url.to_string();
        if config.session_id.is_none() {
            config.session_id = Some(options.session_id.unwrap_or_else(Uuid::new_v4));
        }
        let limit = config.max_buffered_output;
        let mut machine = cmd::CmdShell::new(config, Box::new(RandomIds));
        machine.open()?;
        let mut driver = Driver {
            http,
            st: State {
                machine,
                observer: options.observer.clone(),
                url: options.endpoint.url.clone(),
                retry: options.retry,
                limit,
                procs: HashMap::new(),
                released: HashSet::new(),
                closers: Vec::new(),
            },
        };
        let shell_id = match driver.create().await {
            Ok(id) => id,
            Err(e) => {
                driver.cleanup().await;
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(driver.run(rx));
        Ok(CmdShell {
            tx,
            shell_id,
            closed: false,
            limit,
        })
    }

    /// The ShellId the server chose.
    pub fn shell_id(&self) -> &str {
        &self.shell_id
    }

    /// Runs `command` with `arguments` (each one `rsp:Arguments` element) through
    /// `cmd.exe`, once the server has started it.
    pub async fn run<I, S>(
        &self,
        command: impl Into<String>,
        arguments: I,
    ) -> Result<CmdProcess, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.run_command(CmdCommand::new(command).args(arguments).defer_output())
            .await
    }

    /// Runs `command` as specified, once the server has started it (a fault on the Command
    /// is this call's error).
    pub async fn run_command(&self, command: CmdCommand) -> Result<CmdProcess, Error> {
        let reading = command.read_output;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (started, wait) = oneshot::channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        self.tx
            .send(Msg::Run {
                command,
                events: events_tx,
                backlog: backlog.clone(),
                started,
            })
            .map_err(|_| Error::Closed)?;
        let (handle, command_id) = wait.await.map_err(|_| Error::Closed)??;
        Ok(CmdProcess {
            handle,
            command_id,
            tx: self.tx.clone(),
            events,
            reading,
            exit: None,
            over: false,
            backlog,
            limit: self.limit,
        })
    }

    /// Deletes the shell (and whatever still runs in it).
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Close(Some(done)))
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for CmdShell {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.tx.send(Msg::Close(None));
        }
    }
}

impl CmdProcess {
    /// The CommandId the server chose.
    pub fn command_id(&self) -> &str {
        &self.command_id
    }

    /// The exit code, once [`CmdProcess::next_chunk`] has returned `None` after the server
    /// reported the command done (`Some(None)`: done without an exit code).
    pub fn exit_code(&self) -> Option<Option<i64>> {
        self.exit
    }

    /// Writes `data` to the command's stdin (`end` closes it) and waits until the server
    /// has it.
    pub async fn stdin(&self, data: impl Into<Bytes>, end: bool) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Stdin {
                handle: self.handle,
                data: data.into(),
                end,
                done,
            })
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }

    /// Sends a WinRS Signal ([`rps_wsman::ns::signal`]) and waits until the server has it.
    pub async fn signal(&self, code: &str) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Signal {
                handle: self.handle,
                code: code.to_owned(),
                done,
            })
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }

    /// Sends Ctrl+C; the command's output goes on until it ends.
    pub async fn ctrl_c(&self) -> Result<(), Error> {
        self.signal(rps_wsman::ns::signal::CTRL_C).await
    }

    /// Terminates the command; its output ends without an exit code.
    pub async fn terminate(&self) -> Result<(), Error> {
        self.signal(rps_wsman::ns::signal::TERMINATE).await
    }

    fn start_reading(&mut self) {
        if !self.reading {
            self.reading = true;
            let _ = self.tx.send(Msg::ReadOutput(self.handle));
        }
    }

    fn absorb(&mut self, ev: Option<ProcEvent>) -> Option<Result<CmdChunk, Error>> {
        match ev {
            Some(ProcEvent::Chunk(c)) => {
                let len = match &c {
                    CmdChunk::Stdout(b) | CmdChunk::Stderr(b) => b.len(),
                    CmdChunk::Stream { data, .. } => data.len(),
                };
                let before = self.backlog.fetch_sub(len, Ordering::AcqRel);
                if before >= self.limit && before.saturating_sub(len) < self.limit {
                    // Room again: the driver paused the output at the limit.
                    let _ = self.tx.send(Msg::ReadOutput(self.handle));
                }
                Some(Ok(c))
            }
            Some(ProcEvent::Exit(code)) => {
                self.exit = Some(code);
                self.over = true;
                None
            }
            Some(ProcEvent::Failed(e)) => {
                self.over = true;
                Some(Err(e))
            }
            None if self.over => None,
            None => {
                self.over = true;
                Some(Err(Error::Closed))
            }
        }
    }

    /// The next chunk of output (reading starts with the first call); `None` once the
    /// command is done ([`CmdProcess::exit_code`] then has its exit code). An error ends
    /// the output.
    pub async fn next_chunk(&mut self) -> Option<Result<CmdChunk, Error>> {
        if self.over {
            return None;
        }
        self.start_reading();
        let ev = self.events.recv().await;
        self.absorb(ev)
    }

    /// Reads the output to the end.
    pub async fn collect(mut self) -> Result<CmdOutput, Error> {
        let mut out = CmdOutput::default();
        while let Some(chunk) = self.next_chunk().await {
            match chunk? {
                CmdChunk::Stdout(b) => out.stdout.extend_from_slice(&b),
                CmdChunk::Stderr(b) => out.stderr.extend_from_slice(&b),
                CmdChunk::Stream { .. } => {}
            }
        }
        out.exit_code = self.exit.flatten();
        Ok(out)
    }
}

impl futures_core::Stream for CmdProcess {
    type Item = Result<CmdChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over {
            return Poll::Ready(None);
        }
        self.start_reading();
        match self.events.poll_recv(cx) {
            Poll::Ready(ev) => Poll::Ready(self.absorb(ev)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for CmdProcess {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Release(self.handle));
    }
}

/// The driver's view of one process.
struct Proc {
    events: mpsc::UnboundedSender<ProcEvent>,
    backlog: Arc<AtomicUsize>,
    started: Option<Reply<(CmdHandle, String)>>,
    stdin: VecDeque<Reply<()>>,
    signals: VecDeque<Reply<()>>,
}

/// The driver's state beside its HTTP client (so both can be borrowed at once).
struct State {
    machine: cmd::CmdShell,
    observer: Option<Arc<dyn ExchangeObserver>>,
    url: url::Url,
    retry: RetryPolicy,
    /// Output bytes a process may hold unread before its output is paused.
    limit: usize,
    procs: HashMap<CmdHandle, Proc>,
    /// Commands whose handle was dropped, to forget once the machine is done with them.
    released: HashSet<CmdHandle>,
    closers: Vec<Reply<()>>,
}

struct Driver {
    http: HttpClient,
    st: State,
}

/// Sends one envelope (following redirects for the Create) and shows the exchange to the
/// observer.
async fn exchange(
    http: &mut HttpClient,
    observer: Option<Arc<dyn ExchangeObserver>>,
    url: url::Url,
    body: Bytes,
    follow: bool,
) -> Result<HttpResponse, ClientError> {
    send_observed(http, observer, HttpRequest::winrm(url, body), follow).await
}

impl State {
    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Run {
                command,
                events,
                backlog,
                started,
            } => match self.machine.run_command(command) {
                Ok(h) => {
                    self.procs.insert(
                        h,
                        Proc {
                            events,
                            backlog,
                            started: Some(started),
                            stdin: VecDeque::new(),
                            signals: VecDeque::new(),
                        },
                    );
                }
                Err(e) => {
                    let _ = started.send(Err(e.into()));
                }
            },
            Msg::ReadOutput(h) => {
                // A resume sent before the driver handed over more output is stale: the
                // process asks again once it has taken that too.
                if self
                    .procs
                    .get(&h)
                    .is_some_and(|p| p.backlog.load(Ordering::Acquire) < self.limit)
                {
                    let _ = self.machine.read_output(h);
                }
            }
            Msg::Stdin {
                handle,
                data,
                end,
                done,
            } => match (
                self.machine.send(handle, data, end),
                self.procs.get_mut(&handle),
            ) {
                (Ok(()), Some(p)) => p.stdin.push_back(done),
                (Ok(()), None) => {}
                (Err(e), _) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            Msg::Signal { handle, code, done } => {
                match (
                    self.machine.signal(handle, &code),
                    self.procs.get_mut(&handle),
                ) {
                    (Ok(()), Some(p)) => p.signals.push_back(done),
                    (Ok(()), None) => {}
                    (Err(e), _) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Msg::Release(h) => {
                self.procs.remove(&h);
                if !self.machine.is_over(h) {
                    let _ = self.machine.signal(h, rps_wsman::ns::signal::TERMINATE);
                }
                self.released.insert(h);
            }
            Msg::Close(done) => {
                self.machine.close();
                if let Some(done) = done {
                    if self.machine.is_alive() || self.machine.shell_exists() {
                        self.closers.push(done);
                    } else {
                        let _ = done.send(Ok(()));
                    }
                }
            }
        }
    }

    /// Hands the machine's events to the processes and closers.
    fn dispatch(&mut self) {
        while let Some(ev) = self.machine.poll_event() {
            match ev {
                CmdEvent::Started { handle, command_id } => {
                    if let Some(p) = self.procs.get_mut(&handle)
                        && let Some(started) = p.started.take()
                    {
                        let _ = started.send(Ok((handle, command_id)));
                    }
                }
                CmdEvent::Stdout { handle, data } => self.chunk(handle, CmdChunk::Stdout(data)),
                CmdEvent::Stderr { handle, data } => self.chunk(handle, CmdChunk::Stderr(data)),
                CmdEvent::Output {
                    handle,
                    stream,
                    data,
                } => self.chunk(handle, CmdChunk::Stream { name: stream, data }),
                CmdEvent::InputSent { handle, .. } => {
                    if let Some(done) = self
                        .procs
                        .get_mut(&handle)
                        .and_then(|p| p.stdin.pop_front())
                    {
                        let _ = done.send(Ok(()));
                    }
                }
                CmdEvent::Signalled { handle, .. } => {
                    if let Some(done) = self
                        .procs
                        .get_mut(&handle)
                        .and_then(|p| p.signals.pop_front())
                    {
                        let _ = done.send(Ok(()));
                    }
                }
                CmdEvent::Finished { handle, exit_code } => {
                    if let Some(p) = self.procs.get_mut(&handle) {
                        for done in p.stdin.drain(..) {
                            let _ = done.send(Err(Error::Session(SessionError::State {
                                action: "send input",
                                state: "command over",
                            })));
                        }
                        let _ = p.events.send(ProcEvent::Exit(exit_code));
                    }
                }
                CmdEvent::CommandError { handle, error } => self.command_error(handle, error),
                CmdEvent::Closed => {
                    for done in self.closers.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
                _ => {}
            }
        }
        self.released.retain(|h| !self.machine.forget(*h));
    }

    fn chunk(&mut self, handle: CmdHandle, chunk: CmdChunk) {
        let Some(p) = self.procs.get(&handle) else {
            return;
        };
        let len = match &chunk {
            CmdChunk::Stdout(b) | CmdChunk::Stderr(b) => b.len(),
            CmdChunk::Stream { data, .. } => data.len(),
        };
        // Counted before it is handed over, so the process never takes away more than
        // was counted.
        let held = p
            .backlog
            .fetch_add(len, Ordering::AcqRel)
            .saturating_add(len);
        if p.events.send(ProcEvent::Chunk(chunk)).is_err() {
            p.backlog.fetch_sub(len, Ordering::AcqRel);
            return;
        }
        if held >= self.limit {
            // The process does not keep up: the server keeps the rest until it does. Once
            // it has taken enough, it asks for the output again.
            let _ = self.machine.pause_output(handle);
        }
    }

    fn command_error(&mut self, handle: CmdHandle, error: SessionError) {
        let Some(p) = self.procs.get_mut(&handle) else {
            return;
        };
        if error.operation() == Some(CmdOperation::Signal(handle).name())
            && let Some(done) = p.signals.pop_front()
        {
            // A refused Signal leaves the command as it was.
            let _ = done.send(Err(error.into()));
            return;
        }
        if let Some(started) = p.started.take() {
            let _ = started.send(Err(error.into()));
            self.procs.remove(&handle);
            return;
        }
        for done in p.stdin.drain(..).chain(p.signals.drain(..)) {
            let _ = done.send(Err(Error::Session(duplicate_error(&error))));
        }
        let _ = p.events.send(ProcEvent::Failed(error.into()));
    }

    /// Fails every close waiting with `shared`.
    fn fail_closers(&mut self, shared: &Arc<Error>) {
        for done in self.closers.drain(..) {
            let _ = done.send(Err(Error::SessionFailed(shared.clone())));
        }
    }

    /// Fails everything still waiting with `e`.
    fn fail_all(&mut self, e: Error) {
        self.fail_all_with(Arc::new(e));
    }

    fn fail_all_with(&mut self, shared: Arc<Error>) {
        self.fail_closers(&shared);
        for (_, mut p) in self.procs.drain() {
            if let Some(started) = p.started.take() {
                let _ = started.send(Err(Error::SessionFailed(shared.clone())));
            }
            for done in p.stdin.drain(..).chain(p.signals.drain(..)) {
                let _ = done.send(Err(Error::SessionFailed(shared.clone())));
            }
            let _ = p
                .events
                .send(ProcEvent::Failed(Error::SessionFailed(shared.clone())));
        }
    }

    /// Takes the answer to the request in flight.
    fn absorb(
        &mut self,
        op: CmdOperation,
        sent: Result<HttpResponse, ClientError>,
    ) -> Result<(), Error> {
        let resp = match sent {
            Ok(resp) => resp,
            Err(source) => {
                let _ = self.machine.handle_transport_error(&source.to_string());
                return Err(Error::Request {
                    operation: op.name(),
                    source: Box::new(source),
                });
            }
        };
        if op == CmdOperation::Create && resp.url != self.url {
            self.url = resp.url.clone();
            self.machine.set_endpoint(resp.url.to_string());
        }
        if resp.status == 401 {
            let _ = self.machine.handle_transport_error("HTTP 401");
            return Err(Error::Unauthorized {
                host: resp.url.host_str().unwrap_or("").to_owned(),
                hint: "check the user name and password (or token) and the endpoint's auth methods",
            });
        }
        self.machine.handle_response(resp.status, &resp.body)?;
        Ok(())
    }
}

impl Driver {
    /// Sends the machine's next request and hands it the answer. `Ok(false)` when the
    /// machine has nothing to send.
    async fn step(&mut self) -> Result<bool, Error> {
        let Some(req) = self.st.machine.poll_request() else {
            return Ok(false);
        };
        let Some(op) = self.st.machine.in_flight() else {
            return Ok(false);
        };
        let sent = exchange(
            &mut self.http,
            self.st.observer.clone(),
            self.st.url.clone(),
            req.body,
            op == CmdOperation::Create,
        )
        .await;
        self.st.absorb(op, sent)?;
        Ok(true)
    }

    /// Creates the shell; returns its id.
    async fn create(&mut self) -> Result<String, Error> {
        loop {
            if !self.step().await? {
                return Err(Error::Closed);
            }
            while let Some(ev) = self.st.machine.poll_event() {
                if let CmdEvent::Created { shell_id, .. } = ev {
                    return Ok(shell_id);
                }
            }
        }
    }

    /// Best effort: deletes the shell if the server has one.
    async fn cleanup(&mut self) {
        if !self.st.machine.shell_exists() {
            return;
        }
        self.st.machine.close();
        for _ in 0..8 {
            match self.step().await {
                Ok(true) if self.st.machine.shell_exists() => {}
                _ => break,
            }
        }
        self.st.dispatch();
    }

    async fn fatal(&mut self, e: Error) {
        tracing::debug!(error = %e, "cmd shell failed");
        let shared = Arc::new(e);
        // A failed Delete also ends the machine as Closed: close must not report success.
        self.st.fail_closers(&shared);
        self.st.dispatch();
        self.cleanup().await;
        self.st.fail_all_with(shared);
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut rx_open = true;
        let mut failures = 0u32;
        loop {
            while let Ok(msg) = rx.try_recv() {
                self.st.apply(msg);
            }
            let Some(req) = self.st.machine.poll_request() else {
                self.st.dispatch();
                if !self.st.machine.is_alive() {
                    self.st.fail_all(Error::Closed);
                    return;
                }
                if !rx_open {
                    // Every handle is gone: delete the shell.
                    self.st.machine.close();
                    continue;
                }
                match rx.recv().await {
                    Some(msg) => self.st.apply(msg),
                    None => {
                        rx_open = false;
                        self.st.machine.close();
                    }
                }
                continue;
            };
            let Some(op) = self.st.machine.in_flight() else {
                continue;
            };
            let mut answer = Box::pin(exchange(
                &mut self.http,
                self.st.observer.clone(),
                self.st.url.clone(),
                req.body,
                op == CmdOperation::Create,
            ));
            // While the request is in flight, queue what the handles ask for.
            let sent = loop {
                tokio::select! {
                    biased;
                    r = &mut answer => break r,
                    m = rx.recv(), if rx_open => match m {
                        Some(msg) => self.st.apply(msg),
                        None => {
                            rx_open = false;
                            self.st.machine.close();
                        }
                    },
                }
            };
            drop(answer);
            match self.st.absorb(op, sent) {
                Ok(()) => {
                    failures = 0;
                    self.st.dispatch();
                }
                Err(e) if matches!(op, CmdOperation::Receive(_)) && is_transient(&e) => {
                    failures += 1;
                    if failures >= self.st.retry.receive_attempts {
                        self.fatal(e).await;
                        return;
                    }
                    let delay = if e.http_status() == Some(503) {
                        self.st.retry.delay(failures + 1, None)
                    } else {
                        Duration::from_millis(20u64.saturating_mul(u64::from(failures)))
                    };
                    tokio::time::sleep(delay).await;
                }
                Err(e) if matches!(e, Error::Unauthorized { .. }) => {
                    self.fatal(e).await;
                    return;
                }
                Err(e) => {
                    if !self.st.machine.is_alive() {
                        // The shell failed or its Delete did: tell whoever still waits.
                        self.fatal(e).await;
                        return;
                    }
                    self.st.dispatch();
                    // One command's failure: it has been told through its events.
                    tracing::debug!(error = %e, "cmd command failed");
                }
            }
        }
    }
}
