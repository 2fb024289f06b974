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

mod driver;
mod error;
mod events;
mod listing;
mod options;
mod state;

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use rps_psrp::clixml::Value;
use rps_psrp::event::HostReply;
use rps_psrp::messages::{Availability, CreatePipeline, GetCommandMetadata, PowerShell};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub(crate) use driver::{RandomIds, http_client, is_transient, send_observed};
pub use error::Error;
pub use events::{PipelineEvent, PipelineResult};
pub use listing::list_shells;
pub use options::{ConnectOptions, ExchangeObserver, RetryPolicy};
use state::{Cmd, PoolCall, Request};

#[cfg(doc)]
use crate::http::HttpClient;
#[cfg(doc)]
use crate::machine::Session;

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

impl RunspacePool {
    /// Connects: creates the shell (following a redirect when allowed), opens the pool and
    /// waits until it is Opened. The creation is retried per [`ConnectOptions::retry`].
    pub async fn connect(options: ConnectOptions) -> Result<RunspacePool, Error> {
        driver::start_driver(options, None).await
    }

    /// Takes over the disconnected pool `shell_id` (left by [`RunspacePool::disconnect`]
    /// here or by another client): a WS-Man Connect, then the pool's settings and state
    /// from the server. Pipelines it still runs are taken over with
    /// [`RunspacePool::connect_pipeline`]. Needs a protocol 2.2 server (PowerShell 3+).
    pub async fn connect_disconnected(
        options: ConnectOptions,
        shell_id: Uuid,
    ) -> Result<RunspacePool, Error> {
        driver::start_driver(options, Some(shell_id)).await
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
