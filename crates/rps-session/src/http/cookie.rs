//! A small cookie jar (a subset of RFC 6265) for WinRM session affinity.
//!
//! Exchange Online pins a remote PowerShell session to one backend with the `MS-WSMAN`
//! cookie. It is set with `Path=/powershell-liveid` while requests go to
//! `/PowerShell-LiveId`, so unlike RFC 6265 this jar matches paths case-insensitively.
//! Time is always passed in, so expiry is testable.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use super::auth::Secret;

/// Why a `Set-Cookie` header was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The header has no `name=value` pair.
    #[error("malformed set-cookie header from {host}")]
    Malformed {
        /// The host that sent it.
        host: String,
    },
    /// The `Domain` attribute does not cover the host that set it.
    #[error("set-cookie from {host} names foreign domain {domain}")]
    DomainMismatch {
        /// The host that sent it.
        host: String,
        /// The `Domain` it asked for.
        domain: String,
    },
    /// The URL has no host.
    #[error("set-cookie for a url without a host")]
    NoHost,
}

/// One stored cookie. The value is a [`Secret`]: session cookies are bearer credentials.
#[derive(Clone, Debug)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value (redacted in `Debug`).
    pub value: Secret,
    /// Domain, lowercased, without a leading dot.
    pub domain: String,
    /// Whether the cookie goes only to exactly `domain` (no `Domain` attribute was given).
    pub host_only: bool,
    /// Path prefix (matched case-insensitively).
    pub path: String,
    /// Only sent over https.
    pub secure: bool,
    /// `HttpOnly` flag (kept for completeness; there are no scripts here).
    pub http_only: bool,
    /// Absolute expiry; `None` for a session cookie.
    pub expires: Option<SystemTime>,
}

impl Cookie {
    fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    fn matches(&self, host: &str, path: &str, https: bool, now: SystemTime) -> bool {
        if self.expired(now) || (self.secure && !https) {
            return false;
        }
        let domain_ok = if self.host_only {
            host == self.domain
        } else {
            domain_match(host, &self.domain)
        };
        domain_ok && path_match(path, &self.path)
    }
}

/// Cookies for every host this session talked to.
#[derive(Clone, Debug, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one `Set-Cookie` header received from `url` and stores (or, when already
    /// expired, deletes) the cookie.
    pub fn store(
        &mut self,
        url: &Url,
        set_cookie: &str,
        now: SystemTime,
    ) -> Result<(), CookieError> {
        let host = url
            .host_str()
            .ok_or(CookieError::NoHost)?
            .to_ascii_lowercase();
        let mut parts = set_cookie.split(';');
        let pair = parts.next().unwrap_or("");
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| CookieError::Malformed { host: host.clone() })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(CookieError::Malformed { host });
        }
        let mut cookie = Cookie {
            name: name.to_string(),
            value: Secret::new(value.trim().trim_matches('"')),
            domain: host.clone(),
            host_only: true,
            path: default_path(url.path()),
            secure: false,
            http_only: false,
            expires: None,
        };
        let mut max_age: Option<SystemTime> = None;
        let mut expires: Option<SystemTime> = None;
        for attr in parts {
            let (key, val) = match attr.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (attr.trim(), ""),
            };
            match key.to_ascii_lowercase().as_str() {
                "path" if val.starts_with('/') => cookie.path = val.to_string(),
                "domain" if !val.is_empty() => {
                    let d = val.trim_start_matches('.').to_ascii_lowercase();
                    if !domain_match(&host, &d) {
                        return Err(CookieError::DomainMismatch { host, domain: d });
                    }
                    if host.parse::<std::net::IpAddr>().is_err() {
                        cookie.host_only = false;
                        cookie.domain = d;
                    }
                }
                "secure" => cookie.secure = true,
                "httponly" => cookie.http_only = true,
                "max-age" => {
                    if let Ok(secs) = val.parse::<i64>() {
                        max_age = Some(if secs <= 0 {
                            UNIX_EPOCH
                        } else {
                            now + Duration::from_secs(secs.unsigned_abs())
                        });
                    }
                }
                "expires" => expires = parse_http_date(val),
                _ => {}
            }
        }
        cookie.expires = max_age.or(expires);
        self.cookies.retain(|c| {
            !(c.name == cookie.name
                && c.domain == cookie.domain
                && c.path.eq_ignore_ascii_case(&cookie.path))
        });
        if !cookie.expired(now) {
            self.cookies.push(cookie);
        }
        Ok(())
    }

    /// The `Cookie` header value for a request to `url`, longest paths first; `None`
    /// when no cookie applies.
    pub fn cookie_header(&self, url: &Url, now: SystemTime) -> Option<String> {
        let host = url.host_str()?.to_ascii_lowercase();
        let https = url.scheme() == "https";
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| c.matches(&host, url.path(), https, now))
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let parts: Vec<String> = matching
            .iter()
            .map(|c| format!("{}={}", c.name, c.value.expose()))
            .collect();
        Some(parts.join("; "))
    }

    /// The cookie called `name` that would be sent to `url`, if any.
    pub fn get(&self, url: &Url, name: &str, now: SystemTime) -> Option<&Cookie> {
        let host = url.host_str()?.to_ascii_lowercase();
        let https = url.scheme() == "https";
        self.cookies
            .iter()
            .find(|c| c.name == name && c.matches(&host, url.path(), https, now))
    }

    /// Drops cookies that expired at or before `now`.
    pub fn remove_expired(&mut self, now: SystemTime) {
        self.cookies.retain(|c| !c.expired(now));
    }

    /// Every stored cookie.
    pub fn iter(&self) -> impl Iterator<Item = &Cookie> {
        self.cookies.iter()
    }

    /// The number of stored cookies.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// Whether the jar is empty.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Empties the jar.
    pub fn clear(&mut self) {
        self.cookies.clear();
    }
}

impl fmt::Display for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cookie(s)", self.cookies.len())
    }
}

fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request_path[..i].to_string(),
    }
}

fn domain_match(host: &str, domain: &str) -> bool {
    if host == domain {
        return true;
    }
    host.len() > domain.len()
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        && host.parse::<std::net::IpAddr>().is_err()
}

/// RFC 6265 path-match, but ASCII case-insensitive.
fn path_match(request_path: &str, cookie_path: &str) -> bool {
    let rp = request_path.as_bytes();
    let cp = cookie_path.as_bytes();
    if rp.len() < cp.len() || !rp[..cp.len()].eq_ignore_ascii_case(cp) {
        return false;
    }
    rp.len() == cp.len() || cp.last() == Some(&b'/') || rp[cp.len()] == b'/'
}

/// Parses the date forms seen in `Expires` (RFC 1123, RFC 850 and asctime) following the
/// token-based algorithm of RFC 6265 section 5.1.1.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (mut time, mut day, mut month, mut year) = (None, None, None, None);
    for token in s
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
    {
        if time.is_none() && token.contains(':') {
            let f: Vec<&str> = token.split(':').collect();
            if f.len() == 3 {
                let p = |x: &str| x.parse::<u64>().ok();
                if let (Some(h), Some(m), Some(s)) = (p(f[0]), p(f[1]), p(f[2])) {
                    time = Some((h, m, s));
                    continue;
                }
            }
        }
        if day.is_none()
            && (1..=2).contains(&token.len())
            && token.bytes().all(|b| b.is_ascii_digit())
        {
            day = token.parse::<u64>().ok();
            continue;
        }
        if month.is_none() && token.len() >= 3 {
            let m = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ]
            .iter()
            .position(|m| token[..3].eq_ignore_ascii_case(m));
            if let Some(m) = m {
                month = Some(m as u64 + 1);
                continue;
            }
        }
        if year.is_none()
            && (2..=4).contains(&token.len())
            && token.bytes().all(|b| b.is_ascii_digit())
        {
            year = token.parse::<i64>().ok().map(|y| match y {
                70..=99 => y + 1900,
                0..=69 => y + 2000,
                y => y,
            });
        }
    }
    let ((h, mi, se), d, mo, y) = (time?, day?, month?, year?);
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 || y < 1601 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + se) as i64;
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()))
    } else {
        Some(UNIX_EPOCH)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let secs = |s: &str| {
            parse_http_date(s)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:00 GMT"), Some(1_445_412_480));
        assert_eq!(
            secs("Wednesday, 21-Oct-15 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(secs("Wed Oct 21 07:28:00 2015"), Some(1_445_412_480));
        assert_eq!(secs("garbage"), None);
    }

    #[test]
    fn paths() {
        assert!(path_match("/PowerShell-LiveId", "/powershell-liveid"));
        assert!(path_match("/a/b", "/a"));
        assert!(!path_match("/ab", "/a"));
        assert_eq!(default_path("/a/b"), "/a");
        assert_eq!(default_path("/a"), "/");
    }
}
