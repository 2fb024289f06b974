//! Which redirects to follow, and where to.
//!
//! Exchange Online answers the first request (the WS-Management `Create` of the shell)
//! with a `302` to the tenant's own pod. PowerShell follows it only with
//! `-AllowRedirection`; [`RedirectPolicy`] is that switch plus the safety limits.

use url::Url;

/// A redirect that may not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// The policy does not allow redirects.
    #[error("redirect {status} from {from} to {to} not allowed (enable allow_redirection)")]
    NotAllowed {
        /// The redirect status.
        status: u16,
        /// The host that redirected.
        from: String,
        /// The host it pointed at.
        to: String,
    },
    /// More hops than the policy allows.
    #[error("too many redirects ({} hops): {}", hosts.len().saturating_sub(1), hosts.join(" -> "))]
    Limit {
        /// Every host visited, in order, ending with the one that was not followed.
        hosts: Vec<String>,
    },
    /// An https URL redirected to plain http.
    #[error("refusing redirect from https {from} to plain http {to}")]
    Downgrade {
        /// The https host.
        from: String,
        /// The http host.
        to: String,
    },
    /// A redirect status without a `Location` header.
    #[error("redirect {status} from {from} without a location")]
    MissingLocation {
        /// The redirect status.
        status: u16,
        /// The host that redirected.
        from: String,
    },
    /// A `Location` that is not a valid http(s) URL.
    #[error("redirect from {from} has an invalid location")]
    InvalidLocation {
        /// The host that redirected.
        from: String,
    },
}

/// Whether and how far to follow redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    /// Follow redirects at all (PowerShell's `-AllowRedirection`).
    pub allow: bool,
    /// The most hops followed for one request.
    pub max_hops: usize,
}

impl Default for RedirectPolicy {
    /// Redirects refused, limit 5 when enabled.
    fn default() -> Self {
        Self {
            allow: false,
            max_hops: 5,
        }
    }
}

impl RedirectPolicy {
    /// The default hop limit.
    pub const DEFAULT_MAX_HOPS: usize = 5;

    /// A policy that follows up to 5 hops.
    pub fn follow() -> Self {
        Self {
            allow: true,
            max_hops: Self::DEFAULT_MAX_HOPS,
        }
    }

    /// A policy that follows nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether a status is a redirect this policy considers (301, 302, 303, 307, 308).
    pub fn is_redirect(status: u16) -> bool {
        matches!(status, 301 | 302 | 303 | 307 | 308)
    }

    /// Decides the next URL after a redirect response from `current`.
    ///
    /// `visited` holds the URLs already requested for this logical request, the
    /// original first; `current` is its last element or the original when empty. The
    /// body is re-posted whole whatever the status, as WinRM requires.
    pub fn next_url(
        &self,
        current: &Url,
        status: u16,
        location: Option<&str>,
        visited: &[Url],
    ) -> Result<Url, RedirectError> {
        let from = super::host_label(current);
        let location = location.ok_or_else(|| RedirectError::MissingLocation {
            status,
            from: from.clone(),
        })?;
        let next = current
            .join(location.trim())
            .map_err(|_| RedirectError::InvalidLocation { from: from.clone() })?;
        if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none() {
            return Err(RedirectError::InvalidLocation { from });
        }
        let to = super::host_label(&next);
        if !self.allow {
            return Err(RedirectError::NotAllowed { status, from, to });
        }
        if current.scheme() == "https" && next.scheme() == "http" {
            return Err(RedirectError::Downgrade { from, to });
        }
        let hops_done = visited.len().saturating_sub(1);
        if hops_done >= self.max_hops {
            let mut hosts: Vec<String> = visited.iter().map(super::host_label).collect();
            if visited.is_empty() {
                hosts.push(from);
            }
            hosts.push(to);
            return Err(RedirectError::Limit { hosts });
        }
        Ok(next)
    }
}
