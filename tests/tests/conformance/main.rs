//! The conformance suite: one binary, one module per area, each driven by data files.

mod clixml;
mod psrp;
mod wsman;
