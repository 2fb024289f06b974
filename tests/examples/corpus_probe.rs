//! temporary: replay fuzz/corpus through the oracles
fn main() {
    let root = rps_conformance::workspace_root().join("fuzz/corpus");
    for (t, f) in rps_conformance::oracles::TARGETS {
        let mut n = 0; let mut bad = 0;
        for p in rps_conformance::files_with_suffix(&root.join(t), &[""]) {
            let d = std::fs::read(&p).unwrap();
            n += 1;
            if let Err(e) = std::panic::catch_unwind(|| f(&d)) { bad += 1; let _ = e; println!("FAIL {t} {}", p.display()); }
        }
        println!("{t}: {n} files, {bad} failures");
    }
}
