//! `rps demo`: the whole Exchange Online flow against the fake endpoint on loopback.
//!
//! It starts the fake Exchange Online endpoint (a front listener that redirects to a "pod"),
//! mints an app-only token for it, and connects exactly as `rps exo` does against the real
//! service: `BasicAuthToOAuthConversion=true`, the token as the Basic password, the 302 to the
//! pod, the `MS-WSMAN` cookie. Then it runs `Get-Mailbox -ResultSize 5` and an error case and
//! prints them as PowerShell would.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rps_replay::fake::{FakeExchange, TokenSpec};
use rps_session::http::{HttpRequest, HttpResponse};
use rps_session::token::StaticToken;
use rps_session::{ExchangeObserver, RunspacePool};

use crate::connect::{AuthArgs, ExoArgs, TransportArgs};
use crate::render::Format;
use crate::run::{self, OutputArgs};

/// Arguments of `rps demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// How many mailboxes the fake tenant holds.
    #[arg(long, default_value_t = 25)]
    pub mailboxes: usize,
    /// Print each HTTP exchange (method, URL, status) as it happens.
    #[arg(long)]
    pub trace_http: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// Prints a line per exchange: shows the redirect and the cookie as they happen.
#[derive(Debug, Default)]
struct HttpLog {
    seen_cookie: Mutex<bool>,
    print: bool,
    redirects: Mutex<usize>,
}

impl ExchangeObserver for HttpLog {
    fn on_exchange(&self, request: &HttpRequest, response: Result<&HttpResponse, &str>) {
        let Ok(resp) = response else { return };
        if resp.url != request.url {
            if let Ok(mut n) = self.redirects.lock() {
                *n += 1;
            }
            eprintln!(
                "  redirected: {} -> {}",
                origin(&request.url),
                origin(&resp.url)
            );
        }
        if resp.headers.get("set-cookie").is_some()
            && let Ok(mut seen) = self.seen_cookie.lock()
            && !*seen
        {
            *seen = true;
            eprintln!("  affinity cookie MS-WSMAN set by the pod (value not shown)");
        }
        if self.print {
            eprintln!("  POST {} -> {}", origin(&resp.url), resp.status);
        }
    }
}

fn origin(u: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

/// Runs the demo. Exits 0 when everything behaved as Exchange Online did.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let fake = FakeExchange::builder()
        .mailboxes(args.mailboxes)
        .bind("127.0.0.1:0")
        .start()
        .await
        .context("cannot start the fake Exchange Online endpoint")?;
    let token = fake.mint_token(&TokenSpec::app_only());
    eprintln!("rps demo: a fake Exchange Online endpoint is listening on loopback");
    eprintln!("  connect URL : {}", fake.url());
    eprintln!("  tenant      : {}", fake.tenant_id());
    eprintln!(
        "  identity    : OAuthUser@{} (app-only token, Exchange.ManageAsApp)",
        fake.tenant_id()
    );

    let base: url::Url = fake.url().parse().context("fake URL")?;
    let exo = ExoArgs {
        tenant_id: Some(fake.tenant_id().to_owned()),
        uri: Some(base),
        ..ExoArgs::default()
    };
    let transport = TransportArgs {
        insecure_http: true,
        operation_timeout: 20,
        ..TransportArgs::default()
    };
    let provider: Arc<dyn rps_session::token::TokenProvider> = Arc::new(StaticToken::new(token));
    let mut options = crate::connect::exo_options_with(
        &exo,
        &AuthArgs::default(),
        &transport,
        false,
        Some(provider),
    )
    .await?;
    let log = Arc::new(HttpLog {
        print: args.trace_http,
        ..HttpLog::default()
    });
    options.observer = Some(log.clone());
    eprintln!("  endpoint    : {}", options.endpoint.url);

    let pool = RunspacePool::connect(options)
        .await
        .context("cannot connect to the fake endpoint")?;
    eprintln!(
        "  runspace pool opened (PSRP protocol {}, configuration Microsoft.Exchange)\n",
        pool.protocol_version()
    );

    let mut output = args.output.clone();
    if output.output.is_none() {
        output.output = Some(Format::Table);
    }
    eprintln!("PS> Get-Mailbox -ResultSize 5");
    let line = rps_session::cmdline::parse_line("Get-Mailbox -ResultSize 5")?;
    let first = run::run_lines(&pool, &[line], &output).await?;

    eprintln!("\nPS> Get-Mailbox -Identity nobody@contoso.com");
    let line = rps_session::cmdline::parse_line("Get-Mailbox -Identity nobody@contoso.com")?;
    let second = run::run_lines(&pool, &[line], &output).await?;

    pool.close().await.context("cannot close the session")?;
    let open = fake.open_shells();
    let redirects = log.redirects.lock().map(|n| *n).unwrap_or(0);
    let cookie = log.seen_cookie.lock().map(|c| *c).unwrap_or(false);
    eprintln!(
        "\nrps demo: {} mailboxes, {} error record(s) as expected, {} redirect(s), cookie {}, {} shell(s) left open on the server",
        first.objects,
        second.errors,
        redirects,
        if cookie { "kept" } else { "missing" },
        open
    );
    let ok = first.objects == 5.min(args.mailboxes)
        && first.errors == 0
        && second.errors == 1
        && redirects == 1
        && cookie
        && open == 0;
    if !ok {
        eprintln!("rps demo: something did not behave as Exchange Online did");
    }
    drop(fake);
    Ok(ExitCode::from(u8::from(!ok)))
}
