//! Tracing output at every level carries no secrets. Alone in its own test binary: a
//! subscriber installed per thread must not race other tests registering the same
//! callsites.

mod http_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http_support::{Reply, serve};
use rps_session::http::{
    Credentials, HttpClient, HttpRequest, RedirectPolicy, Transport, TransportConfig,
};
use rps_session::token::{AccessToken, Caching, TokenFuture, TokenProvider};

const TENANT: &str = "00000000-1111-2222-3333-444444444444";

fn client(creds: Option<Credentials>) -> HttpClient {
    HttpClient::new(Transport::new(TransportConfig::default()).unwrap(), creds)
        .allow_insecure_http(true)
}

#[derive(Debug, Default)]
struct Counting {
    calls: AtomicUsize,
}

impl TokenProvider for Counting {
    fn token(&self) -> TokenFuture<'_> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            Ok(AccessToken::new(
                format!("tok-{n}"),
                SystemTime::now() + Duration::from_secs(3600),
            ))
        })
    }
}

fn auth_for(token: &str) -> String {
    let raw = format!("OAuthUser@{TENANT}:Bearer {token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Collects every event and span field, at every level, as text.
struct Capture(Arc<std::sync::Mutex<String>>);

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        attrs.record(&mut Visitor(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Visitor(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut g = self.0.lock().unwrap();
        g.push_str(event.metadata().level().as_str());
        g.push(' ');
        event.record(&mut Visitor(&mut g));
        g.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn logs_at_every_level_carry_no_secrets() {
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(log.clone()));

    let pod = serve(|_, _| {
        Reply::ok("<body-secret-zzz/>").header("Set-Cookie", "MS-WSMAN=cookie-secret-zzz")
    })
    .await;
    let target = pod
        .http("/PowerShell-LiveId?BasicAuthToOAuthConversion=true&email=anchor%40contoso.com")
        .to_string();
    let front = serve(move |_, _| Reply::status(302).header("Location", &target)).await;
    let good = auth_for("tok-2");
    let picky = serve(move |r, _| {
        if r.header("authorization") == Some(good.as_str()) {
            Reply::ok("")
        } else {
            Reply::status(401)
        }
    })
    .await;

    let mut c = client(Some(Credentials::basic("admin", "pw-secret-zzz")))
        .with_redirect_policy(RedirectPolicy::follow());
    c.send_following(HttpRequest::winrm(
        front.http("/PowerShell-LiveId"),
        "<envelope-secret-zzz/>",
    ))
    .await
    .unwrap();
    c.send(HttpRequest::winrm(pod.http("/PowerShell-LiveId"), "x"))
        .await
        .unwrap();
    let mut c = client(Some(Credentials::app_only(
        TENANT,
        Arc::new(Caching::new(Counting::default())),
    )));
    c.send(HttpRequest::winrm(picky.http("/"), "x"))
        .await
        .unwrap();

    let text = log.lock().unwrap().clone();
    assert!(text.contains("http request"), "nothing was logged: {text}");
    assert!(text.contains("following redirect"));
    for needle in [
        "pw-secret",
        "cookie-secret",
        "body-secret",
        "envelope-secret",
        "tok-1",
        "tok-2",
        "YWRtaW46",
        "anchor",
    ] {
        assert!(!text.contains(needle), "{needle} leaked into logs:\n{text}");
    }
}
