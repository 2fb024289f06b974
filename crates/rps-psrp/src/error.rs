//! The errors of the runspace pool and pipeline state machines.

use uuid::Uuid;

use crate::crypto::CryptoError;
use crate::fragment::FragmentError;
use crate::message::{MessageError, MessageType};
use crate::messages::PayloadError;

/// A call the caller made at the wrong time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The pool is not in a state that allows the action.
    #[error("cannot {action} in pool state {state}, expected {expected}")]
    Pool {
        /// What was attempted.
        action: &'static str,
        /// The pool's state.
        state: &'static str,
        /// The states that allow it.
        expected: &'static str,
    },
    /// The pipeline is not in a state that allows the action.
    #[error("cannot {action} pipeline {id} in state {state}")]
    Pipeline {
        /// What was attempted.
        action: &'static str,
        /// The pipeline.
        id: Uuid,
        /// Its state.
        state: &'static str,
    },
    /// No pipeline with this id.
    #[error("no pipeline {0}")]
    UnknownPipeline(Uuid),
    /// A pipeline with this id exists already.
    #[error("pipeline {0} exists already")]
    DuplicatePipeline(Uuid),
    /// The negotiated protocol is too old for the action.
    #[error("{action} needs protocol {need}, negotiated {have}")]
    ProtocolTooOld {
        /// What was attempted.
        action: &'static str,
        /// The version needed.
        need: &'static str,
        /// The version negotiated.
        have: String,
    },
    /// A SecureString was used before the session key exchange finished.
    #[error("no session key: exchange keys first")]
    NoSessionKey,
    /// No key exchange is in progress.
    #[error("no key exchange in progress")]
    NoKeyExchange,
}

/// The peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message addressed to the wrong side.
    #[error("{message_type} addressed to the wrong side")]
    WrongDestination {
        /// The message type.
        message_type: MessageType,
    },
    /// A message for another runspace pool.
    #[error("{message_type} for pool {got}, expected {expected}")]
    RpidMismatch {
        /// The message type.
        message_type: MessageType,
        /// This pool.
        expected: Uuid,
        /// The RPID received.
        got: Uuid,
    },
    /// A message for a pipeline this side does not know.
    #[error("{message_type} for unknown pipeline {pid}")]
    UnknownPipeline {
        /// The message type.
        message_type: MessageType,
        /// The PID received.
        pid: Uuid,
    },
    /// A message that cannot come now.
    #[error("unexpected {message_type} in state {state}")]
    Unexpected {
        /// The message type.
        message_type: MessageType,
        /// The state it arrived in.
        state: &'static str,
    },
    /// The peers share no protocol version.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(String),
}

/// Anything the state machines can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PsrpError {
    /// Bad fragments.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// A bad message header.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A bad payload.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A call at the wrong time.
    #[error(transparent)]
    State(#[from] StateError),
    /// The peer broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Key exchange or SecureString failure.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
