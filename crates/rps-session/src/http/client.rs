//! [`HttpClient`]: a [`Transport`] plus credentials, cookies and the redirect policy.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use url::Url;

use super::auth::{Credentials, InsecureTransportError, ensure_secure_transport};
use super::cookie::CookieJar;
use super::redirect::{RedirectError, RedirectPolicy};
use super::transport::{Transport, TransportError};
use super::{HttpRequest, HttpResponse, host_label, loggable_url};
use crate::token::TokenError;

/// Why [`HttpClient::send`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The network exchange failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A redirect could not be followed.
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    /// Credentials would have gone over plain http.
    #[error(transparent)]
    Insecure(#[from] InsecureTransportError),
    /// No access token could be obtained.
    #[error("cannot authenticate to {host}: {source}")]
    Token {
        /// The host the token was for.
        host: String,
        /// The cause.
        source: TokenError,
    },
}

/// The clock cookies are evaluated against.
pub type NowFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Sends requests with authentication and cookies, and follows redirects per policy.
///
/// On a `401` with token credentials the token is invalidated and the request retried
/// once with a fresh one.
pub struct HttpClient {
    transport: Transport,
    credentials: Option<Credentials>,
    cookies: CookieJar,
    redirect: RedirectPolicy,
    allow_insecure_http: bool,
    now: NowFn,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("transport", &self.transport)
            .field("credentials", &self.credentials)
            .field("cookies", &self.cookies)
            .field("redirect", &self.redirect)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl HttpClient {
    /// A client with no redirects, https-only credentials and the system clock.
    pub fn new(transport: Transport, credentials: Option<Credentials>) -> Self {
        Self {
            transport,
            credentials,
            cookies: CookieJar::new(),
            redirect: RedirectPolicy::none(),
            allow_insecure_http: false,
            now: Arc::new(SystemTime::now),
        }
    }

    /// Sets the redirect policy (used by [`HttpClient::send_following`]).
    pub fn with_redirect_policy(mut self, policy: RedirectPolicy) -> Self {
        self.redirect = policy;
        self
    }

    /// Allows sending credentials over plain http.
    pub fn allow_insecure_http(mut self, yes: bool) -> Self {
        self.allow_insecure_http = yes;
        self
    }

    /// Replaces the clock used for cookie expiry.
    pub fn with_clock(mut self, now: NowFn) -> Self {
        self.now = now;
        self
    }

    /// The cookies collected so far.
    pub fn cookies(&self) -> &CookieJar {
        &self.cookies
    }

    /// The cookie jar, for seeding or clearing.
    pub fn cookies_mut(&mut self) -> &mut CookieJar {
        &mut self.cookies
    }

    /// The underlying transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends one request without following redirects: a 3xx comes back as a response.
    pub async fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, ClientError> {
        self.send_authenticated(req).await
    }

    /// Sends a request that may be redirected (the shell `Create`): redirects are followed
    /// per the policy, re-posting the whole body to each `Location`; when the policy
    /// forbids them a redirect is an error. [`HttpResponse::url`] tells where it ended.
    pub async fn send_following(&mut self, req: HttpRequest) -> Result<HttpResponse, ClientError> {
        let mut visited: Vec<Url> = vec![req.url.clone()];
        let mut req = req;
        loop {
            let resp = self.send_authenticated(req.clone()).await?;
            if !RedirectPolicy::is_redirect(resp.status) {
                return Ok(resp);
            }
            let next = self.redirect.next_url(
                &req.url,
                resp.status,
                resp.headers.get("location"),
                &visited,
            )?;
            tracing::debug!(status = resp.status, from = %loggable_url(&req.url), to = %loggable_url(&next), "following redirect");
            visited.push(next.clone());
            req.url = next;
        }
    }

    async fn send_authenticated(
        &mut self,
        mut req: HttpRequest,
    ) -> Result<HttpResponse, ClientError> {
        let mut refreshed = false;
        loop {
            if let Some(creds) = &self.credentials {
                ensure_secure_transport(&req.url, self.allow_insecure_http)?;
                let value = creds
                    .authorization()
                    .await
                    .map_err(|source| ClientError::Token {
                        host: host_label(&req.url),
                        source,
                    })?;
                req.headers.insert("Authorization", value.expose());
            }
            let now = (self.now)();
            match self.cookies.cookie_header(&req.url, now) {
                Some(c) => req.headers.insert("Cookie", c),
                None => req.headers.remove("Cookie"),
            }
            let result = self.transport.send(&req).await;
            req.headers.remove("Authorization");
            let resp = result?;
            for set_cookie in resp.headers.get_all("set-cookie") {
                if let Err(e) = self.cookies.store(&resp.url, set_cookie, now) {
                    tracing::debug!(error = %e, "cookie ignored");
                }
            }
            let retry = resp.status == 401
                && !refreshed
                && self.credentials.as_ref().is_some_and(Credentials::is_token);
            if !retry {
                return Ok(resp);
            }
            tracing::debug!(host = %host_label(&req.url), "401 with a token; refreshing once");
            refreshed = true;
            if let Some(creds) = &self.credentials {
                creds.invalidate();
            }
        }
    }
}
