//! How a session is configured: its settings, where its MessageIDs come from, and the header
//! every request carries.

use rps_psrp::pool::PoolConfig;
use rps_wsman::Header;
use uuid::Uuid;

/// Where MessageIDs come from. The driver uses random ids; tests use a sequence.
pub trait IdSource: Send {
    /// The next id.
    fn next_id(&mut self) -> Uuid;
}

/// Ids `00000000-0000-0000-0000-000000000001`, `...02`, ... for exact tests.
#[derive(Debug, Default, Clone)]
pub struct SequentialIds(u128);

impl IdSource for SequentialIds {
    fn next_id(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}

/// How to open the session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The `wsa:To` address (the endpoint URL).
    pub to: String,
    /// The resource URI of the configuration, e.g.
    /// `http://schemas.microsoft.com/powershell/Microsoft.Exchange`.
    pub resource_uri: String,
    /// `wsman:MaxEnvelopeSize` in bytes for the first requests.
    pub max_envelope_size: u64,
    /// Raise [`SessionConfig::max_envelope_size`] to 512,000 bytes once the server speaks
    /// protocol 2.2 or later (as PowerShell and pypsrp do).
    pub raise_envelope_size: bool,
    /// `wsman:OperationTimeout` in seconds: how long a Receive waits for data.
    pub operation_timeout_secs: u64,
    /// `wsman:Locale` and `wsmv:DataLocale`.
    pub locale: String,
    /// The WS-Man session id (`wsmv:SessionId`), if any.
    pub session_id: Option<Uuid>,
    /// Send a WinRS terminate Signal for each pipeline once it has finished, so the server
    /// frees the command at once (PowerShell does; some clients don't).
    pub terminate_finished_pipelines: bool,
    /// Further WS-Man options on the Create besides `protocolversion`, e.g.
    /// `("WINRS_NOPROFILE", "TRUE")` to skip loading the user's profile.
    pub create_options: Vec<(String, String)>,
    /// The runspace pool's settings.
    pub pool: PoolConfig,
    /// Read the server's WinRM configuration (a WS-Transfer Get) before the Create and use
    /// its `MaxEnvelopeSizekb` instead of [`SessionConfig::max_envelope_size`], for servers
    /// configured below the usual 150 KiB (as pypsrp does when asked).
    pub read_server_config: bool,
    /// The idle timeout a Disconnect asks the server to keep the shell for, in seconds
    /// (`None`: the server's default).
    pub disconnect_idle_timeout_secs: Option<u64>,
    /// Limits on the envelopes the server sends (size, nesting, streams).
    pub wsman_limits: rps_wsman::Limits,
}

impl SessionConfig {
    /// A configuration for `to` and the PowerShell configuration `configuration_name`.
    pub fn new(to: impl Into<String>, configuration_name: &str) -> Self {
        SessionConfig {
            to: to.into(),
            resource_uri: format!("http://schemas.microsoft.com/powershell/{configuration_name}"),
            max_envelope_size: 153_600,
            raise_envelope_size: true,
            operation_timeout_secs: 20,
            locale: "en-US".to_owned(),
            session_id: None,
            terminate_finished_pipelines: true,
            create_options: Vec::new(),
            pool: PoolConfig::default(),
            read_server_config: false,
            disconnect_idle_timeout_secs: None,
            wsman_limits: rps_wsman::Limits::default(),
        }
    }
}

/// The header every request of `config` carries: address, action, resource URI, MessageID,
/// envelope size, OperationTimeout, locales and the session id.
pub(crate) fn request_header(
    config: &SessionConfig,
    action: &str,
    resource_uri: String,
    message_id: Uuid,
    max_envelope_size: u64,
) -> Header {
    let mut h = Header::request(config.to.clone(), action, resource_uri, message_id)
        .with_max_envelope_size(max_envelope_size)
        .with_operation_timeout_secs(config.operation_timeout_secs)
        .with_locale(&config.locale, &config.locale);
    if let Some(sid) = config.session_id {
        h = h.with_session_id(sid);
    }
    h
}
