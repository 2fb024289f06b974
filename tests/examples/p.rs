//! temporary
fn main() {
    for f in ["escaped-namespace-uri.xml", "charref-soap-namespace.xml"] {
        let d = std::fs::read(rps_conformance::fixtures_dir().join("fuzz/envelope").join(f)).unwrap();
        let e = rps_wsman::Envelope::decode(&d);
        println!("{f}: {e:?}");
        if let Ok(e) = e { println!("{}", e.encode()); }
    }
}
