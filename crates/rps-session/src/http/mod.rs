//! HTTP values, cookies, redirects, auth headers and the hyper transport.
//!
//! The sans-IO half ([`HttpRequest`], [`HttpResponse`], [`Headers`], [`auth`],
//! [`cookie`], [`redirect`], [`profile`]) holds plain values that the session machine
//! can build and inspect without any runtime. The driver half ([`transport`],
//! [`client`]) moves those values over TCP/TLS with tokio, hyper and rustls.

pub mod auth;
pub mod client;
pub mod cookie;
pub mod profile;
pub mod redirect;
pub mod transport;

use std::fmt;

use bytes::Bytes;
use url::Url;

pub use auth::{Credentials, Secret};
pub use client::{ClientError, HttpClient};
pub use cookie::CookieJar;
pub use profile::{Cloud, ConnectionProfile, Endpoint};
pub use redirect::{RedirectError, RedirectPolicy};
pub use transport::{ProxyConfig, TlsRoots, Transport, TransportConfig, TransportError};

/// The `Content-Type` WinRM expects on every WS-Management request.
pub const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// The `User-Agent` sent by default: `rps/<crate version>`.
pub const USER_AGENT: &str = concat!("rps/", env!("CARGO_PKG_VERSION"));

/// Header names whose values are credentials or session state and are never printed.
const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Whether a header's value must be hidden from `Debug` output and logs.
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// An HTTP method. WinRM only needs `POST`; `GET` serves the token endpoints' peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
}

impl Method {
    /// The method's token as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered, case-insensitive multimap of header names to values.
///
/// `Debug` hides the values of `Authorization`, `Proxy-Authorization`, `Cookie` and
/// `Set-Cookie`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty header map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value of `name` with `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.entries.push((name, value.into()));
    }

    /// Adds a value for `name`, keeping existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Whether `name` has at least one value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All `(name, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (n, v) in &self.entries {
            if is_sensitive_header(n) {
                m.entry(n, &"<redacted>");
            } else {
                m.entry(n, v);
            }
        }
        m.finish()
    }
}

/// An HTTP request as plain data: what the session machine hands to the driver.
#[derive(Clone)]
pub struct HttpRequest {
    /// The request method.
    pub method: Method,
    /// The absolute target URL.
    pub url: Url,
    /// Request headers; `Host` and `Content-Length` are added by the transport.
    pub headers: Headers,
    /// The request body (re-sent whole when a redirect is followed).
    pub body: Bytes,
    /// Send the request again on a new connection when a kept-alive one turns out closed
    /// without answering (the idle-close race). Off for probes that must not open a new
    /// connection to a server that went away, such as a shell-state query.
    pub reconnect_stale: bool,
}

impl HttpRequest {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: Headers::new(),
            body: Bytes::new(),
            reconnect_stale: true,
        }
    }

    /// A WinRM `POST` carrying a SOAP envelope, with the default headers
    /// `Content-Type: application/soap+xml;charset=UTF-8`, `Accept-Encoding: identity`
    /// and `User-Agent: rps/<version>`.
    pub fn winrm(url: Url, body: impl Into<Bytes>) -> Self {
        let mut req = Self::new(Method::Post, url);
        req.headers.insert("Content-Type", SOAP_CONTENT_TYPE);
        req.headers.insert("Accept-Encoding", "identity");
        req.headers.insert("User-Agent", USER_AGENT);
        req.body = body.into();
        req
    }

    /// Sets a header (replacing earlier values) and returns the request.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name, value);
        self
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &loggable_url(&self.url))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An HTTP response as plain data.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The whole response body.
    pub body: Bytes,
    /// The URL that produced this response (differs from the request's after redirects).
    pub url: Url,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("url", &loggable_url(&self.url))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The URL as safe to log: scheme, host, port and path, with user info dropped and
/// every query value replaced by `_` (query names are kept).
pub fn loggable_url(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    let names: Vec<String> = url.query_pairs().map(|(k, _)| format!("{k}=_")).collect();
    if !names.is_empty() {
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

/// The `host[:port]` of a URL, used to name peers in errors.
pub(crate) fn host_label(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::from("<no host>"),
    }
}
