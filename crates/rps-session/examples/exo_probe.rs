//! Probes Exchange Online remote PowerShell with an app-only token: acquires a token by
//! client secret or certificate, sends a WS-Management `Identify` to the tenant's
//! endpoint following the redirect to its pod, and prints what came back. Nothing
//! secret is printed.
//!
//! ```text
//! EXO_TENANT=<tenant guid> EXO_CLIENT_ID=<app id> EXO_CLIENT_SECRET=... \
//!   cargo run -p rps-session --example exo_probe
//! # or EXO_CERT_PFX=app.pfx EXO_CERT_PASSWORD=... instead of EXO_CLIENT_SECRET
//! # optional: EXO_DELEGATED_ORG, EXO_ANCHOR_MAILBOX, EXO_CLOUD=gcchigh|dod|china
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use rps_session::http::profile::ExchangeOnline;
use rps_session::http::{
    Cloud, HttpClient, HttpRequest, RedirectPolicy, Transport, TransportConfig,
};
use rps_session::token::{
    Caching, CertificateCredential, ClientCertificate, ClientSecret, OAuthConfig, TokenProvider,
};

const IDENTIFY: &str = concat!(
    r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
    r#"xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">"#,
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
);

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
    let tenant = var("EXO_TENANT").ok_or("set EXO_TENANT")?;
    let client_id = var("EXO_CLIENT_ID").ok_or("set EXO_CLIENT_ID")?;
    let cloud = match var("EXO_CLOUD").as_deref() {
        Some("gcchigh") => Cloud::GccHigh,
        Some("dod") => Cloud::DoD,
        Some("china") => Cloud::China,
        _ => Cloud::Worldwide,
    };
    let mut profile = ExchangeOnline::app_only(tenant.clone()).cloud(cloud);
    if let Some(org) = var("EXO_DELEGATED_ORG") {
        profile = profile.delegated_org(org);
    }
    if let Some(mailbox) = var("EXO_ANCHOR_MAILBOX") {
        profile = profile.anchor_mailbox(mailbox);
    }
    let oauth = OAuthConfig::new(tenant, client_id)
        .cloud(cloud)
        .scope(profile.scope());
    let provider: Arc<dyn TokenProvider> = match (var("EXO_CLIENT_SECRET"), var("EXO_CERT_PFX")) {
        (Some(secret), _) => Arc::new(Caching::new(ClientSecret::new(oauth, secret))),
        (None, Some(pfx)) => {
            let cert =
                CertificateCredential::from_pfx_file_env(Path::new(&pfx), "EXO_CERT_PASSWORD")?;
            Arc::new(Caching::new(ClientCertificate::new(oauth, cert)))
        }
        (None, None) => return Err("set EXO_CLIENT_SECRET or EXO_CERT_PFX".into()),
    };
    let endpoint = profile.endpoint()?;
    println!("endpoint: {}", endpoint.url);
    println!("resource uri: {}", endpoint.resource_uri());

    let transport = Transport::new(TransportConfig::default())?;
    let policy = if endpoint.allow_redirection {
        RedirectPolicy::follow()
    } else {
        RedirectPolicy::none()
    };
    let mut client = HttpClient::new(transport, Some(profile.credentials(provider)))
        .with_redirect_policy(policy);
    let resp = client
        .send_following(HttpRequest::winrm(endpoint.url.clone(), IDENTIFY))
        .await?;
    println!("status: {}", resp.status);
    println!("answered by: {}", resp.url.host_str().unwrap_or("?"));
    println!("cookies kept: {}", client.cookies().len());
    println!("body: {} bytes", resp.body.len());
    Ok(())
}
