//! Drives the session machine, in memory, through real pypsrp recordings: the machine must
//! issue the recorded operations in order and reach the recorded outputs and states.

use std::path::PathBuf;

use bytes::Bytes;
use rps_psrp::clixml::Value;
use rps_psrp::fragment::Defragmenter;
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{Message, PsInvocationState};
use rps_session::machine::{Operation, SequentialIds, Session, SessionConfig, SessionEvent};
use rps_wsman::{Body, Envelope};
use uuid::Uuid;

#[derive(serde::Deserialize)]
struct Recording {
    messages: Vec<Exchange>,
}

#[derive(serde::Deserialize)]
struct Exchange {
    request: String,
    response: Option<String>,
    #[serde(default)]
    transport_error: Option<serde_yaml_ng::Value>,
}

fn recording(name: &str) -> Recording {
    let dir = std::env::var_os("RPS_PEER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures")
        });
    assert!(dir.is_dir(), "peer fixtures not found at {}", dir.display());
    let path = dir
        .join("jborean93__pypsrp/tests/tests_pypsrp/responses")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read recording");
    serde_yaml_ng::from_str(&text).expect("parse recording")
}

/// Every PSRP message inside `payloads`, reassembled.
fn messages(payloads: impl IntoIterator<Item = Vec<u8>>) -> Vec<RawMessage> {
    let mut defrag = Defragmenter::default();
    let mut out = Vec::new();
    for p in payloads {
        let mut assembled = Vec::new();
        defrag
            .feed(Bytes::from(p), &mut assembled)
            .expect("fragments");
        for a in assembled {
            out.push(RawMessage::decode(a.data).expect("message"));
        }
    }
    out
}

fn recorded_operation(env: &Envelope) -> Operation {
    let cid = env.command_uuid();
    match &env.body {
        Body::Create(_) => Operation::Create,
        Body::Receive(_) => Operation::Receive(cid),
        Body::Command(_) => Operation::Command(cid.expect("command id")),
        Body::Send(_) => Operation::Send(cid),
        Body::Signal(_) => Operation::Signal(cid.expect("command id")),
        Body::Delete => Operation::Delete,
        other => panic!("unexpected recorded request {other:?}"),
    }
}

/// Old pypsrp wrote RPID/PID in RFC 4122 byte order and Windows echoed them (the peer
/// fixtures README, "GUID byte order"): rewrite such headers in a recorded response to the
/// .NET order our client uses, as a replayer patches client-chosen ids.
fn patch_be_ids(response: &str) -> Vec<u8> {
    let Ok(mut env) = Envelope::decode(response.as_bytes()) else {
        return response.as_bytes().to_vec();
    };
    let Body::ReceiveResponse(resp) = &mut env.body else {
        return response.as_bytes().to_vec();
    };
    for s in &mut resp.streams {
        let mut at = 0;
        while s.data.len() >= at + 21 {
            let len = u32::from_be_bytes(s.data[at + 17..at + 21].try_into().unwrap()) as usize;
            let start = s.data[at + 16] & 1 == 1;
            if start && s.data.len() >= at + 21 + 40 {
                for off in [at + 21 + 8, at + 21 + 24] {
                    let raw: [u8; 16] = s.data[off..off + 16].try_into().unwrap();
                    // Reading BE bytes as .NET order yields a uuid whose le bytes are `raw`;
                    // the intended id is `Uuid::from_bytes(raw)`.
                    let intended = Uuid::from_bytes(raw);
                    s.data[off..off + 16].copy_from_slice(&intended.to_bytes_le());
                }
            }
            at += 21 + len;
        }
    }
    env.encode().into_bytes()
}

struct Outcome {
    outputs: Vec<Value>,
    finished: Vec<PsInvocationState>,
    opened: bool,
    closed: bool,
}

/// Replays `name`: our machine's requests must match the recorded operations one by one.
fn replay(name: &str, be_ids: bool) -> Outcome {
    let rec = recording(name);
    let first = Envelope::decode(rec.messages[0].request.as_bytes()).expect("create");
    let Body::Create(shell) = &first.body else {
        panic!("first request is not a Create")
    };
    let shell_id: Uuid = shell
        .shell_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("shell id");
    let mut config = SessionConfig::new(
        first.header.to.clone().unwrap_or_default(),
        "Microsoft.PowerShell",
    );
    config.resource_uri = first.resource_uri().expect("resource uri").to_owned();
    config.pool.protocol_version = first
        .header
        .option("protocolversion")
        .unwrap_or("2.3")
        .to_owned();
    config.terminate_finished_pipelines =
        rec.messages.iter().any(|m| m.request.contains("/Signal</"));
    let mut session = Session::new(config, shell_id, Box::new(SequentialIds::default()));
    session.open().expect("open");

    // WS-Man CommandId (as the recording's server chose it) -> pipeline id.
    let mut pipeline_of = std::collections::HashMap::new();
    let mut outcome = Outcome {
        outputs: Vec::new(),
        finished: Vec::new(),
        opened: false,
        closed: false,
    };
    for (i, ex) in rec.messages.iter().enumerate() {
        let recorded = Envelope::decode(ex.request.as_bytes()).expect("recorded request");
        let mut want = recorded_operation(&recorded);
        if let Some(response) = ex.response.as_deref()
            && let (Operation::Command(pid), Ok(env)) =
                (want, Envelope::decode(response.as_bytes()))
            && let Some(cid) = env.command_uuid()
        {
            pipeline_of.insert(cid, pid);
        }
        let map = |id: Uuid| pipeline_of.get(&id).copied().unwrap_or(id);
        want = match want {
            Operation::Receive(Some(c)) => Operation::Receive(Some(map(c))),
            Operation::Send(Some(c)) => Operation::Send(Some(map(c))),
            Operation::Signal(c) => Operation::Signal(map(c)),
            other => other,
        };
        if let Operation::Command(pid) = want {
            // Derive the pipeline from the recorded CREATE_PIPELINE.
            let Body::Command(cmd) = &recorded.body else {
                unreachable!()
            };
            let msgs = messages([cmd.psrp_payload().expect("payload")]);
            let create = msgs
                .iter()
                .find(|m| m.header.message_type == MessageType::CreatePipeline)
                .expect("CREATE_PIPELINE");
            let Message::CreatePipeline(cp) =
                Message::decode(create.header.message_type, &create.data)
                    .expect("typed CREATE_PIPELINE")
            else {
                panic!("not a CreatePipeline")
            };
            session.invoke(pid, *cp).expect("invoke");
        }
        if let (Operation::Send(Some(pid)), Body::Send(send)) = (want, &recorded.body) {
            // Queue the input the recorded Send carried.
            for m in messages(send.streams.iter().map(|s| s.data.clone())) {
                match Message::decode(m.header.message_type, &m.data).expect("typed input") {
                    Message::PipelineInput(v) => session.send_input(pid, v).expect("input"),
                    Message::EndOfPipelineInput => session.end_input(pid).expect("end of input"),
                    other => panic!("unexpected {other:?} in a Send"),
                }
            }
        }
        if want == Operation::Delete {
            session.close();
        }
        let ours = session
            .poll_request()
            .expect("poll")
            .unwrap_or_else(|| panic!("{name} #{i}: machine idle, recording sends {want:?}"));
        assert_eq!(ours.operation, want, "{name} #{i}");
        // Our envelope must decode and carry the same PSRP message types as the recording's.
        let env = Envelope::decode(&ours.body).expect("our envelope decodes");
        assert_eq!(env.action(), recorded.action(), "{name} #{i}");
        assert_eq!(
            env.shell_id().map(str::to_uppercase),
            recorded.shell_id().map(str::to_uppercase),
            "{name} #{i}"
        );
        let status = if ex.transport_error.is_some() {
            500
        } else {
            200
        };
        let response = ex.response.as_deref().expect("response");
        let response = if be_ids {
            patch_be_ids(response)
        } else {
            response.as_bytes().to_vec()
        };
        if let Err(e) = session.handle_response(status, &response) {
            eprintln!("{name} #{i}: {e}");
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Opened { .. } => outcome.opened = true,
                SessionEvent::Output { value, .. } => outcome.outputs.push(value),
                SessionEvent::PipelineFinished { state, .. } => outcome.finished.push(state),
                SessionEvent::Closed => outcome.closed = true,
                _ => {}
            }
        }
    }
    outcome
}

#[test]
fn execute_ps_reaches_recorded_outputs() {
    let out = replay("test_client_execute_ps.yml", true);
    assert!(out.opened);
    assert!(out.closed);
    assert_eq!(out.finished, vec![PsInvocationState::Completed]);
    let strings: Vec<&str> = out.outputs.iter().filter_map(Value::as_str).collect();
    assert!(strings.contains(&"winrm"), "outputs: {strings:?}");
}

#[test]
fn open_runspace_opens_and_closes() {
    let out = replay("test_psrp_open_runspace.yml", true);
    assert!(out.opened);
    assert!(out.closed);
}

#[test]
fn protocol_versions_2_1_and_2_3() {
    for name in [
        "test_psrp_run_protocol_version_2.1.yml",
        "test_psrp_run_protocol_version_2.3.yml",
    ] {
        let out = replay(name, true);
        assert!(out.opened, "{name}");
        assert!(
            out.finished
                .iter()
                .all(|s| *s == PsInvocationState::Completed),
            "{name}"
        );
        assert!(!out.outputs.is_empty(), "{name}");
    }
}

#[test]
fn multiple_invocations_le_recording() {
    let out = replay("test_psrp_multiple_invocations.yml", false);
    assert!(out.opened);
    assert!(out.closed);
    assert_eq!(out.finished.len(), 2, "two pipelines");
    assert!(
        out.finished
            .iter()
            .all(|s| *s == PsInvocationState::Completed)
    );
}
