//! A sans-IO replayer: answers a live client's requests with a [`Transcript`]'s recorded
//! responses, after checking that each request means the same as the recorded one.
//!
//! [`Replayer::handle`] takes the body of one live request and matches it **semantically**
//! against the next recorded request:
//!
//! * WS-Man: the action, the resource URI, the selectors (ShellId mapped, see below), the
//!   options (names and values), and the body: the Create's streams, the Command's
//!   CommandId and command text, the streams of a Send (names, mapped CommandIds), the
//!   Receive's desired streams, the Signal's code, the Connect's CommandId.
//! * PSRP, inside `creationXml`, `connectXml`, a Command's arguments or a Send's streams:
//!   the messages are reassembled (fragment sizes and ObjectIds don't matter) and compared
//!   one by one: destination, message type, RPID and PID (mapped), and the data as decoded
//!   CLIXML [`Value`]s (not byte for byte: reference ids, whitespace and a BOM don't matter;
//!   property order doesn't either, since PowerShell reads properties by name).
//!
//! Ignored on purpose (client tuning, not meaning): `wsa:To`, `wsa:ReplyTo`,
//! `wsman:MaxEnvelopeSize`, `wsman:OperationTimeout`, the locales, and `wsmv:SessionId` when
//! only one side sends it.
//!
//! # Ids
//!
//! The ids a client chooses (MessageIDs, the ShellId = RPID, the CommandIds = PIDs, the
//! SessionId) differ between the recording and the live client. The replayer learns a
//! bijection as they first appear (recorded id ↔ live id) and fails when a live id breaks
//! it. Ids the server chose (Windows 2008 R2 picks its own ShellId and CommandId) pass
//! through unchanged, so the live client echoes them just as the recorded client did.
//!
//! Responses are patched for the live client: `RelatesTo` is the live MessageID; ShellId and
//! CommandId selectors and attributes, and the RPID/PID in the header of every PSRP message,
//! are mapped to the live ids. Pre-2019 pypsrp recordings hold RPID/PID bytes in RFC 4122
//! order instead of the .NET order of the spec (the peer fixtures README, "GUID byte
//! order"): the replayer detects this from the first Create ([`GuidOrder`]) and writes the
//! live ids in .NET order.
//!
//! # Transport events
//!
//! A recorded non-200 status is replayed with its body; an exchange recorded as a
//! connection error (or with no response) is answered with
//! [`ReplayResponse::drop_connection`]; a recorded delay is passed on in
//! [`ReplayResponse::delay`] for the server to wait.
//!
//! # Tolerated differences
//!
//! These differences are accepted because they carry nothing for the client or the
//! server, and each is recorded in [`Replayer::tolerated`]:
//!
//! * the live client sends a WinRS terminate Signal for a command whose end (CommandState
//!   Done, or a final PIPELINE_STATE) was already replayed, and the recording has no such
//!   Signal here: the replayer answers with a synthesized SignalResponse and stays on the
//!   same recorded exchange ([`ToleranceKind::SynthesizedSignalResponse`]);
//! * the recording has a terminate Signal for a finished command and the live client skips
//!   it: the recorded Signal is skipped when the live request matches the exchange after it
//!   ([`ToleranceKind::SkippedRecordedSignal`]);
//! * the recording starts a new pipeline under the id of a finished one (pypsrp invokes the
//!   same PowerShell twice) while the live client picks a new id: the recorded id is bound
//!   again ([`ToleranceKind::ReusedPipelineId`]);
//! * a Receive arrives where the recording has the client's Send next (pipeline input or a
//!   host response the client has not queued yet): it is answered with a synthesized
//!   `w:TimedOut` fault, as a server answers a Receive when no output is ready within
//!   OperationTimeout; the client receives again ([`ToleranceKind::EarlyReceive`]);
//! * a `pr` Send (pipeline host responses) names the pipeline's CommandId where pypsrp
//!   named none, and every PSRP message in it carries that pipeline's PID
//!   ([`ToleranceKind::HostResponseCommandId`]);
//! * the public key in a PUBLIC_KEY message differs: each client makes a fresh RSA key pair
//!   for the session key exchange ([`ToleranceKind::ClientPublicKey`]).
//!
//! Value comparison rules that are not byte equality (see [`diff_values`]): enum objects are
//! compared by their integer value only (pypsrp writes
//! `System.Management.Automation.Runspaces.ApartmentState` where PowerShell writes
//! `System.Threading.ApartmentState`); type names are compared without assembly version,
//! culture and public key token; a property that is `<Nil/>` on one side and absent on the
//! other is the same (PowerShell reads a missing property as null); WinRS signal codes are
//! compared case-insensitively (pypsrp writes `.../signal/Terminate`).
//!
//! After a [`Mismatch`] the replayer does not advance: the next call is matched against the
//! same recorded exchange.
//!
//! [`Value`]: rps_psrp::clixml::Value

mod ids;
mod matching;
mod patch;
mod psrp;
mod tolerance;
mod values;

pub use ids::{GuidOrder, detect_guid_order};
pub use tolerance::{Mismatch, ToleranceKind, Tolerated};
pub use values::{diff_values, render_value};

use std::collections::BTreeSet;
use std::time::Duration;

use rps_wsman::ns::{action, signal};
use rps_wsman::parse_uuid_urn;
use rps_wsman::{Body, Envelope, Header};
use uuid::Uuid;

use crate::transcript::{Exchange, Transcript, TransportEvent};

use ids::IdMap;
use matching::MatchState;
use psrp::Reassembler;

/// How many early Receives in a row get a synthesized timeout before it is a mismatch.
pub const MAX_EARLY_RECEIVES: u32 = 200;

/// What the server should answer to one live request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayResponse {
    /// The HTTP status (meaningless when [`ReplayResponse::drop_connection`] is set).
    pub status: u16,
    /// Headers to send (lower-case names), as recorded.
    pub headers: Vec<(String, String)>,
    /// The body: the recorded SOAP envelope, patched for the live client's ids.
    pub body: Vec<u8>,
    /// Wait this long before answering (a recorded delay).
    pub delay: Option<Duration>,
    /// Close the connection without answering (a recorded connection error).
    pub drop_connection: bool,
}

/// The replayer. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Replayer {
    transcript: Transcript,
    cursor: usize,
    matched: usize,
    order: GuidOrder,
    ids: IdMap,
    message_ids: IdMap,
    recorded_psrp: Reassembler,
    live_psrp: Reassembler,
    /// Server-to-client messages of the recorded responses, to see pipelines finish.
    recorded_out: Reassembler,
    /// Recorded CommandIds whose end (CommandState Done, or a final PIPELINE_STATE) was
    /// replayed.
    finished: BTreeSet<Uuid>,
    tolerated: Vec<Tolerated>,
    synthesized: u64,
    /// Early Receives answered with a timeout since the last match.
    early_receives: u32,
}

fn is_terminate(env: &Envelope) -> Option<Option<Uuid>> {
    match &env.body {
        Body::Signal(s) if s.code.trim().eq_ignore_ascii_case(signal::TERMINATE) => {
            Some(s.command_id.as_deref().and_then(parse_uuid_urn))
        }
        _ => None,
    }
}

impl Replayer {
    /// A replayer at the first exchange of `transcript`.
    pub fn new(transcript: Transcript) -> Self {
        let order = detect_guid_order(&transcript);
        Replayer {
            transcript,
            cursor: 0,
            matched: 0,
            order,
            ids: IdMap::default(),
            message_ids: IdMap::default(),
            recorded_psrp: Reassembler::default(),
            live_psrp: Reassembler::default(),
            recorded_out: Reassembler::default(),
            finished: BTreeSet::new(),
            tolerated: Vec::new(),
            synthesized: 0,
            early_receives: 0,
        }
    }

    /// The transcript being replayed.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The index of the next recorded exchange to match.
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// The number of recorded exchanges.
    pub fn len(&self) -> usize {
        self.transcript.exchanges.len()
    }

    /// True when the transcript has no exchanges.
    pub fn is_empty(&self) -> bool {
        self.transcript.exchanges.is_empty()
    }

    /// True when every recorded exchange has been replayed (or skipped as tolerated).
    pub fn is_finished(&self) -> bool {
        self.cursor >= self.transcript.exchanges.len()
    }

    /// How many live requests matched a recorded exchange.
    pub fn matched(&self) -> usize {
        self.matched
    }

    /// The differences accepted so far.
    pub fn tolerated(&self) -> &[Tolerated] {
        &self.tolerated
    }

    /// The GUID order detected in the recording.
    pub fn guid_order(&self) -> GuidOrder {
        self.order
    }

    /// The live id learned for a recorded id (ShellId, CommandId, RPID, PID, SessionId).
    pub fn live_id(&self, recorded: Uuid) -> Option<Uuid> {
        self.ids.live(recorded)
    }

    /// The recorded id a live id stands for.
    pub fn recorded_id(&self, live: Uuid) -> Option<Uuid> {
        self.ids.recorded(live)
    }

    /// Matches one live request against the next recorded exchange and returns the
    /// recorded answer patched for the live client. See the [module docs](self).
    pub fn handle(&mut self, request_body: &[u8]) -> Result<ReplayResponse, Mismatch> {
        let live = Envelope::decode(request_body)
            .map_err(|e| Mismatch::new(self.cursor, "request", "a SOAP envelope", e.to_string()))?;
        let Some(exchange) = self.transcript.exchanges.get(self.cursor) else {
            if let Some(resp) = self.tolerate_extra_signal(&live) {
                return Ok(resp);
            }
            return Err(Mismatch::new(
                self.cursor,
                "exchange",
                "end of transcript",
                live.action().unwrap_or("a request without action"),
            ));
        };
        let first = match self.try_match(self.cursor, exchange, &live) {
            Ok(state) => return Ok(self.commit(self.cursor, state, &live)),
            Err(m) => m,
        };
        if let Some(resp) = self.tolerate_extra_signal(&live) {
            return Ok(resp);
        }
        if let Some(resp) = self.tolerate_early_receive(&live) {
            return Ok(resp);
        }
        // Skip recorded terminate Signals for finished commands the live client didn't send.
        let mut at = self.cursor;
        let mut skipped = Vec::new();
        while let Some(ex) = self.transcript.exchanges.get(at) {
            let Ok(rec) = Envelope::decode(ex.request.body.as_bytes()) else {
                break;
            };
            let Some(cid) = is_terminate(&rec) else { break };
            if !cid.is_some_and(|c| self.finished.contains(&c)) {
                break;
            }
            skipped.push(cid);
            at += 1;
            let Some(next) = self.transcript.exchanges.get(at) else {
                break;
            };
            if let Ok(state) = self.try_match(at, next, &live) {
                for (i, cid) in skipped.into_iter().enumerate() {
                    self.tolerated.push(Tolerated {
                        exchange: self.cursor + i,
                        kind: ToleranceKind::SkippedRecordedSignal,
                        command_id: cid,
                    });
                }
                self.cursor = at;
                return Ok(self.commit(at, state, &live));
            }
        }
        Err(first)
    }

    /// Answers a Receive that comes while the recording has the client's Send next (input or
    /// a host response not yet sent) with a `w:TimedOut` fault: a server holds such a
    /// Receive until output is ready, which it cannot be before the Send arrives.
    fn tolerate_early_receive(&mut self, live: &Envelope) -> Option<ReplayResponse> {
        if !matches!(live.body, Body::Receive(_)) || self.early_receives >= MAX_EARLY_RECEIVES {
            return None;
        }
        let next = self.transcript.exchanges.get(self.cursor)?;
        let rec = Envelope::decode(next.request.body.as_bytes()).ok()?;
        if !matches!(rec.body, Body::Send(_)) {
            return None;
        }
        self.early_receives += 1;
        if self.early_receives == 1 {
            self.tolerated.push(Tolerated {
                exchange: self.cursor,
                kind: ToleranceKind::EarlyReceive,
                command_id: None,
            });
        }
        let fault = rps_wsman::Fault {
            code: rps_wsman::QName::new(rps_wsman::ns::SOAP, "Receiver"),
            subcodes: vec![rps_wsman::QName::new(rps_wsman::ns::WSMAN, "TimedOut")],
            reason: Some(
                "The WS-Management service cannot complete the operation within the time \
                 specified in OperationTimeout."
                    .to_owned(),
            ),
            reason_lang: Some("en-US".to_owned()),
            wsman_fault: Some(rps_wsman::WsmanFault {
                code: Some(2_150_858_793),
                machine: None,
                message: None,
                provider_fault: None,
            }),
            ..rps_wsman::Fault::default()
        };
        Some(self.synthesize(live, action::WSMAN_FAULT, Body::Fault(fault), 500))
    }

    fn synthesize(
        &mut self,
        live: &Envelope,
        act: &str,
        body: Body,
        status: u16,
    ) -> ReplayResponse {
        self.synthesized += 1;
        let message_id = Uuid::from_u128(
            0x5e9a_15ed_0000_4000_8000_0000_0000_0000 | u128::from(self.synthesized),
        );
        let relates = live.header.message_id.clone().unwrap_or_default();
        let env = Envelope::new(Header::response(act, message_id, relates), body);
        ReplayResponse {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/soap+xml;charset=UTF-8".to_owned(),
            )],
            body: env.encode().into_bytes(),
            delay: None,
            drop_connection: false,
        }
    }

    /// Answers a live terminate Signal for a finished command that the recording lacks.
    fn tolerate_extra_signal(&mut self, live: &Envelope) -> Option<ReplayResponse> {
        let cid = is_terminate(live)??;
        let recorded = self.ids.recorded(cid).unwrap_or(cid);
        if !self.finished.contains(&recorded) {
            return None;
        }
        self.tolerated.push(Tolerated {
            exchange: self.cursor,
            kind: ToleranceKind::SynthesizedSignalResponse,
            command_id: Some(recorded),
        });
        Some(self.synthesize(live, action::SIGNAL_RESPONSE, Body::SignalResponse, 200))
    }

    fn commit(&mut self, at: usize, state: MatchState, live: &Envelope) -> ReplayResponse {
        self.early_receives = 0;
        self.tolerated.extend(state.tolerated);
        for id in &state.rebound {
            self.finished.remove(id);
        }
        self.ids = state.ids;
        self.message_ids = state.message_ids;
        self.recorded_psrp = state.recorded_psrp;
        self.live_psrp = state.live_psrp;
        self.cursor = at + 1;
        self.matched += 1;
        let Some(exchange) = self.transcript.exchanges.get(at) else {
            return ReplayResponse {
                status: 500,
                headers: Vec::new(),
                body: Vec::new(),
                delay: None,
                drop_connection: true,
            };
        };
        let exchange = exchange.clone();
        self.respond(&exchange, live)
    }

    fn respond(&mut self, exchange: &Exchange, live: &Envelope) -> ReplayResponse {
        let delay = match &exchange.transport {
            Some(TransportEvent::Delay { millis }) => Some(Duration::from_millis(*millis)),
            _ => None,
        };
        let dropped = matches!(exchange.transport, Some(TransportEvent::ConnectionError));
        let Some(resp) = exchange.response.as_ref().filter(|_| !dropped) else {
            return ReplayResponse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                delay,
                drop_connection: true,
            };
        };
        let body = self.patch_response(resp.body.as_bytes(), live);
        ReplayResponse {
            status: resp.status,
            headers: resp
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body,
            delay,
            drop_connection: false,
        }
    }
}
