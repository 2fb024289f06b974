//! The client and server machines talking to each other in memory.

use rps_psrp::clixml::Value;
use rps_psrp::crypto::SessionKey;
use rps_psrp::error::{PsrpError, StateError};
use rps_psrp::event::{ClientEvent, RecordKind, ServerEvent, StreamKind};
use rps_psrp::messages::{
    Availability, Command, CreatePipeline, HostMethod, Merges, PipelineResultTypes, PowerShell,
    PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::{PoolConfig, RunspacePool};
use rps_psrp::server::{
    PipelineHandler, PipelineOutcome, PipelineSink, ServerConfig, ServerRunspacePool,
};
use rsa::rand_core::{CryptoRng, RngCore};
use uuid::Uuid;

const RPID: Uuid = Uuid::from_u128(0x2d35_3305_c595_1547_bf50_1f44_9ff1_fc9b);
const PID: Uuid = Uuid::from_u128(0x1fd6_1bf9_c7ce_a347_8ce3_de7e_b7aa_5773);

/// A deterministic generator for tests (never for real keys).
struct TestRng(u64);
impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for TestRng {}

/// Moves everything queued on either side to the other (small budget: many fragments),
/// and collects the events.
fn pump(
    client: &mut RunspacePool,
    server: &mut ServerRunspacePool,
) -> (Vec<ClientEvent>, Vec<ServerEvent>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(out) = client.data_to_send(100).unwrap() {
            assert!(out.data.len() <= 100);
            server.receive(&out.data).unwrap();
            moved = true;
        }
        while let Some(e) = server.next_event().unwrap() {
            se.push(e);
        }
        while let Some(out) = server.data_to_send(150).unwrap() {
            client.receive(&out.data).unwrap();
            moved = true;
        }
        while let Some(e) = client.next_event().unwrap() {
            ce.push(e);
        }
        if !moved {
            return (ce, se);
        }
    }
}

fn opened() -> (RunspacePool, ServerRunspacePool) {
    let mut client = RunspacePool::new(RPID, PoolConfig::default());
    let mut server = ServerRunspacePool::new(
        RPID,
        ServerConfig {
            application_private_data: Some(Value::Str("apd".into())),
            ..ServerConfig::default()
        },
    );
    client.open().unwrap();
    let (ce, se) = pump(&mut client, &mut server);
    assert!(matches!(se[0], ServerEvent::Negotiated { .. }));
    assert!(matches!(se[1], ServerEvent::Opened(_)));
    assert!(matches!(ce[0], ClientEvent::Negotiated { .. }));
    assert_eq!(
        ce[1],
        ClientEvent::ApplicationPrivateData(Some(Value::Str("apd".into())))
    );
    assert_eq!(client.state(), RunspacePoolState::Opened);
    (client, server)
}

struct Echo;
impl PipelineHandler for Echo {
    fn invoke(
        &mut self,
        request: &CreatePipeline,
        input: &[Value],
        sink: &mut PipelineSink<'_>,
    ) -> PipelineOutcome {
        let cmd = &request.power_shell.statements[0][0];
        sink.record(
            RecordKind::Verbose,
            Value::Str(format!("running {}", cmd.name)),
        );
        for arg in &cmd.args {
            sink.output(arg.value.clone());
        }
        for v in input {
            sink.output(v.clone());
        }
        sink.host_call(HostMethod::WriteLine2, vec![Value::Str("hi".into())]);
        if cmd.name == "Fail" {
            PipelineOutcome::Failed(Value::Str("boom".into()))
        } else {
            PipelineOutcome::Completed
        }
    }
}

#[test]
fn pipeline_with_arguments_input_and_records() {
    let (mut client, mut server) = opened();
    let cmd = Command::cmdlet("Get-Mailbox")
        .arg("Identity", "alice")
        .positional(5)
        .switch("IncludeInactive");
    let mut req = CreatePipeline::new(PowerShell::new(vec![cmd]));
    req.no_input = false;
    let mut p = client.create_pipeline(PID, req).unwrap();
    p.send_input(Value::Str("in1".into())).unwrap();
    p.end_input().unwrap();
    let (_, se) = pump(&mut client, &mut server);
    let ServerEvent::CreatePipeline { request, .. } = &se[0] else {
        panic!("{se:?}")
    };
    let args = &request.power_shell.statements[0][0].args;
    assert_eq!(args[0].name.as_deref(), Some("Identity"));
    assert_eq!(args[1].name, None);
    assert_eq!(args[2].value, Value::Bool(true));
    assert!(!request.power_shell.statements[0][0].is_script);
    assert!(matches!(se.last(), Some(ServerEvent::EndOfInput { .. })));
    server.run_pipeline(PID, &mut Echo).unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    let outs: Vec<_> = ce
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Output { value, .. } => Some(value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        outs,
        [
            Value::from("alice"),
            Value::I32(5),
            Value::Bool(true),
            Value::from("in1")
        ]
    );
    assert!(matches!(
        &ce[0],
        ClientEvent::Record {
            kind: RecordKind::Verbose,
            ..
        }
    ));
    assert!(
        ce.iter()
            .any(|e| matches!(e, ClientEvent::HostCall(c) if !c.needs_reply()))
    );
    assert!(matches!(
        ce.last(),
        Some(ClientEvent::PipelineState {
            state: PsInvocationState::Completed,
            error_record: None,
            ..
        })
    ));
    assert_eq!(
        client.pipeline(PID).unwrap().state(),
        PsInvocationState::Completed
    );
}

#[test]
fn failed_pipeline_and_merges() {
    let (mut client, mut server) = opened();
    let mut cmd = Command::cmdlet("Fail");
    cmd.merges = Merges::all_to_output();
    client
        .create_pipeline(PID, CreatePipeline::new(PowerShell::new(vec![cmd])))
        .unwrap();
    let (_, se) = pump(&mut client, &mut server);
    let ServerEvent::CreatePipeline { request, .. } = &se[0] else {
        panic!()
    };
    let m = request.power_shell.statements[0][0].merges;
    assert_eq!(m.information, Some(PipelineResultTypes::Output));
    server.run_pipeline(PID, &mut Echo).unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(matches!(
        ce.last(),
        Some(ClientEvent::PipelineState {
            state: PsInvocationState::Failed,
            error_record: Some(_),
            ..
        })
    ));
}

#[test]
fn host_call_reply_goes_on_prompt_response_stream() {
    let (mut client, mut server) = opened();
    client
        .create_pipeline(
            PID,
            CreatePipeline::new(PowerShell::new(vec![Command::cmdlet("Read")])),
        )
        .unwrap();
    pump(&mut client, &mut server);
    let ci = server
        .sink(PID)
        .unwrap()
        .host_call(HostMethod::ReadLine, vec![]);
    assert_eq!(ci, 1);
    let (ce, _) = pump(&mut client, &mut server);
    let ClientEvent::HostCall(call) = ce[0].clone() else {
        panic!("{ce:?}")
    };
    assert!(call.needs_reply());
    client
        .send_host_reply(call.respond(Some(Value::from("typed"))))
        .unwrap();
    let out = client.data_to_send(10_000).unwrap().unwrap();
    assert_eq!(out.target.stream, StreamKind::PromptResponse);
    assert_eq!(out.target.pipeline_id, Some(PID));
    server.receive(&out.data).unwrap();
    let Some(ServerEvent::HostResponse { response, .. }) = server.next_event().unwrap() else {
        panic!()
    };
    assert_eq!(response.call_id, 1);
    assert_eq!(response.result, Some(Value::from("typed")));
}

#[test]
fn runspace_sizes_and_reset() {
    let (mut client, mut server) = opened();
    let ci = client.set_max_runspaces(4).unwrap();
    let (_, se) = pump(&mut client, &mut server);
    assert_eq!(
        se,
        [ServerEvent::SetMaxRunspaces {
            call_id: ci,
            max_runspaces: 4
        }]
    );
    server
        .answer_availability(ci, Availability::Success(true))
        .unwrap();
    let ci2 = client.reset_runspace_state().unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(
        ce,
        [ClientEvent::Availability {
            call_id: ci,
            response: Availability::Success(true)
        }]
    );
    assert_eq!(client.runspaces(), (1, 4));
    assert_eq!(server.runspaces(), (1, 4));
    server
        .answer_availability(ci2, Availability::Success(false))
        .unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(
        ce,
        [ClientEvent::Availability {
            call_id: ci2,
            response: Availability::Success(false)
        }]
    );
}

#[test]
fn key_exchange_and_secure_strings() {
    let (mut client, mut server) = opened();
    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    assert_eq!(
        client.encrypt_secure_string("x"),
        Err(StateError::NoSessionKey)
    );
    client.exchange_key(key).unwrap();
    let (_, se) = pump(&mut client, &mut server);
    let [ServerEvent::PublicKey(pk)] = se.as_slice() else {
        panic!("{se:?}")
    };
    server
        .send_session_key(&mut rng, pk, SessionKey::from_bytes([7; 32]))
        .unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(ce, [ClientEvent::SessionKeyReady]);
    assert_eq!(client.session_key(), server.session_key());
    let ss = client.encrypt_secure_string("Pa$$w0rd ü").unwrap();
    let Value::SecureString(b64) = &ss else {
        panic!()
    };
    assert_eq!(
        server
            .session_key()
            .unwrap()
            .decrypt_secure_string(b64)
            .unwrap(),
        "Pa$$w0rd ü"
    );
    assert_eq!(client.decrypt_secure_string(&ss).unwrap(), "Pa$$w0rd ü");
}

#[test]
fn misuse_gives_state_errors() {
    let mut client = RunspacePool::new(
        RPID,
        PoolConfig {
            allow_scripts: false,
            ..PoolConfig::default()
        },
    );
    let req = || CreatePipeline::new(PowerShell::new(vec![Command::script("1+1")]));
    assert!(matches!(
        client.create_pipeline(PID, req()),
        Err(StateError::Pool {
            action: "create pipeline",
            state: "BeforeOpen",
            ..
        })
    ));
    assert!(matches!(
        client.set_max_runspaces(2),
        Err(StateError::Pool { .. })
    ));
    client.open().unwrap();
    assert!(matches!(
        client.open(),
        Err(StateError::Pool { action: "open", .. })
    ));
    let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
    pump(&mut client, &mut server);
    assert!(matches!(
        client.create_pipeline(PID, req()),
        Err(StateError::Pipeline { .. })
    ));
    assert!(matches!(
        client.pipeline(PID),
        Err(StateError::UnknownPipeline(_))
    ));
}

#[test]
fn protocol_2_1_server_drops_newer_merges_and_reset() {
    let mut client = RunspacePool::new(RPID, PoolConfig::default());
    let mut server = ServerRunspacePool::new(
        RPID,
        ServerConfig {
            protocol_version: "2.1".into(),
            ..ServerConfig::default()
        },
    );
    client.open().unwrap();
    pump(&mut client, &mut server);
    assert_eq!(client.protocol_version(), Some("2.1"));
    assert!(matches!(
        client.reset_runspace_state(),
        Err(StateError::ProtocolTooOld { .. })
    ));
    let mut cmd = Command::cmdlet("Get-Item");
    cmd.merges = Merges::all_to_output();
    client
        .create_pipeline(PID, CreatePipeline::new(PowerShell::new(vec![cmd])))
        .unwrap();
    let (_, se) = pump(&mut client, &mut server);
    let ServerEvent::CreatePipeline { request, .. } = &se[0] else {
        panic!()
    };
    let m = request.power_shell.statements[0][0].merges;
    assert_eq!((m.error, m.information), (None, None));
    assert_eq!(m.my_result, PipelineResultTypes::Error);
}

#[test]
fn message_for_other_pool_is_rejected() {
    let (mut client, _) = opened();
    let mut other = ServerRunspacePool::new(Uuid::from_u128(1), ServerConfig::default());
    other.set_state(RunspacePoolState::Broken, None);
    let out = other.data_to_send(1000).unwrap().unwrap();
    client.receive(&out.data).unwrap();
    match client.next_event() {
        Err(PsrpError::Protocol(rps_psrp::error::ProtocolError::RpidMismatch {
            expected,
            got,
            ..
        })) => {
            assert_eq!((expected, got), (RPID, Uuid::from_u128(1)));
        }
        other => panic!("{other:?}"),
    }
}

/// The server machine accepts the recorded bytes of a real client (pypsrp).
#[test]
fn server_accepts_recorded_client() {
    #[path = "common/mod.rs"]
    mod common;
    let exchanges = common::load("test_client_execute_ps.yml");
    let creation = common::payloads(&exchanges[0].request).remove(0);
    let rpid = {
        let frag = rps_psrp::fragment::parse_fragment(&creation).unwrap().0;
        rps_psrp::message::MessageHeader::parse(frag.blob)
            .unwrap()
            .rpid
    };
    let mut server = ServerRunspacePool::new(rpid, ServerConfig::default());
    server.receive(&creation).unwrap();
    let mut events = Vec::new();
    while let Some(e) = server.next_event().unwrap() {
        events.push(e);
    }
    assert!(
        matches!(&events[0], ServerEvent::Negotiated { protocol_version, .. } if protocol_version == "2.3")
    );
    assert!(matches!(&events[1], ServerEvent::Opened(init) if init.max_runspaces == 1));
    let command = exchanges
        .iter()
        .find(|e| common::action(&e.request) == "Command")
        .expect("a Command");
    server
        .receive(&common::payloads(&command.request)[0])
        .unwrap();
    let Some(ServerEvent::CreatePipeline {
        pipeline_id,
        request,
    }) = server.next_event().unwrap()
    else {
        panic!("no CREATE_PIPELINE");
    };
    assert_eq!(
        request.power_shell.statements[0][0].name,
        "Invoke-Expression"
    );
    struct Two;
    impl PipelineHandler for Two {
        fn invoke(
            &mut self,
            _: &CreatePipeline,
            _: &[Value],
            s: &mut PipelineSink<'_>,
        ) -> PipelineOutcome {
            s.output(Value::from("winrm"));
            s.output(Value::from("Running"));
            PipelineOutcome::Completed
        }
    }
    server.run_pipeline(pipeline_id, &mut Two).unwrap();
    // A fresh client with the same ids decodes what the server queued.
    let mut client = RunspacePool::new(rpid, PoolConfig::default());
    client.open().unwrap();
    while client.data_to_send(1 << 16).unwrap().is_some() {}
    let mut pool_out = Vec::new();
    let mut pipe_out = Vec::new();
    while let Some(out) = server.data_to_send(1 << 16).unwrap() {
        match out.target.pipeline_id {
            None => pool_out.push(out.data),
            Some(_) => pipe_out.push(out.data),
        }
    }
    for d in pool_out {
        client.receive(&d).unwrap();
    }
    let mut ce = Vec::new();
    while let Some(e) = client.next_event().unwrap() {
        ce.push(e);
    }
    assert_eq!(client.state(), RunspacePoolState::Opened);
    client
        .create_pipeline(
            pipeline_id,
            CreatePipeline::new(PowerShell::new(vec![Command::cmdlet("x")])),
        )
        .unwrap();
    for d in pipe_out {
        client.receive(&d).unwrap();
    }
    while let Some(e) = client.next_event().unwrap() {
        ce.push(e);
    }
    let outs = ce
        .iter()
        .filter(|e| matches!(e, ClientEvent::Output { .. }))
        .count();
    assert_eq!(outs, 2);
}

#[test]
fn command_metadata_pool_host_call_and_key_request() {
    let (mut client, mut server) = opened();
    let req = rps_psrp::messages::GetCommandMetadata {
        names: vec!["Get-Mailbox".into()],
        command_type: 0x7f,
        namespace: None,
        argument_list: None,
    };
    client.get_command_metadata(PID, req.clone()).unwrap();
    let (_, se) = pump(&mut client, &mut server);
    assert_eq!(
        se,
        [ServerEvent::GetCommandMetadata {
            pipeline_id: PID,
            request: req
        }]
    );
    let mut sink = server.sink(PID).unwrap();
    sink.output(Value::I32(1));
    sink.finish(PipelineOutcome::Completed);
    assert!(
        server.sink(PID).is_err(),
        "a finished pipeline takes no output"
    );
    // A pool-level host call and a public key request.
    let ci = server.host_call(None, HostMethod::GetName, vec![]);
    server.request_public_key().unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(matches!(
        &ce[0],
        ClientEvent::Output {
            value: Value::I32(1),
            ..
        }
    ));
    assert!(matches!(
        &ce[1],
        ClientEvent::PipelineState {
            state: PsInvocationState::Completed,
            ..
        }
    ));
    let ClientEvent::HostCall(call) = ce[2].clone() else {
        panic!("{ce:?}")
    };
    assert_eq!((call.pipeline_id, call.call.call_id), (None, ci));
    assert_eq!(ce[3], ClientEvent::PublicKeyRequested);
    client
        .send_host_reply(call.respond(Some(Value::from("rps"))))
        .unwrap();
    let out = client.data_to_send(4096).unwrap().unwrap();
    assert_eq!(out.target.pipeline_id, None);
    assert_eq!(out.target.stream, StreamKind::PromptResponse);
    server.receive(&out.data).unwrap();
    assert!(matches!(
        server.next_event().unwrap(),
        Some(ServerEvent::HostResponse {
            pipeline_id: None,
            ..
        })
    ));
}

#[test]
fn stop_disconnect_reconnect_close() {
    let (mut client, mut server) = opened();
    let mut p = client
        .create_pipeline(
            PID,
            CreatePipeline::new(PowerShell::new(vec![Command::cmdlet("Wait")])),
        )
        .unwrap();
    p.stop().unwrap();
    assert_eq!(p.state(), PsInvocationState::Stopping);
    assert!(matches!(
        p.send_input(Value::Nil),
        Err(StateError::Pipeline { .. })
    ));
    pump(&mut client, &mut server);
    server.sink(PID).unwrap().finish(PipelineOutcome::Stopped);
    let (ce, _) = pump(&mut client, &mut server);
    assert!(matches!(
        ce.last(),
        Some(ClientEvent::PipelineState {
            state: PsInvocationState::Stopped,
            ..
        })
    ));
    client.pipeline(PID).unwrap().close().unwrap();
    assert!(client.pipeline(PID).is_err());
    client.disconnect().unwrap();
    assert_eq!(client.state(), RunspacePoolState::Disconnected);
    assert!(client.set_max_runspaces(2).is_err());
    client.reconnect().unwrap();
    client.close().unwrap();
    assert_eq!(client.state(), RunspacePoolState::Closing);
    client.closed();
    assert_eq!(client.state(), RunspacePoolState::Closed);
}

#[test]
fn broken_pool_state_reaches_client_with_error() {
    let (mut client, mut server) = opened();
    server.set_state(RunspacePoolState::Broken, Some(Value::from("gone")));
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(
        ce,
        [ClientEvent::PoolState {
            state: RunspacePoolState::Broken,
            error: Some(Value::from("gone"))
        }]
    );
    assert_eq!(client.state(), RunspacePoolState::Broken);
}

#[test]
fn server_capability_has_nil_rpid_like_windows() {
    let mut client = RunspacePool::new(RPID, PoolConfig::default());
    let mut server = ServerRunspacePool::new(RPID, ServerConfig::default());
    client.open().unwrap();
    while let Some(out) = client.data_to_send(1 << 16).unwrap() {
        server.receive(&out.data).unwrap();
    }
    while server.next_event().unwrap().is_some() {}
    let out = server.data_to_send(1 << 16).unwrap().unwrap();
    let mut d = rps_psrp::fragment::Defragmenter::default();
    let mut msgs = Vec::new();
    d.feed(bytes::Bytes::from(out.data), &mut msgs).unwrap();
    let headers: Vec<_> = msgs
        .into_iter()
        .map(|m| {
            rps_psrp::message::RawMessage::decode(m.data)
                .unwrap()
                .header
        })
        .map(|h| (h.message_type.name(), h.rpid))
        .collect();
    assert_eq!(
        headers,
        [
            ("SESSION_CAPABILITY", Uuid::nil()),
            ("APPLICATION_PRIVATE_DATA", RPID),
            ("RUNSPACEPOOL_STATE", RPID),
        ]
    );
}
