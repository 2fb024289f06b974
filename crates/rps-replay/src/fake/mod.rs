//! A scripted fake of Exchange Online's legacy remote PowerShell endpoint, on loopback.
//!
//! It speaks real WS-Management and PSRP (the server machines of `rps-psrp`), so any PSRP
//! client can run Exchange cmdlets against it:
//!
//! - `POST /PowerShell-LiveId?BasicAuthToOAuthConversion=true` (path case-insensitive;
//!   `DelegatedOrg` and `email` are accepted and ignored) with
//!   `Authorization: Basic base64("<user>:Bearer <jwt>")`. The JWT is decoded, not verified:
//!   401 for a missing, malformed or expired token, a wrong audience or a user that does not
//!   match it; 403 `Access is denied.` for a token without an Exchange role (app-only:
//!   `roles` has `Exchange.ManageAsApp` and `wids` an Exchange-capable directory role;
//!   delegated: `scp` has `RemotePowerShell.AccessAsUser.All`). `POST /PowerShell` takes the
//!   configured plain Basic users.
//! - With redirection on, a front listener answers every request with a 302 to the pod
//!   listener (same path and query); the pod sets an `MS-WSMAN` affinity cookie on its first
//!   response and refuses later requests without it.
//! - Configuration `http://schemas.microsoft.com/powershell/Microsoft.Exchange`, NoLanguage
//!   mode (scripts fail), at most [`FakeExchangeBuilder::max_shells_per_user`] shells per
//!   user (Exchange's MaxConcurrency fault), Receive long-polls until output exists or the
//!   OperationTimeout (capped) passes (`w:TimedOut`), Signal stops or terminates a pipeline,
//!   Delete frees the shell.
//! - WS-Transfer Get of a shell (resource URI `.../wsman/1/windows/shell` with the ShellId
//!   selector) answers with its `rsp:Shell`, `rsp:State` `Connected` or `Disconnected`
//!   (`w:InvalidSelectors` for a shell the user does not have). Get of the WinRM
//!   configuration (`.../wsman/1/config`) answers with a small `cfg:Config` whose
//!   `MaxEnvelopeSizekb` is [`FakeExchangeBuilder::max_envelope_size_kb`]; requests larger
//!   than that are refused with `w:EncodingLimit`, as WinRM refuses them.
//! - The session key exchange: PUBLIC_KEY on the shell's stdin is answered with
//!   ENCRYPTED_SESSION_KEY on the shell's stdout (a fresh random AES-256 key each time),
//!   unless [`FakeExchangeBuilder::answer_key_exchange`] is off.
//! - WinRS Disconnect: Exchange Online does not support it and answers with a WS-Man fault,
//!   and so does the fake by default (the fault's code is Windows'
//!   `ERROR_WINRS_SHELL_DISCONNECT_NOT_SUPPORTED`; Exchange's exact fault text was not
//!   recorded). With [`FakeExchangeBuilder::disconnect_supported`] the fake behaves like a
//!   Windows PowerShell 3+ endpoint instead: Disconnect marks the shell `Disconnected`
//!   (its pipelines keep running), Receive, Command, Send and Signal on it are refused with
//!   Windows' `ERROR_WINRS_SHELL_DISCONNECTED` fault, Reconnect resumes it, and WS-Man
//!   Connect (the `connectXml` of SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL, or a
//!   `CommandId`) lets the same user take the pool and its pipelines over from a new
//!   connection.
//! - Test hooks: [`FakeExchange::kill_shell`] forgets a shell as a server restart or an idle
//!   timeout would; [`FakeExchange::shell_state`] tells whether a shell is connected.
//! - Cmdlets come from the catalog ([`catalog`]) over a generated tenant ([`tenant`]);
//!   listings are generated as Receives drain them, never all at once.
//! - Faults on demand: [`FaultSpec`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rps_replay::fake::FakeExchange;
//!
//! let fake = FakeExchange::builder().mailboxes(50).start().await?;
//! let pool = rps_session::RunspacePool::connect(fake.connect_options()).await?;
//! let result = pool
//!     .invoke([rps_session::Command::new("Get-Mailbox").param("ResultSize", 5)])
//!     .await?
//!     .collect()
//!     .await?;
//! assert_eq!(result.output.len(), 5);
//! pool.close().await?;
//! fake.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod catalog;
pub mod cmdlets;
pub mod faults;
mod shell;
pub mod tenant;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rps_psrp::server::ServerConfig;
use rps_session::ConnectOptions;
use rps_session::http::{Credentials, Endpoint};
use rps_session::jwt::{Claims, Jwt, MANAGE_AS_APP_ROLE, REMOTE_POWERSHELL_SCOPE};
use rps_session::token::StaticToken;
use rps_wsman::ns::{self, action, signal};
use rps_wsman::{
    Body, CommandState, ConnectResponse, CreateResponse, Envelope, Fault, Header, Item, Limits,
    QName, RawElement, ReceiveResponse, ResourceCreated, Selector, Shell as WsShell, Stream,
    WsmanFault, uuid_upper,
};
use tokio::sync::watch;
use uuid::Uuid;

pub use catalog::{Catalog, CatalogError};
pub use faults::{FaultSpec, FaultSpecError, Op};

use crate::server::{Request, Response, Server, ServerConfig as HttpConfig};
use auth::{Principal, Refusal, authenticate};
use cmdlets::Env;
use shell::Shell;
use tenant::{Rng, Tenant};

/// The resource URI of the Exchange configuration.
pub const EXCHANGE_RESOURCE_URI: &str = ns::resource::EXCHANGE;

/// Exchange's refusal of a fourth concurrent runspace.
pub const MAX_CONCURRENCY_MESSAGE: &str = "Fail to create a runspace because you have exceeded the maximum number of connections allowed : 3 for the policy party : MaxConcurrency. Please close existing runspace and try again.";

/// The WSManFault code of `w:TimedOut` (`ERROR_WSMAN_OPERATION_TIMEDOUT`).
pub const TIMED_OUT_CODE: u32 = 2_150_858_793;
/// The WSManFault code of a missing shell (`ERROR_WSMAN_INVALID_SELECTORS`).
pub const INVALID_SELECTORS_CODE: u32 = 2_150_858_843;
/// The WSManFault code of an operation on a disconnected shell
/// (`ERROR_WINRS_SHELL_DISCONNECTED`).
pub const SHELL_DISCONNECTED_CODE: u32 = 2_150_859_204;
/// The WSManFault code of a refused Disconnect (`ERROR_WINRS_SHELL_DISCONNECT_NOT_SUPPORTED`).
pub const DISCONNECT_NOT_SUPPORTED_CODE: u32 = 2_150_859_205;
/// The WSManFault code of a Connect to a shell that is still connected to a client
/// (`ERROR_WINRS_SHELL_CONNECTED_TO_DIFFERENT_CLIENT`).
pub const CONNECTED_TO_DIFFERENT_CLIENT_CODE: u32 = 2_150_859_213;
/// The WSManFault code of a Disconnect of a shell already disconnected
/// (`ERROR_WINRS_SHELL_DISCONNECT_OPERATION_NOT_VALID`).
pub const DISCONNECT_NOT_VALID_CODE: u32 = 2_150_859_215;
/// The default `MaxEnvelopeSizekb` of the fake's WinRM configuration.
pub const DEFAULT_MAX_ENVELOPE_SIZE_KB: u32 = 500;

/// The tenant id used when none is configured.
pub const DEFAULT_TENANT_ID: &str = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

/// The clock the fake reads (token expiry, timestamps).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Why the fake could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The catalog is broken.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Settings of a [`FakeExchange`]; made with [`FakeExchange::builder`].
pub struct FakeExchangeBuilder {
    mailboxes: usize,
    seed: u64,
    faults: FaultSpec,
    redirect: bool,
    bind: String,
    tenant_id: String,
    max_shells_per_user: usize,
    operation_timeout_cap: Duration,
    basic_users: Vec<(String, String)>,
    clock: Clock,
    catalog: Option<Catalog>,
    micro_delay: f64,
    progress_every: usize,
    resource_uris: Vec<String>,
    max_envelope_size_kb: u32,
    disconnect_supported: bool,
    answer_key_exchange: bool,
}

impl std::fmt::Debug for FakeExchangeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeExchangeBuilder")
            .field("mailboxes", &self.mailboxes)
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .field("redirect", &self.redirect)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl Default for FakeExchangeBuilder {
    fn default() -> Self {
        FakeExchangeBuilder {
            mailboxes: 25,
            seed: 1,
            faults: FaultSpec::none(),
            redirect: true,
            bind: "127.0.0.1:0".to_owned(),
            tenant_id: DEFAULT_TENANT_ID.to_owned(),
            max_shells_per_user: 3,
            operation_timeout_cap: Duration::from_secs(5),
            basic_users: Vec::new(),
            clock: Arc::new(SystemTime::now),
            catalog: None,
            micro_delay: 0.0,
            progress_every: 1000,
            resource_uris: vec![EXCHANGE_RESOURCE_URI.to_owned()],
            max_envelope_size_kb: DEFAULT_MAX_ENVELOPE_SIZE_KB,
            disconnect_supported: false,
            answer_key_exchange: true,
        }
    }
}

impl FakeExchangeBuilder {
    /// How many mailboxes the generated tenant has (default 25).
    pub fn mailboxes(mut self, n: usize) -> Self {
        self.mailboxes = n;
        self
    }

    /// The seed of the tenant and of the "Micro delay" dice (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Faults to inject (default none).
    pub fn faults(mut self, spec: FaultSpec) -> Self {
        self.faults = spec;
        self
    }

    /// Whether a front listener redirects to the pod (default true).
    pub fn redirect(mut self, yes: bool) -> Self {
        self.redirect = yes;
        self
    }

    /// The address of the first listener (default `127.0.0.1:0`); the other listener takes
    /// any free port on the same host.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// The tenant id app-only users must name (`OAuthUser@<tid>`).
    pub fn tenant_id(mut self, tid: impl Into<String>) -> Self {
        self.tenant_id = tid.into();
        self
    }

    /// Concurrent shells per user (default 3, as Exchange Online).
    pub fn max_shells_per_user(mut self, n: usize) -> Self {
        self.max_shells_per_user = n;
        self
    }

    /// The longest a Receive waits for output, whatever the request's OperationTimeout
    /// (default 5 s).
    pub fn operation_timeout_cap(mut self, d: Duration) -> Self {
        self.operation_timeout_cap = d;
        self
    }

    /// Accepts plain Basic `user`/`password` (on `/PowerShell`, and on `/PowerShell-LiveId`).
    pub fn basic_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_users.push((user.into(), password.into()));
        self
    }

    /// The clock for token expiry and timestamps (default the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A catalog other than the built-in one.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Probability of Exchange's "Micro delay applied" warning per pipeline (default 0).
    pub fn micro_delay(mut self, p: f64) -> Self {
        self.micro_delay = p;
        self
    }

    /// Objects between progress records of long listings (default 1000; 0 turns them off).
    pub fn progress_every(mut self, n: usize) -> Self {
        self.progress_every = n;
        self
    }

    /// Also accept the configuration `http://schemas.microsoft.com/powershell/<name>`
    /// (e.g. `Microsoft.PowerShell` for pypsrp's default).
    pub fn accept_configuration(mut self, name: &str) -> Self {
        self.resource_uris
            .push(format!("http://schemas.microsoft.com/powershell/{name}"));
        self
    }

    /// The `MaxEnvelopeSizekb` of the WinRM configuration a WS-Transfer Get reads (default
    /// [`DEFAULT_MAX_ENVELOPE_SIZE_KB`], 500 as on Windows); requests larger than that many
    /// KiB are refused with `w:EncodingLimit`. At least 1.
    pub fn max_envelope_size_kb(mut self, kb: u32) -> Self {
        self.max_envelope_size_kb = kb.max(1);
        self
    }

    /// Serve WinRS Disconnect, Reconnect and Connect as a Windows PowerShell endpoint does
    /// (default false: Exchange Online refuses Disconnect with a fault). See the
    /// [module docs](self).
    pub fn disconnect_supported(mut self, yes: bool) -> Self {
        self.disconnect_supported = yes;
        self
    }

    /// Answer the session key exchange (default true). Off, PUBLIC_KEY is taken and never
    /// answered, for clients' key exchange timeouts.
    pub fn answer_key_exchange(mut self, yes: bool) -> Self {
        self.answer_key_exchange = yes;
        self
    }

    /// Binds the listeners and starts serving.
    pub async fn start(self) -> Result<FakeExchange, StartError> {
        let catalog = match self.catalog {
            Some(c) => c,
            None => Catalog::builtin()?,
        };
        let tenant = Tenant::new(catalog.tenant.clone(), self.mailboxes, self.seed);
        let state = Arc::new(State {
            catalog: Arc::new(catalog),
            tenant: Arc::new(Mutex::new(tenant)),
            shells: Mutex::new(HashMap::new()),
            dice: Mutex::new(Rng::new(self.faults.seed)),
            pipelines: AtomicU64::new(0),
            pod_base: OnceLock::new(),
            closing: AtomicBool::new(false),
            changed: watch::channel(0u64).0,
            cfg: Config {
                seed: self.seed,
                faults: self.faults,
                redirect: self.redirect,
                tenant_id: self.tenant_id,
                max_shells_per_user: self.max_shells_per_user,
                operation_timeout_cap: self.operation_timeout_cap,
                basic_users: self.basic_users,
                clock: self.clock,
                micro_delay: self.micro_delay,
                progress_every: self.progress_every,
                resource_uris: self.resource_uris,
                max_envelope_size_kb: self.max_envelope_size_kb,
                disconnect_supported: self.disconnect_supported,
                answer_key_exchange: self.answer_key_exchange,
            },
        });
        let http = HttpConfig::default();
        let bind_err = |addr: &str, source| StartError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let (front, pod) = if state.cfg.redirect {
            let s = state.clone();
            let front = Server::bind_with(self.bind.as_str(), http, move |req| {
                handle(s.clone(), Role::Front, req)
            })
            .await
            .map_err(|e| bind_err(&self.bind, e))?;
            let pod_addr = SocketAddr::new(front.local_addr().ip(), 0);
            let s = state.clone();
            let pod =
                Server::bind_with(pod_addr, http, move |req| handle(s.clone(), Role::Pod, req))
                    .await
                    .map_err(|e| bind_err(&pod_addr.to_string(), e))?;
            (Some(front), pod)
        } else {
            let s = state.clone();
            let pod = Server::bind_with(self.bind.as_str(), http, move |req| {
                handle(s.clone(), Role::Pod, req)
            })
            .await
            .map_err(|e| bind_err(&self.bind, e))?;
            (None, pod)
        };
        let _ = state.pod_base.set(pod.url());
        Ok(FakeExchange { front, pod, state })
    }
}

struct Config {
    seed: u64,
    faults: FaultSpec,
    redirect: bool,
    tenant_id: String,
    max_shells_per_user: usize,
    operation_timeout_cap: Duration,
    basic_users: Vec<(String, String)>,
    clock: Clock,
    micro_delay: f64,
    progress_every: usize,
    resource_uris: Vec<String>,
    max_envelope_size_kb: u32,
    disconnect_supported: bool,
    answer_key_exchange: bool,
}

/// A shell shared between the requests that name it.
type SharedShell = Arc<Mutex<Shell>>;

struct State {
    cfg: Config,
    catalog: Arc<Catalog>,
    tenant: Arc<Mutex<Tenant>>,
    /// Open shells with their owners.
    shells: Mutex<HashMap<Uuid, (String, SharedShell)>>,
    dice: Mutex<Rng>,
    pipelines: AtomicU64,
    pod_base: OnceLock<String>,
    /// Set by [`FakeExchange::shutdown`]: waiting Receives give up at once.
    closing: AtomicBool,
    /// Bumped whenever a shell changes, to wake long-polling Receives.
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl State {
    fn roll(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.dice).chance(p)
    }

    fn env(&self) -> Env {
        let n = self.pipelines.fetch_add(1, Ordering::Relaxed);
        Env {
            catalog: self.catalog.clone(),
            tenant: self.tenant.clone(),
            now: (self.cfg.clock)(),
            micro_delay: self.cfg.micro_delay,
            rng: Rng::new(self.cfg.seed ^ n.wrapping_mul(0x9E37_79B9)),
            progress_every: self.cfg.progress_every,
        }
    }

    fn shell(&self, id: Uuid) -> Option<Arc<Mutex<Shell>>> {
        lock(&self.shells).get(&id).map(|(_, s)| s.clone())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// The claims of a token [`FakeExchange::mint_token`] makes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    /// `upn` for a delegated token; `None` for app-only.
    pub upn: Option<String>,
    /// `tid` (default: the fake's tenant id).
    pub tid: Option<String>,
    /// `aud`.
    pub aud: String,
    /// `roles`.
    pub roles: Vec<String>,
    /// `wids`.
    pub wids: Vec<String>,
    /// `scp`.
    pub scp: Vec<String>,
    /// Seconds from now (the fake's clock) to `exp`; negative for an expired token.
    pub lifetime_secs: i64,
}

impl TokenSpec {
    /// An app-only token Exchange accepts: `Exchange.ManageAsApp`, Exchange Administrator.
    pub fn app_only() -> Self {
        TokenSpec {
            upn: None,
            tid: None,
            aud: auth::AUDIENCE.to_owned(),
            roles: vec![MANAGE_AS_APP_ROLE.to_owned()],
            wids: vec![auth::EXCHANGE_CAPABLE_ROLES[0].to_owned()],
            scp: Vec::new(),
            lifetime_secs: 3600,
        }
    }

    /// A delegated token for `upn` with `RemotePowerShell.AccessAsUser.All`.
    pub fn delegated(upn: impl Into<String>) -> Self {
        TokenSpec {
            upn: Some(upn.into()),
            tid: None,
            aud: auth::AUDIENCE.to_owned(),
            roles: Vec::new(),
            wids: Vec::new(),
            scp: vec![REMOTE_POWERSHELL_SCOPE.to_owned()],
            lifetime_secs: 3600,
        }
    }

    /// Sets the lifetime (negative: already expired).
    pub fn lifetime(mut self, secs: i64) -> Self {
        self.lifetime_secs = secs;
        self
    }

    /// Drops every role, directory role and scope (a token Exchange answers with 403).
    pub fn without_roles(mut self) -> Self {
        self.roles.clear();
        self.wids.clear();
        self.scp.clear();
        self
    }
}

/// Counters of a running fake, from [`FakeExchange::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Requests the front listener answered (0 without redirection).
    pub front_requests: u64,
    /// Requests the pod answered.
    pub pod_requests: u64,
    /// Connections the pod accepted.
    pub pod_connections: u64,
    /// Shells open now.
    pub open_shells: usize,
}

/// A running fake Exchange Online endpoint; see the [module docs](self).
pub struct FakeExchange {
    front: Option<Server>,
    pod: Server,
    state: Arc<State>,
}

impl std::fmt::Debug for FakeExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeExchange")
            .field("url", &self.url())
            .field("pod_url", &self.pod_url())
            .finish_non_exhaustive()
    }
}

/// The path and query clients connect to.
pub const LIVEID_PATH: &str = "/powershell-liveid?BasicAuthToOAuthConversion=true";

impl FakeExchange {
    /// A builder with the defaults.
    pub fn builder() -> FakeExchangeBuilder {
        FakeExchangeBuilder::default()
    }

    /// The connection URL: the front listener (or the pod without redirection) with
    /// `/powershell-liveid?BasicAuthToOAuthConversion=true`.
    pub fn url(&self) -> String {
        let base = self.front.as_ref().unwrap_or(&self.pod).url();
        format!("{base}{LIVEID_PATH}")
    }

    /// The pod's URL with the same path and query.
    pub fn pod_url(&self) -> String {
        format!("{}{LIVEID_PATH}", self.pod.url())
    }

    /// The on-premises style URL (`/PowerShell`, plain Basic) on the pod.
    pub fn basic_url(&self) -> String {
        format!("{}/PowerShell", self.pod.url())
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.state.cfg.tenant_id
    }

    /// Shells open now.
    pub fn open_shells(&self) -> usize {
        lock(&self.state.shells).len()
    }

    /// Pipelines still running in open shells.
    pub fn running_pipelines(&self) -> usize {
        let shells: Vec<_> = lock(&self.state.shells)
            .values()
            .map(|(_, s)| s.clone())
            .collect();
        shells.iter().map(|s| lock(s).running()).sum()
    }

    /// Test hook: forgets shell `shell_id` (its pipelines with it) as a server restart or
    /// an idle timeout would, without telling its client; later requests naming it get
    /// `w:InvalidSelectors`. False when no such shell is open.
    pub fn kill_shell(&self, shell_id: Uuid) -> bool {
        let gone = lock(&self.state.shells).remove(&shell_id).is_some();
        self.state.bump();
        gone
    }

    /// Test hook: the `rsp:State` a Get of shell `shell_id` would report (`Connected` or
    /// `Disconnected`), or `None` when no such shell is open.
    pub fn shell_state(&self, shell_id: Uuid) -> Option<&'static str> {
        let shell = self.state.shell(shell_id)?;
        Some(state_name(&lock(&shell)))
    }

    /// Counters.
    pub fn stats(&self) -> FakeStats {
        FakeStats {
            front_requests: self.front.as_ref().map_or(0, |f| f.stats().requests),
            pod_requests: self.pod.stats().requests,
            pod_connections: self.pod.stats().connections,
            open_shells: self.open_shells(),
        }
    }

    /// An unsigned JWT with `spec`'s claims, `exp` relative to the fake's clock.
    pub fn mint_token(&self, spec: &TokenSpec) -> String {
        let now = (self.state.cfg.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let claims = Claims {
            aud: vec![spec.aud.clone()],
            iss: Some(format!("https://sts.windows.net/{}/", self.tenant_id())),
            tid: Some(
                spec.tid
                    .clone()
                    .unwrap_or_else(|| self.tenant_id().to_owned()),
            ),
            appid: Some("a0c73c16-a7e3-4564-9a95-2bdf47383716".to_owned()),
            idtyp: Some(if spec.upn.is_some() { "user" } else { "app" }.to_owned()),
            upn: spec.upn.clone(),
            roles: spec.roles.clone(),
            wids: spec.wids.clone(),
            scp: spec.scp.clone(),
            iat: Some(now - 60),
            nbf: Some(now - 60),
            exp: now + spec.lifetime_secs,
            ..Claims::default()
        };
        Jwt::mint_unsigned(&claims)
    }

    /// App-only credentials (`OAuthUser@<tid>`) with a fresh accepted token.
    pub fn app_only_credentials(&self) -> Credentials {
        self.credentials_for(&TokenSpec::app_only())
    }

    /// Credentials carrying a token minted from `spec` (app-only unless `spec.upn` is set).
    pub fn credentials_for(&self, spec: &TokenSpec) -> Credentials {
        let token = Arc::new(StaticToken::new(self.mint_token(spec)));
        match &spec.upn {
            Some(upn) => Credentials::delegated(upn.clone(), token),
            None => Credentials::app_only(self.tenant_id(), token),
        }
    }

    /// Options for `rps_session::RunspacePool::connect` to this fake: [`FakeExchange::url`],
    /// `Microsoft.Exchange`, redirection allowed, plain http allowed, app-only credentials.
    pub fn connect_options(&self) -> ConnectOptions {
        self.connect_options_with(self.app_only_credentials())
    }

    /// Like [`FakeExchange::connect_options`] with other credentials.
    pub fn connect_options_with(&self, credentials: Credentials) -> ConnectOptions {
        let endpoint = Endpoint {
            // Our own `http://<ip>:<port>/...` text: it always parses.
            url: url::Url::parse(&self.url()).expect("the fake's URL parses"),
            configuration: "Microsoft.Exchange".to_owned(),
            allow_redirection: true,
        };
        let mut o = ConnectOptions::new(endpoint, Some(credentials));
        o.allow_insecure_http = true;
        o
    }

    /// Stops both listeners (in-flight requests get a short grace period).
    pub async fn shutdown(self) {
        self.state.closing.store(true, Ordering::Relaxed);
        self.state.bump();
        if let Some(f) = self.front {
            f.shutdown().await;
        }
        self.pod.shutdown().await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Front,
    Pod,
}

const SOAP_CT: &str = "application/soap+xml;charset=UTF-8";

fn soap(status: u16, env: &Envelope) -> Response {
    Response::new(status)
        .with_header("Content-Type", SOAP_CT)
        .with_body(env.encode())
}

fn reply(req: &Envelope, action: &str, body: Body) -> Envelope {
    let relates = req.header.message_id.clone().unwrap_or_default();
    let mut header = Header::response(action, Uuid::new_v4(), relates);
    header.resource_uri = None;
    Envelope::new(header, body)
}

fn fault(
    req: Option<&Envelope>,
    sender: bool,
    subcode: &str,
    code: Option<u32>,
    message: &str,
) -> Envelope {
    let f = Fault {
        code: QName::new(ns::SOAP, if sender { "Sender" } else { "Receiver" }),
        subcodes: vec![QName::new(ns::WSMAN, subcode)],
        reason: Some(message.to_owned()),
        reason_lang: Some("en-US".to_owned()),
        fault_detail: None,
        wsman_fault: Some(WsmanFault {
            code,
            machine: Some("outlook.office365.com".to_owned()),
            message: Some(message.to_owned()),
            provider_fault: None,
        }),
        detail_raw: Vec::new(),
    };
    let relates = req
        .and_then(|r| r.header.message_id.clone())
        .unwrap_or_default();
    Envelope::new(
        Header::response(action::WSMAN_FAULT, Uuid::new_v4(), relates),
        Body::Fault(f),
    )
}

fn invalid_selectors(req: &Envelope, shell: &str) -> Response {
    let msg = format!(
        "The request for the Windows Remote Shell with ShellId {shell} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation."
    );
    soap(
        500,
        &fault(
            Some(req),
            true,
            ns::fault_code::INVALID_SELECTORS,
            Some(INVALID_SELECTORS_CODE),
            &msg,
        ),
    )
}

fn query_flag(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(key).then(|| v.to_owned())
    })
}

fn cookie_value(req: &Request) -> Option<String> {
    req.header_all("cookie").find_map(|h| {
        h.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            k.eq_ignore_ascii_case("MS-WSMAN").then(|| v.to_owned())
        })
    })
}

fn refusal(r: &Refusal) -> Response {
    match r {
        Refusal::Unauthorized(why) => Response::new(401)
            .with_header("WWW-Authenticate", "Basic Realm=\"\"")
            .with_header("X-Fake-Reason", *why),
        Refusal::Forbidden(why) => {
            Response::text(403, "Access is denied.").with_header("X-Fake-Reason", *why)
        }
    }
}

fn operation(action: Option<&str>) -> Option<Op> {
    Some(match action? {
        action::CREATE => Op::Create,
        action::COMMAND => Op::Command,
        action::SEND => Op::Send,
        action::RECEIVE => Op::Receive,
        action::SIGNAL => Op::Signal,
        action::DELETE => Op::Delete,
        action::GET => Op::Get,
        action::DISCONNECT => Op::Disconnect,
        action::RECONNECT => Op::Reconnect,
        action::CONNECT => Op::Connect,
        _ => return None,
    })
}

async fn handle(state: Arc<State>, role: Role, req: Request) -> Response {
    let path = req.path().trim_end_matches('/').to_ascii_lowercase();
    let liveid = path == "/powershell-liveid";
    if !liveid && path != "/powershell" {
        return Response::text(404, "not found");
    }
    if req.method != "POST" {
        return Response::text(405, "method not allowed").with_header("Allow", "POST");
    }
    let oauth = liveid
        && query_flag(req.query(), "BasicAuthToOAuthConversion")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let now = (state.cfg.clock)();
    let principal = match authenticate(
        req.header("authorization"),
        oauth,
        &state.cfg.basic_users,
        now,
    ) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    if role == Role::Front {
        let base = state.pod_base.get().cloned().unwrap_or_default();
        return Response::new(302).with_header("Location", format!("{base}{}", req.uri));
    }
    let faults = &state.cfg.faults;
    if !faults.slow.is_zero() {
        tokio::time::sleep(faults.slow).await;
    }
    if state.roll(faults.unavailable) {
        return Response::text(503, "Service Unavailable")
            .with_header("Retry-After", faults.retry_after_secs.to_string());
    }
    let env = match Envelope::decode_with(&req.body, &Limits::default()) {
        Ok(e) => e,
        Err(e) => {
            return soap(
                400,
                &fault(None, true, "SchemaValidationError", None, &e.to_string()),
            );
        }
    };
    let Some(op) = operation(env.action()) else {
        return soap(
            400,
            &fault(
                Some(&env),
                true,
                "ActionNotSupported",
                None,
                "The action is not supported by the service.",
            ),
        );
    };
    if faults.fault500_hits(op) && state.roll(faults.fault500) {
        return soap(
            500,
            &fault(
                Some(&env),
                false,
                ns::fault_code::INTERNAL_ERROR,
                Some(2_150_858_752),
                "The WS-Management service cannot process the request because of an internal error (injected fault).",
            ),
        );
    }
    let limit = u64::from(state.cfg.max_envelope_size_kb) * 1024;
    if req.body.len() as u64 > limit {
        return encoding_limit(&env, req.body.len(), limit);
    }
    let cookie = cookie_value(&req);
    let resource = env.resource_uri().unwrap_or_default();
    if op == Op::Get && resource.eq_ignore_ascii_case(ns::resource::CONFIG) {
        return winrm_config(&state, &env);
    }
    if op == Op::Get && !resource.eq_ignore_ascii_case(ns::resource::SHELL) {
        return invalid_resource_uri(&env, resource);
    }
    match op {
        Op::Create => create(&state, &env, &principal, cookie, &req).await,
        _ => {
            let Some(shell_id) = env.shell_uuid() else {
                return invalid_selectors(&env, "(none)");
            };
            let Some(shell) = state.shell(shell_id) else {
                return invalid_selectors(&env, &uuid_upper(shell_id));
            };
            // A new connection takes a disconnected pool over with its own cookie.
            let takeover = op == Op::Connect && env.command_id().is_none();
            let mut set_cookie = None;
            {
                let mut s = lock(&shell);
                let cookie_ok =
                    s.cookie.is_none() || s.cookie == cookie || (takeover && s.disconnected);
                if s.owner != principal.user || !cookie_ok {
                    drop(s);
                    let mut resp = invalid_selectors(&env, &uuid_upper(shell_id));
                    if !cookie_ok {
                        resp.status = 400;
                    }
                    return resp;
                }
                if takeover && s.disconnected && state.cfg.disconnect_supported {
                    let c = cookie.clone().unwrap_or_else(|| {
                        let c = Uuid::new_v4().simple().to_string().to_ascii_uppercase();
                        set_cookie = Some(c.clone());
                        c
                    });
                    s.cookie = Some(c);
                    s.client_ip = req.remote.ip().to_string();
                }
                let busy = matches!(op, Op::Receive | Op::Command | Op::Send | Op::Signal);
                if busy && s.disconnected {
                    drop(s);
                    return shell_disconnected(&env, shell_id);
                }
            }
            let resp = match op {
                Op::Receive => receive(&state, &env, &shell).await,
                Op::Command => command(&state, &env, &shell),
                Op::Send => send(&state, &env, &shell),
                Op::Signal => signal_op(&state, &env, &shell),
                Op::Get => shell_get(&state, &env, &shell, shell_id),
                Op::Disconnect => disconnect(&state, &env, &shell),
                Op::Reconnect => reconnect(&state, &env, &shell),
                Op::Connect => connect(&state, &env, &shell),
                _ => delete(&state, &env, shell_id),
            };
            match set_cookie {
                Some(c) if resp.status == 200 => resp.with_header(
                    "Set-Cookie",
                    format!("MS-WSMAN={c}; path={}; HttpOnly", cookie_path(req.path())),
                ),
                _ => resp,
            }
        }
    }
}

async fn create(
    state: &State,
    env: &Envelope,
    principal: &Principal,
    cookie: Option<String>,
    req: &Request,
) -> Response {
    let Body::Create(ws_shell) = &env.body else {
        return soap(
            400,
            &fault(
                Some(env),
                true,
                "SchemaValidationError",
                None,
                "Create without a Shell",
            ),
        );
    };
    let resource = env.resource_uri().unwrap_or_default();
    if !state
        .cfg
        .resource_uris
        .iter()
        .any(|r| r.eq_ignore_ascii_case(resource))
    {
        return soap(
            500,
            &fault(
                Some(env),
                true,
                "InvalidResourceURI",
                Some(2_150_858_811),
                &format!(
                    "The WS-Management service cannot process the request. The resource URI ({resource}) was not found in the WS-Management catalog."
                ),
            ),
        );
    }
    let id = ws_shell
        .shell_id
        .as_deref()
        .and_then(rps_wsman::parse_uuid_urn)
        .unwrap_or_else(Uuid::new_v4);
    let max_concurrency = || {
        soap(
            500,
            &fault(
                Some(env),
                false,
                ns::fault_code::INTERNAL_ERROR,
                None,
                MAX_CONCURRENCY_MESSAGE,
            ),
        )
    };
    if state.roll(state.cfg.faults.throttle) {
        return max_concurrency();
    }
    let (cookie, set_cookie) = match cookie {
        Some(c) => (c, false),
        None => (
            Uuid::new_v4().simple().to_string().to_ascii_uppercase(),
            true,
        ),
    };
    let config = ServerConfig {
        application_private_data: Some(application_private_data()),
        ..ServerConfig::default()
    };
    let mut shell = Shell::new(id, principal.user.clone(), Some(cookie.clone()), config);
    shell.resource_uri = resource.to_owned();
    shell.client_ip = req.remote.ip().to_string();
    shell.created_at = (state.cfg.clock)();
    shell.answer_key_exchange = state.cfg.answer_key_exchange;
    let creation = ws_shell.creation_xml.clone().unwrap_or_default();
    if let Err(e) = shell.receive(&creation, &mut || state.env()) {
        return soap(
            500,
            &fault(
                Some(env),
                false,
                ns::fault_code::INTERNAL_ERROR,
                None,
                &format!("The runspace pool could not be opened: {e}"),
            ),
        );
    }
    {
        let mut shells = lock(&state.shells);
        let owned = shells
            .values()
            .filter(|(owner, _)| *owner == principal.user)
            .count();
        if owned >= state.cfg.max_shells_per_user {
            return max_concurrency();
        }
        if shells.contains_key(&id) {
            return soap(
                500,
                &fault(
                    Some(env),
                    true,
                    "AlreadyExists",
                    None,
                    "A shell with this ShellId already exists.",
                ),
            );
        }
        shells.insert(id, (principal.user.clone(), Arc::new(Mutex::new(shell))));
    }
    let address = format!(
        "{}{}",
        state.pod_base.get().cloned().unwrap_or_default(),
        req.path()
    );
    let body = Body::CreateResponse(CreateResponse {
        resource_created: Some(ResourceCreated {
            address,
            resource_uri: Some(resource.to_owned()),
            selectors: vec![Selector::new("ShellId", uuid_upper(id))],
        }),
        shell: Some(WsShell {
            shell_id: Some(uuid_upper(id)),
            resource_uri: Some(resource.to_owned()),
            owner: Some(principal.user.clone()),
            client_ip: Some(req.remote.ip().to_string()),
            idle_timeout: Some("PT900.000S".to_owned()),
            input_streams: Some("stdin pr".to_owned()),
            output_streams: Some("stdout".to_owned()),
            max_idle_timeout: Some("PT43200.000S".to_owned()),
            locale: Some("en-US".to_owned()),
            data_locale: Some("en-US".to_owned()),
            compression_mode: Some("XpressCompression".to_owned()),
            profile_loaded: Some("Yes".to_owned()),
            encoding: Some("UTF8".to_owned()),
            buffer_mode: Some("Block".to_owned()),
            state: Some("Connected".to_owned()),
            shell_run_time: Some("P0DT0H0M0S".to_owned()),
            shell_inactivity: Some("P0DT0H0M0S".to_owned()),
            ..WsShell::default()
        }),
    });
    let mut resp = soap(200, &reply(env, action::CREATE_RESPONSE, body));
    if set_cookie {
        resp = resp.with_header(
            "Set-Cookie",
            format!(
                "MS-WSMAN={cookie}; path={}; HttpOnly",
                cookie_path(req.path())
            ),
        );
    }
    resp
}

/// APPLICATION_PRIVATE_DATA: the `$PSVersionTable` of a Windows PowerShell 5.1 host.
fn application_private_data() -> rps_psrp::clixml::Value {
    use rps_psrp::clixml::Value;
    use rps_psrp::records::PrimitiveDictionary;
    let version = |v: &str| Value::Version(v.to_owned());
    let table = PrimitiveDictionary {
        entries: vec![
            ("PSVersion".into(), version("5.1.17763.6054")),
            ("PSEdition".into(), Value::Str("Desktop".into())),
            ("BuildVersion".into(), version("10.0.17763.6054")),
            ("CLRVersion".into(), version("4.0.30319.42000")),
            ("WSManStackVersion".into(), version("3.0")),
            ("PSRemotingProtocolVersion".into(), version("2.3")),
            ("SerializationVersion".into(), version("1.1.0.1")),
        ],
    };
    PrimitiveDictionary {
        entries: vec![("PSVersionTable".into(), table.to_value())],
    }
    .to_value()
}

/// The cookie's path: Exchange Online sets `/powershell-liveid` in lower case whatever the
/// request's case (clients must match it case-insensitively); other paths keep the request's
/// case, so case-sensitive clients (RFC 6265) send the cookie back on `/PowerShell`.
fn cookie_path(path: &str) -> String {
    let path = path.trim_end_matches('/');
    if path.eq_ignore_ascii_case("/powershell-liveid") {
        path.to_ascii_lowercase()
    } else {
        path.to_owned()
    }
}

fn receive_budget(env: &Envelope) -> usize {
    let max = env
        .header
        .max_envelope_size
        .as_ref()
        .map_or(153_600, |m| m.value as usize)
        .clamp(8 * 1024, 4 * 1024 * 1024);
    (max.saturating_sub(2048)) / 4 * 3
}

async fn receive(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    let target = env.command_uuid();
    let budget = receive_budget(env);
    let wait = env
        .header
        .operation_timeout_secs()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(state.cfg.operation_timeout_cap, Duration::from_secs_f64)
        .min(state.cfg.operation_timeout_cap);
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.changed.subscribe();
    loop {
        {
            let mut s = lock(shell);
            if let Err(e) = s.fill(target, budget) {
                drop(s);
                return match e {
                    shell::ShellError::UnknownCommand(_) => {
                        invalid_selectors(env, env.shell_id().unwrap_or_default())
                    }
                    other => soap(
                        500,
                        &fault(
                            Some(env),
                            false,
                            ns::fault_code::INTERNAL_ERROR,
                            None,
                            &other.to_string(),
                        ),
                    ),
                };
            }
            if s.ready(target) {
                if state.roll(state.cfg.faults.drop_receive) {
                    return Response::dropped();
                }
                let got = s.take(target, budget);
                let cid = target.map(uuid_upper);
                let mut streams = Vec::new();
                if !got.data.is_empty() {
                    streams.push(Stream {
                        name: "stdout".to_owned(),
                        command_id: cid.clone(),
                        end: false,
                        data: got.data,
                    });
                }
                let command_state = target.map(|_| CommandState {
                    command_id: cid.clone(),
                    state: if got.done {
                        ns::command_state::DONE
                    } else {
                        ns::command_state::RUNNING
                    }
                    .to_owned(),
                    exit_code: got.done.then_some(0),
                });
                let body = Body::ReceiveResponse(ReceiveResponse {
                    streams,
                    command_state,
                    extra: Vec::new(),
                });
                if target.is_some() && !got.done {
                    // Generate the next batch while the client digests this one, so a long
                    // listing streams at the client's pace (one batch ahead, no more).
                    let shell = shell.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = lock(&shell).fill(target, budget);
                    });
                }
                return soap(200, &reply(env, action::RECEIVE_RESPONSE, body));
            }
        }
        let timed_out = tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err();
        if lock(shell).disconnected {
            // Disconnected (by another connection) while this Receive waited.
            return shell_disconnected(env, env.shell_uuid().unwrap_or_default());
        }
        if timed_out
            || state.closing.load(Ordering::Relaxed)
            || state.shell(env.shell_uuid().unwrap_or_default()).is_none()
        {
            return soap(
                500,
                &fault(
                    Some(env),
                    false,
                    ns::fault_code::TIMED_OUT,
                    Some(TIMED_OUT_CODE),
                    "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
                ),
            );
        }
    }
}

fn psrp_fault(env: &Envelope, e: &dyn std::fmt::Display) -> Response {
    soap(
        500,
        &fault(
            Some(env),
            false,
            ns::fault_code::INTERNAL_ERROR,
            None,
            &e.to_string(),
        ),
    )
}

fn command(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    let Body::Command(cl) = &env.body else {
        return psrp_fault(env, &"Command without a CommandLine");
    };
    let payload = match cl.psrp_payload() {
        Ok(p) => p,
        Err(e) => return psrp_fault(env, &e),
    };
    let created = {
        let mut s = lock(shell);
        match s.receive(&payload, &mut || state.env()) {
            Ok(c) => c,
            Err(e) => return psrp_fault(env, &e),
        }
    };
    state.bump();
    let id = cl
        .command_id
        .as_deref()
        .and_then(rps_wsman::parse_uuid_urn)
        .or_else(|| created.first().copied())
        .unwrap_or_else(Uuid::new_v4);
    soap(
        200,
        &reply(
            env,
            action::COMMAND_RESPONSE,
            Body::CommandResponse {
                command_id: uuid_upper(id),
            },
        ),
    )
}

fn send(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    {
        let mut s = lock(shell);
        for st in env.streams() {
            if let Err(e) = s.receive(&st.data, &mut || state.env()) {
                return psrp_fault(env, &e);
            }
        }
    }
    state.bump();
    soap(200, &reply(env, action::SEND_RESPONSE, Body::SendResponse))
}

fn signal_op(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    let Body::Signal(sig) = &env.body else {
        return psrp_fault(env, &"Signal without a body");
    };
    if let Some(pid) = env.command_uuid() {
        let mut s = lock(shell);
        if sig.code == signal::PS_CTRL_C || sig.code == signal::CTRL_C {
            if let Err(e) = s.stop(pid) {
                return psrp_fault(env, &e);
            }
        } else if sig.code == signal::TERMINATE {
            s.terminate(pid);
        }
    }
    state.bump();
    soap(
        200,
        &reply(env, action::SIGNAL_RESPONSE, Body::SignalResponse),
    )
}

fn delete(state: &State, env: &Envelope, shell_id: Uuid) -> Response {
    lock(&state.shells).remove(&shell_id);
    state.bump();
    soap(
        200,
        &reply(env, action::DELETE_RESPONSE, Body::DeleteResponse),
    )
}

/// `rsp:State` of `shell`.
fn state_name(shell: &Shell) -> &'static str {
    if shell.disconnected {
        "Disconnected"
    } else {
        "Connected"
    }
}

/// An `xs:duration` of whole seconds in WinRS's `P0DT0H0M0S` form.
fn winrs_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "P{}DT{}H{}M{}S",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// WS-Transfer Get of a shell: its description, as Windows answers it.
fn shell_get(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>, id: Uuid) -> Response {
    let s = lock(shell);
    let run_time = (state.cfg.clock)()
        .duration_since(s.created_at)
        .unwrap_or_default();
    let body = Body::GetResponse(Item::Shell(Box::new(WsShell {
        shell_id: Some(uuid_upper(id)),
        resource_uri: Some(s.resource_uri.clone()),
        owner: Some(s.owner.clone()),
        client_ip: Some(s.client_ip.clone()),
        idle_timeout: Some("PT900.000S".to_owned()),
        input_streams: Some("stdin pr".to_owned()),
        output_streams: Some("stdout".to_owned()),
        max_idle_timeout: Some("PT43200.000S".to_owned()),
        locale: Some("en-US".to_owned()),
        data_locale: Some("en-US".to_owned()),
        compression_mode: Some("XpressCompression".to_owned()),
        profile_loaded: Some("Yes".to_owned()),
        encoding: Some("UTF8".to_owned()),
        buffer_mode: Some("Block".to_owned()),
        state: Some(state_name(&s).to_owned()),
        shell_run_time: Some(winrs_duration(run_time)),
        shell_inactivity: Some("P0DT0H0M0S".to_owned()),
        ..WsShell::default()
    })));
    soap(200, &reply(env, action::GET_RESPONSE, body))
}

/// WS-Transfer Get of the WinRM configuration: the limits a client may read.
fn winrm_config(state: &State, env: &Envelope) -> Response {
    let xml = format!(
        "<cfg:Config xmlns:cfg=\"{}\"><cfg:MaxEnvelopeSizekb>{}</cfg:MaxEnvelopeSizekb><cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems><cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests></cfg:Config>",
        ns::CONFIG,
        state.cfg.max_envelope_size_kb
    );
    let body = Body::GetResponse(Item::Raw(RawElement {
        namespace: Some(ns::CONFIG.to_owned()),
        name: "Config".to_owned(),
        xml,
    }));
    soap(200, &reply(env, action::GET_RESPONSE, body))
}

/// The fault for a Disconnect or Connect when the fake does not serve them.
fn not_supported(env: &Envelope, operation: &str) -> Response {
    soap(
        500,
        &fault(
            Some(env),
            false,
            ns::fault_code::INTERNAL_ERROR,
            Some(DISCONNECT_NOT_SUPPORTED_CODE),
            &format!(
                "The WS-Management service does not support the {operation} operation for this shell."
            ),
        ),
    )
}

/// WinRS Disconnect: refused as Exchange Online refuses it, unless the fake serves it.
fn disconnect(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    if !state.cfg.disconnect_supported {
        return not_supported(env, "Disconnect");
    }
    {
        let mut s = lock(shell);
        if s.disconnected {
            return soap(
                500,
                &fault(
                    Some(env),
                    false,
                    ns::fault_code::INTERNAL_ERROR,
                    Some(DISCONNECT_NOT_VALID_CODE),
                    "The Disconnect operation is not valid: the shell is already disconnected.",
                ),
            );
        }
        s.disconnected = true;
    }
    state.bump();
    soap(
        200,
        &reply(env, action::DISCONNECT_RESPONSE, Body::DisconnectResponse),
    )
}

/// WinRS Reconnect: resumes a disconnected shell; on a connected one it changes nothing.
fn reconnect(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    lock(shell).disconnected = false;
    state.bump();
    soap(
        200,
        &reply(env, action::RECONNECT_RESPONSE, Body::ReconnectResponse),
    )
}

/// WS-Man Connect: takes a disconnected pool over (`connectXml`), or one of its commands
/// (`CommandId`) once the pool is connected.
fn connect(state: &State, env: &Envelope, shell: &Arc<Mutex<Shell>>) -> Response {
    let Body::Connect(c) = &env.body else {
        return psrp_fault(env, &"Connect without a body");
    };
    if !state.cfg.disconnect_supported {
        return not_supported(env, "Connect");
    }
    let mut s = lock(shell);
    if let Some(cid) = env.command_uuid() {
        if s.disconnected {
            drop(s);
            return shell_disconnected(env, env.shell_uuid().unwrap_or_default());
        }
        if !s.knows(cid) {
            drop(s);
            return invalid_selectors(env, env.shell_id().unwrap_or_default());
        }
        return soap(
            200,
            &reply(
                env,
                action::CONNECT_RESPONSE,
                Body::ConnectResponse(ConnectResponse::default()),
            ),
        );
    }
    if !s.disconnected {
        drop(s);
        return soap(
            500,
            &fault(
                Some(env),
                false,
                ns::fault_code::INTERNAL_ERROR,
                Some(CONNECTED_TO_DIFFERENT_CLIENT_CODE),
                "The shell is still connected to a client: disconnect it first.",
            ),
        );
    }
    let xml = c.connect_xml.clone().unwrap_or_default();
    let answer = match s.connect(&xml, &mut || state.env()) {
        Ok(a) => a,
        Err(e) => return psrp_fault(env, &e),
    };
    drop(s);
    state.bump();
    let body = Body::ConnectResponse(ConnectResponse {
        input_streams: Some("stdin pr".to_owned()),
        output_streams: Some("stdout".to_owned()),
        connect_response_xml: Some(answer),
    });
    soap(200, &reply(env, action::CONNECT_RESPONSE, body))
}

/// Windows' answer to Receive, Command, Send or Signal on a disconnected shell.
fn shell_disconnected(req: &Envelope, shell_id: Uuid) -> Response {
    soap(
        500,
        &fault(
            Some(req),
            false,
            ns::fault_code::INTERNAL_ERROR,
            Some(SHELL_DISCONNECTED_CODE),
            &format!(
                "The request for the Windows Remote Shell with ShellId {} failed because the shell is disconnected. Reconnect to the shell and retry the operation.",
                uuid_upper(shell_id)
            ),
        ),
    )
}

/// A request larger than the configured `MaxEnvelopeSizekb`.
fn encoding_limit(req: &Envelope, size: usize, limit: u64) -> Response {
    soap(
        500,
        &fault(
            Some(req),
            true,
            "EncodingLimit",
            None,
            &format!(
                "The WS-Management service cannot process the request because the request envelope of {size} bytes exceeds the maximum envelope size of {limit} bytes (MaxEnvelopeSizekb)."
            ),
        ),
    )
}

fn invalid_resource_uri(req: &Envelope, resource: &str) -> Response {
    soap(
        500,
        &fault(
            Some(req),
            true,
            "InvalidResourceURI",
            Some(2_150_858_811),
            &format!(
                "The WS-Management service cannot process the request. The resource URI ({resource}) was not found in the WS-Management catalog."
            ),
        ),
    )
}
