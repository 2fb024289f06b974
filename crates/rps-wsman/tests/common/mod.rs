//! Loaders for the peer fixtures (recorded traffic of other WinRM/PSRP projects).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rps_wsman::{Body, Envelope};

/// The peer-fixtures directory: `$RPS_PEER_FIXTURES`, else `../../../shared/peer-fixtures`.
pub fn fixtures() -> PathBuf {
    let dir = match std::env::var_os("RPS_PEER_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures"),
    };
    assert!(
        dir.join("README.md").is_file(),
        "peer fixtures not found at {} (set RPS_PEER_FIXTURES)",
        dir.display()
    );
    dir
}

/// Files in `dir` (relative to the fixtures root) ending in `suffix`, sorted.
pub fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let path = fixtures().join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[derive(serde::Deserialize)]
struct Recording {
    messages: Vec<Exchange>,
}

/// One pypsrp exchange.
#[derive(serde::Deserialize, Clone)]
pub struct Exchange {
    pub request: String,
    pub response: Option<String>,
    #[serde(default)]
    pub transport_error: Option<serde_yaml_ng::Value>,
}

pub const PYPSRP_DIR: &str = "jborean93__pypsrp/tests/tests_pypsrp/responses";

/// Every pypsrp recording (`test_*.yml`): (file name, exchanges).
pub fn pypsrp() -> Vec<(String, Vec<Exchange>)> {
    files(PYPSRP_DIR, ".yml")
        .into_iter()
        .filter(|p| name(p).starts_with("test_"))
        .map(|p| {
            let rec: Recording = serde_yaml_ng::from_slice(&read(&p))
                .unwrap_or_else(|e| panic!("yaml {}: {e}", p.display()));
            (name(&p), rec.messages)
        })
        .collect()
}

/// winrm4j recordings: (file, request or response, envelope text), with the
/// `${...}` placeholders filled in.
pub fn winrm4j() -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for p in files(
        "cloudsoft__winrm4j/client/src/test/resources/recordings",
        ".xml",
    ) {
        let text = String::from_utf8(read(&p)).expect("utf-8");
        let text = text
            .replace("${messageId}", "uuid:00000000-0000-0000-0000-000000000001")
            .replace("${serviceUrl}", "http://localhost:5985/wsman");
        for (open, kind) in [("<request", "request"), ("<response", "response")] {
            let close = format!("</{}>", &open[1..]);
            let mut rest = text.as_str();
            while let Some(start) = rest.find(open) {
                let after = &rest[start..];
                let Some(gt) = after.find('>') else { break };
                let Some(end) = after.find(&close) else { break };
                out.push((name(&p), kind, after[gt + 1..end].trim().to_owned()));
                rest = &after[end + close.len()..];
            }
        }
    }
    out
}

/// masterzen's sample client requests, split on the `<!-- -->` comments.
pub fn masterzen_requests() -> Vec<String> {
    let p = fixtures().join("masterzen__winrm/development/sample_requests.txt");
    let text = String::from_utf8(read(&p)).expect("utf-8");
    text.split("<!--")
        .filter_map(|chunk| {
            chunk
                .split_once("-->")
                .map(|(_, rest)| rest.trim().to_owned())
        })
        .filter(|c| c.contains("Envelope"))
        .collect()
}

/// WinRb `.xml.erb` response templates with plausible values substituted.
pub fn winrb_erb() -> Vec<(String, String)> {
    files("WinRb__WinRM/tests/spec/stubs/responses", ".xml.erb")
        .into_iter()
        .map(|p| {
            let t = String::from_utf8(read(&p)).expect("utf-8");
            let t = t
                .replace("<%= command_id %>", "A3C8F2F2-8B7A-4F8E-9D31-5C5E1C0F0B11")
                .replace("<%= test_data_stdout %>", "aGVsbG8gd29ybGQNCg==")
                .replace("<%= test_data_stdout1 %>", "AAAAAAAAAAE=")
                .replace("<%= test_data_stdout2 %>", "AAAAAAAAAAI=")
                .replace("<%= test_data_stderr %>", "ZXJyb3INCg==");
            assert!(!t.contains("<%"), "unfilled placeholder in {}", p.display());
            (name(&p), t)
        })
        .collect()
}

/// Assert decode -> encode -> decode is the identity; returns the first decode.
pub fn round_trip(label: &str, bytes: &[u8]) -> Envelope {
    let first = Envelope::decode(bytes).unwrap_or_else(|e| panic!("{label}: decode: {e}"));
    let encoded = first.encode();
    let second = Envelope::decode(encoded.as_bytes())
        .unwrap_or_else(|e| panic!("{label}: re-decode: {e}\n{encoded}"));
    assert_eq!(first, second, "{label}: round trip differs\n{encoded}");
    // encoding is deterministic and a fixed point
    assert_eq!(encoded, second.encode(), "{label}: encoding not stable");
    first
}

/// Short name of the body variant, for messages and counts.
pub fn variant(body: &Body) -> &'static str {
    match body {
        Body::Create(_) => "Create",
        Body::CreateResponse(_) => "CreateResponse",
        Body::Delete => "Delete",
        Body::DeleteResponse => "DeleteResponse",
        Body::Get => "Get",
        Body::GetResponse(_) => "GetResponse",
        Body::Put(_) => "Put",
        Body::PutResponse(_) => "PutResponse",
        Body::Enumerate(_) => "Enumerate",
        Body::EnumerateResponse(_) => "EnumerateResponse",
        Body::Pull(_) => "Pull",
        Body::PullResponse(_) => "PullResponse",
        Body::Command(_) => "Command",
        Body::CommandResponse { .. } => "CommandResponse",
        Body::Send(_) => "Send",
        Body::SendResponse => "SendResponse",
        Body::Receive(_) => "Receive",
        Body::ReceiveResponse(_) => "ReceiveResponse",
        Body::Signal(_) => "Signal",
        Body::SignalResponse => "SignalResponse",
        Body::Disconnect(_) => "Disconnect",
        Body::DisconnectResponse => "DisconnectResponse",
        Body::Reconnect => "Reconnect",
        Body::ReconnectResponse => "ReconnectResponse",
        Body::Connect(_) => "Connect",
        Body::ConnectResponse(_) => "ConnectResponse",
        Body::Fault(_) => "Fault",
        Body::Empty => "Empty",
        Body::Unknown { .. } => "Unknown",
        _ => "other",
    }
}
