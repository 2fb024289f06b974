//! Connection options shared by `rps exo`, `rps ipps` and `rps invoke`: auth, endpoint, TLS.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::usage;
use rps_session::ConnectOptions;
use rps_session::http::profile::{Cloud, ExchangeOnline};
use rps_session::http::{Credentials, Endpoint, Secret};
use rps_session::jwt::Jwt;
use rps_session::token::{
    Caching, CertificateCredential, ClientCertificate, ClientSecret, DeviceCode, EnvToken,
    FileToken, OAuthConfig, TokenProvider,
};
use url::Url;

/// How to obtain an access token (Exchange Online and Security & Compliance).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// Read the access token from this file (re-read when it changes).
    #[arg(long, value_name = "FILE")]
    pub access_token_file: Option<PathBuf>,
    /// Read the access token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub access_token_env: Option<String>,
    /// The application (client) id, for certificate, client-secret or device-code sign-in.
    #[arg(long, value_name = "ID")]
    pub app_id: Option<String>,
    /// A certificate for the app (`.pfx`/`.p12`, or `.pem` holding the certificate and key).
    #[arg(long, value_name = "FILE", requires = "app_id")]
    pub certificate_file: Option<PathBuf>,
    /// The environment variable holding the certificate's password.
    #[arg(long, value_name = "VAR", requires = "certificate_file")]
    pub certificate_password_env: Option<String>,
    /// The environment variable holding the app's client secret.
    #[arg(long, value_name = "VAR", requires = "app_id")]
    pub client_secret_env: Option<String>,
    /// Sign in a user with the device-code flow (delegated).
    #[arg(long, requires = "app_id")]
    pub device_code: bool,
    /// The signed-in user's UPN, for delegated tokens (the Basic user name).
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// The Entra ID authority (default: the cloud's, e.g. https://login.microsoftonline.com).
    #[arg(long, value_name = "URL")]
    pub authority: Option<Url>,
}

/// Transport options shared by every connecting subcommand.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TransportArgs {
    /// Follow an HTTP redirect on the first request (as `-AllowRedirection` does).
    #[arg(long)]
    pub allow_redirection: bool,
    /// Allow credentials over plain http (only for loopback fakes and labs).
    #[arg(long)]
    pub insecure_http: bool,
    /// Trust this extra CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (dangerous).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// `wsman:OperationTimeout` in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub operation_timeout: u64,
}

/// Which cloud an Exchange Online tenant lives in.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Environment {
    /// Worldwide (outlook.office365.com).
    #[default]
    Worldwide,
    /// GCC High.
    Gcchigh,
    /// DoD.
    Dod,
    /// Operated by 21Vianet.
    China,
}

impl From<Environment> for Cloud {
    fn from(e: Environment) -> Self {
        match e {
            Environment::Worldwide => Cloud::Worldwide,
            Environment::Gcchigh => Cloud::GccHigh,
            Environment::Dod => Cloud::DoD,
            Environment::China => Cloud::China,
        }
    }
}

/// `rps exo` / `rps ipps` target options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExoArgs {
    /// The tenant's domain (e.g. contoso.onmicrosoft.com).
    #[arg(long, value_name = "ORG", conflicts_with = "tenant_id")]
    pub organization: Option<String>,
    /// The tenant id (a GUID).
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,
    /// Manage another organization as a partner (`DelegatedOrg=`).
    #[arg(long, value_name = "ORG")]
    pub delegated_org: Option<String>,
    /// Route to this mailbox's server (`email=` anchor).
    #[arg(long, value_name = "SMTP")]
    pub anchor_mailbox: Option<String>,
    /// The cloud environment.
    #[arg(long, value_enum, default_value_t = Environment::Worldwide)]
    pub environment: Environment,
    /// Connect here instead of the cloud's endpoint (a fake, a recording, an on-premises server).
    #[arg(long, value_name = "URL")]
    pub uri: Option<Url>,
    /// Do not follow the redirect to the tenant's pod.
    #[arg(long)]
    pub no_redirection: bool,
}

/// The token provider the auth options describe, or `None` when none was given.
pub fn token_provider(
    auth: &AuthArgs,
    tenant: Option<&str>,
    cloud: Cloud,
    scope: &str,
) -> anyhow::Result<Option<Arc<dyn TokenProvider>>> {
    if let Some(path) = &auth.access_token_file {
        if !path.is_file() {
            anyhow::bail!("cannot read the access token file {}", path.display());
        }
        return Ok(Some(Arc::new(FileToken::new(path.clone()))));
    }
    if let Some(var) = &auth.access_token_env {
        if std::env::var_os(var).is_none() {
            return Err(usage(format!(
                "the environment variable {var} holding the access token is not set"
            )));
        }
        return Ok(Some(Arc::new(EnvToken::new(var.clone()))));
    }
    let Some(app_id) = &auth.app_id else {
        return Ok(None);
    };
    let tenant =
        tenant.ok_or_else(|| usage("--organization or --tenant-id is needed to sign in an app"))?;
    let mut config = OAuthConfig::new(tenant, app_id.clone())
        .cloud(cloud)
        .scope(scope);
    if let Some(a) = &auth.authority {
        config = config.authority(a.clone());
        if a.scheme() == "http" {
            config = config.allow_insecure_http(true);
        }
    }
    if let Some(cert) = &auth.certificate_file {
        let is_pem = cert
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pem"));
        let credential = if is_pem {
            CertificateCredential::from_pem_files(cert, cert)
        } else {
            let password = match &auth.certificate_password_env {
                Some(var) => Secret::new(
                    std::env::var(var)
                        .with_context(|| format!("the environment variable {var} is not set"))?,
                ),
                None => Secret::new(String::new()),
            };
            CertificateCredential::from_pfx_file(cert, &password)
        }
        .with_context(|| format!("cannot load the certificate {}", cert.display()))?;
        return Ok(Some(Arc::new(Caching::new(ClientCertificate::new(
            config, credential,
        )))));
    }
    if let Some(var) = &auth.client_secret_env {
        let secret = std::env::var(var)
            .with_context(|| format!("the environment variable {var} is not set"))?;
        return Ok(Some(Arc::new(Caching::new(ClientSecret::new(
            config,
            Secret::new(secret),
        )))));
    }
    if auth.device_code {
        let prompt = Arc::new(|p: &rps_session::token::DeviceCodePrompt| {
            eprintln!("{}", p.message);
        });
        return Ok(Some(Arc::new(Caching::new(DeviceCode::new(
            config, prompt,
        )))));
    }
    Err(usage(
        "--app-id needs --certificate-file, --client-secret-env or --device-code",
    ))
}

/// Reads the tenant id (`tid`) from a provider's current token, if it is a JWT.
async fn tenant_of(provider: &Arc<dyn TokenProvider>) -> anyhow::Result<Option<String>> {
    let token = provider
        .token()
        .await
        .context("cannot obtain an access token")?;
    Ok(Jwt::decode(token.token.expose())
        .ok()
        .and_then(|j| j.claims().tid.clone()))
}

/// Connection options for Exchange Online (`compliance` for Security & Compliance).
pub async fn exo_options(
    exo: &ExoArgs,
    auth: &AuthArgs,
    transport: &TransportArgs,
    compliance: bool,
) -> anyhow::Result<ConnectOptions> {
    exo_options_with(exo, auth, transport, compliance, None).await
}

/// Like [`exo_options`], with a token provider given directly (the demo mints its own).
pub async fn exo_options_with(
    exo: &ExoArgs,
    auth: &AuthArgs,
    transport: &TransportArgs,
    compliance: bool,
    provider: Option<Arc<dyn TokenProvider>>,
) -> anyhow::Result<ConnectOptions> {
    let cloud = Cloud::from(exo.environment);
    let tenant_hint = exo.tenant_id.as_deref().or(exo.organization.as_deref());
    let scope = cloud.exchange_scope();
    let provider = match provider {
        Some(p) => Some(p),
        None => token_provider(auth, tenant_hint, cloud, &scope)?,
    };
    let provider = provider.ok_or_else(|| {
        usage(
            "no token: give --access-token-file, --access-token-env or --app-id with a credential",
        )
    })?;
    let mut profile = match &auth.user {
        Some(upn) => ExchangeOnline::delegated(upn.clone()),
        None => {
            // App-only: the Basic user is OAuthUser@<tenant guid>.
            let tid = match &exo.tenant_id {
                Some(t) => t.clone(),
                None => tenant_of(&provider)
                    .await?
                    .or_else(|| exo.organization.clone())
                    .context("cannot tell the tenant id: give --tenant-id")?,
            };
            ExchangeOnline::app_only(tid)
        }
    }
    .cloud(cloud);
    if let Some(o) = &exo.delegated_org {
        profile = profile.delegated_org(o.clone());
    }
    if let Some(m) = &exo.anchor_mailbox {
        profile = profile.anchor_mailbox(m.clone());
    }
    if compliance {
        profile = profile.security_compliance();
    }
    if let Some(u) = &exo.uri {
        profile = profile.base_url(u.clone());
    }
    let mut endpoint = profile.endpoint().context("bad Exchange Online options")?;
    endpoint.allow_redirection = !exo.no_redirection;
    let credentials = profile.credentials(provider);
    Ok(apply_transport(
        ConnectOptions::new(endpoint, Some(credentials)),
        transport,
    ))
}

/// `rps invoke` target options.
#[derive(clap::Args, Debug, Clone)]
pub struct InvokeArgs {
    /// The WinRM endpoint (e.g. https://host:5986/wsman, https://exchange/PowerShell).
    #[arg(long, value_name = "URL")]
    pub uri: Url,
    /// The PowerShell configuration (session configuration) name.
    #[arg(long, default_value = "Microsoft.PowerShell", value_name = "NAME")]
    pub configuration_name: String,
    /// The environment variable holding the password for `--user`.
    #[arg(long, value_name = "VAR", requires = "user")]
    pub password_env: Option<String>,
}

/// Connection options for any WinRM endpoint.
pub fn invoke_options(
    inv: &InvokeArgs,
    auth: &AuthArgs,
    transport: &TransportArgs,
) -> anyhow::Result<ConnectOptions> {
    let endpoint = Endpoint {
        url: inv.uri.clone(),
        configuration: inv.configuration_name.clone(),
        allow_redirection: transport.allow_redirection,
    };
    let credentials = if let Some(var) = &inv.password_env {
        let user = auth.user.clone().unwrap_or_default();
        let password = std::env::var(var)
            .with_context(|| format!("the environment variable {var} is not set"))?;
        Some(Credentials::basic(user, Secret::new(password)))
    } else {
        let provider = token_provider(
            auth,
            None,
            Cloud::Worldwide,
            "https://outlook.office365.com/.default",
        )?;
        match (provider, &auth.user) {
            (Some(p), Some(upn)) => Some(Credentials::delegated(upn.clone(), p)),
            (Some(_), None) => {
                return Err(usage(
                    "a token needs --user (the UPN, or OAuthUser@<tenant id>)",
                ));
            }
            (None, _) => None,
        }
    };
    Ok(apply_transport(
        ConnectOptions::new(endpoint, credentials),
        transport,
    ))
}

fn apply_transport(mut o: ConnectOptions, t: &TransportArgs) -> ConnectOptions {
    o.allow_insecure_http = t.insecure_http;
    o.operation_timeout_secs = t.operation_timeout;
    if let Some(ca) = &t.ca_file {
        o.transport = o.transport.extra_ca_file(ca.clone());
    }
    if t.insecure_skip_verify {
        o.transport = o.transport.danger_accept_invalid_certs(true);
    }
    o
}
