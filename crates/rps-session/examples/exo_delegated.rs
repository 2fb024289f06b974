//! Exchange Online, delegated: sign in with a device code on another device, then run
//! `Get-Mailbox` as that user. Later tokens come from the refresh token, and the pool is
//! rebuilt before the token it was created with expires.
//!
//! ```text
//! EXO_TENANT=contoso.onmicrosoft.com EXO_UPN=admin@contoso.onmicrosoft.com \
//!   cargo run -p rps-session --example exo_delegated
//! # optional: EXO_CLIENT_ID (default: the Exchange Online PowerShell app), EXO_CLOUD
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use rps_session::http::Cloud;
use rps_session::http::profile::ExchangeOnline;
use rps_session::token::{Caching, DeviceCode, DeviceCodePrompt, OAuthConfig};
use rps_session::{Command, ConnectOptions, RunspacePool};

/// The public client id of Microsoft's Exchange Online PowerShell module.
const EXO_POWERSHELL_APP: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";

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
    let tenant = var("EXO_TENANT").ok_or("set EXO_TENANT (tenant id or domain)")?;
    let upn = var("EXO_UPN").ok_or("set EXO_UPN (the user signing in)")?;
    let client_id = var("EXO_CLIENT_ID").unwrap_or_else(|| EXO_POWERSHELL_APP.to_owned());
    let cloud = match var("EXO_CLOUD").as_deref() {
        Some("gcchigh") => Cloud::GccHigh,
        Some("dod") => Cloud::DoD,
        Some("china") => Cloud::China,
        _ => Cloud::Worldwide,
    };
    let profile = ExchangeOnline::delegated(upn).cloud(cloud);
    let oauth = OAuthConfig::new(tenant, client_id)
        .cloud(cloud)
        .scope(profile.scope());
    let prompt = Arc::new(|p: &DeviceCodePrompt| eprintln!("{}", p.message));
    let provider = Arc::new(Caching::new(DeviceCode::new(oauth, prompt)));
    let options = ConnectOptions::new(profile.endpoint()?, Some(profile.credentials(provider)));
    let pool = RunspacePool::connect(options).await?;
    let result = pool
        .invoke([Command::new("Get-Mailbox").param("ResultSize", 10)])
        .await?
        .collect()
        .await?;
    for mailbox in &result.output {
        let name = mailbox
            .as_object()
            .and_then(|o| o.to_string.as_deref())
            .unwrap_or("?");
        println!("{name}");
    }
    for error in result.errors() {
        eprintln!("error record: {error:?}");
    }
    pool.close().await?;
    Ok(())
}
