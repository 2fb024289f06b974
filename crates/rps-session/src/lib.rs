#![doc = include_str!("../README.md")]

pub mod cmd;
pub mod cmd_client;
pub mod cmdline;
pub mod enumerate;
pub mod http;
pub mod jwt;
pub mod machine;
pub mod runspace;
pub mod token;

pub use cmd::{CmdCommand, CmdConfig, CmdHandle};
pub use cmd_client::{CmdChunk, CmdOutput, CmdProcess, CmdShell};
pub use enumerate::ShellListing;
pub use runspace::{
    Command, ConnectOptions, Error, ExchangeObserver, Pipeline, PipelineEvent, PipelineResult,
    RetryPolicy, RunspacePool, list_shells,
};
