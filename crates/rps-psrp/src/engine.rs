//! The plumbing both state machines share: an outgoing queue fragmented to a budget, a
//! defragmenter, and header checks on what comes in.

use std::collections::VecDeque;

use bytes::Bytes;
use uuid::Uuid;

use crate::clixml;
use crate::error::{ProtocolError, PsrpError};
use crate::event::{OutgoingData, Target};
use crate::fragment::{DefragLimits, Defragmenter, FragmentReader, OutgoingQueue};
use crate::message::{Destination, MessageHeader, RawMessage};
use crate::messages::Message;

#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) rpid: Uuid,
    /// Which side we are: messages we receive carry this destination.
    us: Destination,
    outbox: OutgoingQueue<Target>,
    defrag: Defragmenter,
    /// Bounds on the CLIXML of every payload received.
    clixml_limits: clixml::Limits,
    incoming: VecDeque<(Option<Uuid>, RawMessage)>,
}

impl Engine {
    /// An engine for pool `rpid` on side `us`, reassembling under `limits` and reading
    /// payloads under `clixml_limits`.
    pub(crate) fn new(
        rpid: Uuid,
        us: Destination,
        limits: DefragLimits,
        clixml_limits: clixml::Limits,
    ) -> Self {
        Engine {
            rpid,
            us,
            outbox: OutgoingQueue::new(1),
            defrag: Defragmenter::new(limits),
            clixml_limits,
            incoming: VecDeque::new(),
        }
    }

    /// Queues `msg` for `target`.
    pub(crate) fn queue(&mut self, target: Target, msg: &Message) {
        self.queue_as(target, self.rpid, msg);
    }

    /// Queues `msg` with an explicit RPID (Windows servers send their SESSION_CAPABILITY and
    /// ENCRYPTED_SESSION_KEY with a nil one).
    pub(crate) fn queue_as(&mut self, target: Target, rpid: Uuid, msg: &Message) {
        let header = MessageHeader {
            destination: match self.us {
                Destination::Client => Destination::Server,
                Destination::Server => Destination::Client,
            },
            message_type: msg.message_type(),
            rpid,
            pid: target.pipeline_id.unwrap_or(Uuid::nil()),
        };
        let data = msg.encode_data();
        let mut out = Vec::with_capacity(crate::message::HEADER_LEN + data.len());
        header.write(&mut out);
        out.extend_from_slice(&data);
        self.outbox.push_tagged(target, Bytes::from(out));
    }

    pub(crate) fn has_data(&self) -> bool {
        !self.outbox.is_empty()
    }

    pub(crate) fn data_to_send(
        &mut self,
        max_bytes: usize,
    ) -> Result<Option<OutgoingData>, PsrpError> {
        Ok(self
            .outbox
            .take_tagged(max_bytes)?
            .map(|(target, data)| OutgoingData { target, data }))
    }

    /// Takes received fragments; `stream_pipeline` is the pipeline whose WS-Man stream they
    /// came on, if the transport knows.
    pub(crate) fn receive(
        &mut self,
        data: Bytes,
        stream_pipeline: Option<Uuid>,
    ) -> Result<(), PsrpError> {
        for frag in FragmentReader::new(data) {
            if let Some(done) = self.defrag.push(frag?)? {
                let raw = RawMessage::decode(done.data)?;
                self.incoming.push_back((stream_pipeline, raw));
            }
        }
        Ok(())
    }

    /// The next whole message, header-checked and decoded.
    /// Also returns the pipeline of the stream the message came on, if known.
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_message(
        &mut self,
    ) -> Result<Option<(MessageHeader, Option<Uuid>, Message)>, PsrpError> {
        let Some((stream_pipeline, raw)) = self.incoming.pop_front() else {
            return Ok(None);
        };
        let h = raw.header;
        if h.destination != self.us {
            return Err(ProtocolError::WrongDestination {
                message_type: h.message_type,
            }
            .into());
        }
        // Pool messages must name this pool (or carry a nil RPID, as Windows does on its
        // SESSION_CAPABILITY). Pipeline messages are routed by PID: real servers send some
        // records (warnings) with the runspace's id in the RPID field.
        if h.pid.is_nil() && h.rpid != self.rpid && !h.rpid.is_nil() {
            return Err(ProtocolError::RpidMismatch {
                message_type: h.message_type,
                expected: self.rpid,
                got: h.rpid,
            }
            .into());
        }
        let msg = Message::decode_with(h.message_type, &raw.data, &self.clixml_limits)?;
        Ok(Some((h, stream_pipeline, msg)))
    }
}

/// `min(ours, theirs)` of two `major.minor` protocol versions, as text.
pub(crate) fn negotiate(ours: &str, theirs: &str) -> Result<String, ProtocolError> {
    let a = crate::messages::parse_version(ours);
    let b = crate::messages::parse_version(theirs);
    if b.0 != 2 {
        return Err(ProtocolError::UnsupportedVersion(theirs.to_owned()));
    }
    let v = a.min(b);
    Ok(format!("{}.{}", v.0, v.1))
}
