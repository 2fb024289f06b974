//! Mismatches, and the differences the replayer accepts.

use std::fmt;

use rps_wsman::uuid_upper;
use uuid::Uuid;

/// A live request that does not mean what the recorded one did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exchange #{exchange}: {field_path}: expected {expected}, found {found}")]
pub struct Mismatch {
    /// The index of the recorded exchange the request was matched against.
    pub exchange: usize,
    /// Which field differs, e.g.
    /// `Command.psrp[0](CREATE_PIPELINE).PowerShell.Cmds[0].Args[0].V`.
    pub field_path: String,
    /// The recorded value (ids as recorded).
    pub expected: String,
    /// The live value.
    pub found: String,
}

impl Mismatch {
    pub(super) fn new(
        exchange: usize,
        field_path: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Mismatch {
            exchange,
            field_path: field_path.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// A difference the replayer accepted; see the [module docs](super).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToleranceKind {
    /// The live client sent an extra terminate Signal for a finished command; it got a
    /// synthesized SignalResponse.
    SynthesizedSignalResponse,
    /// The recording's terminate Signal for a finished command was not sent by the live
    /// client and was skipped.
    SkippedRecordedSignal,
    /// The live client's `pr` Send (pipeline host responses) named the pipeline's CommandId
    /// where the recorded one (pypsrp) named none; the PSRP PID routes it either way.
    HostResponseCommandId,
    /// A Receive came while the recording had the client's Send next; it was answered with
    /// a synthesized `w:TimedOut` fault (at most [`MAX_EARLY_RECEIVES`] times in a row).
    ///
    /// [`MAX_EARLY_RECEIVES`]: super::MAX_EARLY_RECEIVES
    EarlyReceive,
    /// The recording ran a new pipeline under a finished pipeline's id; the live client
    /// chose a new id, which was bound to it.
    ReusedPipelineId,
    /// The live client's PUBLIC_KEY carried its own (fresh) RSA public key.
    ClientPublicKey,
}

/// One accepted difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerated {
    /// The recorded exchange it happened at (the next one to match).
    pub exchange: usize,
    /// What was accepted.
    pub kind: ToleranceKind,
    /// The command concerned (recorded id).
    pub command_id: Option<Uuid>,
}

impl fmt::Display for Tolerated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ToleranceKind::SynthesizedSignalResponse => {
                "extra terminate Signal answered with a synthesized SignalResponse"
            }
            ToleranceKind::SkippedRecordedSignal => "recorded terminate Signal not sent, skipped",
            ToleranceKind::EarlyReceive => {
                "Receive before the recorded Send answered with a synthesized w:TimedOut"
            }
            ToleranceKind::ReusedPipelineId => {
                "recorded pipeline id reused for a new pipeline, bound to a new live id"
            }
            ToleranceKind::HostResponseCommandId => {
                "host response Send names the pipeline's CommandId, the recording none"
            }
            ToleranceKind::ClientPublicKey => "PUBLIC_KEY carries the live client's own key",
        };
        write!(f, "exchange #{}: {what}", self.exchange)?;
        if let Some(c) = self.command_id {
            write!(f, " (command {})", uuid_upper(c))?;
        }
        Ok(())
    }
}
