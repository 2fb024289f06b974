//! The session machine in memory against a server runspace pool (`rps_psrp::server`): the
//! extra stop Signal beside an in-flight Receive, faults scoped to a pipeline or to the
//! shell, a 503 on Receive, and abandoning a session.

use rps_psrp::messages::{CreatePipeline, PowerShell, PsInvocationState};
use rps_psrp::server::{PipelineOutcome, ServerConfig, ServerRunspacePool};
use rps_session::machine::{
    Operation, Phase, SequentialIds, Session, SessionConfig, SessionEvent, WsmanRequest,
};
use rps_wsman::ns::{self, action, signal};
use rps_wsman::{
    Body, CommandState, CreateResponse, Envelope, Fault, Header, QName, ReceiveResponse, Shell,
    Stream, WsmanFault, uuid_upper,
};
use uuid::Uuid;

/// A server side just smart enough for these tests.
struct Server {
    pool: ServerRunspacePool,
}

fn reply(req: &WsmanRequest, action: &str, body: Body) -> Vec<u8> {
    let env = Envelope::decode(&req.body).expect("our request decodes");
    let relates = env.header.message_id.clone().unwrap_or_default();
    Envelope::new(Header::response(action, Uuid::new_v4(), relates), body)
        .encode()
        .into_bytes()
}

fn fault(req: &WsmanRequest, subcode: &str, code: u32, message: &str) -> Vec<u8> {
    let f = Fault {
        code: QName::new(ns::SOAP, "Receiver"),
        subcodes: vec![QName::new(ns::WSMAN, subcode)],
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

impl Server {
    fn new(shell: Uuid) -> Self {
        Server {
            pool: ServerRunspacePool::new(shell, ServerConfig::default()),
        }
    }

    /// Answers `req` as a well-behaved server would.
    fn answer(&mut self, req: &WsmanRequest) -> Vec<u8> {
        let env = Envelope::decode(&req.body).expect("our request decodes");
        match (&req.operation, &env.body) {
            (Operation::Create, Body::Create(shell)) => {
                let data = shell.creation_xml.clone().unwrap_or_default();
                self.pool.receive(&data).expect("opening messages");
                while self.pool.next_event().expect("event").is_some() {}
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
                let payload = cl.psrp_payload().expect("payload");
                self.pool.receive(&payload).expect("create pipeline");
                while self.pool.next_event().expect("event").is_some() {}
                let body = Body::CommandResponse {
                    command_id: uuid_upper(*pid),
                };
                reply(req, action::COMMAND_RESPONSE, body)
            }
            (Operation::Receive(target), _) => self.receive(req, *target),
            (Operation::Signal(_), _) => reply(req, action::SIGNAL_RESPONSE, Body::SignalResponse),
            (Operation::Delete, _) => reply(req, action::DELETE_RESPONSE, Body::DeleteResponse),
            (Operation::Send(_), _) => reply(req, action::SEND_RESPONSE, Body::SendResponse),
            (op, _) => panic!("unexpected {op:?}"),
        }
    }

    /// Everything queued for `target`, with Done when `done`.
    fn receive_done(&mut self, req: &WsmanRequest, target: Option<Uuid>, done: bool) -> Vec<u8> {
        let mut data = Vec::new();
        while let Some(out) = self.pool.data_to_send(64 * 1024).expect("data") {
            data.extend_from_slice(&out.data);
        }
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

    fn receive(&mut self, req: &WsmanRequest, target: Option<Uuid>) -> Vec<u8> {
        self.receive_done(req, target, false)
    }
}

fn timed_out(req: &WsmanRequest) -> Vec<u8> {
    fault(
        req,
        ns::fault_code::TIMED_OUT,
        2_150_858_793,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )
}

/// An opened session and its server.
fn opened() -> (Session, Server) {
    let shell = Uuid::from_u128(0xabc);
    let mut config = SessionConfig::new("http://server/wsman", "Microsoft.Exchange");
    config.terminate_finished_pipelines = true;
    let mut s = Session::new(config, shell, Box::new(SequentialIds::default()));
    let mut server = Server::new(shell);
    s.open().unwrap();
    while s.phase() != Phase::Opened {
        let req = s.poll_request().unwrap().expect("a request while opening");
        let resp = server.answer(&req);
        s.handle_response(200, &resp).unwrap();
    }
    assert!(matches!(s.poll_event(), Some(SessionEvent::Opened { .. })));
    (s, server)
}

fn pipeline() -> CreatePipeline {
    CreatePipeline::new(PowerShell::new(vec![rps_psrp::messages::Command::cmdlet(
        "Get-Mailbox",
    )]))
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

fn signal_code(req: &WsmanRequest) -> String {
    match Envelope::decode(&req.body).unwrap().body {
        Body::Signal(sig) => sig.code,
        other => panic!("not a signal: {other:?}"),
    }
}

#[test]
fn stop_goes_out_beside_an_in_flight_receive() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 1);
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(Some(pid)));
    assert_eq!(s.poll_signal().map(|r| r.operation), None, "no stop asked");

    s.stop(pid).unwrap();
    let sig = s.poll_signal().expect("the stop goes out at once");
    assert_eq!(sig.operation, Operation::Signal(pid));
    assert_eq!(signal_code(&sig), signal::PS_CTRL_C);
    assert!(s.is_signalling());
    // One extra request at most; the main slot stays busy with the Receive.
    assert!(s.poll_signal().is_none());
    assert!(s.poll_request().unwrap().is_none());
    s.handle_signal_response(200, &server.answer(&sig)).unwrap();
    assert!(!s.is_signalling());

    // The server stops the pipeline; the waiting Receive brings the news.
    server
        .pool
        .sink(pid)
        .unwrap()
        .finish(PipelineOutcome::Stopped);
    let resp = server.receive_done(&receive, Some(pid), true);
    s.handle_response(200, &resp).unwrap();
    let finished = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
        SessionEvent::PipelineFinished { state, .. } => Some(state),
        _ => None,
    });
    assert_eq!(finished, Some(PsInvocationState::Stopped));
    // The stop is not sent twice; the finished command is terminated.
    let next = s.poll_request().unwrap().unwrap();
    assert_eq!(next.operation, Operation::Signal(pid));
    assert_eq!(signal_code(&next), signal::TERMINATE);
}

#[test]
fn failed_extra_signal_is_sent_again_after_the_receive() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 2);
    let receive = s.poll_request().unwrap().unwrap();
    s.stop(pid).unwrap();
    let _sig = s.poll_signal().unwrap();
    let e = s.handle_signal_transport_error("connection reset");
    assert!(e.to_string().contains("Signal"), "{e}");
    // Not again beside the same Receive: after it.
    assert!(s.poll_signal().is_none());
    s.handle_response(500, &timed_out(&receive)).unwrap();
    let next = s.poll_request().unwrap().unwrap();
    assert_eq!(next.operation, Operation::Signal(pid));
    assert_eq!(signal_code(&next), signal::PS_CTRL_C);
}

#[test]
fn no_extra_signal_without_a_receive_in_flight() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 3);
    s.stop(pid).unwrap();
    // Nothing in flight: the stop goes through the main slot.
    assert!(s.poll_signal().is_none());
    let req = s.poll_request().unwrap().unwrap();
    assert_eq!(req.operation, Operation::Signal(pid));
}

#[test]
fn shell_gone_fails_every_pipeline_and_the_session() {
    let (mut s, mut server) = opened();
    let a = start(&mut s, &mut server, 10);
    let b = start(&mut s, &mut server, 11);
    assert!(s.shell_exists());
    let receive = s.poll_request().unwrap().unwrap();
    let gone = fault(
        &receive,
        ns::fault_code::INVALID_SELECTORS,
        2_150_858_843,
        "The request for the Windows Remote Shell with ShellId ABC failed because the shell was not found on the server.",
    );
    let err = s.handle_response(500, &gone).unwrap_err();
    assert!(err.is_shell_gone(), "{err}");
    assert_eq!(err.operation(), Some("Receive"));
    assert_eq!(s.phase(), Phase::Failed);
    assert!(!s.is_alive());
    assert!(!s.shell_exists(), "nothing to delete");
    let mut failed: Vec<Uuid> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            SessionEvent::PipelineError { pipeline_id, .. } => Some(pipeline_id),
            _ => None,
        })
        .collect();
    failed.sort();
    assert_eq!(failed, vec![a, b]);
    assert!(s.poll_request().unwrap().is_none());
}

#[test]
fn fault_on_command_fails_the_pipeline_and_keeps_the_pool() {
    let (mut s, mut server) = opened();
    let pid = Uuid::from_u128(20);
    s.invoke(pid, pipeline()).unwrap();
    let req = s.poll_request().unwrap().unwrap();
    assert_eq!(req.operation, Operation::Command(pid));
    let err = s
        .handle_response(
            500,
            &fault(
                &req,
                ns::fault_code::INTERNAL_ERROR,
                2_150_858_752,
                "internal error",
            ),
        )
        .unwrap_err();
    assert_eq!(err.operation(), Some("Command"));
    assert!(!err.is_shell_gone());
    assert_eq!(s.phase(), Phase::Opened);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::PipelineError { pipeline_id, .. }) if pipeline_id == pid
    ));
    // The server is told to forget the lost command; then the next pipeline runs.
    let terminate = s.poll_request().unwrap().unwrap();
    assert_eq!(terminate.operation, Operation::Signal(pid));
    assert_eq!(signal_code(&terminate), signal::TERMINATE);
    s.handle_response(200, &server.answer(&terminate)).unwrap();
    let next = start(&mut s, &mut server, 21);
    let receive = s.poll_request().unwrap().unwrap();
    assert_eq!(receive.operation, Operation::Receive(Some(next)));
}

#[test]
fn receive_503_fails_nothing_and_receives_again() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 30);
    let receive = s.poll_request().unwrap().unwrap();
    let err = s.handle_response(503, b"Service Unavailable").unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(err.operation(), Some("Receive"));
    assert!(s.poll_event().is_none(), "the pipeline is not failed");
    let again = s.poll_request().unwrap().unwrap();
    assert_eq!(again.operation, receive.operation);
    assert_eq!(again.operation, Operation::Receive(Some(pid)));
}

#[test]
fn abandon_sends_only_the_delete() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 40);
    s.stop(pid).unwrap();
    s.abandon();
    let req = s.poll_request().unwrap().unwrap();
    assert_eq!(req.operation, Operation::Delete);
    s.handle_response(200, &server.answer(&req)).unwrap();
    assert_eq!(s.phase(), Phase::Closed);
    assert!(!s.shell_exists());
    assert!(matches!(s.poll_event(), Some(SessionEvent::Closed)));
    assert!(s.poll_request().unwrap().is_none());

    // Before the shell exists there is nothing to delete.
    let mut fresh = Session::new(
        SessionConfig::new("http://server/wsman", "Microsoft.Exchange"),
        Uuid::from_u128(7),
        Box::new(SequentialIds::default()),
    );
    fresh.open().unwrap();
    let create = fresh.poll_request().unwrap().unwrap();
    assert!(fresh.handle_transport_error("connect refused").is_err());
    assert_eq!(create.operation, Operation::Create);
    fresh.abandon();
    assert_eq!(fresh.phase(), Phase::Closed);
    assert!(fresh.poll_request().unwrap().is_none());
}

#[test]
fn extra_signal_refused_with_503_is_sent_again_after_the_receive() {
    let (mut s, mut server) = opened();
    let pid = start(&mut s, &mut server, 50);
    let receive = s.poll_request().unwrap().unwrap();
    s.stop(pid).unwrap();
    let _sig = s.poll_signal().unwrap();
    let err = s
        .handle_signal_response(503, b"Service Unavailable")
        .unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(err.operation(), Some("Signal"));
    assert!(
        s.poll_signal().is_none(),
        "not again beside the same Receive"
    );
    s.handle_response(500, &timed_out(&receive)).unwrap();
    let next = s.poll_request().unwrap().unwrap();
    assert_eq!(next.operation, Operation::Signal(pid));
    assert_eq!(signal_code(&next), signal::PS_CTRL_C);
}
