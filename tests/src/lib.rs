//! Helpers shared by the conformance suite: where the fixtures live, the negative corpus
//! ([`negative`]) and the fuzz oracles ([`oracles`]).

pub mod negative;
pub mod oracles;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// Our own fixtures (`fixtures/`).
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// The peer fixtures: `$RPS_PEER_FIXTURES`, or `../shared/peer-fixtures` beside the repo.
///
/// Panics with a clear message when they are missing: the conformance suite is meaningless
/// without them, and a silent skip would let it pass vacuously.
pub fn peer_fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("RPS_PEER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/peer-fixtures"));
    assert!(
        dir.is_dir(),
        "peer fixtures not found at {} (set RPS_PEER_FIXTURES)",
        dir.display()
    );
    dir
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
pub fn files_with_suffix(dir: &std::path::Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
                && suffixes.iter().any(|s| name.ends_with(s))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The pypsrp YAML recordings (`test_*.yml`, not the template).
pub fn pypsrp_recordings() -> Vec<PathBuf> {
    let dir = peer_fixtures_dir().join("jborean93__pypsrp/tests/tests_pypsrp/responses");
    files_with_suffix(&dir, &[".yml"])
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test_"))
        })
        .collect()
}
