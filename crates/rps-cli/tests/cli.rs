//! The `rps` binary end to end: against the fake Exchange Online endpoint (started in this
//! process, on loopback), and on bad input (flags, cmdlet lines, token files, hosts).

use std::path::PathBuf;
use std::process::{Command, Output};

use rps_replay::fake::{FakeExchange, TokenSpec};

fn rps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rps"))
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run rps")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fake endpoint on a runtime of its own, alive as long as the returned guard.
struct Fake {
    fake: FakeExchange,
    _rt: tokio::runtime::Runtime,
}

fn fake(mailboxes: usize) -> Fake {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(
            FakeExchange::builder()
                .mailboxes(mailboxes)
                .bind("127.0.0.1:0")
                .start(),
        )
        .expect("fake starts");
    Fake { fake, _rt: rt }
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rps-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

fn base_url(f: &Fake) -> String {
    let u: url::Url = f.fake.url().parse().expect("url");
    format!(
        "{}://{}",
        u.scheme(),
        u.host_str()
            .zip(u.port())
            .map(|(h, p)| format!("{h}:{p}"))
            .expect("host")
    )
}

#[test]
fn demo_runs_the_exchange_online_flow() {
    let o = rps(&["demo", "--mailboxes", "7"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("redirected"), "{err}");
    assert!(err.contains("MS-WSMAN"), "{err}");
    assert!(err.contains("couldn't be found"), "{err}");
    assert!(err.contains("FullyQualifiedErrorId"), "{err}");
    // A table header, a rule and five mailboxes.
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2 + 5, "{out}");
    assert!(lines[0].starts_with("Name"), "{out}");
}

#[test]
fn exo_against_the_fake_streams_jsonl() {
    let f = fake(20);
    let token = f.fake.mint_token(&TokenSpec::app_only());
    let tok = temp_file("token-ok", &token);
    let o = rps(&[
        "exo",
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        &base_url(&f),
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "-o",
        "jsonl",
        "--",
        "Get-Mailbox",
        "-ResultSize",
        "3",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows.iter().all(|r| r.get("PrimarySmtpAddress").is_some()),
        "{out}"
    );
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "token leaked"
    );
    assert_eq!(f.fake.open_shells(), 0, "the shell was deleted");
}

#[test]
fn error_records_exit_1_and_go_to_stderr() {
    let f = fake(3);
    let tok = temp_file("token-err", &f.fake.mint_token(&TokenSpec::app_only()));
    let o = rps(&[
        "exo",
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        &base_url(&f),
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "--",
        "Get-Mailbox -Identity nosuch",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("ManagementObjectNotFoundException"), "{err}");
}

#[test]
fn expired_token_is_refused_without_leaking_it() {
    let f = fake(3);
    let token = f.fake.mint_token(&TokenSpec::app_only().lifetime(-600));
    let tok = temp_file("token-expired", &token);
    let o = rps(&[
        "exo",
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        &base_url(&f),
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "-vv",
        "--",
        "Get-Mailbox",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    let signature_free = token.rsplit('.').nth(1).expect("claims part");
    assert!(!err.contains(signature_free), "token leaked in:\n{err}");
    // token inspect says why.
    let o = rps(&["token", "inspect", tok.to_str().expect("path")]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("expired"), "{out}");
    assert!(out.contains(f.fake.tenant_id()), "{out}");
}

#[test]
fn token_inspect_reads_a_good_token_from_stdin() {
    use std::io::Write;
    let f = fake(1);
    let token = f.fake.mint_token(&TokenSpec::app_only());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rps"))
        .args(["token", "inspect", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["claims"]["tid"], f.fake.tenant_id());
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    let o = rps(&["exo", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rps(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    // Script-like input is refused before connecting: Exchange runs in NoLanguage mode.
    let tok = temp_file("token-usage", "x.y.z");
    let o = rps(&[
        "exo",
        "--tenant-id",
        "t",
        "--access-token-file",
        tok.to_str().expect("path"),
        "--",
        "Get-Mailbox -Identity $(whoami)",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad cmdlet line"), "{err}");
    // Nothing to run.
    let o = rps(&[
        "exo",
        "--tenant-id",
        "t",
        "--access-token-file",
        tok.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unreadable_token_file_and_unreachable_host() {
    let o = rps(&[
        "exo",
        "--tenant-id",
        "t",
        "--access-token-file",
        "/nonexistent/token",
        "--",
        "Get-Mailbox",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read the access token file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let tok = temp_file("token-unreachable", "a.b.c");
    let o = rps(&[
        "exo",
        "--tenant-id",
        "t",
        "--uri",
        "http://127.0.0.1:1",
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "--",
        "Get-Mailbox",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn plain_http_basic_is_refused_without_opt_in() {
    let f = fake(1);
    let tok = temp_file("token-plain", &f.fake.mint_token(&TokenSpec::app_only()));
    let o = rps(&[
        "exo",
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        &base_url(&f),
        "--access-token-file",
        tok.to_str().expect("path"),
        "--",
        "Get-Mailbox",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("http"), "{err}");
    assert_eq!(f.fake.stats().front_requests, 0, "nothing was sent");
}

#[test]
fn record_writes_a_transcript_without_secrets() {
    let f = fake(4);
    let token = f.fake.mint_token(&TokenSpec::app_only());
    let tok = temp_file("token-record", &token);
    let dir = std::env::temp_dir().join(format!("rps-cli-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = base_url(&f);
    let o = rps(&[
        "record",
        "--out",
        dir.to_str().expect("path"),
        "--",
        "exo",
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        &base,
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "-o",
        "jsonl",
        "--",
        "Get-Mailbox",
        "-ResultSize",
        "2",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("out dir")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let t = std::fs::read_to_string(files[0].path()).expect("transcript");
    assert!(t.contains("rps-transcript/1"));
    assert!(t.contains("ReceiveResponse"));
    assert!(!t.contains(&token), "token in transcript");
    assert!(
        !t.contains(token.split('.').nth(1).expect("claims")),
        "token claims in transcript"
    );
    let loaded = rps_replay::Transcript::load(&files[0].path()).expect("loads");
    // Create (302 followed), Receive..., Command, Receive..., Signal, Delete.
    assert!(loaded.exchanges.len() >= 6, "{}", loaded.exchanges.len());
    for ex in &loaded.exchanges {
        for (k, v) in ex.response.iter().flat_map(|r| r.headers.iter()) {
            if k == "set-cookie" {
                assert!(v.contains("<redacted>"), "{v}");
            }
        }
    }
}

#[test]
fn decode_prints_envelopes_and_psrp_messages() {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/wsman/receive_response.xml");
    let o = rps(&["decode", fixture.to_str().expect("path")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["direction"], "response");
    assert_eq!(lines[0]["streams"].as_array().map(Vec::len), Some(2));
    assert_eq!(lines[1]["message_type"], "PIPELINE_OUTPUT");
    assert_eq!(lines[1]["data"], "winrm");
    assert_eq!(lines[2]["message_type"], "PIPELINE_STATE");
    // Garbage is an error with a message, not a panic.
    let bad = temp_file("bad.xml", "<s:Envelope><oops");
    let o = rps(&["decode", bad.to_str().expect("path")]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("error"), "{out}");
}

fn peer_recording(name: &str) -> PathBuf {
    let dir = std::env::var_os("RPS_PEER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures")
        });
    assert!(dir.is_dir(), "peer fixtures not found at {}", dir.display());
    dir.join("jborean93__pypsrp/tests/tests_pypsrp/responses")
        .join(name)
}

#[test]
fn decode_names_where_each_psrp_message_travelled() {
    // pypsrp's recording of disconnecting, reconnecting to and reading back two pipelines:
    // every place a PSRP payload rides in an envelope is in it.
    let rec = peer_recording("test_psrp_disconnected_commands.yml");
    let o = rps(&["decode", rec.to_str().expect("path")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let mut seen: std::collections::BTreeMap<(String, String, String), usize> = Default::default();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let Some(stream) = v["stream"].as_str() else {
            continue;
        };
        let key = (
            v["direction"].as_str().unwrap_or_default().to_owned(),
            stream.to_owned(),
            v["message_type"].as_str().unwrap_or("(error)").to_owned(),
        );
        *seen.entry(key).or_default() += 1;
    }
    let seen: Vec<(&str, &str, &str, usize)> = seen
        .iter()
        .map(|((d, s, m), n)| (d.as_str(), s.as_str(), m.as_str(), *n))
        .collect();
    assert_eq!(
        seen,
        [
            ("request", "arguments", "CREATE_PIPELINE", 2),
            ("request", "connectXml", "CONNECT_RUNSPACEPOOL", 2),
            ("request", "connectXml", "SESSION_CAPABILITY", 2),
            ("request", "creationXml", "INIT_RUNSPACEPOOL", 2),
            ("request", "creationXml", "SESSION_CAPABILITY", 2),
            (
                "response",
                "connectResponseXml",
                "RUNSPACEPOOL_INIT_DATA",
                2
            ),
            ("response", "connectResponseXml", "SESSION_CAPABILITY", 2),
            ("response", "stdout", "APPLICATION_PRIVATE_DATA", 4),
            ("response", "stdout", "PIPELINE_OUTPUT", 4),
            ("response", "stdout", "PIPELINE_STATE", 2),
            ("response", "stdout", "PROGRESS_RECORD", 2),
            ("response", "stdout", "RUNSPACEPOOL_STATE", 2),
            ("response", "stdout", "SESSION_CAPABILITY", 2),
        ],
        "{out}"
    );
}

#[test]
fn replay_check_passes_and_prints_what_the_recording_says() {
    let rec = peer_recording("test_psrp_multiple_invocations.yml");
    let o = rps(&["replay", "--check", rec.to_str().expect("path")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("PASS"), "{err}");
    assert!(out.contains("1+1"), "{out}");

    // The same recording with its server's answers changed: the outputs must differ.
    let text_rec = std::fs::read_to_string(&rec).expect("read");
    let t = rps_replay::Transcript::from_bytes(text_rec.as_bytes(), "altered").expect("load");
    let mut t2 = t.clone();
    // Replace every PIPELINE_OUTPUT `<I32>2</I32>` (base64 inside the streams) by re-encoding
    // the first Receive response that carries output with a different number.
    let mut altered = false;
    for ex in &mut t2.exchanges {
        if let Some(resp) = &mut ex.response
            && let Ok(mut env) = rps_wsman::Envelope::decode(resp.body.as_bytes())
            && let rps_wsman::Body::ReceiveResponse(r) = &mut env.body
        {
            for s in &mut r.streams {
                let needle = b"<I32>2</I32>";
                if let Some(pos) = s.data.windows(needle.len()).position(|w| w == needle) {
                    s.data[pos + 5] = b'3';
                    altered = true;
                }
            }
            resp.body = env.encode();
        }
    }
    assert!(altered, "found an output to alter");
    let dir = std::env::temp_dir().join(format!("rps-cli-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("altered.yaml");
    t2.save(&path).expect("save");
    // Replay compares against the (altered) recording itself, so it still passes: the
    // recording is the truth. Instead check the recorded outputs are printed as altered.
    let o = rps(&["replay", "--check", path.to_str().expect("path")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains('3') && !out.lines().any(|l| l.trim() == "2"),
        "{out}"
    );
}

#[test]
fn serve_fake_exchange_prints_its_url_first() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("rps-cli-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rps"))
        .args([
            "serve",
            "--fake-exchange",
            "--mailboxes",
            "4",
            "--token-file",
            token.to_str().expect("path"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read url");
    let url: url::Url = first.trim().parse().expect("first line is a URL");
    assert!(
        url.path().eq_ignore_ascii_case("/powershell-liveid"),
        "{url}"
    );
    // The token file is written right after the URL; wait for it.
    for _ in 0..100 {
        if std::fs::metadata(&token).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let jwt = std::fs::read_to_string(&token).expect("token");
    let claims = rps_session::jwt::Jwt::decode(&jwt).expect("jwt");
    let tid = claims.claims().tid.clone().expect("tid");
    let base = format!(
        "http://{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let o = rps(&[
        "exo",
        "--tenant-id",
        &tid,
        "--uri",
        &base,
        "--insecure-http",
        "--access-token-file",
        token.to_str().expect("path"),
        "-o",
        "csv",
        "--property",
        "Name,Alias",
        "--",
        "Get-Mailbox",
    ]);
    let _ = child.kill();
    let _ = child.wait();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{out}");
    assert!(
        lines[0].contains("Name") && lines[0].contains("Alias"),
        "{out}"
    );
}

#[test]
fn bad_fault_spec_is_a_usage_error() {
    let o = rps(&["serve", "--fake-exchange", "--faults", "explode=1"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `rps invoke` with Basic credentials (`admin@contoso.com`, the password from the
/// environment) on the fake's on-premises style URL, then `rest`.
fn rps_invoke_basic(url: &str, password: &str, rest: &[&str]) -> Output {
    let mut args = vec![
        "invoke",
        "--uri",
        url,
        "--configuration-name",
        "Microsoft.Exchange",
        "--user",
        "admin@contoso.com",
        "--password-env",
        "RPS_TEST_PASSWORD",
        "--insecure-http",
    ];
    args.extend_from_slice(rest);
    Command::new(env!("CARGO_BIN_EXE_rps"))
        .args(&args)
        .env("RPS_TEST_PASSWORD", password)
        .output()
        .expect("run")
}

fn exo_args<'a>(f: &'a Fake, base: &'a str, tok: &'a str) -> Vec<&'a str> {
    vec![
        "--tenant-id",
        f.fake.tenant_id(),
        "--uri",
        base,
        "--insecure-http",
        "--access-token-file",
        tok,
    ]
}

#[test]
fn ipps_and_commands_against_the_fake() {
    let f = fake(3);
    let tok = temp_file("token-ipps", &f.fake.mint_token(&TokenSpec::app_only()));
    let base = base_url(&f);
    let tok_s = tok.to_str().expect("path");
    // Security & Compliance uses the same PowerShell-LiveId flow.
    let mut args = vec!["ipps"];
    args.extend(exo_args(&f, &base, tok_s));
    args.extend(["-o", "jsonl", "--", "Get-Mailbox", "-ResultSize", "2"]);
    let o = rps(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // GET_COMMAND_METADATA lists the catalog's cmdlets.
    let mut args = vec!["commands", "exo"];
    args.extend(exo_args(&f, &base, tok_s));
    args.extend(["-o", "jsonl", "--", "Get-*"]);
    let o = rps(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    let names: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("Name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect();
    assert!(names.iter().any(|n| n == "Get-Mailbox"), "{out}");
    assert!(names.iter().all(|n| n.starts_with("Get-")), "{names:?}");
}

#[test]
fn invoke_with_basic_credentials_on_premises_style() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(
            FakeExchange::builder()
                .mailboxes(3)
                .basic_user("admin@contoso.com", "Adm1n-Pass")
                .bind("127.0.0.1:0")
                .start(),
        )
        .expect("fake");
    let o = rps_invoke_basic(
        &fake.basic_url(),
        "Adm1n-Pass",
        &["-o", "csv", "--property", "Name", "--", "Get-Mailbox"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().count(), 1 + 3, "{out}");
    assert!(!err.contains("Adm1n-Pass") && !out.contains("Adm1n-Pass"));
    // A wrong password is an authentication error, with a hint, and no password echoed.
    let o = rps_invoke_basic(&fake.basic_url(), "wrong-Pass", &["--", "Get-Mailbox"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    assert!(!err.contains("wrong-Pass"), "{err}");
}

#[test]
fn app_sign_in_with_a_client_secret_against_a_mock_authority() {
    use std::sync::{Arc, Mutex};
    let f = fake(2);
    let token = f.fake.mint_token(&TokenSpec::app_only());
    let forms: Arc<Mutex<Vec<String>>> = Arc::default();
    let authority = {
        let forms = forms.clone();
        let token = token.clone();
        f._rt
            .block_on(rps_replay::server::Server::bind(
                "127.0.0.1:0",
                move |req: rps_replay::server::Request| {
                    let forms = forms.clone();
                    let token = token.clone();
                    async move {
                        forms.lock().expect("forms").push(format!(
                            "{} {}",
                            req.uri,
                            String::from_utf8_lossy(&req.body)
                        ));
                        let body = serde_json::json!({
                            "token_type": "Bearer",
                            "expires_in": 3599,
                            "access_token": token,
                        });
                        rps_replay::server::Response::new(200)
                            .with_header("content-type", "application/json")
                            .with_body(body.to_string())
                    }
                },
            ))
            .expect("mock authority")
    };
    let base = base_url(&f);
    let o = Command::new(env!("CARGO_BIN_EXE_rps"))
        .args([
            "exo",
            "--tenant-id",
            f.fake.tenant_id(),
            "--app-id",
            "a0c73c16-a7e3-4564-9a95-2bdf47383716",
            "--client-secret-env",
            "RPS_TEST_SECRET",
            "--authority",
            &authority.url(),
            "--uri",
            &base,
            "--insecure-http",
            "-o",
            "jsonl",
            "--",
            "Get-Mailbox",
        ])
        .env("RPS_TEST_SECRET", "s3cr3t-value")
        .output()
        .expect("run");
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let forms = forms.lock().expect("forms");
    assert_eq!(forms.len(), 1, "one token request (cached): {forms:?}");
    let form = &forms[0];
    assert!(
        form.contains(&format!("/{}/oauth2/v2.0/token", f.fake.tenant_id())),
        "{form}"
    );
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_secret=s3cr3t-value"), "{form}");
    assert!(
        form.contains("scope=https%3A%2F%2Foutlook.office365.com%2F.default"),
        "{form}"
    );
    assert!(!err.contains("s3cr3t-value"), "{err}");
}

#[test]
fn script_file_runs_one_cmdlet_line_per_line() {
    let f = fake(6);
    let tok = temp_file("token-script", &f.fake.mint_token(&TokenSpec::app_only()));
    let script = temp_file(
        "lines.ps1",
        "# mailboxes, then recipients\nGet-Mailbox -ResultSize 2\n\nGet-Recipient -ResultSize 3\n",
    );
    let base = base_url(&f);
    let mut args = vec!["exo"];
    args.extend(exo_args(&f, &base, tok.to_str().expect("path")));
    args.extend(["-o", "jsonl", "--script", script.to_str().expect("path")]);
    let o = rps(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().count(), 5, "{out}");

    // A malformed line is a usage error naming the line, before anything is sent.
    let bad = temp_file(
        "bad.ps1",
        "Get-Mailbox\nGet-Mailbox -Identity 'unterminated\n",
    );
    let mut args = vec!["exo"];
    args.extend(exo_args(&f, &base, tok.to_str().expect("path")));
    args.extend(["--script", bad.to_str().expect("path")]);
    let before = f.fake.stats().front_requests;
    let o = rps(&args);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(f.fake.stats().front_requests, before, "nothing was sent");
}

#[test]
fn invoke_command_script_is_refused_by_the_exchange_configuration() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(
            FakeExchange::builder()
                .basic_user("admin@contoso.com", "Adm1n-Pass")
                .bind("127.0.0.1:0")
                .start(),
        )
        .expect("fake");
    let o = rps_invoke_basic(
        &fake.basic_url(),
        "Adm1n-Pass",
        &["--command", "Get-Mailbox | ForEach-Object { $_.Name }"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("NoLanguage") || err.contains("script"),
        "{err}"
    );
    assert_eq!(
        fake.open_shells(),
        0,
        "the shell was deleted after the refusal"
    );
}

#[test]
fn serve_a_transcript_to_rps_exo() {
    use std::io::{BufRead, BufReader};
    let transcript = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/transcripts/exo-fake-get-mailbox.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rps"))
        .args(["serve", transcript.to_str().expect("path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read url");
    let url: url::Url = first.trim().parse().expect("first line is a URL");
    let base = format!(
        "http://{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    // The recorded session ran these two lines; the replay server answers only requests that
    // mean what the recorded ones did.
    let script = temp_file(
        "recorded.ps1",
        "Get-Mailbox -ResultSize 5\nGet-Mailbox -Identity nobody@contoso.com\n",
    );
    let tok = temp_file("token-replayed", "a.b.c");
    let o = rps(&[
        "exo",
        "--tenant-id",
        "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "--uri",
        &base,
        "--insecure-http",
        "--access-token-file",
        tok.to_str().expect("path"),
        "-o",
        "jsonl",
        "--script",
        script.to_str().expect("path"),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    let (out, err) = text(&o);
    // The recorded error record makes the exit status 1, as it did live.
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(err.contains("ManagementObjectNotFoundException"), "{err}");
    assert!(!err.contains("replay mismatch"), "{err}");
}

#[test]
fn ctrl_c_stops_the_pipeline_and_closes_the_shell() {
    use std::io::{BufRead, BufReader};
    let f = fake(50_000);
    let tok = temp_file("token-ctrl-c", &f.fake.mint_token(&TokenSpec::app_only()));
    let base = base_url(&f);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rps"))
        .args([
            "exo",
            "--tenant-id",
            f.fake.tenant_id(),
            "--uri",
            &base,
            "--insecure-http",
            "--access-token-file",
            tok.to_str().expect("path"),
            "-o",
            "jsonl",
            "--property",
            "Name",
            "--",
            "Get-Mailbox",
            "-ResultSize",
            "Unlimited",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait for output to flow, then interrupt.
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("first object");
    assert!(line.contains("Name"), "{line}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("drain");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopping the pipeline"), "{err}");
    // Stopped, not completed: exit 1, fewer than 50,000 objects, and no shell left.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(rest.lines().count() < 49_999, "the pipeline ran to the end");
    assert_eq!(f.fake.open_shells(), 0, "the shell was deleted");
}

/// `rps serve --fake-exchange` with `--disconnect-supported`, `--max-envelope-kb` and
/// `--no-key-exchange`: a library client sees each (a Disconnect accepted, the server's
/// envelope size read, a key exchange left unanswered), and without them the defaults.
#[test]
fn serve_fake_exchange_options_reach_the_fake() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    let start = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--fake-exchange",
            "--no-redirect",
            "--basic-user",
            "admin@contoso.com",
            "--basic-password-env",
            "RPS_TEST_FAKE_PW",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rps"))
            .args(&args)
            .env("RPS_TEST_FAKE_PW", "not-a-real-password")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read url");
        let url: url::Url = first.trim().parse().expect("first line is a URL");
        (child, url)
    };
    let options = |url: &url::Url| {
        let endpoint = rps_session::http::Endpoint {
            url: url.clone(),
            configuration: "Microsoft.Exchange".to_owned(),
            allow_redirection: false,
        };
        let mut o = rps_session::ConnectOptions::new(
            endpoint,
            Some(rps_session::http::Credentials::basic(
                "admin@contoso.com",
                "not-a-real-password",
            )),
        );
        o.allow_insecure_http = true;
        o
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (mut with, url) = start(&["--disconnect-supported", "--no-key-exchange"]);
    rt.block_on(async {
        let pool = rps_session::RunspacePool::connect(options(&url))
            .await
            .expect("connect");
        pool.disconnect()
            .await
            .expect("the fake accepts Disconnect");
        pool.reconnect().await.expect("and Reconnect");
        let err = pool
            .exchange_key(Duration::from_millis(300))
            .await
            .expect_err("no session key");
        assert!(
            matches!(err, rps_session::Error::KeyExchangeTimeout(_)),
            "{err}"
        );
        pool.close().await.expect("close");
    });
    let _ = with.kill();
    let _ = with.wait();

    let (mut without, url) = start(&["--max-envelope-kb", "40"]);
    rt.block_on(async {
        // A CREATE_PIPELINE of about 60 KB: refused in one 150 KiB envelope by a server
        // limited to 40 KiB, accepted once the client reads that limit and splits it.
        let big = "a".repeat(60_000);
        async fn run(
            pool: &rps_session::RunspacePool,
            big: &str,
        ) -> Result<rps_session::PipelineResult, rps_session::Error> {
            pool.invoke([rps_session::Command::new("Get-Mailbox").param("Identity", big)])
                .await
                .expect("invoke")
                .collect()
                .await
        }
        let unaware = rps_session::RunspacePool::connect(options(&url))
            .await
            .expect("connect");
        let err = run(&unaware, &big)
            .await
            .expect_err("too large for the server");
        assert!(err.to_string().contains("Command"), "{err}");
        let err = unaware.disconnect().await.expect_err("refused by default");
        assert!(err.to_string().contains("Disconnect"), "{err}");
        unaware.close().await.expect("close");
        let mut o = options(&url);
        o.read_server_config = true;
        let aware = rps_session::RunspacePool::connect(o)
            .await
            .expect("connect");
        run(&aware, &big)
            .await
            .expect("the split request is accepted");
        aware.close().await.expect("close");
    });
    let _ = without.kill();
    let _ = without.wait();
}
