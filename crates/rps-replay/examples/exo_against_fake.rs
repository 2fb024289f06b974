//! The Exchange Online flow end to end, with no network: starts the fake endpoint on
//! loopback (302 to the pod, MS-WSMAN cookie, OAuth token as the Basic password), connects
//! a runspace pool, runs `Get-Mailbox`, three pipelines at once, a stop, and a listing
//! through dropped connections, then closes.
//!
//! ```text
//! cargo run -p rps-replay --example exo_against_fake [mailboxes] [faults]
//! # e.g. ... -- 500 drop-receive=0.2,seed=7
//! ```

use std::time::{Duration, Instant};

use rps_replay::fake::{FakeExchange, FaultSpec};
use rps_session::runspace::RetryPolicy;
use rps_session::{Command, PipelineEvent, RunspacePool};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mailboxes: usize = args.first().map_or(Ok(200), |s| s.parse())?;
    let faults = FaultSpec::parse(
        args.get(1)
            .map_or("drop-receive=0.1,seed=7", String::as_str),
    )?;
    let fake = FakeExchange::builder()
        .mailboxes(mailboxes)
        .faults(faults)
        .start()
        .await?;
    println!("fake Exchange Online at {}", fake.url());

    let mut options = fake.connect_options();
    options.retry = RetryPolicy::new(3, Duration::from_millis(200), Duration::from_secs(2));
    let pool = RunspacePool::connect(options).await?;
    println!(
        "connected: shell {}, protocol {}",
        pool.shell_id(),
        pool.protocol_version()
    );

    // One listing, streamed.
    let started = Instant::now();
    let mut p = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
        .await?;
    let mut count = 0;
    while let Some(ev) = p.next_event().await {
        match ev? {
            PipelineEvent::Output(_) => count += 1,
            PipelineEvent::Finished { state, .. } => println!(
                "Get-Mailbox: {count} mailboxes, {state:?}, {:.2} s",
                started.elapsed().as_secs_f64()
            ),
            _ => {}
        }
    }

    // Three pipelines at once on the same pool.
    let (a, b, c) = tokio::join!(
        async {
            pool.invoke([Command::new("Get-Mailbox").param("ResultSize", 5)])
                .await?
                .collect()
                .await
        },
        async {
            pool.invoke([Command::new("Get-Recipient").param("ResultSize", 7)])
                .await?
                .collect()
                .await
        },
        async {
            pool.invoke([Command::new("Get-Mailbox").param("ResultSize", 9)])
                .await?
                .collect()
                .await
        },
    );
    println!(
        "concurrent: {} + {} + {} objects",
        a?.output.len(),
        b?.output.len(),
        c?.output.len()
    );

    // A stop.
    let p = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
        .await?;
    p.stop()?;
    println!("stopped: {:?}", p.collect().await?.state);

    pool.close().await?;
    println!("closed; shells left on the server: {}", fake.open_shells());
    fake.shutdown().await;
    Ok(())
}
