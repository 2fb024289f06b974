#![doc = include_str!("../README.md")]

pub mod cmdline;
pub mod http;
pub mod jwt;
pub mod machine;
pub mod runspace;
pub mod token;

pub use runspace::{
    Command, ConnectOptions, Error, ExchangeObserver, Pipeline, PipelineEvent, PipelineResult,
    RetryPolicy, RunspacePool,
};
