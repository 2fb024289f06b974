//! HttpClient against loopback servers: auth header on the wire, redirects, cookie
//! affinity, plain-http refusal and refresh-once on 401.

mod http_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http_support::{Reply, serve};
use rps_session::http::client::ClientError;
use rps_session::http::profile::ExchangeOnline;
use rps_session::http::{
    Credentials, HttpClient, HttpRequest, RedirectError, RedirectPolicy, Transport, TransportConfig,
};
use rps_session::token::{AccessToken, Caching, StaticToken, TokenFuture, TokenProvider};

const TENANT: &str = "00000000-1111-2222-3333-444444444444";
const EXPECTED_AUTH: &str = "Basic T0F1dGhVc2VyQDAwMDAwMDAwLTExMTEtMjIyMi0zMzMzLTQ0NDQ0NDQ0NDQ0NDpCZWFyZXIgZmFrZS5hY2Nlc3MudG9rZW4=";

fn client(creds: Option<Credentials>) -> HttpClient {
    HttpClient::new(Transport::new(TransportConfig::default()).unwrap(), creds)
        .allow_insecure_http(true)
}

fn exo_creds() -> Credentials {
    Credentials::app_only(TENANT, Arc::new(StaticToken::new("fake.access.token")))
}

#[tokio::test]
async fn oauth_basic_header_reaches_the_server_exactly() {
    let server = serve(|_, _| Reply::ok("<ok/>")).await;
    let endpoint = ExchangeOnline::app_only(TENANT)
        .base_url(server.http("/"))
        .endpoint()
        .unwrap();
    let mut c = client(Some(exo_creds()));
    let resp = c
        .send(HttpRequest::winrm(endpoint.url, "<create/>"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), Some(EXPECTED_AUTH));
    assert_eq!(r.uri, "/PowerShell-LiveId?BasicAuthToOAuthConversion=true");
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("rps/", env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test]
async fn plain_http_basic_is_refused_unless_opted_in() {
    let server = serve(|_, _| Reply::ok("")).await;
    let transport = Transport::new(TransportConfig::default()).unwrap();
    let mut strict = HttpClient::new(transport, Some(Credentials::basic("admin", "pw-secret-1")));
    let err = strict
        .send(HttpRequest::winrm(server.http("/wsman"), "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Insecure(_)), "{err:?}");
    assert!(!err.to_string().contains("pw-secret-1"));
    assert_eq!(server.requests().len(), 0, "nothing may be sent");

    let mut lax = client(Some(Credentials::basic("admin", "pw-secret-1")));
    assert_eq!(
        lax.send(HttpRequest::winrm(server.http("/wsman"), "x"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic YWRtaW46cHctc2VjcmV0LTE=")
    );
}

#[tokio::test]
async fn redirect_is_followed_only_when_allowed_and_body_reposted() {
    let pod = serve(|_, _| Reply::ok("<created/>")).await;
    let pod_url = pod.http("/PowerShell-LiveId?BasicAuthToOAuthConversion=true&pod=1");
    let target = pod_url.to_string();
    let front = serve(move |_, _| Reply::status(302).header("Location", &target)).await;
    let start = front.http("/PowerShell-LiveId?BasicAuthToOAuthConversion=true");

    // Not allowed: a typed error and nothing sent to the pod.
    let mut c = client(Some(exo_creds()));
    let err = c
        .send_following(HttpRequest::winrm(start.clone(), "<create-body/>"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Redirect(RedirectError::NotAllowed { status: 302, .. })
        ),
        "{err:?}"
    );
    assert_eq!(pod.requests().len(), 0);
    // Plain send hands the 302 back.
    assert_eq!(
        c.send(HttpRequest::winrm(start.clone(), "x"))
            .await
            .unwrap()
            .status,
        302
    );

    // Allowed: the whole body goes to the pod with the credentials.
    let mut c = client(Some(exo_creds())).with_redirect_policy(RedirectPolicy::follow());
    let resp = c
        .send_following(HttpRequest::winrm(start, "<create-body/>"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.url, pod_url);
    let r = &pod.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.body, b"<create-body/>");
    assert_eq!(r.header("authorization"), Some(EXPECTED_AUTH));
    assert_eq!(
        r.header("content-type"),
        Some("application/soap+xml;charset=UTF-8")
    );
}

#[tokio::test]
async fn relative_redirect_resolves_against_current_url() {
    let server = serve(|r, _| {
        if r.path() == "/PowerShell-LiveId" {
            Reply::status(307).header("Location", "/pod42/PowerShell-LiveId?x=1")
        } else {
            Reply::ok(r.path().to_string())
        }
    })
    .await;
    let mut c = client(None).with_redirect_policy(RedirectPolicy::follow());
    let resp = c
        .send_following(HttpRequest::winrm(server.http("/PowerShell-LiveId"), "b"))
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"/pod42/PowerShell-LiveId");
    assert_eq!(server.requests()[1].uri, "/pod42/PowerShell-LiveId?x=1");
}

#[tokio::test]
async fn redirect_loop_is_capped_at_five_hops() {
    let server =
        serve(|_, i| Reply::status(302).header("Location", &format!("/hop/{}", i + 1))).await;
    let mut c = client(None).with_redirect_policy(RedirectPolicy::follow());
    let err = c
        .send_following(HttpRequest::winrm(server.http("/hop/0"), "loop"))
        .await
        .unwrap_err();
    match err {
        ClientError::Redirect(RedirectError::Limit { hosts }) => {
            assert_eq!(hosts.len(), 7, "{hosts:?}");
            assert!(hosts.iter().all(|h| h == &server.addr.to_string()));
        }
        other => panic!("{other:?}"),
    }
    // The original plus five followed hops.
    assert_eq!(server.requests().len(), 6);
    assert!(server.requests().iter().all(|r| r.body == b"loop"));
}

#[tokio::test]
async fn cookie_affinity_is_kept() {
    // First response sets MS-WSMAN with a lowercase path; later requests without it fail.
    let server = serve(|r, i| {
        let has = r
            .header("cookie")
            .is_some_and(|c| c.contains("MS-WSMAN=pod-7-affinity"));
        match (i, has) {
            (0, _) => Reply::ok("first").header(
                "Set-Cookie",
                "MS-WSMAN=pod-7-affinity; path=/powershell-liveid; HttpOnly",
            ),
            (_, true) => Reply::ok("again"),
            (_, false) => Reply::status(400).body("lost affinity"),
        }
    })
    .await;
    let url = server.http("/PowerShell-LiveId?BasicAuthToOAuthConversion=true");
    let mut c = client(Some(exo_creds()));
    for expected in ["first", "again", "again"] {
        let resp = c.send(HttpRequest::winrm(url.clone(), "x")).await.unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(&resp.body[..], expected.as_bytes());
    }
    let reqs = server.requests();
    assert_eq!(reqs[0].header("cookie"), None);
    assert_eq!(reqs[2].header("cookie"), Some("MS-WSMAN=pod-7-affinity"));
    assert_eq!(c.cookies().len(), 1);
    // Without the jar the server refuses.
    let mut fresh = client(Some(exo_creds()));
    assert_eq!(
        fresh
            .send(HttpRequest::winrm(url, "x"))
            .await
            .unwrap()
            .status,
        400
    );
}

/// Hands out tok-1, tok-2, ... and counts calls.
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
    use base64::Engine as _;
    let raw = format!("OAuthUser@{TENANT}:Bearer {token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[tokio::test]
async fn unauthorized_invalidates_and_retries_once() {
    let good = auth_for("tok-2");
    let server = serve(move |r, _| {
        if r.header("authorization") == Some(good.as_str()) {
            Reply::ok("welcome")
        } else {
            Reply::status(401)
        }
    })
    .await;
    let provider = Arc::new(Caching::new(Counting::default()));
    let mut c = client(Some(Credentials::app_only(TENANT, provider.clone())));
    let resp = c
        .send(HttpRequest::winrm(server.http("/"), "x"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(provider.inner().calls.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests().len(), 2);
    // The refreshed token is cached: no new fetch.
    assert_eq!(
        c.send(HttpRequest::winrm(server.http("/"), "x"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(provider.inner().calls.load(Ordering::SeqCst), 2);

    // A server that always says 401 gets exactly one retry.
    let deny = serve(|_, _| Reply::status(401)).await;
    let provider = Arc::new(Caching::new(Counting::default()));
    let mut c = client(Some(Credentials::app_only(TENANT, provider.clone())));
    assert_eq!(
        c.send(HttpRequest::winrm(deny.http("/"), "x"))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(deny.requests().len(), 2);
    assert_eq!(provider.inner().calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn client_debug_has_no_secrets() {
    let server =
        serve(|_, _| Reply::ok("").header("Set-Cookie", "MS-WSMAN=very-private-cookie")).await;
    let mut c = client(Some(Credentials::basic("admin", "pw-very-secret")));
    c.send(HttpRequest::winrm(server.http("/"), "x"))
        .await
        .unwrap();
    let out = format!("{c:?}");
    assert!(out.contains("admin"));
    for needle in ["pw-very-secret", "very-private-cookie", "YWRtaW46"] {
        assert!(!out.contains(needle), "{needle} leaked: {out}");
    }
}

#[test]
fn client_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = client(None);
        let url = url::Url::parse("http://127.0.0.1:1/").unwrap();
        let fut = c.send(HttpRequest::winrm(url.clone(), ""));
        assert_send(&fut);
        drop(fut);
        let fut = c.send_following(HttpRequest::winrm(url, ""));
        assert_send(&fut);
    });
}
