//! The headline flow end to end on loopback: an app-only token from a mock authority,
//! carried as the Basic password to a front door that redirects to the tenant's pod,
//! which pins the session with the `MS-WSMAN` cookie.

mod http_support;

use std::sync::Arc;

use base64::Engine as _;
use http_support::{Reply, serve, serve_tls, test_cert};
use rps_session::http::profile::ExchangeOnline;
use rps_session::http::{HttpClient, HttpRequest, RedirectPolicy, Transport, TransportConfig};
use rps_session::token::{Caching, ClientSecret, OAuthConfig};
use serde_json::json;

const TENANT: &str = "00000000-1111-2222-3333-444444444444";

#[tokio::test]
async fn app_only_token_redirect_and_affinity() {
    let authority = serve(|r, i| {
        assert_eq!(r.form_value("scope").as_deref(), Some("https://outlook.office365.com/.default"));
        Reply::json(200, json!({"access_token": format!("fake-at-{}", i + 1), "expires_in": 3599, "token_type": "Bearer"}))
    })
    .await;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("OAuthUser@{TENANT}:Bearer fake-at-1"))
    );
    let cert = test_cert("exo-flow");
    let pod = serve_tls(
        move |r, i| {
            if r.header("authorization") != Some(expected.as_str()) {
                return Reply::status(401);
            }
            let pinned = r.header("cookie") == Some("MS-WSMAN=pod-3");
            match (i, pinned) {
                (0, _) => Reply::ok("<shell/>").header(
                    "Set-Cookie",
                    "MS-WSMAN=pod-3; path=/powershell-liveid; secure; HttpOnly",
                ),
                (_, true) => Reply::ok("<receive/>"),
                (_, false) => Reply::status(500).body("session not found"),
            }
        },
        cert.acceptor.clone(),
    )
    .await;
    let pod_base = pod.https("/");
    let front = serve_tls(
        move |r, _| {
            let mut to = pod_base.clone();
            let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
            to.set_path(path);
            to.set_query(Some(query));
            Reply::status(302).header("Location", to.as_str())
        },
        cert.acceptor.clone(),
    )
    .await;

    let profile = ExchangeOnline::app_only(TENANT)
        .delegated_org("fabrikam.onmicrosoft.com")
        .base_url(front.https("/"));
    let endpoint = profile.endpoint().unwrap();
    let oauth = OAuthConfig::new(TENANT, "app-id")
        .authority(authority.http("/"))
        .allow_insecure_http(true)
        .scope(profile.scope());
    let provider = Arc::new(Caching::new(ClientSecret::new(oauth, "fake-secret")));
    let transport =
        Transport::new(TransportConfig::default().extra_ca_file(&cert.pem_path)).unwrap();
    let mut client = HttpClient::new(transport, Some(profile.credentials(provider)))
        .with_redirect_policy(RedirectPolicy::follow());

    let created = client
        .send_following(HttpRequest::winrm(endpoint.url.clone(), "<create/>"))
        .await
        .unwrap();
    assert_eq!(created.status, 200);
    assert_eq!(created.url.port(), Some(pod.addr.port()));
    assert_eq!(
        created.url.query(),
        Some("BasicAuthToOAuthConversion=true&DelegatedOrg=fabrikam.onmicrosoft.com")
    );
    assert_eq!(created.url.scheme(), "https");

    // Later requests go to the pod with the cookie (matched despite the path's case).
    for _ in 0..3 {
        let resp = client
            .send(HttpRequest::winrm(created.url.clone(), "<receive/>"))
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(&resp.body[..], b"<receive/>");
    }
    let pod_requests = pod.requests();
    assert_eq!(pod_requests.len(), 4);
    assert_eq!(pod_requests[0].header("cookie"), None);
    assert!(
        pod_requests[1..]
            .iter()
            .all(|r| r.header("cookie") == Some("MS-WSMAN=pod-3"))
    );
    assert_eq!(
        pod.connection_count(),
        1,
        "one kept-alive tls connection to the pod"
    );
    assert_eq!(authority.requests().len(), 1, "the token is cached");
    assert_eq!(front.requests().len(), 1);
    assert_eq!(front.requests()[0].body, b"<create/>");
    assert_eq!(pod_requests[0].body, b"<create/>");
}
