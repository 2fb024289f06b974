//! The hyper/rustls transport against loopback servers: TLS trust, proxy tunnelling,
//! timeouts, keep-alive and body limits.

mod http_support;

use std::collections::HashMap;
use std::time::Duration;

use http_support::{Reply, proxy, serve, serve_tls, silent_listener, test_cert};
use rps_session::http::{
    HttpRequest, Method, ProxyConfig, TlsRoots, Transport, TransportConfig, TransportError,
};
use tokio::io::AsyncWriteExt;
use url::Url;

fn transport(cfg: TransportConfig) -> Transport {
    Transport::new(cfg).unwrap()
}

#[tokio::test]
async fn self_signed_server_is_rejected_by_default() {
    let cert = test_cert("default");
    let server = serve_tls(|_, _| Reply::ok("hello"), cert.acceptor.clone()).await;
    let mut t = transport(TransportConfig::default());
    let err = t
        .send(&HttpRequest::winrm(server.https("/wsman"), "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn self_signed_server_is_accepted_with_its_ca_file() {
    let cert = test_cert("ca");
    let server = serve_tls(|_, _| Reply::ok("hello"), cert.acceptor.clone()).await;
    let mut t = transport(TransportConfig::default().extra_ca_file(&cert.pem_path));
    let resp = t
        .send(&HttpRequest::winrm(server.https("/wsman"), "x"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"hello");
    // The CA file alone (no public roots) works too.
    let mut t = transport(
        TransportConfig::default()
            .roots(TlsRoots::None)
            .extra_ca_file(&cert.pem_path),
    );
    assert_eq!(
        t.send(&HttpRequest::new(Method::Get, server.https("/")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn self_signed_server_is_accepted_with_danger_opt_in() {
    let cert = test_cert("danger");
    let server = serve_tls(|_, _| Reply::ok("hello"), cert.acceptor.clone()).await;
    let mut t = transport(TransportConfig::default().danger_accept_invalid_certs(true));
    let resp = t
        .send(&HttpRequest::winrm(server.https("/wsman"), "x"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn bad_ca_file_is_a_config_error() {
    let err = Transport::new(TransportConfig::default().extra_ca_file("/nonexistent/ca.pem"))
        .unwrap_err();
    assert!(matches!(err, TransportError::TlsConfig { .. }), "{err:?}");
    let err = Transport::new(TransportConfig::default().roots(TlsRoots::None)).unwrap_err();
    assert!(matches!(err, TransportError::TlsConfig { .. }), "{err:?}");
}

#[tokio::test]
async fn request_is_sent_as_given() {
    let server = serve(|_, _| Reply::ok("<r/>").header("X-Test", "1")).await;
    let mut t = transport(TransportConfig::default());
    let url = server.http("/PowerShell-LiveId?BasicAuthToOAuthConversion=true&email=a%40b.c");
    let resp = t
        .send(&HttpRequest::winrm(url.clone(), "<envelope/>"))
        .await
        .unwrap();
    assert_eq!(resp.headers.get("x-test"), Some("1"));
    assert_eq!(resp.url, url);
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.uri,
        "/PowerShell-LiveId?BasicAuthToOAuthConversion=true&email=a%40b.c"
    );
    assert_eq!(r.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(
        r.header("content-type"),
        Some("application/soap+xml;charset=UTF-8")
    );
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.body, b"<envelope/>");
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = serve(|_, i| Reply::ok(format!("r{i}"))).await;
    let mut t = transport(TransportConfig::default());
    for i in 0..4 {
        let resp = t
            .send(&HttpRequest::winrm(server.http("/wsman"), "x"))
            .await
            .unwrap();
        assert_eq!(resp.body, format!("r{i}").as_bytes());
    }
    assert_eq!(server.connection_count(), 1);
    assert_eq!(t.connections_opened(), 1);
    assert!(server.requests().iter().all(|r| r.conn == 0));
}

#[tokio::test]
async fn reconnects_when_server_closed_idle_connection() {
    const PAUSE_MS: u64 = 20;
    // A raw server that answers one request per connection, then hangs up without
    // announcing it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acc = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let head = http_support::read_head(&mut s).await;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut body)
                .await
                .unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            s.flush().await.unwrap();
            drop(s);
        }
    });
    let url = Url::parse(&format!("http://{addr}/wsman")).unwrap();
    let mut t = transport(TransportConfig::default());
    for _ in 0..3 {
        let resp = t
            .send(&HttpRequest::winrm(url.clone(), "abc"))
            .await
            .unwrap();
        assert_eq!(&resp.body[..], b"ok");
        tokio::time::sleep(Duration::from_millis(PAUSE_MS)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    task.abort();
}

#[tokio::test]
async fn connection_close_header_is_honoured() {
    let server = serve(|_, _| Reply::ok("bye").header("Connection", "close")).await;
    let mut t = transport(TransportConfig::default());
    for _ in 0..2 {
        assert_eq!(
            t.send(&HttpRequest::winrm(server.http("/"), "x"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(server.connection_count(), 2);
}

#[tokio::test]
async fn request_timeout_fires() {
    let server = serve(|_, _| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let mut t = transport(TransportConfig::default().request_timeout(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    let err = t
        .send(&HttpRequest::winrm(server.http("/"), "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn connect_timeout_fires_when_handshake_stalls() {
    let (addr, task) = silent_listener().await;
    let mut t = transport(TransportConfig::default().connect_timeout(Duration::from_millis(200)));
    let url = Url::parse(&format!("https://{addr}/wsman")).unwrap();
    let started = std::time::Instant::now();
    let err = t.send(&HttpRequest::winrm(url, "x")).await.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectTimeout { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    task.abort();
}

#[tokio::test]
async fn connect_refused_is_typed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut t = transport(TransportConfig::default());
    let err = t
        .send(&HttpRequest::winrm(
            Url::parse(&format!("http://{addr}/")).unwrap(),
            "x",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn response_body_is_bounded() {
    let server = serve(|r, _| {
        if r.path() == "/big" {
            Reply::ok(vec![b'a'; 100_000])
        } else {
            Reply::ok(vec![b'a'; 500])
        }
    })
    .await;
    let mut t = transport(TransportConfig::default().max_response_body(1000));
    let err = t
        .send(&HttpRequest::winrm(server.http("/big"), "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::BodyTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert_eq!(
        t.send(&HttpRequest::winrm(server.http("/small"), "x"))
            .await
            .unwrap()
            .body
            .len(),
        500
    );
}

#[tokio::test]
async fn https_through_connect_proxy() {
    let cert = test_cert("proxy");
    let server = serve_tls(|_, _| Reply::ok("via proxy"), cert.acceptor.clone()).await;
    let p = proxy().await;
    let proxy_url = Url::parse(&format!("http://user:p%40ss@{}", p.addr)).unwrap();
    let mut t = transport(
        TransportConfig::default()
            .extra_ca_file(&cert.pem_path)
            .proxy(ProxyConfig::explicit(proxy_url)),
    );
    for _ in 0..2 {
        let resp = t
            .send(&HttpRequest::winrm(server.https("/wsman"), "x"))
            .await
            .unwrap();
        assert_eq!(&resp.body[..], b"via proxy");
    }
    // One tunnel, kept alive.
    assert_eq!(*p.targets.lock().unwrap(), vec![server.addr.to_string()]);
    // "user:p@ss"
    assert_eq!(
        p.auth.lock().unwrap()[0].as_deref(),
        Some("Basic dXNlcjpwQHNz")
    );
}

#[tokio::test]
async fn proxy_from_injected_environment_and_no_proxy() {
    let server = serve(|_, _| Reply::ok("ok")).await;
    let p = proxy().await;
    let env: HashMap<&str, String> = HashMap::from([("https_proxy", p.addr.to_string())]);
    let cfg = ProxyConfig::from_env_with(|k| env.get(k).cloned()).unwrap();
    assert!(format!("{cfg:?}").contains("127.0.0.1"));
    let mut t = transport(TransportConfig::default().proxy(cfg));
    assert_eq!(
        t.send(&HttpRequest::winrm(server.http("/"), "x"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(p.targets.lock().unwrap().len(), 1);

    let env: HashMap<&str, String> = HashMap::from([
        ("HTTPS_PROXY", format!("http://{}", p.addr)),
        ("NO_PROXY", "example.com, 127.0.0.1".to_string()),
    ]);
    let cfg = ProxyConfig::from_env_with(|k| env.get(k).cloned()).unwrap();
    assert!(
        cfg.proxy_for(&Url::parse("https://a.example.com/").unwrap())
            .is_none()
    );
    assert!(
        cfg.proxy_for(&Url::parse("https://example.com/").unwrap())
            .is_none()
    );
    assert!(
        cfg.proxy_for(&Url::parse("https://notexample.com/").unwrap())
            .is_some()
    );
    let mut t = transport(TransportConfig::default().proxy(cfg));
    assert_eq!(
        t.send(&HttpRequest::winrm(server.http("/"), "x"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        p.targets.lock().unwrap().len(),
        1,
        "NO_PROXY host went through the proxy"
    );

    let bad: HashMap<&str, String> = HashMap::from([("HTTPS_PROXY", "http://[::1".to_string())]);
    let err = ProxyConfig::from_env_with(|k| bad.get(k).cloned()).unwrap_err();
    assert!(matches!(err, TransportError::ProxyConfig { .. }), "{err:?}");

    let empty: HashMap<&str, String> = HashMap::new();
    let cfg = ProxyConfig::from_env_with(|k| empty.get(k).cloned()).unwrap();
    assert!(cfg.proxy_for(&server.http("/")).is_none());
}

#[tokio::test]
async fn proxy_refusal_is_typed() {
    // The test proxy answers 405 to anything but CONNECT; point it at a dead port for 502.
    let p = proxy().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut t = transport(TransportConfig::default().proxy(ProxyConfig::explicit(
        Url::parse(&format!("http://{}", p.addr)).unwrap(),
    )));
    let err = t
        .send(&HttpRequest::winrm(
            Url::parse(&format!("http://{dead_addr}/")).unwrap(),
            "x",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Proxy { .. }), "{err:?}");
    assert!(err.to_string().contains("502"), "{err}");
}

#[tokio::test]
async fn invalid_urls_are_typed() {
    let mut t = transport(TransportConfig::default());
    let err = t
        .send(&HttpRequest::new(
            Method::Post,
            Url::parse("ftp://h/x").unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn chunked_body_without_length_is_bounded_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = http_support::read_head(&mut s).await;
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..20 {
                out.extend_from_slice(b"100\r\n");
                out.extend_from_slice(&[b'z'; 256]);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = s.write_all(&out).await;
        }
    });
    let url = Url::parse(&format!("http://{addr}/")).unwrap();
    let mut t = transport(TransportConfig::default().max_response_body(4096));
    let err = t
        .send(&HttpRequest::new(Method::Get, url.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::BodyTooLarge { limit: 4096, .. }),
        "{err:?}"
    );
    let mut t = transport(TransportConfig::default().max_response_body(5120));
    assert_eq!(
        t.send(&HttpRequest::new(Method::Get, url))
            .await
            .unwrap()
            .body
            .len(),
        5120
    );
    task.abort();
}

#[test]
fn defaults_verify_and_root_choices_build() {
    let cfg = TransportConfig::default();
    assert!(!cfg.danger_accept_invalid_certs);
    assert_eq!(cfg.roots, TlsRoots::WebPki);
    assert!(Transport::new(TransportConfig::default().roots(TlsRoots::WebPkiAndNative)).is_ok());
}

#[test]
fn proxy_credentials_stay_out_of_debug() {
    let proxy = Url::parse("http://proxyuser:proxy-pass-123@proxy.corp:3128").unwrap();
    let t = transport(TransportConfig::default().proxy(ProxyConfig::explicit(proxy)));
    let shown = format!("{t:?} {:?}", t.config());
    assert!(shown.contains("proxy.corp"), "{shown}");
    assert!(
        !shown.contains("proxy-pass-123") && !shown.contains("proxyuser"),
        "{shown}"
    );
}
