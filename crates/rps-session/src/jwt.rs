//! Inspecting JSON Web Tokens (no signature check): audience, tenant, roles, expiry.
//!
//! `rps` receives access tokens from Entra ID (or from the user) and forwards them to Exchange
//! Online; it never has to trust a token itself. This module reads one anyway, without checking
//! its signature, to say *before* connecting why Exchange would refuse it: wrong audience,
//! expired, an app-only token without the `Exchange.ManageAsApp` role or an Exchange-capable
//! directory role, a delegated token without the `RemotePowerShell.AccessAsUser.All` scope.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use rps_session::jwt::{Claims, Jwt};
//!
//! let claims = Claims {
//!     aud: vec!["https://outlook.office365.com".into()],
//!     scp: vec!["RemotePowerShell.AccessAsUser.All".into()],
//!     upn: Some("admin@contoso.onmicrosoft.com".into()),
//!     exp: 2_000_000_000,
//!     ..Claims::default()
//! };
//! let jwt = Jwt::decode(&Jwt::mint_unsigned(&claims))?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
//! assert!(!jwt.is_expired(now));
//! assert!(jwt.exchange_readiness(now).is_empty());
//! # Ok::<(), rps_session::jwt::JwtError>(())
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value as Json};

/// The longest token [`Jwt::decode`] accepts, in bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// How close to expiry a token draws a [`Warning::ExpiresSoon`], in seconds.
pub const EXPIRY_MARGIN_SECS: i64 = 5 * 60;

/// The audiences Exchange Online accepts for remote PowerShell, with the cloud each belongs to.
pub const EXCHANGE_AUDIENCES: &[(&str, &str)] = &[
    ("https://outlook.office365.com", "worldwide and GCC"),
    ("https://outlook.office.com", "worldwide"),
    ("https://outlook.office365.us", "GCC High"),
    ("https://webmail.apps.mil", "DoD"),
    ("https://partner.outlook.cn", "China (21Vianet)"),
    (
        "00000002-0000-0ff1-ce00-000000000000",
        "any (the Exchange Online application id)",
    ),
];

/// The app role an app-only token needs for Exchange Online PowerShell.
pub const MANAGE_AS_APP_ROLE: &str = "Exchange.ManageAsApp";

/// The scope a delegated token needs for Exchange Online remote PowerShell.
pub const REMOTE_POWERSHELL_SCOPE: &str = "RemotePowerShell.AccessAsUser.All";

/// Entra directory roles (template ids, as in the `wids` claim) that give an application
/// access to Exchange Online PowerShell, with their names.
pub const EXCHANGE_DIRECTORY_ROLES: &[(&str, &str)] = &[
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "31392ffb-586c-42d1-9346-e59415a2cc4e",
        "Exchange Recipient Administrator",
    ),
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    (
        "17315797-102d-40b4-93e0-432062caca18",
        "Compliance Administrator",
    ),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
];

/// A part of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// The JOSE header.
    Header,
    /// The claims set (payload).
    Claims,
    /// The signature.
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Claims => "claims",
            Segment::Signature => "signature",
        })
    }
}

/// Why a token could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is empty.
    #[error("token is empty")]
    Empty,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The token's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is an encrypted JWE (five segments), whose claims cannot be read.
    #[error("token is encrypted (a JWE with 5 segments); its claims cannot be read")]
    Encrypted,
    /// The token does not have the three dot-separated segments of a JWS.
    #[error("token has {found} dot-separated segments; a signed JWT has 3")]
    SegmentCount {
        /// How many segments there are.
        found: usize,
    },
    /// A segment is not base64url.
    #[error("{segment} segment is not base64url: {reason}")]
    Base64 {
        /// Which segment.
        segment: Segment,
        /// The decoder's complaint.
        reason: String,
    },
    /// A segment is not a JSON object.
    #[error("{segment} segment is not a JSON object: {reason}")]
    Json {
        /// Which segment.
        segment: Segment,
        /// The parser's complaint.
        reason: String,
    },
    /// A registered claim has the wrong JSON type.
    #[error("claim `{claim}` should be {expected}")]
    ClaimType {
        /// The claim name.
        claim: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A required claim is absent.
    #[error("claim `{claim}` is missing")]
    MissingClaim {
        /// The claim name.
        claim: &'static str,
    },
}

/// Whether a token acts for an application or for a signed-in user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Client credentials: the application acts as itself.
    AppOnly,
    /// A user signed in and the application acts for them.
    Delegated,
}

/// The claims `rps` cares about, plus every other claim in [`Claims::extra`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// `aud`: the audiences (a single string in the token becomes one entry).
    pub aud: Vec<String>,
    /// `iss`: the issuer.
    pub iss: Option<String>,
    /// `sub`: the subject.
    pub sub: Option<String>,
    /// `tid`: the tenant id.
    pub tid: Option<String>,
    /// `appid` (v1 tokens) or `azp` (v2 tokens): the client application id.
    pub appid: Option<String>,
    /// `app_displayname`: the client application's name.
    pub app_displayname: Option<String>,
    /// `oid`: the object id of the user or service principal.
    pub oid: Option<String>,
    /// `idtyp`: `app` or `user`, when the token says.
    pub idtyp: Option<String>,
    /// `upn`: the user principal name.
    pub upn: Option<String>,
    /// `unique_name`: the user's name (v1 tokens).
    pub unique_name: Option<String>,
    /// `preferred_username`: the user's name (v2 tokens).
    pub preferred_username: Option<String>,
    /// `roles`: application roles.
    pub roles: Vec<String>,
    /// `wids`: directory role template ids.
    pub wids: Vec<String>,
    /// `scp`: delegated scopes (space separated in the token).
    pub scp: Vec<String>,
    /// `exp`: expiry, unix seconds.
    pub exp: i64,
    /// `nbf`: not before, unix seconds.
    pub nbf: Option<i64>,
    /// `iat`: issued at, unix seconds.
    pub iat: Option<i64>,
    /// Every other claim, as found.
    pub extra: Map<String, Json>,
}

impl Claims {
    /// The user's name: `upn`, else `unique_name`, else `preferred_username`.
    pub fn user_name(&self) -> Option<&str> {
        self.upn
            .as_deref()
            .or(self.unique_name.as_deref())
            .or(self.preferred_username.as_deref())
    }

    /// App-only or delegated: from `idtyp` when present, else delegated when the token has
    /// scopes or a user name.
    pub fn kind(&self) -> TokenKind {
        match self.idtyp.as_deref() {
            Some("app") => TokenKind::AppOnly,
            Some("user") => TokenKind::Delegated,
            _ if !self.scp.is_empty() || self.user_name().is_some() => TokenKind::Delegated,
            _ => TokenKind::AppOnly,
        }
    }

    /// The cloud name of the first audience Exchange accepts, if any.
    pub fn exchange_cloud(&self) -> Option<&'static str> {
        self.aud.iter().find_map(|a| {
            let a = a.trim_end_matches('/');
            EXCHANGE_AUDIENCES
                .iter()
                .find(|(aud, _)| aud.eq_ignore_ascii_case(a))
                .map(|(_, c)| *c)
        })
    }

    /// The claims as a JSON object, as a token would carry them.
    pub fn to_json(&self) -> Map<String, Json> {
        let mut m = Map::new();
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                m.insert("aud".into(), Json::String(one.clone()));
            }
            many => {
                m.insert(
                    "aud".into(),
                    many.iter().cloned().map(Json::String).collect(),
                );
            }
        }
        let strings = [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("tid", &self.tid),
            ("appid", &self.appid),
            ("app_displayname", &self.app_displayname),
            ("oid", &self.oid),
            ("idtyp", &self.idtyp),
            ("upn", &self.upn),
            ("unique_name", &self.unique_name),
            ("preferred_username", &self.preferred_username),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                m.insert(k.into(), Json::String(v.clone()));
            }
        }
        for (k, v) in [("roles", &self.roles), ("wids", &self.wids)] {
            if !v.is_empty() {
                m.insert(k.into(), v.iter().cloned().map(Json::String).collect());
            }
        }
        if !self.scp.is_empty() {
            m.insert("scp".into(), Json::String(self.scp.join(" ")));
        }
        m.insert("exp".into(), self.exp.into());
        for (k, v) in [("nbf", self.nbf), ("iat", self.iat)] {
            if let Some(v) = v {
                m.insert(k.into(), v.into());
            }
        }
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        m
    }

    fn from_json(mut m: Map<String, Json>) -> Result<Self, JwtError> {
        let aud = match m.remove("aud") {
            None => Vec::new(),
            Some(Json::String(s)) => vec![s],
            Some(Json::Array(items)) => {
                string_items(items, "aud", "a string or an array of strings")?
            }
            Some(_) => return Err(type_err("aud", "a string or an array of strings")),
        };
        let mut s = |k: &'static str| take_string(&mut m, k);
        let iss = s("iss")?;
        let sub = s("sub")?;
        let tid = s("tid")?;
        let appid = match s("appid")? {
            Some(a) => Some(a),
            None => s("azp")?,
        };
        let app_displayname = s("app_displayname")?;
        let oid = s("oid")?;
        let idtyp = s("idtyp")?;
        let upn = s("upn")?;
        let unique_name = s("unique_name")?;
        let preferred_username = s("preferred_username")?;
        let roles = take_list(&mut m, "roles")?;
        let wids = take_list(&mut m, "wids")?;
        let scp = match m.remove("scp") {
            None => Vec::new(),
            Some(Json::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Json::Array(items)) => string_items(items, "scp", "a space-separated string")?,
            Some(_) => return Err(type_err("scp", "a space-separated string")),
        };
        let exp = take_time(&mut m, "exp")?.ok_or(JwtError::MissingClaim { claim: "exp" })?;
        let nbf = take_time(&mut m, "nbf")?;
        let iat = take_time(&mut m, "iat")?;
        Ok(Claims {
            aud,
            iss,
            sub,
            tid,
            appid,
            app_displayname,
            oid,
            idtyp,
            upn,
            unique_name,
            preferred_username,
            roles,
            wids,
            scp,
            exp,
            nbf,
            iat,
            extra: m,
        })
    }
}

fn type_err(claim: &'static str, expected: &'static str) -> JwtError {
    JwtError::ClaimType { claim, expected }
}

fn take_string(m: &mut Map<String, Json>, claim: &'static str) -> Result<Option<String>, JwtError> {
    match m.remove(claim) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_err(claim, "a string")),
    }
}

fn string_items(
    items: Vec<Json>,
    claim: &'static str,
    expected: &'static str,
) -> Result<Vec<String>, JwtError> {
    items
        .into_iter()
        .map(|i| match i {
            Json::String(s) => Ok(s),
            _ => Err(type_err(claim, expected)),
        })
        .collect()
}

fn take_list(m: &mut Map<String, Json>, claim: &'static str) -> Result<Vec<String>, JwtError> {
    match m.remove(claim) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => string_items(items, claim, "an array of strings"),
        Some(_) => Err(type_err(claim, "an array of strings")),
    }
}

fn take_time(m: &mut Map<String, Json>, claim: &'static str) -> Result<Option<i64>, JwtError> {
    match m.remove(claim) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(v) => Ok(Some(v)),
            None => match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f as i64)),
                _ => Err(type_err(claim, "unix seconds")),
            },
        },
        Some(_) => Err(type_err(claim, "unix seconds")),
    }
}

/// A decoded (not verified) JWT.
///
/// Its [`Debug`] form shows the algorithm and the claims, never the token text or signature.
#[derive(Clone, PartialEq)]
pub struct Jwt {
    raw: String,
    header: Map<String, Json>,
    claims: Claims,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("alg", &self.alg())
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Something that would make Exchange Online refuse (or soon refuse) a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// No audience is one of [`EXCHANGE_AUDIENCES`].
    WrongAudience {
        /// The audiences the token has.
        found: Vec<String>,
    },
    /// The token has expired.
    Expired {
        /// How long ago, in seconds.
        seconds_ago: i64,
    },
    /// The token expires within [`EXPIRY_MARGIN_SECS`].
    ExpiresSoon {
        /// Seconds left.
        seconds_left: i64,
    },
    /// The token's `nbf` is in the future.
    NotYetValid {
        /// Seconds until it becomes valid.
        seconds_until: i64,
    },
    /// An app-only token without the [`MANAGE_AS_APP_ROLE`] role.
    MissingManageAsApp {
        /// The roles the token has.
        roles: Vec<String>,
    },
    /// An app-only token without any of the [`EXCHANGE_DIRECTORY_ROLES`] in `wids`.
    NoExchangeDirectoryRole,
    /// A delegated token without the [`REMOTE_POWERSHELL_SCOPE`] scope.
    MissingRemotePowerShellScope {
        /// The scopes the token has.
        scopes: Vec<String>,
    },
}

impl Warning {
    /// True when Exchange will refuse the token now (everything but [`Warning::ExpiresSoon`]).
    pub fn is_blocking(&self) -> bool {
        !matches!(self, Warning::ExpiresSoon { .. })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::WrongAudience { found } => write!(
                f,
                "audience {found:?} is not Exchange Online (expected https://outlook.office365.com or a sovereign-cloud equivalent)"
            ),
            Warning::Expired { seconds_ago } => write!(f, "token expired {} ago", human_duration(*seconds_ago)),
            Warning::ExpiresSoon { seconds_left } => {
                write!(f, "token expires in {}", human_duration(*seconds_left))
            }
            Warning::NotYetValid { seconds_until } => {
                write!(f, "token is not valid for another {}", human_duration(*seconds_until))
            }
            Warning::MissingManageAsApp { roles } => write!(
                f,
                "app-only token lacks the {MANAGE_AS_APP_ROLE} application role (has {roles:?}); grant it on the Office 365 Exchange Online API and consent"
            ),
            Warning::NoExchangeDirectoryRole => f.write_str(
                "app-only token has no Exchange-capable directory role in `wids` (e.g. Exchange Administrator, Global Reader); assign one to the service principal",
            ),
            Warning::MissingRemotePowerShellScope { scopes } => {
                write!(f, "delegated token lacks the {REMOTE_POWERSHELL_SCOPE} scope (has {scopes:?})")
            }
        }
    }
}

fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600),
    }
}

/// Seconds since the Unix epoch (negative before it).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn decode_segment(text: &str, segment: Segment) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| JwtError::Base64 {
            segment,
            reason: e.to_string(),
        })
}

fn json_object(bytes: &[u8], segment: Segment) -> Result<Map<String, Json>, JwtError> {
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(JwtError::Json {
            segment,
            reason: "not an object".into(),
        }),
        Err(e) => Err(JwtError::Json {
            segment,
            reason: e.to_string(),
        }),
    }
}

impl Jwt {
    /// Reads a compact JWS (`header.claims.signature`, an optional `Bearer ` prefix allowed)
    /// without checking its signature.
    pub fn decode(token: &str) -> Result<Jwt, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let mut token = token.trim();
        if let Some(prefix) = token.get(..6)
            && prefix.eq_ignore_ascii_case("bearer")
            && token[6..].chars().next().is_none_or(char::is_whitespace)
        {
            token = token[6..].trim_start();
        }
        if token.is_empty() {
            return Err(JwtError::Empty);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err(if parts.len() == 5 {
                JwtError::Encrypted
            } else {
                JwtError::SegmentCount { found: parts.len() }
            });
        };
        let header_map = json_object(&decode_segment(header, Segment::Header)?, Segment::Header)?;
        let claims_map = json_object(&decode_segment(claims, Segment::Claims)?, Segment::Claims)?;
        decode_segment(signature, Segment::Signature)?;
        Ok(Jwt {
            raw: token.to_owned(),
            header: header_map,
            claims: Claims::from_json(claims_map)?,
        })
    }

    /// Builds an unsigned token (`alg: none`, empty signature) carrying `claims`.
    ///
    /// For tests and the loopback fake endpoint only: Entra ID and Exchange Online never accept
    /// such a token, and nothing in `rps` treats a token as proof of anything.
    pub fn mint_unsigned(claims: &Claims) -> String {
        let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
        let claims = Json::Object(claims.to_json());
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// The token text, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The JOSE header.
    pub fn header(&self) -> &Map<String, Json> {
        &self.header
    }

    /// The header's `alg`, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Json::as_str)
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Seconds until expiry at `now` (negative once expired).
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        self.claims.exp.saturating_sub(unix_seconds(now))
    }

    /// True when the token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.seconds_left(now) <= 0
    }

    /// What would make Exchange Online remote PowerShell refuse this token at `now`; empty
    /// when nothing is known to be wrong.
    pub fn exchange_readiness(&self, now: SystemTime) -> Vec<Warning> {
        let c = &self.claims;
        let mut warnings = Vec::new();
        if c.exchange_cloud().is_none() {
            warnings.push(Warning::WrongAudience {
                found: c.aud.clone(),
            });
        }
        let left = self.seconds_left(now);
        if left <= 0 {
            warnings.push(Warning::Expired {
                seconds_ago: left.saturating_neg(),
            });
        } else if left <= EXPIRY_MARGIN_SECS {
            warnings.push(Warning::ExpiresSoon { seconds_left: left });
        }
        if let Some(nbf) = c.nbf {
            let until = nbf.saturating_sub(unix_seconds(now));
            if until > 0 {
                warnings.push(Warning::NotYetValid {
                    seconds_until: until,
                });
            }
        }
        match c.kind() {
            TokenKind::AppOnly => {
                if !c
                    .roles
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(MANAGE_AS_APP_ROLE))
                {
                    warnings.push(Warning::MissingManageAsApp {
                        roles: c.roles.clone(),
                    });
                }
                let has_role = c.wids.iter().any(|w| {
                    EXCHANGE_DIRECTORY_ROLES
                        .iter()
                        .any(|(id, _)| id.eq_ignore_ascii_case(w))
                });
                if !has_role {
                    warnings.push(Warning::NoExchangeDirectoryRole);
                }
            }
            TokenKind::Delegated => {
                if !c
                    .scp
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(REMOTE_POWERSHELL_SCOPE))
                {
                    warnings.push(Warning::MissingRemotePowerShellScope {
                        scopes: c.scp.clone(),
                    });
                }
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m05s");
        assert_eq!(human_duration(7260), "2h01m");
        assert_eq!(human_duration(90000), "1d01h");
        assert_eq!(human_duration(-3), "0s");
    }

    #[test]
    fn unix_seconds_before_epoch() {
        assert_eq!(
            unix_seconds(UNIX_EPOCH - std::time::Duration::from_secs(10)),
            -10
        );
    }
}
