#![doc = include_str!("../README.md")]

pub mod clixml;
pub mod fragment;
pub mod message;
pub mod records;
