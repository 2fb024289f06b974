//! The WinRS `cmd` shell against pypsrp's real recordings of `cmd` sessions.
//!
//! Each recording is re-enacted twice over:
//!
//! * the sans-IO machine ([`rps_session::cmd::CmdShell`]) is driven with the command lines,
//!   stdin and options the recording shows, its requests answered by the semantic
//!   [`Replayer`]; on top of the replayer's checks, every request is compared field by
//!   field with the recorded one (whole header but the MessageID, whole typed body:
//!   `IdleTimeOut`, `Lifetime`, option `MustComply`, stdin bytes and `End`, which the
//!   replayer does not look at), and the stdout/stderr bytes and exit codes the machine
//!   reports must equal what the recorded ReceiveResponses carried;
//! * the async client ([`rps_session::CmdShell`]) runs the same commands over a loopback
//!   HTTP server answering from the replayer.
//!
//! The replayer compares a `cmd` Send's stdin as raw bytes and its `End` mark (not as PSRP
//! fragments), so every exchange of these recordings goes through it; an exchange it could
//! not read would be collected in the replay's gaps, which must stay empty.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rps_replay::Transcript;
use rps_replay::replayer::Replayer;
use rps_replay::server::{Response, Server};
use rps_session::cmd::{CmdCommand, CmdConfig, CmdEvent, CmdHandle, CmdPhase, CmdShell};
use rps_session::http::{Credentials, Endpoint};
use rps_session::machine::{IdSource, SessionError};
use rps_session::{CmdChunk, ConnectOptions};
use rps_wsman::ns::signal;
use rps_wsman::{Body, Envelope, parse_uuid_urn};
use uuid::Uuid;

fn responses_dir() -> PathBuf {
    let dir = std::env::var_os("RPS_PEER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures")
        });
    let dir = dir.join("jborean93__pypsrp/tests/tests_pypsrp/responses");
    assert!(dir.is_dir(), "peer fixtures not found at {}", dir.display());
    dir
}

fn load(name: &str) -> Transcript {
    Transcript::load(&responses_dir().join(name)).expect("load recording")
}

fn request_env(t: &Transcript, i: usize) -> Envelope {
    Envelope::decode(t.exchanges[i].request.body.as_bytes()).expect("recorded request")
}

/// Per recorded CommandId: stdout, stderr and the exit code of its Done state, as the
/// recorded ReceiveResponses carried them.
type Outputs = BTreeMap<String, (Vec<u8>, Vec<u8>, Option<i64>)>;

fn recorded_outputs(t: &Transcript) -> Outputs {
    let mut out = Outputs::new();
    for ex in &t.exchanges {
        let Some(resp) = &ex.response else { continue };
        let Ok(env) = Envelope::decode(resp.body.as_bytes()) else {
            continue;
        };
        let Body::ReceiveResponse(r) = env.body else {
            continue;
        };
        for s in &r.streams {
            let id = s
                .command_id
                .clone()
                .expect("recorded streams name their command");
            let slot = out.entry(id.to_uppercase()).or_default();
            match s.name.as_str() {
                "stdout" => slot.0.extend_from_slice(&s.data),
                "stderr" => slot.1.extend_from_slice(&s.data),
                other => panic!("unexpected stream {other}"),
            }
        }
        if let Some(cs) = r.command_state.filter(|c| c.is_done()) {
            let id = cs
                .command_id
                .expect("state names its command")
                .to_uppercase();
            out.entry(id).or_default().2 = cs.exit_code;
        }
    }
    out
}

/// The machine's configuration for a recording: its `To`, session id and locale, and
/// pypsrp's habit of a ctrl_c Signal to every finished command.
fn config_for(t: &Transcript) -> CmdConfig {
    let first = request_env(t, 0);
    let mut c = CmdConfig::new(first.header.to.clone().expect("recorded To"));
    c.session_id = first.header.session_id.as_deref().and_then(parse_uuid_urn);
    c.release_signal = Some(signal::CTRL_C.to_owned());
    c
}

/// Our request means exactly the recorded one: the whole typed body, and every header
/// field but the MessageID (with `whole_header` false, also but `To` and the SessionId,
/// for a client pointed at a loopback server).
fn same_request(t: &Transcript, at: usize, live: &[u8], whole_header: bool) -> Result<(), String> {
    let rec = request_env(t, at);
    let ours = Envelope::decode(live).map_err(|e| format!("exchange #{at}: {e}"))?;
    let mut rh = rec.header.clone();
    let mut oh = ours.header.clone();
    for h in [&mut rh, &mut oh] {
        h.message_id = None;
        if !whole_header {
            h.to = None;
            h.session_id = None;
        }
    }
    if oh != rh {
        return Err(format!("exchange #{at}: header {oh:?} != recorded {rh:?}"));
    }
    if ours.body != rec.body {
        return Err(format!(
            "exchange #{at}: body {:?} != recorded {:?}",
            ours.body, rec.body
        ));
    }
    Ok(())
}

/// The machine against one recording.
struct Replay {
    t: Transcript,
    /// Where the current replayer starts in `t`.
    base: usize,
    r: Replayer,
    /// The replayer's complaints about exchanges checked here instead.
    gaps: Vec<(usize, String)>,
    /// Every event, in order, with the number of the shell it came from.
    events: Vec<(u128, CmdEvent)>,
    /// Errors `handle_response` returned, with the exchange.
    errors: Vec<(usize, SessionError)>,
    /// Shells opened so far (each gets its own MessageIDs).
    shells: u128,
    /// Compare `To` and the SessionId too.
    whole_header: bool,
}

/// MessageIDs `base + 1`, `base + 2`, ...
struct Ids(u128);

impl IdSource for Ids {
    fn next_id(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}

impl Replay {
    fn new(name: &str) -> Self {
        let t = load(name);
        let r = Replayer::new(t.clone());
        Replay {
            t,
            base: 0,
            r,
            gaps: Vec::new(),
            events: Vec::new(),
            errors: Vec::new(),
            shells: 0,
            whole_header: true,
        }
    }

    fn position(&self) -> usize {
        self.base + self.r.position()
    }

    /// Restarts the replayer at exchange `at`.
    fn restart_at(&mut self, at: usize) {
        let mut rest = self.t.clone();
        rest.exchanges.drain(..at);
        self.base = at;
        self.r = Replayer::new(rest);
    }

    /// Answers one request: through the replayer, or (for a `cmd` Send it cannot read)
    /// from the recording after the field-by-field comparison.
    fn answer(&mut self, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let at = self.position();
        if at >= self.t.exchanges.len() {
            return Err(format!("exchange #{at}: more requests than recorded"));
        }
        same_request(&self.t, at, body, self.whole_header)?;
        match self.r.handle(body) {
            Ok(resp) if resp.drop_connection => Err(format!("exchange #{at}: dropped")),
            Ok(resp) => Ok((resp.status, resp.body)),
            Err(m) if matches!(Envelope::decode(body).map(|e| e.body), Ok(Body::Send(_))) => {
                let text = format!("{}: expected {}", m.field_path, m.expected);
                self.gaps.push((at, text));
                let resp = self.t.exchanges[at]
                    .response
                    .clone()
                    .expect("recorded answer");
                self.restart_at(at + 1);
                Ok((resp.status, resp.body.into_bytes()))
            }
            Err(m) => Err(m.to_string()),
        }
    }

    /// Sends whatever the machine asks for until it waits for the caller.
    fn drive(&mut self, m: &mut CmdShell) {
        while let Some(req) = m.poll_request() {
            let at = self.position();
            let (status, body) = self
                .answer(&req.body)
                .unwrap_or_else(|e| panic!("replay mismatch: {e}"));
            if let Err(e) = m.handle_response(status, &body) {
                self.errors.push((at, e));
            }
            let shell = self.shells;
            self.events
                .extend(std::iter::from_fn(|| m.poll_event()).map(|e| (shell, e)));
        }
    }

    /// The events, without their shell.
    fn events(&self) -> impl Iterator<Item = &CmdEvent> {
        self.events.iter().map(|(_, e)| e)
    }

    /// Opens a machine with `config` and drives it until the shell exists.
    fn open(&mut self, config: CmdConfig) -> CmdShell {
        self.shells += 1;
        let mut m = CmdShell::new(config, Box::new(Ids(self.shells << 64)));
        m.open().expect("open");
        self.drive(&mut m);
        assert_eq!(m.phase(), CmdPhase::Open, "{:?}", self.errors);
        m
    }

    fn close(&mut self, m: &mut CmdShell) {
        m.close();
        self.drive(m);
        assert_eq!(m.phase(), CmdPhase::Closed);
    }

    /// Everything is replayed, without tolerance, and nothing failed.
    fn assert_complete(&self) {
        assert!(
            self.position() == self.t.exchanges.len(),
            "replayed {} of {} exchanges",
            self.position(),
            self.t.exchanges.len()
        );
        assert!(self.r.tolerated().is_empty(), "{:?}", self.r.tolerated());
    }

    /// The outputs the machine reported, by server CommandId.
    fn outputs(&self, ids: &BTreeMap<(u128, CmdHandle), String>) -> Outputs {
        let mut out = Outputs::new();
        for (shell, ev) in &self.events {
            let id = |h: &CmdHandle| ids[&(*shell, *h)].clone();
            match ev {
                CmdEvent::Stdout { handle, data } => {
                    out.entry(id(handle)).or_default().0.extend_from_slice(data)
                }
                CmdEvent::Stderr { handle, data } => {
                    out.entry(id(handle)).or_default().1.extend_from_slice(data)
                }
                CmdEvent::Finished { handle, exit_code } => {
                    out.entry(id(handle)).or_default().2 = *exit_code;
                }
                CmdEvent::Output { stream, .. } => panic!("unexpected stream {stream}"),
                _ => {}
            }
        }
        out
    }

    fn command_ids(&self) -> BTreeMap<(u128, CmdHandle), String> {
        self.events
            .iter()
            .filter_map(|(shell, e)| match e {
                CmdEvent::Started { handle, command_id } => {
                    Some(((*shell, *handle), command_id.to_uppercase()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Runs `commands` one after the other in one shell opened with `config`, each to its
/// end, then closes; checks the whole recording was replayed and the outputs are the
/// recorded ones.
fn replay_commands(
    name: &str,
    config: impl FnOnce(CmdConfig) -> CmdConfig,
    commands: &[CmdCommand],
) -> Replay {
    let mut rp = Replay::new(name);
    let c = config(config_for(&rp.t));
    let mut m = rp.open(c);
    for spec in commands {
        let h = m.run_command(spec.clone()).expect("run");
        rp.drive(&mut m);
        assert!(m.is_over(h), "{name}: {h} still running");
    }
    rp.close(&mut m);
    rp.assert_complete();
    assert!(rp.errors.is_empty(), "{:?}", rp.errors);
    assert_eq!(
        rp.outputs(&rp.command_ids()),
        recorded_outputs(&rp.t),
        "{name}"
    );
    rp
}

#[test]
fn winrs_standard() {
    let rp = replay_commands(
        "test_winrs_standard.yml",
        |c| c,
        &[CmdCommand::new("cmd.exe").args(["/c", "echo", "hi"])],
    );
    let out = rp.outputs(&rp.command_ids());
    let (stdout, stderr, code) = out.values().next().expect("one command");
    assert_eq!(
        (&stdout[..], &stderr[..], *code),
        (&b"hi\r\n"[..], &b""[..], Some(0))
    );
    assert!(rp.gaps.is_empty());
}

#[test]
fn winrs_stderr_rc() {
    let rp = replay_commands(
        "test_winrs_stderr_rc.yml",
        |c| c,
        &[CmdCommand::new("cmd.exe").arg("/c echo out && echo err>&2 && exit 1")],
    );
    let out = rp.outputs(&rp.command_ids());
    let (stdout, stderr, code) = out.values().next().expect("one command");
    assert_eq!(
        (&stdout[..], &stderr[..], *code),
        (&b"out \r\n"[..], &b"err \r\n"[..], Some(1))
    );
}

#[test]
fn winrs_environment() {
    let weird = r#"_-(){}[]<>*+-/\?"!@#$^&|;:i,.`~0"#;
    let rp = replay_commands(
        "test_winrs_environment.yml",
        |c| c.env("env1", "var1").env("1234", "5678").env(weird, weird),
        &[CmdCommand::new("cmd.exe").args(["/c", "set"])],
    );
    let out = rp.outputs(&rp.command_ids());
    let stdout = String::from_utf8_lossy(&out.values().next().expect("one command").0).into_owned();
    assert!(stdout.lines().any(|l| l == "env1=var1"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == format!("{weird}={weird}")),
        "{stdout}"
    );
}

#[test]
fn winrs_extra_opts() {
    replay_commands(
        "test_winrs_extra_opts.yml",
        |mut c| {
            c.idle_timeout_secs = Some(60);
            c.lifetime_secs = Some(60);
            c.name = Some("shell 1".to_owned());
            c.working_directory = Some(r"C:\Windows".to_owned());
            c
        },
        &[CmdCommand::new("powershell.exe").arg("(pwd).Path")],
    );
}

#[test]
fn winrs_noprofile() {
    let rp = replay_commands(
        "test_winrs_noprofile.yml",
        |mut c| {
            c.no_profile = true;
            c
        },
        &[CmdCommand::new("cmd.exe").args(["/c", "set"])],
    );
    let out = rp.outputs(&rp.command_ids());
    let stdout = String::from_utf8_lossy(&out.values().next().expect("one command").0).into_owned();
    assert!(
        stdout.lines().any(|l| l == r"USERPROFILE=C:\Users\Default"),
        "{stdout}"
    );
}

#[test]
fn winrs_operation_timeout() {
    let rp = replay_commands(
        "test_winrs_operation_timeout.yml",
        |mut c| {
            c.operation_timeout_secs = 10;
            c
        },
        &[CmdCommand::new("powershell.exe")
            .arg("Write-Host hi; Start-Sleep 30; Write-Host hi again")],
    );
    // Two w:TimedOut faults in the middle, each answered by receiving again.
    let receives = (0..rp.t.exchanges.len())
        .filter(|i| matches!(request_env(&rp.t, *i).body, Body::Receive(_)))
        .count();
    assert_eq!(receives, 4);
    let out = rp.outputs(&rp.command_ids());
    assert_eq!(
        out.values().next().expect("one command").0,
        b"hi\nhi again\n"
    );
}

#[test]
fn client_execute_cmd_environment() {
    replay_commands(
        "test_client_execute_cmd_environment.yml",
        |c| {
            c.env("string", "string value")
                .env("int", "1234")
                .env("bool", "True")
                .env("double_quote", "double \" quote")
                .env("single_quote", "single ' quote")
                .env("hyphen - var", "abc @ 123")
        },
        &[CmdCommand::new("set")],
    );
}

#[test]
fn client_execute_cmd_two_shells_in_a_row() {
    let mut rp = Replay::new("test_client_execute_cmd.yml");
    for command in ["dir", "echo abc"] {
        let mut m = rp.open(config_for(&rp.t));
        let h = m.run_command(CmdCommand::new(command)).expect("run");
        rp.drive(&mut m);
        assert!(m.is_over(h));
        rp.close(&mut m);
    }
    rp.assert_complete();
    assert!(rp.errors.is_empty(), "{:?}", rp.errors);
    let ours = rp.outputs(&rp.command_ids());
    assert_eq!(ours, recorded_outputs(&rp.t));
    let abc = ours
        .get("A1A268F5-D543-4F22-BBCE-62E71E764CF1")
        .expect("second command");
    assert_eq!(abc, &(b"abc\r\n".to_vec(), Vec::new(), Some(0)));
}

#[test]
fn winrs_send_stdin_in_two_chunks() {
    let mut rp = Replay::new("test_winrs_send.yml");
    let mut m = rp.open(config_for(&rp.t));
    let h = m
        .run_command(CmdCommand::new("powershell.exe").arg("-"))
        .expect("run");
    m.send(h, &b"Write-Host \"output 1\";"[..], false)
        .expect("send");
    m.send(h, &b"Write-Host \"output 2\";"[..], true)
        .expect("send");
    rp.drive(&mut m);
    assert!(m.is_over(h));
    rp.close(&mut m);
    rp.assert_complete();
    assert!(rp.errors.is_empty(), "{:?}", rp.errors);
    // Both Sends matched field by field (data and End), and the replayer read them too.
    assert!(rp.gaps.is_empty(), "{:?}", rp.gaps);
    let sent: Vec<bool> = rp
        .events()
        .filter_map(|e| match e {
            CmdEvent::InputSent { end, .. } => Some(*end),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [false, true]);
    let out = rp.outputs(&rp.command_ids());
    assert_eq!(out, recorded_outputs(&rp.t));
    assert_eq!(
        out.values().next().expect("one command").0,
        b"output 1\noutput 2\n"
    );
}

#[test]
fn winrs_no_cmd_shell_command_fault_is_typed_and_the_shell_goes_on() {
    let mut rp = Replay::new("test_winrs_no_cmd_shell.yml");
    let mut m = rp.open(config_for(&rp.t));
    let args = ["Write-Host", "hi"];
    let bad = m
        .run_command(
            CmdCommand::new("powershell.exe")
                .args(args)
                .skip_cmd_shell(true),
        )
        .expect("run");
    rp.drive(&mut m);
    let good = m
        .run_command(
            CmdCommand::new(r"C:\Windows\system32\WindowsPowerShell\v1.0\powershell.exe")
                .args(args)
                .skip_cmd_shell(true),
        )
        .expect("run");
    rp.drive(&mut m);
    rp.close(&mut m);
    rp.assert_complete();
    assert!(rp.errors.is_empty(), "{:?}", rp.errors);
    let error = rp
        .events()
        .find_map(|e| match e {
            CmdEvent::CommandError { handle, error } if *handle == bad => Some(error),
            _ => None,
        })
        .expect("the first command failed");
    let SessionError::Fault { operation, fault } = error else {
        panic!("{error:?}")
    };
    assert_eq!(*operation, "Command");
    assert!(fault.is_receiver());
    assert!(fault.has_subcode(rps_wsman::ns::WSMAN, "InternalError"));
    assert_eq!(fault.wsman_code(), Some(2_147_942_402));
    assert_eq!(
        fault.message().map(str::trim),
        Some("The system cannot find the file specified.")
    );
    let provider = fault
        .wsman_fault
        .as_ref()
        .and_then(|w| w.provider_fault.as_ref())
        .expect("provider fault");
    assert_eq!(provider.provider.as_deref(), Some("Shell cmd plugin"));
    assert!(!error.is_shell_gone());
    let ids = rp.command_ids();
    assert!(!ids.contains_key(&(1, bad)));
    assert_eq!(
        rp.outputs(&ids)[&ids[&(1, good)]],
        (b"hi\n".to_vec(), Vec::new(), Some(0))
    );
}

#[test]
fn winrs_bad_cmd_id_is_a_typed_command_error() {
    let mut rp = Replay::new("test_winrs_bad_cmd_id.yml");
    let mut c = config_for(&rp.t);
    // pypsrp signals this command itself, below.
    c.release_signal = None;
    let mut m = rp.open(c);
    let real = m
        .run_command(
            CmdCommand::new("cmd.exe")
                .args(["/c", "echo", "hi"])
                .defer_output(),
        )
        .expect("run");
    rp.drive(&mut m);
    let bogus = m
        .attach("87E77BEB-6761-4C48-9D70-A00266B8459A")
        .expect("attach");
    rp.drive(&mut m);
    m.signal(real, signal::CTRL_C).expect("signal");
    rp.drive(&mut m);
    rp.close(&mut m);
    rp.assert_complete();
    assert!(rp.errors.is_empty(), "{:?}", rp.errors);
    let mut errors = rp.events().filter_map(|e| match e {
        CmdEvent::CommandError { handle, error } => Some((*handle, error)),
        _ => None,
    });
    let (h, error) = errors.next().expect("one command error");
    assert!(errors.next().is_none());
    assert_eq!(h, bogus);
    assert!(error.is_command_gone(), "{error}");
    assert_eq!(error.operation(), Some("Receive"));
    let SessionError::Fault { fault, .. } = error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.wsman_code(), Some(2_150_858_843));
    assert!(fault.is_sender() && fault.is_invalid_selectors());
    assert_eq!(
        fault.message().map(str::trim),
        Some(
            "The Windows Remote Shell received a request to perform an operation on a command \
             identifier that does not exist. Either the command has completed execution or the \
             client specified an invalid command identifier."
        )
    );
    assert!(rp.events().any(
        |e| matches!(e, CmdEvent::Signalled { handle, code } if *handle == real && code == signal::CTRL_C)
    ));
}

#[test]
fn winrs_open_already_opened_is_a_typed_state_error() {
    let mut rp = Replay::new("test_winrs_open_already_opened.yml");
    let mut m = rp.open(config_for(&rp.t));
    let err = m.open().expect_err("already open");
    assert!(
        matches!(
            err,
            SessionError::State {
                action: "open the shell",
                state: "open"
            }
        ),
        "{err}"
    );
    assert!(m.poll_request().is_none(), "a second open sends nothing");
    rp.close(&mut m);
    rp.assert_complete();
}

#[test]
fn winrs_fail_poll_process_fault_is_typed_and_the_shell_is_deleted() {
    // pypsrp polled a process it never started: a Receive without CommandId, which this
    // machine never sends (its Receives always name a command). The replayer says so; the
    // recorded fault is then given to our Receive of a command taken up by id.
    let mut rp = Replay::new("test_winrs_fail_poll_process.yml");
    let mut m = rp.open(config_for(&rp.t));
    let h = m
        .attach("644983A8-4292-4922-97E9-D569C2170784")
        .expect("attach");
    let req = m.poll_request().expect("a Receive");
    let mismatch = rp.r.handle(&req.body).expect_err("no CommandId recorded");
    assert_eq!(mismatch.exchange, 1);
    assert_eq!(mismatch.field_path, "Receive.DesiredStream@CommandId");
    assert_eq!(mismatch.expected, "(absent)");
    let recorded = rp.t.exchanges[1].response.clone().expect("recorded fault");
    m.handle_response(recorded.status, recorded.body.as_bytes())
        .expect("a command's fault is its event");
    rp.events
        .extend(std::iter::from_fn(|| m.poll_event()).map(|e| (1, e)));
    rp.restart_at(2);
    rp.close(&mut m);
    rp.assert_complete();
    let error = rp
        .events()
        .find_map(|e| match e {
            CmdEvent::CommandError { handle, error } if *handle == h => Some(error),
            _ => None,
        })
        .expect("the Receive failed");
    let SessionError::Fault { operation, fault } = error else {
        panic!("{error:?}")
    };
    assert_eq!(*operation, "Receive");
    assert!(fault.has_subcode(rps_wsman::ns::WSMAN, "InvalidParameter"));
    assert_eq!(fault.wsman_code(), Some(87));
    assert_eq!(
        fault.message().map(str::trim),
        Some("The parameter is incorrect.")
    );
    assert!(!error.is_shell_gone());
}

// --- The async client over a loopback server answering from the replayer. ---

struct Loopback {
    server: Server,
    replay: Arc<Mutex<Replay>>,
    mismatches: Arc<Mutex<Vec<String>>>,
    t: Transcript,
}

async fn loopback(name: &str) -> Loopback {
    let mut replay = Replay::new(name);
    replay.whole_header = false;
    let t = replay.t.clone();
    let replay = Arc::new(Mutex::new(replay));
    let mismatches: Arc<Mutex<Vec<String>>> = Arc::default();
    let (r, mm) = (replay.clone(), mismatches.clone());
    let server = Server::bind("127.0.0.1:0", move |req| {
        let answer = r.lock().expect("replay").answer(&req.body);
        let mm = mm.clone();
        async move {
            match answer {
                Ok((status, body)) => Response::new(status)
                    .with_body(body)
                    .with_header("Content-Type", "application/soap+xml;charset=UTF-8"),
                Err(m) => {
                    mm.lock().expect("mismatches").push(m.clone());
                    Response::text(400, m)
                }
            }
        }
    })
    .await
    .expect("bind");
    Loopback {
        server,
        replay,
        mismatches,
        t,
    }
}

impl Loopback {
    fn options(&self) -> ConnectOptions {
        let endpoint = Endpoint {
            url: format!("{}/wsman", self.server.url()).parse().expect("url"),
            configuration: String::new(),
            allow_redirection: false,
        };
        let mut o = ConnectOptions::new(endpoint, Some(Credentials::basic("vagrant", "vagrant")));
        o.allow_insecure_http = true;
        o.session_id = Some(Uuid::new_v4());
        o
    }

    fn config(&self, options: &ConnectOptions) -> CmdConfig {
        let mut c = CmdConfig::from_options(options);
        c.release_signal = Some(signal::CTRL_C.to_owned());
        c.operation_timeout_secs = request_env(&self.t, 0)
            .header
            .operation_timeout_secs()
            .map_or(20, |s| s as u64);
        c
    }

    fn position(&self) -> usize {
        self.replay.lock().expect("replay").position()
    }

    /// Everything was replayed without a mismatch or tolerance; returns the exchanges the
    /// replayer could not read.
    async fn finish(self) -> Vec<(usize, String)> {
        let mismatches = self.mismatches.lock().expect("mismatches").clone();
        assert!(mismatches.is_empty(), "{mismatches:?}");
        let gaps = {
            let r = self.replay.lock().expect("replay");
            r.assert_complete();
            r.gaps.clone()
        };
        self.server.shutdown().await;
        gaps
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_standard_and_stderr_rc() {
    for (name, command, args, expected) in [
        (
            "test_winrs_standard.yml",
            "cmd.exe",
            vec!["/c", "echo", "hi"],
            (b"hi\r\n".to_vec(), Vec::new(), Some(0)),
        ),
        (
            "test_winrs_stderr_rc.yml",
            "cmd.exe",
            vec!["/c echo out && echo err>&2 && exit 1"],
            (b"out \r\n".to_vec(), b"err \r\n".to_vec(), Some(1)),
        ),
    ] {
        let lb = loopback(name).await;
        let options = lb.options();
        let config = lb.config(&options);
        let shell = rps_session::CmdShell::open(options, config)
            .await
            .expect("open");
        assert!(!shell.shell_id().is_empty());
        let out = shell
            .run(command, args)
            .await
            .expect("run")
            .collect()
            .await
            .expect("collect");
        assert_eq!((out.stdout, out.stderr, out.exit_code), expected, "{name}");
        shell.close().await.expect("close");
        assert!(lb.finish().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_streams_chunks_across_timed_out_receives() {
    let lb = loopback("test_winrs_operation_timeout.yml").await;
    let options = lb.options();
    let mut config = lb.config(&options);
    assert_eq!(config.operation_timeout_secs, 10);
    // Output is paused as soon as one byte waits unread.
    config.max_buffered_output = 1;
    let shell = rps_session::CmdShell::open(options, config)
        .await
        .expect("open");
    let mut p = shell
        .run(
            "powershell.exe",
            ["Write-Host hi; Start-Sleep 30; Write-Host hi again"],
        )
        .await
        .expect("run");
    assert_eq!(p.command_id(), "D644AE56-61E5-4C1A-A135-E599B76B3035");
    let mut chunks = vec![p.next_chunk().await.expect("a chunk").expect("chunk")];
    // "hi" taken, "\n" still unread: no Receive goes out.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(lb.position(), 3);
    while let Some(chunk) = p.next_chunk().await {
        chunks.push(chunk.expect("chunk"));
    }
    assert_eq!(
        chunks,
        [
            CmdChunk::Stdout(bytes::Bytes::from_static(b"hi")),
            CmdChunk::Stdout(bytes::Bytes::from_static(b"\n")),
            CmdChunk::Stdout(bytes::Bytes::from_static(b"hi")),
            CmdChunk::Stdout(bytes::Bytes::from_static(b" again\n")),
        ]
    );
    assert_eq!(p.exit_code(), Some(Some(0)));
    drop(p);
    shell.close().await.expect("close");
    assert!(lb.finish().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_command_fault_is_the_run_error() {
    let lb = loopback("test_winrs_no_cmd_shell.yml").await;
    let options = lb.options();
    let config = lb.config(&options);
    let shell = rps_session::CmdShell::open(options, config)
        .await
        .expect("open");
    let args = ["Write-Host", "hi"];
    let err = shell
        .run_command(
            CmdCommand::new("powershell.exe")
                .args(args)
                .skip_cmd_shell(true)
                .defer_output(),
        )
        .await
        .expect_err("the file is not found");
    assert_eq!(err.operation(), Some("Command"));
    assert!(
        err.to_string()
            .contains("The system cannot find the file specified"),
        "{err}"
    );
    let out = shell
        .run_command(
            CmdCommand::new(r"C:\Windows\system32\WindowsPowerShell\v1.0\powershell.exe")
                .args(args)
                .skip_cmd_shell(true)
                .defer_output(),
        )
        .await
        .expect("run")
        .collect()
        .await
        .expect("collect");
    assert_eq!(out.stdout, b"hi\n");
    shell.close().await.expect("close");
    assert!(lb.finish().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_two_shells_and_delete_on_drop() {
    let lb = loopback("test_client_execute_cmd.yml").await;
    let options = lb.options();
    let session_id = options.session_id;
    let mut outputs = Vec::new();
    for (i, command) in ["dir", "echo abc"].into_iter().enumerate() {
        let mut options = lb.options();
        options.session_id = session_id;
        let config = lb.config(&options);
        let shell = rps_session::CmdShell::open(options, config)
            .await
            .expect("open");
        let out = shell
            .run(command, Vec::<String>::new())
            .await
            .expect("run")
            .collect()
            .await
            .expect("collect");
        outputs.push(out);
        if i == 0 {
            shell.close().await.expect("close");
        } else {
            // Dropped: the driver deletes the shell on its own.
            drop(shell);
        }
    }
    assert_eq!(outputs[1].stdout, b"abc\r\n");
    assert!(
        String::from_utf8_lossy(&outputs[0].stdout).contains("Directory of C:\\Users\\vagrant")
    );
    for _ in 0..200 {
        if lb.position() == lb.t.exchanges.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(lb.finish().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_stdin_goes_before_the_output_is_read() {
    let lb = loopback("test_winrs_send.yml").await;
    let options = lb.options();
    let config = lb.config(&options);
    let shell = rps_session::CmdShell::open(options, config)
        .await
        .expect("open");
    let p = shell.run("powershell.exe", ["-"]).await.expect("run");
    p.stdin(&b"Write-Host \"output 1\";"[..], false)
        .await
        .expect("stdin");
    p.stdin(&b"Write-Host \"output 2\";"[..], true)
        .await
        .expect("stdin");
    let err = p.stdin(&b"more"[..], false).await.expect_err("input ended");
    assert!(err.to_string().contains("input ended"), "{err}");
    let out = p.collect().await.expect("collect");
    assert_eq!(out.stdout, b"output 1\noutput 2\n");
    assert_eq!(out.exit_code, Some(0));
    shell.close().await.expect("close");
    assert_eq!(lb.finish().await, Vec::<(usize, String)>::new());
}
