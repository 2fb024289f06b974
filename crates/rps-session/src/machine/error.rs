//! Why a session failed, and the fault codes and configuration values its answers are read
//! by.

use rps_wsman::Fault;

/// Why the session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server answered an operation with a SOAP fault.
    #[error("{operation} failed: {}", fault_text(.fault))]
    Fault {
        /// The operation.
        operation: &'static str,
        /// The fault.
        fault: Box<Fault>,
    },
    /// The server answered with an HTTP error and no SOAP fault.
    #[error("{operation} failed with HTTP {status}: {text}")]
    Http {
        /// The operation.
        operation: &'static str,
        /// The status.
        status: u16,
        /// The server's text, shortened.
        text: String,
    },
    /// The response was not a WS-Man envelope.
    #[error("{operation}: bad response: {source}")]
    Envelope {
        /// The operation.
        operation: &'static str,
        /// The decode error.
        source: rps_wsman::Error,
    },
    /// The response was an envelope of the wrong kind.
    #[error("{operation}: unexpected response {found}")]
    Unexpected {
        /// The operation.
        operation: &'static str,
        /// The action found.
        found: String,
    },
    /// The PSRP layer refused the data or the action.
    #[error(transparent)]
    Psrp(#[from] rps_psrp::error::PsrpError),
    /// The PSRP machines refused the action in their state.
    #[error(transparent)]
    PsrpState(#[from] rps_psrp::error::StateError),
    /// The action is not possible in the session's state.
    #[error("cannot {action} while the session is {state}")]
    State {
        /// The action.
        action: &'static str,
        /// The session state.
        state: &'static str,
    },
    /// The transport failed.
    #[error("{operation}: transport failed: {message}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// What happened.
        message: String,
    },
}

impl SessionError {
    /// The WS-Man operation that failed (`Create`, `Receive`, `Command`, `Send`, `Signal`,
    /// `Delete`), when the error came from one.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            SessionError::Fault { operation, .. }
            | SessionError::Http { operation, .. }
            | SessionError::Envelope { operation, .. }
            | SessionError::Unexpected { operation, .. }
            | SessionError::Transport { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// The HTTP status of an HTTP-level refusal, or of the response that carried a fault
    /// (`None` for faults: their status is always 500 on WinRM).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            SessionError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the server no longer knows the shell (deleted, expired or never created):
    /// WS-Man's `InvalidSelectors` fault.
    pub fn is_shell_gone(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => {
                fault.is_invalid_selectors() || fault.wsman_code() == Some(INVALID_SELECTORS_CODE)
            }
            _ => false,
        }
    }

    /// True when the server does not know the command an operation named (it finished and
    /// was freed, or never existed): WinRS answers with the same `InvalidSelectors` fault as
    /// for a missing shell, and says "command identifier" in its message. Only that
    /// pipeline is lost.
    pub fn is_command_gone(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => {
                self.is_shell_gone()
                    && fault
                        .message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("command identifier"))
            }
            _ => false,
        }
    }

    /// True for Exchange's throttle: too many concurrent runspaces for the user.
    pub fn is_max_concurrency(&self) -> bool {
        match self {
            SessionError::Fault { fault, .. } => fault_text(fault).contains("MaxConcurrency"),
            SessionError::Http { text, .. } => text.contains("MaxConcurrency"),
            _ => false,
        }
    }
}

/// `ERROR_WSMAN_INVALID_SELECTORS`: the shell named in the request does not exist.
pub(super) const INVALID_SELECTORS_CODE: u32 = 2_150_858_843;

/// `ERROR_WSMAN_OPERATION_TIMEDOUT`.
pub(super) const OPERATION_TIMEDOUT_CODE: u32 = 0x8033_8029;

/// The text of the first element named `name` (any prefix) in `xml`, trimmed: for the
/// flat WinRM configuration document, whose values are plain text.
pub(crate) fn config_value<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        let end = rest.find(['>', ' ', '/', '\t', '\n', '\r'])?;
        let tag = &rest[..end];
        let local = tag.rsplit(':').next().unwrap_or(tag);
        if local == name {
            let open_end = rest.find('>')?;
            if rest[..open_end].ends_with('/') {
                return Some("");
            }
            let text = &rest[open_end + 1..];
            let close = text.find('<')?;
            return Some(text[..close].trim());
        }
    }
    None
}

fn fault_text(f: &Fault) -> String {
    let msg = f.message().or(f.reason.as_deref()).unwrap_or("SOAP fault");
    match f.wsman_code() {
        Some(code) => format!("{} (code {code})", msg.trim()),
        None => msg.trim().to_owned(),
    }
}
