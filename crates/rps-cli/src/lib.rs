//! Library side of the `rps` command line: the subcommands' pieces and output rendering.

pub mod connect;
pub mod decode;
pub mod demo;
pub mod progress;
pub mod render;
pub mod run;
pub mod serve;
pub mod token;

/// A usage error: the command line was wrong. The binary exits with status 2 for it.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An [`anyhow::Error`] carrying a [`UsageError`].
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}
