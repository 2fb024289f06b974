#![doc = include_str!("../README.md")]

pub mod clixml;
pub mod crypto;
mod engine;
pub mod error;
pub mod event;
pub mod fragment;
pub mod message;
pub mod messages;
pub mod pipeline;
pub mod pool;
pub mod records;
pub mod server;
