//! The rps transcript format: one recorded (or synthesized) WinRM session per file.
//!
//! A transcript is YAML, so it stays human-readable and diffable:
//!
//! ```yaml
//! format: rps-transcript/1
//! meta:
//!   source: pypsrp recording test_psrp_open_runspace.yml (jborean93/pypsrp@42a34edd)
//!   origin: recorded            # or: synthesized
//!   server: Windows Server 2019
//!   protocol_version: '2.3'
//!   date: '2019-02-18'
//!   redacted: [authorization, cookie-values]
//! exchanges:
//! - request:
//!     method: POST
//!     url: https://pod.example/PowerShell-LiveId?BasicAuthToOAuthConversion=true
//!     headers: {content-type: application/soap+xml;charset=UTF-8}
//!     body: <s:Envelope ...>...</s:Envelope>
//!   response:
//!     status: 200
//!     headers: {set-cookie: MS-WSMAN=<redacted>; path=/powershell-liveid}
//!     body: <s:Envelope ...>...</s:Envelope>
//! ```
//!
//! `fixtures/README.md` documents every field. Files ending in `.gz` are gzip-compressed and
//! read transparently.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::pypsrp;

/// The format tag every transcript carries.
pub const FORMAT: &str = "rps-transcript/1";

/// The largest transcript we agree to load, after decompression.
pub const MAX_TRANSCRIPT_BYTES: u64 = 512 * 1024 * 1024;

/// A whole session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Transcript {
    /// Always [`FORMAT`].
    pub format: String,
    /// Where the session came from.
    pub meta: Meta,
    /// The HTTP exchanges, in order.
    pub exchanges: Vec<Exchange>,
}

/// Whether a transcript was captured from a real server.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Captured from a real server.
    Recorded,
    /// Produced by our own code (the fake endpoint, a hand-written scenario).
    Synthesized,
}

/// Provenance and context of a transcript.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Where it came from: a recording's upstream path and commit, or the tool that made it.
    pub source: String,
    /// Recorded from a real server, or synthesized.
    pub origin: Origin,
    /// The server product and version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The PSRP protocol version the server announced, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// When the session happened (ISO 8601 date), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// What was removed before saving (e.g. `authorization`, `cookie-values`, `host-names`).
    #[serde(default)]
    pub redacted: Vec<String>,
    /// Free-form notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One request and what came back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    /// What the client sent.
    pub request: Request,
    /// What the server answered; absent when the connection failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// A transport-level event instead of (or before) the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportEvent>,
}

/// A transport-level event recorded in an exchange.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum TransportEvent {
    /// The connection failed or was dropped; no response arrived.
    ConnectionError,
    /// The server took this long to answer.
    Delay {
        /// Milliseconds.
        millis: u64,
    },
}

/// An HTTP request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Request {
    /// The method (WinRM only uses POST).
    #[serde(default = "post")]
    pub method: String,
    /// The request URL, when known (pypsrp recordings don't keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The headers that matter, lower-cased names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The SOAP envelope.
    pub body: String,
}

/// An HTTP response.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The headers that matter, lower-cased names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The SOAP envelope (or the error text of a non-SOAP error).
    #[serde(default)]
    pub body: String,
}

fn post() -> String {
    "POST".to_owned()
}

/// Why a transcript could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The file could not be read or written.
    #[error("cannot access transcript {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document is larger than [`MAX_TRANSCRIPT_BYTES`].
    #[error("transcript is over the {max}-byte limit")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The document is not valid UTF-8.
    #[error("transcript is not valid UTF-8 (at byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The YAML does not describe a transcript.
    #[error("not an rps transcript: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// The format tag names another format or version.
    #[error("unsupported transcript format {found:?} (expected {FORMAT:?})")]
    Format {
        /// The tag found.
        found: String,
    },
    /// A pypsrp recording could not be imported.
    #[error(transparent)]
    Pypsrp(#[from] pypsrp::LoadError),
}

impl Transcript {
    /// Parses a transcript from its YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, TranscriptError> {
        if text.len() as u64 > MAX_TRANSCRIPT_BYTES {
            return Err(TranscriptError::TooLarge {
                max: MAX_TRANSCRIPT_BYTES,
            });
        }
        let t: Transcript = serde_yaml_ng::from_str(text)?;
        if t.format != FORMAT {
            return Err(TranscriptError::Format { found: t.format });
        }
        Ok(t)
    }

    /// The YAML text of this transcript.
    pub fn to_yaml(&self) -> Result<String, TranscriptError> {
        Ok(serde_yaml_ng::to_string(self)?)
    }

    /// Parses a transcript, or imports a pypsrp recording, from raw bytes (gzip is detected by
    /// its magic number and decompressed within [`MAX_TRANSCRIPT_BYTES`]). `name` is used as the
    /// source of an imported pypsrp recording.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, TranscriptError> {
        let owned;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(MAX_TRANSCRIPT_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|source| TranscriptError::Io {
                    path: name.to_owned(),
                    source,
                })?;
            if out.len() as u64 > MAX_TRANSCRIPT_BYTES {
                return Err(TranscriptError::TooLarge {
                    max: MAX_TRANSCRIPT_BYTES,
                });
            }
            owned = out;
            &owned[..]
        } else {
            bytes
        };
        let text = std::str::from_utf8(bytes).map_err(|e| TranscriptError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        if pypsrp::looks_like_recording(text) {
            Ok(Self::from_pypsrp(&pypsrp::parse(text)?, name))
        } else {
            Self::from_yaml(text)
        }
    }

    /// Loads a transcript file (`.yaml`, `.yml`, optionally gzip) or a pypsrp recording.
    pub fn load(path: &Path) -> Result<Self, TranscriptError> {
        let io = |source| TranscriptError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_TRANSCRIPT_BYTES {
            return Err(TranscriptError::TooLarge {
                max: MAX_TRANSCRIPT_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::from_bytes(&bytes, &name)
    }

    /// Writes the transcript as YAML (gzip-compressed when the path ends in `.gz`).
    pub fn save(&self, path: &Path) -> Result<(), TranscriptError> {
        use std::io::Write;
        let io = |source| TranscriptError::Io {
            path: path.display().to_string(),
            source,
        };
        let yaml = self.to_yaml()?;
        if path.extension().is_some_and(|e| e == "gz") {
            let file = std::fs::File::create(path).map_err(io)?;
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            gz.write_all(yaml.as_bytes()).map_err(io)?;
            gz.finish().map_err(io)?;
            Ok(())
        } else {
            std::fs::write(path, yaml).map_err(io)
        }
    }

    /// Imports a pypsrp recording. pypsrp keeps only the SOAP bodies: no URL, no headers.
    pub fn from_pypsrp(rec: &pypsrp::Recording, name: &str) -> Self {
        let exchanges = rec
            .messages
            .iter()
            .map(|m| {
                let transport = if m.http_error == Some(true) {
                    Some(TransportEvent::ConnectionError)
                } else {
                    m.timeout.filter(|t| *t > 0).map(|t| TransportEvent::Delay {
                        millis: t.saturating_mul(1000),
                    })
                };
                Exchange {
                    request: Request {
                        method: post(),
                        url: None,
                        headers: BTreeMap::new(),
                        body: m.request.clone(),
                    },
                    response: m.response.as_ref().map(|body| Response {
                        status: m.status(),
                        headers: BTreeMap::new(),
                        body: body.clone(),
                    }),
                    transport,
                }
            })
            .collect();
        Transcript {
            format: FORMAT.to_owned(),
            meta: Meta {
                source: format!("pypsrp recording {name} (jborean93/pypsrp)"),
                origin: Origin::Recorded,
                server: None,
                protocol_version: None,
                date: None,
                redacted: vec!["http-headers".to_owned(), "authentication".to_owned()],
                notes: Some(
                    "imported from pypsrp: SOAP bodies only, decrypted; pypsrp's test harness \
                     keys (transport_error, http_error, timeout) mapped to status and transport events"
                        .to_owned(),
                ),
            },
            exchanges,
        }
    }
}
