//! The loopback check: the async client over HTTP against a replayer served on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rps_psrp::clixml::Value;
use rps_psrp::event::HostReply;
use rps_psrp::messages::{HostResponse, RunspacePoolState};
use rps_session::{ConnectOptions, PipelineEvent, RunspacePool};
use rps_wsman::Envelope;
use uuid::Uuid;

use super::report::{Actual, finish};
use super::{
    Action, ExpectedPipeline, Mode, PoolCallKind, ReenactError, Report, Scenario, live_uuid,
    replay_key,
};
use crate::replayer::{Mismatch, ReplayResponse, Replayer};
use crate::transcript::Transcript;

/// How long the loopback client waits for a session key the recording never sent.
const KEY_WAIT_UNANSWERED: Duration = Duration::from_millis(300);

/// The longest a recorded delay is honoured over loopback.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// How long a loopback check may take.
const LOOPBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves a [`Replayer`] over HTTP on 127.0.0.1 and runs the async [`RunspacePool`] client
/// against it (plain http, no credentials). Pipelines run one after the other, in recorded
/// order, with their recorded input; host calls that need an answer get the recorded host
/// responses, in order.
pub async fn check_over_loopback(transcript: &Transcript) -> Result<Report, ReenactError> {
    let scenario = Scenario::from_transcript(transcript)?;
    let mut report = Report::empty(&scenario, Mode::Loopback, transcript.exchanges.len());
    if !scenario.unsupported.is_empty() {
        return Ok(report);
    }
    let replayer = Arc::new(Mutex::new(Replayer::new(transcript.clone())));
    let mismatches: Arc<Mutex<Vec<Mismatch>>> = Arc::default();
    let gate = Arc::new(InputGate::default());
    let server = {
        let replayer = replayer.clone();
        let mismatches = mismatches.clone();
        let gate = gate.clone();
        crate::server::Server::bind("127.0.0.1:0", move |req: crate::server::Request| {
            let replayer = replayer.clone();
            let mismatches = mismatches.clone();
            let gate = gate.clone();
            async move {
                let (result, hold) = match replayer.lock() {
                    Ok(mut r) => {
                        let result = r.handle(&req.body);
                        (result, input_follows(&r))
                    }
                    Err(_) => {
                        return crate::server::Response::text(500, "replayer poisoned");
                    }
                };
                match result {
                    Ok(resp) => {
                        if hold {
                            gate.command_seen.notify_one();
                            let _ =
                                tokio::time::timeout(GATE_WAIT, gate.input_queued.notified()).await;
                        }
                        serve(resp).await
                    }
                    Err(m) => {
                        let text = m.to_string();
                        if let Ok(mut all) = mismatches.lock()
                            && all.is_empty()
                        {
                            all.push(m);
                        }
                        crate::server::Response::text(500, format!("replay mismatch: {text}"))
                    }
                }
            }
        })
        .await
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            report.client_errors.push(format!("loopback server: {e}"));
            return Ok(report);
        }
    };
    let url = format!("{}/wsman", server.url());
    let client = async {
        if scenario.is_sequential() {
            run_client_steps(&scenario, &url, &gate).await
        } else {
            run_client(&scenario, &url, &gate).await
        }
    };
    let actual = tokio::time::timeout(LOOPBACK_TIMEOUT, client)
        .await
        .unwrap_or_else(|_| {
            (
                Actual::default(),
                vec![format!(
                    "the client did not finish within {LOOPBACK_TIMEOUT:?}"
                )],
            )
        });
    server.shutdown().await;
    report.client_errors.extend(actual.1);
    if let Ok(m) = mismatches.lock() {
        report.mismatches.extend(m.iter().cloned());
    }
    let replayer = match replayer.lock() {
        Ok(r) => r.clone(),
        Err(_) => return Ok(report),
    };
    finish(&scenario, &replayer, &actual.0, &mut report);
    Ok(report)
}

/// The handshake that keeps a pipeline's input in the recorded order over loopback.
///
/// The async API takes a pipeline's input only after `invoke_request` returns, so the
/// input may reach the driver before the Command goes out (the machine then packs it into
/// the Command) or after the driver has polled a Receive; a real server accepts both, a
/// replay does not. When the recording sends input right after a Command, the server
/// holds the CommandResponse until the client has queued the input.
#[derive(Debug, Default)]
struct InputGate {
    /// The server received the Command.
    command_seen: tokio::sync::Notify,
    /// The client queued the pipeline's input.
    input_queued: tokio::sync::Notify,
}

/// The longest either side of the [`InputGate`] waits.
const GATE_WAIT: Duration = Duration::from_secs(5);

/// True when the exchange just replayed was a Command and the recording sends input next
/// (see [`InputGate`]).
fn input_follows(replayer: &Replayer) -> bool {
    let at = replayer.position();
    let action = |i: usize| {
        let ex = replayer.transcript().exchanges.get(i)?;
        let env = Envelope::decode(ex.request.body.as_bytes()).ok()?;
        env.action().map(str::to_owned)
    };
    at > 0
        && action(at - 1).as_deref() == Some(rps_wsman::ns::action::COMMAND)
        && matches!(
            action(at).as_deref(),
            Some(rps_wsman::ns::action::SEND | rps_wsman::ns::action::DISCONNECT)
        )
}

async fn serve(resp: ReplayResponse) -> crate::server::Response {
    if let Some(d) = resp.delay {
        tokio::time::sleep(d.min(MAX_DELAY)).await;
    }
    if resp.drop_connection {
        return crate::server::Response::dropped();
    }
    let mut out = crate::server::Response::new(resp.status).with_body(resp.body);
    if !resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        out = out.with_header("Content-Type", "application/soap+xml;charset=UTF-8");
    }
    for (n, v) in resp.headers {
        out = out.with_header(n, v);
    }
    out
}

impl Scenario {
    /// True when the recorded client used several pools, disconnected or listed shells:
    /// the loopback client then follows the steps one by one.
    fn is_sequential(&self) -> bool {
        self.pools.len() > 1
            || self.steps.iter().any(|s| {
                matches!(
                    s.action,
                    Action::Disconnect
                        | Action::Reconnect
                        | Action::ConnectPool
                        | Action::ListShells
                        | Action::ConnectPipeline { .. }
                )
            })
    }
}

/// The loopback client's options for `scenario`'s pool `pool`, in the WS-Man session of
/// recorded exchange `exchange`.
fn loopback_options(
    scenario: &Scenario,
    url: &url::Url,
    pool: usize,
    exchange: usize,
) -> ConnectOptions {
    let endpoint = rps_session::http::Endpoint {
        url: url.clone(),
        configuration: scenario.configuration.clone(),
        allow_redirection: false,
    };
    let mut options = ConnectOptions::new(endpoint, None);
    options.pool = scenario
        .pools
        .get(pool)
        .map_or_else(|| scenario.pool.clone(), |p| p.config.clone());
    options.create_options = scenario.create_options.clone();
    options.allow_insecure_http = true;
    options.read_server_config = scenario.read_server_config;
    options.session_id = scenario
        .exchange_sessions
        .get(exchange)
        .copied()
        .flatten()
        .map(|k| live_uuid(1, k));
    options
}

/// Collects a pipeline's events into `slot`; errors go to `errors`.
async fn drain_pipeline(
    mut pipeline: rps_session::Pipeline,
    slot: &mut ExpectedPipeline,
    errors: &mut Vec<String>,
    label: &str,
) {
    while let Some(event) = pipeline.next_event().await {
        match event {
            Ok(PipelineEvent::Output(v)) => slot.output.push(v),
            Ok(PipelineEvent::Record { kind, value }) => slot.records.push((kind, value)),
            Ok(PipelineEvent::HostCall(_)) => slot.host_calls += 1,
            Ok(PipelineEvent::Finished { state, .. }) => slot.state = Some(state),
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("{label}: {e}"));
                break;
            }
        }
    }
}

/// The loopback client for scenarios with several pools, disconnections or shell
/// listings: each recorded step in order, each pool its own [`RunspacePool`]. A pipeline
/// is read to its end when it starts, unless the recording disconnects its pool next
/// (it is then read when taken over).
async fn run_client_steps(
    scenario: &Scenario,
    url: &str,
    gate: &InputGate,
) -> (Actual, Vec<String>) {
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut errors = Vec::new();
    let url: url::Url = match url.parse() {
        Ok(u) => u,
        Err(e) => return (actual, vec![format!("bad loopback url {url}: {e}")]),
    };
    let mut pools: Vec<Option<RunspacePool>> = Vec::new();
    pools.resize_with(scenario.pools.len(), || None);
    // Disconnected pools are kept (not dropped) until the end, like the recorded client's.
    let mut parked: Vec<RunspacePool> = Vec::new();
    let mut shells: Vec<Option<Uuid>> = vec![None; scenario.pools.len()];
    let mut live_pids: Vec<Option<Uuid>> = vec![None; scenario.pipelines.len()];
    let mut waiting: Vec<rps_session::Pipeline> = Vec::new();
    for (k, step) in scenario.steps.iter().enumerate() {
        let at = step.exchange;
        let label = format!("exchange #{at}");
        match &step.action {
            Action::OpenPool | Action::ConnectPool => {
                let options = loopback_options(scenario, &url, step.pool, at);
                let takes_over = scenario.pools.get(step.pool).and_then(|p| p.takes_over);
                let opened = match takes_over {
                    None => RunspacePool::connect(options).await,
                    Some(orig) => match shells.get(orig).copied().flatten() {
                        Some(shell) => RunspacePool::connect_disconnected(options, shell).await,
                        None => {
                            errors.push(format!("{label}: pool {orig} has no shell"));
                            continue;
                        }
                    },
                };
                match opened {
                    Ok(p) => {
                        actual.pool_states.push(RunspacePoolState::Opened);
                        if let Some(slot) = shells.get_mut(step.pool) {
                            *slot = Some(p.shell_id());
                        }
                        if let Some(old) = takes_over.and_then(|o| pools.get_mut(o)?.take()) {
                            parked.push(old);
                        }
                        if let Some(slot) = pools.get_mut(step.pool) {
                            *slot = Some(p);
                        }
                    }
                    Err(e) => errors.push(format!("{label}: {e}")),
                }
                continue;
            }
            Action::ListShells => {
                let options = loopback_options(scenario, &url, step.pool, at);
                if let Err(e) = rps_session::list_shells(&options).await {
                    errors.push(format!("{label}: {e}"));
                }
                continue;
            }
            _ => {}
        }
        let Some(pool) = pools.get(step.pool).and_then(Option::as_ref) else {
            errors.push(format!("{label}: pool {} is not open", step.pool));
            continue;
        };
        let result = match &step.action {
            Action::Invoke { pipeline } => {
                let Some(plan) = scenario.pipelines.get(*pipeline) else {
                    continue;
                };
                match pool.invoke_request(plan.request.clone()).await {
                    Ok(p) => {
                        if let Some(slot) = live_pids.get_mut(*pipeline) {
                            *slot = Some(p.id());
                        }
                        let disconnect_next = scenario
                            .steps
                            .get(k + 1)
                            .is_some_and(|n| n.pool == step.pool && n.action == Action::Disconnect);
                        if disconnect_next {
                            // Read when taken over; the server holds the CommandResponse
                            // until the Disconnect is queued.
                            let _ =
                                tokio::time::timeout(GATE_WAIT, gate.command_seen.notified()).await;
                            waiting.push(p);
                            let disconnect = pool.disconnect();
                            tokio::pin!(disconnect);
                            let early = tokio::select! {
                                biased;
                                r = &mut disconnect => Some(r),
                                () = std::future::ready(()) => None,
                            };
                            gate.input_queued.notify_one();
                            let r = match early {
                                Some(r) => r,
                                None => disconnect.await,
                            };
                            if let Err(e) = r {
                                errors.push(format!("{label}: {e}"));
                            }
                            continue;
                        }
                        if let Some(slot) = actual.pipelines.get_mut(*pipeline) {
                            drain_pipeline(p, slot, &mut errors, &label).await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::ConnectPipeline { pipeline } => {
                let Some(id) = live_pids.get(*pipeline).copied().flatten() else {
                    errors.push(format!("{label}: pipeline {pipeline} was not started"));
                    continue;
                };
                match pool.connect_pipeline(id).await {
                    Ok(p) => {
                        if let Some(slot) = actual.pipelines.get_mut(*pipeline) {
                            drain_pipeline(p, slot, &mut errors, &label).await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::Disconnect => pool.disconnect().await,
            Action::Reconnect => pool.reconnect().await,
            Action::ShellState => {
                let r = pool.is_alive().await;
                actual.shell_states.push(r.as_ref().ok().copied());
                r.map(|_| ())
            }
            Action::Close => match pools.get_mut(step.pool).and_then(Option::take) {
                Some(p) => p.close().await,
                None => Ok(()),
            },
            other => {
                errors.push(format!(
                    "{label}: {other:?} is not re-enacted with several pools"
                ));
                Ok(())
            }
        };
        if let Err(e) = result {
            errors.push(format!("{label}: {e}"));
        }
    }
    drop(waiting);
    drop(parked);
    (actual, errors)
}

async fn run_client(scenario: &Scenario, url: &str, gate: &InputGate) -> (Actual, Vec<String>) {
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut errors = Vec::new();
    let url = match url.parse() {
        Ok(u) => u,
        Err(e) => return (actual, vec![format!("bad loopback url {url}: {e}")]),
    };
    let endpoint = rps_session::http::Endpoint {
        url,
        configuration: scenario.configuration.clone(),
        allow_redirection: false,
    };
    let mut options = ConnectOptions::new(endpoint, None);
    options.pool = scenario.pool.clone();
    options.create_options = scenario.create_options.clone();
    options.allow_insecure_http = true;
    options.read_server_config = scenario.read_server_config;
    let pool = match RunspacePool::connect(options).await {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("connect: {e}"));
            return (actual, errors);
        }
    };
    actual.pool_states.push(RunspacePoolState::Opened);
    // Pool-level actions go first, in recorded order (the recordings that make them run no
    // pipeline).
    let mut alive = true;
    for step in &scenario.steps {
        let result = match &step.action {
            Action::PoolCall(call) => match *call {
                PoolCallKind::SetMax(n) => pool.set_max_runspaces(n).await.map(|_| ()),
                PoolCallKind::SetMin(n) => pool.set_min_runspaces(n).await.map(|_| ()),
                PoolCallKind::Available => pool.available_runspaces().await.map(|_| ()),
                PoolCallKind::Reset => pool.reset_runspace_state().await.map(|_| ()),
            },
            Action::ShellState => {
                let r = pool.is_alive().await;
                actual.shell_states.push(r.as_ref().ok().copied());
                alive &= r.as_ref().map_or(true, |a| *a);
                r.map(|_| ())
            }
            Action::ExchangeKey => match replay_key() {
                Ok(key) => {
                    let wait = if scenario.expected.key_exchanged {
                        GATE_WAIT
                    } else {
                        KEY_WAIT_UNANSWERED
                    };
                    pool.exchange_key_with(key, wait).await
                }
                Err(e) => Err(rps_session::Error::KeyGeneration(e.to_string())),
            },
            Action::Disconnect => pool.disconnect().await,
            Action::Reconnect => pool.reconnect().await,
            Action::Attach { attached } => {
                match pool.attach_pipeline(live_uuid(4, *attached)).await {
                    Ok(p) => p.collect().await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            _ => continue,
        };
        if let Err(e) = result {
            errors.push(format!("exchange #{}: {e}", step.exchange));
        }
    }
    for (index, plan) in scenario.pipelines.iter().enumerate() {
        let pipeline = match pool.invoke_request(plan.request.clone()).await {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("pipeline {index}: {e}"));
                continue;
            }
        };
        let has_input = scenario.steps.iter().any(|s| {
            matches!(&s.action, Action::Input { pipeline: p, .. } | Action::EndInput { pipeline: p } if *p == index)
        });
        if has_input {
            let _ = tokio::time::timeout(GATE_WAIT, gate.command_seen.notified()).await;
        }
        for step in &scenario.steps {
            let r = match &step.action {
                Action::Input { pipeline: p, value } if *p == index => {
                    pipeline.send_input(value.clone())
                }
                Action::EndInput { pipeline: p } if *p == index => pipeline.end_input(),
                Action::Stop { pipeline: p } if *p == index => pipeline.stop(),
                _ => Ok(()),
            };
            if let Err(e) = r {
                errors.push(format!("pipeline {index}: {e}"));
            }
        }
        if has_input {
            gate.input_queued.notify_one();
        }
        // The recorded answers to this pipeline's host calls, in order.
        let mut replies: std::collections::VecDeque<HostResponse> = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::HostReply {
                    pipeline: Some(p),
                    response,
                } if *p == index => Some(response.clone()),
                _ => None,
            })
            .collect();
        let mut pipeline = pipeline;
        let Some(slot) = actual.pipelines.get_mut(index) else {
            continue;
        };
        while let Some(event) = pipeline.next_event().await {
            match event {
                Ok(PipelineEvent::Output(v)) => slot.output.push(v),
                Ok(PipelineEvent::Record { kind, value }) => slot.records.push((kind, value)),
                Ok(PipelineEvent::HostCall(call)) => {
                    slot.host_calls += 1;
                    if call.needs_reply() {
                        let reply = match replies.pop_front() {
                            Some(response) => HostReply {
                                pipeline_id: call.pipeline_id,
                                response,
                            },
                            None => call.fail(Value::Str("no recorded host response".into())),
                        };
                        if let Err(e) = pipeline.host_reply(reply) {
                            errors.push(format!("pipeline {index}: {e}"));
                        }
                    }
                }
                Ok(PipelineEvent::Finished { state, .. }) => slot.state = Some(state),
                Ok(_) => {}
                Err(e) => {
                    errors.push(format!("pipeline {index}: {e}"));
                    break;
                }
            }
        }
    }
    if alive && let Err(e) = pool.close().await {
        errors.push(format!("close: {e}"));
    }
    (actual, errors)
}
