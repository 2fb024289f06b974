//! The in-memory check: the sans-IO session machine against a replayer, no sockets.

use std::sync::Arc;

use rps_psrp::event::HostReply;
use rps_psrp::messages::RunspacePoolState;
use rps_session::enumerate::ShellLister;
use rps_session::machine::{Operation, Session, SessionConfig, SessionEvent};
use uuid::Uuid;

use super::report::{Actual, finish};
use super::{
    Action, ExpectedPipeline, Mode, PoolCallKind, ReenactError, Report, Scenario, Step, live_uuid,
    replay_key,
};
use crate::replayer::Replayer;
use crate::transcript::Transcript;

/// Drives the sans-IO session machine through `transcript` against a [`Replayer`], in
/// memory. Stops at the first mismatch, or at the first recorded operation the client does
/// not perform ([`Report::unsupported`]; the exchanges before it are still checked).
pub fn check_in_memory(transcript: &Transcript) -> Result<Report, ReenactError> {
    let scenario = Scenario::from_transcript(transcript)?;
    Ok(check_scenario_in_memory(&scenario, transcript))
}

/// Like [`check_in_memory`], but the client follows `scenario` (derived from another
/// transcript, or edited) while the replayer serves `transcript`: shows how a recording
/// differs from what a client does.
pub fn check_scenario_in_memory(scenario: &Scenario, transcript: &Transcript) -> Report {
    let mut report = Report::empty(scenario, Mode::InMemory, transcript.exchanges.len());
    // With an unsupported operation, re-enact what comes before it.
    let stop_at = scenario.unsupported.first().map(|u| u.exchange);
    let mut replayer = Replayer::new(transcript.clone());
    let base = in_memory_config(scenario);
    let live_pid: Vec<Uuid> = (0..scenario.pipelines.len())
        .map(|i| live_uuid(3, i))
        .collect();
    let live_attached: Vec<Uuid> = (0..scenario.attached.len())
        .map(|i| live_uuid(4, i))
        .collect();
    // A pool taken over keeps the shell (and pool) id of the one it takes over.
    let live_shell = |mut pool: usize| {
        while let Some(orig) = scenario.pools.get(pool).and_then(|p| p.takes_over) {
            pool = orig;
        }
        live_uuid(2, pool)
    };
    let pipeline_of = |id: Uuid| live_pid.iter().position(|p| *p == id);
    let mut actual = Actual {
        pipelines: vec![ExpectedPipeline::default(); scenario.pipelines.len()],
        ..Actual::default()
    };
    let mut sessions: Vec<Option<Session>> = Vec::new();
    sessions.resize_with(scenario.pools.len().max(1), || None);
    let mut lister: Option<ShellLister> = None;
    // One MessageID sequence for every pool and the listing, as one client has.
    let ids = SharedIds::default();
    let mut next_step = 0;
    let mut guard = 0usize;
    loop {
        if stop_at.is_some_and(|at| replayer.position() >= at) {
            break;
        }
        guard += 1;
        if guard > 100_000 {
            report
                .client_errors
                .push("the client loops without end".to_owned());
            break;
        }
        // Carry out the actions the recording has reached.
        let apply_one = |step: &Step,
                         sessions: &mut Vec<Option<Session>>,
                         lister: &mut Option<ShellLister>|
         -> Result<(), String> {
            let pid = |p: usize| live_pid.get(p).copied().unwrap_or_default();
            let plan = scenario.pools.get(step.pool);
            let mut base = base.clone();
            if scenario.session_id {
                let k = scenario
                    .exchange_sessions
                    .get(step.exchange)
                    .copied()
                    .flatten()
                    .unwrap_or(0);
                base.session_id = Some(live_uuid(1, k));
            }
            if matches!(step.action, Action::OpenPool | Action::ConnectPool) {
                let mut config = base.clone();
                if let Some(plan) = plan {
                    config.pool = plan.config.clone();
                }
                let mut session =
                    Session::new(config, live_shell(step.pool), Box::new(ids.clone()));
                match step.action {
                    Action::OpenPool => session.open(),
                    _ => session.connect(),
                }
                .map_err(|e| e.to_string())?;
                if let Some(slot) = sessions.get_mut(step.pool) {
                    *slot = Some(session);
                }
                return Ok(());
            }
            if step.action == Action::ListShells {
                *lister = Some(ShellLister::new(&base, Box::new(ids.clone())));
                return Ok(());
            }
            let Some(session) = sessions.get_mut(step.pool).and_then(Option::as_mut) else {
                return Err(format!("pool {} is not open", step.pool));
            };
            match &step.action {
                Action::Invoke { pipeline } => {
                    let Some(plan) = scenario.pipelines.get(*pipeline) else {
                        return Err(format!("no pipeline {pipeline}"));
                    };
                    session
                        .invoke(pid(*pipeline), plan.request.clone())
                        .map_err(|e| e.to_string())
                }
                Action::Input { pipeline, value } => session
                    .send_input(pid(*pipeline), value.clone())
                    .map_err(|e| e.to_string()),
                Action::EndInput { pipeline } => {
                    session.end_input(pid(*pipeline)).map_err(|e| e.to_string())
                }
                Action::HostReply { pipeline, response } => session
                    .host_reply(HostReply {
                        pipeline_id: pipeline.map(pid),
                        response: response.clone(),
                    })
                    .map_err(|e| e.to_string()),
                Action::Stop { pipeline } => {
                    session.stop(pid(*pipeline)).map_err(|e| e.to_string())
                }
                Action::PoolCall(call) => match call {
                    PoolCallKind::SetMax(n) => session.set_max_runspaces(*n),
                    PoolCallKind::SetMin(n) => session.set_min_runspaces(*n),
                    PoolCallKind::Available => session.get_available_runspaces(),
                    PoolCallKind::Reset => session.reset_runspace_state(),
                }
                .map(|_| ())
                .map_err(|e| e.to_string()),
                Action::ShellState => session.query_shell_state().map_err(|e| e.to_string()),
                Action::ExchangeKey => session
                    .exchange_key(replay_key().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string()),
                Action::Disconnect => session.disconnect().map_err(|e| e.to_string()),
                Action::Reconnect => session.reconnect().map_err(|e| e.to_string()),
                Action::Attach { attached } => session
                    .attach_pipeline(live_attached.get(*attached).copied().unwrap_or_default())
                    .map_err(|e| e.to_string()),
                Action::ConnectPipeline { pipeline } => session
                    .connect_pipeline(pid(*pipeline))
                    .map_err(|e| e.to_string()),
                Action::Close => {
                    session.close();
                    Ok(())
                }
                Action::OpenPool | Action::ConnectPool | Action::ListShells => Ok(()),
            }
        };
        while let Some(step) = scenario.steps.get(next_step)
            && step.exchange <= replayer.position()
        {
            if let Err(e) = apply_one(step, &mut sessions, &mut lister) {
                report
                    .client_errors
                    .push(format!("exchange #{}: {e}", step.exchange));
            }
            next_step += 1;
        }
        // The listing first, else the pool the recording's next exchange belongs to.
        let pool = scenario
            .exchange_pools
            .get(replayer.position())
            .copied()
            .flatten()
            .unwrap_or(0);
        let polled = match lister.as_mut().and_then(ShellLister::poll_request) {
            Some(r) => Ok(Some(r)),
            None => match sessions.get_mut(pool).and_then(Option::as_mut) {
                Some(session) => session.poll_request(),
                None => Ok(None),
            },
        };
        let request = match polled {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Idle: the next action is due (its exchange follows a skipped one), or done.
                if let Some(step) = scenario.steps.get(next_step) {
                    if let Err(e) = apply_one(step, &mut sessions, &mut lister) {
                        report
                            .client_errors
                            .push(format!("exchange #{}: {e}", step.exchange));
                    }
                    next_step += 1;
                    continue;
                }
                break;
            }
            Err(e) => {
                report.client_errors.push(e.to_string());
                break;
            }
        };
        let listing = matches!(request.operation, Operation::Enumerate | Operation::Pull);
        match replayer.handle(&request.body) {
            Ok(resp) => {
                let r = match (listing, lister.as_mut(), sessions.get_mut(pool)) {
                    (true, Some(l), _) => {
                        let r = if resp.drop_connection {
                            Err(rps_session::machine::SessionError::Transport {
                                operation: request.operation.name(),
                                message: "connection dropped (recorded)".to_owned(),
                            })
                        } else {
                            l.handle_response(resp.status, &resp.body)
                        };
                        if l.is_done() || r.is_err() {
                            lister = None;
                        }
                        r
                    }
                    (false, _, Some(Some(session))) => {
                        if resp.drop_connection {
                            session.handle_transport_error("connection dropped (recorded)")
                        } else {
                            session.handle_response(resp.status, &resp.body)
                        }
                    }
                    _ => Ok(()),
                };
                if r.is_err() && request.operation == Operation::ShellState {
                    actual.shell_states.push(None);
                }
                if let Err(e) = r {
                    report.client_errors.push(format!(
                        "exchange #{}: {e}",
                        replayer.position().saturating_sub(1)
                    ));
                }
            }
            Err(m) => {
                report.mismatches.push(m);
                break;
            }
        }
        for session in sessions.iter_mut().flatten() {
            while let Some(ev) = session.poll_event() {
                record_event(ev, &pipeline_of, &mut actual, &mut report);
            }
        }
    }
    finish(scenario, &replayer, &actual, &mut report);
    report
}

/// MessageIDs `...01`, `...02`, ... shared by every request source of one re-enactment.
#[derive(Debug, Default, Clone)]
struct SharedIds(Arc<std::sync::atomic::AtomicU64>);

impl rps_session::machine::IdSource for SharedIds {
    fn next_id(&mut self) -> Uuid {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Uuid::from_u128(u128::from(n))
    }
}

/// The session configuration of an in-memory re-enactment.
fn in_memory_config(scenario: &Scenario) -> SessionConfig {
    let mut config = SessionConfig::new(scenario.to.clone(), &scenario.configuration);
    config.resource_uri = scenario.resource_uri.clone();
    config.pool = scenario.pool.clone();
    config.terminate_finished_pipelines = scenario.terminate_finished_pipelines;
    config.create_options = scenario.create_options.clone();
    config.read_server_config = scenario.read_server_config;
    if scenario.session_id {
        config.session_id = Some(live_uuid(1, 0));
    }
    config
}

/// Files one machine event under the results.
fn record_event(
    ev: SessionEvent,
    pipeline_of: &dyn Fn(Uuid) -> Option<usize>,
    actual: &mut Actual,
    report: &mut Report,
) {
    match ev {
        SessionEvent::Opened { .. } => actual.pool_states.push(RunspacePoolState::Opened),
        SessionEvent::ShellState { alive, .. } => actual.shell_states.push(Some(alive)),
        SessionEvent::PoolState { state, .. } => actual.pool_states.push(state),
        SessionEvent::Output { pipeline_id, value } => {
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
                slot.output.push(value);
            }
        }
        SessionEvent::Record {
            pipeline_id,
            kind,
            value,
        } => {
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
                slot.records.push((kind, value));
            }
        }
        SessionEvent::HostCall(call) => {
            if let Some(slot) = call
                .pipeline_id
                .and_then(pipeline_of)
                .and_then(|p| actual.pipelines.get_mut(p))
            {
                slot.host_calls += 1;
            }
        }
        SessionEvent::PipelineFinished {
            pipeline_id, state, ..
        } => {
            if let Some(slot) = pipeline_of(pipeline_id).and_then(|p| actual.pipelines.get_mut(p)) {
                slot.state = Some(state);
            }
        }
        SessionEvent::PipelineError { message, .. } => {
            report.client_errors.push(message);
        }
        _ => {}
    }
}
