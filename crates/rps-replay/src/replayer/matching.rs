//! Matching a live request against a recorded one, semantically.

use std::collections::{BTreeMap, BTreeSet};

use rps_psrp::clixml;
use rps_psrp::message::MessageType;
use rps_wsman::{Body, Envelope, Header};
use rps_wsman::{parse_uuid_urn, uuid_upper};
use uuid::Uuid;

use super::ids::IdMap;
use super::psrp::{Msg, Reassembler, psrp_payloads};
use super::values::show;
use super::{Mismatch, Replayer, ToleranceKind, Tolerated, diff_values};
use crate::transcript::Exchange;

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

/// Mutable matching state, committed only when a request matches.
#[derive(Clone)]
pub(super) struct MatchState {
    /// A live `pr` Send carried this CommandId where the recorded one had none.
    pub(super) pr_command_id: Option<Uuid>,
    /// Recorded pipeline ids bound to a new live id for a new pipeline.
    pub(super) rebound: Vec<Uuid>,
    pub(super) tolerated: Vec<Tolerated>,
    pub(super) ids: IdMap,
    pub(super) message_ids: IdMap,
    pub(super) recorded_psrp: Reassembler,
    pub(super) live_psrp: Reassembler,
}

impl Replayer {
    /// Matches `live` against recorded exchange `at`; returns the updated state.
    pub(super) fn try_match(
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
        for p in &rec_payloads {
            st.recorded_psrp
                .feed(&p.data, &mut rec_msgs)
                .map_err(|e| Mismatch::new(at, format!("{op}.psrp"), "recorded fragments", e))?;
        }
        let mut live_msgs = Vec::new();
        for p in &live_payloads {
            st.live_psrp
                .feed(&p.data, &mut live_msgs)
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
                        if super::psrp::is_cmd_shell(rec) {
                            // Console input of a cmd shell: the bytes and the end mark.
                            if rs.data != ls.data {
                                return Err(mm(
                                    &format!("Stream[{}]", rs.name),
                                    String::from_utf8_lossy(&rs.data).into_owned(),
                                    String::from_utf8_lossy(&ls.data).into_owned(),
                                ));
                            }
                            if rs.end != ls.end {
                                return Err(mm(
                                    &format!("Stream[{}]@End", rs.name),
                                    rs.end.to_string(),
                                    ls.end.to_string(),
                                ));
                            }
                        }
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
