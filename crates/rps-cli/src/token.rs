//! `rps token inspect [FILE|-]`: what a JWT says, and what Exchange Online will think of it.

use std::io::Read;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use rps_session::jwt::Jwt;
use serde_json::json;

/// Arguments of `rps token inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A file holding the token, or `-` for standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `rps token inspect`; exits 1 when Exchange would refuse the token.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<u8> {
    let mut text = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read the token file {}", args.file.display()))?;
    }
    // Accept a bare token, or "Bearer <token>".
    let token = text.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let jwt = Jwt::decode(token).context("not a JWT")?;
    let now = SystemTime::now();
    let warnings = jwt.exchange_readiness(now);
    let c = jwt.claims();
    if args.json {
        let out = json!({
            "claims": c.to_json(),
            "kind": format!("{:?}", c.kind()).to_lowercase(),
            "expired": jwt.is_expired(now),
            "seconds_left": jwt.seconds_left(now),
            "warnings": warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(", ")
            }
        };
        println!("audience     : {}", list(&c.aud));
        println!("tenant       : {}", c.tid.as_deref().unwrap_or("-"));
        println!("kind         : {:?}", c.kind());
        println!("app          : {}", c.appid.as_deref().unwrap_or("-"));
        println!("user         : {}", c.user_name().unwrap_or("-"));
        println!("roles        : {}", list(&c.roles));
        println!("wids         : {}", list(&c.wids));
        println!("scopes       : {}", list(&c.scp));
        let left = jwt.seconds_left(now);
        if left >= 0 {
            println!("expires in   : {}m {}s", left / 60, left % 60);
        } else {
            println!("expired      : {}m {}s ago", -left / 60, -left % 60);
        }
        for w in &warnings {
            println!("warning      : {w}");
        }
    }
    Ok(u8::from(warnings.iter().any(|w| w.is_blocking())))
}
