//! Why a session operation failed.

use std::sync::Arc;
use std::time::Duration;

use rps_psrp::messages::RunspacePoolState;

use crate::http::{ClientError, TransportError};
use crate::machine::SessionError;

#[cfg(doc)]
use super::RunspacePool;
#[cfg(doc)]
use crate::http::TransportConfig;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The protocol session failed (a fault, an HTTP status, bad data).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The HTTP layer failed (connect, TLS, redirect, token).
    #[error(transparent)]
    Http(#[from] ClientError),
    /// The transport could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused the credentials.
    #[error("authentication failed (HTTP 401) at {host}: {hint}")]
    Unauthorized {
        /// The host.
        host: String,
        /// What to check.
        hint: &'static str,
    },
    /// The pool opened in a state other than Opened.
    #[error("the runspace pool did not open (state {0:?})")]
    NotOpened(RunspacePoolState),
    /// The session is gone (closed, or its driver stopped).
    #[error("the session is closed")]
    Closed,
    /// A WS-Man request could not be exchanged (connect, TLS, timeout, token).
    #[error("{operation}: {source}")]
    Request {
        /// The operation (`Create`, `Receive`, `Command`, `Send`, `Signal`, `Delete`).
        operation: &'static str,
        /// The cause.
        source: Box<ClientError>,
    },
    /// The session failed, for this pipeline (or close) and every other: the cause.
    #[error("the session failed: {0}")]
    SessionFailed(Arc<Error>),
    /// The server did not send the session key within the time given to
    /// [`RunspacePool::exchange_key`].
    #[error("the server sent no session key within {0:?}")]
    KeyExchangeTimeout(Duration),
    /// The session key could not be made.
    #[error("could not make the session key pair: {0}")]
    KeyGeneration(String),
}

impl Error {
    fn root(&self) -> &Error {
        match self {
            Error::SessionFailed(e) => e.root(),
            e => e,
        }
    }

    /// True for Exchange's throttle on concurrent runspaces.
    pub fn is_max_concurrency(&self) -> bool {
        matches!(self.root(), Error::Session(e) if e.is_max_concurrency())
    }

    /// The WS-Man operation that failed, when known (`Create`, `Receive`, `Command`,
    /// `Send`, `Signal`, `Delete`).
    pub fn operation(&self) -> Option<&'static str> {
        match self.root() {
            Error::Session(e) => e.operation(),
            Error::Request { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// True when a request got no complete answer within
    /// [`TransportConfig::request_timeout`] (or the connect timeout).
    pub fn is_timeout(&self) -> bool {
        let client = match self.root() {
            Error::Request { source, .. } => &**source,
            Error::Http(source) => source,
            _ => return false,
        };
        matches!(
            client,
            ClientError::Transport(
                TransportError::Timeout { .. } | TransportError::ConnectTimeout { .. }
            )
        )
    }

    /// True when the server refused the credentials (HTTP 401, also after a token refresh).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.root(), Error::Unauthorized { .. })
    }

    /// True when the server no longer knows the shell (it was deleted or expired there).
    pub fn is_shell_gone(&self) -> bool {
        matches!(self.root(), Error::Session(e) if e.is_shell_gone())
    }

    /// The HTTP status the server refused with, when the refusal was an HTTP status (e.g.
    /// 503) rather than a SOAP fault.
    pub fn http_status(&self) -> Option<u16> {
        match self.root() {
            Error::Session(e) => e.http_status(),
            Error::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}
