//! `rps decode FILE`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `rps decode`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A SOAP envelope, a pypsrp YAML recording, a CLIXML document or base64 fragment blobs.
    pub file: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if rps_replay::pypsrp::looks_like_recording(&text) {
        let rec = rps_replay::pypsrp::parse(&text)?;
        writeln!(out, "{{\"exchanges\": {}}}", rec.messages.len())?;
    }
    Ok(ExitCode::SUCCESS)
}
