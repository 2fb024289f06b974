//! Secret hygiene: whole sessions run with tracing at trace level and recording on; the
//! token, the password and the cookie value must appear in no log line, error, `Debug`
//! output or transcript.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_replay::recorder::{Redaction, TranscriptRecorder};
use rps_session::http::{Credentials, HttpRequest, HttpResponse};
use rps_session::{Command, ExchangeObserver, RunspacePool};

/// Every byte tracing writes.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("sink").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Sees the raw Set-Cookie values (the recorder must not keep them) and forwards to the
/// recorder.
#[derive(Debug)]
struct Spy {
    cookies: Mutex<Vec<String>>,
    inner: Arc<TranscriptRecorder>,
}

impl ExchangeObserver for Spy {
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>) {
        if let Ok(r) = response {
            for c in r.headers.get_all("set-cookie") {
                if let Some((_, v)) = c.split(';').next().and_then(|p| p.split_once('=')) {
                    self.cookies.lock().expect("cookies").push(v.to_owned());
                }
            }
        }
        self.inner.on_exchange(request, response);
    }
}

#[test]
fn no_secret_in_logs_errors_debug_or_transcripts() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("rps-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let password = "Pa55w0rd-Sup3r-S3cret";
    let mut seen: Vec<String> = Vec::new();
    let (token, expired, cookies, transcript_paths) = rt.block_on(async {
        let fake = FakeExchange::builder()
            .mailboxes(6)
            .basic_user("admin@contoso.com", password)
            .bind("127.0.0.1:0")
            .start()
            .await
            .expect("fake");
        let token = fake.mint_token(&TokenSpec::app_only());
        let mut paths = Vec::new();
        let mut cookies = Vec::new();

        // 1. A good app-only session, recorded.
        let mut options = fake.connect_options_with(fake.credentials_for(&TokenSpec::app_only()));
        // credentials_for mints a fresh token: use ours instead so we know what to look for.
        options.credentials = Some(Credentials::app_only(
            fake.tenant_id(),
            Arc::new(rps_session::token::StaticToken::new(token.clone())),
        ));
        let path = dir.join("good.yaml");
        let spy = Arc::new(Spy {
            cookies: Mutex::default(),
            inner: Arc::new(TranscriptRecorder::new(
                &path,
                "secrets test",
                Redaction::default(),
            )),
        });
        options.observer = Some(spy.clone());
        seen.push(format!("{options:?}"));
        let pool = RunspacePool::connect(options).await.expect("connect");
        seen.push(format!("{pool:?}"));
        let r = pool
            .invoke([Command::new("Get-Mailbox").param("ResultSize", 3)])
            .await
            .expect("invoke")
            .collect()
            .await
            .expect("collect");
        assert_eq!(r.output.len(), 3);
        seen.push(format!("{r:?}"));
        let err = pool
            .invoke([Command::script("Get-Mailbox | % { $_ }")])
            .await
            .map(|_| ())
            .expect_err("scripts are refused before sending");
        seen.push(format!("{err} {err:?}"));
        pool.close().await.expect("close");
        cookies.extend(spy.cookies.lock().expect("cookies").iter().cloned());
        paths.push(path);

        // 2. Basic user/password (on-premises style), recorded.
        let mut options =
            fake.connect_options_with(Credentials::basic("admin@contoso.com", password));
        options.endpoint.url = fake.basic_url().parse().expect("url");
        options.endpoint.allow_redirection = false;
        let path = dir.join("basic.yaml");
        let spy = Arc::new(Spy {
            cookies: Mutex::default(),
            inner: Arc::new(TranscriptRecorder::new(
                &path,
                "secrets test",
                Redaction::default(),
            )),
        });
        options.observer = Some(spy.clone());
        seen.push(format!("{options:?}"));
        let pool = RunspacePool::connect(options).await.expect("basic connect");
        let r = pool
            .invoke([Command::new("Get-Mailbox").param("Identity", "nosuch")])
            .await
            .expect("invoke")
            .collect()
            .await
            .expect("collect");
        assert_eq!(r.errors().count(), 1, "an error record");
        seen.push(format!("{r:?}"));
        pool.close().await.expect("close");
        cookies.extend(spy.cookies.lock().expect("cookies").iter().cloned());
        paths.push(path);

        // 3. Failures: an expired token and a wrong password.
        let expired = fake.mint_token(&TokenSpec::app_only().lifetime(-60));
        let mut options = fake.connect_options();
        options.credentials = Some(Credentials::app_only(
            fake.tenant_id(),
            Arc::new(rps_session::token::StaticToken::new(expired.clone())),
        ));
        let e = RunspacePool::connect(options)
            .await
            .expect_err("expired token");
        seen.push(format!("{e} {e:?}"));
        let mut options = fake.connect_options_with(Credentials::basic(
            "admin@contoso.com",
            "wrong-password-123",
        ));
        options.endpoint.url = fake.basic_url().parse().expect("url");
        options.endpoint.allow_redirection = false;
        let e = RunspacePool::connect(options)
            .await
            .expect_err("wrong password");
        seen.push(format!("{e} {e:?}"));
        (token, expired, cookies, paths)
    });
    let logs = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf8 logs");
    assert!(
        logs.contains("http request"),
        "trace logging was on: {logs}"
    );
    assert!(!cookies.is_empty(), "the fake set MS-WSMAN");
    let mut haystacks = vec![("logs".to_owned(), logs)];
    for (i, s) in seen.iter().enumerate() {
        haystacks.push((format!("debug/error #{i}"), s.clone()));
    }
    for p in &transcript_paths {
        haystacks.push((
            p.display().to_string(),
            std::fs::read_to_string(p).expect("transcript"),
        ));
    }
    let token_claims = token.split('.').nth(1).expect("claims").to_owned();
    let needles = [
        ("token", token.as_str()),
        ("token claims", token_claims.as_str()),
        ("expired token", expired.as_str()),
        ("password", password),
        ("wrong password", "wrong-password-123"),
    ];
    for (where_, hay) in &haystacks {
        for (what, needle) in needles {
            assert!(!hay.contains(needle), "{what} found in {where_}");
        }
        for c in &cookies {
            assert!(!hay.contains(c.as_str()), "cookie value found in {where_}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
