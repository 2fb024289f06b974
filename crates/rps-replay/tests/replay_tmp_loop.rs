//! temp
use std::path::PathBuf;
use rps_replay::Transcript;
#[test]
fn all_loopback() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-fixtures/jborean93__pypsrp/tests/tests_pypsrp/responses");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("test_") { continue; }
        let t = Transcript::load(&p).unwrap();
        match rt.block_on(rps_replay::reenact::check_over_loopback(&t)) {
            Ok(r) if r.unsupported.is_empty() => println!("=== {name}\n{r}"),
            _ => {}
        }
    }
}
