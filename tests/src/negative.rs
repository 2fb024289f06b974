//! The negative corpus: `fixtures/negative/`, each file bad input with the exact error it must
//! produce, listed in `fixtures/negative/manifest.json`:
//!
//! ```json
//! [{"file": "wsman/too_many_streams.xml", "decoder": "envelope", "limits": {"max_streams": 2},
//!   "variant": "TooManyStreams", "display": "too many streams at byte 606: limit 2"}]
//! ```
//!
//! `decoder` names what reads the file (see [`decode`]), `limits` sets fields of that
//! decoder's limits over their defaults, `variant` is the error variant (the start of its
//! `Debug` form, e.g. `Protocol(RpidMismatch` for a nested one) and `display` its exact
//! `Display` text.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use bytes::Bytes;
use rps_psrp::fragment::{DefragLimits, Defragmenter};
use rps_psrp::pool::{PoolConfig, RunspacePool};
use serde_json::{Map, Value as Json};

/// The RPID of the `pool` decoder's runspace pool.
pub const RPID: uuid::Uuid = uuid::Uuid::from_u128(0x2d353305_c595_1547_bf50_1f449ff1fc9b);

/// One manifest entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path under `fixtures/negative/`.
    pub file: String,
    /// Which decoder reads it.
    pub decoder: String,
    /// Limit fields set over the decoder's defaults.
    pub limits: Map<String, Json>,
    /// Start of the error's `Debug` form.
    pub variant: String,
    /// The error's exact `Display` form (`*`: any, for a gap whose text is not known yet).
    pub display: String,
    /// Set when the decoder is known not to produce the error yet: the reason, reported to
    /// the owners of the decoder. Gaps are checked by an ignored test of their own.
    pub gap: Option<String>,
}

/// What a decoder said about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It failed with this error (`Debug` and `Display` forms).
    Error {
        /// `{:?}` of the error.
        debug: String,
        /// `{}` of the error.
        display: String,
    },
    /// It accepted the input.
    Accepted,
    /// It panicked, with this message.
    Panicked(String),
}

/// `fixtures/negative/`.
pub fn dir() -> PathBuf {
    crate::fixtures_dir().join("negative")
}

/// The manifest's entries, in order.
pub fn manifest() -> Vec<Entry> {
    let path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Json = serde_json::from_str(&text).expect("manifest.json is JSON");
    let field = |o: &Map<String, Json>, k: &str| -> String {
        o.get(k)
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("manifest entry {o:?} lacks string field {k}"))
            .to_owned()
    };
    json.as_array()
        .expect("manifest.json is an array")
        .iter()
        .map(|e| {
            let o = e.as_object().expect("manifest entries are objects");
            Entry {
                file: field(o, "file"),
                decoder: field(o, "decoder"),
                limits: o
                    .get("limits")
                    .and_then(Json::as_object)
                    .cloned()
                    .unwrap_or_default(),
                variant: field(o, "variant"),
                display: field(o, "display"),
                gap: o.get("gap").and_then(Json::as_str).map(str::to_owned),
            }
        })
        .collect()
}

fn usize_of(k: &str, v: &Json) -> usize {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("limit {k} is not a count: {v}"))
}

fn err<E: std::fmt::Debug + std::fmt::Display>(e: E) -> Outcome {
    Outcome::Error {
        debug: format!("{e:?}"),
        display: e.to_string(),
    }
}

fn wsman_limits(m: &Map<String, Json>) -> rps_wsman::Limits {
    let mut l = rps_wsman::Limits::default();
    for (k, v) in m {
        match k.as_str() {
            "max_envelope_bytes" => l.max_envelope_bytes = usize_of(k, v),
            "max_streams" => l.max_streams = usize_of(k, v),
            "max_depth" => l.max_depth = usize_of(k, v),
            "max_elements" => l.max_elements = usize_of(k, v),
            _ => panic!("unknown wsman limit {k}"),
        }
    }
    l
}

/// The manifest's names for CLIXML limits.
const CLIXML_LIMITS: &[&str] = &[
    "max_depth",
    "max_ref_ids",
    "max_string_len",
    "max_elements",
    "lossy_surrogates",
];

/// The entries of `m` named in `names`.
fn only(m: &Map<String, Json>, names: &[&str]) -> Map<String, Json> {
    m.iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn clixml_limits(m: &Map<String, Json>) -> rps_psrp::clixml::Limits {
    let mut l = rps_psrp::clixml::Limits::default();
    for (k, v) in m {
        match k.as_str() {
            "max_depth" => l.max_depth = usize_of(k, v),
            "max_ref_ids" => l.max_ref_ids = usize_of(k, v),
            "max_string_len" => l.max_string_len = usize_of(k, v),
            "max_elements" => l.max_elements = usize_of(k, v),
            "lossy_surrogates" => {
                l.lossy_surrogates = v.as_bool().expect("lossy_surrogates is a bool")
            }
            _ => panic!("unknown clixml limit {k}"),
        }
    }
    l
}

fn defrag_limits(m: &Map<String, Json>) -> DefragLimits {
    let mut l = DefragLimits::default();
    for (k, v) in m {
        match k.as_str() {
            "max_buffered" => l.max_buffered = usize_of(k, v),
            "max_objects" => l.max_objects = usize_of(k, v),
            _ => panic!("unknown defrag limit {k}"),
        }
    }
    l
}

/// Runs `decoder` over `data`:
///
/// * `envelope`: `rps_wsman::Envelope::decode_with` (wsman `Limits`);
/// * `clixml`: `clixml::from_slice_with`, `clixml-document`: `clixml::document_from_slice_with`
///   (clixml `Limits`);
/// * `defrag`: `Defragmenter::feed` (`DefragLimits`);
/// * `pool`: a client `RunspacePool` (RPID [`RPID`], `DefragLimits` and CLIXML `Limits`) that receives the bytes
///   as one stream and is then asked for events until it has none.
pub fn decode(decoder: &str, limits: &Map<String, Json>, data: &[u8]) -> Outcome {
    let run = || match decoder {
        "envelope" => match rps_wsman::Envelope::decode_with(data, &wsman_limits(limits)) {
            Ok(_) => Outcome::Accepted,
            Err(e) => err(e),
        },
        "clixml" => match rps_psrp::clixml::from_slice_with(data, &clixml_limits(limits)) {
            Ok(_) => Outcome::Accepted,
            Err(e) => err(e),
        },
        "clixml-document" => {
            match rps_psrp::clixml::document_from_slice_with(data, &clixml_limits(limits)) {
                Ok(_) => Outcome::Accepted,
                Err(e) => err(e),
            }
        }
        "defrag" => {
            let mut out = Vec::new();
            match Defragmenter::new(defrag_limits(limits))
                .feed(Bytes::copy_from_slice(data), &mut out)
            {
                Ok(()) => Outcome::Accepted,
                Err(e) => err(e),
            }
        }
        "pool" => {
            let config = PoolConfig {
                limits: defrag_limits(&only(limits, &["max_buffered", "max_objects"])),
                clixml_limits: clixml_limits(&only(limits, CLIXML_LIMITS)),
                ..PoolConfig::default()
            };
            let mut pool = RunspacePool::new(RPID, config);
            if let Err(e) = pool.receive(data) {
                return err(e);
            }
            loop {
                match pool.next_event() {
                    Ok(Some(_)) => {}
                    Ok(None) => return Outcome::Accepted,
                    Err(e) => return err(e),
                }
            }
        }
        other => panic!("unknown decoder {other}"),
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(o) => o,
        Err(p) => Outcome::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        ),
    }
}

/// Why `outcome` is not what `entry` expects, or `None` when it is.
pub fn mismatch(entry: &Entry, outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Error { debug, display } => {
            let variant_ok = debug
                .strip_prefix(&entry.variant)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'));
            if variant_ok && (*display == entry.display || entry.display == "*") {
                None
            } else {
                Some(format!(
                    "{}: expected {} `{}`, got `{display}` ({debug})",
                    entry.file, entry.variant, entry.display
                ))
            }
        }
        Outcome::Accepted => Some(format!(
            "{}: expected {} `{}`, but the input was accepted",
            entry.file, entry.variant, entry.display
        )),
        Outcome::Panicked(m) => Some(format!("{}: PANICKED: {m}", entry.file)),
    }
}

/// Checks every manifest entry whose file lies under `folder` (e.g. `wsman/`) and that is a
/// gap (`gaps`) or not (`!gaps`); panics with the list of mismatches. Returns how many
/// entries were checked.
pub fn check_folder(folder: &str, gaps: bool) -> usize {
    let entries: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.file.starts_with(folder) && e.gap.is_some() == gaps)
        .collect();
    let mut failures = Vec::new();
    for e in &entries {
        let path = dir().join(&e.file);
        let data = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        if let Some(m) = mismatch(e, &decode(&e.decoder, &e.limits, &data)) {
            failures.push(m);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} negative cases under {folder} failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
    entries.len()
}

/// Every file of the negative corpus (`make.py`, `README.md` and `manifest.json` aside),
/// relative to [`dir`], sorted.
pub fn corpus_files() -> Vec<String> {
    let root = dir();
    crate::files_with_suffix(&root, &[""])
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_str()?.replace('\\', "/");
            (!matches!(rel.as_str(), "make.py" | "README.md" | "manifest.json")).then_some(rel)
        })
        .collect()
}

/// Checks that the limits an entry sets are what produce its error: decoded under the
/// default limits, each entry under `folder` that sets limits must not fail the same way
/// (it is accepted, or fails against the default limit). Returns how many were checked.
pub fn check_limits_matter(folder: &str) -> usize {
    let entries: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.file.starts_with(folder) && e.gap.is_none() && !e.limits.is_empty())
        .collect();
    let mut failures = Vec::new();
    for e in &entries {
        let data = std::fs::read(dir().join(&e.file)).expect("corpus file");
        let outcome = decode(&e.decoder, &Map::new(), &data);
        if let Outcome::Panicked(m) = &outcome {
            failures.push(format!("{}: PANICKED under default limits: {m}", e.file));
        } else if mismatch(e, &outcome).is_none() {
            failures.push(format!(
                "{}: fails the same way under default limits, so its limits {:?} are not what \
                 rejects it",
                e.file, e.limits
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    entries.len()
}
