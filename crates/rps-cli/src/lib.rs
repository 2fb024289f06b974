//! Library side of the `rps` command line: the subcommands and output rendering.

pub mod decode;
pub mod render;
