//! Credentials, the [`Secret`] wrapper and `Authorization` header values.
//!
//! Exchange Online's legacy remote PowerShell accepts an OAuth access token as the
//! password of HTTP Basic authentication: the header is
//! `Basic base64("<user>:Bearer <token>")`, where the user is `OAuthUser@<tenant>` for
//! app-only access or the signed-in user's UPN for delegated access.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use url::Url;
use zeroize::Zeroize;

use crate::token::{AccessToken, TokenError, TokenProvider};

/// A string that must not leak: `Debug` and `Display` print `<redacted>`, and the
/// memory is zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests authenticate.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// Plain HTTP Basic with a password (on-premises Exchange, WinRM with Basic enabled).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth access token sent as the Basic password `Bearer <token>` (Exchange
    /// Online and Security & Compliance with `BasicAuthToOAuthConversion=true`).
    OAuthBearerAsBasic {
        /// `OAuthUser@<tenant>` (app-only) or the user's UPN (delegated).
        user: String,
        /// Where the access token comes from.
        token: Arc<dyn TokenProvider>,
    },
}

impl Credentials {
    /// Basic credentials with a password.
    pub fn basic(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// App-only OAuth: user `OAuthUser@<tenant>`, where `tenant` is the tenant id (GUID)
    /// or its initial domain.
    pub fn app_only(tenant: &str, token: Arc<dyn TokenProvider>) -> Self {
        Self::OAuthBearerAsBasic {
            user: app_only_user(tenant),
            token,
        }
    }

    /// Delegated OAuth: the user is the signed-in user's UPN.
    pub fn delegated(upn: impl Into<String>, token: Arc<dyn TokenProvider>) -> Self {
        Self::OAuthBearerAsBasic {
            user: upn.into(),
            token,
        }
    }

    /// The Basic user name.
    pub fn user(&self) -> &str {
        match self {
            Self::Basic { user, .. } | Self::OAuthBearerAsBasic { user, .. } => user,
        }
    }

    /// Whether these credentials carry a refreshable token (so a 401 is worth a retry).
    pub fn is_token(&self) -> bool {
        matches!(self, Self::OAuthBearerAsBasic { .. })
    }

    /// The `Authorization` header value, acquiring a token when needed.
    pub async fn authorization(&self) -> Result<Secret, TokenError> {
        match self {
            Self::Basic { user, password } => Ok(basic_authorization(user, password)),
            Self::OAuthBearerAsBasic { user, token } => {
                let token = token.token().await?;
                Ok(oauth_basic_authorization(user, &token))
            }
        }
    }

    /// Drops any cached token so the next [`Credentials::authorization`] fetches a new one.
    pub fn invalidate(&self) {
        if let Self::OAuthBearerAsBasic { token, .. } = self {
            token.invalidate();
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, password } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", password)
                .finish(),
            Self::OAuthBearerAsBasic { user, token } => f
                .debug_struct("OAuthBearerAsBasic")
                .field("user", user)
                .field("token", token)
                .finish(),
        }
    }
}

/// The Basic user for app-only access: `OAuthUser@<tenant>`.
pub fn app_only_user(tenant: &str) -> String {
    format!("OAuthUser@{tenant}")
}

/// `Basic base64("<user>:<password>")`.
pub fn basic_authorization(user: &str, password: &Secret) -> Secret {
    let mut plain = format!("{user}:{}", password.expose());
    let value = format!("Basic {}", STANDARD.encode(plain.as_bytes()));
    plain.zeroize();
    Secret(value)
}

/// `Basic base64("<user>:Bearer <token>")`: an access token carried as a Basic password.
pub fn oauth_basic_authorization(user: &str, token: &AccessToken) -> Secret {
    let password = Secret(format!("Bearer {}", token.token.expose()));
    basic_authorization(user, &password)
}

/// Refused to send Basic credentials over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to send basic credentials over plain http to {host} (allow_insecure_http not set)"
)]
#[non_exhaustive]
pub struct InsecureTransportError {
    /// The host the request was for.
    pub host: String,
}

/// Checks that credentials may be sent to `url`: `https` always, `http` only with
/// `allow_insecure_http`.
pub fn ensure_secure_transport(
    url: &Url,
    allow_insecure_http: bool,
) -> Result<(), InsecureTransportError> {
    if url.scheme().eq_ignore_ascii_case("https") || allow_insecure_http {
        Ok(())
    } else {
        Err(InsecureTransportError {
            host: super::host_label(url),
        })
    }
}
