//! The session machine's shell operations in memory against a server runspace pool
//! (`rps_psrp::server`): the shell-state Get, the WinRM configuration Get, Disconnect and
//! Reconnect, Connect to a disconnected pool and to its commands, attaching to a command,
//! the session key exchange, and a CREATE_PIPELINE larger than one envelope.

use bytes::Bytes;
use rps_psrp::clixml::Value;
use rps_psrp::crypto::SessionKey;
use rps_psrp::event::ServerEvent;
use rps_psrp::fragment::{Defragmenter, FragmentReader};
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::{
    Command as PsCommand, CreatePipeline, PowerShell, PsInvocationState, RunspacePoolState,
};
use rps_psrp::pool::{PoolConfig, RunspacePool as ClientPool};
use rps_psrp::server::{PipelineOutcome, ServerConfig, ServerRunspacePool};
use rps_session::machine::{
    Operation, Phase, SequentialIds, Session, SessionConfig, SessionError, SessionEvent,
    WsmanRequest,
};
use rps_wsman::ns::{self, action};
use rps_wsman::{
    Body, CommandState, ConnectResponse, CreateResponse, Envelope, Fault, Header, Item, QName,
    RawElement, ReceiveResponse, Shell, Stream, WsmanFault, uuid_upper,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// A tiny scripted server.
// ---------------------------------------------------------------------------------------

fn reply(req: &WsmanRequest, action: &str, body: Body) -> Vec<u8> {
    let env = Envelope::decode(&req.body).expect("our request decodes");
    let relates = env.header.message_id.clone().unwrap_or_default();
    Envelope::new(Header::response(action, Uuid::new_v4(), relates), body)
        .encode()
        .into_bytes()
}

fn fault_in(req: &WsmanRequest, sub_ns: &str, subcode: &str, code: u32, message: &str) -> Vec<u8> {
    let f = Fault {
        code: QName::new(ns::SOAP, "Sender"),
        subcodes: vec![QName::new(sub_ns, subcode)],
        reason: Some(message.to_owned()),
        reason_lang: Some("en-US".to_owned()),
        fault_detail: None,
        wsman_fault: Some(WsmanFault {
            code: Some(code),
            machine: None,
            message: Some(message.to_owned()),
            provider_fault: None,
        }),
        detail_raw: Vec::new(),
    };
    reply(req, action::WSMAN_FAULT, Body::Fault(f))
}

fn fault(req: &WsmanRequest, subcode: &str, code: u32, message: &str) -> Vec<u8> {
    fault_in(req, ns::WSMAN, subcode, code, message)
}

fn timed_out(req: &WsmanRequest) -> Vec<u8> {
    fault(
        req,
        ns::fault_code::TIMED_OUT,
        2_150_858_793,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )
}

fn invalid_selectors(req: &WsmanRequest, message: &str) -> Vec<u8> {
    fault(
        req,
        ns::fault_code::INVALID_SELECTORS,
        2_150_858_843,
        message,
    )
}

fn decode(req: &WsmanRequest) -> Envelope {
    Envelope::decode(&req.body).expect("our request decodes")
}

fn envelope_size(req: &WsmanRequest) -> u64 {
    decode(req)
        .header
        .max_envelope_size
        .expect("every request carries MaxEnvelopeSize")
        .value
}

/// The message types in `data` (whole fragments), in order of completion.
fn message_types(data: &[u8]) -> Vec<MessageType> {
    let mut defrag = Defragmenter::default();
    let mut out = Vec::new();
    defrag
        .feed(Bytes::copy_from_slice(data), &mut out)
        .expect("fragments parse");
    out.into_iter()
        .map(|a| {
            RawMessage::decode(a.data)
                .expect("message parses")
                .header
                .message_type
        })
        .collect()
}

/// Splits whole fragments after the end of the `n`th message (1-based).
fn split_after_messages(data: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut ended = 0;
    let mut at = 0;
    for frag in FragmentReader::new(Bytes::copy_from_slice(data)) {
        let frag = frag.expect("fragment parses");
        at += 21 + frag.header.blob_len as usize;
        if frag.header.is_end() {
            ended += 1;
            if ended == n {
                break;
            }
        }
    }
    (data[..at].to_vec(), data[at..].to_vec())
}

/// A server side just smart enough for these tests.
struct Server {
    pool: ServerRunspacePool,
    /// Fragments taken from the pool machine, per target, not yet sent.
    queued: std::collections::HashMap<Option<Uuid>, Vec<u8>>,
    /// Events the pool machine raised.
    events: Vec<ServerEvent>,
}

impl Server {
    fn new(shell: Uuid) -> Self {
        Server {
            pool: ServerRunspacePool::new(shell, ServerConfig::default()),
            queued: Default::default(),
            events: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.pool.receive(data).expect("the server takes our data");
        while let Some(e) = self.pool.next_event().expect("server event") {
            self.events.push(e);
        }
    }

    fn pump(&mut self) {
        while let Some(out) = self.pool.data_to_send(64 * 1024).expect("data") {
            self.queued
                .entry(out.target.pipeline_id)
                .or_default()
                .extend_from_slice(&out.data);
        }
    }

    /// Answers `req` as a well-behaved server would.
    fn answer(&mut self, req: &WsmanRequest) -> Vec<u8> {
        let env = decode(req);
        match (&req.operation, &env.body) {
            (Operation::Create, Body::Create(shell)) => {
                self.feed(&shell.creation_xml.clone().unwrap_or_default());
                let body = Body::CreateResponse(CreateResponse {
                    resource_created: None,
                    shell: Some(Shell {
                        shell_id: shell.shell_id.clone(),
                        ..Shell::default()
                    }),
                });
                reply(req, action::CREATE_RESPONSE, body)
            }
            (Operation::Command(pid), Body::Command(cl)) => {
                self.feed(&cl.psrp_payload().expect("payload"));
                let body = Body::CommandResponse {
                    command_id: uuid_upper(*pid),
                };
                reply(req, action::COMMAND_RESPONSE, body)
            }
            (Operation::Send(_), Body::Send(send)) => {
                for s in &send.streams {
                    self.feed(&s.data);
                }
                reply(req, action::SEND_RESPONSE, Body::SendResponse)
            }
            (Operation::Receive(target), _) => self.receive(req, *target, false),
            (Operation::Signal(pid), Body::Signal(sig)) => {
                if sig.code == ns::signal::PS_CTRL_C
                    && let Ok(sink) = self.pool.sink(*pid)
                {
                    sink.finish(PipelineOutcome::Stopped);
                }
                reply(req, action::SIGNAL_RESPONSE, Body::SignalResponse)
            }
            (Operation::Delete, _) => reply(req, action::DELETE_RESPONSE, Body::DeleteResponse),
            (Operation::Disconnect, _) => {
                reply(req, action::DISCONNECT_RESPONSE, Body::DisconnectResponse)
            }
            (Operation::Reconnect, _) => {
                reply(req, action::RECONNECT_RESPONSE, Body::ReconnectResponse)
            }
            (op, body) => panic!("unexpected {op:?}: {body:?}"),
        }
    }

    /// Everything queued for `target`, with Done when `done`.
    fn receive(&mut self, req: &WsmanRequest, target: Option<Uuid>, done: bool) -> Vec<u8> {
        self.pump();
        let data = self.queued.remove(&target).unwrap_or_default();
        receive_response(req, target, data, done)
    }
}

fn receive_response(
    req: &WsmanRequest,
    target: Option<Uuid>,
    data: Vec<u8>,
    done: bool,
) -> Vec<u8> {
    let cid = target.map(uuid_upper);
    let body = Body::ReceiveResponse(ReceiveResponse {
        streams: vec![Stream {
            name: "stdout".to_owned(),
            command_id: cid.clone(),
            end: false,
            data,
        }],
        command_state: target.map(|_| CommandState {
            command_id: cid,
            state: if done {
                ns::command_state::DONE
            } else {
                ns::command_state::RUNNING
            }
            .to_owned(),
            exit_code: done.then_some(0),
        }),
        extra: Vec::new(),
    });
    reply(req, action::RECEIVE_RESPONSE, body)
}

/// A GetResponse carrying the shell in `state`.
fn shell_state(req: &WsmanRequest, shell: Uuid, state: &str) -> Vec<u8> {
    let body = Body::GetResponse(Item::Shell(Box::new(Shell {
        shell_id: Some(uuid_upper(shell)),
        resource_uri: Some(ns::resource::EXCHANGE.to_owned()),
        state: Some(state.to_owned()),
        ..Shell::default()
    })));
    reply(req, action::GET_RESPONSE, body)
}

/// A GetResponse carrying a WinRM configuration document whose inner elements are `inner`.
fn config_response(req: &WsmanRequest, inner: &str) -> Vec<u8> {
    let xml = format!(
        "<cfg:Config xmlns:cfg=\"{}\">{inner}<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms></cfg:Config>",
        ns::CONFIG
    );
    let body = Body::GetResponse(Item::Raw(RawElement {
        namespace: Some(ns::CONFIG.to_owned()),
        name: "Config".to_owned(),
        xml,
    }));
    reply(req, action::GET_RESPONSE, body)
}

const SHELL: u128 = 0xabc;

fn config() -> SessionConfig {
    SessionConfig::new("http://server/wsman", "Microsoft.Exchange")
}

/// Drives `s` until it is Opened, answering with `server`.
fn open_with(s: &mut Session, server: &mut Server) {
    s.open().unwrap();
    while s.phase() != Phase::Opened {
        let req = s.poll_request().unwrap().expect("a request while opening");
        let resp = server.answer(&req);
        s.handle_response(200, &resp).unwrap();
    }
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Opened { .. })),
        "{events:?}"
    );
}

/// An opened session (configured by `config`) and its server.
fn opened_with(config: SessionConfig) -> (Session, Server) {
    let shell = Uuid::from_u128(SHELL);
    let mut s = Session::new(config, shell, Box::new(SequentialIds::default()));
    let mut server = Server::new(shell);
    open_with(&mut s, &mut server);
    (s, server)
}

fn opened() -> (Session, Server) {
    opened_with(config())
}

fn pipeline() -> CreatePipeline {
    CreatePipeline::new(PowerShell::new(vec![PsCommand::cmdlet("Get-Mailbox")]))
}

/// Starts a pipeline: its Command is sent and answered.
fn start(s: &mut Session, server: &mut Server, id: u128) -> Uuid {
    let pid = Uuid::from_u128(id);
    s.invoke(pid, pipeline()).unwrap();
    let req = s.poll_request().unwrap().unwrap();
    assert_eq!(req.operation, Operation::Command(pid));
    let resp = server.answer(&req);
    s.handle_response(200, &resp).unwrap();
    pid
}

/// Answers every request until the machine has nothing more to send (at most 20);
/// returns their operations.
fn run_to_end(s: &mut Session, server: &mut Server) -> Vec<Operation> {
    let mut ops = Vec::new();
    while let Some(req) = s.poll_request().unwrap() {
        ops.push(req.operation);
        assert!(ops.len() <= 20, "no end in sight: {ops:?}");
        let resp = server.answer(&req);
        s.handle_response(200, &resp).unwrap();
    }
    ops
}

fn drain(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Deterministic randomness for small test keys (xorshift; not for real keys).
struct TestRng(u64);

impl rsa::rand_core::RngCore for TestRng {
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

impl rsa::rand_core::CryptoRng for TestRng {}

fn small_key(seed: u64) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut TestRng(seed), 1024).expect("a 1024-bit test key")
}

// ---------------------------------------------------------------------------------------
// Shell state.
// ---------------------------------------------------------------------------------------

#[test]
fn shell_state_get_of_a_connected_shell_is_alive() {
    let (mut s, mut server) = opened();
    let shell = s.shell_id();
    s.query_shell_state().unwrap();
    let req = s.poll_request().unwrap().expect("the Get goes out");
    assert_eq!(req.operation, Operation::ShellState);
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::GET));
    assert_eq!(env.resource_uri(), Some(ns::resource::SHELL));
    assert_eq!(
        env.header.selector("ShellId"),
        Some(uuid_upper(shell).as_str())
    );
    assert!(matches!(env.body, Body::Get));
    assert!(s.poll_request().unwrap().is_none(), "one request at a time");

    s.handle_response(200, &shell_state(&req, shell, "Connected"))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::ShellState {
            alive: true,
            state: Some("Connected".to_owned()),
        }]
    );
    assert_eq!(s.phase(), Phase::Opened);
    assert!(s.shell_exists());
    // Still usable: a pipeline runs, and close deletes the shell.
    let pid = start(&mut s, &mut server, 1);
    assert_eq!(s.running_pipelines(), vec![pid]);
    s.close();
    let ops = run_to_end(&mut s, &mut server);
    assert_eq!(ops.last(), Some(&Operation::Delete), "{ops:?}");
    assert_eq!(s.phase(), Phase::Closed);
}

#[test]
fn shell_state_query_is_refused_before_the_pool_opened() {
    let mut s = Session::new(
        config(),
        Uuid::from_u128(SHELL),
        Box::new(SequentialIds::default()),
    );
    assert!(matches!(
        s.query_shell_state(),
        Err(SessionError::State { .. })
    ));
    s.open().unwrap();
    assert!(matches!(
        s.query_shell_state(),
        Err(SessionError::State { .. })
    ));
}

/// How the server (or the network) says the shell is gone.
#[derive(Debug, Clone, Copy)]
enum Gone {
    InvalidSelectors,
    TimedOut,
    Disconnected,
    Transport,
}

/// Asks for the shell state with one pipeline running and answers as `how`.
fn shell_not_alive(how: Gone) {
    let (mut s, mut server) = opened();
    let shell = s.shell_id();
    let pid = start(&mut s, &mut server, 7);
    s.query_shell_state().unwrap();
    let req = s.poll_request().unwrap().unwrap();
    assert_eq!(req.operation, Operation::ShellState, "{how:?}");
    let state = match how {
        Gone::InvalidSelectors => {
            let r = invalid_selectors(
                &req,
                "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
            );
            s.handle_response(500, &r).unwrap();
            None
        }
        Gone::TimedOut => {
            s.handle_response(500, &timed_out(&req)).unwrap();
            None
        }
        Gone::Disconnected => {
            s.handle_response(200, &shell_state(&req, shell, "Disconnected"))
                .unwrap();
            Some("Disconnected".to_owned())
        }
        Gone::Transport => {
            s.handle_transport_error("connection refused").unwrap();
            None
        }
    };
    let events = drain(&mut s);
    assert!(
        events.contains(&SessionEvent::ShellState {
            alive: false,
            state
        }),
        "{how:?}: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::PipelineError { pipeline_id, .. } if *pipeline_id == pid
        )),
        "{how:?}: the running pipeline is lost: {events:?}"
    );
    assert_eq!(s.phase(), Phase::Closed, "{how:?}");
    assert!(!s.is_alive(), "{how:?}");
    assert!(!s.shell_exists(), "{how:?}: nothing to delete");
    assert!(s.running_pipelines().is_empty(), "{how:?}");
    assert!(s.poll_request().unwrap().is_none(), "{how:?}: no Delete");
    s.close();
    assert!(
        s.poll_request().unwrap().is_none(),
        "{how:?}: no Delete on close either"
    );
    assert!(s.invoke(Uuid::from_u128(8), pipeline()).is_err(), "{how:?}");
}

#[test]
fn shell_state_invalid_selectors_is_not_alive_and_ends_without_delete() {
    shell_not_alive(Gone::InvalidSelectors);
}

#[test]
fn shell_state_timed_out_is_not_alive_and_ends_without_delete() {
    shell_not_alive(Gone::TimedOut);
}

#[test]
fn shell_state_disconnected_by_the_server_is_not_alive_and_ends_without_delete() {
    shell_not_alive(Gone::Disconnected);
}

#[test]
fn shell_state_transport_error_is_not_alive_and_ends_without_delete() {
    shell_not_alive(Gone::Transport);
}

#[test]
fn shell_state_other_fault_is_an_error_and_changes_nothing() {
    let (mut s, mut server) = opened();
    s.query_shell_state().unwrap();
    let req = s.poll_request().unwrap().unwrap();
    // pypsrp's recording of Windows refusing a bad OperationTimeout.
    let resp = fault_in(
        &req,
        ns::ADDRESSING,
        "InvalidMessageInformationHeader",
        2_150_858_767,
        "The WS-Management service cannot process the request. The XML contains an invalid timeout field in the SOAP header: PT-1S.",
    );
    let err = s.handle_response(500, &resp).unwrap_err();
    assert!(matches!(err, SessionError::Fault { .. }), "{err}");
    assert_eq!(err.operation(), Some("Get"));
    assert!(!err.is_shell_gone());
    assert!(drain(&mut s).is_empty(), "no ShellState event");
    assert_eq!(s.phase(), Phase::Opened);
    assert!(s.is_alive());
    assert!(s.shell_exists());
    assert!(s.poll_request().unwrap().is_none(), "nothing queued");

    // An HTTP refusal without a SOAP body is the same: reported, nothing changed.
    s.query_shell_state().unwrap();
    let _req = s.poll_request().unwrap().unwrap();
    let err = s.handle_response(503, b"Service Unavailable").unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(s.phase(), Phase::Opened);

    // The pool still works and is deleted on close.
    let pid = start(&mut s, &mut server, 3);
    s.close();
    let ops = run_to_end(&mut s, &mut server);
    assert!(ops.contains(&Operation::Signal(pid)), "{ops:?}");
    assert_eq!(ops.last(), Some(&Operation::Delete), "{ops:?}");
    assert!(drain(&mut s).contains(&SessionEvent::Closed));
}

// ---------------------------------------------------------------------------------------
// The server's WinRM configuration.
// ---------------------------------------------------------------------------------------

#[test]
fn server_config_sets_the_envelope_size_of_the_create_and_later_requests() {
    let shell = Uuid::from_u128(SHELL);
    let mut cfg = config();
    cfg.read_server_config = true;
    let mut s = Session::new(cfg, shell, Box::new(SequentialIds::default()));
    let mut server = Server::new(shell);
    s.open().unwrap();

    let get = s
        .poll_request()
        .unwrap()
        .expect("the config Get goes first");
    assert_eq!(get.operation, Operation::Config);
    let env = decode(&get);
    assert_eq!(env.action(), Some(action::GET));
    assert_eq!(env.resource_uri(), Some(ns::resource::CONFIG));
    assert_eq!(env.header.selector("ShellId"), None);
    assert_eq!(envelope_size(&get), 153_600, "the configured size, before");
    s.handle_response(
        200,
        &config_response(&get, "<cfg:MaxEnvelopeSizekb>40</cfg:MaxEnvelopeSizekb>"),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::ServerConfig {
            max_envelope_size: 40 * 1024
        }]
    );

    let create = s.poll_request().unwrap().unwrap();
    assert_eq!(create.operation, Operation::Create);
    assert_eq!(envelope_size(&create), 40 * 1024);
    s.handle_response(200, &server.answer(&create)).unwrap();
    while s.phase() != Phase::Opened {
        let req = s.poll_request().unwrap().unwrap();
        assert_eq!(envelope_size(&req), 40 * 1024, "{:?}", req.operation);
        s.handle_response(200, &server.answer(&req)).unwrap();
    }
    // Protocol 2.3 was negotiated, yet the server's own limit is kept.
    assert_eq!(s.pool().protocol_version(), Some("2.3"));
    let pid = Uuid::from_u128(5);
    s.invoke(pid, pipeline()).unwrap();
    let command = s.poll_request().unwrap().unwrap();
    assert_eq!(command.operation, Operation::Command(pid));
    assert_eq!(envelope_size(&command), 40 * 1024);
    s.handle_response(200, &server.answer(&command)).unwrap();
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(Some(pid)));
    assert_eq!(envelope_size(&receive), 40 * 1024);
}

#[test]
fn without_server_config_the_envelope_size_is_raised_after_negotiation() {
    // The control for the test above: the same session without the config read.
    let (mut s, mut server) = opened();
    let pid = Uuid::from_u128(5);
    s.invoke(pid, pipeline()).unwrap();
    let command = s.poll_request().unwrap().unwrap();
    assert_eq!(command.operation, Operation::Command(pid));
    assert_eq!(envelope_size(&command), 512_000);
    s.handle_response(200, &server.answer(&command)).unwrap();
}

#[test]
fn server_config_without_a_valid_max_envelope_size_is_a_typed_error() {
    for inner in [
        "",
        "<cfg:MaxEnvelopeSizekb>lots</cfg:MaxEnvelopeSizekb>",
        "<cfg:MaxEnvelopeSizekb>0</cfg:MaxEnvelopeSizekb>",
    ] {
        let mut cfg = config();
        cfg.read_server_config = true;
        let mut s = Session::new(
            cfg,
            Uuid::from_u128(SHELL),
            Box::new(SequentialIds::default()),
        );
        s.open().unwrap();
        let get = s.poll_request().unwrap().unwrap();
        assert_eq!(get.operation, Operation::Config);
        let err = s
            .handle_response(200, &config_response(&get, inner))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SessionError::Unexpected {
                    operation: "Get",
                    ..
                }
            ),
            "{inner:?}: {err:?}"
        );
        assert!(err.to_string().contains("MaxEnvelopeSizekb"), "{err}");
        assert!(drain(&mut s).is_empty(), "{inner:?}: no ServerConfig");
        assert!(!s.is_alive(), "{inner:?}: the session failed");
        assert!(!s.shell_exists(), "{inner:?}: no shell was created");
        assert!(s.poll_request().unwrap().is_none(), "{inner:?}: no Create");
    }
}

// ---------------------------------------------------------------------------------------
// Disconnect and Reconnect.
// ---------------------------------------------------------------------------------------

#[test]
fn disconnect_stops_all_traffic_and_reconnect_resumes_the_receives() {
    let mut cfg = config();
    cfg.disconnect_idle_timeout_secs = Some(120);
    let (mut s, mut server) = opened_with(cfg);
    let shell = s.shell_id();
    let pid = start(&mut s, &mut server, 11);
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(Some(pid)));

    // Asked while the Receive is in flight: it goes after it.
    s.disconnect().unwrap();
    assert!(s.poll_request().unwrap().is_none());
    s.handle_response(500, &timed_out(&receive)).unwrap();
    let disconnect = s.poll_request().unwrap().unwrap();
    assert_eq!(disconnect.operation, Operation::Disconnect);
    let env = decode(&disconnect);
    assert_eq!(env.action(), Some(action::DISCONNECT));
    assert_eq!(
        env.header.selector("ShellId"),
        Some(uuid_upper(shell).as_str())
    );
    match &env.body {
        Body::Disconnect(d) => assert_eq!(d.idle_timeout.as_deref(), Some("PT120S")),
        other => panic!("not a Disconnect: {other:?}"),
    }
    s.handle_response(200, &server.answer(&disconnect)).unwrap();
    assert_eq!(drain(&mut s), vec![SessionEvent::Disconnected]);
    assert_eq!(s.phase(), Phase::Disconnected);
    assert_eq!(s.pool().state(), RunspacePoolState::Disconnected);
    assert!(s.shell_exists());
    assert!(s.is_alive());

    // Nothing goes to a disconnected shell: no Receive, no Command, no stop Signal.
    assert!(s.poll_request().unwrap().is_none());
    assert!(s.invoke(Uuid::from_u128(12), pipeline()).is_err());
    s.stop(pid).unwrap();
    assert!(s.poll_request().unwrap().is_none());
    assert!(matches!(s.disconnect(), Err(SessionError::State { .. })));

    // Its state, asked meanwhile, is "Disconnected" and still alive: we disconnected it.
    s.query_shell_state().unwrap();
    let get = s.poll_request().unwrap().unwrap();
    assert_eq!(get.operation, Operation::ShellState);
    s.handle_response(200, &shell_state(&get, shell, "Disconnected"))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::ShellState {
            alive: true,
            state: Some("Disconnected".to_owned())
        }]
    );
    assert_eq!(s.phase(), Phase::Disconnected);
    assert!(s.poll_request().unwrap().is_none());

    // Meanwhile the server finishes the pipeline.
    server
        .pool
        .sink(pid)
        .unwrap()
        .output(Value::Str("done while away".into()));
    server
        .pool
        .sink(pid)
        .unwrap()
        .finish(PipelineOutcome::Completed);

    s.reconnect().unwrap();
    let reconnect = s.poll_request().unwrap().unwrap();
    assert_eq!(reconnect.operation, Operation::Reconnect);
    let env = decode(&reconnect);
    assert_eq!(env.action(), Some(action::RECONNECT));
    assert_eq!(
        env.header.selector("ShellId"),
        Some(uuid_upper(shell).as_str())
    );
    s.handle_response(200, &server.answer(&reconnect)).unwrap();
    assert_eq!(drain(&mut s), vec![SessionEvent::Reconnected]);
    assert_eq!(s.phase(), Phase::Opened);
    assert_eq!(s.pool().state(), RunspacePoolState::Opened);

    // The stop asked while disconnected goes now, then the Receives resume.
    let mut saw_output = false;
    let mut finished = None;
    for _ in 0..6 {
        let Some(req) = s.poll_request().unwrap() else {
            break;
        };
        let resp = match req.operation {
            Operation::Receive(Some(p)) => {
                assert_eq!(p, pid);
                server.receive(&req, Some(p), true)
            }
            _ => server.answer(&req),
        };
        s.handle_response(200, &resp).unwrap();
        for e in drain(&mut s) {
            match e {
                SessionEvent::Output { value, .. } => {
                    assert_eq!(value, Value::Str("done while away".into()));
                    saw_output = true;
                }
                SessionEvent::PipelineFinished { state, .. } => finished = Some(state),
                _ => {}
            }
        }
        if finished.is_some() {
            break;
        }
    }
    assert!(saw_output);
    assert_eq!(finished, Some(PsInvocationState::Completed));
}

#[test]
fn disconnect_and_reconnect_are_refused_in_the_wrong_phase() {
    let mut s = Session::new(
        config(),
        Uuid::from_u128(SHELL),
        Box::new(SequentialIds::default()),
    );
    assert!(matches!(s.disconnect(), Err(SessionError::State { .. })));
    assert!(matches!(s.reconnect(), Err(SessionError::State { .. })));
    let (mut s, _server) = opened();
    s.disconnect().unwrap();
    // A Reconnect cannot overtake a Disconnect still queued.
    assert!(matches!(s.reconnect(), Err(SessionError::State { .. })));
}

#[test]
fn close_while_disconnected_sends_just_the_delete() {
    let (mut s, mut server) = opened();
    let a = start(&mut s, &mut server, 21);
    let b = start(&mut s, &mut server, 22);
    s.disconnect().unwrap();
    let disconnect = s.poll_request().unwrap().unwrap();
    assert_eq!(disconnect.operation, Operation::Disconnect);
    s.handle_response(200, &server.answer(&disconnect)).unwrap();
    drain(&mut s);

    s.stop(a).unwrap();
    s.close();
    let delete = s.poll_request().unwrap().expect("the Delete");
    assert_eq!(delete.operation, Operation::Delete, "no Signal, no Receive");
    assert_eq!(decode(&delete).action(), Some(action::DELETE));
    s.handle_response(200, &server.answer(&delete)).unwrap();
    assert_eq!(s.phase(), Phase::Closed);
    assert!(!s.shell_exists());
    let events = drain(&mut s);
    assert!(events.contains(&SessionEvent::Closed), "{events:?}");
    assert!(s.poll_request().unwrap().is_none());
    assert!(s.running_pipelines().is_empty(), "{a} {b}");
}

// ---------------------------------------------------------------------------------------
// Connect to a disconnected pool, and to its commands.
// ---------------------------------------------------------------------------------------

/// A server pool opened by another client with 2..5 runspaces and application private
/// data, running pipeline `running` (if any), then left disconnected.
fn server_left_by_another_client(shell: Uuid, running: Option<Uuid>) -> Server {
    let mut server = Server {
        pool: ServerRunspacePool::new(
            shell,
            ServerConfig {
                application_private_data: Some(Value::Str("private".into())),
                ..ServerConfig::default()
            },
        ),
        queued: Default::default(),
        events: Vec::new(),
    };
    let mut first = ClientPool::new(
        shell,
        PoolConfig {
            min_runspaces: 2,
            max_runspaces: 5,
            ..PoolConfig::default()
        },
    );
    first.open().unwrap();
    if let Some(pid) = running {
        // Queued before the pool is open on the client side: fine for the server, which
        // takes messages in order.
        while let Some(out) = first.data_to_send(64 * 1024).unwrap() {
            server.feed(&out.data);
        }
        server.pump();
        for data in std::mem::take(&mut server.queued).into_values() {
            first.receive(&data).unwrap();
        }
        while first.next_event().unwrap().is_some() {}
        assert_eq!(first.state(), RunspacePoolState::Opened);
        first.create_pipeline(pid, pipeline()).unwrap();
    }
    while let Some(out) = first.data_to_send(64 * 1024).unwrap() {
        server.feed(&out.data);
    }
    // What the first client never read is lost with its connection.
    server.pump();
    server.queued.clear();
    server.events.clear();
    server
}

/// Connects a new session to `server`'s pool and checks every step; returns it Opened.
fn connect_session(shell: Uuid, server: &mut Server) -> Session {
    let mut s = Session::new(config(), shell, Box::new(SequentialIds::default()));
    s.connect().unwrap();
    assert_eq!(s.phase(), Phase::Connecting);
    assert!(s.shell_exists(), "the shell exists: it is someone else's");

    let connect = s.poll_request().unwrap().expect("the Connect");
    assert_eq!(connect.operation, Operation::Connect(None));
    let env = decode(&connect);
    assert_eq!(env.action(), Some(action::CONNECT));
    assert_eq!(env.resource_uri(), Some(ns::resource::EXCHANGE));
    assert_eq!(
        env.header.selector("ShellId"),
        Some(uuid_upper(shell).as_str())
    );
    assert_eq!(env.header.option("protocolversion"), Some("2.3"));
    let Body::Connect(c) = &env.body else {
        panic!("not a Connect: {:?}", env.body);
    };
    assert_eq!(c.command_id, None);
    let xml = c.connect_xml.clone().expect("connectXml");
    assert_eq!(
        message_types(&xml),
        vec![
            MessageType::SessionCapability,
            MessageType::ConnectRunspacePool
        ]
    );
    server.feed(&xml);
    assert!(
        server
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::Connected { .. })),
        "{:?}",
        server.events
    );

    // SESSION_CAPABILITY + RUNSPACEPOOL_INIT_DATA in the connectResponseXml; the
    // APPLICATION_PRIVATE_DATA waits for a Receive on the shell.
    let pending = server
        .pool
        .data_to_send(64 * 1024)
        .unwrap()
        .expect("answer");
    assert_eq!(pending.target.pipeline_id, None);
    assert_eq!(
        message_types(&pending.data),
        vec![
            MessageType::SessionCapability,
            MessageType::RunspacePoolInitData,
            MessageType::ApplicationPrivateData
        ]
    );
    let (head, apd) = split_after_messages(&pending.data, 2);
    let body = Body::ConnectResponse(ConnectResponse {
        input_streams: Some("stdin pr".to_owned()),
        output_streams: Some("stdout".to_owned()),
        connect_response_xml: Some(head),
    });
    s.handle_response(200, &reply(&connect, action::CONNECT_RESPONSE, body))
        .unwrap();
    assert_eq!(s.phase(), Phase::Opening);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|e| matches!(e, SessionEvent::Opened { .. })),
        "not open before the application private data"
    );
    assert_eq!(s.pool().runspaces(), (2, 5), "RUNSPACEPOOL_INIT_DATA read");

    let receive = s.poll_request().unwrap().expect("a Receive on the shell");
    assert_eq!(receive.operation, Operation::Receive(None));
    assert_eq!(decode(&receive).command_id(), None);
    s.handle_response(200, &receive_response(&receive, None, apd, false))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::Opened {
            protocol_version: "2.3".to_owned()
        }]
    );
    assert_eq!(s.phase(), Phase::Opened);
    assert_eq!(
        s.pool().application_private_data(),
        Some(&Value::Str("private".into()))
    );
    s
}

#[test]
fn connect_takes_over_a_disconnected_pool() {
    let shell = Uuid::from_u128(0xd15c);
    let mut server = server_left_by_another_client(shell, None);
    let mut s = connect_session(shell, &mut server);

    // The pool works: a pipeline runs, and close deletes the shell.
    let pid = start(&mut s, &mut server, 31);
    let receive = s.poll_request().unwrap().unwrap();
    server.pool.sink(pid).unwrap().output(Value::I32(42));
    server
        .pool
        .sink(pid)
        .unwrap()
        .finish(PipelineOutcome::Completed);
    s.handle_response(200, &server.receive(&receive, Some(pid), true))
        .unwrap();
    let events = drain(&mut s);
    assert!(
        events.contains(&SessionEvent::Output {
            pipeline_id: pid,
            value: Value::I32(42)
        }),
        "{events:?}"
    );
    s.close();
    let ops = run_to_end(&mut s, &mut server);
    assert_eq!(ops.last(), Some(&Operation::Delete), "{ops:?}");
}

#[test]
fn failed_connect_never_deletes_the_shell() {
    let shell = Uuid::from_u128(0xd15d);
    let mut s = Session::new(config(), shell, Box::new(SequentialIds::default()));
    s.connect().unwrap();
    assert!(matches!(s.open(), Err(SessionError::State { .. })));
    let connect = s.poll_request().unwrap().unwrap();
    let err = s
        .handle_response(
            500,
            &fault(
                &connect,
                ns::fault_code::INTERNAL_ERROR,
                2_150_859_213,
                "The shell is connected to a different client.",
            ),
        )
        .unwrap_err();
    assert_eq!(err.operation(), Some("Connect"));
    assert_eq!(s.phase(), Phase::Failed);
    assert!(!s.shell_exists(), "someone else's shell is never deleted");
    assert!(s.poll_request().unwrap().is_none());
    // The driver's clean-up (abandon) sends nothing either.
    s.abandon();
    assert_eq!(s.phase(), Phase::Closed);
    assert!(s.poll_request().unwrap().is_none());
}

#[test]
fn close_after_a_failed_connect_sends_no_delete() {
    let shell = Uuid::from_u128(0xd15f);
    let mut s = Session::new(config(), shell, Box::new(SequentialIds::default()));
    s.connect().unwrap();
    let connect = s.poll_request().unwrap().unwrap();
    let _ = s.handle_response(
        500,
        &fault(
            &connect,
            ns::fault_code::INTERNAL_ERROR,
            2_150_859_213,
            "The shell is connected to a different client.",
        ),
    );
    assert!(!s.shell_exists());
    s.close();
    assert_eq!(
        s.poll_request().unwrap().map(|r| r.operation),
        None,
        "close must not delete a shell this session never owned"
    );
}

#[test]
fn connect_pipeline_sends_a_connect_with_the_command_id_before_its_receive() {
    let shell = Uuid::from_u128(0xd15e);
    let pid = Uuid::from_u128(0x77);
    let mut server = server_left_by_another_client(shell, Some(pid));
    assert!(
        server.pool.sink(pid).is_ok(),
        "the server runs the pipeline"
    );
    let mut s = connect_session(shell, &mut server);

    s.connect_pipeline(pid).unwrap();
    let connect = s.poll_request().unwrap().expect("the command's Connect");
    assert_eq!(connect.operation, Operation::Connect(Some(pid)));
    let env = decode(&connect);
    assert_eq!(env.action(), Some(action::CONNECT));
    assert_eq!(
        env.header.selector("ShellId"),
        Some(uuid_upper(shell).as_str())
    );
    match &env.body {
        Body::Connect(c) => {
            assert_eq!(c.command_id.as_deref(), Some(uuid_upper(pid).as_str()));
            assert_eq!(c.connect_xml, None);
        }
        other => panic!("not a Connect: {other:?}"),
    }
    assert!(s.poll_request().unwrap().is_none(), "one at a time");
    let body = Body::ConnectResponse(ConnectResponse::default());
    s.handle_response(200, &reply(&connect, action::CONNECT_RESPONSE, body))
        .unwrap();

    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(Some(pid)));
    assert_eq!(
        decode(&receive).command_id(),
        Some(uuid_upper(pid).as_str())
    );
    server
        .pool
        .sink(pid)
        .unwrap()
        .output(Value::Str("left running".into()));
    server
        .pool
        .sink(pid)
        .unwrap()
        .finish(PipelineOutcome::Completed);
    s.handle_response(200, &server.receive(&receive, Some(pid), true))
        .unwrap();
    let events = drain(&mut s);
    assert!(
        events.contains(&SessionEvent::Output {
            pipeline_id: pid,
            value: Value::Str("left running".into())
        }),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::PipelineFinished { pipeline_id, state: PsInvocationState::Completed, .. }
                if *pipeline_id == pid
        )),
        "{events:?}"
    );
    // No second Connect for it.
    let next = s.poll_request().unwrap();
    assert!(
        !matches!(
            next.as_ref().map(|r| r.operation),
            Some(Operation::Connect(_))
        ),
        "{next:?}"
    );
}

#[test]
fn attach_pipeline_receives_without_connect_and_an_unknown_command_loses_only_it() {
    let (mut s, mut server) = opened();
    let running = start(&mut s, &mut server, 41);
    let other = Uuid::from_u128(42);
    s.attach_pipeline(other).unwrap();
    assert!(s.is_commanded(other));
    // Round robin: the first Receive is the started pipeline's, then the attached one's,
    // and never a Connect.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let req = s.poll_request().unwrap().unwrap();
        seen.push(req.operation);
        if req.operation == Operation::Receive(Some(other)) {
            assert_eq!(decode(&req).command_id(), Some(uuid_upper(other).as_str()));
            let gone = invalid_selectors(
                &req,
                "The request for the Windows Remote Shell with ShellId ABC failed because the command identifier 2A is not valid.",
            );
            let err = s.handle_response(500, &gone).unwrap_err();
            assert!(err.is_command_gone(), "{err}");
        } else {
            s.handle_response(500, &timed_out(&req)).unwrap();
        }
    }
    assert!(seen.contains(&Operation::Receive(Some(other))), "{seen:?}");
    assert!(
        !seen.iter().any(|o| matches!(o, Operation::Connect(_))),
        "{seen:?}"
    );
    let events = drain(&mut s);
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::PipelineError { pipeline_id, .. } if *pipeline_id == other
        )),
        "{events:?}"
    );
    assert_eq!(s.phase(), Phase::Opened, "the pool lives on");
    assert_eq!(s.running_pipelines(), vec![running]);
    // The unknown command is not terminated; the running one is still received.
    let next = s.poll_request().unwrap().unwrap();
    assert_eq!(next.operation, Operation::Receive(Some(running)));
}

// ---------------------------------------------------------------------------------------
// Session key exchange.
// ---------------------------------------------------------------------------------------

#[test]
fn key_exchange_end_to_end_with_the_server_machine() {
    let (mut s, mut server) = opened();
    assert!(matches!(s.exchange_key(small_key(0x5eed)), Ok(())));
    assert!(s.key_exchange_pending());
    assert!(s.pool().session_key().is_none());

    // PUBLIC_KEY goes to the shell's stdin.
    let send = s.poll_request().unwrap().unwrap();
    assert_eq!(send.operation, Operation::Send(None));
    let env = decode(&send);
    let streams: Vec<&Stream> = env.streams().collect();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].name, "stdin");
    assert_eq!(streams[0].command_id, None);
    assert_eq!(
        message_types(&streams[0].data),
        vec![MessageType::PublicKey]
    );
    s.handle_response(200, &server.answer(&send)).unwrap();
    let client_key = server
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::PublicKey(k) => Some(k.clone()),
            _ => None,
        })
        .expect("the server read the public key");

    // The shell's stream is read until the key comes, across empty answers.
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(None));
    s.handle_response(500, &timed_out(&receive)).unwrap();
    assert!(s.key_exchange_pending());
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(None));
    let session_key = SessionKey::from_bytes([0x42; 32]);
    server
        .pool
        .send_session_key(&mut TestRng(7), &client_key, session_key.clone())
        .unwrap();
    s.handle_response(200, &server.receive(&receive, None, false))
        .unwrap();
    assert_eq!(drain(&mut s), vec![SessionEvent::SessionKeyReady]);
    assert!(!s.key_exchange_pending());
    assert_eq!(s.pool().session_key(), Some(&session_key));
    assert!(
        s.poll_request().unwrap().is_none(),
        "no more shell Receives"
    );

    // SecureStrings now cross in both directions.
    let ss = s.pool().encrypt_secure_string("P@ssw0rd").unwrap();
    let Value::SecureString(b64) = &ss else {
        panic!("not a SecureString: {ss:?}");
    };
    assert_eq!(session_key.decrypt_secure_string(b64).unwrap(), "P@ssw0rd");
}

#[test]
fn key_exchange_is_refused_before_the_pool_opened() {
    let mut s = Session::new(
        config(),
        Uuid::from_u128(SHELL),
        Box::new(SequentialIds::default()),
    );
    s.open().unwrap();
    assert!(matches!(
        s.exchange_key(small_key(3)),
        Err(SessionError::State { .. })
    ));
    assert!(!s.key_exchange_pending());
}

#[test]
fn cancel_key_exchange_stops_the_shell_receives() {
    let (mut s, mut server) = opened();
    s.exchange_key(small_key(0xcafe)).unwrap();
    let send = s.poll_request().unwrap().unwrap();
    assert_eq!(send.operation, Operation::Send(None));
    s.handle_response(200, &server.answer(&send)).unwrap();
    // The server never answers with a key.
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(None));
    s.handle_response(500, &timed_out(&receive)).unwrap();
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(None));

    // The caller's deadline passes while a Receive is in flight.
    s.cancel_key_exchange();
    assert!(!s.key_exchange_pending());
    s.handle_response(500, &timed_out(&receive)).unwrap();
    assert!(
        s.poll_request().unwrap().is_none(),
        "no further shell Receive"
    );
    assert!(drain(&mut s).is_empty());

    // The pool is still usable.
    let pid = start(&mut s, &mut server, 51);
    let next = s.poll_request().unwrap().unwrap();
    assert_eq!(next.operation, Operation::Receive(Some(pid)));
}

// ---------------------------------------------------------------------------------------
// A CREATE_PIPELINE larger than one envelope.
// ---------------------------------------------------------------------------------------

/// Object ids and End flags of the fragments in `data`.
fn fragments(data: &[u8]) -> Vec<(u64, bool)> {
    FragmentReader::new(Bytes::copy_from_slice(data))
        .map(|f| {
            let f = f.expect("fragment parses");
            (f.header.object_id, f.header.is_end())
        })
        .collect()
}

fn payload(req: &WsmanRequest) -> Vec<u8> {
    match decode(req).body {
        Body::Command(cl) => cl.psrp_payload().unwrap(),
        Body::Send(send) => send.streams.into_iter().flat_map(|s| s.data).collect(),
        other => panic!("no payload in {other:?}"),
    }
}

#[test]
fn large_create_pipeline_goes_as_command_then_sends_of_only_its_rest() {
    const LIMIT: u64 = 8 * 1024;
    let mut cfg = config();
    cfg.max_envelope_size = LIMIT;
    cfg.raise_envelope_size = false;
    let (mut s, mut server) = opened_with(cfg);

    let big: String = (0..30_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut request = CreatePipeline::new(PowerShell::new(vec![
        PsCommand::cmdlet("Set-Mailbox").arg("CustomAttribute1", big.clone()),
    ]));
    request.no_input = false;
    let pid = Uuid::from_u128(61);
    s.invoke(pid, request).unwrap();
    // Input queued in the same batch, behind the CREATE_PIPELINE.
    s.send_input(pid, Value::Str("input".into())).unwrap();
    s.end_input(pid).unwrap();

    let mut requests = Vec::new();
    while let Some(req) = s.poll_request().unwrap() {
        if matches!(req.operation, Operation::Receive(_)) {
            break;
        }
        assert!(
            req.body.len() as u64 <= LIMIT,
            "{:?} of {} bytes",
            req.operation,
            req.body.len()
        );
        let resp = server.answer(&req);
        s.handle_response(200, &resp).unwrap();
        requests.push(req);
    }
    let ops: Vec<Operation> = requests.iter().map(|r| r.operation).collect();
    assert_eq!(ops[0], Operation::Command(pid), "{ops:?}");
    assert!(ops.len() >= 3, "split in several requests: {ops:?}");
    assert!(
        ops[1..].iter().all(|o| *o == Operation::Send(Some(pid))),
        "{ops:?}"
    );

    // The Command carries the start of CREATE_PIPELINE only, unfinished.
    let first = fragments(&payload(&requests[0]));
    let create_object = first[0].0;
    assert!(first.iter().all(|(o, _)| *o == create_object), "{first:?}");
    assert!(!first.iter().any(|(_, end)| *end), "the message goes on");

    // The Sends carry the rest of it, alone, up to its End; input only after that.
    let mut ended = false;
    let mut after = Vec::new();
    for req in &requests[1..] {
        let frags = fragments(&payload(req));
        if ended {
            assert!(frags.iter().all(|(o, _)| *o != create_object), "{frags:?}");
            after.extend(frags);
        } else {
            assert!(
                frags.iter().all(|(o, _)| *o == create_object),
                "nothing else in a Send carrying CREATE_PIPELINE: {frags:?}"
            );
            ended = frags.iter().any(|(_, end)| *end);
        }
    }
    assert!(ended, "CREATE_PIPELINE was finished");
    assert!(!after.is_empty(), "the input followed in its own Send");

    // The server got it whole, then the input.
    let created = server.events.iter().find_map(|e| match e {
        ServerEvent::CreatePipeline {
            pipeline_id,
            request,
        } if *pipeline_id == pid => Some(request.clone()),
        _ => None,
    });
    let created = created.expect("the server created the pipeline");
    let cmd = &created.power_shell.statements[0][0];
    assert_eq!(cmd.name, "Set-Mailbox");
    assert_eq!(
        cmd.args[0].value,
        Value::Str(big),
        "the parameter crossed intact"
    );
    assert!(server.events.iter().any(|e| matches!(
        e,
        ServerEvent::Input { pipeline_id, value } if *pipeline_id == pid && *value == Value::Str("input".into())
    )));
    assert!(
        server
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::EndOfInput { pipeline_id } if *pipeline_id == pid))
    );
}

#[test]
fn close_with_a_disconnect_still_queued_deletes_the_shell() {
    let (mut s, mut server) = opened();
    s.disconnect().unwrap();
    s.close();
    let ops = run_to_end(&mut s, &mut server);
    assert_eq!(ops.last(), Some(&Operation::Delete), "{ops:?}");
    assert_eq!(s.phase(), Phase::Closed);
}
