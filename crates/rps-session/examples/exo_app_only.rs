//! Exchange Online, app-only: a client secret or certificate gets a token, the
//! ExchangeOnline profile builds the endpoint (`OAuthUser@<tenant>`, the 302 to the pod),
//! and `Get-Mailbox` runs on a runspace pool that rebuilds itself before the token expires.
//!
//! ```text
//! EXO_TENANT=<tenant guid> EXO_CLIENT_ID=<app id> EXO_CLIENT_SECRET=... \
//!   cargo run -p rps-session --example exo_app_only
//! # or EXO_CERT_PFX=app.pfx EXO_CERT_PASSWORD=... instead of EXO_CLIENT_SECRET
//! # optional: EXO_CLOUD=gcchigh|dod|china, EXO_RESULT_SIZE (default 10)
//! ```
//!
//! Exchange Online switched this endpoint off in October 2023; the same code serves the fake
//! endpoint (`crates/rps-replay/examples/exo_against_fake.rs`) and on-premises servers.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rps_session::http::Cloud;
use rps_session::http::profile::ExchangeOnline;
use rps_session::runspace::RetryPolicy;
use rps_session::token::{
    Caching, CertificateCredential, ClientCertificate, ClientSecret, OAuthConfig, TokenProvider,
};
use rps_session::{Command, ConnectOptions, PipelineEvent, RunspacePool};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let tenant = var("EXO_TENANT").ok_or("set EXO_TENANT (the tenant id)")?;
    let client_id = var("EXO_CLIENT_ID").ok_or("set EXO_CLIENT_ID (the app id)")?;
    let cloud = match var("EXO_CLOUD").as_deref() {
        Some("gcchigh") => Cloud::GccHigh,
        Some("dod") => Cloud::DoD,
        Some("china") => Cloud::China,
        _ => Cloud::Worldwide,
    };
    let profile = ExchangeOnline::app_only(tenant.clone()).cloud(cloud);
    let oauth = OAuthConfig::new(tenant, client_id)
        .cloud(cloud)
        .scope(profile.scope());
    // Caching refreshes the token five minutes before it expires.
    let provider: Arc<dyn TokenProvider> = match (var("EXO_CLIENT_SECRET"), var("EXO_CERT_PFX")) {
        (Some(secret), _) => Arc::new(Caching::new(ClientSecret::new(oauth, secret))),
        (None, Some(pfx)) => {
            let cert =
                CertificateCredential::from_pfx_file_env(Path::new(&pfx), "EXO_CERT_PASSWORD")?;
            Arc::new(Caching::new(ClientCertificate::new(oauth, cert)))
        }
        (None, None) => return Err("set EXO_CLIENT_SECRET or EXO_CERT_PFX".into()),
    };
    let mut options = ConnectOptions::new(profile.endpoint()?, Some(profile.credentials(provider)));
    // Exchange allows three runspaces per user: wait for a free one for a while.
    options.retry = RetryPolicy::new(5, Duration::from_secs(2), Duration::from_secs(30));
    let pool = RunspacePool::connect(options).await?;
    println!("connected: shell {}", pool.shell_id());

    let size = var("EXO_RESULT_SIZE").unwrap_or_else(|| "10".to_owned());
    let mut pipeline = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", size)])
        .await?;
    while let Some(event) = pipeline.next_event().await {
        match event? {
            PipelineEvent::Output(mailbox) => {
                let name = mailbox
                    .as_object()
                    .and_then(|o| o.get("PrimarySmtpAddress"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("?");
                println!("{name}");
            }
            PipelineEvent::Record { kind, value } => eprintln!("{kind:?}: {value:?}"),
            PipelineEvent::Finished { state, .. } => println!("finished: {state:?}"),
            _ => {}
        }
    }
    pool.close().await?;
    Ok(())
}
