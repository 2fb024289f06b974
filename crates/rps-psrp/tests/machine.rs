//! Drives the client state machines with recorded pypsrp sessions: the client's recorded
//! actions are replayed as API calls, the server's recorded bytes are fed to `receive`, and
//! the states, outputs and queued message types are checked against the recording.

mod common;

use bytes::Bytes;
use rps_psrp::event::{ClientEvent, RecordKind, StreamKind};
use rps_psrp::fragment::{Defragmenter, FragmentReader};
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{Message, PsInvocationState, RunspacePoolState};
use rps_psrp::pool::{PoolConfig, RunspacePool};

struct Replay {
    pool: RunspacePool,
    events: Vec<ClientEvent>,
    /// Types of the messages our pool queued, in order.
    sent: Vec<MessageType>,
    /// Types of the client messages in the recording, in order.
    recorded: Vec<MessageType>,
}

fn drain(pool: &mut RunspacePool, sent: &mut Vec<MessageType>) {
    let mut d = Defragmenter::default();
    while let Some(out) = pool.data_to_send(32 * 1024).expect("data_to_send") {
        let is_reply = matches!(out.target.stream, StreamKind::PromptResponse);
        let mut done = Vec::new();
        d.feed(Bytes::from(out.data), &mut done)
            .expect("own fragments");
        for m in done {
            let raw = RawMessage::decode(m.data).expect("own header");
            assert_eq!(raw.header.rpid, pool.id());
            assert_eq!(out.target.pipeline_id.unwrap_or_default(), raw.header.pid);
            assert_eq!(
                is_reply,
                matches!(
                    raw.header.message_type,
                    MessageType::PipelineHostResponse | MessageType::RunspacePoolHostResponse
                )
            );
            sent.push(raw.header.message_type);
        }
    }
}

fn replay(name: &str) -> Replay {
    let mut all = replay_pools(name);
    assert_eq!(all.len(), 1, "{name}: one pool expected");
    all.pop().expect("a pool").1
}

/// Replays a recording; one [`Replay`] per WS-Man shell, in order of creation.
fn replay_pools(name: &str) -> Vec<(String, Replay)> {
    let exchanges = common::load(name);
    let mut client_defrag = Defragmenter::default();
    let mut pools: Vec<(String, Replay)> = Vec::new();
    for (i, ex) in exchanges.iter().enumerate() {
        if common::is_cmd_shell(&ex.request) {
            continue;
        }
        let action = common::action(&ex.request);
        let shell = common::shell_id(&ex.request).unwrap_or_default();
        let idx = pools.iter().position(|(s, _)| *s == shell);
        // Transport-level actions the pool is told about.
        if let Some(ix) = idx {
            let pool = &mut pools[ix].1.pool;
            match action.as_str() {
                "Disconnect" => pool.disconnect().expect("disconnect"),
                "Reconnect" if pool.state() == RunspacePoolState::Disconnected => {
                    pool.reconnect().expect("reconnect")
                }
                "Connect" => {
                    if let Some(cid) = common::command_id(&ex.request) {
                        let pid = uuid::Uuid::parse_str(&cid).expect("command id");
                        // Old recordings carry RFC 4122 ordered ids in the PID field:
                        // register both readings; only one receives messages.
                        pool.connect_pipeline(pid).expect("connect pipeline");
                        let swapped = uuid::Uuid::from_bytes_le(*pid.as_bytes());
                        if swapped != pid {
                            pool.connect_pipeline(swapped).expect("connect pipeline");
                        }
                    }
                }
                _ => {}
            }
        }
        // The client's recorded messages become API calls.
        let mut msgs = Vec::new();
        for p in common::payloads(&ex.request) {
            for f in FragmentReader::new(Bytes::from(p)) {
                if let Some(done) = client_defrag.push(f.expect("fragment")).expect("defrag") {
                    msgs.push(RawMessage::decode(done.data).expect("header"));
                }
            }
        }
        for raw in msgs {
            let ty = raw.header.message_type;
            let msg = Message::decode(ty, &raw.data).expect("client payload");
            let pid = raw.header.pid;
            let fresh = matches!(ty, MessageType::SessionCapability)
                && (action == "Create" || action == "Connect");
            if fresh {
                let version = match &msg {
                    Message::SessionCapability(sc) => sc.protocol_version.clone(),
                    _ => unreachable!(),
                };
                let pool = RunspacePool::new(
                    raw.header.rpid,
                    PoolConfig {
                        protocol_version: version,
                        ..PoolConfig::default()
                    },
                );
                let r = Replay {
                    pool,
                    events: Vec::new(),
                    sent: Vec::new(),
                    recorded: Vec::new(),
                };
                match pools.iter_mut().find(|(s, _)| *s == shell) {
                    Some(slot) => slot.1 = r,
                    None => pools.push((shell.clone(), r)),
                }
            }
            let Some((_, r)) = pools.iter_mut().find(|(s, _)| *s == shell) else {
                panic!("{name} #{i}: {ty} before any pool");
            };
            r.recorded.push(ty);
            let p = &mut r.pool;
            match msg {
                Message::SessionCapability(_) => {}
                Message::PublicKey(_) => {
                    let mut rng = common::TestRng(0x2545_f491_4f6c_dd1d);
                    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("key");
                    p.exchange_key(key).expect("exchange key");
                }
                Message::InitRunspacePool(_) => p.open().expect("open"),
                Message::ConnectRunspacePool(_) => p.connect().expect("connect"),
                Message::CreatePipeline(cp) => {
                    p.create_pipeline(pid, *cp).expect("create pipeline");
                }
                Message::GetCommandMetadata(g) => {
                    p.get_command_metadata(pid, g).expect("gcm");
                }
                Message::PipelineInput(v) => p.pipeline(pid).unwrap().send_input(v).expect("input"),
                Message::EndOfPipelineInput => p.pipeline(pid).unwrap().end_input().expect("eoi"),
                Message::SetMaxRunspaces(s) => {
                    assert_eq!(
                        p.set_max_runspaces(s.max_runspaces).expect("max"),
                        s.call_id
                    );
                }
                Message::SetMinRunspaces(s) => {
                    assert_eq!(
                        p.set_min_runspaces(s.min_runspaces).expect("min"),
                        s.call_id
                    );
                }
                Message::GetAvailableRunspaces(g) => {
                    assert_eq!(p.get_available_runspaces().expect("gar"), g.call_id);
                }
                Message::ResetRunspaceState(rr) => {
                    assert_eq!(p.reset_runspace_state().expect("reset"), rr.call_id);
                }
                Message::PipelineHostResponse(resp) => {
                    let call = r
                        .events
                        .iter()
                        .find_map(|e| match e {
                            ClientEvent::HostCall(c) if c.call.call_id == resp.call_id => {
                                Some(c.clone())
                            }
                            _ => None,
                        })
                        .expect("host call answered");
                    assert!(call.needs_reply());
                    p.send_host_reply(call.respond(resp.result)).expect("reply");
                }
                other => panic!("{name} #{i}: no replay for {:?}", other.message_type()),
            }
            drain(p, &mut r.sent);
        }
        // The server's recorded bytes are received by the pool of the request's shell.
        let Some(resp) = &ex.response else { continue };
        // Older servers pick their own ShellId in the CreateResponse.
        let mut shell = shell;
        if let Some(actual) = common::shell_id(resp).filter(|_| action == "Create") {
            if let Some(slot) = pools.iter_mut().find(|(s, _)| *s == shell) {
                slot.0 = actual.clone();
            }
            shell = actual;
        }
        let Some((_, r)) = pools.iter_mut().find(|(s, _)| *s == shell) else {
            continue;
        };
        let stream = common::command_id(&ex.request).and_then(|cid| {
            let cid = uuid::Uuid::parse_str(&cid).ok()?;
            [cid, uuid::Uuid::from_bytes_le(*cid.as_bytes())]
                .into_iter()
                .find(|id| r.pool.pipeline_state(*id).is_some())
        });
        for payload in common::payloads(resp) {
            r.pool
                .receive_on(stream, Bytes::from(payload))
                .expect("receive");
            while let Some(e) = r
                .pool
                .next_event()
                .unwrap_or_else(|e| panic!("{name} #{i}: {e}"))
            {
                r.events.push(e);
            }
        }
    }
    pools
}

fn outputs(r: &Replay) -> Vec<String> {
    r.events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Output { value, .. } => Some(
                value
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| value.as_i64().map(|n| n.to_string()))
                    .unwrap_or_else(|| format!("{value:?}")),
            ),
            _ => None,
        })
        .collect()
}

fn final_pipeline_states(r: &Replay) -> Vec<PsInvocationState> {
    r.events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::PipelineState { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn open_runspace_reaches_opened() {
    let r = replay("test_psrp_open_runspace.yml");
    assert_eq!(r.sent, r.recorded);
    assert_eq!(
        r.sent,
        [
            MessageType::SessionCapability,
            MessageType::InitRunspacePool
        ]
    );
    assert_eq!(r.pool.state(), RunspacePoolState::Opened);
    assert_eq!(r.pool.protocol_version(), Some("2.3"));
    assert!(r.pool.application_private_data().is_some());
    assert!(matches!(r.events[0], ClientEvent::Negotiated { .. }));
    assert!(r.events.iter().any(|e| matches!(
        e,
        ClientEvent::PoolState {
            state: RunspacePoolState::Opened,
            error: None
        }
    )));
}

#[test]
fn execute_ps_yields_recorded_output() {
    let r = replay("test_client_execute_ps.yml");
    assert_eq!(r.sent, r.recorded);
    let out = outputs(&r);
    assert_eq!(out.len(), 8);
    assert_eq!(&out[..2], ["winrm", "Running"]);
    assert!(out[5].starts_with("Running  winrm"));
    assert_eq!(final_pipeline_states(&r), [PsInvocationState::Completed]);
    assert!(r.events.iter().any(|e| matches!(
        e,
        ClientEvent::Record {
            kind: RecordKind::Progress,
            ..
        }
    )));
}

#[test]
fn protocol_2_1_server_negotiates_down() {
    let r = replay("test_psrp_run_protocol_version_2.1.yml");
    assert_eq!(r.sent, r.recorded);
    assert_eq!(r.pool.protocol_version(), Some("2.1"));
    assert_eq!(outputs(&r).len(), 4);
    assert_eq!(final_pipeline_states(&r), [PsInvocationState::Completed]);
    let debug = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Record {
                    kind: RecordKind::Debug,
                    ..
                }
            )
        })
        .count();
    assert_eq!(debug, 2);
}

#[test]
fn protocol_2_3_server() {
    let r = replay("test_psrp_run_protocol_version_2.3.yml");
    assert_eq!(r.sent, r.recorded);
    assert_eq!(r.pool.protocol_version(), Some("2.3"));
    assert_eq!(outputs(&r).len(), 4);
    assert_eq!(final_pipeline_states(&r), [PsInvocationState::Completed]);
}

#[test]
fn host_calls_are_surfaced_and_answered() {
    let r = replay("test_psrp_pshost_raw_ui_mocked_methods.yml");
    assert_eq!(r.sent, r.recorded);
    let calls: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::HostCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 14);
    assert_eq!(calls.iter().filter(|c| c.needs_reply()).count(), 1);
    assert_eq!(calls[0].call.method.name(), "SetForegroundColor");
    assert!(r.sent.contains(&MessageType::PipelineHostResponse));
    assert_eq!(outputs(&r).len(), 17);
    assert_eq!(final_pipeline_states(&r), [PsInvocationState::Completed]);
}

#[test]
fn failed_pipeline_carries_error_record() {
    let r = replay("test_client_execute_ps_failure.yml");
    let failed = r.events.iter().find_map(|e| match e {
        ClientEvent::PipelineState {
            state: PsInvocationState::Failed,
            error_record,
            ..
        } => error_record.clone(),
        _ => None,
    });
    let record = failed.expect("a Failed state with an error record");
    let text = record
        .as_object()
        .and_then(|o| o.to_string.clone())
        .unwrap_or_default();
    assert!(text.contains("Get-ServiceTypo"), "{text}");
}

#[test]
fn set_runspaces_and_reset_state() {
    let r = replay("test_psrp_set_runspaces.yml");
    assert_eq!(r.sent, r.recorded);
    let answers = r
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Availability { .. }))
        .count();
    assert_eq!(answers, 6);
    let r = replay("test_psrp_reset_runspace_state_fail.yml");
    assert!(r.events.iter().any(|e| matches!(
        e,
        ClientEvent::Availability {
            response: rps_psrp::messages::Availability::Success(false),
            ..
        }
    )));
}

#[test]
fn every_psrp_recording_replays() {
    let mut replayed = 0;
    for name in common::recordings() {
        if common::raw_messages(&name).is_empty() {
            continue;
        }
        for (shell, r) in replay_pools(&name) {
            assert_eq!(r.sent, r.recorded, "{name} {shell}");
            assert!(
                r.events
                    .iter()
                    .any(|e| matches!(e, ClientEvent::PoolState { .. })),
                "{name} {shell}: no pool state"
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 42, "{replayed} pools replayed");
}

#[test]
fn disconnected_commands_reconnect_and_collect_output() {
    let pools = replay_pools("test_psrp_disconnected_commands.yml");
    assert_eq!(pools.len(), 2);
    for (shell, r) in &pools {
        assert_eq!(r.sent, r.recorded, "{shell}");
        assert_eq!(
            r.sent,
            [
                MessageType::SessionCapability,
                MessageType::ConnectRunspacePool
            ],
            "the second client only connects"
        );
        assert!(
            r.events
                .iter()
                .any(|e| matches!(e, ClientEvent::InitData(_)))
        );
        assert!(r.events.iter().any(|e| matches!(
            e,
            ClientEvent::PoolState {
                state: RunspacePoolState::Opened,
                ..
            }
        )));
        assert_eq!(outputs(r).len(), 2, "{shell}");
        assert_eq!(final_pipeline_states(r), [PsInvocationState::Completed]);
    }
}

#[test]
fn recorded_records_read_through_typed_views() {
    use rps_psrp::event::TypedRecord;
    let mut seen = std::collections::BTreeMap::new();
    for name in [
        "test_psrp_merge_commands.yml",
        "test_psrp_stream_output_invocation.yml",
        "test_psrp_stream_no_output_invocation.yml",
        "test_client_execute_ps_failure.yml",
        "test_client_copy_file_warning.yml",
    ] {
        for (shell, r) in replay_pools(name) {
            for e in &r.events {
                if let ClientEvent::Record { kind, value, .. } = e {
                    let typed = kind
                        .read(value)
                        .unwrap_or_else(|err| panic!("{name} {shell} {kind:?}: {err}"));
                    *seen.entry(format!("{kind:?}")).or_insert(0) += 1;
                    if let TypedRecord::Informational(i) = &typed {
                        assert!(!i.message.is_empty(), "{name}: empty {kind:?}");
                    }
                }
                if let Some(err) = e.error_record() {
                    let err = err.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!err.message().is_empty());
                }
            }
        }
    }
    for kind in [
        "Error",
        "Warning",
        "Verbose",
        "Debug",
        "Progress",
        "Information",
    ] {
        assert!(seen.contains_key(kind), "no {kind} record in {seen:?}");
    }
    let r = replay("test_client_execute_ps_failure.yml");
    let failed = r
        .events
        .iter()
        .find_map(ClientEvent::error_record)
        .expect("error record");
    assert!(failed.expect("typed").message().contains("Get-ServiceTypo"));
}
