//! The transcript recorded from our client against the fake Exchange Online endpoint
//! (fixtures/transcripts/exo-fake-get-mailbox.yaml, made by the `record_fake_session`
//! example) is marked synthesized, holds no secret, and replays.

use std::path::PathBuf;

use rps_replay::Transcript;
use rps_replay::transcript::Origin;

fn fixture() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/transcripts/exo-fake-get-mailbox.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture present");
    (path, text)
}

#[test]
fn is_marked_synthesized_and_holds_no_secret() {
    let (path, text) = fixture();
    let t = Transcript::load(&path).expect("loads");
    assert_eq!(t.meta.origin, Origin::Synthesized);
    assert!(t.meta.redacted.iter().any(|r| r == "authorization"));
    // No token (JWTs start with eyJ), no Basic header, no cookie value.
    assert!(!text.contains("eyJ"), "a JWT is in the transcript");
    assert!(!text.to_ascii_lowercase().contains("authorization: basic"));
    for ex in &t.exchanges {
        assert!(!ex.request.headers.contains_key("authorization"));
        if let Some(c) = ex
            .response
            .as_ref()
            .and_then(|r| r.headers.get("set-cookie"))
        {
            assert!(c.starts_with("MS-WSMAN=<redacted>"), "{c}");
        }
    }
    // The first request went to the front listener, the rest to the pod (the 302 was followed).
    let hosts: Vec<&str> = t
        .exchanges
        .iter()
        .filter_map(|e| e.request.url.as_deref())
        .collect();
    assert!(hosts.len() >= 6);
    assert_ne!(
        hosts[0], hosts[1],
        "Create went to the front, later requests to the pod"
    );
    assert!(hosts[1..].iter().all(|h| *h == hosts[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_with_the_real_client() {
    let (path, _) = fixture();
    let t = Transcript::load(&path).expect("loads");
    let report = rps_replay::reenact::check_over_loopback(&t)
        .await
        .expect("re-enacts");
    assert!(report.passed(), "{report}");
    let scenario = rps_replay::reenact::Scenario::from_transcript(&t).expect("scenario");
    let rendered = rps_replay::reenact::render_outputs(&scenario);
    assert!(rendered.contains("Get-Mailbox"), "{rendered}");
    assert!(rendered.contains("couldn't be found"), "{rendered}");
}
