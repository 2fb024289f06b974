#![doc = include_str!("../README.md")]

pub mod pypsrp;
pub mod recorder;
pub mod reenact;
pub mod replayer;
pub mod transcript;

pub use transcript::Transcript;
