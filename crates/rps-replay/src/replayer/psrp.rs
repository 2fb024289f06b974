//! The PSRP messages a request carries, and their reassembly from fragments.

use std::collections::BTreeMap;

use rps_psrp::fragment::parse_fragment;
use rps_psrp::message::MessageHeader;
use rps_wsman::{Body, Envelope, PsrpPayload};

/// Reassembles PSRP messages from fragments across requests (one per side).
#[derive(Debug, Clone, Default)]
pub(super) struct Reassembler {
    pending: BTreeMap<u64, Vec<u8>>,
}

/// One reassembled PSRP message.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub(super) header: MessageHeader,
    pub(super) data: Vec<u8>,
}

impl Reassembler {
    pub(super) fn feed(&mut self, mut buf: &[u8], out: &mut Vec<Msg>) -> Result<(), String> {
        while !buf.is_empty() {
            let (frag, rest) = parse_fragment(buf).map_err(|e| e.to_string())?;
            buf = rest;
            let id = frag.header.object_id;
            let mut data = if frag.header.is_start() {
                Vec::new()
            } else {
                self.pending
                    .remove(&id)
                    .ok_or_else(|| format!("fragment of object {id} without its start"))?
            };
            data.extend_from_slice(frag.blob);
            if frag.header.is_end() {
                let header = MessageHeader::parse(&data).map_err(|e| e.to_string())?;
                let body = data.get(40..).unwrap_or_default().to_vec();
                out.push(Msg { header, data: body });
            } else {
                self.pending.insert(id, data);
            }
        }
        Ok(())
    }
}

/// The PSRP payloads a request carries. A WinRS command line (command text, plain
/// arguments) carries none.
/// True for a request to a WinRS `cmd` shell.
pub(super) fn is_cmd_shell(env: &Envelope) -> bool {
    env.resource_uri()
        .is_some_and(|u| u.trim().eq_ignore_ascii_case(rps_wsman::ns::resource::CMD))
}

pub(super) fn psrp_payloads(env: &Envelope) -> Result<Vec<PsrpPayload<'_>>, String> {
    if is_cmd_shell(env) {
        // A WinRS cmd shell carries console bytes, not PSRP (compared raw in match_body).
        return Ok(Vec::new());
    }
    match &env.body {
        Body::Command(cmd) if !cmd.command.as_deref().unwrap_or("").is_empty() => Ok(Vec::new()),
        _ => env.psrp_payloads().map_err(|e| e.to_string()),
    }
}
