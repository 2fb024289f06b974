//! Library side of the `rps` command line: output rendering shared by the subcommands.

pub mod render;
