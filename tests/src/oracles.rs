//! The fuzz oracles: one function per fuzz target, shared by `fuzz/` (libFuzzer) and by the
//! conformance suite, which replays `fixtures/fuzz/<target>/` through the same function.
//!
//! Each oracle takes arbitrary bytes, feeds them to a decoder that reads peer (or user)
//! input, and panics when the decoder breaks one of its promises: it must never panic, and
//! what it accepts must survive the round trip its writer offers (decode → encode → decode
//! gives the same value, and encoding is then a fixed point).

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rps_psrp::clixml;
use rps_psrp::fragment::{
    DefragLimits, Defragmenter, Fragment, FragmentHeader, FragmentReader, Fragmenter, HEADER_LEN,
};
use rps_psrp::message::{MessageType, RawMessage};
use rps_psrp::messages::Message;

/// An oracle: panics when the decoders it drives break a promise on `data`.
pub type Oracle = fn(&[u8]);

/// The fuzz targets, by name: the directory names under `fuzz/corpus/` and `fixtures/fuzz/`.
pub const TARGETS: &[(&str, Oracle)] = &[
    ("envelope", envelope),
    ("fragment", fragment),
    ("message", message),
    ("clixml", clixml),
    ("jwt", jwt),
    ("transcript", transcript),
    ("cmdline", cmdline),
];

/// Looks a target's oracle up by name.
pub fn oracle(name: &str) -> Option<Oracle> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The tight defragmenter caps the `fragment` oracle runs under, so that the fuzzer reaches
/// the overflow and too-many-objects paths with small inputs.
pub const FUZZ_DEFRAG_LIMITS: DefragLimits = DefragLimits {
    max_buffered: 4096,
    max_objects: 4,
};

/// `rps_wsman::Envelope::decode`; an accepted envelope re-encodes to text that decodes to the
/// same envelope, and that text is a fixed point of encode∘decode.
pub fn envelope(data: &[u8]) {
    use rps_wsman::Envelope;
    let Ok(env) = Envelope::decode(data) else {
        return;
    };
    let text = env.encode();
    let again = match Envelope::decode(text.as_bytes()) {
        Ok(e) => e,
        Err(e) => panic!("re-encoded envelope does not decode: {e}\n--- encoded:\n{text}"),
    };
    assert_eq!(
        again, env,
        "envelope changed in an encode/decode round trip\n--- encoded:\n{text}"
    );
    assert_eq!(
        again.encode(),
        text,
        "envelope encoding is not a fixed point"
    );
}

/// `FragmentReader` and `Defragmenter` (under [`FUZZ_DEFRAG_LIMITS`]).
///
/// * The reader yields fragments whose header and blob re-serialize to exactly the bytes
///   they were read from, and stops after an error.
/// * The defragmenter never holds more than its caps, and every message it completes is the
///   concatenation of the blobs its object's fragments carried, numbered 0, 1, ... from the
///   Start fragment to the End fragment.
/// * `feed` gives the messages `push` gives, up to the first error.
/// * Completed messages, fragmented again by `Fragmenter`, reassemble to themselves.
pub fn fragment(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    let mut frags: Vec<Fragment<Bytes>> = Vec::new();
    let mut consumed = 0usize;
    let mut errored = false;
    for r in FragmentReader::new(buf.clone()) {
        assert!(!errored, "FragmentReader yielded an item after an error");
        match r {
            Ok(f) => {
                assert_eq!(f.blob.len() as u64, u64::from(f.header.blob_len));
                let mut re = Vec::with_capacity(HEADER_LEN + f.blob.len());
                f.header.write(&mut re);
                re.extend_from_slice(&f.blob);
                let end = consumed + re.len();
                assert_eq!(
                    data.get(consumed..end),
                    Some(&re[..]),
                    "fragment does not re-serialize to its input bytes"
                );
                consumed = end;
                frags.push(f);
            }
            Err(_) => errored = true,
        }
    }
    if !errored {
        assert_eq!(
            consumed,
            data.len(),
            "reader stopped early without an error"
        );
    }

    let limits = FUZZ_DEFRAG_LIMITS;
    let mut d = Defragmenter::new(limits);
    // What each object's fragments carried since its last Start: (next id, bytes).
    let mut model: std::collections::HashMap<u64, (u64, Vec<u8>)> = Default::default();
    let mut pushed = Vec::new();
    let mut first_error = None;
    for (i, f) in frags.iter().enumerate() {
        let h = f.header;
        let result = d.push(f.clone());
        assert!(
            d.buffered() <= limits.max_buffered,
            "buffered {} over the cap {}",
            d.buffered(),
            limits.max_buffered
        );
        assert!(
            d.in_flight() <= limits.max_objects,
            "{} objects in flight over the cap {}",
            d.in_flight(),
            limits.max_objects
        );
        match result {
            Ok(done) => {
                if h.is_start() {
                    model.insert(h.object_id, (0, Vec::new()));
                }
                let entry = model
                    .get_mut(&h.object_id)
                    .expect("an accepted fragment belongs to a started object");
                assert_eq!(
                    entry.0, h.fragment_id,
                    "accepted a fragment out of sequence"
                );
                entry.0 += 1;
                entry.1.extend_from_slice(&f.blob);
                match done {
                    Some(a) => {
                        assert!(h.is_end(), "a message completed on a non-End fragment");
                        assert_eq!(a.object_id, h.object_id);
                        let (_, expect) = model.remove(&h.object_id).unwrap_or_default();
                        assert_eq!(&a.data[..], &expect[..], "reassembled bytes differ");
                        pushed.push(a);
                    }
                    None => assert!(!h.is_end(), "an accepted End fragment completed nothing"),
                }
            }
            Err(_) => {
                first_error.get_or_insert(i);
            }
        }
    }
    // Messages completed before the first error, as `feed` would give them.
    let mut fed = Vec::new();
    let fed_result = Defragmenter::new(limits).feed(buf, &mut fed);
    assert_eq!(
        fed_result.is_err(),
        first_error.is_some() || errored,
        "feed and push disagree on whether the input is bad"
    );
    if first_error.is_none() {
        assert_eq!(fed, pushed, "feed and push completed different messages");
    } else {
        assert!(fed.len() <= pushed.len());
        assert_eq!(
            fed[..],
            pushed[..fed.len()],
            "feed and push disagree before the error"
        );
    }

    // Round trip of what was assembled, at a fragment size chosen by the input.
    let size = HEADER_LEN + 1 + usize::from(data.first().copied().unwrap_or(0));
    let fragmenter = Fragmenter::new(size).expect("size above the minimum");
    let mut wire = Vec::new();
    for (n, a) in pushed.iter().enumerate() {
        fragmenter
            .write(n as u64, &a.data, &mut wire)
            .expect("small messages fragment");
    }
    let mut back = Vec::new();
    Defragmenter::new(DefragLimits::default())
        .feed(Bytes::from(wire), &mut back)
        .expect("our own fragments reassemble");
    assert_eq!(back.len(), pushed.len());
    for (b, a) in back.iter().zip(&pushed) {
        assert_eq!(b.data, a.data, "fragment round trip changed a message");
    }
}

/// `RawMessage::decode` on the whole input (it must re-encode to the input), and
/// `Message::decode` of the whole input's data and of `data[1..]` as the message type that
/// `data[0]` selects among the known ones. A payload that decodes re-encodes to data that
/// decodes to the same payload.
pub fn message(data: &[u8]) {
    if let Ok(raw) = RawMessage::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(
            raw.encode(),
            data,
            "raw message does not re-encode to its input"
        );
        typed_message(raw.header.message_type, &raw.data);
    }
    if let Some((&sel, body)) = data.split_first() {
        let ty = MessageType::ALL[usize::from(sel) % MessageType::ALL.len()];
        typed_message(ty, &Bytes::copy_from_slice(body));
    }
}

fn typed_message(ty: MessageType, data: &Bytes) {
    let Ok(m) = Message::decode(ty, data) else {
        return;
    };
    assert_eq!(m.message_type(), ty, "decoded payload has another type");
    let enc = m.encode_data();
    let again = match Message::decode(ty, &enc) {
        Ok(a) => a,
        Err(e) => panic!(
            "re-encoded {} does not decode: {e}\n--- encoded:\n{}",
            ty.name(),
            String::from_utf8_lossy(&enc)
        ),
    };
    if !contains_nan(&enc) {
        assert_eq!(
            again,
            m,
            "{} changed in an encode/decode round trip\n--- encoded:\n{}",
            ty.name(),
            String::from_utf8_lossy(&enc)
        );
    }
    assert_eq!(
        again.encode_data(),
        enc,
        "payload encoding is not a fixed point"
    );
}

/// NaN is the one value `PartialEq` cannot compare with itself.
fn contains_nan(text: &[u8]) -> bool {
    text.windows(3).any(|w| w == b"NaN")
}

/// `clixml::from_slice` and `clixml::document_from_slice`: what is accepted writes out as
/// CLIXML that reads back to the same values, and writing is then a fixed point.
pub fn clixml(data: &[u8]) {
    if let Ok(v) = clixml::from_slice(data) {
        let text = clixml::to_string(&v);
        let again = match clixml::from_slice(text.as_bytes()) {
            Ok(a) => a,
            Err(e) => panic!("written clixml does not read back: {e}\n--- written:\n{text}"),
        };
        if !contains_nan(text.as_bytes()) {
            assert_eq!(
                again, v,
                "value changed in a round trip\n--- written:\n{text}"
            );
        }
        assert_eq!(
            clixml::to_string(&again),
            text,
            "writing is not a fixed point"
        );
    }
    if let Ok(vs) = clixml::document_from_slice(data) {
        let text = clixml::write_document(&vs);
        let again = match clixml::document_from_slice(text.as_bytes()) {
            Ok(a) => a,
            Err(e) => panic!("written document does not read back: {e}\n--- written:\n{text}"),
        };
        if !contains_nan(text.as_bytes()) {
            assert_eq!(
                again, vs,
                "document changed in a round trip\n--- written:\n{text}"
            );
        }
        assert_eq!(
            clixml::write_document(&again),
            text,
            "writing a document is not a fixed point"
        );
    }
}

/// `Jwt::decode` then every inspection (`exchange_readiness`, expiry, claims as JSON) at
/// instants from the epoch to the far future. A decoded token decodes the same with a
/// `Bearer ` prefix, and its `Debug` form never shows the signature segment.
pub fn jwt(data: &[u8]) {
    use rps_session::jwt::{Jwt, MAX_TOKEN_LEN};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Jwt::decode(text) else {
        return;
    };
    let instants = [
        Some(UNIX_EPOCH),
        UNIX_EPOCH.checked_add(Duration::from_secs(1_764_000_000)),
        UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64)),
        UNIX_EPOCH.checked_sub(Duration::from_secs(1_000_000)),
    ];
    for now in instants.into_iter().flatten() {
        let _ = t.exchange_readiness(now);
        let _ = t.seconds_left(now);
        let _ = t.is_expired(now);
    }
    let _ = t.exchange_readiness(SystemTime::now());
    let c = t.claims();
    let _ = (c.kind(), c.user_name(), c.exchange_cloud(), c.to_json());
    let raw = t.as_str();
    if raw.len() + 7 <= MAX_TOKEN_LEN {
        let again = Jwt::decode(&format!("Bearer {raw}")).expect("a Bearer prefix is accepted");
        assert_eq!(again, t, "a Bearer prefix changed the token");
    }
    // (unless a claim or the header happens to hold the same text)
    if let Some(sig) = raw.rsplit('.').next()
        && sig.len() >= 16
        && !format!("{:?}{:?}", t.header(), t.claims()).contains(sig)
    {
        assert!(
            !format!("{t:?}").contains(sig),
            "Debug output shows the signature"
        );
    }
}

/// `Transcript::from_bytes`, plain and gzip-compressed: both give the same answer, and an
/// accepted transcript survives `to_yaml` → `from_yaml`.
pub fn transcript(data: &[u8]) {
    use rps_replay::Transcript;
    let plain = Transcript::from_bytes(data, "fuzz");
    if !data.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("gzip into memory");
        let gz = gz.finish().expect("gzip into memory");
        let zipped = Transcript::from_bytes(&gz, "fuzz");
        match (&plain, &zipped) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "gzip changed the transcript"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "gzip changed the error"),
            _ => panic!(
                "gzip changed the outcome: plain {:?}, gzip {:?}",
                plain.as_ref().err(),
                zipped.as_ref().err()
            ),
        }
    }
    if let Ok(t) = plain {
        let yaml = t.to_yaml().expect("a loaded transcript serializes");
        let again = match Transcript::from_yaml(&yaml) {
            Ok(a) => a,
            Err(e) => panic!("saved transcript does not load: {e}\n--- yaml:\n{yaml}"),
        };
        if !contains_nan(yaml.as_bytes()) && !yaml.contains(".nan") {
            assert_eq!(again, t, "transcript changed in a save/load round trip");
        }
    }
}

/// `cmdline::parse_line` and `cmdline::parse_script`: no panic, and an error's column lies
/// within the line (at most one past its last character).
pub fn cmdline(data: &[u8]) {
    use rps_session::cmdline::{parse_line, parse_script};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse_line(text) {
        let _ = e.to_string();
        if let Some(col) = e.column() {
            let chars = text.trim_end().chars().count();
            assert!(
                col <= chars + 1,
                "error column {col} past the end of a {chars}-character line: {e}"
            );
        }
    }
    if let Err(e) = parse_script(text) {
        let _ = e.to_string();
    }
}

/// A helper for hand-made fragment streams: the bytes of one fragment.
pub fn fragment_bytes(object_id: u64, fragment_id: u64, flags: u8, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + blob.len());
    FragmentHeader {
        object_id,
        fragment_id,
        flags,
        blob_len: u32::try_from(blob.len()).expect("blob under 4 GiB"),
    }
    .write(&mut out);
    out.extend_from_slice(blob);
    out
}
