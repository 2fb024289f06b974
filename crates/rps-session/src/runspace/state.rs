//! The driver's state: the machine, and the pipelines and callers waiting on it; how the
//! handles' commands and the machine's events are applied to them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rps_psrp::clixml::Value;
use rps_psrp::event::HostReply;
use rps_psrp::messages::{Availability, CreatePipeline, GetCommandMetadata, PsInvocationState};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::driver::{RandomIds, follows_redirects};
use super::{Error, ExchangeObserver, PipelineEvent, RetryPolicy};
use crate::http::{ClientError, HttpResponse};
use crate::machine::{Operation, Session, SessionConfig, SessionError, SessionEvent};
use crate::token::Clock;

#[derive(Clone)]
pub(super) enum Request {
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

pub(super) enum Cmd {
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
pub(super) struct Waiters {
    pub(super) state: Option<oneshot::Sender<Result<bool, Error>>>,
    pub(super) disconnect: Option<oneshot::Sender<Result<(), Error>>>,
    pub(super) reconnect: Option<oneshot::Sender<Result<(), Error>>>,
    pub(super) key: Option<oneshot::Sender<Result<(), Error>>>,
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
pub(super) enum PoolCall {
    SetMax(i32),
    SetMin(i32),
    Available,
    Reset,
}

type Listener = mpsc::UnboundedSender<Result<PipelineEvent, Error>>;

/// A pipeline the driver delivers events to.
pub(super) struct Piped {
    pub(super) tx: Listener,
    /// Kept to start the pipeline again on a rebuilt pool, when the old one never ran it.
    pub(super) request: Request,
}

/// The driver's state beside its HTTP clients (so both can be borrowed at once).
pub(super) struct State {
    pub(super) session: Session,
    pub(super) template: SessionConfig,
    pub(super) observer: Option<Arc<dyn ExchangeObserver>>,
    /// Where requests go (the pod after a redirect).
    pub(super) url: url::Url,
    /// The endpoint as configured, for new shells.
    pub(super) start_url: url::Url,
    pub(super) pipelines: HashMap<Uuid, Piped>,
    pub(super) closers: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Pool calls waiting for their answer, by call id.
    pub(super) calls: HashMap<i64, oneshot::Sender<Result<Availability, Error>>>,
    /// Pipelines to start once the pool has been rebuilt.
    pub(super) pending: VecDeque<Uuid>,
    /// Typed errors that replace the machine's text of a pipeline's failure.
    pub(super) typed: HashMap<Uuid, Error>,
    pub(super) retry: RetryPolicy,
    pub(super) margin: Option<Duration>,
    pub(super) clock: Arc<dyn Clock>,
    /// When the token the shell was created with expires.
    pub(super) shell_expiry: Option<SystemTime>,
    /// The last response's `Retry-After`.
    pub(super) retry_after: Option<Duration>,
    pub(super) shell_id: Arc<Mutex<Uuid>>,
    /// Replace the shell by a new one before the next request.
    pub(super) rebuild: bool,
    /// The disconnected shell this driver took over, instead of creating one.
    pub(super) takeover: Option<Uuid>,
    pub(super) waiters: Waiters,
}

impl State {
    pub(super) fn new_session(&mut self) -> Result<Session, Error> {
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

    pub(super) fn start_pipeline(
        &mut self,
        id: Uuid,
        request: Request,
    ) -> Result<(), SessionError> {
        match request {
            Request::Pipeline(r) => self.session.invoke(id, *r),
            Request::Metadata(r) => self.session.get_command_metadata(id, r),
            Request::Attached => Err(SessionError::State {
                action: "start a pipeline taken over from another client again",
                state: "rebuilt",
            }),
        }
    }

    pub(super) fn apply(&mut self, cmd: Cmd) {
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
    pub(super) fn close_now(&mut self) {
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
    pub(super) fn dispatch(&mut self, quiet: bool) {
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
    pub(super) fn fail_all(&mut self, e: Error) {
        self.fail_all_with(Arc::new(e));
    }

    pub(super) fn fail_all_with(&mut self, shared: Arc<Error>) {
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
    pub(super) fn absorb(
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
