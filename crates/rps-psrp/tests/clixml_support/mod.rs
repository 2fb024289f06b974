//! Shared helpers for the CLIXML tests: locating the peer fixtures and pulling PSRP message
//! payloads out of the pypsrp recordings.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The peer fixtures directory: `$RPS_PEER_FIXTURES`, else `../../../shared/peer-fixtures`.
pub fn peer_fixtures() -> PathBuf {
    let dir = match std::env::var_os("RPS_PEER_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures"),
    };
    assert!(
        dir.is_dir(),
        "peer fixtures not found at {} (set RPS_PEER_FIXTURES)",
        dir.display()
    );
    dir
}

/// Every file under `dir`, recursively, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One PSRP message found in a recording.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Recording file name.
    pub file: String,
    /// Exchange index in the recording.
    pub exchange: usize,
    /// `request` or `response`.
    pub side: &'static str,
    /// The message type (e.g. 0x00041005 ERROR_RECORD).
    pub message_type: u32,
    /// The message data after the 40-byte header (BOM kept).
    pub data: Vec<u8>,
}

const TAGS: &[&str] = &[
    "Stream",
    "Arguments",
    "creationXml",
    "connectXml",
    "connectResponseXml",
];

/// Base64 texts of the elements that carry PSRP fragments.
fn payload_texts(xml: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        let end = rest.find([' ', '>', '/']).unwrap_or(rest.len());
        let name = &rest[..end];
        let local = name.rsplit(':').next().unwrap_or(name);
        if name.starts_with('/') || !TAGS.contains(&local) {
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        if rest[..gt].ends_with('/') {
            continue;
        }
        let body = &rest[gt + 1..];
        let close = body.find('<').unwrap_or(body.len());
        out.push(body[..close].trim());
        rest = &body[close..];
    }
    out
}

/// Splits single-fragment (Start|End) messages out of fragment bytes.
pub fn messages(bytes: &[u8], mut push: impl FnMut(u32, Vec<u8>)) {
    let mut rest = bytes;
    while rest.len() >= 21 {
        let flags = rest[16];
        let len = u32::from_be_bytes([rest[17], rest[18], rest[19], rest[20]]) as usize;
        if rest.len() < 21 + len {
            return;
        }
        let blob = &rest[21..21 + len];
        if flags == 0x03 && blob.len() >= 40 {
            let mt = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
            push(mt, blob[40..].to_vec());
        }
        rest = &rest[21 + len..];
    }
}

/// All single-fragment PSRP messages with a non-empty body in the pypsrp recordings.
pub fn recorded_messages() -> Vec<Msg> {
    let dir = peer_fixtures().join("jborean93__pypsrp/tests/tests_pypsrp/responses");
    let mut out = Vec::new();
    for path in walk(&dir) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.starts_with("test_") || !file.ends_with(".yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let Some(list) = doc.get("messages").and_then(|m| m.as_sequence()) else {
            continue;
        };
        for (i, ex) in list.iter().enumerate() {
            for side in ["request", "response"] {
                let Some(xml) = ex.get(side).and_then(|v| v.as_str()) else {
                    continue;
                };
                if xml.contains("windows/shell/cmd") {
                    continue;
                }
                for b64 in payload_texts(xml) {
                    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                        continue;
                    };
                    messages(&bytes, |message_type, data| {
                        if !data.is_empty() {
                            out.push(Msg {
                                file: file.clone(),
                                exchange: i,
                                side,
                                message_type,
                                data,
                            });
                        }
                    });
                }
            }
        }
    }
    out
}
