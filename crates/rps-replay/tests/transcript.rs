//! Transcript format: import of every pypsrp recording, YAML and gzip round trips.

use std::path::PathBuf;

use rps_replay::transcript::{Origin, Transcript, TransportEvent};

fn peer_fixtures() -> PathBuf {
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

fn recordings() -> Vec<PathBuf> {
    let dir = peer_fixtures().join("jborean93__pypsrp/tests/tests_pypsrp/responses");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("pypsrp responses dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test_") && n.ends_with(".yml"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_pypsrp_recording_imports_and_round_trips() {
    let files = recordings();
    assert_eq!(
        files.len(),
        53,
        "the peer-fixtures README lists 53 recordings"
    );
    let mut exchanges = 0;
    let mut errors = 0;
    for path in &files {
        let t = Transcript::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(t.meta.origin, Origin::Recorded);
        assert!(!t.exchanges.is_empty(), "{}", path.display());
        exchanges += t.exchanges.len();
        errors += t
            .exchanges
            .iter()
            .filter(|e| e.response.as_ref().is_some_and(|r| r.status != 200))
            .count();
        let yaml = t.to_yaml().expect("serialize");
        let back = Transcript::from_yaml(&yaml).expect("parse back");
        assert_eq!(back, t, "{}", path.display());
    }
    assert_eq!(exchanges, 411, "exchanges across the 53 recordings");
    assert_eq!(errors, 8, "HTTP 500 fault exchanges kept: {errors}");
}

#[test]
fn pypsrp_http_error_becomes_connection_error() {
    let path = peer_fixtures()
        .join("jborean93__pypsrp/tests/tests_pypsrp/responses/test_psrp_is_alive_http_error.yml");
    let t = Transcript::load(&path).expect("load");
    let dropped: Vec<_> = t
        .exchanges
        .iter()
        .filter(|e| e.transport == Some(TransportEvent::ConnectionError))
        .collect();
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0].response.is_none());
}

#[test]
fn gzip_transcripts_read_transparently() {
    let path = recordings().into_iter().next().expect("a recording");
    let t = Transcript::load(&path).expect("load");
    let dir = std::env::temp_dir().join(format!("rps-transcript-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let gz = dir.join("t.yaml.gz");
    t.save(&gz).expect("save gz");
    let raw = std::fs::read(&gz).expect("read");
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(Transcript::load(&gz).expect("load gz"), t);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_format_tag_is_refused() {
    let err = Transcript::from_yaml(
        "format: other/9\nmeta: {source: x, origin: recorded}\nexchanges: []\n",
    )
    .expect_err("must refuse");
    assert!(
        err.to_string().contains("unsupported transcript format"),
        "{err}"
    );
    let err = Transcript::from_bytes(b"\xff\xfe\x00", "bad").expect_err("not utf-8");
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}
