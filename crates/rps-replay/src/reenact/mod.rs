//! Re-enacting a transcript: derive what a client must do from it, drive our client through
//! it against the [`Replayer`], and check that the client reaches the recorded results.
//!
//! [`Scenario::from_transcript`] reads the recorded requests: the configuration (resource
//! URI), the protocol version and pool settings (from `INIT_RUNSPACEPOOL`), the commands
//! (the typed `CREATE_PIPELINE` of each Command), pipeline input (`PIPELINE_INPUT` /
//! `END_OF_PIPELINE_INPUT` in the Sends), host responses, stops and the close; and, from the
//! recorded responses, the expected results: each pipeline's output objects, records and
//! final state, and the pool states. Operations our client does not implement (disconnect,
//! reconnect, key exchange, runspace limits, ...) are listed in
//! [`Scenario::unsupported`].
//!
//! [`check_in_memory`] drives the sans-IO [`Session`] machine against a [`Replayer`] without
//! sockets; [`check_over_loopback`] serves the replayer over HTTP on 127.0.0.1 and runs the
//! async [`RunspacePool`] client against it. Both return a [`Report`]; [`render_outputs`]
//! prints what a transcript's pipelines produced.
//!
//! [`Replayer`]: crate::replayer::Replayer
//! [`Session`]: rps_session::machine::Session
//! [`RunspacePool`]: rps_session::RunspacePool

mod derive;
mod loopback;
mod memory;
mod render;
mod report;
mod scenario;

pub use loopback::check_over_loopback;
pub use memory::{check_in_memory, check_scenario_in_memory};
pub use render::{display_value, render_outputs};
pub use report::{Mode, PipelineReport, Report};
pub use scenario::{
    Action, Expected, ExpectedPipeline, PlannedPipeline, PlannedPool, PoolCallKind, Scenario, Step,
};

use std::fmt;

use uuid::Uuid;

/// Why a transcript cannot be re-enacted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReenactError {
    /// The transcript opens no PowerShell runspace pool (a WinRS `cmd` shell, or WS-Man
    /// calls only).
    #[error("not a PowerShell session: {0}")]
    NotPowerShell(String),
    /// A recorded request does not decode.
    #[error("exchange #{exchange}: recorded request does not decode: {error}")]
    Request {
        /// The exchange.
        exchange: usize,
        /// The decode error.
        error: String,
    },
    /// A recorded PSRP message does not decode.
    #[error("exchange #{exchange}: recorded PSRP data does not decode: {error}")]
    Psrp {
        /// The exchange.
        exchange: usize,
        /// The error.
        error: String,
    },
}

/// A recorded operation our client does not perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The recorded exchange.
    pub exchange: usize,
    /// The missing feature, e.g. `disconnect/reconnect (WS-Man Disconnect)`.
    pub feature: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange #{}: {}", self.exchange, self.feature)
    }
}

/// Deterministic live ids, distinct from any recorded one.
fn live_uuid(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128(
        0x7e57_0000_0000_4000_8000_0000_0000_0000 | (u128::from(kind) << 96) | n as u128,
    )
}

/// The RSA key the re-enacting client offers for a session key exchange: made once per
/// process (1024 bits: a replayed server never uses it, and the recorded key is replaced
/// by the live one under [`crate::replayer::ToleranceKind::ClientPublicKey`]).
fn replay_key() -> Result<rsa::RsaPrivateKey, rsa::Error> {
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    if let Some(k) = KEY.get() {
        return Ok(k.clone());
    }
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024)?;
    Ok(KEY.get_or_init(|| key).clone())
}
