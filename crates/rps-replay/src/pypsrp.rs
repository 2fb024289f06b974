//! Loading pypsrp's YAML recordings.
//!
//! pypsrp (`tests/tests_pypsrp/responses/test_*.yml`) records each session as an ordered list of
//! exchanges: the SOAP envelope its client sent and the one the real server answered, plus a
//! few keys that tell pypsrp's fake transport to raise an error instead of answering.

use serde::Deserialize;

/// The largest recording we agree to parse (pypsrp's biggest is under 1 MiB).
pub const MAX_RECORDING_BYTES: usize = 64 * 1024 * 1024;

/// A pypsrp recording: its exchanges in order.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Recording {
    /// The exchanges, in the order the client made them.
    pub messages: Vec<Exchange>,
}

/// One request/response pair of a pypsrp recording.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Exchange {
    /// The SOAP envelope the client sent.
    pub request: String,
    /// The SOAP envelope the server returned (absent when the exchange simulates a
    /// connection failure).
    pub response: Option<String>,
    /// Deliver the response as the body of an HTTP error (WinRM sends faults with status 500).
    #[serde(default)]
    pub transport_error: Option<TransportError>,
    /// Simulate a connection failure instead of answering.
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub http_error: Option<bool>,
    /// Seconds the fake transport waited before answering.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Simulate an authentication failure.
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub auth_error: Option<bool>,
    /// Edits pypsrp applies to the recorded request before comparing.
    #[serde(default)]
    pub overrides: Vec<Override>,
}

/// A flag written as YAML 1.2 (`true`) or, as pypsrp's own template does, YAML 1.1
/// (`yes`, `no`, `on`, `off`).
fn yaml11_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "on" | "true" => Ok(Some(true)),
            "no" | "n" | "off" | "false" => Ok(Some(false)),
            other => Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(other),
                &"a boolean (true/false/yes/no/on/off)",
            )),
        },
    }
}

/// An HTTP-level error the recorded exchange answered with.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TransportError {
    /// The protocol (always `http`).
    pub protocol: String,
    /// The HTTP status code.
    pub code: u16,
}

/// A pypsrp request override: an ElementTree path and the attributes or text to set.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Override {
    /// ElementTree path with the prefixes `s`, `wsa`, `wsman`, `wsmv`, `rsp`, `pwsh`.
    pub path: String,
    /// Attributes to set.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Replacement text.
    #[serde(default)]
    pub text: Option<String>,
}

impl Exchange {
    /// The HTTP status the server answered with (200 unless `transport_error` says otherwise).
    pub fn status(&self) -> u16 {
        self.transport_error.as_ref().map_or(200, |t| t.code)
    }
}

/// Why a recording could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The document is larger than [`MAX_RECORDING_BYTES`].
    #[error("pypsrp recording is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The document length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not a pypsrp recording.
    #[error("not a pypsrp recording: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// Parses a pypsrp recording from its YAML text.
pub fn parse(text: &str) -> Result<Recording, LoadError> {
    if text.len() > MAX_RECORDING_BYTES {
        return Err(LoadError::TooLarge {
            len: text.len(),
            max: MAX_RECORDING_BYTES,
        });
    }
    Ok(serde_yaml_ng::from_str(text)?)
}

/// True when `text` looks like a pypsrp recording: a YAML mapping whose first key, after any
/// comment lines, is `messages:`.
pub fn looks_like_recording(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("messages:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_flags_as_in_pypsrps_template() {
        let r = parse(
            "messages:\n- request: a\n  response: b\n  http_error: yes\n  auth_error: no  # c\n- request: c\n  http_error: true\n",
        )
        .expect("parse");
        assert_eq!(r.messages[0].http_error, Some(true));
        assert_eq!(r.messages[0].auth_error, Some(false));
        assert_eq!(r.messages[1].http_error, Some(true));
        assert_eq!(r.messages[1].auth_error, None);
        let bad = parse("messages:\n- request: a\n  http_error: maybe\n").expect_err("maybe");
        assert!(bad.to_string().contains("maybe"), "{bad}");
    }
}
