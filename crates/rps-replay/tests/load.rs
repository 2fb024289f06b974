//! Load: N concurrent sessions x M commands against the fake Exchange Online endpoint on
//! loopback, zero errors, every object accounted for, every shell deleted.
//!
//! `cargo test` runs 40 x 10; `RPS_LOAD=200x50 cargo test --release -p rps-replay --test load
//! -- --nocapture` runs the full load and prints the figures (README, Reliability).

use std::sync::Arc;
use std::time::Instant;

use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_session::{Command, RunspacePool};

fn load() -> (usize, usize) {
    let spec = std::env::var("RPS_LOAD").unwrap_or_else(|_| "40x10".to_owned());
    let (n, m) = spec.split_once('x').expect("RPS_LOAD is NxM");
    (n.parse().expect("N"), m.parse().expect("M"))
}

/// Peak resident set size of this process, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn concurrent_sessions_times_commands() {
    let (sessions, commands) = load();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rss_before = peak_rss_kib();
    let (elapsed, objects, open_after) = rt.block_on(async {
        let fake = Arc::new(
            FakeExchange::builder()
                .mailboxes(50)
                // Each session is a distinct delegated user, so Exchange's 3-runspace limit
                // per user holds as it did.
                .bind("127.0.0.1:0")
                .start()
                .await
                .expect("fake"),
        );
        let start = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..sessions {
            let fake = fake.clone();
            tasks.push(tokio::spawn(async move {
                let upn = format!("admin{s}@contoso.com");
                let creds = fake.credentials_for(&TokenSpec::delegated(upn));
                let pool = RunspacePool::connect(fake.connect_options_with(creds))
                    .await
                    .map_err(|e| format!("session {s}: connect: {e}"))?;
                let mut objects = 0usize;
                for c in 0..commands {
                    let size = 1 + (s + c) % 5;
                    let r = pool
                        .invoke([Command::new("Get-Mailbox").param("ResultSize", size as i32)])
                        .await
                        .map_err(|e| format!("session {s} command {c}: {e}"))?
                        .collect()
                        .await
                        .map_err(|e| format!("session {s} command {c}: {e}"))?;
                    if r.output.len() != size || !r.succeeded() {
                        return Err(format!(
                            "session {s} command {c}: {} objects, wanted {size}, state {:?}",
                            r.output.len(),
                            r.state
                        ));
                    }
                    objects += size;
                }
                pool.close()
                    .await
                    .map_err(|e| format!("session {s}: close: {e}"))?;
                Ok::<usize, String>(objects)
            }));
        }
        let mut objects = 0;
        let mut errors = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(n) => objects += n,
                Err(e) => errors.push(e),
            }
        }
        assert!(
            errors.is_empty(),
            "{} errors, first: {:?}",
            errors.len(),
            errors.first()
        );
        (start.elapsed(), objects, fake.open_shells())
    });
    let expected: usize = (0..sessions)
        .map(|s| (0..commands).map(|c| 1 + (s + c) % 5).sum::<usize>())
        .sum();
    assert_eq!(objects, expected, "every object accounted for");
    assert_eq!(open_after, 0, "every shell deleted");
    let rss_after = peak_rss_kib();
    println!(
        "load: {sessions} sessions x {commands} commands = {} commands, {objects} objects in {:.2?} ({:.0} commands/s), 0 errors; peak RSS {:?} KiB (before {:?} KiB, client and fake in one process)",
        sessions * commands,
        elapsed,
        (sessions * commands) as f64 / elapsed.as_secs_f64(),
        rss_after,
        rss_before
    );
}
