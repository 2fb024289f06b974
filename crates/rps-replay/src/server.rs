//! A small loopback HTTP/1.1 server (tokio + hyper 1) for fakes and replayers.
//!
//! A [`Server`] accepts connections on one address and hands every request, with its body
//! read in full (up to [`ServerConfig::max_body`] bytes), to a handler: any
//! `Fn(Request) -> impl Future<Output = Response>`. Connections are kept alive between
//! requests; [`Server::shutdown`] stops accepting, lets in-flight requests finish (up to
//! [`ServerConfig::shutdown_grace`]) and closes every connection.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use rps_replay::server::{Response, Server};
//!
//! let server = Server::bind("127.0.0.1:0", |req| async move {
//!     Response::text(200, format!("you asked for {}", req.path()))
//! })
//! .await?;
//! println!("listening on {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method (`POST`, `GET`, ...).
    pub method: String,
    /// The request target: path and query, as sent.
    pub uri: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
    /// The peer's address.
    pub remote: SocketAddr,
}

impl Request {
    /// The path part of [`Request::uri`].
    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    /// The query part of [`Request::uri`], without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers to send (`Content-Length` is added by the server).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Close the connection without answering (simulates a dropped connection).
    pub drop_connection: bool,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            drop_connection: false,
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// No response at all: the connection is closed mid-request.
    pub fn dropped() -> Self {
        Response {
            drop_connection: true,
            ..Response::new(500)
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Server settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest request body accepted; bigger bodies get `413`.
    pub max_body: usize,
    /// How long [`Server::shutdown`] waits for in-flight requests before closing.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: 8 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Counters, from [`Server::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted so far.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Requests handled so far (answered or dropped).
    pub requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
}

type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send>>;
type DynHandler = Arc<dyn Fn(Request) -> BoxFuture + Send + Sync>;

/// A running server; see the [module docs](self).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The handler returned an error so hyper closes the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct Dropped;

impl Server {
    /// Binds `addr` (use port 0 for any free port) and serves with `handler` and the
    /// default [`ServerConfig`].
    pub async fn bind<A, H, F>(addr: A, handler: H) -> std::io::Result<Server>
    where
        A: ToSocketAddrs,
        H: Fn(Request) -> F + Send + Sync + 'static,
        F: Future<Output = Response> + Send + 'static,
    {
        Server::bind_with(addr, ServerConfig::default(), handler).await
    }

    /// Binds `addr` and serves with `handler` and `config`.
    pub async fn bind_with<A, H, F>(
        addr: A,
        config: ServerConfig,
        handler: H,
    ) -> std::io::Result<Server>
    where
        A: ToSocketAddrs,
        H: Fn(Request) -> F + Send + Sync + 'static,
        F: Future<Output = Response> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let handler: DynHandler = Arc::new(move |req| Box::pin(handler(req)) as BoxFuture);
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            config,
            handler,
            counters.clone(),
            stop_rx,
        ));
        Ok(Server {
            addr,
            counters,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            open_connections: self.counters.open.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, and closes
    /// every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: ServerConfig,
    handler: DynHandler,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                counters.connections.fetch_add(1, Ordering::Relaxed);
                counters.open.fetch_add(1, Ordering::Relaxed);
                conns.spawn(serve_connection(
                    stream,
                    remote,
                    config,
                    handler.clone(),
                    counters.clone(),
                    stop.clone(),
                ));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drain)
        .await
        .is_err()
    {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    config: ServerConfig,
    handler: DynHandler,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    struct OpenGuard(Arc<Counters>);
    impl Drop for OpenGuard {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _guard = OpenGuard(counters.clone());
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let counters = counters.clone();
        async move {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let resp = match to_request(req, remote, config.max_body).await {
                Ok(req) => handler(req).await,
                Err(resp) => resp,
            };
            if resp.drop_connection {
                return Err(Dropped);
            }
            Ok::<_, Dropped>(to_hyper(resp))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn to_request(
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    max_body: usize,
) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Response::text(413, "request body too large")),
    };
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        uri,
        headers,
        body,
        remote,
    })
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(resp.body));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (n, v) in resp.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            headers.append(n, v);
        }
    }
    out
}
