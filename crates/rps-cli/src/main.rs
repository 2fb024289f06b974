//! The `rps` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use rps_cli::decode;

/// Remote PowerShell for Exchange and WinRM, from any OS.
#[derive(Parser, Debug)]
#[command(name = "rps", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every WS-Man envelope (and the PSRP messages inside) of FILE as JSON Lines.
    Decode(decode::Args),
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
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rps: {e:#}");
            ExitCode::from(1)
        }
    }
}
