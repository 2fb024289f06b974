//! Patching recorded responses for the live client: ids, RelatesTo and PSRP headers.

use rps_psrp::fragment::parse_fragment;
use rps_psrp::message::MessageType;
use rps_psrp::messages::Message;
use rps_wsman::{Body, Envelope};
use rps_wsman::{parse_uuid_urn, uuid_upper, uuid_urn};
use uuid::Uuid;

use super::Replayer;
use super::psrp::Reassembler;

impl Replayer {
    /// Maps an id written as text (bare or `uuid:`), keeping its form.
    fn map_text(&self, text: &mut String) {
        if let Some(id) = parse_uuid_urn(text)
            && let Some(live) = self.ids.live(id)
        {
            *text = if text.trim().starts_with("uuid:") {
                uuid_urn(live)
            } else {
                uuid_upper(live)
            };
        }
    }

    /// Maps every id written as a bare GUID in `xml` (the CommandId of an enumerated
    /// `rsp:Command`).
    fn map_ids_in_xml(&self, xml: &mut String) {
        const LEN: usize = 36;
        let mut out = String::with_capacity(xml.len());
        let mut rest = xml.as_str();
        while rest.len() >= LEN {
            let candidate = rest.get(..LEN).and_then(|c| Uuid::parse_str(c).ok());
            match candidate.and_then(|id| self.ids.live(id)) {
                Some(live) => {
                    out.push_str(&uuid_upper(live));
                    rest = &rest[LEN..];
                }
                None => {
                    let step = rest.chars().next().map_or(1, char::len_utf8);
                    out.push_str(&rest[..step]);
                    rest = &rest[step..];
                }
            }
        }
        out.push_str(rest);
        *xml = out;
    }

    /// Rewrites RPID/PID in every PSRP message header of a fragment stream.
    fn patch_fragments(&self, data: &mut [u8]) {
        let mut at = 0;
        while at < data.len() {
            let Ok((frag, _)) = parse_fragment(&data[at..]) else {
                return;
            };
            let blob_at = at + 21;
            let len = frag.blob.len();
            if frag.header.is_start() && len >= 40 {
                for off in [blob_at + 8, blob_at + 24] {
                    let Some(raw) = data.get(off..off + 16) else {
                        return;
                    };
                    let mut bytes = [0u8; 16];
                    bytes.copy_from_slice(raw);
                    let intended = self.order.intended(Uuid::from_bytes_le(bytes));
                    let live = self.ids.live(intended).unwrap_or(intended);
                    if let Some(slot) = data.get_mut(off..off + 16) {
                        slot.copy_from_slice(&live.to_bytes_le());
                    }
                }
            }
            at = blob_at + len;
        }
    }

    pub(super) fn patch_response(&mut self, body: &[u8], live: &Envelope) -> Vec<u8> {
        let Ok(mut env) = Envelope::decode(body) else {
            return body.to_vec();
        };
        if let Some(m) = &live.header.message_id {
            env.header.relates_to = Some(m.clone());
        }
        for s in &mut env.header.selectors {
            self.map_text(&mut s.value);
        }
        let mut finished = Vec::new();
        match &mut env.body {
            Body::CreateResponse(c) => {
                if let Some(rc) = &mut c.resource_created {
                    for s in &mut rc.selectors {
                        self.map_text(&mut s.value);
                    }
                }
                if let Some(shell) = &mut c.shell
                    && let Some(id) = &mut shell.shell_id
                {
                    self.map_text(id);
                }
            }
            Body::GetResponse(rps_wsman::Item::Shell(shell)) => {
                if let Some(id) = &mut shell.shell_id {
                    self.map_text(id);
                }
            }
            Body::CommandResponse { command_id } => self.map_text(command_id),
            Body::EnumerateResponse(page) | Body::PullResponse(page) => {
                for item in &mut page.items {
                    match item {
                        rps_wsman::Item::Shell(shell) => {
                            if let Some(id) = &mut shell.shell_id {
                                self.map_text(id);
                            }
                        }
                        rps_wsman::Item::Raw(raw) => self.map_ids_in_xml(&mut raw.xml),
                    }
                }
            }
            Body::ReceiveResponse(r) => {
                for s in &mut r.streams {
                    let mut msgs = Vec::new();
                    if self.recorded_out.feed(&s.data, &mut msgs).is_err() {
                        self.recorded_out = Reassembler::default();
                    }
                    for m in msgs {
                        let ended = m.header.message_type == MessageType::PipelineState
                            && matches!(
                                Message::decode(m.header.message_type, &m.data.into()),
                                Ok(Message::PipelineState(p)) if p.state.is_terminal()
                            );
                        if ended {
                            finished.push(self.order.intended(m.header.pid));
                            if let Some(id) = s.command_id.as_deref().and_then(parse_uuid_urn) {
                                finished.push(id);
                            }
                        }
                    }
                    if let Some(id) = &mut s.command_id {
                        self.map_text(id);
                    }
                    self.patch_fragments(&mut s.data);
                }
                if let Some(cs) = &mut r.command_state {
                    if cs.is_done()
                        && let Some(id) = cs.command_id.as_deref().and_then(parse_uuid_urn)
                    {
                        finished.push(id);
                    }
                    if let Some(id) = &mut cs.command_id {
                        self.map_text(id);
                    }
                }
            }
            Body::ConnectResponse(c) => {
                if let Some(x) = &mut c.connect_response_xml {
                    self.patch_fragments(x);
                }
            }
            _ => {}
        }
        self.finished.extend(finished);
        env.encode().into_bytes()
    }
}
