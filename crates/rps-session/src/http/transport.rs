//! The network driver: HTTP/1.1 over TCP or TLS (rustls), optionally through an HTTP
//! `CONNECT` proxy, one kept-alive connection per host.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::{Headers, HttpRequest, HttpResponse, host_label, is_sensitive_header, loggable_url};

/// A failure to exchange a request with a peer. Messages name the host, never
/// credentials, cookies or bodies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The request URL cannot be used (scheme, host).
    #[error("invalid request url {url}: {reason}")]
    InvalidUrl {
        /// The URL, without user info or query values.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The TCP connection failed.
    #[error("connect to {host} failed: {source}")]
    Connect {
        /// The peer.
        host: String,
        /// The cause.
        source: io::Error,
    },
    /// Connecting (TCP, proxy tunnel and TLS) took longer than the connect timeout.
    #[error("connect to {host} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The peer.
        host: String,
        /// The limit.
        timeout: Duration,
    },
    /// The TLS handshake failed (certificate rejected, protocol error).
    #[error("tls handshake with {host} failed: {source}")]
    Tls {
        /// The peer.
        host: String,
        /// The cause.
        source: io::Error,
    },
    /// The TLS configuration could not be built (bad CA file, no roots).
    #[error("tls configuration: {reason}")]
    TlsConfig {
        /// What went wrong.
        reason: String,
    },
    /// The proxy could not be used.
    #[error("proxy {proxy} failed tunnelling to {host}: {reason}")]
    Proxy {
        /// The proxy host.
        proxy: String,
        /// The target host.
        host: String,
        /// What went wrong (status line or I/O error).
        reason: String,
    },
    /// The proxy setting itself is unusable (e.g. an invalid `HTTPS_PROXY`).
    #[error("invalid proxy setting: {reason}")]
    ProxyConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The request (sending and reading the whole response) took longer than allowed.
    #[error("request to {host} timed out after {timeout:?}")]
    Timeout {
        /// The peer.
        host: String,
        /// The limit.
        timeout: Duration,
    },
    /// The response body exceeded the configured limit.
    #[error("response body from {host} exceeds {limit} bytes")]
    BodyTooLarge {
        /// The peer.
        host: String,
        /// The limit.
        limit: usize,
    },
    /// HTTP protocol failure (malformed response, connection reset mid-exchange).
    #[error("http exchange with {host} failed: {source}")]
    Http {
        /// The peer.
        host: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Which trust anchors verify server certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The Mozilla root program, compiled in (`webpki-roots`).
    #[default]
    WebPki,
    /// The operating system's store (`rustls-native-certs`).
    Native,
    /// Both.
    WebPkiAndNative,
    /// None: only [`TransportConfig::extra_ca_files`].
    None,
}

/// Proxy selection: an explicit proxy or the `HTTPS_PROXY`/`NO_PROXY` environment.
///
/// Every proxied connection is an HTTP `CONNECT` tunnel, for http and https targets
/// alike; credentials in the proxy URL's user info become `Proxy-Authorization: Basic`.
#[derive(Clone, Default)]
pub struct ProxyConfig {
    proxy: Option<Url>,
    no_proxy: Vec<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("proxy", &self.proxy.as_ref().map(loggable_url))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// Direct connections.
    pub fn none() -> Self {
        Self::default()
    }

    /// All connections through `proxy` (an `http://` URL).
    pub fn explicit(proxy: Url) -> Self {
        Self {
            proxy: Some(proxy),
            no_proxy: Vec::new(),
        }
    }

    /// Adds `NO_PROXY`-style exclusions: comma-separated host names or suffixes
    /// (`example.com` and `.example.com` both cover subdomains), `*` for every host.
    pub fn with_no_proxy(mut self, list: &str) -> Self {
        self.no_proxy
            .extend(list.split(',').map(no_proxy_host).filter(|s| !s.is_empty()));
        self
    }

    /// Reads `HTTPS_PROXY` (or `https_proxy`) and `NO_PROXY` (or `no_proxy`) through
    /// `get`, so callers and tests decide where the values come from. A proxy value
    /// without a scheme is taken as `http://`.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<Self, TransportError> {
        let pick = |a: &str, b: &str| get(a).or_else(|| get(b)).filter(|v| !v.trim().is_empty());
        let mut cfg = Self::none();
        if let Some(p) = pick("HTTPS_PROXY", "https_proxy") {
            let p = p.trim();
            let text = if p.contains("://") {
                p.to_string()
            } else {
                format!("http://{p}")
            };
            let url = Url::parse(&text).map_err(|_| TransportError::ProxyConfig {
                reason: "HTTPS_PROXY is not a valid url",
            })?;
            cfg.proxy = Some(url);
        }
        if let Some(n) = pick("NO_PROXY", "no_proxy") {
            cfg = cfg.with_no_proxy(&n);
        }
        Ok(cfg)
    }

    /// [`ProxyConfig::from_env_with`] over the process environment.
    pub fn from_env() -> Result<Self, TransportError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// The proxy to use for `url`, if any.
    pub fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = self.proxy.as_ref()?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let excluded = self.no_proxy.iter().any(|n| {
            n == "*"
                || host == *n
                || (host.ends_with(n.as_str()) && host[..host.len() - n.len()].ends_with('.'))
        });
        if excluded { None } else { Some(proxy) }
    }
}

/// One `NO_PROXY` entry reduced to a host or suffix: `*.` / `.` prefixes, ports and IPv6
/// brackets dropped, lowercased.
fn no_proxy_host(entry: &str) -> String {
    let e = entry
        .trim()
        .trim_start_matches("*.")
        .trim_start_matches('.');
    let host = if let Some(rest) = e.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if e.matches(':').count() == 1 {
        e.split(':').next().unwrap_or("")
    } else {
        e
    };
    host.to_ascii_lowercase()
}

/// Settings for a [`Transport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Trust anchors for server certificates.
    pub roots: TlsRoots,
    /// Extra PEM files of CA certificates to trust (a private CA, a test server).
    pub extra_ca_files: Vec<PathBuf>,
    /// Skip certificate verification entirely. Only for labs; never the default.
    pub danger_accept_invalid_certs: bool,
    /// Proxy selection.
    pub proxy: ProxyConfig,
    /// Limit for TCP connect, proxy tunnel and TLS handshake together.
    pub connect_timeout: Duration,
    /// Limit for one whole exchange: connecting when needed, sending the request and
    /// reading the complete response.
    pub request_timeout: Duration,
    /// The largest response body accepted.
    pub max_response_body: usize,
}

impl Default for TransportConfig {
    /// webpki roots, no proxy, 30 s connect, 180 s request, 64 MiB bodies.
    fn default() -> Self {
        Self {
            roots: TlsRoots::WebPki,
            extra_ca_files: Vec::new(),
            danger_accept_invalid_certs: false,
            proxy: ProxyConfig::none(),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(180),
            max_response_body: 64 * 1024 * 1024,
        }
    }
}

impl TransportConfig {
    /// Sets the trust anchors.
    pub fn roots(mut self, roots: TlsRoots) -> Self {
        self.roots = roots;
        self
    }

    /// Also trusts the CA certificates in a PEM file.
    pub fn extra_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_ca_files.push(path.into());
        self
    }

    /// Turns certificate verification off. Dangerous: anyone on the path can read the
    /// credentials.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.danger_accept_invalid_certs = yes;
        self
    }

    /// Sets the proxy selection.
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets the per-request timeout.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the response body limit.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnKey {
    https: bool,
    host: String,
    port: u16,
}

/// Sends [`HttpRequest`]s, keeping one HTTP/1.1 connection alive per host.
pub struct Transport {
    config: TransportConfig,
    tls: TlsConnector,
    conns: HashMap<ConnKey, SendRequest<Full<Bytes>>>,
    opened: u64,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("config", &self.config)
            .field("open_connections", &self.conns.len())
            .field("connections_opened", &self.opened)
            .finish()
    }
}

impl Transport {
    /// Builds the TLS configuration and an empty connection pool.
    pub fn new(config: TransportConfig) -> Result<Self, TransportError> {
        let tls = TlsConnector::from(Arc::new(build_tls(&config)?));
        Ok(Self {
            config,
            tls,
            conns: HashMap::new(),
            opened: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// How many connections this transport has opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.opened
    }

    /// Sends one request and reads the whole response. A kept-alive connection that the
    /// server closed in the meantime is replaced transparently (once): when it is found
    /// closed before sending, or when a reused connection ends without a single response
    /// byte (the idle-close race; the request is then sent again on a new connection).
    pub async fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let key = conn_key(&req.url)?;
        let host = host_label(&req.url);
        tracing::debug!(method = %req.method, url = %loggable_url(&req.url), body_len = req.body.len(), "http request");
        let timeout = self.config.request_timeout;
        let res = tokio::time::timeout(timeout, self.send_inner(&key, req)).await;
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                self.conns.remove(&key);
                return Err(TransportError::Timeout { host, timeout });
            }
        };
        match &res {
            Ok(r) => {
                tracing::debug!(status = r.status, body_len = r.body.len(), host = %host, "http response")
            }
            Err(e) => {
                self.conns.remove(&key);
                tracing::debug!(error = %e, "http request failed");
            }
        }
        res
    }

    async fn send_inner(
        &mut self,
        key: &ConnKey,
        req: &HttpRequest,
    ) -> Result<HttpResponse, TransportError> {
        let host = host_label(&req.url);
        let mut reused = false;
        if let Some(sender) = self.conns.get_mut(key) {
            if !sender.is_closed() && sender.ready().await.is_ok() {
                reused = true;
            } else {
                self.conns.remove(key);
            }
        }
        if !reused {
            let sender = self.connect(key, &req.url).await?;
            self.conns.insert(key.clone(), sender);
        }
        match self.exchange(key, req).await {
            Err(Retry::Stale) if reused && req.reconnect_stale => {
                tracing::debug!(host = %host, "kept-alive connection was closed; reconnecting");
                self.conns.remove(key);
                let sender = self.connect(key, &req.url).await?;
                self.conns.insert(key.clone(), sender);
                self.exchange(key, req)
                    .await
                    .map_err(|e| e.into_error(&host))
            }
            other => other.map_err(|e| e.into_error(&host)),
        }
    }

    async fn exchange(&mut self, key: &ConnKey, req: &HttpRequest) -> Result<HttpResponse, Retry> {
        let host = host_label(&req.url);
        let sender = self.conns.get_mut(key).ok_or(Retry::Stale)?;
        let hreq = to_hyper(req, &host).map_err(Retry::Fatal)?;
        let resp = match sender.send_request(hreq).await {
            Ok(r) => r,
            Err(e) if e.is_canceled() || e.is_closed() || e.is_incomplete_message() => {
                return Err(Retry::Stale);
            }
            Err(e) => {
                return Err(Retry::Fatal(TransportError::Http {
                    host,
                    source: Box::new(e),
                }));
            }
        };
        let (parts, body) = resp.into_parts();
        let limit = self.config.max_response_body;
        let too_large = || TransportError::BodyTooLarge {
            host: host.clone(),
            limit,
        };
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit as u64
        {
            return Err(Retry::Fatal(too_large()));
        }
        let body = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Retry::Fatal(too_large()));
            }
            Err(e) => return Err(Retry::Fatal(TransportError::Http { host, source: e })),
        };
        let mut headers = Headers::new();
        for (name, value) in &parts.headers {
            headers.append(
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
        if headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conns.remove(key);
        }
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers,
            body,
            url: req.url.clone(),
        })
    }

    async fn connect(
        &mut self,
        key: &ConnKey,
        url: &Url,
    ) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let host = host_label(url);
        let timeout = self.config.connect_timeout;
        let stream = tokio::time::timeout(timeout, self.open_stream(key, url))
            .await
            .map_err(|_| TransportError::ConnectTimeout {
                host: host.clone(),
                timeout,
            })??;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Http {
                host: host.clone(),
                source: Box::new(e),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended");
            }
        });
        self.opened += 1;
        tracing::debug!(host = %host, "connection opened");
        Ok(sender)
    }

    async fn open_stream(&self, key: &ConnKey, url: &Url) -> Result<MaybeTls, TransportError> {
        let host = host_label(url);
        let tcp = match self.config.proxy.proxy_for(url) {
            Some(proxy) => tunnel(proxy, key, &host).await?,
            None => {
                let tcp = tcp_connect(&key.host, key.port).await.map_err(|source| {
                    TransportError::Connect {
                        host: host.clone(),
                        source,
                    }
                })?;
                let _ = tcp.set_nodelay(true);
                tcp
            }
        };
        if !key.https {
            return Ok(MaybeTls::Plain(tcp));
        }
        let name = server_name(&key.host).ok_or_else(|| TransportError::InvalidUrl {
            url: loggable_url(url),
            reason: "host is not a valid tls server name",
        })?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| TransportError::Tls { host, source })?;
        Ok(MaybeTls::Tls(Box::new(tls)))
    }
}

enum Retry {
    Stale,
    Fatal(TransportError),
}

impl Retry {
    fn into_error(self, host: &str) -> TransportError {
        match self {
            Retry::Fatal(e) => e,
            Retry::Stale => TransportError::Http {
                host: host.to_string(),
                source: "connection closed before the response".into(),
            },
        }
    }
}

fn conn_key(url: &Url) -> Result<ConnKey, TransportError> {
    let invalid = |reason| TransportError::InvalidUrl {
        url: loggable_url(url),
        reason,
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(invalid("scheme must be http or https")),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(invalid("no host")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("no port"))?;
    Ok(ConnKey { https, host, port })
}

async fn tcp_connect(host: &str, port: u16) -> io::Result<TcpStream> {
    match host.parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    }
}

fn server_name(host: &str) -> Option<ServerName<'static>> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string()).ok(),
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens a `CONNECT` tunnel through `proxy` to the target.
async fn tunnel(proxy: &Url, key: &ConnKey, host: &str) -> Result<TcpStream, TransportError> {
    let proxy_label = host_label(proxy);
    let fail = |reason: String| TransportError::Proxy {
        proxy: proxy_label.clone(),
        host: host.to_string(),
        reason,
    };
    let pkey = conn_key(proxy).map_err(|_| fail(String::from("invalid proxy url")))?;
    if pkey.https {
        return Err(fail(String::from("https proxies are not supported")));
    }
    let mut tcp = tcp_connect(&pkey.host, pkey.port)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let target = authority(&key.host, key.port);
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_decode(proxy.username());
        let pass = percent_decode(proxy.password().unwrap_or(""));
        let token = STANDARD.encode(format!("{user}:{pass}"));
        head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| fail(format!("write: {e}")))?;
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 8192 {
            return Err(fail(String::from("response head too long")));
        }
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| fail(format!("read: {e}")))?;
        if n == 0 {
            return Err(fail(String::from("closed before answering")));
        }
        buf.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&buf);
    let status_line = status_line.lines().next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(s) if (200..300).contains(&s) => Ok(tcp),
        Some(s) => Err(fail(format!("status {s}"))),
        None => Err(fail(String::from("malformed response"))),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn to_hyper(req: &HttpRequest, host: &str) -> Result<http::Request<Full<Bytes>>, TransportError> {
    let invalid = |reason| TransportError::InvalidUrl {
        url: loggable_url(&req.url),
        reason,
    };
    let mut target = req.url.path().to_string();
    if let Some(q) = req.url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(target)
        .header(http::header::HOST, host);
    for (name, value) in req.headers.iter() {
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder.body(Full::new(req.body.clone())).map_err(|_| {
        // Which header failed is logged by name only; values may be secrets.
        for (name, value) in req.headers.iter() {
            if http::HeaderValue::from_str(value).is_err()
                || http::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                let shown = if is_sensitive_header(name) {
                    "<redacted>"
                } else {
                    value
                };
                tracing::debug!(header = name, value = shown, "invalid header");
            }
        }
        invalid("request has an invalid header or target")
    })
}

fn build_tls(config: &TransportConfig) -> Result<ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::TlsConfig {
            reason: e.to_string(),
        })?;
    let mut cfg = if config.danger_accept_invalid_certs {
        tracing::warn!("tls certificate verification is disabled");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if matches!(config.roots, TlsRoots::WebPki | TlsRoots::WebPkiAndNative) {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if matches!(config.roots, TlsRoots::Native | TlsRoots::WebPkiAndNative) {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "native root store error");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "native roots loaded");
        }
        for path in &config.extra_ca_files {
            let certs = load_pem_certs(path)?;
            for cert in certs {
                roots.add(cert).map_err(|e| TransportError::TlsConfig {
                    reason: format!("bad ca certificate in {}: {e}", path.display()),
                })?;
            }
        }
        if roots.is_empty() {
            return Err(TransportError::TlsConfig {
                reason: String::from("no trusted root certificates"),
            });
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Reads every `CERTIFICATE` block of a PEM file.
pub fn load_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: &dyn fmt::Display| TransportError::TlsConfig {
        reason: format!("cannot read ca file {}: {e}", path.display()),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no certificates"));
    }
    Ok(certs)
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
