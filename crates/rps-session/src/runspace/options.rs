//! How to connect: endpoint, credentials, transport, retries, and who sees the exchanges.

use std::sync::Arc;
use std::time::Duration;

use rps_psrp::pool::PoolConfig;
use uuid::Uuid;

use crate::http::{Credentials, Endpoint, HttpRequest, HttpResponse, TransportConfig};
use crate::token::{Clock, SystemClock};

/// Sees every HTTP exchange of a session, e.g. to record a transcript
/// (`rps_replay::recorder`). Requests are seen without their `Authorization` and `Cookie`
/// headers; observers must still redact what they keep.
pub trait ExchangeObserver: Send + Sync + std::fmt::Debug {
    /// One exchange: the request and the response, or the transport error's text.
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>);
}

/// How to connect.
#[derive(Debug)]
pub struct ConnectOptions {
    /// Where, and which configuration.
    pub endpoint: Endpoint,
    /// Who (`None`: no Authorization header).
    pub credentials: Option<Credentials>,
    /// TLS roots, proxy, timeouts.
    pub transport: TransportConfig,
    /// Send Basic credentials over plain http (refused otherwise).
    pub allow_insecure_http: bool,
    /// The runspace pool's settings (set `allow_scripts` false for Exchange).
    pub pool: PoolConfig,
    /// `wsman:OperationTimeout` in seconds.
    pub operation_timeout_secs: u64,
    /// Initial `wsman:MaxEnvelopeSize` in bytes.
    pub max_envelope_size: u64,
    /// Sees every HTTP exchange (recording).
    pub observer: Option<Arc<dyn ExchangeObserver>>,
    /// Further WS-Man options on the Create, e.g. `("WINRS_NOPROFILE", "TRUE")`.
    pub create_options: Vec<(String, String)>,
    /// Retries of the shell's creation and of failed Receives.
    pub retry: RetryPolicy,
    /// With OAuth credentials: replace the shell by a new one before the next command once
    /// the token it was created with expires within this margin (`None`: never). Default
    /// five minutes.
    pub token_refresh_margin: Option<Duration>,
    /// The clock token expiry is judged by (default the system clock).
    pub clock: Arc<dyn Clock>,
    /// Read the server's WinRM configuration before creating the shell and use its
    /// maximum envelope size (for servers configured below the usual 150 KiB).
    pub read_server_config: bool,
    /// Limits on the envelopes the server sends (size, nesting, streams).
    pub wsman_limits: rps_wsman::Limits,
    /// The WS-Man session id (`wsmv:SessionId`) the requests carry (`None`: a fresh random
    /// one per pool). Pools and listings that share one, as requests of one client
    /// connection, can be told apart by the server only by their ShellId.
    pub session_id: Option<Uuid>,
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts to create the runspace pool, the first included, when the server refuses
    /// with Exchange's MaxConcurrency fault or HTTP 503 (1: no retry, the default).
    pub attempts: u32,
    /// The delay before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// The longest delay, also the cap on a server's `Retry-After`.
    pub max_delay: Duration,
    /// Consecutive failed Receives (connection dropped, timed out, HTTP 503) sent again
    /// before the session is given up (default 8).
    pub receive_attempts: u32,
}

impl Default for RetryPolicy {
    /// One creation attempt; 8 Receive attempts; delays from 500 ms to 10 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            receive_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// `attempts` creation attempts with delays from `base_delay` doubling up to
    /// `max_delay`.
    pub fn new(attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            attempts,
            base_delay,
            max_delay,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `attempt` (2 for the first retry), at least the server's
    /// `Retry-After`, never more than [`RetryPolicy::max_delay`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(2).min(20);
        let backoff = self.base_delay.saturating_mul(1u32 << exp);
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
}

impl ConnectOptions {
    /// Options with defaults for `endpoint`. Scripts are refused up front for the
    /// `Microsoft.Exchange` configuration, which runs in NoLanguage mode.
    pub fn new(endpoint: Endpoint, credentials: Option<Credentials>) -> Self {
        let pool = PoolConfig {
            allow_scripts: !endpoint
                .configuration
                .eq_ignore_ascii_case("Microsoft.Exchange"),
            ..PoolConfig::default()
        };
        ConnectOptions {
            endpoint,
            credentials,
            transport: TransportConfig::default(),
            allow_insecure_http: false,
            pool,
            operation_timeout_secs: 20,
            max_envelope_size: 153_600,
            observer: None,
            create_options: Vec::new(),
            retry: RetryPolicy::default(),
            token_refresh_margin: Some(Duration::from_secs(300)),
            clock: Arc::new(SystemClock),
            read_server_config: false,
            wsman_limits: rps_wsman::Limits::default(),
            session_id: None,
        }
    }
}
