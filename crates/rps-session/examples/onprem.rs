//! On-premises Exchange: Basic authentication to `https://<server>/PowerShell`,
//! configuration `Microsoft.Exchange`, then `Get-Mailbox`.
//!
//! ```text
//! EXCHANGE_SERVER=exchange.contoso.com EXCHANGE_USER='CONTOSO\admin' EXCHANGE_PASSWORD=... \
//!   cargo run -p rps-session --example onprem
//! # optional: EXCHANGE_CA_PEM=ca.pem (a private CA), EXCHANGE_IDENTITY=alice
//! ```
//!
//! Basic must be enabled on the server's PowerShell virtual directory; rps refuses to send
//! it over plain http.

use std::process::ExitCode;

use rps_session::http::profile::OnPremisesExchange;
use rps_session::http::{Credentials, Secret, TransportConfig};
use rps_session::{Command, ConnectOptions, RunspacePool};

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
    let server = var("EXCHANGE_SERVER").ok_or("set EXCHANGE_SERVER")?;
    let user = var("EXCHANGE_USER").ok_or("set EXCHANGE_USER")?;
    let password = Secret::new(var("EXCHANGE_PASSWORD").ok_or("set EXCHANGE_PASSWORD")?);
    let endpoint = OnPremisesExchange::new(server).endpoint()?;
    let mut options = ConnectOptions::new(endpoint, Some(Credentials::basic(user, password)));
    if let Some(ca) = var("EXCHANGE_CA_PEM") {
        options.transport = TransportConfig::default().extra_ca_file(ca);
    }
    let pool = RunspacePool::connect(options).await?;
    let mut command = Command::new("Get-Mailbox");
    command = match var("EXCHANGE_IDENTITY") {
        Some(identity) => command.param("Identity", identity),
        None => command.param("ResultSize", 10),
    };
    let result = pool.invoke([command]).await?.collect().await?;
    for mailbox in &result.output {
        let name = mailbox
            .as_object()
            .and_then(|o| o.to_string.as_deref())
            .unwrap_or("?");
        println!("{name}");
    }
    println!("state: {:?}", result.state);
    pool.close().await?;
    Ok(())
}
