//! temporary: replay files through an oracle
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let f = rps_conformance::oracles::oracle(&a[1]).unwrap();
    for p in &a[2..] {
        let d = std::fs::read(p).unwrap();
        let r = std::panic::catch_unwind(|| f(&d));
        println!("{p}: {}", if r.is_ok() { "ok" } else { "FAIL" });
    }
}
