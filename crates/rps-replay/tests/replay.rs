//! The replayer and the re-enactment against every PSRP recording of pypsrp: the sans-IO
//! session machine must issue requests that mean what the recorded ones did and reach the
//! recorded outputs and states; an altered recording must be caught; the async client must
//! pass the simple recordings over a loopback HTTP server.

use std::path::PathBuf;

use base64::Engine as _;
use rps_replay::Transcript;
use rps_replay::reenact::{
    ReenactError, Scenario, check_in_memory, check_over_loopback, check_scenario_in_memory,
    render_outputs,
};
use rps_replay::replayer::{GuidOrder, Replayer, ToleranceKind};
use rps_wsman::{Body, Envelope};

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

/// Recordings that are not PowerShell sessions, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    (
        "test_client_copy_expand_vars.yml",
        "also opens WinRS cmd shells",
    ),
    ("test_client_copy_file.yml", "also opens WinRS cmd shells"),
    (
        "test_client_copy_file_empty.yml",
        "also opens WinRS cmd shells",
    ),
    (
        "test_client_copy_file_warning.yml",
        "also opens WinRS cmd shells",
    ),
    (
        "test_client_execute_cmd.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_client_execute_cmd_environment.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_bad_cmd_id.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_environment.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_extra_opts.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_fail_poll_process.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_no_cmd_shell.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_noprofile.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_open_already_opened.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_operation_timeout.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_send.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_standard.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_winrs_stderr_rc.yml",
        "WinRS cmd shell (replayed by cmd_replay.rs)",
    ),
    (
        "test_wsman_update_envelope_size_150.yml",
        "WS-Man config Get only",
    ),
    (
        "test_wsman_update_envelope_size_4096.yml",
        "WS-Man config Get only",
    ),
];

fn recordings() -> Vec<(String, PathBuf)> {
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(responses_dir())
        .expect("list recordings")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            (name.starts_with("test_") && name.ends_with(".yml")).then_some((name, p))
        })
        .collect();
    all.sort();
    all
}

#[test]
fn every_psrp_recording_reenacts_in_memory() {
    let mut passed = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in recordings() {
        let t = Transcript::load(&path).expect("load");
        let report = match check_in_memory(&t) {
            Err(ReenactError::NotPowerShell(why)) => {
                let listed = SKIPPED.iter().find(|(n, _)| *n == name);
                assert!(listed.is_some(), "{name} unexpectedly skipped: {why}");
                skipped.push(name);
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(r) => r,
        };
        assert!(
            !SKIPPED.iter().any(|(n, _)| *n == name),
            "{name} is listed as skipped but re-enacts"
        );
        assert!(report.passed(), "{report}");
        assert!(report.unsupported.is_empty(), "{report}");
        assert!(report.outputs_equal() && report.states_equal(), "{report}");
        passed.push(name);
    }
    assert_eq!(skipped.len(), SKIPPED.len(), "skipped: {skipped:?}");
    assert_eq!(passed.len(), 34, "passed: {passed:?}");
}

#[test]
fn outputs_records_and_states_are_compared() {
    let report = check_in_memory(&load("test_psrp_merge_commands.yml")).expect("reenact");
    assert!(report.passed(), "{report}");
    assert_eq!(report.pipelines.len(), 1);
    assert_eq!(report.pipelines[0].expected_output, 7);
    assert_eq!(report.pipelines[0].output, 7);
    assert_eq!(
        report.pipelines[0].state,
        Some(rps_psrp::messages::PsInvocationState::Completed)
    );
    assert_eq!(
        report.pool_states,
        vec![rps_psrp::messages::RunspacePoolState::Opened]
    );

    let scenario =
        Scenario::from_transcript(&load("test_client_execute_ps.yml")).expect("scenario");
    let text = render_outputs(&scenario);
    assert!(text.contains("Invoke-Expression -Command"), "{text}");
    assert!(text.lines().any(|l| l == "winrm"), "{text}");
    assert!(
        text.contains("# state: Completed, 8 output objects"),
        "{text}"
    );
}

#[test]
fn tolerated_differences_are_reported() {
    // pypsrp invokes the same PowerShell twice under one id; the machine uses a new one.
    let report = check_in_memory(&load("test_psrp_multiple_invocations.yml")).expect("reenact");
    assert!(report.passed(), "{report}");
    assert_eq!(report.pipelines.len(), 2);
    assert!(
        report
            .tolerated
            .iter()
            .any(|t| t.kind == ToleranceKind::ReusedPipelineId && t.exchange == 6),
        "{report}"
    );
    // pypsrp's host response Send carries no CommandId; ours names the pipeline.
    let report =
        check_in_memory(&load("test_psrp_pshost_raw_ui_mocked_methods.yml")).expect("reenact");
    assert!(report.passed(), "{report}");
    assert_eq!(report.tolerated.len(), 1, "{report}");
    assert_eq!(
        report.tolerated[0].kind,
        ToleranceKind::HostResponseCommandId
    );
}

/// Rewrites the CREATE_PIPELINE in the Command of exchange `at`, replacing `from` by `to`
/// inside its CLIXML (a single fragment).
fn alter_command(t: &mut Transcript, at: usize, from: &str, to: &str) {
    let ex = &mut t.exchanges[at];
    let mut env = Envelope::decode(ex.request.body.as_bytes()).expect("recorded Command");
    let Body::Command(cmd) = &mut env.body else {
        panic!("exchange {at} is not a Command")
    };
    let payload = cmd.psrp_payload().expect("payload");
    let blob = String::from_utf8_lossy(&payload[21..]).into_owned();
    assert!(
        blob.contains(from),
        "{from} not in the recorded CREATE_PIPELINE"
    );
    // The 40-byte message header is binary: replace in the bytes, not the lossy text.
    let data = &payload[21..];
    let pos = data
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("position");
    let mut new_blob = data[..pos].to_vec();
    new_blob.extend_from_slice(to.as_bytes());
    new_blob.extend_from_slice(&data[pos + from.len()..]);
    let mut frag = payload[..17].to_vec();
    frag.extend_from_slice(&u32::try_from(new_blob.len()).expect("len").to_be_bytes());
    frag.extend_from_slice(&new_blob);
    cmd.arguments = vec![base64::engine::general_purpose::STANDARD.encode(&frag)];
    ex.request.body = env.encode();
}

#[test]
fn altered_parameter_is_a_mismatch_naming_the_field() {
    let original = load("test_client_execute_ps.yml");
    let mut altered = original.clone();
    alter_command(
        &mut altered,
        3,
        "Get-Service -Name winrm",
        "Get-Service -Name WinRM",
    );
    // The whole check: the client does what the original recorded.
    let scenario = Scenario::from_transcript(&original).expect("scenario");
    let report = check_scenario_in_memory(&scenario, &altered);
    assert!(!report.passed());
    assert_eq!(report.matched, 3);
    assert_eq!(report.mismatches.len(), 1);
    let m = &report.mismatches[0];
    assert_eq!(m.exchange, 3);
    assert_eq!(
        m.field_path,
        "Command.psrp[0](CREATE_PIPELINE).PowerShell.Cmds[0].Args[0].V"
    );
    assert!(m.expected.contains("Get-Service -Name WinRM"), "{m}");
    assert!(m.found.contains("Get-Service -Name winrm"), "{m}");
    assert!(
        m.to_string()
            .starts_with("exchange #3: Command.psrp[0](CREATE_PIPELINE).PowerShell"),
        "{m}"
    );
}

#[test]
fn recorded_client_requests_replay_and_ids_are_checked() {
    // A recording in .NET GUID order: its own requests match, every id mapped to itself.
    let t = load("test_psrp_multiple_invocations.yml");
    let mut replayer = Replayer::new(t.clone());
    assert_eq!(replayer.guid_order(), GuidOrder::DotNet);
    for ex in &t.exchanges {
        let resp = replayer
            .handle(ex.request.body.as_bytes())
            .expect("identity");
        assert_eq!(resp.status, 200);
    }
    assert!(replayer.is_finished());
    assert_eq!(replayer.matched(), t.exchanges.len());
    let m = replayer
        .handle(t.exchanges[0].request.body.as_bytes())
        .expect_err("past the end");
    assert_eq!(m.field_path, "exchange");
    assert_eq!(m.expected, "end of transcript");

    // Old pypsrp wrote RPIDs in RFC 4122 order: a live client doing so is caught.
    let t = load("test_psrp_open_runspace.yml");
    let mut replayer = Replayer::new(t.clone());
    assert_eq!(replayer.guid_order(), GuidOrder::Rfc4122);
    let m = replayer
        .handle(t.exchanges[0].request.body.as_bytes())
        .expect_err("RFC 4122 RPID");
    assert_eq!(m.field_path, "Create.psrp[0](SESSION_CAPABILITY).RPID");
}

#[test]
fn recorded_statuses_and_connection_errors_are_replayed() {
    for name in [
        "test_psrp_is_alive_other_wsman_error.yml",
        "test_psrp_is_alive_http_error.yml",
    ] {
        let t = load(name);
        let mut replayer = Replayer::new(t.clone());
        for (i, ex) in t.exchanges.iter().enumerate() {
            let resp = replayer
                .handle(ex.request.body.as_bytes())
                .expect("same request");
            match (&ex.response, &ex.transport) {
                (_, Some(rps_replay::transcript::TransportEvent::ConnectionError)) | (None, _) => {
                    assert!(resp.drop_connection, "{name} #{i}")
                }
                (Some(r), _) => {
                    assert!(!resp.drop_connection, "{name} #{i}");
                    assert_eq!(resp.status, r.status, "{name} #{i}");
                }
            }
        }
    }
    let t = load("test_psrp_is_alive_other_wsman_error.yml");
    assert!(
        t.exchanges
            .iter()
            .any(|e| e.response.as_ref().is_some_and(|r| r.status == 500))
    );
    let t = load("test_psrp_is_alive_http_error.yml");
    assert!(t.exchanges.iter().any(|e| e.response.is_none()
        || matches!(
            e.transport,
            Some(rps_replay::transcript::TransportEvent::ConnectionError)
        )));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn check_loopback(name: &str) -> rps_replay::reenact::Report {
    runtime()
        .block_on(check_over_loopback(&load(name)))
        .expect("reenact")
}

#[test]
fn loopback_simple_recordings_pass() {
    for (name, outputs) in [
        ("test_psrp_open_runspace.yml", vec![]),
        ("test_client_execute_ps.yml", vec![8]),
        ("test_psrp_multiple_invocations.yml", vec![1, 1]),
    ] {
        let report = check_loopback(name);
        assert!(report.passed(), "{report}");
        assert!(report.outputs_equal() && report.states_equal(), "{report}");
        let got: Vec<usize> = report.pipelines.iter().map(|p| p.output).collect();
        assert_eq!(got, outputs, "{report}");
    }
}

#[test]
fn loopback_every_reenactable_recording_passes() {
    let rt = runtime();
    let mut passed = 0;
    for (name, path) in recordings() {
        if SKIPPED.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let t = Transcript::load(&path).expect("load");
        let report = rt.block_on(check_over_loopback(&t)).expect("reenact");
        assert!(report.passed(), "{report}");
        // The async client always terminates finished commands; recordings without those
        // Signals answer them with synthesized SignalResponses.
        let synthesized = report
            .tolerated
            .iter()
            .filter(|t| t.kind == ToleranceKind::SynthesizedSignalResponse)
            .count();
        let recorded_signals = t
            .exchanges
            .iter()
            .filter(|e| e.request.body.contains("/Signal</"))
            .count();
        assert_eq!(
            synthesized + recorded_signals,
            report.pipelines.len(),
            "{report}"
        );
        passed += 1;
    }
    assert_eq!(passed, 34);
}

#[test]
fn value_comparison_is_semantic_not_bytewise() {
    use rps_psrp::clixml::from_slice;
    use rps_replay::replayer::diff_values;
    let parse = |s: &str| from_slice(s.as_bytes()).expect("clixml");
    let apartment = |ty: &str, text: &str, n: i32| {
        parse(&format!(
            "<Obj RefId=\"0\"><TN RefId=\"0\"><T>{ty}</T><T>System.Enum</T><T>System.ValueType</T>\
             <T>System.Object</T></TN><ToString>{text}</ToString><I32>{n}</I32></Obj>"
        ))
    };
    // Enums: the value counts, not the type name or ToString.
    let pypsrp = apartment(
        "System.Management.Automation.Runspaces.ApartmentState",
        "UNKNOWN",
        2,
    );
    let ours = apartment("System.Threading.ApartmentState", "Unknown", 2);
    assert_eq!(diff_values(&pypsrp, &ours), None);
    let other = apartment("System.Threading.ApartmentState", "MTA", 1);
    assert_eq!(
        diff_values(&pypsrp, &other),
        Some((".<value>".to_owned(), "2".to_owned(), "1".to_owned()))
    );
    // Property order, reference ids and a missing-vs-Nil property don't matter.
    let a = parse(r#"<Obj RefId="0"><MS><S N="a">x</S><S N="b">y</S><Nil N="c"/></MS></Obj>"#);
    let b = parse(r#"<Obj RefId="7"><MS><S N="b">y</S><S N="a">x</S></MS></Obj>"#);
    assert_eq!(diff_values(&a, &b), None);
    // A changed property is named.
    let c = parse(r#"<Obj RefId="0"><MS><S N="a">x</S><S N="b">z</S></MS></Obj>"#);
    let (path, expected, found) = diff_values(&a, &c).expect("differs");
    assert_eq!(path, ".b");
    assert!(expected.contains('y') && found.contains('z'));
    // Assembly versions inside generic type names don't matter; the type itself does.
    let list = |v: &str, item: &str| {
        parse(&format!(
            "<Obj RefId=\"0\"><TN RefId=\"0\"><T>System.Collections.Generic.List`1[[System.Management.\
             Automation.PSObject, System.Management.Automation, Version={v}, Culture=neutral, \
             PublicKeyToken=31bf3856ad364e35]]</T><T>System.Object</T></TN><LST><S>{item}</S></LST></Obj>"
        ))
    };
    assert_eq!(
        diff_values(&list("1.0.0.0", "a"), &list("3.0.0.0", "a")),
        None
    );
    let (path, _, _) = diff_values(&list("1.0.0.0", "a"), &list("3.0.0.0", "b")).expect("item");
    assert_eq!(path, "[0]");
}

/// A WinRS cmd shell's stdin is compared as raw bytes with its End mark: the recorded
/// requests replay, and the same request with other bytes or another End is a mismatch
/// naming the stream.
#[test]
fn cmd_stdin_is_compared_raw() {
    let t = load("test_winrs_send.yml");
    let send_at = t
        .exchanges
        .iter()
        .position(|e| e.request.body.contains("/Send</"))
        .expect("a Send");
    let replay_up_to = |r: &mut Replayer| {
        for e in &t.exchanges[..send_at] {
            r.handle(e.request.body.as_bytes())
                .expect("recorded request");
        }
    };
    let recorded = Envelope::decode(t.exchanges[send_at].request.body.as_bytes()).expect("send");
    let mut r = Replayer::new(t.clone());
    replay_up_to(&mut r);
    r.handle(&recorded.encode().into_bytes())
        .expect("the recorded Send replays");
    for (field, edit) in [
        ("Send.Stream[stdin]", 0usize),
        ("Send.Stream[stdin]@End", 1usize),
    ] {
        let mut env = recorded.clone();
        let Body::Send(send) = &mut env.body else {
            panic!("not a Send")
        };
        if edit == 0 {
            send.streams[0].data = b"Write-Host \"other\";".to_vec();
        } else {
            send.streams[0].end = !send.streams[0].end;
        }
        let mut r = Replayer::new(t.clone());
        replay_up_to(&mut r);
        let m = r
            .handle(&env.encode().into_bytes())
            .expect_err("altered stdin is a mismatch");
        assert_eq!(m.field_path, field, "{m}");
        assert_eq!(m.exchange, send_at, "{m}");
    }
}
