//! `rps serve` (the fake Exchange Online endpoint, or a transcript on loopback) and
//! `rps replay` (re-enact a recorded session with the real client and compare).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rps_replay::Transcript;
use rps_replay::fake::{FakeExchange, FaultSpec, TokenSpec};
use rps_replay::replayer::Replayer;
use rps_replay::server::{Request, Response, Server};

/// The faults `--faults` understands, for `rps serve --help`.
const FAULTS_HELP: &str = "\
Faults to inject (--faults), a comma list of fault=probability or fault=value pairs:
  drop-receive=P     a Receive with output ready closes the connection without answering;
                     the output stays queued for the next Receive
  fault500=P         HTTP 500 with a w:InternalError WS-Man fault, on the fault500-ops
  fault500-ops=OPS   '+'-separated operations fault500 hits: create, command, send, receive,
                     signal, delete (default receive+command+send)
  503=P              HTTP 503 with Retry-After, before the request is looked at
  retry-after=SECS   the Retry-After value of a 503 (default 1)
  throttle=P         a Create is refused with Exchange's MaxConcurrency fault
  slow=DURATION      every answer is delayed this long (200ms, 1s, 1500us)
  seed=N             the seed of the fault dice, for repeatable runs (default 0)
Example: drop-receive=0.05,fault500=0.01,throttle=0.1,slow=200ms,seed=42";

/// Arguments of `rps serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = FAULTS_HELP)]
pub struct ServeArgs {
    /// Serve the scripted fake Exchange Online endpoint.
    #[arg(long, conflicts_with = "file")]
    pub fake_exchange: bool,
    /// Serve this transcript (or pypsrp recording) to one client, matching its requests.
    #[arg(value_name = "FILE", required_unless_present = "fake_exchange")]
    pub file: Option<PathBuf>,
    /// How many mailboxes the fake tenant holds.
    #[arg(long, default_value_t = 25)]
    pub mailboxes: usize,
    /// The tenant's seed (mailbox contents, "Micro delay" warnings).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults to inject (see below).
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
    /// Serve the pod directly, without the front listener's 302.
    #[arg(long)]
    pub no_redirect: bool,
    /// Accept WinRS Disconnect and Reconnect as a Windows endpoint does (Exchange Online
    /// refused them; so does the fake by default).
    #[arg(long)]
    pub disconnect_supported: bool,
    /// The WinRM configuration's MaxEnvelopeSizekb (the fake refuses larger requests).
    #[arg(long, value_name = "KB", default_value_t = 500)]
    pub max_envelope_kb: u32,
    /// Never answer a session key exchange (PUBLIC_KEY), to test clients' timeouts.
    #[arg(long)]
    pub no_key_exchange: bool,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: String,
    /// Write an app-only token the fake accepts to this file.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Also accept plain Basic auth for this user (on-premises style, e.g. for pypsrp).
    #[arg(long, value_name = "USER", requires = "basic_password_env")]
    pub basic_user: Option<String>,
    /// The environment variable holding `--basic-user`'s password.
    #[arg(long, value_name = "VAR")]
    pub basic_password_env: Option<String>,
}

/// Runs `rps serve` until interrupted. The first line on stdout is the URL to connect to.
pub async fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    if args.fake_exchange {
        let mut builder = FakeExchange::builder()
            .mailboxes(args.mailboxes)
            .seed(args.seed)
            .redirect(!args.no_redirect)
            .disconnect_supported(args.disconnect_supported)
            .max_envelope_size_kb(args.max_envelope_kb)
            .answer_key_exchange(!args.no_key_exchange)
            .bind(args.listen.clone());
        if let Some(spec) = &args.faults {
            let spec =
                FaultSpec::parse(spec).map_err(|e| crate::usage(format!("bad --faults: {e}")))?;
            builder = builder.faults(spec);
        }
        if let (Some(user), Some(var)) = (&args.basic_user, &args.basic_password_env) {
            let password = std::env::var(var)
                .with_context(|| format!("the environment variable {var} is not set"))?;
            builder = builder.basic_user(user.clone(), password);
        }
        let fake = builder
            .start()
            .await
            .context("cannot start the fake endpoint")?;
        println!("{}", fake.url());
        if let Some(path) = &args.token_file {
            std::fs::write(path, fake.mint_token(&TokenSpec::app_only()))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        eprintln!(
            "rps serve: fake Exchange Online for tenant {} ({} mailboxes); pod at {}; Ctrl-C stops",
            fake.tenant_id(),
            args.mailboxes,
            fake.pod_url()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        eprintln!("rps serve: {} shell(s) still open", fake.open_shells());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(file) = &args.file else {
        return Err(crate::usage("give a transcript FILE or --fake-exchange"));
    };
    let transcript =
        Transcript::load(file).with_context(|| format!("cannot load {}", file.display()))?;
    let replayer = Arc::new(Mutex::new(Replayer::new(transcript)));
    let handler = {
        let replayer = replayer.clone();
        move |req: Request| {
            let replayer = replayer.clone();
            async move {
                let result = match replayer.lock() {
                    Ok(mut r) => r.handle(&req.body),
                    Err(_) => return Response::text(500, "replayer failed"),
                };
                match result {
                    Ok(resp) => {
                        if let Some(d) = resp.delay {
                            tokio::time::sleep(d).await;
                        }
                        if resp.drop_connection {
                            return Response::dropped();
                        }
                        let mut out = Response::new(resp.status).with_body(resp.body);
                        for (k, v) in resp.headers {
                            out = out.with_header(k, v);
                        }
                        out
                    }
                    Err(m) => {
                        eprintln!("rps serve: mismatch: {m}");
                        Response::text(500, format!("replay mismatch: {m}"))
                    }
                }
            }
        }
    };
    let server = Server::bind(args.listen.as_str(), handler)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("{}/wsman", server.url());
    eprintln!("rps serve: replaying {}; Ctrl-C stops", file.display());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    let matched = replayer.lock().map(|r| r.matched()).unwrap_or(0);
    eprintln!("rps serve: {matched} request(s) matched");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `rps replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A transcript or a pypsrp YAML recording.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Compare requests, outputs and states with the recording; exit 1 with a diff on any
    /// mismatch.
    #[arg(long)]
    pub check: bool,
    /// Drive the client machine in memory instead of over a loopback server.
    #[arg(long)]
    pub in_memory: bool,
}

/// Runs `rps replay`.
pub async fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let transcript = Transcript::load(&args.file)
        .with_context(|| format!("cannot load {}", args.file.display()))?;
    let scenario = rps_replay::reenact::Scenario::from_transcript(&transcript)
        .with_context(|| format!("cannot re-enact {}", args.file.display()))?;
    let report = if args.in_memory {
        rps_replay::reenact::check_in_memory(&transcript)?
    } else {
        rps_replay::reenact::check_over_loopback(&transcript).await?
    };
    print!("{}", rps_replay::reenact::render_outputs(&scenario));
    if args.check {
        eprint!("{report}");
        if !report.passed() {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
