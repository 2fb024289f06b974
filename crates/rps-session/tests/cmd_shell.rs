//! The WinRS `cmd` shell machine in memory, against a scripted server: the Create and its
//! options, commands with arguments, stdin with `End`, stdout/stderr/exit code, the
//! `w:TimedOut` re-receive, faults scoped to a command or to the shell, signals, the
//! Delete, and the bounds on what the server controls.

use rps_session::cmd::{
    CmdCommand, CmdConfig, CmdEvent, CmdHandle, CmdOperation, CmdPhase, CmdShell, MAX_SERVER_ID_LEN,
};
use rps_session::machine::{Operation, SequentialIds, SessionError, WsmanRequest};
use rps_wsman::ns::{self, action, resource, signal};
use rps_wsman::{
    Body, CommandState, CreateResponse, Envelope, Fault, Header, Item, QName, RawElement,
    ReceiveResponse, Shell, Stream, WsmanFault,
};
use uuid::Uuid;

const SHELL_ID: &str = "4283CBDC-3706-415B-88BD-B385F3E51A53";
const CMD_1: &str = "CF84C20A-0A35-43FA-AF78-0B4711DA5F30";
const CMD_2: &str = "D37A8327-79AD-452F-BE0D-4B99A96B4A0B";

fn decode(req: &WsmanRequest) -> Envelope {
    Envelope::decode(&req.body).expect("our request decodes")
}

fn reply(req: &WsmanRequest, act: &str, body: Body) -> Vec<u8> {
    let relates = decode(req).header.message_id.unwrap_or_default();
    Envelope::new(Header::response(act, Uuid::new_v4(), relates), body)
        .encode()
        .into_bytes()
}

fn fault(req: &WsmanRequest, sender: bool, subcode: &str, code: u32, message: &str) -> Vec<u8> {
    let f = Fault {
        code: QName::new(ns::SOAP, if sender { "Sender" } else { "Receiver" }),
        subcodes: vec![QName::new(ns::WSMAN, subcode)],
        reason: Some(message.to_owned()),
        reason_lang: Some("en-US".to_owned()),
        fault_detail: None,
        wsman_fault: Some(WsmanFault {
            code: Some(code),
            machine: Some("server".to_owned()),
            message: Some(message.to_owned()),
            provider_fault: None,
        }),
        detail_raw: Vec::new(),
    };
    reply(req, action::WSMAN_FAULT, Body::Fault(f))
}

fn timed_out(req: &WsmanRequest) -> Vec<u8> {
    fault(
        req,
        false,
        ns::fault_code::TIMED_OUT,
        2_150_858_793,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )
}

fn created(req: &WsmanRequest, shell_id: &str) -> Vec<u8> {
    let body = Body::CreateResponse(CreateResponse {
        resource_created: None,
        shell: Some(Shell {
            shell_id: Some(shell_id.to_owned()),
            owner: Some("vagrant".to_owned()),
            ..Shell::default()
        }),
    });
    reply(req, action::CREATE_RESPONSE, body)
}

fn command_response(req: &WsmanRequest, id: &str) -> Vec<u8> {
    reply(
        req,
        action::COMMAND_RESPONSE,
        Body::CommandResponse {
            command_id: id.to_owned(),
        },
    )
}

fn stream(name: &str, cid: &str, data: &[u8], end: bool) -> Stream {
    Stream {
        name: name.to_owned(),
        command_id: Some(cid.to_owned()),
        end,
        data: data.to_vec(),
    }
}

fn received(
    req: &WsmanRequest,
    streams: Vec<Stream>,
    cid: &str,
    done: Option<Option<i64>>,
) -> Vec<u8> {
    let command_state = Some(CommandState {
        command_id: Some(cid.to_owned()),
        state: match done {
            Some(_) => ns::command_state::DONE.to_owned(),
            None => ns::command_state::RUNNING.to_owned(),
        },
        exit_code: done.flatten(),
    });
    let body = Body::ReceiveResponse(ReceiveResponse {
        streams,
        command_state,
        extra: Vec::new(),
    });
    reply(req, action::RECEIVE_RESPONSE, body)
}

fn empty(req: &WsmanRequest, act: &str, body: Body) -> Vec<u8> {
    reply(req, act, body)
}

fn config() -> CmdConfig {
    let mut c = CmdConfig::new("http://server:5985/wsman");
    c.session_id = Some(Uuid::from_u128(0xABC));
    c
}

fn next(m: &mut CmdShell) -> WsmanRequest {
    m.poll_request().expect("a request to send")
}

fn events(m: &mut CmdShell) -> Vec<CmdEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// A machine with its shell created (`SHELL_ID`).
fn opened(config: CmdConfig) -> CmdShell {
    let mut m = CmdShell::new(config, Box::new(SequentialIds::default()));
    m.open().expect("open");
    let req = next(&mut m);
    m.handle_response(200, &created(&req, SHELL_ID))
        .expect("create");
    let evs = events(&mut m);
    assert!(
        matches!(&evs[..], [CmdEvent::Created { shell_id, .. }] if shell_id == SHELL_ID),
        "{evs:?}"
    );
    m
}

/// Starts `spec` and answers its Command with `id`.
fn start(m: &mut CmdShell, spec: CmdCommand, id: &str) -> CmdHandle {
    let h = m.run_command(spec).expect("run");
    let req = next(m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Command(h)));
    m.handle_response(200, &command_response(&req, id))
        .expect("command");
    let evs = events(m);
    assert!(
        matches!(&evs[..], [CmdEvent::Started { handle, command_id }] if *handle == h && command_id == id),
        "{evs:?}"
    );
    h
}

fn option<'a>(env: &'a Envelope, name: &str) -> Option<&'a str> {
    env.header.option(name)
}

#[test]
fn create_carries_the_shell_settings_and_options() {
    let mut c = config();
    c.environment = vec![
        ("env1".to_owned(), "var1".to_owned()),
        ("a&b".to_owned(), "<x>\"".to_owned()),
    ];
    c.working_directory = Some(r"C:\Windows".to_owned());
    c.idle_timeout_secs = Some(60);
    c.lifetime_secs = Some(120);
    c.name = Some("shell 1".to_owned());
    c.codepage = Some(65001);
    c.no_profile = true;
    c.extra_options = vec![("WINRS_EXTRA".to_owned(), "1".to_owned())];
    c.operation_timeout_secs = 10;
    let mut m = CmdShell::new(c, Box::new(SequentialIds::default()));
    assert_eq!(
        m.poll_request().map(|r| r.operation),
        None,
        "nothing before open"
    );
    m.open().expect("open");
    let req = next(&mut m);
    assert_eq!(req.operation, Operation::Create);
    assert_eq!(req.message_id, Uuid::from_u128(1));
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::CREATE));
    assert_eq!(env.resource_uri(), Some(resource::CMD));
    assert_eq!(env.header.operation_timeout.as_deref(), Some("PT10S"));
    assert_eq!(
        env.header.session_id.as_deref(),
        Some("uuid:00000000-0000-0000-0000-000000000ABC")
    );
    assert!(
        env.header.selectors.is_empty(),
        "the server chooses the ShellId"
    );
    let opts = &env.header.options.as_ref().expect("options").options;
    let names: Vec<_> = opts
        .iter()
        .map(|o| (o.name.as_str(), o.value.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("WINRS_NOPROFILE", "TRUE"),
            ("WINRS_CODEPAGE", "65001"),
            ("WINRS_EXTRA", "1")
        ]
    );
    assert_eq!(opts[0].must_comply, Some(true));
    let Body::Create(shell) = env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(shell.shell_id, None);
    assert_eq!(shell.input_streams.as_deref(), Some("stdin"));
    assert_eq!(shell.output_streams.as_deref(), Some("stdout stderr"));
    assert_eq!(shell.working_directory.as_deref(), Some(r"C:\Windows"));
    assert_eq!(shell.idle_timeout.as_deref(), Some("PT60S"));
    assert_eq!(shell.lifetime.as_deref(), Some("PT120S"));
    assert_eq!(shell.name.as_deref(), Some("shell 1"));
    let env_vars: Vec<_> = shell
        .environment
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(env_vars, [("env1", "var1"), ("a&b", "<x>\"")]);
    assert!(m.poll_request().is_none(), "one request in flight");
    m.handle_response(200, &created(&req, SHELL_ID))
        .expect("create");
    assert_eq!(m.shell_id(), Some(SHELL_ID));
    assert_eq!(m.phase(), CmdPhase::Open);
    assert!(m.shell_exists());
    match events(&mut m).as_slice() {
        [CmdEvent::Created { shell_id, shell }] => {
            assert_eq!(shell_id, SHELL_ID);
            assert_eq!(
                shell.as_ref().and_then(|s| s.owner.as_deref()),
                Some("vagrant")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(m.is_idle());
    assert!(m.poll_request().is_none(), "idle shell sends nothing");
}

#[test]
fn a_command_runs_with_its_arguments_and_reports_output_and_exit_code() {
    let mut m = opened(config());
    let h = m.run("cmd.exe", ["/c", "echo", "hi"]).expect("run");
    let req = next(&mut m);
    assert_eq!(req.operation, Operation::Command(Uuid::nil()));
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::COMMAND));
    assert_eq!(env.header.selector("ShellId"), Some(SHELL_ID));
    assert_eq!(option(&env, "WINRS_SKIP_CMD_SHELL"), Some("False"));
    assert_eq!(option(&env, "WINRS_CONSOLEMODE_STDIN"), None);
    let Body::Command(cl) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(cl.command_id, None, "the server chooses the CommandId");
    assert_eq!(cl.command.as_deref(), Some("cmd.exe"));
    assert_eq!(cl.arguments, ["/c", "echo", "hi"]);
    m.handle_response(200, &command_response(&req, CMD_1))
        .expect("command");
    assert_eq!(m.command_id(h), Some(CMD_1));
    assert_eq!(m.handle_of(&CMD_1.to_lowercase()), Some(h));

    let req = next(&mut m);
    assert_eq!(
        req.operation,
        Operation::Receive(Some(CMD_1.parse().expect("uuid")))
    );
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::RECEIVE));
    assert_eq!(option(&env, ns::option::KEEPALIVE), Some("True"));
    let Body::Receive(r) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(r.desired_streams, "stdout stderr");
    assert_eq!(r.command_id.as_deref(), Some(CMD_1));
    let out = received(
        &req,
        vec![
            stream("stdout", CMD_1, b"out \r\n", false),
            stream("stderr", CMD_1, b"err \r\n", false),
            stream("stdout", CMD_1, b"", true),
            stream("stderr", CMD_1, b"", true),
        ],
        CMD_1,
        Some(Some(3)),
    );
    m.handle_response(200, &out).expect("receive");
    let evs = events(&mut m);
    match evs.as_slice() {
        [
            CmdEvent::Started { .. },
            CmdEvent::Stdout {
                handle: h1,
                data: o,
            },
            CmdEvent::Stderr {
                handle: h2,
                data: e,
            },
            CmdEvent::Finished {
                handle: h3,
                exit_code: Some(3),
            },
        ] => {
            assert_eq!((*h1, *h2, *h3), (h, h, h));
            assert_eq!(&o[..], b"out \r\n");
            assert_eq!(&e[..], b"err \r\n");
        }
        other => panic!("{other:?}"),
    }
    assert!(m.is_over(h));
    // The default release: terminate the finished command.
    let req = next(&mut m);
    let env = decode(&req);
    let Body::Signal(s) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(s.code, signal::TERMINATE);
    assert_eq!(s.command_id.as_deref(), Some(CMD_1));
    m.handle_response(
        200,
        &empty(&req, action::SIGNAL_RESPONSE, Body::SignalResponse),
    )
    .expect("signal");
    assert!(events(&mut m).is_empty(), "the release is not reported");
    assert!(m.is_idle());
    assert!(m.poll_request().is_none());

    m.close();
    let req = next(&mut m);
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::DELETE));
    assert_eq!(env.header.selector("ShellId"), Some(SHELL_ID));
    assert_eq!(env.resource_uri(), Some(resource::CMD));
    m.handle_response(
        200,
        &empty(&req, action::DELETE_RESPONSE, Body::DeleteResponse),
    )
    .expect("delete");
    assert!(matches!(events(&mut m).as_slice(), [CmdEvent::Closed]));
    assert_eq!(m.phase(), CmdPhase::Closed);
    assert!(!m.shell_exists());
    assert!(m.poll_request().is_none());
}

#[test]
fn stdin_goes_before_the_first_receive_with_end_on_the_last_chunk() {
    let mut c = config();
    c.release_signal = None;
    let mut m = opened(c);
    let h = m
        .run_command(
            CmdCommand::new("powershell.exe")
                .arg("-")
                .skip_cmd_shell(true)
                .console_mode_stdin(true),
        )
        .expect("run");
    // Input queued before the command even started.
    m.send(h, &b"Write-Host 1;"[..], false).expect("send");
    m.send(h, &b"Write-Host 2;"[..], true).expect("send");
    assert!(matches!(
        m.send(h, &b"late"[..], false),
        Err(SessionError::State {
            state: "input ended",
            ..
        })
    ));
    let req = next(&mut m);
    let env = decode(&req);
    assert_eq!(option(&env, "WINRS_SKIP_CMD_SHELL"), Some("True"));
    assert_eq!(option(&env, "WINRS_CONSOLEMODE_STDIN"), Some("True"));
    m.handle_response(200, &command_response(&req, CMD_1))
        .expect("command");
    for (data, end) in [
        (&b"Write-Host 1;"[..], false),
        (&b"Write-Host 2;"[..], true),
    ] {
        let req = next(&mut m);
        assert_eq!(m.in_flight(), Some(CmdOperation::Send(h)));
        let env = decode(&req);
        let Body::Send(send) = &env.body else {
            panic!("{:?}", env.body)
        };
        assert_eq!(send.streams.len(), 1);
        let s = &send.streams[0];
        assert_eq!(s.name, "stdin");
        assert_eq!(s.command_id.as_deref(), Some(CMD_1));
        assert_eq!(s.data, data);
        assert_eq!(s.end, end);
        m.handle_response(200, &empty(&req, action::SEND_RESPONSE, Body::SendResponse))
            .expect("send");
    }
    let evs = events(&mut m);
    let sent: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            CmdEvent::InputSent { handle, end } => Some((*handle, *end)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [(h, false), (h, true)]);
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)));
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream("stdout", CMD_1, b"1\n2\n", false)],
            CMD_1,
            Some(Some(0)),
        ),
    )
    .expect("receive");
    assert!(m.poll_request().is_none(), "no release signal configured");
}

#[test]
fn large_input_is_split_to_fit_the_envelope() {
    let mut c = config();
    c.max_envelope_size = 4096;
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("more").defer_output(), CMD_1);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    m.send(h, data.clone(), true).expect("send");
    let mut got = Vec::new();
    let mut ends = Vec::new();
    while !m.is_idle() {
        let req = next(&mut m);
        assert!(req.body.len() <= 4096, "{} bytes", req.body.len());
        let env = decode(&req);
        let Body::Send(send) = &env.body else {
            panic!("{:?}", env.body)
        };
        got.extend_from_slice(&send.streams[0].data);
        ends.push(send.streams[0].end);
        m.handle_response(200, &empty(&req, action::SEND_RESPONSE, Body::SendResponse))
            .expect("send");
    }
    assert_eq!(got, data);
    assert!(ends.len() > 2, "{ends:?}");
    assert!(ends[..ends.len() - 1].iter().all(|e| !e) && ends[ends.len() - 1]);
    let evs = events(&mut m);
    assert!(
        matches!(evs.as_slice(), [CmdEvent::InputSent { handle, end: true }] if *handle == h),
        "one chunk, one InputSent: {evs:?}"
    );
    // Deferred output: nothing is read until asked.
    assert!(m.poll_request().is_none());
    m.read_output(h).expect("read");
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)));
}

#[test]
fn a_timed_out_receive_is_received_again() {
    let mut m = opened(config());
    let h = start(&mut m, CmdCommand::new("powershell.exe"), CMD_1);
    let req = next(&mut m);
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream("stdout", CMD_1, b"hi", false)],
            CMD_1,
            None,
        ),
    )
    .expect("running");
    for status in [500, 200] {
        let req = next(&mut m);
        assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)));
        m.handle_response(status, &timed_out(&req))
            .expect("a timeout is no error");
        assert!(!m.is_over(h));
    }
    let req = next(&mut m);
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream("stdout", CMD_1, b" again\n", false)],
            CMD_1,
            Some(Some(0)),
        ),
    )
    .expect("done");
    let out: Vec<u8> = events(&mut m)
        .into_iter()
        .filter_map(|e| match e {
            CmdEvent::Stdout { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(out, b"hi again\n");
}

#[test]
fn a_fault_on_command_fails_that_command_only() {
    let mut m = opened(config());
    let bad = m
        .run_command(CmdCommand::new("powershell.exe").skip_cmd_shell(true))
        .expect("run");
    let req = next(&mut m);
    let f = fault(
        &req,
        false,
        ns::fault_code::INTERNAL_ERROR,
        2_147_942_402,
        "The system cannot find the file specified.",
    );
    m.handle_response(500, &f)
        .expect("a command's fault is its own event");
    match events(&mut m).as_slice() {
        [CmdEvent::CommandError { handle, error }] => {
            assert_eq!(*handle, bad);
            assert_eq!(error.operation(), Some("Command"));
            let SessionError::Fault { fault, .. } = error else {
                panic!("{error:?}")
            };
            assert_eq!(fault.wsman_code(), Some(2_147_942_402));
            assert!(fault.has_subcode(ns::WSMAN, "InternalError"));
            assert!(!error.is_shell_gone());
        }
        other => panic!("{other:?}"),
    }
    assert!(m.is_over(bad));
    assert!(m.command_id(bad).is_none());
    assert_eq!(m.phase(), CmdPhase::Open);
    assert!(matches!(
        m.send(bad, &b"x"[..], true),
        Err(SessionError::State {
            state: "command over",
            ..
        })
    ));
    assert!(m.signal(bad, signal::CTRL_C).is_err(), "never started");
    // The shell lives on.
    let good = start(
        &mut m,
        CmdCommand::new(r"C:\Windows\system32\WindowsPowerShell\v1.0\powershell.exe"),
        CMD_2,
    );
    assert_ne!(good, bad);
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(good)));
}

#[test]
fn ctrl_c_keeps_reading_and_terminate_ends_the_command() {
    let mut c = config();
    c.release_signal = None;
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("ping").arg("-t"), CMD_1);
    m.signal(h, signal::CTRL_C).expect("signal");
    // Queued signals go before the Receive.
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Signal(h)));
    assert_eq!(
        req.operation,
        Operation::Signal(CMD_1.parse().expect("uuid"))
    );
    let env = decode(&req);
    let Body::Signal(s) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(s.code, signal::CTRL_C);
    assert_eq!(s.command_id.as_deref(), Some(CMD_1));
    assert!(env.header.options.is_none());
    m.handle_response(
        200,
        &empty(&req, action::SIGNAL_RESPONSE, Body::SignalResponse),
    )
    .expect("signal");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::Signalled { handle, code }] if *handle == h && code == signal::CTRL_C
    ));
    assert!(!m.is_over(h), "ctrl_c: the command decides");
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)));
    let req = m.poll_request();
    assert!(req.is_none());
    // Answer the Receive with nothing new, then terminate.
    m.handle_transport_error("connection reset")
        .expect_err("a failed Receive is reported");
    assert!(!m.is_over(h), "and retried");
    m.signal(h, signal::TERMINATE).expect("signal");
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Signal(h)));
    m.handle_response(
        200,
        &empty(&req, action::SIGNAL_RESPONSE, Body::SignalResponse),
    )
    .expect("signal");
    let evs = events(&mut m);
    assert!(
        matches!(
            evs.as_slice(),
            [
                CmdEvent::Signalled { .. },
                CmdEvent::Finished {
                    exit_code: None,
                    ..
                }
            ]
        ),
        "{evs:?}"
    );
    assert!(m.is_over(h));
    assert!(
        m.poll_request().is_none(),
        "no Receive for a terminated command"
    );
    // A signal after the end still goes out (pypsrp sends ctrl_c to finished commands).
    m.signal(h, signal::CTRL_C).expect("signal");
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Signal(h)));
}

#[test]
fn a_refused_signal_is_reported_and_changes_nothing() {
    let mut c = config();
    c.release_signal = None;
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("x").defer_output(), CMD_1);
    m.signal(h, signal::CTRL_BREAK).expect("signal");
    let req = next(&mut m);
    m.handle_response(
        500,
        &fault(
            &req,
            true,
            ns::fault_code::INVALID_PARAMETER,
            87,
            "The parameter is incorrect.",
        ),
    )
    .expect("command-scoped");
    match events(&mut m).as_slice() {
        [CmdEvent::CommandError { handle, error }] => {
            assert_eq!(*handle, h);
            assert_eq!(error.operation(), Some("Signal"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!m.is_over(h));
}

#[test]
fn an_unknown_command_id_fails_that_command_and_the_shell_is_still_deleted() {
    let mut c = config();
    c.release_signal = None;
    let mut m = opened(c);
    let real = start(&mut m, CmdCommand::new("cmd.exe").defer_output(), CMD_1);
    let bogus = m
        .attach("87E77BEB-6761-4C48-9D70-A00266B8459A")
        .expect("attach");
    let req = next(&mut m);
    let env = decode(&req);
    let Body::Receive(r) = &env.body else {
        panic!("{:?}", env.body)
    };
    assert_eq!(
        r.command_id.as_deref(),
        Some("87E77BEB-6761-4C48-9D70-A00266B8459A")
    );
    let f = fault(
        &req,
        true,
        ns::fault_code::INVALID_SELECTORS,
        2_150_858_843,
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist.",
    );
    m.handle_response(500, &f).expect("command-scoped");
    match events(&mut m).as_slice() {
        [CmdEvent::CommandError { handle, error }] => {
            assert_eq!(*handle, bogus);
            assert!(error.is_command_gone(), "{error}");
            assert_eq!(error.operation(), Some("Receive"));
        }
        other => panic!("{other:?}"),
    }
    assert!(m.is_over(bogus));
    assert!(!m.is_over(real));
    assert_eq!(m.phase(), CmdPhase::Open);
    m.close();
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Delete));
    m.handle_response(
        200,
        &empty(&req, action::DELETE_RESPONSE, Body::DeleteResponse),
    )
    .expect("delete");
    assert_eq!(m.phase(), CmdPhase::Closed);
}

#[test]
fn a_lost_shell_fails_every_command_and_is_not_deleted() {
    let mut m = opened(config());
    let a = start(&mut m, CmdCommand::new("a"), CMD_1);
    let b = start(&mut m, CmdCommand::new("b"), CMD_2);
    let req = next(&mut m);
    let f = fault(
        &req,
        true,
        ns::fault_code::INVALID_SELECTORS,
        2_150_858_843,
        "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
    );
    let err = m.handle_response(500, &f).expect_err("the shell is gone");
    assert!(err.is_shell_gone() && !err.is_command_gone(), "{err}");
    assert_eq!(m.phase(), CmdPhase::Failed);
    assert!(!m.shell_exists());
    let failed: Vec<_> = events(&mut m)
        .into_iter()
        .filter_map(|e| match e {
            CmdEvent::CommandError { handle, error } => {
                assert!(error.is_shell_gone());
                Some(handle)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed, [a, b]);
    m.close();
    assert!(m.poll_request().is_none(), "nothing to delete");
    assert!(matches!(
        m.run("x", Vec::<String>::new()),
        Err(SessionError::State {
            state: "failed",
            ..
        })
    ));
}

#[test]
fn receives_go_round_robin_and_output_is_routed_by_command_id() {
    let mut c = config();
    c.release_signal = None;
    let mut m = opened(c);
    let a = start(&mut m, CmdCommand::new("a"), CMD_1);
    let b = start(&mut m, CmdCommand::new("b"), CMD_2);
    let mut order = Vec::new();
    for _ in 0..4 {
        let req = next(&mut m);
        let Some(CmdOperation::Receive(h)) = m.in_flight() else {
            panic!("{:?}", m.in_flight())
        };
        order.push(h);
        m.handle_response(200, &timed_out(&req)).expect("timeout");
    }
    assert_eq!(order, [a, b, a, b]);
    // A response for `a` that also carries `b`'s output and end.
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(a)));
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream("stdout", CMD_2, b"from b", false)],
            CMD_2,
            Some(Some(7)),
        ),
    )
    .expect("receive");
    let evs = events(&mut m);
    assert!(
        matches!(
            evs.as_slice(),
            [
                CmdEvent::Stdout { handle: h1, .. },
                CmdEvent::Finished { handle: h2, exit_code: Some(7) }
            ] if *h1 == b && *h2 == b
        ),
        "{evs:?}"
    );
    assert!(!m.is_over(a));
    // Output of a command this shell never saw is refused.
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(a)));
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream(
                "stdout",
                "11111111-2222-3333-4444-555555555555",
                b"x",
                false,
            )],
            CMD_1,
            None,
        ),
    )
    .expect("command-scoped");
    match events(&mut m).as_slice() {
        [CmdEvent::CommandError { handle, error }] => {
            assert_eq!(*handle, a);
            assert!(error.to_string().contains("unknown command"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn open_twice_and_bad_handles_are_typed_state_errors() {
    let mut m = opened(config());
    assert!(matches!(
        m.open(),
        Err(SessionError::State {
            action: "open the shell",
            state: "open"
        })
    ));
    assert!(m.poll_request().is_none(), "a second open sends nothing");
    let mut other = CmdShell::new(config(), Box::new(SequentialIds::default()));
    let foreign = other.run("x", ["y"]).expect("queued before open");
    assert!(matches!(
        m.send(foreign, &b""[..], true),
        Err(SessionError::State {
            state: "unknown command handle",
            ..
        })
    ));
    assert!(m.attach("has space").is_err());
    assert!(m.attach("").is_err());
    // Closing a shell never opened sends nothing; its queued command fails.
    other.close();
    assert!(other.poll_request().is_none());
    let evs = events(&mut other);
    assert!(
        matches!(
            evs.as_slice(),
            [CmdEvent::CommandError { .. }, CmdEvent::Closed]
        ),
        "{evs:?}"
    );
}

#[test]
fn commands_queued_before_the_shell_exists_start_after_the_create() {
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    let h = m.run("echo", ["abc"]).expect("queued");
    m.send(h, &b"in"[..], true).expect("queued input");
    m.open().expect("open");
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Create));
    m.handle_response(200, &created(&req, SHELL_ID))
        .expect("create");
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Command(h)));
    m.handle_response(200, &command_response(&req, CMD_1))
        .expect("command");
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Send(h)));
}

#[test]
fn a_failed_create_fails_the_shell_and_its_queued_commands() {
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    let h = m.run("x", ["y"]).expect("queued");
    m.open().expect("open");
    let req = next(&mut m);
    let f = fault(&req, true, "AccessDenied", 5, "Access is denied.");
    let err = m.handle_response(500, &f).expect_err("create failed");
    assert_eq!(err.operation(), Some("Create"));
    assert_eq!(m.phase(), CmdPhase::Failed);
    assert!(!m.shell_exists());
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError { handle, .. }] if *handle == h
    ));
    assert!(m.poll_request().is_none());
}

#[test]
fn what_the_server_chooses_is_bounded() {
    // No ShellId.
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    m.open().expect("open");
    let req = next(&mut m);
    let body = Body::CreateResponse(CreateResponse {
        resource_created: None,
        shell: Some(Shell::default()),
    });
    let err = m
        .handle_response(200, &reply(&req, action::CREATE_RESPONSE, body))
        .expect_err("no ShellId");
    assert!(
        matches!(
            err,
            SessionError::Unexpected {
                operation: "Create",
                ..
            }
        ),
        "{err}"
    );
    // An oversized ShellId.
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    m.open().expect("open");
    let req = next(&mut m);
    let long = "A".repeat(MAX_SERVER_ID_LEN + 1);
    let err = m
        .handle_response(200, &created(&req, &long))
        .expect_err("too long");
    assert!(err.to_string().contains("unusable ShellId"), "{err}");
    assert!(err.to_string().len() < 300, "the peer's text is shortened");
    // A CommandId with whitespace.
    let mut m = opened(config());
    let h = m.run("x", ["y"]).expect("run");
    let req = next(&mut m);
    m.handle_response(200, &command_response(&req, "bad id"))
        .expect("command-scoped");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError { handle, error: SessionError::Unexpected { .. } }] if *handle == h
    ));
    // A response over the envelope limit.
    let mut c = config();
    c.wsman_limits = rps_wsman::Limits::default().with_max_envelope_bytes(2048);
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("x"), CMD_1);
    let req = next(&mut m);
    let big = received(
        &req,
        vec![stream("stdout", CMD_1, &[b'x'; 4096], false)],
        CMD_1,
        None,
    );
    m.handle_response(200, &big).expect("command-scoped");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError { handle, error: SessionError::Envelope { .. } }] if *handle == h
    ));
}

#[test]
fn no_receive_while_unread_output_exceeds_the_limit() {
    let mut c = config();
    c.max_buffered_output = 10;
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("x"), CMD_1);
    let req = next(&mut m);
    m.handle_response(
        200,
        &received(
            &req,
            vec![stream("stdout", CMD_1, &[b'a'; 12], false)],
            CMD_1,
            None,
        ),
    )
    .expect("receive");
    assert!(m.poll_request().is_none(), "12 bytes unread, limit 10");
    assert!(matches!(m.poll_event(), Some(CmdEvent::Stdout { .. })));
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)));
    m.handle_response(200, &timed_out(&req)).expect("timeout");
    // pause_output stops the reading until read_output.
    m.pause_output(h).expect("pause");
    assert!(m.poll_request().is_none());
    m.read_output(h).expect("resume");
    assert!(m.poll_request().is_some());
}

#[test]
fn receive_503_and_transport_errors_are_retried_and_other_http_errors_fail_the_command() {
    let mut m = opened(config());
    let h = start(&mut m, CmdCommand::new("x"), CMD_1);
    let _ = next(&mut m);
    let err = m
        .handle_response(503, b"Service Unavailable")
        .expect_err("503 reported");
    assert_eq!(err.http_status(), Some(503));
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)), "sent again");
    let err = m
        .handle_transport_error("connection reset")
        .expect_err("reported");
    assert!(matches!(
        err,
        SessionError::Transport {
            operation: "Receive",
            ..
        }
    ));
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Receive(h)), "sent again");
    m.handle_response(400, b"Bad Request")
        .expect("command-scoped");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError {
            error: SessionError::Http { status: 400, .. },
            ..
        }]
    ));
    assert!(m.is_over(h));
}

#[test]
fn read_server_config_uses_the_server_envelope_size() {
    let mut c = config();
    c.read_server_config = true;
    let mut m = CmdShell::new(c, Box::new(SequentialIds::default()));
    m.open().expect("open");
    let req = next(&mut m);
    assert_eq!(req.operation, Operation::Config);
    let env = decode(&req);
    assert_eq!(env.action(), Some(action::GET));
    assert_eq!(env.resource_uri(), Some(resource::CONFIG));
    let xml = "<cfg:Config xmlns:cfg=\"http://schemas.microsoft.com/wbem/wsman/1/config\">\
               <cfg:MaxEnvelopeSizekb>8</cfg:MaxEnvelopeSizekb></cfg:Config>";
    let raw = RawElement {
        namespace: Some(ns::CONFIG.to_owned()),
        name: "Config".to_owned(),
        xml: xml.to_owned(),
    };
    let body = Body::GetResponse(Item::Raw(raw));
    m.handle_response(200, &reply(&req, action::GET_RESPONSE, body))
        .expect("config");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::ServerConfig {
            max_envelope_size: 8192
        }]
    ));
    let req = next(&mut m);
    assert_eq!(req.operation, Operation::Create);
    assert_eq!(
        decode(&req).header.max_envelope_size.map(|m| m.value),
        Some(8192)
    );
}

#[test]
fn a_failed_delete_still_ends_the_shell() {
    let mut m = opened(config());
    m.close();
    let req = next(&mut m);
    let err = m
        .handle_response(
            500,
            &fault(&req, false, ns::fault_code::INTERNAL_ERROR, 1, "boom"),
        )
        .expect_err("reported");
    assert_eq!(err.operation(), Some("Delete"));
    assert_eq!(m.phase(), CmdPhase::Closed);
    assert!(matches!(events(&mut m).as_slice(), [CmdEvent::Closed]));
}

#[test]
fn queued_signals_go_out_before_the_delete_on_close() {
    let mut c = config();
    c.release_signal = Some(signal::CTRL_C.to_owned());
    let mut m = opened(c);
    let h = start(&mut m, CmdCommand::new("x"), CMD_1);
    let req = next(&mut m);
    m.handle_response(200, &received(&req, Vec::new(), CMD_1, Some(Some(0))))
        .expect("done");
    let queued = m.run("never", ["sent"]).expect("run");
    m.close();
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Signal(h)));
    let env = decode(&req);
    assert!(matches!(&env.body, Body::Signal(s) if s.code == signal::CTRL_C));
    m.handle_response(
        200,
        &empty(&req, action::SIGNAL_RESPONSE, Body::SignalResponse),
    )
    .expect("signal");
    let _ = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Delete));
    let evs = events(&mut m);
    assert!(
        evs.iter()
            .any(|e| matches!(e, CmdEvent::CommandError { handle, .. } if *handle == queued)),
        "{evs:?}"
    );
}

#[test]
fn transport_failures_of_command_and_send_fail_only_that_command() {
    let mut m = opened(config());
    let h = m.run("x", ["y"]).expect("run");
    let _ = next(&mut m);
    m.handle_transport_error("connection reset")
        .expect("command-scoped");
    match events(&mut m).as_slice() {
        [CmdEvent::CommandError { handle, error }] => {
            assert_eq!(*handle, h);
            assert!(matches!(
                error,
                SessionError::Transport {
                    operation: "Command",
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    let h2 = start(&mut m, CmdCommand::new("z").defer_output(), CMD_2);
    m.send(h2, &b"a"[..], false).expect("send");
    m.send(h2, &b"b"[..], true).expect("send");
    let _ = next(&mut m);
    m.handle_transport_error("connection reset")
        .expect("command-scoped");
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError {
            error: SessionError::Transport {
                operation: "Send",
                ..
            },
            ..
        }]
    ));
    assert!(m.is_over(h2));
    assert!(
        m.poll_request().is_none(),
        "the rest of its input is dropped"
    );
    assert_eq!(m.phase(), CmdPhase::Open);
}

#[test]
fn a_create_lost_in_transit_fails_the_shell_and_its_queued_commands() {
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    let h = m.run("x", ["y"]).expect("queued");
    m.open().expect("open");
    let _ = next(&mut m);
    let err = m
        .handle_transport_error("connection refused")
        .expect_err("the shell failed");
    assert!(matches!(
        err,
        SessionError::Transport {
            operation: "Create",
            ..
        }
    ));
    assert_eq!(m.phase(), CmdPhase::Failed);
    assert!(matches!(
        events(&mut m).as_slice(),
        [CmdEvent::CommandError { handle, .. }] if *handle == h
    ));
    assert!(m.poll_request().is_none());
}

#[test]
fn closing_while_the_create_is_in_flight_deletes_the_shell_it_made() {
    let mut m = CmdShell::new(config(), Box::new(SequentialIds::default()));
    m.open().expect("open");
    let req = next(&mut m);
    m.close();
    assert_eq!(m.phase(), CmdPhase::Closing);
    m.handle_response(200, &created(&req, SHELL_ID))
        .expect("create");
    let req = next(&mut m);
    assert_eq!(m.in_flight(), Some(CmdOperation::Delete));
    assert_eq!(decode(&req).header.selector("ShellId"), Some(SHELL_ID));
    m.handle_response(
        200,
        &empty(&req, action::DELETE_RESPONSE, Body::DeleteResponse),
    )
    .expect("delete");
    assert_eq!(m.phase(), CmdPhase::Closed);
}
