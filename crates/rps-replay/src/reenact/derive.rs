//! Deriving a [`Scenario`] from a transcript ([`Scenario::from_transcript`]).

use std::collections::HashMap;

use bytes::Bytes;
use rps_psrp::event::RecordKind;
use rps_psrp::fragment::Defragmenter;
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{Message, PsInvocationState, RunspacePoolState};
use rps_psrp::pool::PoolConfig;
use rps_wsman::ns::{resource, signal};
use rps_wsman::{Body, Envelope, parse_uuid_urn};
use uuid::Uuid;

use super::{
    Action, Expected, ExpectedPipeline, PlannedPipeline, PlannedPool, PoolCallKind, ReenactError,
    Scenario, Step, Unsupported,
};
use crate::replayer::detect_guid_order;
use crate::transcript::Transcript;

fn record_kind(t: MessageType) -> Option<RecordKind> {
    Some(match t {
        MessageType::ErrorRecord => RecordKind::Error,
        MessageType::WarningRecord => RecordKind::Warning,
        MessageType::VerboseRecord => RecordKind::Verbose,
        MessageType::DebugRecord => RecordKind::Debug,
        MessageType::ProgressRecord => RecordKind::Progress,
        MessageType::InformationRecord => RecordKind::Information,
        _ => return None,
    })
}

/// Every PSRP message completed by the PSRP payloads of `env`.
fn messages(defrag: &mut Defragmenter, env: &Envelope) -> Result<Vec<RawMessage>, String> {
    let mut out = Vec::new();
    for p in env.psrp_payloads().map_err(|e| e.to_string())? {
        let mut assembled = Vec::new();
        defrag
            .feed(Bytes::from(p.data.into_owned()), &mut assembled)
            .map_err(|e| e.to_string())?;
        for a in assembled {
            out.push(RawMessage::decode(a.data).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

impl Scenario {
    /// Reads a transcript. See the [module docs](super).
    pub fn from_transcript(transcript: &Transcript) -> Result<Scenario, ReenactError> {
        let order = detect_guid_order(transcript);
        let mut sc = Scenario {
            source: transcript.meta.source.clone(),
            to: String::new(),
            resource_uri: String::new(),
            configuration: String::new(),
            protocol_version: "2.3".to_owned(),
            session_id: false,
            terminate_finished_pipelines: false,
            create_options: Vec::new(),
            pool: PoolConfig::default(),
            pools: Vec::new(),
            exchange_pools: Vec::new(),
            exchange_sessions: Vec::new(),
            pipelines: Vec::new(),
            attached: Vec::new(),
            read_server_config: false,
            steps: Vec::new(),
            expected: Expected::default(),
            unsupported: Vec::new(),
            guid_order: order,
        };
        let mut created = false;
        // ShellId (recorded) -> pool index.
        let mut by_shell: HashMap<Uuid, usize> = HashMap::new();
        let mut last_pool = 0usize;
        // The distinct recorded WS-Man SessionIds, in order of appearance.
        let mut session_ids: Vec<Uuid> = Vec::new();
        // Pools taken over that opened on their application private data.
        let mut opened_on_data: std::collections::HashSet<Uuid> = Default::default();
        // A Command whose CREATE_PIPELINE continues in the next Sends: (exchange, CommandId).
        let mut split_command: Option<(usize, Option<Uuid>)> = None;
        let mut to_server = Defragmenter::default();
        let mut to_client = Defragmenter::default();
        // WS-Man CommandId (as the server chose it) -> pipeline index.
        let mut by_command: HashMap<Uuid, usize> = HashMap::new();
        let mut by_pid: HashMap<Uuid, usize> = HashMap::new();
        let mut unsupported = |exchange: usize, feature: &str| {
            sc.unsupported.push(Unsupported {
                exchange,
                feature: feature.to_owned(),
            });
        };
        for (i, ex) in transcript.exchanges.iter().enumerate() {
            let env = Envelope::decode(ex.request.body.as_bytes()).map_err(|e| {
                ReenactError::Request {
                    exchange: i,
                    error: e.to_string(),
                }
            })?;
            let psrp = |error: String| ReenactError::Psrp { exchange: i, error };
            let response = ex
                .response
                .as_ref()
                .filter(|r| r.status == 200)
                .and_then(|r| Envelope::decode(r.body.as_bytes()).ok());
            // The pool this exchange belongs to: a new one for a Create or a pool Connect,
            // else the one its ShellId names.
            let named = env
                .header
                .selectors
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case("ShellId"))
                .and_then(|s| parse_uuid_urn(&s.value))
                .and_then(|id| by_shell.get(&id).copied());
            let cur_pool = match &env.body {
                Body::Create(_) => sc.pools.len(),
                Body::Connect(c) if c.connect_xml.is_some() => sc.pools.len(),
                Body::Enumerate(_) | Body::Pull(_) => usize::MAX,
                _ => named.unwrap_or(last_pool),
            };
            sc.exchange_pools
                .push((cur_pool != usize::MAX).then_some(cur_pool));
            let session = env
                .header
                .session_id
                .as_deref()
                .and_then(parse_uuid_urn)
                .map(|s| match session_ids.iter().position(|k| *k == s) {
                    Some(k) => k,
                    None => {
                        session_ids.push(s);
                        session_ids.len() - 1
                    }
                });
            sc.exchange_sessions.push(session);
            if cur_pool != usize::MAX {
                last_pool = cur_pool;
            }
            match &env.body {
                Body::Create(shell) => {
                    let uri = env.resource_uri().unwrap_or_default();
                    if uri.eq_ignore_ascii_case(resource::CMD) || shell.creation_xml.is_none() {
                        return Err(ReenactError::NotPowerShell(format!(
                            "exchange #{i} creates a WinRS shell ({uri})"
                        )));
                    }
                    let first = !created;
                    created = true;
                    let recorded_shell = shell
                        .shell_id
                        .as_deref()
                        .and_then(parse_uuid_urn)
                        .or_else(|| response.as_ref().and_then(|r| r.shell_uuid()));
                    for id in [
                        recorded_shell,
                        response.as_ref().and_then(|r| r.shell_uuid()),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        by_shell.insert(id, cur_pool);
                    }
                    let mut config = PoolConfig::default();
                    let version = env
                        .header
                        .option("protocolversion")
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_else(|| "2.3".to_owned());
                    for m in messages(&mut to_server, &env).map_err(psrp)? {
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        if let Message::InitRunspacePool(init) = typed {
                            config = PoolConfig {
                                min_runspaces: init.min_runspaces,
                                max_runspaces: init.max_runspaces,
                                thread_options: init.thread_options,
                                apartment_state: init.apartment_state,
                                host_info: init.host_info,
                                application_arguments: init.application_arguments,
                                protocol_version: version.clone(),
                                ..PoolConfig::default()
                            };
                        }
                    }
                    sc.pools.push(PlannedPool {
                        recorded_shell,
                        exchange: i,
                        config: config.clone(),
                        takes_over: None,
                    });
                    sc.steps.push(Step {
                        exchange: i,
                        pool: cur_pool,
                        action: Action::OpenPool,
                    });
                    if !first {
                        continue;
                    }
                    sc.pool = config;
                    sc.to = env.header.to.clone().unwrap_or_default();
                    sc.resource_uri = uri.to_owned();
                    sc.configuration = uri.rsplit('/').next().unwrap_or_default().to_owned();
                    sc.session_id = env.header.session_id.is_some();
                    if let Some(v) = env.header.option("protocolversion") {
                        sc.protocol_version = v.trim().to_owned();
                    }
                    sc.create_options = env
                        .header
                        .options
                        .iter()
                        .flat_map(|set| set.options.iter())
                        .filter(|o| !o.name.eq_ignore_ascii_case("protocolversion"))
                        .map(|o| (o.name.clone(), o.value.clone()))
                        .collect();
                }
                Body::Command(_) => {
                    let cid = response.as_ref().and_then(|r| r.command_uuid());
                    let done = messages(&mut to_server, &env).map_err(psrp)?;
                    if done.is_empty() {
                        // CREATE_PIPELINE is larger than one envelope: its other fragments
                        // follow in Sends.
                        split_command = Some((i, cid));
                    }
                    for m in done {
                        match Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?
                        {
                            Message::CreatePipeline(cp) => {
                                let plan = PlannedPipeline {
                                    recorded_id: order.intended(m.header.pid),
                                    exchange: i,
                                    pool: cur_pool,
                                    request: *cp,
                                };
                                let index = plan_pipeline(
                                    &mut sc.pipelines,
                                    &mut sc.expected.pipelines,
                                    &mut by_pid,
                                    &mut by_command,
                                    plan,
                                    cid,
                                );
                                sc.steps.push(Step {
                                    exchange: i,
                                    pool: cur_pool,
                                    action: Action::Invoke { pipeline: index },
                                });
                            }
                            other => unsupported(
                                i,
                                &format!("{} in a Command", message_name(&other, &m)),
                            ),
                        }
                    }
                }
                Body::Send(_) => {
                    for m in messages(&mut to_server, &env).map_err(psrp)? {
                        let pipeline = by_pid.get(&order.intended(m.header.pid)).copied();
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        let action = match (typed, pipeline) {
                            (Message::CreatePipeline(cp), None) if split_command.is_some() => {
                                // The end of a CREATE_PIPELINE whose Command carried the
                                // first fragments: the client invoked it there.
                                let Some((at, cid)) = split_command.take() else {
                                    continue;
                                };
                                let plan = PlannedPipeline {
                                    recorded_id: order.intended(m.header.pid),
                                    exchange: at,
                                    pool: cur_pool,
                                    request: *cp,
                                };
                                let pipeline = plan_pipeline(
                                    &mut sc.pipelines,
                                    &mut sc.expected.pipelines,
                                    &mut by_pid,
                                    &mut by_command,
                                    plan,
                                    cid,
                                );
                                Action::Invoke { pipeline }
                            }
                            (Message::PipelineInput(value), Some(pipeline)) => {
                                Action::Input { pipeline, value }
                            }
                            (Message::EndOfPipelineInput, Some(pipeline)) => {
                                Action::EndInput { pipeline }
                            }
                            (Message::PipelineHostResponse(response), Some(p)) => {
                                Action::HostReply {
                                    pipeline: Some(p),
                                    response,
                                }
                            }
                            (Message::RunspacePoolHostResponse(response), _) => Action::HostReply {
                                pipeline: None,
                                response,
                            },
                            (Message::SetMaxRunspaces(m), _) => {
                                Action::PoolCall(PoolCallKind::SetMax(m.max_runspaces))
                            }
                            (Message::SetMinRunspaces(m), _) => {
                                Action::PoolCall(PoolCallKind::SetMin(m.min_runspaces))
                            }
                            (Message::GetAvailableRunspaces(_), _) => {
                                Action::PoolCall(PoolCallKind::Available)
                            }
                            (Message::ResetRunspaceState(_), _) => {
                                Action::PoolCall(PoolCallKind::Reset)
                            }
                            (other, _) => {
                                let feature = match m.header.message_type {
                                    MessageType::PublicKey => {
                                        sc.steps.push(Step {
                                            exchange: i,
                                            pool: cur_pool,
                                            action: Action::ExchangeKey,
                                        });
                                        continue;
                                    }
                                    MessageType::GetCommandMetadata => {
                                        "GET_COMMAND_METADATA".to_owned()
                                    }
                                    _ => format!("{} in a Send", message_name(&other, &m)),
                                };
                                unsupported(i, &feature);
                                continue;
                            }
                        };
                        // An Invoke belongs to the Command that began it.
                        let exchange = match &action {
                            Action::Invoke { pipeline } => {
                                sc.pipelines.get(*pipeline).map_or(i, |p| p.exchange)
                            }
                            _ => i,
                        };
                        sc.steps.push(Step {
                            exchange,
                            pool: cur_pool,
                            action,
                        });
                    }
                }
                Body::Signal(s) => {
                    let cid = s.command_id.as_deref().and_then(parse_uuid_urn);
                    let pipeline = cid.and_then(|c| by_command.get(&c).copied());
                    if s.code.trim().eq_ignore_ascii_case(signal::TERMINATE) {
                        sc.terminate_finished_pipelines = true;
                    } else if let (true, Some(pipeline)) = (
                        s.code.trim().eq_ignore_ascii_case(signal::PS_CTRL_C),
                        pipeline,
                    ) {
                        sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
                            action: Action::Stop { pipeline },
                        });
                    } else {
                        unsupported(i, &format!("Signal {}", s.code));
                    }
                }
                Body::Delete => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Close,
                }),
                Body::Receive(r) => {
                    let cid = r.command_id.as_deref().and_then(parse_uuid_urn);
                    if let Some(c) =
                        cid.filter(|c| !by_command.contains_key(c) && !sc.attached.contains(c))
                    {
                        // A command this client never started: read it as another's.
                        let index = sc.attached.len();
                        sc.attached.push(c);
                        sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
                            action: Action::Attach { attached: index },
                        });
                    }
                }
                Body::Disconnect(_) => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Disconnect,
                }),
                Body::Reconnect => sc.steps.push(Step {
                    exchange: i,
                    pool: cur_pool,
                    action: Action::Reconnect,
                }),
                Body::Connect(c) if c.connect_xml.is_some() => {
                    // A new pool object takes over the disconnected shell.
                    let Some(orig) = named else {
                        unsupported(i, "connect to a pool the recording did not open");
                        continue;
                    };
                    messages(&mut to_server, &env).map_err(psrp)?;
                    let recorded_shell = sc.pools.get(orig).and_then(|p| p.recorded_shell);
                    let config = sc
                        .pools
                        .get(orig)
                        .map(|p| p.config.clone())
                        .unwrap_or_default();
                    if let Some(id) = recorded_shell {
                        by_shell.insert(id, cur_pool);
                    }
                    sc.pools.push(PlannedPool {
                        recorded_shell,
                        exchange: i,
                        config,
                        takes_over: Some(orig),
                    });
                    sc.steps.push(Step {
                        exchange: i,
                        pool: cur_pool,
                        action: Action::ConnectPool,
                    });
                }
                Body::Connect(c) => {
                    let cid = c.command_id.as_deref().and_then(parse_uuid_urn);
                    match cid.and_then(|c| by_command.get(&c).copied()) {
                        Some(pipeline) => sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
                            action: Action::ConnectPipeline { pipeline },
                        }),
                        None => unsupported(i, "connect to a command the recording did not start"),
                    }
                }
                Body::Enumerate(e)
                    if env
                        .resource_uri()
                        .is_some_and(|u| u.eq_ignore_ascii_case(resource::SHELL))
                        && e.filter.is_none() =>
                {
                    sc.steps.push(Step {
                        exchange: i,
                        pool: last_pool,
                        action: Action::ListShells,
                    });
                }
                // The command enumerations and Pulls of a shell listing.
                Body::Enumerate(_) | Body::Pull(_) => {}
                Body::Get => match env.resource_uri().unwrap_or_default() {
                    uri if uri.eq_ignore_ascii_case(resource::CONFIG) && !created => {
                        sc.read_server_config = true;
                    }
                    uri if uri.eq_ignore_ascii_case(resource::SHELL) && created => {
                        sc.steps.push(Step {
                            exchange: i,
                            pool: cur_pool,
                            action: Action::ShellState,
                        });
                        sc.expected.shell_states.push(recorded_shell_state(ex));
                    }
                    uri => unsupported(i, &format!("WS-Transfer Get of {uri}")),
                },
                _ => unsupported(i, &format!("{} request", env.action().unwrap_or("unknown"))),
            }
            // Expected results, from the recorded responses.
            let Some(resp) = response else { continue };
            match &resp.body {
                Body::ConnectResponse(_) => {
                    messages(&mut to_client, &resp).map_err(psrp)?;
                }
                Body::ReceiveResponse(r) => {
                    for m in messages(&mut to_client, &resp).map_err(psrp)? {
                        let pipeline = by_pid.get(&order.intended(m.header.pid)).copied();
                        let typed = Message::decode(m.header.message_type, &m.data)
                            .map_err(|e| psrp(e.to_string()))?;
                        let slot = pipeline.and_then(|p| sc.expected.pipelines.get_mut(p));
                        match (typed, slot) {
                            (Message::RunspacePoolState(s), _) => {
                                sc.expected.pool_states.push(s.state)
                            }
                            (Message::ApplicationPrivateData(_), _) => {
                                // A pool taken over opens on its private data when the
                                // server announces no state.
                                let rpid = order.intended(m.header.rpid);
                                let taken_over = by_shell
                                    .get(&rpid)
                                    .and_then(|p| sc.pools.get(*p))
                                    .is_some_and(|p| p.takes_over.is_some());
                                if taken_over && opened_on_data.insert(rpid) {
                                    sc.expected.pool_states.push(RunspacePoolState::Opened);
                                }
                            }
                            (Message::PipelineOutput(v), Some(p)) => p.output.push(v),
                            (Message::PipelineState(s), Some(p)) => p.state = Some(s.state),
                            (Message::PipelineHostCall(_), Some(p)) => p.host_calls += 1,
                            (Message::EncryptedSessionKey(_), _) => {
                                sc.expected.key_exchanged = true;
                            }
                            (typed, Some(p)) => {
                                if let Some(kind) = record_kind(m.header.message_type) {
                                    let value = match typed {
                                        Message::ErrorRecord(v)
                                        | Message::WarningRecord(v)
                                        | Message::VerboseRecord(v)
                                        | Message::DebugRecord(v)
                                        | Message::ProgressRecord(v)
                                        | Message::InformationRecord(v) => v,
                                        _ => continue,
                                    };
                                    p.records.push((kind, value));
                                }
                            }
                            _ => {}
                        }
                    }
                    if let Some(cs) = &r.command_state
                        && cs.is_done()
                        && let Some(cid) = cs.command_id.as_deref().and_then(parse_uuid_urn)
                        && let Some(p) = by_command
                            .get(&cid)
                            .and_then(|p| sc.expected.pipelines.get_mut(*p))
                        && p.state.is_none()
                    {
                        p.state = Some(PsInvocationState::Completed);
                    }
                }
                Body::DeleteResponse | Body::Empty if matches!(env.body, Body::Delete) => {
                    sc.expected.closed = true;
                }
                _ => {}
            }
        }
        if !created {
            return Err(ReenactError::NotPowerShell(
                "no exchange creates a PowerShell runspace pool".to_owned(),
            ));
        }
        Ok(sc)
    }
}

/// What a recorded shell-state Get answered: alive, not alive (gone, disconnected, timed
/// out, unreachable), or `None` for another error.
fn recorded_shell_state(ex: &crate::transcript::Exchange) -> Option<bool> {
    if matches!(
        ex.transport,
        Some(crate::transcript::TransportEvent::ConnectionError)
    ) {
        return Some(false);
    }
    let resp = ex.response.as_ref()?;
    let env = Envelope::decode(resp.body.as_bytes()).ok()?;
    match env.body {
        Body::GetResponse(rps_wsman::Item::Shell(shell)) => Some(
            !shell
                .state
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("Disconnected")),
        ),
        Body::Fault(f) if f.is_operation_timeout() || f.is_invalid_selectors() => Some(false),
        _ => None,
    }
}

fn message_name(m: &Message, raw: &RawMessage) -> String {
    match m {
        Message::Other { message_type, .. } => message_type.name().to_owned(),
        _ => raw.header.message_type.name().to_owned(),
    }
}

/// Adds a pipeline to the plan, known by its PID and by the CommandId the server answered
/// with (`cid`); returns its index.
fn plan_pipeline(
    pipelines: &mut Vec<PlannedPipeline>,
    expected: &mut Vec<ExpectedPipeline>,
    by_pid: &mut HashMap<Uuid, usize>,
    by_command: &mut HashMap<Uuid, usize>,
    plan: PlannedPipeline,
    cid: Option<Uuid>,
) -> usize {
    let index = pipelines.len();
    by_pid.insert(plan.recorded_id, index);
    by_command.insert(plan.recorded_id, index);
    if let Some(cid) = cid {
        by_command.insert(cid, index);
    }
    pipelines.push(plan);
    expected.push(ExpectedPipeline::default());
    index
}
