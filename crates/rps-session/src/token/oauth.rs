//! Microsoft Entra (Azure AD) OAuth 2.0 flows against the v2.0 endpoints
//! `{authority}/{tenant}/oauth2/v2.0/token` and `.../devicecode`.
//!
//! Every flow uses its own [`Transport`], so proxy and TLS settings apply to the
//! authority as to the PowerShell endpoint. These providers ask the authority on every
//! [`TokenProvider::token`] call: wrap them in [`Caching`](super::Caching).
//!
//! ```no_run
//! # async fn demo() -> Result<(), rps_session::token::TokenError> {
//! use std::sync::Arc;
//! use rps_session::http::Credentials;
//! use rps_session::token::{Caching, ClientSecret, OAuthConfig, TokenProvider};
//!
//! let config = OAuthConfig::new("00000000-0000-0000-0000-000000000000", "app-id");
//! let provider = Arc::new(Caching::new(ClientSecret::new(config, "secret")));
//! let credentials = Credentials::app_only("00000000-0000-0000-0000-000000000000", provider);
//! let header = credentials.authorization().await?;
//! # let _ = header;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;
use sha1::{Digest, Sha1};
use url::Url;

use super::{AccessToken, Clock, Secret, SystemClock, TokenError, TokenFuture, TokenProvider};
use crate::http::transport::{Transport, TransportConfig};
use crate::http::{HttpRequest, Method, host_label};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Where and as whom to ask for tokens.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The authority base URL, e.g. `https://login.microsoftonline.com` (no tenant).
    pub authority: Url,
    /// Tenant id, domain, or `organizations`/`common` for the user flows.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The scope, e.g. `https://outlook.office365.com/.default`.
    pub scope: String,
    /// Transport settings for the authority.
    pub transport: TransportConfig,
    /// Allow an `http://` authority (tests only: secrets would travel in clear).
    pub allow_insecure_http: bool,
    /// The clock for computing expiry instants.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("authority", &self.authority.as_str())
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl OAuthConfig {
    /// Worldwide authority, Exchange Online scope.
    pub fn new(tenant: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            authority: crate::http::Cloud::Worldwide.authority_url(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            scope: crate::http::Cloud::Worldwide.exchange_scope(),
            transport: TransportConfig::default(),
            allow_insecure_http: false,
            clock: Arc::new(SystemClock),
        }
    }

    /// Authority and Exchange Online scope of `cloud`.
    pub fn cloud(mut self, cloud: crate::http::Cloud) -> Self {
        self.authority = cloud.authority_url();
        self.scope = cloud.exchange_scope();
        self
    }

    /// Sets the authority base URL (a mock authority in tests).
    pub fn authority(mut self, authority: Url) -> Self {
        self.authority = authority;
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Sets the transport settings.
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Allows a plain-http authority.
    pub fn allow_insecure_http(mut self, yes: bool) -> Self {
        self.allow_insecure_http = yes;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `{authority}/{tenant}/oauth2/v2.0/{leaf}`.
    fn endpoint(&self, leaf: &str) -> Result<Url, TokenError> {
        let base = self.authority.as_str().trim_end_matches('/');
        let url =
            Url::parse(&format!("{base}/{}/oauth2/v2.0/{leaf}", self.tenant)).map_err(|_| {
                TokenError::Config {
                    reason: String::from("invalid authority url or tenant"),
                }
            })?;
        if url.scheme() != "https" && !(url.scheme() == "http" && self.allow_insecure_http) {
            return Err(TokenError::Config {
                reason: format!("authority {} is not https", host_label(&url)),
            });
        }
        Ok(url)
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> Result<Url, TokenError> {
        self.endpoint("token")
    }

    /// The device authorization endpoint URL.
    pub fn device_code_endpoint(&self) -> Result<Url, TokenError> {
        self.endpoint("devicecode")
    }
}

/// One authority conversation: a lazily built transport shared by calls.
struct AuthorityClient {
    cfg: OAuthConfig,
    transport: tokio::sync::Mutex<Option<Transport>>,
}

/// A parsed successful token response.
struct Grant {
    token: AccessToken,
    refresh_token: Option<Secret>,
}

/// A parsed OAuth error response.
struct OAuthFailure {
    status: u16,
    code: String,
    description: Option<String>,
}

impl AuthorityClient {
    fn new(cfg: OAuthConfig) -> Self {
        Self {
            cfg,
            transport: tokio::sync::Mutex::new(None),
        }
    }

    /// POSTs a form and returns the status and JSON body.
    async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<(u16, Value), TokenError> {
        let host = host_label(url);
        let body = zeroize::Zeroizing::new({
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                ser.append_pair(k, v);
            }
            ser.finish()
        });
        let mut req = HttpRequest::new(Method::Post, url.clone());
        req.headers
            .insert("Content-Type", "application/x-www-form-urlencoded");
        req.headers.insert("Accept", "application/json");
        req.headers.insert("User-Agent", crate::http::USER_AGENT);
        req.body = bytes::Bytes::copy_from_slice(body.as_bytes());
        let mut guard = self.transport.lock().await;
        if guard.is_none() {
            let t = Transport::new(self.cfg.transport.clone()).map_err(|source| {
                TokenError::Transport {
                    host: host.clone(),
                    source,
                }
            })?;
            *guard = Some(t);
        }
        let Some(transport) = guard.as_mut() else {
            return Err(TokenError::Config {
                reason: String::from("transport unavailable"),
            });
        };
        let resp = transport
            .send(&req)
            .await
            .map_err(|source| TokenError::Transport {
                host: host.clone(),
                source,
            })?;
        let json: Value =
            serde_json::from_slice(&resp.body).map_err(|_| TokenError::InvalidResponse {
                host,
                reason: format!("status {} with a body that is not json", resp.status),
            })?;
        Ok((resp.status, json))
    }

    fn failure(status: u16, json: &Value) -> Option<OAuthFailure> {
        let code = json.get("error")?.as_str()?.to_string();
        let description = json
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| {
                let first = d.lines().next().unwrap_or("");
                first.chars().take(200).collect::<String>()
            });
        Some(OAuthFailure {
            status,
            code,
            description,
        })
    }

    fn denied(&self, url: &Url, f: OAuthFailure) -> TokenError {
        TokenError::Denied {
            host: host_label(url),
            status: f.status,
            code: f.code,
            description: f.description,
        }
    }

    fn grant(&self, url: &Url, status: u16, json: &Value) -> Result<Grant, TokenError> {
        if let Some(f) = Self::failure(status, json) {
            return Err(self.denied(url, f));
        }
        let invalid = |reason: &str| TokenError::InvalidResponse {
            host: host_label(url),
            reason: reason.to_string(),
        };
        if !(200..300).contains(&status) {
            return Err(invalid(&format!("status {status}")));
        }
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("no access_token"))?;
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| invalid("no expires_in"))?;
        let refresh_token = json
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        Ok(Grant {
            token: AccessToken::new(
                token,
                self.cfg.clock.now() + Duration::from_secs(expires_in),
            ),
            refresh_token,
        })
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Grant, TokenError> {
        let url = self.cfg.token_endpoint()?;
        let (status, json) = self.post_form(&url, form).await?;
        self.grant(&url, status, &json)
    }
}

/// Client credentials with a client secret (app-only).
pub struct ClientSecret {
    client: AuthorityClient,
    secret: Secret,
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("config", &self.client.cfg)
            .field("secret", &self.secret)
            .finish()
    }
}

impl ClientSecret {
    /// The client credentials flow with `secret`.
    pub fn new(config: OAuthConfig, secret: impl Into<Secret>) -> Self {
        Self {
            client: AuthorityClient::new(config),
            secret: secret.into(),
        }
    }
}

impl TokenProvider for ClientSecret {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let cfg = &self.client.cfg;
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", cfg.client_id.as_str()),
                ("client_secret", self.secret.expose()),
                ("scope", cfg.scope.as_str()),
            ];
            Ok(self.client.token_request(&form).await?.token)
        })
    }
}

/// An application certificate: the X.509 certificate (DER) and its RSA private key.
#[derive(Clone)]
pub struct CertificateCredential {
    cert_der: Vec<u8>,
    key: RsaPrivateKey,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t", &self.thumbprint())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CertificateCredential {
    /// From a DER certificate and a key.
    pub fn new(cert_der: Vec<u8>, key: RsaPrivateKey) -> Self {
        Self { cert_der, key }
    }

    /// From PEM text holding a `CERTIFICATE` and an RSA key as PKCS#8 (`PRIVATE KEY`)
    /// or PKCS#1 (`RSA PRIVATE KEY`), in one text or two.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TokenError> {
        let bad = |reason: &str| TokenError::Certificate {
            reason: reason.to_string(),
        };
        let cert = pem_certificate(cert_pem)?;
        let key = pem_block(key_pem, "PRIVATE KEY")
            .map(|b| RsaPrivateKey::from_pkcs8_pem(&b).map_err(|_| bad("invalid pkcs#8 rsa key")))
            .or_else(|| {
                pem_block(key_pem, "RSA PRIVATE KEY").map(|b| {
                    RsaPrivateKey::from_pkcs1_pem(&b).map_err(|_| bad("invalid pkcs#1 rsa key"))
                })
            })
            .unwrap_or_else(|| {
                Err(bad(
                    "no rsa private key (for an encrypted key use from_pem_with_password)",
                ))
            })?;
        Ok(Self::new(cert, key))
    }

    /// Like [`CertificateCredential::from_pem`], for a key encrypted with a password
    /// (`ENCRYPTED PRIVATE KEY`, PKCS#8 with PBES2, as `openssl pkcs8 -topk8` writes).
    pub fn from_pem_with_password(
        cert_pem: &str,
        key_pem: &str,
        password: &Secret,
    ) -> Result<Self, TokenError> {
        let Some(block) = pem_block(key_pem, "ENCRYPTED PRIVATE KEY") else {
            return Self::from_pem(cert_pem, key_pem);
        };
        let key = RsaPrivateKey::from_pkcs8_encrypted_pem(&block, password.expose().as_bytes())
            .map_err(|_| TokenError::Certificate {
                reason: String::from("cannot decrypt the private key (wrong password or not rsa)"),
            })?;
        Ok(Self::new(pem_certificate(cert_pem)?, key))
    }

    /// From PEM files (they may be the same file).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TokenError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| TokenError::Certificate {
                reason: format!("cannot read {}: {e}", p.display()),
            })
        };
        let key_text = zeroize::Zeroizing::new(read(key)?);
        Self::from_pem(&read(cert)?, &key_text)
    }

    /// From PKCS#12 (`.pfx`/`.p12`) bytes holding the certificate and its RSA key, as
    /// exported by Windows or OpenSSL (PBES2/AES and legacy PBES1 encryption).
    pub fn from_pfx(data: &[u8], password: &Secret) -> Result<Self, TokenError> {
        let store = p12_keystore::KeyStore::from_pkcs12(data, password.expose()).map_err(|e| {
            TokenError::Certificate {
                reason: format!("cannot open pfx: {e}"),
            }
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| TokenError::Certificate {
                reason: String::from("pfx holds no private key with a certificate"),
            })?;
        let cert = chain
            .chain()
            .first()
            .ok_or_else(|| TokenError::Certificate {
                reason: String::from("pfx key has no certificate"),
            })?;
        let key =
            RsaPrivateKey::from_pkcs8_der(chain.key()).map_err(|_| TokenError::Certificate {
                reason: String::from("pfx key is not an rsa key"),
            })?;
        Ok(Self::new(cert.as_der().to_vec(), key))
    }

    /// From a PKCS#12 file.
    pub fn from_pfx_file(path: &Path, password: &Secret) -> Result<Self, TokenError> {
        let data =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| TokenError::Certificate {
                reason: format!("cannot read {}: {e}", path.display()),
            })?);
        Self::from_pfx(&data, password)
    }

    /// From a PKCS#12 file whose password is in the environment variable `var` (an unset
    /// variable means no password).
    pub fn from_pfx_file_env(path: &Path, var: &str) -> Result<Self, TokenError> {
        let password = Secret::new(std::env::var(var).unwrap_or_default());
        Self::from_pfx_file(path, &password)
    }

    /// The `x5t` header value: base64url of the certificate's SHA-1 thumbprint.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha1::digest(&self.cert_der))
    }

    /// A signed RS256 client assertion for `audience` (the token endpoint), valid for
    /// ten minutes from `now`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<Secret, TokenError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut jti = [0u8; 16];
        OsRng.fill_bytes(&mut jti);
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint()});
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "iat": iat,
            "nbf": iat,
            "exp": iat + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
        let sig = Signer::try_sign(&key, signing_input.as_bytes()).map_err(|_| {
            TokenError::Certificate {
                reason: String::from("signing the client assertion failed"),
            }
        })?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )))
    }
}

/// The first `CERTIFICATE` of a PEM text, as DER.
fn pem_certificate(cert_pem: &str) -> Result<Vec<u8>, TokenError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|_| TokenError::Certificate {
            reason: String::from("no pem certificate"),
        })
}

fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(text[start..stop].to_string())
}

/// Client credentials with a certificate: an RS256 JWT client assertion carrying the
/// certificate thumbprint (`x5t`).
pub struct ClientCertificate {
    client: AuthorityClient,
    cert: CertificateCredential,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("config", &self.client.cfg)
            .field("cert", &self.cert)
            .finish()
    }
}

impl ClientCertificate {
    /// The client credentials flow with a certificate.
    pub fn new(config: OAuthConfig, cert: CertificateCredential) -> Self {
        Self {
            client: AuthorityClient::new(config),
            cert,
        }
    }
}

impl TokenProvider for ClientCertificate {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let cfg = &self.client.cfg;
            let audience = cfg.token_endpoint()?;
            let assertion =
                self.cert
                    .assertion(&cfg.client_id, audience.as_str(), cfg.clock.now())?;
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", cfg.client_id.as_str()),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.expose()),
                ("scope", cfg.scope.as_str()),
            ];
            Ok(self.client.token_request(&form).await?.token)
        })
    }
}

/// Redeems a refresh token (delegated access), keeping the rotated refresh token.
pub struct RefreshToken {
    client: AuthorityClient,
    refresh: Mutex<Secret>,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("config", &self.client.cfg)
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

impl RefreshToken {
    /// The refresh token flow starting from `refresh_token`.
    pub fn new(config: OAuthConfig, refresh_token: impl Into<Secret>) -> Self {
        Self {
            client: AuthorityClient::new(config),
            refresh: Mutex::new(refresh_token.into()),
        }
    }

    /// The refresh token to use next (it changes when the authority rotates it).
    pub fn current_refresh_token(&self) -> Secret {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn redeem_refresh(client: &AuthorityClient, refresh: &Secret) -> Result<Grant, TokenError> {
    let cfg = &client.cfg;
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("refresh_token", refresh.expose()),
        ("scope", cfg.scope.as_str()),
    ];
    client.token_request(&form).await
}

impl TokenProvider for RefreshToken {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let refresh = self.current_refresh_token();
            let grant = redeem_refresh(&self.client, &refresh).await?;
            if let Some(r) = grant.refresh_token {
                *self.refresh.lock().unwrap_or_else(PoisonError::into_inner) = r;
            }
            Ok(grant.token)
        })
    }
}

/// What to show the user during device code sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The code to type in.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The authority's ready-made instruction text.
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// The callback that shows a [`DeviceCodePrompt`].
pub type PromptFn = Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// The device authorization grant (delegated, interactive on another device). Once
/// signed in, later tokens come from the refresh token it received, when any.
pub struct DeviceCode {
    client: AuthorityClient,
    prompt: PromptFn,
    interval_unit: Duration,
    refresh: Mutex<Option<Secret>>,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("config", &self.client.cfg)
            .field("interval_unit", &self.interval_unit)
            .finish_non_exhaustive()
    }
}

impl DeviceCode {
    /// The device code flow; `prompt` is called once per sign-in with the user message.
    /// `offline_access` is added to the scope so a refresh token is issued.
    pub fn new(config: OAuthConfig, prompt: PromptFn) -> Self {
        Self {
            client: AuthorityClient::new(config),
            prompt,
            interval_unit: Duration::from_secs(1),
            refresh: Mutex::new(None),
        }
    }

    /// Scales the authority's polling interval (seconds) by `unit` instead of one second;
    /// for tests against a mock authority.
    pub fn interval_unit(mut self, unit: Duration) -> Self {
        self.interval_unit = unit;
        self
    }

    fn scope(&self) -> String {
        let s = &self.client.cfg.scope;
        if s.split(' ').any(|x| x == "offline_access") {
            s.clone()
        } else {
            format!("{s} offline_access")
        }
    }

    async fn sign_in(&self) -> Result<Grant, TokenError> {
        let cfg = &self.client.cfg;
        let url = cfg.device_code_endpoint()?;
        let scope = self.scope();
        let (status, json) = self
            .client
            .post_form(
                &url,
                &[
                    ("client_id", cfg.client_id.as_str()),
                    ("scope", scope.as_str()),
                ],
            )
            .await?;
        if let Some(f) = AuthorityClient::failure(status, &json) {
            return Err(self.client.denied(&url, f));
        }
        let field = |name: &str| -> Result<String, TokenError> {
            json.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| TokenError::InvalidResponse {
                    host: host_label(&url),
                    reason: format!("no {name}"),
                })
        };
        let num = |name: &str| match json.get(name) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let device_code = Secret::new(field("device_code")?);
        let verification_uri = field("verification_uri").or_else(|_| field("verification_url"))?;
        let user_code = field("user_code")?;
        let expires_in = Duration::from_secs(num("expires_in").unwrap_or(900));
        let message = field("message").unwrap_or_else(|_| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}.")
        });
        (self.prompt)(&DeviceCodePrompt {
            user_code,
            verification_uri,
            message,
            expires_in,
        });
        let mut interval = num("interval").unwrap_or(5);
        let deadline = tokio::time::Instant::now() + expires_in;
        let token_url = cfg.token_endpoint()?;
        loop {
            tokio::time::sleep(self.interval_unit * u32::try_from(interval).unwrap_or(u32::MAX))
                .await;
            if tokio::time::Instant::now() >= deadline {
                return Err(TokenError::DeviceCodeExpired);
            }
            let form = [
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", cfg.client_id.as_str()),
                ("device_code", device_code.expose()),
            ];
            let (status, json) = self.client.post_form(&token_url, &form).await?;
            match AuthorityClient::failure(status, &json) {
                Some(f) if f.code == "authorization_pending" => continue,
                Some(f) if f.code == "slow_down" => {
                    interval += 5;
                    continue;
                }
                Some(f) if f.code == "expired_token" => return Err(TokenError::DeviceCodeExpired),
                Some(f) => return Err(self.client.denied(&token_url, f)),
                None => return self.client.grant(&token_url, status, &json),
            }
        }
    }
}

impl TokenProvider for DeviceCode {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let refresh = self
                .refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let grant = match refresh {
                Some(r) => match redeem_refresh(&self.client, &r).await {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::debug!(error = %e, "refresh failed; signing in again");
                        self.sign_in().await?
                    }
                },
                None => self.sign_in().await?,
            };
            if let Some(r) = grant.refresh_token {
                *self.refresh.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            }
            Ok(grant.token)
        })
    }
}
