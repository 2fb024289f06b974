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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use rps_psrp::clixml::{self, ObjectBase, Value};
use rps_psrp::fragment::parse_fragment;
use rps_psrp::message::{MessageHeader, MessageType};
use rps_psrp::messages::Message;
use rps_wsman::ns::{action, signal};
use rps_wsman::{Body, Envelope, Header};
use rps_wsman::{parse_uuid_urn, uuid_upper, uuid_urn};
use uuid::Uuid;

use crate::transcript::{Exchange, Transcript, TransportEvent};

/// How many early Receives in a row get a synthesized timeout before it is a mismatch.
pub const MAX_EARLY_RECEIVES: u32 = 200;

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
    fn new(
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

/// A difference the replayer accepted; see the [module docs](self).
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

/// A bijection between recorded and live ids.
#[derive(Debug, Clone, Default)]
struct IdMap {
    live_of: HashMap<Uuid, Uuid>,
    recorded_of: HashMap<Uuid, Uuid>,
}

impl IdMap {
    /// Learns or checks `recorded ↔ live`; on conflict returns the id it conflicts with,
    /// rendered for a mismatch.
    fn unify(&mut self, recorded: Uuid, live: Uuid) -> Result<(), (String, String)> {
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
    fn forget(&mut self, recorded: Uuid) {
        if let Some(live) = self.live_of.remove(&recorded) {
            self.recorded_of.remove(&live);
        }
    }

    fn live(&self, recorded: Uuid) -> Option<Uuid> {
        self.live_of.get(&recorded).copied()
    }

    fn recorded(&self, live: Uuid) -> Option<Uuid> {
        self.recorded_of.get(&live).copied()
    }
}

/// Reassembles PSRP messages from fragments across requests (one per side).
#[derive(Debug, Clone, Default)]
struct Reassembler {
    pending: BTreeMap<u64, Vec<u8>>,
}

/// One reassembled PSRP message.
#[derive(Debug, Clone)]
struct Msg {
    header: MessageHeader,
    data: Vec<u8>,
}

impl Reassembler {
    fn feed(&mut self, mut buf: &[u8], out: &mut Vec<Msg>) -> Result<(), String> {
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

/// The PSRP payload carried by a request, and where.
fn psrp_payloads(env: &Envelope) -> Result<Vec<(String, Vec<u8>)>, String> {
    Ok(match &env.body {
        Body::Create(shell) => shell
            .creation_xml
            .iter()
            .map(|x| ("Shell.creationXml".to_owned(), x.clone()))
            .collect(),
        Body::Command(cmd) if cmd.command.as_deref().unwrap_or("").is_empty() => {
            vec![(
                "CommandLine.Arguments".to_owned(),
                cmd.psrp_payload().map_err(|e| e.to_string())?,
            )]
        }
        Body::Send(send) => send
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("Send.Stream[{i}]"), s.data.clone()))
            .collect(),
        Body::Connect(c) => c
            .connect_xml
            .iter()
            .map(|x| ("Connect.connectXml".to_owned(), x.clone()))
            .collect(),
        _ => Vec::new(),
    })
}

/// The operation name of a request, for field paths.
fn op_name(env: &Envelope) -> &'static str {
    match &env.body {
        Body::Create(_) => "Create",
        Body::Delete => "Delete",
        Body::Get => "Get",
        Body::Put(_) => "Put",
        Body::Enumerate(_) => "Enumerate",
        Body::Pull(_) => "Pull",
        Body::Command(_) => "Command",
        Body::Send(_) => "Send",
        Body::Receive(_) => "Receive",
        Body::Signal(_) => "Signal",
        Body::Disconnect(_) => "Disconnect",
        Body::Reconnect => "Reconnect",
        Body::Connect(_) => "Connect",
        _ => "request",
    }
}

fn show<T: fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(absent)".to_owned(),
    }
}

/// A short, unambiguous rendering of a CLIXML value for a mismatch.
pub fn render_value(v: &Value) -> String {
    let mut s = clixml::to_string(v);
    if s.len() > 240 {
        let mut cut = 240;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The first difference between two CLIXML values: `(path suffix, expected, found)`.
pub fn diff_values(expected: &Value, found: &Value) -> Option<(String, String, String)> {
    let mut path = String::new();
    diff_into(&mut path, expected, found)
}

fn diff_into(path: &mut String, e: &Value, f: &Value) -> Option<(String, String, String)> {
    let (Value::Object(eo), Value::Object(fo)) = (e, f) else {
        if e == f {
            return None;
        }
        return Some((path.clone(), render_value(e), render_value(f)));
    };
    let at = path.len();
    let done = |path: &mut String, r| {
        path.truncate(at);
        r
    };
    // Enums: the value is what the peer reads; type names and ToString vary between
    // serializers (pypsrp writes the wrong type name for ApartmentState).
    if let (Some(a), Some(b)) = (enum_value(eo), enum_value(fo)) {
        if a == b {
            return None;
        }
        path.push_str(".<value>");
        let r = Some((path.clone(), a.to_string(), b.to_string()));
        return done(path, r);
    }
    let names = |o: &rps_psrp::clixml::Object| {
        o.type_names
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|n| strip_assembly_details(n))
            .collect::<Vec<_>>()
    };
    if names(eo) != names(fo) {
        path.push_str(".<TN>");
        let r = Some((
            path.clone(),
            format!("{:?}", eo.type_names.as_deref().unwrap_or_default()),
            format!("{:?}", fo.type_names.as_deref().unwrap_or_default()),
        ));
        return done(path, r);
    }
    if eo.to_string != fo.to_string {
        path.push_str(".<ToString>");
        let r = Some((path.clone(), show(&eo.to_string), show(&fo.to_string)));
        return done(path, r);
    }
    match (&eo.base, &fo.base) {
        (ObjectBase::None, ObjectBase::None) => {}
        (ObjectBase::Primitive(a), ObjectBase::Primitive(b)) => {
            path.push_str(".<value>");
            if let Some(r) = diff_into(path, a, b) {
                return done(path, Some(r));
            }
            path.truncate(at);
        }
        (ObjectBase::List(ka, a), ObjectBase::List(kb, b)) => {
            if ka != kb || a.len() != b.len() {
                path.push_str(".<items>");
                let r = Some((
                    path.clone(),
                    format!("{} of {} items", ka.tag(), a.len()),
                    format!("{} of {} items", kb.tag(), b.len()),
                ));
                return done(path, r);
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                path.push_str(&format!("[{i}]"));
                if let Some(r) = diff_into(path, x, y) {
                    return done(path, Some(r));
                }
                path.truncate(at);
            }
        }
        (ObjectBase::Dict(a), ObjectBase::Dict(b)) => {
            if a.len() != b.len() {
                path.push_str(".<entries>");
                let r = Some((
                    path.clone(),
                    format!("{} entries", a.len()),
                    format!("{} entries", b.len()),
                ));
                return done(path, r);
            }
            for (i, ((ka, va), (kb, vb))) in a.iter().zip(b).enumerate() {
                path.push_str(&format!("{{{i}}}.Key"));
                if let Some(r) = diff_into(path, ka, kb) {
                    return done(path, Some(r));
                }
                path.truncate(at);
                let key = ka.as_str().map_or_else(|| i.to_string(), str::to_owned);
                path.push_str(&format!("{{{key}}}"));
                if let Some(r) = diff_into(path, va, vb) {
                    return done(path, Some(r));
                }
                path.truncate(at);
            }
        }
        (a, b) => {
            path.push_str(".<base>");
            let kind = |b: &ObjectBase| match b {
                ObjectBase::None => "no base".to_owned(),
                ObjectBase::Primitive(v) => format!("primitive {}", render_value(v)),
                ObjectBase::List(k, _) => k.tag().to_owned(),
                ObjectBase::Dict(_) => "DCT".to_owned(),
                _ => "other".to_owned(),
            };
            let r = Some((path.clone(), kind(a), kind(b)));
            return done(path, r);
        }
    }
    for (label, ep, fp) in [
        ("", &eo.extended, &fo.extended),
        (".<Props>", &eo.adapted, &fo.adapted),
    ] {
        for p in ep {
            path.push_str(label);
            path.push('.');
            path.push_str(&p.name);
            // PowerShell matches property names without regard to case (pypsrp writes `CI`
            // where PowerShell writes `ci`).
            match fp.iter().find(|q| q.name.eq_ignore_ascii_case(&p.name)) {
                // PowerShell reads a missing property as null.
                None if p.value.is_nil() => {}
                Some(q) => {
                    if let Some(r) = diff_into(path, &p.value, &q.value) {
                        return done(path, Some(r));
                    }
                }
                None => {
                    let r = Some((path.clone(), render_value(&p.value), "(absent)".to_owned()));
                    return done(path, r);
                }
            }
            path.truncate(at);
        }
        if let Some(q) = fp
            .iter()
            .find(|q| !q.value.is_nil() && !ep.iter().any(|p| p.name.eq_ignore_ascii_case(&q.name)))
        {
            path.push_str(label);
            path.push('.');
            path.push_str(&q.name);
            let r = Some((path.clone(), "(absent)".to_owned(), render_value(&q.value)));
            return done(path, r);
        }
    }
    None
}

/// A type name without the assembly version, culture and public key token of its
/// (generic argument) types: `List`1[[PSObject, System.Management.Automation, Version=1.0.0.0,
/// ...]]` and the same with `Version=3.0.0.0` name the same type.
fn strip_assembly_details(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find(", ") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        if ["Version=", "Culture=", "PublicKeyToken="]
            .iter()
            .any(|k| after.starts_with(k))
        {
            let end = after.find([',', ']']).unwrap_or(after.len());
            rest = &after[end..];
        } else {
            out.push_str(", ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The integer of an enum object (type names include `System.Enum`).
fn enum_value(o: &rps_psrp::clixml::Object) -> Option<i64> {
    let is_enum = o
        .type_names
        .as_deref()
        .is_some_and(|t| t.iter().any(|n| n == "System.Enum"));
    match (&o.base, is_enum) {
        (ObjectBase::Primitive(v), true) => v.as_i64(),
        _ => None,
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

fn is_terminate(env: &Envelope) -> Option<Option<Uuid>> {
    match &env.body {
        Body::Signal(s) if s.code.trim().eq_ignore_ascii_case(signal::TERMINATE) => {
            Some(s.command_id.as_deref().and_then(parse_uuid_urn))
        }
        _ => None,
    }
}

/// Mutable matching state, committed only when a request matches.
#[derive(Clone)]
struct MatchState {
    /// A live `pr` Send carried this CommandId where the recorded one had none.
    pr_command_id: Option<Uuid>,
    /// Recorded pipeline ids bound to a new live id for a new pipeline.
    rebound: Vec<Uuid>,
    tolerated: Vec<Tolerated>,
    ids: IdMap,
    message_ids: IdMap,
    recorded_psrp: Reassembler,
    live_psrp: Reassembler,
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

    fn patch_response(&mut self, body: &[u8], live: &Envelope) -> Vec<u8> {
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

    /// Matches `live` against recorded exchange `at`; returns the updated state.
    fn try_match(
        &self,
        at: usize,
        exchange: &Exchange,
        live: &Envelope,
    ) -> Result<MatchState, Mismatch> {
        let rec = Envelope::decode(exchange.request.body.as_bytes()).map_err(|e| {
            Mismatch::new(
                at,
                "recorded request",
                "a SOAP envelope",
                format!("undecodable recording: {e}"),
            )
        })?;
        let mut st = MatchState {
            pr_command_id: None,
            rebound: Vec::new(),
            tolerated: Vec::new(),
            ids: self.ids.clone(),
            message_ids: self.message_ids.clone(),
            recorded_psrp: self.recorded_psrp.clone(),
            live_psrp: self.live_psrp.clone(),
        };
        let op = op_name(&rec);
        let mm =
            |field: &str, e: String, f: String| Mismatch::new(at, format!("{op}.{field}"), e, f);
        if rec.action() != live.action() {
            return Err(Mismatch::new(
                at,
                "header.Action",
                rec.action().unwrap_or("(absent)"),
                live.action().unwrap_or("(absent)"),
            ));
        }
        if rec.resource_uri() != live.resource_uri() {
            return Err(mm(
                "header.ResourceURI",
                show(&rec.resource_uri()),
                show(&live.resource_uri()),
            ));
        }
        // MessageID: must be fresh for the live client.
        if let (Some(r), Some(l)) = (rec.header.message_uuid(), live.header.message_uuid()) {
            st.message_ids
                .unify(r, l)
                .map_err(|(e, f)| mm("header.MessageID", e, f))?;
        } else if live.header.message_uuid().is_none() {
            return Err(mm(
                "header.MessageID",
                show(&rec.header.message_id),
                show(&live.header.message_id),
            ));
        }
        if let (Some(r), Some(l)) = (
            rec.header.session_id.as_deref().and_then(parse_uuid_urn),
            live.header.session_id.as_deref().and_then(parse_uuid_urn),
        ) {
            st.ids
                .unify(r, l)
                .map_err(|(e, f)| mm("header.SessionId", e, f))?;
        }
        // Selectors.
        let names = |h: &Header| {
            h.selectors
                .iter()
                .map(|s| s.name.to_ascii_lowercase())
                .collect::<BTreeSet<_>>()
        };
        if names(&rec.header) != names(&live.header) {
            return Err(mm(
                "header.SelectorSet",
                format!("{:?}", names(&rec.header)),
                format!("{:?}", names(&live.header)),
            ));
        }
        for s in &rec.header.selectors {
            let found = live.header.selector(&s.name).unwrap_or_default();
            let field = format!("header.Selector[{}]", s.name);
            unify_text(&mut st.ids, &s.value, found).map_err(|(e, f)| mm(&field, e, f))?;
        }
        // Options.
        let opts = |h: &Header| {
            h.options
                .as_ref()
                .map(|o| {
                    o.options
                        .iter()
                        .map(|o| (o.name.clone(), o.value.trim().to_owned()))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default()
        };
        let (ro, lo) = (opts(&rec.header), opts(&live.header));
        for (name, value) in &ro {
            let found = lo.get(name);
            if found.is_none_or(|f| !f.eq_ignore_ascii_case(value)) {
                return Err(mm(
                    &format!("header.Option[{name}]"),
                    value.clone(),
                    found.cloned().unwrap_or_else(|| "(absent)".to_owned()),
                ));
            }
        }
        if let Some((name, value)) = lo.iter().find(|(n, _)| !ro.contains_key(*n)) {
            return Err(mm(
                &format!("header.Option[{name}]"),
                "(absent)".to_owned(),
                value.clone(),
            ));
        }
        self.match_body(at, op, &rec, live, &mut st)?;
        // PSRP messages.
        let rec_payloads = psrp_payloads(&rec)
            .map_err(|e| Mismatch::new(at, format!("{op}.psrp"), "PSRP data", e))?;
        let live_payloads = psrp_payloads(live)
            .map_err(|e| Mismatch::new(at, format!("{op}.psrp"), "PSRP data", e))?;
        let mut rec_msgs = Vec::new();
        for (_, p) in &rec_payloads {
            st.recorded_psrp
                .feed(p, &mut rec_msgs)
                .map_err(|e| Mismatch::new(at, format!("{op}.psrp"), "recorded fragments", e))?;
        }
        let mut live_msgs = Vec::new();
        for (_, p) in &live_payloads {
            st.live_psrp
                .feed(p, &mut live_msgs)
                .map_err(|e| Mismatch::new(at, format!("{op}.psrp"), "valid fragments", e))?;
        }
        let types = |m: &[Msg]| {
            m.iter()
                .map(|m| m.header.message_type.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if rec_msgs.len() != live_msgs.len() {
            return Err(Mismatch::new(
                at,
                format!("{op}.psrp"),
                format!("{} messages [{}]", rec_msgs.len(), types(&rec_msgs)),
                format!("{} messages [{}]", live_msgs.len(), types(&live_msgs)),
            ));
        }
        for (i, (r, l)) in rec_msgs.iter().zip(&live_msgs).enumerate() {
            self.match_message(at, &format!("{op}.psrp[{i}]"), r, l, &mut st)?;
        }
        if let Some(cid) = st.pr_command_id {
            // pypsrp sends pipeline host responses without a CommandId; the server routes
            // them by the PID, so a CommandId naming that pipeline is the same request.
            if let Some(m) = live_msgs.iter().find(|m| m.header.pid != cid) {
                return Err(Mismatch::new(
                    at,
                    format!("{op}.Stream[pr]@CommandId"),
                    "(absent)",
                    format!(
                        "{} (PSRP PID {})",
                        uuid_upper(cid),
                        uuid_upper(m.header.pid)
                    ),
                ));
            }
            st.tolerated.push(Tolerated {
                exchange: at,
                kind: ToleranceKind::HostResponseCommandId,
                command_id: st.ids.recorded(cid),
            });
        }
        Ok(st)
    }

    fn match_body(
        &self,
        at: usize,
        op: &str,
        rec: &Envelope,
        live: &Envelope,
        st: &mut MatchState,
    ) -> Result<(), Mismatch> {
        let mm =
            |field: &str, e: String, f: String| Mismatch::new(at, format!("{op}.{field}"), e, f);
        let opt_id =
            |ids: &mut IdMap, field: &str, r: &Option<String>, l: &Option<String>| match (r, l) {
                (None, None) => Ok(()),
                (Some(r), Some(l)) => unify_text(ids, r, l).map_err(|(e, f)| mm(field, e, f)),
                _ => Err(mm(field, show(r), show(l))),
            };
        match (&rec.body, &live.body) {
            (Body::Create(r), Body::Create(l)) => {
                opt_id(&mut st.ids, "Shell.ShellId", &r.shell_id, &l.shell_id)?;
                for (field, a, b) in [
                    ("Shell.InputStreams", &r.input_streams, &l.input_streams),
                    ("Shell.OutputStreams", &r.output_streams, &l.output_streams),
                    ("Shell.Name", &r.name, &l.name),
                    (
                        "Shell.WorkingDirectory",
                        &r.working_directory,
                        &l.working_directory,
                    ),
                ] {
                    let norm = |s: &Option<String>| {
                        s.as_deref()
                            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    };
                    if norm(a) != norm(b) {
                        return Err(mm(field, show(a), show(b)));
                    }
                }
                let env = |s: &rps_wsman::Shell| {
                    s.environment
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone()))
                        .collect::<Vec<_>>()
                };
                if env(r) != env(l) {
                    return Err(mm(
                        "Shell.Environment",
                        format!("{:?}", env(r)),
                        format!("{:?}", env(l)),
                    ));
                }
            }
            (Body::Command(r), Body::Command(l)) => {
                // A client may run a finished pipeline's PowerShell again under the same id
                // (pypsrp does); a fresh id for the new pipeline means the same.
                if let (Some(rid), Some(lid)) = (
                    r.command_id.as_deref().and_then(parse_uuid_urn),
                    l.command_id.as_deref().and_then(parse_uuid_urn),
                ) && self.finished.contains(&rid)
                    && st.ids.live(rid).is_some_and(|old| old != lid)
                {
                    st.ids.forget(rid);
                    st.rebound.push(rid);
                    st.tolerated.push(Tolerated {
                        exchange: at,
                        kind: ToleranceKind::ReusedPipelineId,
                        command_id: Some(rid),
                    });
                }
                opt_id(
                    &mut st.ids,
                    "CommandLine@CommandId",
                    &r.command_id,
                    &l.command_id,
                )?;
                let cmd = |c: &rps_wsman::CommandLine| {
                    c.command.as_deref().unwrap_or("").trim().to_owned()
                };
                if cmd(r) != cmd(l) {
                    return Err(mm("CommandLine.Command", cmd(r), cmd(l)));
                }
                if !cmd(r).is_empty() && r.arguments != l.arguments {
                    return Err(mm(
                        "CommandLine.Arguments",
                        format!("{:?}", r.arguments),
                        format!("{:?}", l.arguments),
                    ));
                }
            }
            (Body::Send(r), Body::Send(l)) => {
                let name_set = |s: &rps_wsman::Send| {
                    s.streams
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<BTreeSet<_>>()
                };
                if name_set(r) != name_set(l) {
                    return Err(mm(
                        "Stream@Name",
                        format!("{:?}", name_set(r)),
                        format!("{:?}", name_set(l)),
                    ));
                }
                for rs in &r.streams {
                    for ls in l.streams.iter().filter(|s| s.name == rs.name) {
                        if rs.name == "pr"
                            && rs.command_id.is_none()
                            && let Some(live_cid) =
                                ls.command_id.as_deref().and_then(parse_uuid_urn)
                        {
                            // Checked against the messages' PID once they are compared.
                            st.pr_command_id = Some(live_cid);
                            continue;
                        }
                        opt_id(
                            &mut st.ids,
                            &format!("Stream[{}]@CommandId", rs.name),
                            &rs.command_id,
                            &ls.command_id,
                        )?;
                    }
                }
            }
            (Body::Receive(r), Body::Receive(l)) => {
                let names = |s: &str| {
                    s.split_whitespace()
                        .map(str::to_owned)
                        .collect::<BTreeSet<_>>()
                };
                if names(&r.desired_streams) != names(&l.desired_streams) {
                    return Err(mm(
                        "DesiredStream",
                        r.desired_streams.clone(),
                        l.desired_streams.clone(),
                    ));
                }
                opt_id(
                    &mut st.ids,
                    "DesiredStream@CommandId",
                    &r.command_id,
                    &l.command_id,
                )?;
            }
            (Body::Signal(r), Body::Signal(l)) => {
                opt_id(&mut st.ids, "@CommandId", &r.command_id, &l.command_id)?;
                if !r.code.trim().eq_ignore_ascii_case(l.code.trim()) {
                    return Err(mm("Code", r.code.clone(), l.code.clone()));
                }
            }
            (Body::Connect(r), Body::Connect(l)) => {
                opt_id(&mut st.ids, "@CommandId", &r.command_id, &l.command_id)?;
            }
            (r, l) if std::mem::discriminant(r) != std::mem::discriminant(l) => {
                return Err(mm("Body", op.to_owned(), op_name(live).to_owned()));
            }
            _ => {}
        }
        Ok(())
    }

    fn match_message(
        &self,
        at: usize,
        path: &str,
        r: &Msg,
        l: &Msg,
        st: &mut MatchState,
    ) -> Result<(), Mismatch> {
        let rt = r.header.message_type;
        let path = format!("{path}({})", rt.name());
        let mm =
            |field: &str, e: String, f: String| Mismatch::new(at, format!("{path}.{field}"), e, f);
        if rt != l.header.message_type {
            return Err(mm(
                "MessageType",
                rt.name().to_owned(),
                l.header.message_type.name().to_owned(),
            ));
        }
        if r.header.destination != l.header.destination {
            return Err(mm(
                "Destination",
                format!("{:?}", r.header.destination),
                format!("{:?}", l.header.destination),
            ));
        }
        let rpid = self.order.intended(r.header.rpid);
        st.ids
            .unify(rpid, l.header.rpid)
            .map_err(|(e, f)| mm("RPID", e, f))?;
        let pid = self.order.intended(r.header.pid);
        st.ids
            .unify(pid, l.header.pid)
            .map_err(|(e, f)| mm("PID", e, f))?;
        let strip = |d: &[u8]| -> Vec<u8> {
            let d = d.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(d);
            d.to_vec()
        };
        let (rd, ld) = (strip(&r.data), strip(&l.data));
        if rt == MessageType::PublicKey && rd != ld {
            // Every client makes its own key pair; only the key's presence matters.
            if clixml::from_slice(&ld).is_err() {
                return Err(mm(
                    "data",
                    "a PUBLIC_KEY object".to_owned(),
                    String::from_utf8_lossy(&ld).into_owned(),
                ));
            }
            st.tolerated.push(Tolerated {
                exchange: at,
                kind: ToleranceKind::ClientPublicKey,
                command_id: None,
            });
            return Ok(());
        }
        let blank = |d: &[u8]| d.iter().all(u8::is_ascii_whitespace);
        if blank(&rd) || blank(&ld) {
            if blank(&rd) != blank(&ld) {
                return Err(mm(
                    "data",
                    format!("{} bytes", rd.len()),
                    format!("{} bytes", ld.len()),
                ));
            }
            return Ok(());
        }
        match (clixml::from_slice(&rd), clixml::from_slice(&ld)) {
            (Ok(rv), Ok(lv)) => {
                if let Some((p, e, f)) = diff_values(&rv, &lv) {
                    return Err(Mismatch::new(at, format!("{path}{p}"), e, f));
                }
            }
            (Ok(_), Err(e)) => return Err(mm("data", "CLIXML".to_owned(), e.to_string())),
            (Err(_), _) => {
                if rd != ld {
                    return Err(mm(
                        "data",
                        String::from_utf8_lossy(&rd).into_owned(),
                        String::from_utf8_lossy(&ld).into_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Unifies two ids written as text; non-ids must be equal (case-insensitively).
fn unify_text(ids: &mut IdMap, recorded: &str, live: &str) -> Result<(), (String, String)> {
    match (parse_uuid_urn(recorded), parse_uuid_urn(live)) {
        (Some(r), Some(l)) => ids.unify(r, l),
        _ if recorded.trim().eq_ignore_ascii_case(live.trim()) => Ok(()),
        _ => Err((recorded.to_owned(), live.to_owned())),
    }
}
