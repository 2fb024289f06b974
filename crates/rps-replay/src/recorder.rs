//! Recording a live session as a transcript, with secrets redacted.
//!
//! [`record_to`] installs a [`TranscriptRecorder`] as the session's
//! [`rps_session::ExchangeObserver`]; every exchange is redacted and appended, and the file is
//! rewritten after each one, so a session that dies still leaves its transcript behind.
//!
//! What is removed, always: `Authorization` and `Cookie` headers, cookie values in
//! `Set-Cookie`, `<SS>` SecureString contents inside PSRP payloads, and any string the caller
//! names as a secret (tokens, passwords). Optionally: host names and user names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rps_session::http::{HttpRequest, HttpResponse};
use rps_session::{ConnectOptions, ExchangeObserver};
use rps_wsman::Envelope;

use crate::transcript::{
    Exchange, FORMAT, Meta, Origin, Request, Response, Transcript, TranscriptError, TransportEvent,
};

/// The text that replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// What to redact besides the always-redacted secrets.
#[derive(Clone, Default)]
pub struct Redaction {
    /// Literal secrets (tokens, passwords) to remove wherever they appear.
    pub secrets: Vec<String>,
    /// Replace these host names with `host.invalid`.
    pub hosts: Vec<String>,
    /// Replace these user names with `user`.
    pub users: Vec<String>,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redaction")
            .field("secrets", &self.secrets.len())
            .field("hosts", &self.hosts)
            .field("users", &self.users.len())
            .finish()
    }
}

impl Redaction {
    fn text(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for secret in self.secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(secret.as_str(), REDACTED);
        }
        for host in self.hosts.iter().filter(|h| !h.is_empty()) {
            out = out.replace(host.as_str(), "host.invalid");
        }
        for user in self.users.iter().filter(|u| !u.is_empty()) {
            out = out.replace(user.as_str(), "user");
        }
        out
    }
}

/// Records a session into a transcript file.
#[derive(Debug)]
pub struct TranscriptRecorder {
    path: PathBuf,
    redaction: Redaction,
    transcript: Mutex<Transcript>,
    last_error: Mutex<Option<String>>,
}

impl TranscriptRecorder {
    /// A recorder writing to `path` (gzip when it ends in `.gz`).
    pub fn new(path: impl Into<PathBuf>, source: impl Into<String>, redaction: Redaction) -> Self {
        let mut redacted = vec![
            "authorization".to_owned(),
            "cookie-values".to_owned(),
            "secure-strings".to_owned(),
        ];
        if !redaction.secrets.is_empty() {
            redacted.push("tokens-and-passwords".to_owned());
        }
        if !redaction.hosts.is_empty() {
            redacted.push("host-names".to_owned());
        }
        if !redaction.users.is_empty() {
            redacted.push("user-names".to_owned());
        }
        TranscriptRecorder {
            path: path.into(),
            redaction,
            transcript: Mutex::new(Transcript {
                format: FORMAT.to_owned(),
                meta: Meta {
                    source: source.into(),
                    origin: Origin::Recorded,
                    server: None,
                    protocol_version: None,
                    date: None,
                    redacted,
                    notes: None,
                },
                exchanges: Vec::new(),
            }),
            last_error: Mutex::new(None),
        }
    }

    /// Marks the transcript as synthesized (recorded from a fake endpoint, not a real server).
    pub fn synthesized(self, notes: impl Into<String>) -> Self {
        if let Ok(mut t) = self.transcript.lock() {
            t.meta.origin = Origin::Synthesized;
            t.meta.notes = Some(notes.into());
        }
        self
    }

    /// The transcript so far.
    pub fn transcript(&self) -> Transcript {
        self.transcript
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The last error writing the file, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes the transcript now.
    pub fn save(&self) -> Result<(), TranscriptError> {
        self.transcript().save(&self.path)
    }

    fn headers(&self, headers: &rps_session::http::Headers) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, value) in headers.iter() {
            let lower = name.to_ascii_lowercase();
            let value = match lower.as_str() {
                "authorization" | "cookie" | "proxy-authorization" => REDACTED.to_owned(),
                "set-cookie" => redact_set_cookie(value),
                "content-type" | "location" | "retry-after" | "www-authenticate" | "server" => {
                    self.redaction.text(value)
                }
                _ => continue,
            };
            out.entry(lower)
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        out
    }

    fn body(&self, bytes: &[u8]) -> String {
        let text = redact_secure_strings(bytes);
        self.redaction.text(&text)
    }
}

impl ExchangeObserver for TranscriptRecorder {
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>) {
        let exchange = Exchange {
            request: Request {
                method: request.method.as_str().to_owned(),
                url: Some(self.redaction.text(request.url.as_str())),
                headers: self.headers(&request.headers),
                body: self.body(&request.body),
            },
            response: response.ok().map(|r| Response {
                status: r.status,
                headers: self.headers(&r.headers),
                body: self.body(&r.body),
            }),
            transport: response.err().map(|_| TransportEvent::ConnectionError),
        };
        let result = match self.transcript.lock() {
            Ok(mut t) => {
                t.exchanges.push(exchange);
                t.save(&self.path)
            }
            Err(_) => Ok(()),
        };
        if let (Err(e), Ok(mut last)) = (result, self.last_error.lock()) {
            *last = Some(e.to_string());
        }
    }
}

/// Records the session `options` will open into `path`: installs a [`TranscriptRecorder`]
/// that redacts the credentials' secrets as well. Returns the recorder for inspection.
pub fn record_to(
    options: &mut ConnectOptions,
    path: &Path,
    mut redaction: Redaction,
) -> Arc<TranscriptRecorder> {
    redaction.secrets.retain(|s| !s.is_empty());
    let source = format!("rps record ({})", env!("CARGO_PKG_VERSION"));
    let recorder = Arc::new(TranscriptRecorder::new(path, source, redaction));
    options.observer = Some(recorder.clone());
    recorder
}

fn redact_set_cookie(value: &str) -> String {
    // name=value; attrs -> name=<redacted>; attrs
    let (pair, attrs) = value.split_once(';').unwrap_or((value, ""));
    let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
    if attrs.is_empty() {
        format!("{name}={REDACTED}")
    } else {
        format!("{name}={REDACTED};{attrs}")
    }
}

/// The envelope text with the contents of `<SS>` elements inside PSRP payloads blanked.
/// Bodies that are not envelopes are kept as (lossy) text.
fn redact_secure_strings(bytes: &[u8]) -> String {
    let Ok(mut env) = Envelope::decode(bytes) else {
        return String::from_utf8_lossy(bytes).into_owned();
    };
    // A Command whose arguments are not base64 carries no PSRP to redact.
    let redacted: Vec<(usize, Vec<u8>)> = env
        .psrp_payloads()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, redact_fragments(&p.data)?)))
        .collect();
    if redacted.is_empty() {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    for (i, data) in redacted {
        env.set_psrp_payload(i, data);
    }
    env.encode()
}

/// Rewrites complete (Start+End) fragments whose message text holds `<SS>` elements, with
/// their contents replaced. `None` when nothing changed.
fn redact_fragments(data: &[u8]) -> Option<Vec<u8>> {
    const HEADER: usize = 21;
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    let mut changed = false;
    while at < data.len() {
        let head = data.get(at..at + HEADER)?;
        let len = u32::from_be_bytes([head[17], head[18], head[19], head[20]]) as usize;
        let blob = data.get(at + HEADER..at + HEADER + len)?;
        let new_blob = blank_ss(blob);
        match &new_blob {
            Some(b) => {
                changed = true;
                out.extend_from_slice(&head[..17]);
                out.extend_from_slice(&u32::try_from(b.len()).ok()?.to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&data[at..at + HEADER + len]),
        }
        at += HEADER + len;
    }
    changed.then_some(out)
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `blob` with every `<SS ...>...</SS>` content replaced by nothing.
fn blank_ss(blob: &[u8]) -> Option<Vec<u8>> {
    if !memfind(blob, b"<SS") {
        return None;
    }
    let mut out = Vec::with_capacity(blob.len());
    let mut rest = blob;
    let mut changed = false;
    while let Some(start) = rest.windows(3).position(|w| w == b"<SS") {
        let after = &rest[start..];
        let Some(gt) = after.iter().position(|b| *b == b'>') else {
            break;
        };
        let open_end = start + gt + 1;
        let Some(close) = rest[open_end..].windows(5).position(|w| w == b"</SS>") else {
            break;
        };
        out.extend_from_slice(&rest[..open_end]);
        out.extend_from_slice(b"</SS>");
        rest = &rest[open_end + close + 5..];
        changed = true;
    }
    out.extend_from_slice(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_values_are_redacted() {
        assert_eq!(
            redact_set_cookie("MS-WSMAN=abc123; path=/powershell-liveid; HttpOnly"),
            "MS-WSMAN=<redacted>; path=/powershell-liveid; HttpOnly"
        );
        assert_eq!(redact_set_cookie("a=b"), "a=<redacted>");
    }

    #[test]
    fn secure_string_contents_are_blanked() {
        let blob = b"<Obj><MS><SS N=\"Password\">AAECAwQ=</SS><S>x</S></MS></Obj>";
        let out = blank_ss(blob).expect("changed");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "<Obj><MS><SS N=\"Password\"></SS><S>x</S></MS></Obj>"
        );
        assert!(blank_ss(b"<S>no secrets</S>").is_none());
    }

    #[test]
    fn fragments_are_rewritten_with_new_lengths() {
        let blob = b"0123456789012345678901234567890123456789<SS>c2VjcmV0</SS>".to_vec();
        let mut frag = vec![0u8; 16];
        frag.push(3);
        frag.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        frag.extend_from_slice(&blob);
        let out = redact_fragments(&frag).expect("changed");
        let len = u32::from_be_bytes([out[17], out[18], out[19], out[20]]) as usize;
        assert_eq!(len, out.len() - 21);
        assert!(!memfind(&out, b"c2VjcmV0"));
    }

    /// One complete fragment (Start+End) around `blob`.
    fn fragment(blob: &[u8]) -> Vec<u8> {
        let mut frag = vec![0u8; 16];
        frag.push(3);
        frag.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        frag.extend_from_slice(blob);
        frag
    }

    #[test]
    fn secure_strings_are_blanked_in_every_psrp_payload_of_an_envelope() {
        use rps_wsman::{Body, Header, Send, Stream};
        let id = uuid::Uuid::from_u128(7);
        let secret = fragment(b"0123456789012345678901234567890123456789<SS>c2VjcmV0</SS>");
        let plain = fragment(b"0123456789012345678901234567890123456789<S>kept</S>");
        let bodies = [
            Body::create_powershell(id, secret.clone()),
            Body::command_psrp(id, &secret),
            Body::connect(secret.clone()),
            Body::Send(Send {
                streams: vec![
                    Stream::new("stdin", Some(id), plain.clone()),
                    Stream::new("pr", None, secret.clone()),
                ],
            }),
        ];
        for body in bodies {
            let xml = Envelope::new(Header::default(), body).encode();
            let out = redact_secure_strings(xml.as_bytes());
            let env = Envelope::decode(out.as_bytes()).expect("still an envelope");
            let payloads = env.psrp_payloads().expect("payloads");
            let last = payloads.last().expect("a payload");
            assert!(memfind(&last.data, b"<SS></SS>"), "{out}");
            assert!(!memfind(&last.data, b"c2VjcmV0"), "{out}");
            if payloads.len() == 2 {
                assert_eq!(payloads[0].data.as_ref(), plain.as_slice());
            }
        }
        // Nothing to redact: the body is kept byte for byte.
        let xml = Envelope::new(Header::default(), Body::command_psrp(id, &plain)).encode();
        assert_eq!(redact_secure_strings(xml.as_bytes()), xml);
    }

    #[test]
    fn literal_secrets_hosts_and_users() {
        let r = Redaction {
            secrets: vec!["eyJhbGciOi.token".into()],
            hosts: vec!["pod.contoso.com".into()],
            users: vec!["alice@contoso.com".into()],
        };
        let s = r.text("https://pod.contoso.com/x Bearer eyJhbGciOi.token alice@contoso.com");
        assert_eq!(s, "https://host.invalid/x Bearer <redacted> user");
        assert!(!format!("{r:?}").contains("eyJ"));
    }
}
