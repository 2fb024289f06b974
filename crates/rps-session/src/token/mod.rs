//! Access tokens and the providers that acquire and refresh them.
//!
//! A [`TokenProvider`] hands out [`AccessToken`]s; [`Credentials`](crate::http::Credentials)
//! turns them into `Authorization` headers. Simple sources ([`StaticToken`],
//! [`FileToken`], [`EnvToken`]) sit beside the Microsoft Entra OAuth flows in [`oauth`];
//! [`Caching`] keeps a token until shortly before it expires.

pub mod oauth;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::http::auth::Secret;
pub use oauth::{
    CertificateCredential, ClientCertificate, ClientSecret, DeviceCode, DeviceCodePrompt,
    OAuthConfig, RefreshToken,
};

/// An OAuth access token and when it stops working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token (redacted in `Debug`).
    pub token: Secret,
    /// The instant it expires.
    pub expires_at: SystemTime,
}

impl AccessToken {
    /// A token expiring at `expires_at`.
    pub fn new(token: impl Into<Secret>, expires_at: SystemTime) -> Self {
        Self {
            token: token.into(),
            expires_at,
        }
    }

    /// Whether the token is still valid `skew` after `now`.
    pub fn is_fresh(&self, now: SystemTime, skew: Duration) -> bool {
        now.checked_add(skew).is_some_and(|t| t < self.expires_at)
    }
}

/// Why no token could be had. Never contains a token, secret or assertion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A token file could not be read.
    #[error("cannot read token file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The environment variable is unset or not unicode.
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// The variable name.
        var: String,
    },
    /// The source yielded an empty token.
    #[error("empty token from {source_name}")]
    Empty {
        /// Which source.
        source_name: String,
    },
    /// The authority could not be reached.
    #[error("token request to {host} failed: {source}")]
    Transport {
        /// The authority host.
        host: String,
        /// The cause.
        source: crate::http::TransportError,
    },
    /// The authority refused (OAuth `error` response).
    #[error("authority {host} answered {status}: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The authority host.
        host: String,
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        code: String,
        /// The first line of `error_description`, shortened.
        description: Option<String>,
    },
    /// The authority's answer was not a usable token response.
    #[error("invalid token response from {host}: {reason}")]
    InvalidResponse {
        /// The authority host.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or certificate could not be loaded or used.
    #[error("client certificate: {reason}")]
    Certificate {
        /// What is wrong.
        reason: String,
    },
    /// The provider is misconfigured (bad authority URL, insecure http).
    #[error("token provider configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The user did not complete device code sign-in in time.
    #[error("device code sign-in expired")]
    DeviceCodeExpired,
}

/// The future returned by [`TokenProvider::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + 'a>>;

/// A source of access tokens. Object safe: credentials hold an `Arc<dyn TokenProvider>`.
///
/// Implementations' `Debug` output must not reveal tokens or the secrets used to get
/// them (it ends up in the `Debug` of [`Credentials`](crate::http::Credentials)).
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A currently valid token (fetched, refreshed or cached as the provider sees fit).
    fn token(&self) -> TokenFuture<'_>;

    /// Forgets any cached token: the server rejected it (HTTP 401), so the next
    /// [`TokenProvider::token`] must fetch a new one.
    fn invalidate(&self) {}
}

impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token(&self) -> TokenFuture<'_> {
        (**self).token()
    }

    fn invalidate(&self) {
        (**self).invalidate()
    }
}

/// The time source for expiry decisions, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// How long a token of unknown expiry (not a JWT with `exp`) is assumed valid.
pub const UNKNOWN_EXPIRY_LIFETIME: Duration = Duration::from_secs(3600);

/// The `exp` claim of a JWT access token, when the token is a JWT.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let jwt = crate::jwt::Jwt::decode(token).ok()?;
    let exp = u64::try_from(jwt.claims().exp).ok().filter(|&e| e > 0)?;
    Some(UNIX_EPOCH + Duration::from_secs(exp))
}

fn token_from_text(
    text: &str,
    source_name: impl FnOnce() -> String,
    now: SystemTime,
) -> Result<AccessToken, TokenError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TokenError::Empty {
            source_name: source_name(),
        });
    }
    let expires_at = jwt_expiry(t).unwrap_or(now + UNKNOWN_EXPIRY_LIFETIME);
    Ok(AccessToken::new(t, expires_at))
}

/// A fixed token (e.g. from a command-line option).
#[derive(Debug, Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// A fixed token; its expiry is the JWT `exp` claim when present, else one hour.
    pub fn new(token: impl Into<Secret>) -> Self {
        let token: Secret = token.into();
        let expires_at =
            jwt_expiry(token.expose()).unwrap_or(SystemTime::now() + UNKNOWN_EXPIRY_LIFETIME);
        Self(AccessToken::new(token, expires_at))
    }

    /// A fixed token with a known expiry.
    pub fn with_expiry(token: AccessToken) -> Self {
        Self(token)
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// A token read from a file on every request, so an external tool can keep it fresh.
#[derive(Debug, Clone)]
pub struct FileToken {
    path: PathBuf,
}

impl FileToken {
    /// Reads the token from `path` (surrounding whitespace ignored).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl TokenProvider for FileToken {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let text = std::fs::read_to_string(&self.path).map_err(|source| TokenError::File {
                path: self.path.clone(),
                source,
            })?;
            token_from_text(
                &text,
                || format!("file {}", self.path.display()),
                SystemTime::now(),
            )
        })
    }
}

/// A token read from an environment variable on every request.
#[derive(Debug, Clone)]
pub struct EnvToken {
    var: String,
}

impl EnvToken {
    /// Reads the token from the variable `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }
}

impl TokenProvider for EnvToken {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let text = std::env::var(&self.var).map_err(|_| TokenError::EnvMissing {
                var: self.var.clone(),
            })?;
            token_from_text(
                &text,
                || format!("environment variable {}", self.var),
                SystemTime::now(),
            )
        })
    }
}

/// Keeps the inner provider's token and asks for a new one `skew` before it expires,
/// or after [`TokenProvider::invalidate`].
pub struct Caching<P> {
    inner: P,
    skew: Duration,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<AccessToken>>,
    refresh: tokio::sync::Mutex<()>,
}

impl<P: fmt::Debug> fmt::Debug for Caching<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Caching")
            .field("inner", &self.inner)
            .field("skew", &self.skew)
            .field("cached", &*cached)
            .finish()
    }
}

impl<P: TokenProvider> Caching<P> {
    /// The default refresh margin: five minutes.
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(300);

    /// Caches `inner` with a five minute margin and the system clock.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            skew: Self::DEFAULT_SKEW,
            clock: Arc::new(SystemClock),
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets the refresh margin.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The inner provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn fresh(&self) -> Option<AccessToken> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|t| t.is_fresh(self.clock.now(), self.skew))
            .cloned()
    }
}

impl<P: TokenProvider> TokenProvider for Caching<P> {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            if let Some(t) = self.fresh() {
                return Ok(t);
            }
            let _guard = self.refresh.lock().await;
            if let Some(t) = self.fresh() {
                return Ok(t);
            }
            tracing::debug!("refreshing access token");
            let t = self.inner.token().await?;
            *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(t.clone());
            Ok(t)
        })
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.inner.invalidate();
    }
}
