//! Runs the fake Exchange Online endpoint, or benchmarks our client against it.
//!
//! ```text
//! cargo run --release -p rps-replay --example fake_exchange -- serve [mailboxes] [seconds] [faults]
//! cargo run --release -p rps-replay --example fake_exchange -- bench [mailboxes]
//! cargo run --release -p rps-replay --example fake_exchange -- gen [mailboxes]
//! ```
//!
//! `serve` prints the URL, the Basic user and a one-hour app-only token, then serves for the
//! given seconds (default 600). `bench` runs `Get-Mailbox -ResultSize Unlimited` over a
//! generated tenant (default 20,000 mailboxes) with `rps_session` and prints objects/s.

use std::time::{Duration, Instant};

use rps_replay::fake::{FakeExchange, FaultSpec, TokenSpec};
use rps_session::{Command, PipelineEvent, RunspacePool};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("serve", String::as_str);
    match mode {
        "gen" => {
            // The server's share alone: generate and serialize without any transport.
            let n: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
            let catalog = rps_replay::fake::Catalog::builtin()?;
            let view = catalog.views["Mailbox"].clone();
            let tn: std::sync::Arc<[String]> = view.type_names.clone().into();
            let tenant = rps_replay::fake::tenant::Tenant::new(catalog.tenant.clone(), n, 1);
            let started = Instant::now();
            let mut bytes = 0usize;
            for i in 0..n {
                let v = tenant.object(i, &view, &tn);
                bytes += rps_psrp::clixml::to_string(&v).len();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "generated {n} in {secs:.2} s: {:.0} objects/s, {} bytes each",
                n as f64 / secs,
                bytes / n.max(1)
            );
        }
        "bench" => {
            let n: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
            let fake = FakeExchange::builder().mailboxes(n).start().await?;
            let pool = RunspacePool::connect(fake.connect_options()).await?;
            let started = Instant::now();
            let mut p = pool
                .invoke([Command::new("Get-Mailbox").param("ResultSize", "Unlimited")])
                .await?;
            let mut count = 0usize;
            while let Some(ev) = p.next_event().await {
                if let PipelineEvent::Output(_) = ev? {
                    count += 1;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{count} mailboxes in {secs:.2} s: {:.0} objects/s",
                count as f64 / secs
            );
            pool.close().await?;
            fake.shutdown().await;
        }
        _ => {
            let n: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
            let secs: u64 = args.get(2).map_or(Ok(600), |s| s.parse())?;
            let faults = FaultSpec::parse(args.get(3).map_or("", String::as_str))?;
            let fake = FakeExchange::builder()
                .mailboxes(n)
                .faults(faults)
                .start()
                .await?;
            println!("url:   {}", fake.url());
            println!("pod:   {}", fake.pod_url());
            println!("user:  OAuthUser@{}", fake.tenant_id());
            println!("token: {}", fake.mint_token(&TokenSpec::app_only()));
            tokio::time::sleep(Duration::from_secs(secs)).await;
            fake.shutdown().await;
        }
    }
    Ok(())
}
