#![doc = include_str!("../README.md")]

pub mod cmdline;
pub mod http;
pub mod jwt;
pub mod machine;
pub mod token;
