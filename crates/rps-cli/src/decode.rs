//! `rps decode FILE`: every WS-Man envelope, and every PSRP message inside, as JSON Lines.
//!
//! FILE may be a single SOAP envelope, a pypsrp YAML recording, an rps transcript, a CLIXML
//! document, or base64 PSRP fragment blobs (one per line).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use rps_psrp::fragment::{Defragmenter, FragmentReader};
use rps_psrp::message::RawMessage;
use rps_replay::Transcript;
use rps_wsman::{Body, Envelope, PsrpPart};
use serde_json::{Value as Json, json};

/// Arguments of `rps decode`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A SOAP envelope, a pypsrp YAML recording, an rps transcript, a CLIXML document, or
    /// base64 PSRP fragment blobs (one per line).
    pub file: PathBuf,
    /// Print only the envelope lines, not the PSRP messages inside them.
    #[arg(long)]
    pub envelopes_only: bool,
}

/// The WinRS resource URI of a plain command shell: its streams are console bytes, not PSRP.
const CMD_SHELL_URI: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";

/// Runs `rps decode`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let name = args.file.display().to_string();
    let mut failures = 0usize;
    match classify(&bytes) {
        Input::Transcript => {
            let t = Transcript::from_bytes(&bytes, &name)?;
            let mut session = Session::default();
            for (i, ex) in t.exchanges.iter().enumerate() {
                let body = ex.request.body.as_bytes();
                failures += session.envelope(&mut out, i, Some("request"), body, args)?;
                if let Some(resp) = &ex.response {
                    let body = resp.body.as_bytes();
                    failures += session.envelope(&mut out, i, Some("response"), body, args)?;
                }
            }
        }
        Input::Envelope => {
            failures += Session::default().envelope(&mut out, 0, None, &bytes, args)?;
        }
        Input::Clixml => {
            let values = rps_psrp::clixml::document_from_slice(&bytes)
                .with_context(|| format!("{name}: not a CLIXML document"))?;
            for v in &values {
                serde_json::to_writer(&mut out, &rps_psrp::clixml::json::to_json(v))?;
                writeln!(out)?;
            }
        }
        Input::Base64 => {
            let text = String::from_utf8_lossy(&bytes);
            let mut defrag = Defragmenter::default();
            for (i, line) in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .with_context(|| format!("{name}: line {} is not base64", i + 1))?;
                failures += psrp_lines(
                    &mut out,
                    &mut defrag,
                    i,
                    "unknown",
                    "blob",
                    Bytes::from(blob),
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("rps: {failures} item(s) could not be decoded");
        ExitCode::from(1)
    })
}

enum Input {
    Transcript,
    Envelope,
    Clixml,
    Base64,
}

fn classify(bytes: &[u8]) -> Input {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Input::Transcript;
    }
    let head = &bytes[..bytes.len().min(4096)];
    // UTF-16 envelopes start with a BOM.
    if head.starts_with(&[0xff, 0xfe]) || head.starts_with(&[0xfe, 0xff]) {
        return Input::Envelope;
    }
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if rps_replay::pypsrp::looks_like_recording(&text) || trimmed.starts_with("format:") {
        Input::Transcript
    } else if trimmed.starts_with("#< CLIXML") || trimmed.starts_with("<Objs") {
        Input::Clixml
    } else if trimmed.starts_with('<') {
        if trimmed.contains("Envelope") {
            Input::Envelope
        } else {
            Input::Clixml
        }
    } else {
        Input::Base64
    }
}

/// Per-session decoding state: one defragmenter per shell and direction.
#[derive(Default)]
struct Session {
    defrag: HashMap<(String, &'static str), Defragmenter>,
    cmd_shells: Vec<String>,
    pending_cmd_create: bool,
}

impl Session {
    fn envelope(
        &mut self,
        out: &mut impl Write,
        exchange: usize,
        direction: Option<&'static str>,
        bytes: &[u8],
        args: &Args,
    ) -> anyhow::Result<usize> {
        let decoded = Envelope::decode(bytes);
        let direction = direction.unwrap_or_else(|| match &decoded {
            Ok(env) if is_response(env) => "response",
            _ => "request",
        });
        let env = match decoded {
            Ok(env) => env,
            Err(e) => {
                let line =
                    json!({"exchange": exchange, "direction": direction, "error": e.to_string()});
                writeln!(out, "{line}")?;
                return Ok(1);
            }
        };
        let shell_id = env.shell_id().map(str::to_owned);
        // Track WinRS command shells: their streams carry console bytes, not PSRP.
        if let Body::Create(shell) = &env.body
            && env.resource_uri() == Some(CMD_SHELL_URI)
        {
            self.pending_cmd_create = shell.creation_xml.is_none();
        }
        if let Body::CreateResponse(_) = &env.body
            && std::mem::take(&mut self.pending_cmd_create)
            && let Some(id) = &shell_id
        {
            self.cmd_shells.push(id.to_ascii_uppercase());
        }
        let streams: Vec<Json> = env
            .streams()
            .map(|s| json!({"name": s.name, "command_id": s.command_id, "end": s.end, "bytes": s.data.len()}))
            .collect();
        let fault = env.fault().map(|f| {
            let wf = f.wsman_fault.as_ref();
            json!({
                "code": f.code.local,
                "subcodes": f.subcodes.iter().map(|s| s.local.clone()).collect::<Vec<_>>(),
                "reason": f.reason,
                "wsman_code": f.wsman_code(),
                "machine": wf.and_then(|w| w.machine.clone()),
                "message": f.message(),
                "timed_out": f.is_operation_timeout(),
            })
        });
        let line = json!({
            "exchange": exchange,
            "direction": direction,
            "action": env.action(),
            "resource_uri": env.resource_uri(),
            "shell_id": shell_id,
            "command_id": env.command_id(),
            "streams": streams,
            "fault": fault,
        });
        writeln!(out, "{line}")?;
        if args.envelopes_only {
            return Ok(0);
        }
        let key_shell = shell_id.clone().unwrap_or_default().to_ascii_uppercase();
        if self.cmd_shells.contains(&key_shell)
            || env.resource_uri() == Some(CMD_SHELL_URI) && !matches!(env.body, Body::Create(_))
        {
            return Ok(0);
        }
        let mut failures = 0;
        // A Command whose arguments are not base64 carries no PSRP: nothing to print.
        for p in env.psrp_payloads().unwrap_or_default() {
            let stream = match p.part {
                // The label `rps decode` has always printed for a Command's payload.
                PsrpPart::Arguments { .. } => "arguments",
                part => part.name(),
            };
            let defrag = self
                .defrag
                .entry((key_shell.clone(), direction))
                .or_default();
            let payload = Bytes::from(p.data.into_owned());
            failures += psrp_lines(out, defrag, exchange, direction, stream, payload)?;
        }
        Ok(failures)
    }
}

/// True when the envelope is a server's answer: a fault or a `...Response` action.
fn is_response(env: &Envelope) -> bool {
    env.fault().is_some() || env.action().is_some_and(|a| a.ends_with("Response"))
}

fn psrp_lines(
    out: &mut impl Write,
    defrag: &mut Defragmenter,
    exchange: usize,
    direction: &str,
    stream: &str,
    payload: Bytes,
) -> anyhow::Result<usize> {
    let mut failures = 0;
    for frag in FragmentReader::new(payload) {
        let assembled = match frag
            .map_err(|e| e.to_string())
            .and_then(|f| defrag.push(f).map_err(|e| e.to_string()))
        {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                writeln!(
                    out,
                    "{}",
                    json!({"exchange": exchange, "direction": direction, "stream": stream, "error": e})
                )?;
                failures += 1;
                continue;
            }
        };
        let line = match RawMessage::decode(assembled.data) {
            Ok(msg) => {
                let data = if msg.body().is_empty() {
                    Json::Null
                } else {
                    match rps_psrp::clixml::from_slice(msg.body()) {
                        Ok(v) => rps_psrp::clixml::json::to_json(&v),
                        Err(e) => {
                            failures += 1;
                            json!({"error": e.to_string()})
                        }
                    }
                };
                json!({
                    "exchange": exchange,
                    "direction": direction,
                    "stream": stream,
                    "object_id": assembled.object_id,
                    "message_type": msg.header.message_type.name(),
                    "destination": format!("{:?}", msg.header.destination).to_lowercase(),
                    "rpid": msg.header.rpid.to_string(),
                    "pid": msg.header.pid.to_string(),
                    "data": data,
                })
            }
            Err(e) => {
                failures += 1;
                json!({"exchange": exchange, "direction": direction, "stream": stream, "error": e.to_string()})
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(failures)
}
