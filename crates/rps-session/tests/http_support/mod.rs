//! Loopback servers for the HTTP, transport and token tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub conn: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok("")
        }
    }

    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Self::status(status)
            .header("Content-Type", "application/json")
            .body(value.to_string())
    }

    pub fn header(mut self, n: &str, v: &str) -> Self {
        self.headers.push((n.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

pub type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

/// A running loopback server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, scheme: &str, path: &str) -> url::Url {
        url::Url::parse(&format!("{scheme}://{}{path}", self.addr)).unwrap()
    }

    pub fn http(&self, path: &str) -> url::Url {
        self.url("http", path)
    }

    pub fn https(&self, path: &str) -> url::Url {
        self.url("https", path)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` (which gets the request and its index) over plain HTTP/1.1.
pub async fn serve(
    handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
) -> TestServer {
    serve_inner(Arc::new(handler), None).await
}

/// Same over TLS with the given acceptor.
pub async fn serve_tls(
    handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    acceptor: tokio_rustls::TlsAcceptor,
) -> TestServer {
    serve_inner(Arc::new(handler), Some(acceptor)).await
}

async fn serve_inner(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (connections.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let conn_id = c.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let requests = r.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let handler = handler.clone();
                    let requests = requests.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| {
                                    (
                                        n.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect(),
                            body,
                            conn: conn_id,
                        };
                        let index = {
                            let mut g = requests.lock().unwrap();
                            g.push(rec.clone());
                            g.len() - 1
                        };
                        let reply = handler(&rec, index);
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        let mut resp = hyper::Response::builder().status(reply.status);
                        for (n, v) in &reply.headers {
                            resp = resp.header(n, v);
                        }
                        Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
                    }
                });
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        connections,
        requests,
        task,
    }
}

/// A self-signed certificate for 127.0.0.1 / localhost, its PEM written to a temp file.
pub struct TestCert {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub pem_path: PathBuf,
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_path);
    }
}

pub fn test_cert(tag: &str) -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_der = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .unwrap();
    let pem_path =
        std::env::temp_dir().join(format!("rps-test-ca-{}-{tag}.pem", std::process::id()));
    std::fs::write(&pem_path, ck.cert.pem()).unwrap();
    TestCert {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        pem_path,
    }
}

/// A tiny HTTP CONNECT proxy; records each tunnel target.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
    pub auth: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn proxy() -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let targets = Arc::new(Mutex::new(Vec::new()));
    let auth = Arc::new(Mutex::new(Vec::new()));
    let (t, a) = (targets.clone(), auth.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let (t, a) = (t.clone(), a.clone());
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                let mut lines = head.lines();
                let first = lines.next().unwrap_or("").to_string();
                let proxy_auth = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case("proxy-authorization"))
                    .map(|(_, v)| v.trim().to_string());
                let mut parts = first.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or("").to_string(),
                );
                t.lock().unwrap().push(target.clone());
                a.lock().unwrap().push(proxy_auth);
                if method != "CONNECT" {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    TestProxy {
        addr,
        targets,
        auth,
        task,
    }
}

pub async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A listener that accepts connections and never says a word.
pub async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}
