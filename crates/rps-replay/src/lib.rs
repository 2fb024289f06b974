#![doc = include_str!("../README.md")]

pub mod pypsrp;
pub mod transcript;

pub use transcript::Transcript;
