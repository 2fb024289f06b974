//! The fake endpoint at the HTTP and WS-Man level: redirects, auth refusals, the affinity
//! cookie, long-poll timeouts and unknown shells, driven by hand.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_session::machine::{Phase, SequentialIds, Session, SessionConfig};
use rps_wsman::ns::action;
use rps_wsman::{Body, Envelope, Header};
use uuid::Uuid;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let u = url::Url::parse(url).unwrap();
    let stream = tokio::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap()))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut target = u.path().to_owned();
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut req = hyper::Request::post(target)
        .header(
            "host",
            format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()),
        )
        .header("content-type", "application/soap+xml;charset=UTF-8");
    for (n, v) in headers {
        req = req.header(*n, v.as_str());
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn app_auth(fake: &FakeExchange, spec: &TokenSpec) -> String {
    basic(
        &format!("OAuthUser@{}", fake.tenant_id()),
        &format!("Bearer {}", fake.mint_token(spec)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_redirects_with_path_and_query() {
    let fake = FakeExchange::builder().start().await.unwrap();
    let url = format!("{}&DelegatedOrg=contoso.onmicrosoft.com", fake.url());
    let auth = app_auth(&fake, &TokenSpec::app_only());
    let r = post(&url, &[("authorization", auth)], b"<x/>".to_vec()).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("{}&DelegatedOrg=contoso.onmicrosoft.com", fake.pod_url()).as_str())
    );
    assert_ne!(fake.url(), fake.pod_url());
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusals() {
    let fake = FakeExchange::builder()
        .redirect(false)
        .basic_user("admin", "P@ssw0rd")
        .start()
        .await
        .unwrap();
    let url = fake.url();
    let r = post(&url, &[], Vec::new()).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let garbage = basic(
        &format!("OAuthUser@{}", fake.tenant_id()),
        "Bearer not.a.jwt",
    );
    assert_eq!(
        post(&url, &[("authorization", garbage)], Vec::new())
            .await
            .status,
        401
    );
    let mut wrong_aud = TokenSpec::app_only();
    wrong_aud.aud = "https://graph.microsoft.com".into();
    let auth = app_auth(&fake, &wrong_aud);
    assert_eq!(
        post(&url, &[("authorization", auth)], Vec::new())
            .await
            .status,
        401
    );
    let auth = basic(
        "OAuthUser@11111111-2222-3333-4444-555555555555",
        &format!("Bearer {}", fake.mint_token(&TokenSpec::app_only())),
    );
    assert_eq!(
        post(&url, &[("authorization", auth)], Vec::new())
            .await
            .status,
        401
    );
    let auth = app_auth(&fake, &TokenSpec::app_only().lifetime(-1));
    assert_eq!(
        post(&url, &[("authorization", auth)], Vec::new())
            .await
            .status,
        401
    );
    // Valid token without the role: 403 "Access is denied."
    let auth = app_auth(&fake, &TokenSpec::app_only().without_roles());
    let r = post(&url, &[("authorization", auth)], Vec::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Access is denied"));
    // Role but no Exchange directory role.
    let mut spec = TokenSpec::app_only();
    spec.wids = vec!["88d8e3e3-8f55-4a1e-953a-9b9898b8876b".into()];
    let r = post(
        &url,
        &[("authorization", app_auth(&fake, &spec))],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 403);
    // Global Reader works.
    spec.wids = vec!["f2ef992c-3afb-46b9-b7cf-a126ee74c451".into()];
    let r = post(
        &url,
        &[("authorization", app_auth(&fake, &spec))],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "authenticated; the empty body is a bad envelope"
    );
    // A token without BasicAuthToOAuthConversion=true is not taken as a token.
    let no_conv = url.split('?').next().unwrap().to_owned();
    let auth = app_auth(&fake, &TokenSpec::app_only());
    assert_eq!(
        post(&no_conv, &[("authorization", auth)], Vec::new())
            .await
            .status,
        401
    );
    // Plain Basic on /PowerShell.
    let ok = basic("admin", "P@ssw0rd");
    assert_eq!(
        post(&fake.basic_url(), &[("authorization", ok)], Vec::new())
            .await
            .status,
        400
    );
    let bad = basic("admin", "nope");
    assert_eq!(
        post(&fake.basic_url(), &[("authorization", bad)], Vec::new())
            .await
            .status,
        401
    );
    // Unknown path.
    let other = url.replace("powershell-liveid", "ews");
    assert_eq!(post(&other, &[], Vec::new()).await.status, 404);
    fake.shutdown().await;
}

/// Opens a pool by hand with the sans-IO machine; returns the session, shell id and cookie.
async fn open_by_hand(fake: &FakeExchange, auth: &str) -> (Session, Uuid, String) {
    let url = fake.pod_url();
    let mut cfg = SessionConfig::new(url.clone(), "Microsoft.Exchange");
    cfg.pool.allow_scripts = false;
    let shell_id = Uuid::new_v4();
    let mut s = Session::new(cfg, shell_id, Box::new(SequentialIds::default()));
    s.open().unwrap();
    let mut cookie: Option<String> = None;
    while s.phase() != Phase::Opened {
        let req = s.poll_request().unwrap().expect("a request");
        let mut headers = vec![("authorization", auth.to_owned())];
        if let Some(c) = &cookie {
            headers.push(("cookie", c.clone()));
        }
        let r = post(&url, &headers, req.body.to_vec()).await;
        if let Some(sc) = r.header("set-cookie") {
            assert!(sc.starts_with("MS-WSMAN="), "{sc}");
            assert!(
                sc.contains("path=/powershell-liveid") && sc.contains("HttpOnly"),
                "{sc}"
            );
            cookie = Some(sc.split(';').next().unwrap().to_owned());
        }
        s.handle_response(r.status, &r.body).unwrap();
    }
    (s, shell_id, cookie.expect("the pod set a cookie"))
}

fn receive_envelope(url: &str, shell: Uuid, timeout_secs: u64) -> Vec<u8> {
    let h = Header::request(
        url,
        action::RECEIVE,
        rps_replay::fake::EXCHANGE_RESOURCE_URI,
        Uuid::new_v4(),
    )
    .with_shell_id(shell)
    .with_operation_timeout_secs(timeout_secs);
    Envelope::new(h, Body::receive(None)).encode().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_timeout_and_unknown_shell() {
    let fake = FakeExchange::builder()
        .redirect(false)
        .operation_timeout_cap(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let auth = app_auth(&fake, &TokenSpec::app_only());
    let (_session, shell, cookie) = open_by_hand(&fake, &auth).await;
    assert_eq!(fake.open_shells(), 1);
    let url = fake.pod_url();

    // Without the cookie: refused.
    let r = post(
        &url,
        &[("authorization", auth.clone())],
        receive_envelope(&url, shell, 20),
    )
    .await;
    assert_eq!(r.status, 400);
    let env = Envelope::decode(&r.body).unwrap();
    assert!(env.fault().unwrap().is_invalid_selectors());
    // A wrong cookie too.
    let headers = [
        ("authorization", auth.clone()),
        ("cookie", "MS-WSMAN=nope".to_owned()),
    ];
    let r = post(&url, &headers, receive_envelope(&url, shell, 20)).await;
    assert_eq!(r.status, 400);

    // With it: nothing to say, so w:TimedOut after the (capped) OperationTimeout.
    let headers = [("authorization", auth.clone()), ("cookie", cookie.clone())];
    let started = Instant::now();
    let r = post(&url, &headers, receive_envelope(&url, shell, 20)).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 500);
    let env = Envelope::decode(&r.body).unwrap();
    let fault = env.fault().unwrap();
    assert!(fault.is_operation_timeout(), "{fault:?}");
    assert_eq!(fault.wsman_code(), Some(2_150_858_793));
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // An unknown shell.
    let r = post(&url, &headers, receive_envelope(&url, Uuid::new_v4(), 1)).await;
    assert_eq!(r.status, 500);
    assert!(
        Envelope::decode(&r.body)
            .unwrap()
            .fault()
            .unwrap()
            .is_invalid_selectors()
    );

    // Another user cannot touch the shell.
    let other = basic(
        "someone@contoso.com",
        &format!(
            "Bearer {}",
            fake.mint_token(&TokenSpec::delegated("someone@contoso.com"))
        ),
    );
    let r = post(
        &url,
        &[("authorization", other), ("cookie", cookie.clone())],
        receive_envelope(&url, shell, 1),
    )
    .await;
    assert!(
        Envelope::decode(&r.body)
            .unwrap()
            .fault()
            .unwrap()
            .is_invalid_selectors()
    );

    // Delete frees it.
    let h = Header::request(
        url.as_str(),
        action::DELETE,
        rps_replay::fake::EXCHANGE_RESOURCE_URI,
        Uuid::new_v4(),
    )
    .with_shell_id(shell);
    let r = post(
        &url,
        &headers,
        Envelope::new(h, Body::Delete).encode().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(matches!(
        Envelope::decode(&r.body).unwrap().body,
        Body::DeleteResponse
    ));
    assert_eq!(fake.open_shells(), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_injected_clock() {
    // A fake living in 2035: its own tokens are fresh there, today's are long expired.
    let future = std::time::UNIX_EPOCH + Duration::from_secs(2_051_222_400);
    let fake = FakeExchange::builder()
        .redirect(false)
        .clock(std::sync::Arc::new(move || future))
        .start()
        .await
        .unwrap();
    let today = FakeExchange::builder().start().await.unwrap();
    let url = fake.url();
    let own = app_auth(&fake, &TokenSpec::app_only());
    assert_eq!(
        post(&url, &[("authorization", own)], Vec::new())
            .await
            .status,
        400
    );
    let mut spec = TokenSpec::app_only();
    spec.tid = Some(fake.tenant_id().to_owned());
    let stale = basic(
        &format!("OAuthUser@{}", fake.tenant_id()),
        &format!("Bearer {}", today.mint_token(&spec)),
    );
    assert_eq!(
        post(&url, &[("authorization", stale)], Vec::new())
            .await
            .status,
        401
    );
    fake.shutdown().await;
    today.shutdown().await;
}
