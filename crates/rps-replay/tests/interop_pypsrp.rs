//! Interoperability of the fake Exchange endpoint with pypsrp 0.9.1, a WinRM/PSRP client
//! nobody here wrote: pypsrp and our own client run the same `Get-Mailbox` over loopback
//! HTTP Basic and must get the same objects.
//!
//! The pypsrp side is `tests/interop/pypsrp_get_mailbox.py`. The interpreter is
//! `$RPS_INTEROP_PYTHON`, else `<workspace>/target/interop-venv/bin/python`; `.ci/run`
//! creates that venv. Without it this test fails, it never skips.

use std::path::PathBuf;

use rps_psrp::clixml::{ObjectBase, Value};
use rps_psrp::messages::PsInvocationState;
use rps_replay::fake::FakeExchange;
use rps_session::http::{Credentials, Endpoint};
use rps_session::{Command, ConnectOptions, RunspacePool};
use serde_json::{Value as J, json};

const USER: &str = "admin";
const PASSWORD: &str = "P@ssw0rd";
const RESULT_SIZE: usize = 5;
/// The properties the script reports (its `PROPS`).
const PROPS: &[&str] = &[
    "Name",
    "Alias",
    "PrimarySmtpAddress",
    "DisplayName",
    "RecipientTypeDetails",
    "Guid",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    const HOW: &str = "create it with: python3 -m venv target/interop-venv && \
        target/interop-venv/bin/pip install psrpcore==0.3.1 pypsrp==0.9.1 \
        (from the workspace root; .ci/run does this), or set RPS_INTEROP_PYTHON";
    if let Some(p) = std::env::var_os("RPS_INTEROP_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "RPS_INTEROP_PYTHON={} does not exist",
            p.display()
        );
        return p;
    }
    let p = workspace().join("target/interop-venv/bin/python");
    assert!(
        p.exists(),
        "interop tests need a Python with pypsrp: {} is missing; {HOW}",
        p.display()
    );
    p
}

/// A value as the script's `plain()` reports it.
fn plain(v: &Value) -> J {
    match v {
        Value::Nil => J::Null,
        Value::Str(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::Guid(g) => json!(g.hyphenated().to_string()),
        Value::Object(o) => match &o.base {
            ObjectBase::List(_, items) => J::Array(items.iter().map(plain).collect()),
            _ => json!({"types": o.type_names.as_deref().unwrap_or_default(),
                        "to_string": o.to_string}),
        },
        other => match other.as_i64() {
            Some(n) => json!(n),
            None => panic!("the test does not compare {other:?}"),
        },
    }
}

/// One output object as the script describes it.
fn describe(v: &Value) -> J {
    let o = v.as_object().expect("Get-Mailbox outputs objects");
    let mut props = serde_json::Map::new();
    for &name in PROPS {
        for (place, list) in [("adapted", &o.adapted), ("extended", &o.extended)] {
            if let Some(p) = list.iter().find(|p| p.name == name) {
                props.insert(
                    name.to_owned(),
                    json!({"where": place, "value": plain(&p.value)}),
                );
            }
        }
    }
    json!({
        "types": o.type_names.as_deref().unwrap_or_default(),
        "to_string": o.to_string,
        "adapted_names": o.adapted.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "extended_names": o.extended.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "props": props,
    })
}

/// pypsrp, then our client, run `Get-Mailbox -ResultSize 5` on the fake at `path` (pypsrp's
/// `WSMan(path=...)`; our client uses the same URL) and must get the same objects; pypsrp's
/// `Get-Mailbox -Identity <Name of the last one>` in the same pool must find that one.
async fn pypsrp_and_rps_agree(path: &str) {
    let python = python();
    let fake = FakeExchange::builder()
        .redirect(false)
        .mailboxes(12)
        .basic_user(USER, PASSWORD)
        .bind("127.0.0.1:0")
        .start()
        .await
        .expect("fake starts");
    let mut url = url::Url::parse(&fake.basic_url()).unwrap();
    url.set_path(&format!("/{path}"));
    let (host, port) = (url.host_str().unwrap().to_owned(), url.port().unwrap());

    // pypsrp, in a blocking thread while the fake serves on this runtime.
    let script = workspace().join("tests/interop/pypsrp_get_mailbox.py");
    let path = path.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([host, port.to_string(), path, RESULT_SIZE.to_string()])
            .env("RPS_INTEROP_USER", USER)
            .env("RPS_INTEROP_PASSWORD", PASSWORD)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "pypsrp against the fake failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: J = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    // pypsrp closed its shell.
    assert_eq!(fake.open_shells(), 0, "pypsrp left a shell open");

    // Our client, same endpoint, same credentials, same cmdlet.
    let endpoint = Endpoint {
        url,
        configuration: "Microsoft.Exchange".into(),
        allow_redirection: false,
    };
    let mut options = ConnectOptions::new(endpoint, Some(Credentials::basic(USER, PASSWORD)));
    options.allow_insecure_http = true;
    let pool = RunspacePool::connect(options).await.expect("rps connects");
    let ours = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", RESULT_SIZE as i32)])
        .await
        .expect("invoke")
        .collect()
        .await
        .expect("collect");
    pool.close().await.expect("close");
    fake.shutdown().await;

    assert_eq!(ours.state, Some(PsInvocationState::Completed));
    assert_eq!(ours.output.len(), RESULT_SIZE);
    let mine: Vec<J> = ours.output.iter().map(describe).collect();
    for (i, m) in mine.iter().enumerate() {
        // The properties compared are really there (a missing one on both sides would
        // compare equal).
        for name in ["Name", "Alias", "PrimarySmtpAddress"] {
            assert!(m["props"][name].is_object(), "mailbox {i} lacks {name}");
        }
    }
    let listing = &theirs["listing"];
    assert_result_ok(listing);
    assert_eq!(listing["outputs"], J::Array(mine.clone()));
    // pypsrp's `-Identity <Name of the last mailbox>` found that one mailbox.
    let identity = &theirs["identity"];
    assert_result_ok(identity);
    assert_eq!(identity["outputs"], json!([mine[RESULT_SIZE - 1]]));
}

fn assert_result_ok(r: &J) {
    assert_eq!(r["had_errors"], false, "{r}");
    assert_eq!(r["errors"], json!([]));
    assert_eq!(r["state"], PsInvocationState::Completed.to_i32());
}

/// pypsrp (a client nobody here wrote) and ours, on the on-premises style path `/PowerShell`
/// with plain Basic. The fake keeps the request path's case in the `MS-WSMAN` cookie there,
/// so pypsrp's case-sensitive cookie matching (RFC 6265 5.1.4) sends it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypsrp_and_rps_get_the_same_mailboxes_from_the_fake() {
    pypsrp_and_rps_agree("PowerShell").await;
}
