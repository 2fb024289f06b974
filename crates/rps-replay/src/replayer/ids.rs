//! Ids: the GUID byte order of a recording, and the bijection between recorded and live ids.

use std::collections::HashMap;

use rps_psrp::fragment::parse_fragment;
use rps_psrp::message::MessageHeader;
use rps_wsman::uuid_upper;
use rps_wsman::{Body, Envelope};
use uuid::Uuid;

use crate::transcript::Transcript;

/// The byte order of the RPID/PID GUIDs in a recording's PSRP message headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidOrder {
    /// The .NET `Guid.ToByteArray()` order the spec requires (first three fields
    /// little-endian).
    DotNet,
    /// RFC 4122 (big-endian) order, written by pypsrp before 2019 and echoed by Windows.
    Rfc4122,
}

impl GuidOrder {
    /// The id a recorded header field means, given the GUID `decoded` as the spec reads it.
    pub fn intended(self, decoded: Uuid) -> Uuid {
        match self {
            GuidOrder::DotNet => decoded,
            GuidOrder::Rfc4122 => Uuid::from_bytes(decoded.to_bytes_le()),
        }
    }
}

/// A bijection between recorded and live ids.
#[derive(Debug, Clone, Default)]
pub(super) struct IdMap {
    live_of: HashMap<Uuid, Uuid>,
    recorded_of: HashMap<Uuid, Uuid>,
}

impl IdMap {
    /// Learns or checks `recorded ↔ live`; on conflict returns the id it conflicts with,
    /// rendered for a mismatch.
    pub(super) fn unify(&mut self, recorded: Uuid, live: Uuid) -> Result<(), (String, String)> {
        match (self.live_of.get(&recorded), self.recorded_of.get(&live)) {
            (Some(l), _) if *l != live => Err((
                format!("{} (live {})", uuid_upper(recorded), uuid_upper(*l)),
                uuid_upper(live),
            )),
            (_, Some(r)) if *r != recorded => Err((
                uuid_upper(recorded),
                format!(
                    "{} (already stands for recorded {})",
                    uuid_upper(live),
                    uuid_upper(*r)
                ),
            )),
            _ => {
                self.live_of.insert(recorded, live);
                self.recorded_of.insert(live, recorded);
                Ok(())
            }
        }
    }

    /// Drops the pair of `recorded` (its pipeline is over and the id is used again).
    pub(super) fn forget(&mut self, recorded: Uuid) {
        if let Some(live) = self.live_of.remove(&recorded) {
            self.recorded_of.remove(&live);
        }
    }

    pub(super) fn live(&self, recorded: Uuid) -> Option<Uuid> {
        self.live_of.get(&recorded).copied()
    }

    pub(super) fn recorded(&self, live: Uuid) -> Option<Uuid> {
        self.recorded_of.get(&live).copied()
    }
}

/// The PSRP RPID of the first message in a Create's `creationXml`, as decoded per spec.
fn creation_rpid(env: &Envelope) -> Option<Uuid> {
    let Body::Create(shell) = &env.body else {
        return None;
    };
    let xml = shell.creation_xml.as_deref()?;
    let (frag, _) = parse_fragment(xml).ok()?;
    MessageHeader::parse(frag.blob).ok().map(|h| h.rpid)
}

/// Detects the recording's GUID order from its first PowerShell Create (the RPID must be
/// the ShellId). Defaults to [`GuidOrder::DotNet`].
pub fn detect_guid_order(transcript: &Transcript) -> GuidOrder {
    for ex in &transcript.exchanges {
        let Ok(env) = Envelope::decode(ex.request.body.as_bytes()) else {
            continue;
        };
        if let (Some(rpid), Some(shell)) = (creation_rpid(&env), env.shell_uuid()) {
            if rpid != shell && GuidOrder::Rfc4122.intended(rpid) == shell {
                return GuidOrder::Rfc4122;
            }
            return GuidOrder::DotNet;
        }
    }
    GuidOrder::DotNet
}
