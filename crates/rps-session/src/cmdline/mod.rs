//! Parsing PowerShell cmdlet lines (`Get-Mailbox -ResultSize 5 | Set-Mailbox ...`) into commands.
//!
//! Exchange's remote PowerShell endpoints run in `NoLanguage` mode: they accept a pipeline of
//! commands with literal arguments and nothing else. This module reads the small subset of
//! PowerShell's argument-mode syntax that such a pipeline can use and turns it into typed
//! [`ParsedCommand`]s whose values are CLIXML [`Value`]s, ready to become `CommandParameter`s of
//! a `CreatePipeline` message:
//!
//! - a command name, then `-Name value`, switches (`-Force`), `-Switch:$false` / `-Name:value`
//!   and positional arguments;
//! - integers (`Int32` when they fit, then `Int64`, with the `L` suffix and the `KB`..`PB`
//!   multipliers), doubles, hex (`0x1F`), `$true`, `$false` and `$null`;
//! - arrays (`a,b,c` and `@(a, b)`) and hashtables (`@{Add='smtp:a@b.c'; Count=1}`);
//! - single-quoted strings (`''` for a quote), double-quoted strings (backtick escapes, `""`),
//!   bare words as strings, and `|` between commands.
//!
//! Anything that would need the script language (variables, `$(...)`, `{...}` script blocks,
//! `(...)`, `;` between statements, redirection, `&`, casts, splatting, here-strings) is a
//! [`CmdlineError::NotAllowed`] naming the column and the construct.
//!
//! PowerShell decides whether `-Name` takes a value from the cmdlet's metadata, which a client
//! does not have: here `-Name` takes the next token as its value unless that token is another
//! parameter, a `|` or the end of the line. The common switches in [`KNOWN_SWITCHES`] never take
//! a following value (use `-Confirm:$false` to give them one).
//!
//! The [`Display`] form of a [`CmdletLine`] is PowerShell text that parses back into the same
//! line.
//!
//! [`Display`]: std::fmt::Display

mod args;
mod display;
mod error;
mod lexer;
mod parser;
mod script;
mod value;

pub use args::parse_args;
pub use error::CmdlineError;
pub use script::parse_script;
pub use value::{array, hashtable};

use rps_psrp::clixml::Value;

use lexer::Parser;

/// The longest cmdlet line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 32 * 1024;
/// The longest script accepted by [`parse_script`], in bytes.
pub const MAX_SCRIPT_LEN: usize = 1024 * 1024;
/// The most physical lines one command of a script may span.
pub const MAX_CONTINUATION_LINES: usize = 1000;
/// The deepest nesting of arrays and hashtables accepted.
pub const MAX_DEPTH: usize = 16;
/// Parameters that are switches on every cmdlet, so never take the following token as a value.
pub const KNOWN_SWITCHES: &[&str] = &["Force", "WhatIf", "Confirm", "Verbose", "Debug"];

/// A parsed cmdlet line: one or more commands joined by `|`.
#[derive(Clone, Debug, PartialEq)]
pub struct CmdletLine {
    /// The commands of the pipeline, in order.
    pub commands: Vec<ParsedCommand>,
}

/// One command of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedCommand {
    /// The command name as written (e.g. `Get-Mailbox`).
    pub name: String,
    /// Named and positional arguments, in the order written.
    pub parameters: Vec<ParsedParameter>,
}

/// One argument of a command.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedParameter {
    /// The parameter name without its dash, or `None` for a positional argument.
    pub name: Option<String>,
    /// The value, or `None` for a switch given without one (`-Force`).
    pub value: Option<Value>,
}

impl ParsedParameter {
    /// A named parameter with a value.
    pub fn named(name: impl Into<String>, value: impl Into<Value>) -> Self {
        ParsedParameter {
            name: Some(name.into()),
            value: Some(value.into()),
        }
    }

    /// A switch given without a value.
    pub fn switch(name: impl Into<String>) -> Self {
        ParsedParameter {
            name: Some(name.into()),
            value: None,
        }
    }

    /// A positional argument.
    pub fn positional(value: impl Into<Value>) -> Self {
        ParsedParameter {
            name: None,
            value: Some(value.into()),
        }
    }
}

/// Parses one cmdlet line as typed at a PowerShell prompt.
pub fn parse_line(line: &str) -> Result<CmdletLine, CmdlineError> {
    if line.len() > MAX_LINE_LEN {
        return Err(CmdlineError::TooLong {
            len: line.len(),
            max: MAX_LINE_LEN,
        });
    }
    // A trailing newline (a line read from a file or a prompt) ends the statement.
    let chars: Vec<char> = line.trim_end().chars().collect();
    Parser::new(&chars, 0).line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> ParsedCommand {
        let mut parsed = parse_line(line).unwrap();
        assert_eq!(parsed.commands.len(), 1, "{line}");
        parsed.commands.remove(0)
    }

    #[test]
    fn simple_named_and_switch() {
        let cmd = one("Get-Mailbox -ResultSize 5 -Arbitration");
        assert_eq!(cmd.name, "Get-Mailbox");
        assert_eq!(
            cmd.parameters,
            vec![
                ParsedParameter::named("ResultSize", 5),
                ParsedParameter::switch("Arbitration")
            ]
        );
    }

    #[test]
    fn script_errors_have_columns() {
        let e = parse_line("Get-Mailbox -Identity $x").unwrap_err();
        assert!(
            matches!(e, CmdlineError::NotAllowed { column: 23, .. }),
            "{e}"
        );
        let e = parse_line("Get-Mailbox; Remove-Mailbox x").unwrap_err();
        assert_eq!(e.column(), Some(12));
    }
}
