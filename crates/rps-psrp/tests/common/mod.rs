//! Shared helpers for the PSRP tests: locate the peer fixtures, load the pypsrp YAML
//! recordings and pull the base64 PSRP payloads out of their envelopes with a plain scan
//! (the WS-Man crate is written separately).

#![allow(dead_code)]

use std::path::PathBuf;

use base64::Engine;
use bytes::Bytes;
use rps_psrp::fragment::{Defragmenter, FragmentReader};
use rps_psrp::message::{Destination, RawMessage};

/// The peer fixtures folder: `RPS_PEER_FIXTURES`, else `../../../shared/peer-fixtures`.
pub fn peer_fixtures() -> PathBuf {
    let dir = std::env::var_os("RPS_PEER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures")
        });
    assert!(
        dir.is_dir(),
        "peer fixtures not found at {} (set RPS_PEER_FIXTURES)",
        dir.display()
    );
    dir
}

/// The pypsrp recordings folder.
pub fn pypsrp_dir() -> PathBuf {
    peer_fixtures().join("jborean93__pypsrp/tests/tests_pypsrp/responses")
}

/// One request/response pair.
pub struct Exchange {
    /// The client's envelope.
    pub request: String,
    /// The server's envelope (absent for simulated transport failures).
    pub response: Option<String>,
}

/// Loads a recording by file name.
pub fn load(name: &str) -> Vec<Exchange> {
    let path = pypsrp_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    doc.get("messages")
        .and_then(|m| m.as_sequence())
        .expect("messages list")
        .iter()
        .map(|m| Exchange {
            request: m
                .get("request")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned(),
            response: m
                .get("response")
                .and_then(|r| r.as_str())
                .map(str::to_owned),
        })
        .collect()
}

/// Every recording file name (sorted).
pub fn recordings() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pypsrp_dir())
        .expect("read pypsrp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("test_") && n.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

const PAYLOAD_ELEMENTS: &[&str] = &[
    "Stream",
    "creationXml",
    "connectXml",
    "connectResponseXml",
    "Arguments",
];

/// The base64 texts of the PSRP-carrying elements of an envelope, in document order.
pub fn payloads(envelope: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = envelope;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[..gt];
        if tag.starts_with('/') || tag.ends_with('/') {
            continue;
        }
        let qname = tag.split_whitespace().next().unwrap_or_default();
        let local = qname.rsplit(':').next().unwrap_or_default();
        if !PAYLOAD_ELEMENTS.contains(&local) {
            continue;
        }
        let body = &rest[gt + 1..];
        let Some(end) = body.find("</") else { break };
        let text = body[..end].trim();
        if !text.is_empty() {
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .expect("payload base64"),
            );
        }
        rest = &body[end..];
    }
    out
}

/// True when the request addresses a WinRS `cmd` shell.
pub fn is_cmd_shell(request: &str) -> bool {
    request.contains("/windows/shell/cmd<")
}

/// Reassembles and header-decodes every message of a recording, in order, as
/// `(exchange index, message)`; client and server streams use separate defragmenters.
pub fn raw_messages(name: &str) -> Vec<(usize, RawMessage)> {
    let mut to_server = Defragmenter::default();
    let mut to_client = Defragmenter::default();
    let mut out = Vec::new();
    for (i, ex) in load(name).iter().enumerate() {
        if is_cmd_shell(&ex.request) {
            continue;
        }
        let sides = [
            (Some(ex.request.as_str()), &mut to_server),
            (ex.response.as_deref(), &mut to_client),
        ];
        for (env, defrag) in sides {
            let Some(env) = env else { continue };
            for p in payloads(env) {
                for frag in FragmentReader::new(Bytes::from(p)) {
                    let frag = frag.unwrap_or_else(|e| panic!("{name} #{i}: {e}"));
                    if let Some(done) = defrag
                        .push(frag)
                        .unwrap_or_else(|e| panic!("{name} #{i}: {e}"))
                    {
                        let m = RawMessage::decode(done.data)
                            .unwrap_or_else(|e| panic!("{name} #{i}: {e}"));
                        out.push((i, m));
                    }
                }
            }
        }
    }
    out
}

/// The server-to-client messages of a recording, as raw bytes of their fragments in
/// arrival order (one entry per `rsp:Stream`/`connectResponseXml`).
pub fn server_payloads(name: &str) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, ex) in load(name).iter().enumerate() {
        if is_cmd_shell(&ex.request) {
            continue;
        }
        if let Some(resp) = &ex.response {
            for p in payloads(resp) {
                out.push((i, p));
            }
        }
    }
    out
}

/// True when `m` was sent by the client.
pub fn is_from_client(m: &RawMessage) -> bool {
    m.header.destination == Destination::Server
}

fn text_after<'a>(hay: &'a str, marker: &str, end: char) -> Option<&'a str> {
    let at = hay.find(marker)? + marker.len();
    let rest = &hay[at..];
    Some(&rest[..rest.find(end)?])
}

/// The last path segment of the request's WS-Addressing Action (`Create`, `Receive`, ...).
pub fn action(request: &str) -> String {
    let Some(at) = request.find(":Action") else {
        return String::new();
    };
    text_after(&request[at..], ">", '<')
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// The ShellId the request addresses (selector, or the Create's `ShellId` attribute).
pub fn shell_id(request: &str) -> Option<String> {
    text_after(request, "Name=\"ShellId\">", '<')
        .or_else(|| text_after(request, "ShellId=\"", '"'))
        .map(str::to_ascii_uppercase)
}

/// The CommandId the request names, if any.
pub fn command_id(request: &str) -> Option<String> {
    text_after(request, "CommandId=\"", '"').map(str::to_ascii_uppercase)
}

/// A deterministic generator for tests (never for real keys).
pub struct TestRng(pub u64);

impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = (self.next_u64() >> 24) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for TestRng {}
