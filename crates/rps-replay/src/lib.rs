#![doc = include_str!("../README.md")]

pub mod fake;
pub mod pypsrp;
pub mod recorder;
pub mod reenact;
pub mod replayer;
pub mod server;
pub mod transcript;

pub use transcript::Transcript;
