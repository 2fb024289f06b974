//! Who may connect: Exchange Online's OAuth-as-Basic check, and plain Basic for on-premises
//! style endpoints.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rps_session::jwt::{Claims, Jwt, MANAGE_AS_APP_ROLE, REMOTE_POWERSHELL_SCOPE};

/// The audience the fake accepts.
pub const AUDIENCE: &str = "https://outlook.office365.com";

/// Directory roles (template ids in `wids`) that let an app-only token in.
pub const EXCHANGE_CAPABLE_ROLES: &[&str] = &[
    "29232cdf-9323-42fd-ade2-1d097af3e4de", // Exchange Administrator
    "62e90394-69f5-4237-9190-012177145e10", // Global Administrator
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451", // Global Reader
];

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name (`OAuthUser@<tid>`, the UPN, or the Basic user), lower case; the
    /// concurrency limit counts per principal.
    pub user: String,
    /// True for an OAuth token (app-only or delegated).
    pub oauth: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no, malformed, expired or mismatched credentials.
    Unauthorized(&'static str),
    /// 403: a valid token without an Exchange role or scope.
    Forbidden(&'static str),
}

/// Checks the `Authorization` header. `oauth_allowed` is true on `/PowerShell-LiveId` with
/// `BasicAuthToOAuthConversion=true`; `basic_users` are accepted user/password pairs.
pub fn authenticate(
    authorization: Option<&str>,
    oauth_allowed: bool,
    basic_users: &[(String, String)],
    now: SystemTime,
) -> Result<Principal, Refusal> {
    let header = authorization.ok_or(Refusal::Unauthorized("no Authorization header"))?;
    let (scheme, rest) = header
        .trim()
        .split_once(' ')
        .ok_or(Refusal::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Refusal::Unauthorized("only Basic is accepted"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Refusal::Unauthorized(
            "Basic credentials are not base64 UTF-8",
        ))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or(Refusal::Unauthorized("Basic credentials without ':'"))?;
    let bearer = password
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| &password[7..]);
    match bearer {
        Some(token) if oauth_allowed => check_token(user, token, now),
        Some(_) => Err(Refusal::Unauthorized(
            "a token needs BasicAuthToOAuthConversion=true",
        )),
        None => {
            if basic_users
                .iter()
                .any(|(u, p)| u.eq_ignore_ascii_case(user) && p == password)
            {
                Ok(Principal {
                    user: user.to_ascii_lowercase(),
                    oauth: false,
                })
            } else {
                Err(Refusal::Unauthorized("unknown user or bad password"))
            }
        }
    }
}

fn has_audience(c: &Claims) -> bool {
    c.aud
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(AUDIENCE))
}

fn check_token(user: &str, token: &str, now: SystemTime) -> Result<Principal, Refusal> {
    let jwt = Jwt::decode(token).map_err(|_| Refusal::Unauthorized("malformed token"))?;
    if jwt.is_expired(now) {
        return Err(Refusal::Unauthorized("token expired"));
    }
    let c = jwt.claims();
    if !has_audience(c) {
        return Err(Refusal::Unauthorized("wrong audience"));
    }
    if let Some(nbf) = c.nbf {
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if nbf > now_s + 300 {
            return Err(Refusal::Unauthorized("token not yet valid"));
        }
    }
    let lower = user.to_ascii_lowercase();
    if let Some(tenant) = lower.strip_prefix("oauthuser@") {
        // App-only.
        if c.tid.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(tenant) {
            return Err(Refusal::Unauthorized("tenant does not match the token"));
        }
        let role = c.roles.iter().any(|r| r == MANAGE_AS_APP_ROLE);
        let wid = c.wids.iter().any(|w| {
            EXCHANGE_CAPABLE_ROLES
                .iter()
                .any(|r| r.eq_ignore_ascii_case(w))
        });
        if !role || !wid {
            return Err(Refusal::Forbidden(
                "app-only token without Exchange.ManageAsApp and an Exchange directory role",
            ));
        }
    } else {
        match c.user_name() {
            Some(upn) if upn.eq_ignore_ascii_case(user) => {}
            _ => return Err(Refusal::Unauthorized("user does not match the token")),
        }
        if !c.scp.iter().any(|s| s == REMOTE_POWERSHELL_SCOPE) {
            return Err(Refusal::Forbidden(
                "delegated token without RemotePowerShell.AccessAsUser.All",
            ));
        }
    }
    Ok(Principal {
        user: lower,
        oauth: true,
    })
}
