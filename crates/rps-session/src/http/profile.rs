//! Connection profiles: where to connect, with which PowerShell configuration, and
//! whether the server may redirect.
//!
//! Endpoint hosts per cloud, as published by Microsoft:
//! - Exchange Online: `outlook.office365.com` (worldwide), `outlook.office365.us`
//!   (GCC High), `webmail.apps.mil` (DoD) — Microsoft's US Government PowerShell samples
//!   (`microsoft/Federal-Business-Applications`, `demos/powershell-gov-samples/README.md`);
//!   `partner.outlook.cn` (Office 365 operated by 21Vianet) — the `Connect-EXOPSSession`
//!   help in the ExchangeOnlineManagement module.
//! - Security & Compliance: `ps.compliance.protection.outlook.com`,
//!   `ps.compliance.protection.office365.us` (GCC High),
//!   `l5.ps.compliance.protection.office365.us` (DoD),
//!   `ps.compliance.protection.partner.outlook.cn` (21Vianet) — the `-ConnectionUri`
//!   parameter of `Connect-IPPSSession` (`MicrosoftDocs/office-docs-powershell`,
//!   `exchange/exchange-ps/exchange/Connect-IPPSSession.md`).
//! - Sign-in authorities: `login.microsoftonline.com`, `login.microsoftonline.us` (GCC High
//!   and DoD), `login.chinacloudapi.cn` (21Vianet) — the `-AzureADAuthorizationEndpointUri`
//!   values in the same documents.

use std::sync::Arc;

use url::Url;

use super::auth::{Credentials, app_only_user};
use crate::token::TokenProvider;

/// The configuration Exchange (online and on-premises) exposes.
pub const EXCHANGE_CONFIGURATION: &str = "Microsoft.Exchange";

/// The default configuration of a Windows PowerShell endpoint.
pub const DEFAULT_CONFIGURATION: &str = "Microsoft.PowerShell";

/// The WS-Management resource URI of a PowerShell configuration:
/// `http://schemas.microsoft.com/powershell/<name>`.
pub fn resource_uri(configuration: &str) -> String {
    format!("http://schemas.microsoft.com/powershell/{configuration}")
}

/// A profile that cannot produce a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The host (or server) name does not form a valid URL.
    #[error("invalid host {host:?} for {profile}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// Which profile was being built.
        profile: &'static str,
    },
}

/// Microsoft 365 cloud environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Cloud {
    /// The worldwide (commercial and GCC) cloud.
    #[default]
    Worldwide,
    /// US Government GCC High.
    GccHigh,
    /// US Government DoD.
    DoD,
    /// Office 365 operated by 21Vianet (China).
    China,
}

impl Cloud {
    /// The Exchange Online remote PowerShell host.
    pub fn exchange_host(self) -> &'static str {
        match self {
            Cloud::Worldwide => "outlook.office365.com",
            Cloud::GccHigh => "outlook.office365.us",
            Cloud::DoD => "webmail.apps.mil",
            Cloud::China => "partner.outlook.cn",
        }
    }

    /// The Security & Compliance remote PowerShell host.
    pub fn compliance_host(self) -> &'static str {
        match self {
            Cloud::Worldwide => "ps.compliance.protection.outlook.com",
            Cloud::GccHigh => "ps.compliance.protection.office365.us",
            Cloud::DoD => "l5.ps.compliance.protection.office365.us",
            Cloud::China => "ps.compliance.protection.partner.outlook.cn",
        }
    }

    /// The Microsoft Entra sign-in authority base URL (no tenant).
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Worldwide => "https://login.microsoftonline.com",
            Cloud::GccHigh | Cloud::DoD => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// [`Cloud::authority`] as a URL.
    pub fn authority_url(self) -> Url {
        // The authorities above are constants known to parse.
        Url::parse(self.authority()).expect("constant authority url is valid")
    }

    /// The OAuth scope for Exchange Online in this cloud: `https://<exchange host>/.default`.
    pub fn exchange_scope(self) -> String {
        format!("https://{}/.default", self.exchange_host())
    }
}

/// What a session connects to: URL, PowerShell configuration and redirect permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The WS-Management endpoint URL (with any query the service needs).
    pub url: Url,
    /// The PowerShell configuration (session configuration) name.
    pub configuration: String,
    /// Whether the service may redirect the shell creation to another host.
    pub allow_redirection: bool,
}

impl Endpoint {
    /// The WS-Management resource URI of the configuration.
    pub fn resource_uri(&self) -> String {
        resource_uri(&self.configuration)
    }
}

/// Who signs in to Exchange Online / Security & Compliance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Identity {
    /// An application with its own credentials: Basic user `OAuthUser@<tenant>`.
    AppOnly {
        /// Tenant id (GUID) or initial domain.
        tenant: String,
    },
    /// A signed-in user: Basic user is the UPN.
    Delegated {
        /// The user principal name.
        upn: String,
    },
}

impl Identity {
    /// The Basic user name for this identity.
    pub fn user(&self) -> String {
        match self {
            Identity::AppOnly { tenant } => app_only_user(tenant),
            Identity::Delegated { upn } => upn.clone(),
        }
    }
}

/// Exchange Online (or Security & Compliance) remote PowerShell with an OAuth token
/// carried as the Basic password.
///
/// The URL is `https://<host>/PowerShell-LiveId?BasicAuthToOAuthConversion=true`, then
/// `DelegatedOrg=<org>` and `email=<anchor mailbox>` when set (form-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOnline {
    /// The cloud environment.
    pub cloud: Cloud,
    /// Who signs in.
    pub identity: Identity,
    /// A customer tenant managed by a partner (`DelegatedOrg`).
    pub delegated_org: Option<String>,
    /// The mailbox that routes the session (`email`).
    pub anchor_mailbox: Option<String>,
    /// Security & Compliance instead of Exchange Online.
    pub compliance: bool,
    /// Overrides the host (and scheme/port), e.g. for tests or a custom front end.
    pub base_url: Option<Url>,
}

impl ExchangeOnline {
    /// App-only access for `tenant` (GUID or initial domain), worldwide cloud.
    pub fn app_only(tenant: impl Into<String>) -> Self {
        Self::with_identity(Identity::AppOnly {
            tenant: tenant.into(),
        })
    }

    /// Delegated access for the user `upn`, worldwide cloud.
    pub fn delegated(upn: impl Into<String>) -> Self {
        Self::with_identity(Identity::Delegated { upn: upn.into() })
    }

    fn with_identity(identity: Identity) -> Self {
        Self {
            cloud: Cloud::Worldwide,
            identity,
            delegated_org: None,
            anchor_mailbox: None,
            compliance: false,
            base_url: None,
        }
    }

    /// Selects the cloud environment.
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Manages a customer tenant (`DelegatedOrg=`).
    pub fn delegated_org(mut self, org: impl Into<String>) -> Self {
        self.delegated_org = Some(org.into());
        self
    }

    /// Routes the session by this mailbox (`email=`).
    pub fn anchor_mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.anchor_mailbox = Some(mailbox.into());
        self
    }

    /// Targets Security & Compliance PowerShell instead of Exchange Online.
    pub fn security_compliance(mut self) -> Self {
        self.compliance = true;
        self
    }

    /// Replaces scheme, host and port (the path and query are still generated).
    pub fn base_url(mut self, url: Url) -> Self {
        self.base_url = Some(url);
        self
    }

    /// The Basic user name.
    pub fn user(&self) -> String {
        self.identity.user()
    }

    /// Credentials carrying tokens from `token` as the Basic password.
    pub fn credentials(&self, token: Arc<dyn TokenProvider>) -> Credentials {
        Credentials::OAuthBearerAsBasic {
            user: self.user(),
            token,
        }
    }

    /// The OAuth scope to request: Exchange Online's resource in this cloud. Security &
    /// Compliance tokens are also issued for it in the worldwide cloud; override the
    /// scope in the token provider when a tenant needs otherwise.
    pub fn scope(&self) -> String {
        self.cloud.exchange_scope()
    }

    /// The endpoint (configuration `Microsoft.Exchange`, redirection allowed).
    pub fn endpoint(&self) -> Result<Endpoint, ProfileError> {
        let host = if self.compliance {
            self.cloud.compliance_host()
        } else {
            self.cloud.exchange_host()
        };
        let profile = if self.compliance {
            "security & compliance"
        } else {
            "exchange online"
        };
        let mut url = match &self.base_url {
            Some(base) => base.clone(),
            None => {
                Url::parse(&format!("https://{host}/")).map_err(|_| ProfileError::InvalidHost {
                    host: host.to_string(),
                    profile,
                })?
            }
        };
        url.set_path("/PowerShell-LiveId");
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("BasicAuthToOAuthConversion", "true");
            if let Some(org) = &self.delegated_org {
                q.append_pair("DelegatedOrg", org);
            }
            if let Some(mailbox) = &self.anchor_mailbox {
                q.append_pair("email", mailbox);
            }
        }
        Ok(Endpoint {
            url,
            configuration: EXCHANGE_CONFIGURATION.to_string(),
            allow_redirection: true,
        })
    }
}

/// On-premises Exchange: `https://<server>/PowerShell`, Basic authentication,
/// configuration `Microsoft.Exchange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnPremisesExchange {
    /// The Exchange server (host name, optionally `:port`).
    pub server: String,
    /// Use plain http (requires `allow_insecure_http` to send Basic credentials).
    pub http: bool,
}

impl OnPremisesExchange {
    /// An https endpoint on `server`.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            http: false,
        }
    }

    /// The endpoint (redirection not allowed).
    pub fn endpoint(&self) -> Result<Endpoint, ProfileError> {
        let scheme = if self.http { "http" } else { "https" };
        let url = parse_host_url(scheme, &self.server, "/PowerShell", "on-premises exchange")?;
        Ok(Endpoint {
            url,
            configuration: EXCHANGE_CONFIGURATION.to_string(),
            allow_redirection: false,
        })
    }
}

/// A generic WinRM endpoint: `http://host:5985/wsman` or `https://host:5986/wsman`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinRm {
    /// The host name or address.
    pub host: String,
    /// https (port 5986) rather than http (port 5985).
    pub https: bool,
    /// A non-default port.
    pub port: Option<u16>,
    /// The PowerShell configuration; `Microsoft.PowerShell` by default.
    pub configuration: String,
    /// Whether redirects may be followed.
    pub allow_redirection: bool,
}

impl WinRm {
    /// An https endpoint on `host`, port 5986, configuration `Microsoft.PowerShell`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            https: true,
            port: None,
            configuration: DEFAULT_CONFIGURATION.to_string(),
            allow_redirection: false,
        }
    }

    /// Plain http on port 5985 (unless a port is set).
    pub fn http(mut self) -> Self {
        self.https = false;
        self
    }

    /// A specific port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// A specific PowerShell configuration.
    pub fn configuration(mut self, name: impl Into<String>) -> Self {
        self.configuration = name.into();
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> Result<Endpoint, ProfileError> {
        let (scheme, default_port) = if self.https {
            ("https", 5986)
        } else {
            ("http", 5985)
        };
        let port = self.port.unwrap_or(default_port);
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let url = parse_host_url(scheme, &format!("{host}:{port}"), "/wsman", "winrm")?;
        Ok(Endpoint {
            url,
            configuration: self.configuration.clone(),
            allow_redirection: self.allow_redirection,
        })
    }
}

fn parse_host_url(
    scheme: &str,
    host: &str,
    path: &str,
    profile: &'static str,
) -> Result<Url, ProfileError> {
    let err = || ProfileError::InvalidHost {
        host: host.to_string(),
        profile,
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(err());
    }
    let url = Url::parse(&format!("{scheme}://{host}{path}")).map_err(|_| err())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err());
    }
    Ok(url)
}

/// Any of the supported connection targets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionProfile {
    /// Exchange Online or Security & Compliance.
    ExchangeOnline(ExchangeOnline),
    /// On-premises Exchange.
    OnPremisesExchange(OnPremisesExchange),
    /// A generic WinRM endpoint.
    WinRm(WinRm),
}

impl ConnectionProfile {
    /// The endpoint this profile connects to.
    pub fn endpoint(&self) -> Result<Endpoint, ProfileError> {
        match self {
            ConnectionProfile::ExchangeOnline(p) => p.endpoint(),
            ConnectionProfile::OnPremisesExchange(p) => p.endpoint(),
            ConnectionProfile::WinRm(p) => p.endpoint(),
        }
    }
}

impl From<ExchangeOnline> for ConnectionProfile {
    fn from(p: ExchangeOnline) -> Self {
        Self::ExchangeOnline(p)
    }
}

impl From<OnPremisesExchange> for ConnectionProfile {
    fn from(p: OnPremisesExchange) -> Self {
        Self::OnPremisesExchange(p)
    }
}

impl From<WinRm> for ConnectionProfile {
    fn from(p: WinRm) -> Self {
        Self::WinRm(p)
    }
}
