//! The `rps` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rps_cli::connect::{self, AuthArgs, ExoArgs, InvokeArgs, TransportArgs};
use rps_cli::run::{self, OutputArgs};
use rps_cli::{UsageError, decode, token, usage};
use rps_session::RunspacePool;
use rps_session::cmdline::{self, CmdletLine};

/// mimalloc (without transparent huge pages) instead of the system allocator: a stream of
/// objects allocates and frees hundreds of small strings per object. Against glibc it cut
/// `rps serve --fake-exchange`'s CPU by about a third and the client's by up to 13%, for a
/// few MiB more peak RSS (README, "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Remote PowerShell for Exchange and WinRM, from any OS.
#[derive(Parser, Debug)]
#[command(name = "rps", version, about, propagate_version = true)]
struct Cli {
    /// More logging on stderr (-v debug, -vv trace); secrets are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job: Exchange Online's flow end to end against a fake endpoint on loopback.
    Demo(rps_cli::demo::Args),
    /// Run cmdlets against Exchange Online (legacy remote PowerShell, OAuth as Basic).
    Exo(ExoCommand),
    /// Run cmdlets against Security & Compliance PowerShell.
    Ipps(ExoCommand),
    /// Run cmdlets against any WinRM endpoint (on-premises Exchange, Windows PowerShell).
    Invoke(InvokeCommand),
    /// Print every WS-Man envelope (and the PSRP messages inside) of FILE as JSON Lines.
    Decode(decode::Args),
    /// Work with access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Serve the fake Exchange Online endpoint, or a transcript, on loopback.
    Serve(rps_cli::serve::ServeArgs),
    /// Re-enact a recorded session with the real client; `--check` compares everything.
    Replay(rps_cli::serve::ReplayArgs),
    /// Record a session as a transcript: `rps record --out DIR -- exo|ipps|invoke ARGS`.
    Record(RecordArgs),
    /// List the cmdlets and parameters an endpoint offers (GET_COMMAND_METADATA).
    #[command(subcommand)]
    Commands(CommandsCommand),
}

#[derive(clap::Args, Debug)]
struct RecordArgs {
    /// The folder the transcript goes to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace the endpoint's host names with host.invalid.
    #[arg(long)]
    redact_hosts: bool,
    /// Replace the user name with `user`.
    #[arg(long)]
    redact_users: bool,
    /// The session to record: `exo ...`, `ipps ...` or `invoke ...`.
    #[arg(last = true, required = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// Where `rps record` wants the running session recorded.
#[derive(Debug, Clone, Default)]
struct Recording {
    path: Option<PathBuf>,
    redact_hosts: bool,
    redact_users: bool,
}

#[derive(Subcommand, Debug)]
enum CommandsCommand {
    /// Of Exchange Online (names after `--` filter, wildcards allowed).
    Exo(ExoCommand),
    /// Of Security & Compliance.
    Ipps(ExoCommand),
    /// Of any WinRM endpoint.
    Invoke(InvokeCommand),
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Show a JWT's audience, tenant, app, roles, wids and expiry, with Exchange's needs.
    Inspect(token::InspectArgs),
}

/// What to run: a cmdlet line after `--`, or a script file of cmdlet lines.
#[derive(clap::Args, Debug, Clone)]
struct CmdletArgs {
    /// Run one cmdlet line per line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "cmdlet")]
    script: Option<PathBuf>,
    /// The cmdlet line, e.g. `-- Get-Mailbox -ResultSize 5`.
    #[arg(last = true, value_name = "CMDLET")]
    cmdlet: Vec<String>,
}

impl CmdletArgs {
    fn lines(&self) -> anyhow::Result<Vec<CmdletLine>> {
        if let Some(path) = &self.script {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the script {}", path.display()))?;
            return cmdline::parse_script(&text)
                .map_err(|e| usage(format!("{}: {e}", path.display())));
        }
        if self.cmdlet.is_empty() {
            return Err(usage(
                "nothing to run: give a cmdlet after `--`, or --script FILE",
            ));
        }
        let line = if self.cmdlet.len() == 1 {
            cmdline::parse_line(&self.cmdlet[0])
        } else {
            cmdline::parse_args(&self.cmdlet)
        };
        Ok(vec![
            line.map_err(|e| usage(format!("bad cmdlet line: {e}")))?,
        ])
    }
}

#[derive(clap::Args, Debug)]
struct ExoCommand {
    #[command(flatten)]
    exo: ExoArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    transport: TransportArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    cmdlet: CmdletArgs,
}

#[derive(clap::Args, Debug)]
struct InvokeCommand {
    #[command(flatten)]
    invoke: InvokeArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    transport: TransportArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// A script to run (where the endpoint allows scripts).
    #[arg(long, value_name = "SCRIPT", conflicts_with_all = ["script", "cmdlet"])]
    command: Option<String>,
    #[command(flatten)]
    cmdlet: CmdletArgs,
}

fn init_tracing(verbose: u8) {
    if verbose == 0 {
        return;
    }
    let level = if verbose == 1 { "debug" } else { "trace" };
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "rps_session={level},rps_replay={level},rps_cli={level}"
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose);
    let result = dispatch(cli.command, Recording::default());
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rps: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(command: Command, rec: Recording) -> anyhow::Result<ExitCode> {
    match command {
        Command::Decode(args) => decode::run(&args),
        Command::Token(TokenCommand::Inspect(args)) => token::inspect(&args).map(ExitCode::from),
        Command::Exo(c) => block_on(exo(c, false, rec)),
        Command::Ipps(c) => block_on(exo(c, true, rec)),
        Command::Invoke(c) => block_on(invoke(c, rec)),
        Command::Commands(c) => block_on(commands(c)),
        Command::Record(r) => record(r),
        Command::Serve(a) => block_on(rps_cli::serve::serve(&a)),
        Command::Replay(a) => block_on(rps_cli::serve::replay(&a)),
        Command::Demo(a) => block_on(rps_cli::demo::run(&a)),
    }
}

fn record(r: RecordArgs) -> anyhow::Result<ExitCode> {
    let mut argv = vec!["rps".to_owned()];
    argv.extend(r.args.iter().cloned());
    let inner =
        Cli::try_parse_from(&argv).map_err(|e| usage(format!("bad session to record: {e}")))?;
    if !matches!(
        inner.command,
        Command::Exo(_) | Command::Ipps(_) | Command::Invoke(_)
    ) {
        return Err(usage(
            "rps record takes an exo, ipps or invoke command after `--`",
        ));
    }
    std::fs::create_dir_all(&r.out)
        .with_context(|| format!("cannot create {}", r.out.display()))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = r.out.join(format!("session-{secs}.yaml"));
    let rec = Recording {
        path: Some(path.clone()),
        redact_hosts: r.redact_hosts,
        redact_users: r.redact_users,
    };
    let code = dispatch(inner.command, rec);
    eprintln!("rps: transcript written to {}", path.display());
    code
}

fn install_recorder(options: &mut rps_session::ConnectOptions, rec: &Recording) {
    let Some(path) = &rec.path else { return };
    let mut redaction = rps_replay::recorder::Redaction::default();
    if rec.redact_hosts
        && let Some(h) = options.endpoint.url.host_str()
    {
        redaction.hosts.push(h.to_owned());
    }
    if rec.redact_users
        && let Some(c) = &options.credentials
    {
        redaction.users.push(c.user().to_owned());
    }
    rps_replay::recorder::record_to(options, path, redaction);
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    // One thread: the driver decodes objects and the renderer frees them on the same
    // thread, so the allocator reuses their memory at once and peak RSS stays flat however
    // long the output (with a worker thread decoding and the main thread freeing, mimalloc
    // held 47 MiB at 100,000 mailboxes against 17 MiB here); a client is one connection.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

async fn run_on(
    mut options: rps_session::ConnectOptions,
    lines: &[CmdletLine],
    output: &OutputArgs,
    rec: &Recording,
) -> anyhow::Result<ExitCode> {
    install_recorder(&mut options, rec);
    let host = options.endpoint.url.host_str().unwrap_or("").to_owned();
    let pool = RunspacePool::connect(options)
        .await
        .with_context(|| format!("cannot connect to {host}"))?;
    let outcome = run::run_lines(&pool, lines, output).await;
    let closed = pool.close().await;
    let outcome = outcome?;
    closed.context("cannot close the session")?;
    Ok(ExitCode::from(outcome.exit_code()))
}

async fn exo(c: ExoCommand, compliance: bool, rec: Recording) -> anyhow::Result<ExitCode> {
    let lines = c.cmdlet.lines()?;
    let options = connect::exo_options(&c.exo, &c.auth, &c.transport, compliance).await?;
    run_on(options, &lines, &c.output, &rec).await
}

async fn invoke(c: InvokeCommand, rec: Recording) -> anyhow::Result<ExitCode> {
    let mut options = connect::invoke_options(&c.invoke, &c.auth, &c.transport)?;
    if let Some(script) = &c.command {
        install_recorder(&mut options, &rec);
        let host = options.endpoint.url.host_str().unwrap_or("").to_owned();
        let pool = RunspacePool::connect(options)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        let result = match pool
            .invoke([rps_session::Command::script(script.clone())])
            .await
        {
            Ok(pipeline) => pipeline.collect().await,
            Err(e) => Err(e),
        };
        let closed = pool.close().await;
        let result = result?;
        closed?;
        let format = c.output.format();
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        rps_cli::render::render_all(format, &c.output.options(), &result.output, &mut lock)?;
        for (kind, v) in &result.records {
            eprintln!("{}", run::record_text(*kind, v));
        }
        return Ok(ExitCode::from(u8::from(!result.succeeded())));
    }
    let lines = c.cmdlet.lines()?;
    run_on(options, &lines, &c.output, &rec).await
}

async fn commands(c: CommandsCommand) -> anyhow::Result<ExitCode> {
    let (options, names, output) = match c {
        CommandsCommand::Exo(c) => (
            connect::exo_options(&c.exo, &c.auth, &c.transport, false).await?,
            c.cmdlet.cmdlet,
            c.output,
        ),
        CommandsCommand::Ipps(c) => (
            connect::exo_options(&c.exo, &c.auth, &c.transport, true).await?,
            c.cmdlet.cmdlet,
            c.output,
        ),
        CommandsCommand::Invoke(c) => (
            connect::invoke_options(&c.invoke, &c.auth, &c.transport)?,
            c.cmdlet.cmdlet,
            c.output,
        ),
    };
    let names = if names.is_empty() {
        vec!["*".to_owned()]
    } else {
        names
    };
    let host = options.endpoint.url.host_str().unwrap_or("").to_owned();
    let pool = RunspacePool::connect(options)
        .await
        .with_context(|| format!("cannot connect to {host}"))?;
    let result = match pool.get_command_metadata(names).await {
        Ok(pipeline) => pipeline.collect().await,
        Err(e) => Err(e),
    };
    let closed = pool.close().await;
    let result = result?;
    closed?;
    // The first object is the count; the rest describe one command each.
    let commands: Vec<_> = result
        .output
        .iter()
        .filter(|v| v.as_object().is_some())
        .collect();
    let mut options = output.options();
    if options.properties.is_none() {
        options = options.with_properties("Name,CommandType,Parameters");
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    rps_cli::render::render_all(output.format(), &options, commands, &mut lock)?;
    for (kind, v) in &result.records {
        eprintln!("{}", run::record_text(*kind, v));
    }
    Ok(ExitCode::from(u8::from(!result.succeeded())))
}
