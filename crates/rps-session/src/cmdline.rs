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
//! The [`Display`](fmt::Display) form of a [`CmdletLine`] is PowerShell text that parses back
//! into the same line.

use std::fmt;

use rps_psrp::clixml::{ListKind, Object, ObjectBase, Value};

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

/// The type names PowerShell serializes an `object[]` with.
const ARRAY_TYPE_NAMES: [&str; 3] = ["System.Object[]", "System.Array", "System.Object"];
/// The type names PowerShell serializes a hashtable with.
const HASHTABLE_TYPE_NAMES: [&str; 2] = ["System.Collections.Hashtable", "System.Object"];

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

/// Why a cmdlet line could not be parsed. Columns count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdlineError {
    /// The line holds no command.
    #[error("empty command line")]
    Empty,
    /// The line is longer than [`MAX_LINE_LEN`].
    #[error("command line is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The line's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The script is longer than [`MAX_SCRIPT_LEN`].
    #[error("script is {len} bytes long; the limit is {max}")]
    ScriptTooLong {
        /// The script's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Arrays or hashtables nest deeper than [`MAX_DEPTH`].
    #[error("column {column}: arrays and hashtables nest deeper than {max} levels")]
    TooDeep {
        /// Where the level too many starts.
        column: usize,
        /// The limit.
        max: usize,
    },
    /// A script-language construct, which a `NoLanguage` endpoint refuses.
    #[error(
        "column {column}: {construct} not allowed: the endpoint runs in NoLanguage mode, so only commands with literal arguments can be sent"
    )]
    NotAllowed {
        /// Where the construct starts.
        column: usize,
        /// What it is (e.g. "variable `$x`").
        construct: String,
    },
    /// A string, array or hashtable is not closed.
    #[error("column {column}: unterminated {what}")]
    Unterminated {
        /// Where it starts.
        column: usize,
        /// What is not closed.
        what: &'static str,
    },
    /// Something other than what the grammar allows here.
    #[error("column {column}: expected {expected}, found {found}")]
    Unexpected {
        /// Where.
        column: usize,
        /// What would have been accepted.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// `-Name:` with nothing after it.
    #[error("column {column}: parameter -{name} has a ':' but no value")]
    MissingValue {
        /// Where the parameter starts.
        column: usize,
        /// The parameter name.
        name: String,
    },
    /// The command name is not a bare cmdlet or function name.
    #[error("column {column}: {name:?} is not a command name")]
    BadCommandName {
        /// Where the name starts.
        column: usize,
        /// The offending text.
        name: String,
    },
    /// An error on one line of a script.
    #[error("line {line}: {error}")]
    AtLine {
        /// The line number, from 1.
        line: usize,
        /// The error on that line.
        error: Box<CmdlineError>,
    },
}

impl CmdlineError {
    /// The column (from 1) the error points at, if it points anywhere.
    pub fn column(&self) -> Option<usize> {
        match self {
            CmdlineError::TooDeep { column, .. }
            | CmdlineError::NotAllowed { column, .. }
            | CmdlineError::Unterminated { column, .. }
            | CmdlineError::Unexpected { column, .. }
            | CmdlineError::MissingValue { column, .. }
            | CmdlineError::BadCommandName { column, .. } => Some(*column),
            CmdlineError::AtLine { error, .. } => error.column(),
            _ => None,
        }
    }
    fn set_column(&mut self, col: usize) {
        match self {
            CmdlineError::TooDeep { column, .. }
            | CmdlineError::NotAllowed { column, .. }
            | CmdlineError::Unterminated { column, .. }
            | CmdlineError::Unexpected { column, .. }
            | CmdlineError::MissingValue { column, .. }
            | CmdlineError::BadCommandName { column, .. } => *column = col,
            CmdlineError::AtLine { error, .. } => error.set_column(col),
            _ => {}
        }
    }
}

/// Builds the CLIXML form of a PowerShell array (`object[]`) holding `items`.
pub fn array(items: Vec<Value>) -> Value {
    let mut obj = Object::with_type_names(ARRAY_TYPE_NAMES);
    obj.base = ObjectBase::List(ListKind::List, items);
    Value::object(obj)
}

/// Builds the CLIXML form of a PowerShell hashtable holding `entries` in order.
pub fn hashtable(entries: Vec<(Value, Value)>) -> Value {
    let mut obj = Object::with_type_names(HASHTABLE_TYPE_NAMES);
    obj.base = ObjectBase::Dict(entries);
    Value::object(obj)
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

/// Parses the words of a command line after `--`, whose shell quoting is gone.
///
/// Each word is one token. A word of the form `-Name` or `-Name:value` is a parameter and a
/// lone `|` separates commands. Any other word is a value: a word starting with `@`, `$`, a
/// quote, `(`, `{` or `[`, or holding a comma and no whitespace, is read with the PowerShell
/// syntax of [`parse_line`] (so `a,b,c`, `@{k=1}`, `'x'` and `$false` work); other words are taken
/// literally (a number if they read as one, else a string), so `"john doe"` quoted for the
/// shell stays one string. Error columns count in the words joined by single spaces.
pub fn parse_args(args: &[String]) -> Result<CmdletLine, CmdlineError> {
    let len = args
        .iter()
        .map(|a| a.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    if len > MAX_LINE_LEN {
        return Err(CmdlineError::TooLong {
            len,
            max: MAX_LINE_LEN,
        });
    }
    let words: Vec<Vec<char>> = args.iter().map(|a| a.chars().collect()).collect();
    let mut offsets = Vec::with_capacity(words.len());
    let mut col = 0;
    for w in &words {
        offsets.push(col);
        col += w.len() + 1;
    }
    let mut commands = Vec::new();
    let mut current: Option<ParsedCommand> = None;
    let mut i = 0;
    while i < words.len() {
        let (word, offset) = (&words[i], offsets[i]);
        i += 1;
        if word.as_slice() == ['|'] {
            match current.take() {
                Some(cmd) => commands.push(cmd),
                None => return Err(unexpected_at(offset + 1, "a command name", "'|'")),
            }
            continue;
        }
        let Some(cmd) = current.as_mut() else {
            let mut p = Parser::new(word, offset);
            let name = p.command_name()?;
            p.expect_end("end of the command name")?;
            current = Some(ParsedCommand {
                name,
                parameters: Vec::new(),
            });
            continue;
        };
        if is_param_start(word, 0) {
            let mut p = Parser::new(word, offset);
            let (name, colon) = p.parameter_name()?;
            let value = if colon {
                if p.at_end() {
                    match words.get(i) {
                        Some(next) if !is_param_start(next, 0) && next.as_slice() != ['|'] => {
                            i += 1;
                            Some(word_value(next, offsets[i - 1])?)
                        }
                        _ => {
                            return Err(CmdlineError::MissingValue {
                                column: offset + 1,
                                name,
                            });
                        }
                    }
                } else {
                    let rest = &word[p.pos..];
                    Some(word_value(rest, offset + p.pos)?)
                }
            } else {
                match words.get(i) {
                    Some(next)
                        if !is_param_start(next, 0)
                            && next.as_slice() != ['|']
                            && !is_known_switch(&name) =>
                    {
                        i += 1;
                        Some(word_value(next, offsets[i - 1])?)
                    }
                    _ => None,
                }
            };
            cmd.parameters.push(ParsedParameter {
                name: Some(name),
                value,
            });
        } else {
            cmd.parameters.push(ParsedParameter {
                name: None,
                value: Some(word_value(word, offset)?),
            });
        }
    }
    match current {
        Some(cmd) => commands.push(cmd),
        None if commands.is_empty() => return Err(CmdlineError::Empty),
        None => {
            return Err(unexpected_at(
                col.max(1),
                "a command after '|'",
                "end of line",
            ));
        }
    }
    Ok(CmdletLine { commands })
}

/// Parses a script for `--script FILE`: one cmdlet line per line, skipping blank lines and
/// lines starting with `#`.
///
/// A command continues on the next line, as in PowerShell, after a line ending with a
/// backtick, `|` or `,`, before a line starting with `|`, and while an `@{...}`, `@(...)` or
/// quoted string is open (hashtable entries may then be separated by new lines, and `#`
/// comments may follow them). Errors name the line and column where they are.
pub fn parse_script(text: &str) -> Result<Vec<CmdletLine>, CmdlineError> {
    if text.len() > MAX_SCRIPT_LEN {
        return Err(CmdlineError::ScriptTooLong {
            len: text.len(),
            max: MAX_SCRIPT_LEN,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let mut logical = Logical::default();
        logical.push(lines[i], i);
        i += 1;
        loop {
            let more = i < lines.len();
            let end = logical.text.trim_end();
            if more && end.ends_with('`') {
                let keep = end.len() - 1;
                logical.truncate(keep);
                logical.push_sep(' ');
            } else if more
                && ((end.ends_with('|') && !end.ends_with("||"))
                    || end.ends_with(',')
                    || lines[i].trim_start().starts_with('|'))
            {
                logical.push_sep(' ');
            } else {
                match parse_line(&logical.text) {
                    Ok(line) => {
                        out.push(line);
                        break;
                    }
                    Err(CmdlineError::Unterminated { .. })
                        if more && logical.starts.len() < MAX_CONTINUATION_LINES =>
                    {
                        logical.push_sep('\n')
                    }
                    Err(e) => return Err(logical.locate(e)),
                }
            }
            logical.push(lines[i], i);
            i += 1;
        }
    }
    Ok(out)
}

/// Physical lines joined into one command line, remembering where each started.
#[derive(Default)]
struct Logical {
    text: String,
    /// `text.chars().count()`.
    chars: usize,
    /// (character offset in `text`, line index) of each physical line.
    starts: Vec<(usize, usize)>,
}

impl Logical {
    fn push(&mut self, line: &str, index: usize) {
        self.starts.push((self.chars, index));
        self.text.push_str(line);
        self.chars += line.chars().count();
    }

    fn push_sep(&mut self, sep: char) {
        self.text.push(sep);
        self.chars += 1;
    }

    fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
        self.chars = self.text.chars().count();
    }

    /// The error at its physical line and column.
    fn locate(&self, mut e: CmdlineError) -> CmdlineError {
        let first = self.starts.first().map_or(0, |s| s.1);
        let Some(column) = e.column() else {
            return CmdlineError::AtLine {
                line: first + 1,
                error: Box::new(e),
            };
        };
        let at = column.saturating_sub(1);
        let (offset, index) = self
            .starts
            .iter()
            .rev()
            .find(|(offset, _)| *offset <= at)
            .copied()
            .unwrap_or((0, first));
        e.set_column(at - offset + 1);
        CmdlineError::AtLine {
            line: index + 1,
            error: Box::new(e),
        }
    }
}

/// Reads one argv word as a value (see [`parse_args`]).
fn word_value(word: &[char], offset: usize) -> Result<Value, CmdlineError> {
    let Some(&first) = word.first() else {
        return Ok(Value::Str(String::new()));
    };
    let has_ws = word.iter().any(|c| c.is_whitespace());
    let syntax = matches!(first, '@' | '$' | '(' | '{' | '[')
        || is_single_quote(first)
        || is_double_quote(first)
        || (!has_ws && word.contains(&','));
    if syntax {
        let mut p = Parser::new(word, offset);
        let v = p.expression(0)?;
        p.skip_ws();
        p.expect_end("end of the argument")?;
        return Ok(v);
    }
    let text: String = word.iter().collect();
    if !has_ws && let Some(n) = parse_number(&text) {
        return Ok(n);
    }
    Ok(Value::Str(text))
}

fn unexpected_at(column: usize, expected: &'static str, found: &str) -> CmdlineError {
    CmdlineError::Unexpected {
        column,
        expected,
        found: found.to_owned(),
    }
}

fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}')
}

fn is_double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201c}' | '\u{201d}' | '\u{201e}')
}

fn is_param_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '?'
}

fn is_param_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '?' || c == '-'
}

/// `-` and the dashes PowerShell accepts in its place (en dash, em dash, horizontal bar),
/// which text pasted from documents often carries.
const DASHES: [char; 4] = ['-', '\u{2013}', '\u{2014}', '\u{2015}'];

fn is_param_start(chars: &[char], pos: usize) -> bool {
    chars.get(pos).is_some_and(|c| DASHES.contains(c))
        && chars.get(pos + 1).is_some_and(|&c| is_param_name_start(c))
}

fn is_known_switch(name: &str) -> bool {
    KNOWN_SWITCHES.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Characters that end a bare word.
fn is_terminator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '|' | ';' | '(' | ')' | '{' | '}')
}

fn describe(c: Option<char>) -> String {
    match c {
        None => "end of line".to_owned(),
        Some(c) => format!("{c:?}"),
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    /// Column offset of `chars[0]` (0-based) within the whole line.
    base: usize,
}

impl<'a> Parser<'a> {
    fn new(chars: &'a [char], base: usize) -> Self {
        Parser {
            chars,
            pos: 0,
            base,
        }
    }

    fn col(&self) -> usize {
        self.base + self.pos + 1
    }

    fn col_at(&self, pos: usize) -> usize {
        self.base + pos + 1
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Skips whitespace on the current line (a newline ends a statement).
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() && c != '\n') {
            self.pos += 1;
        }
    }

    /// Inside `@(...)` and `@{...}`: skips whitespace, newlines and `#` comments; true when
    /// a newline was crossed (it separates entries like `;`).
    fn skip_ws_nl(&mut self) -> bool {
        let mut newline = false;
        loop {
            match self.peek() {
                Some('\n') => {
                    newline = true;
                    self.pos += 1;
                }
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => return newline,
            }
        }
    }

    fn unexpected(&self, expected: &'static str) -> CmdlineError {
        unexpected_at(self.col(), expected, &describe(self.peek()))
    }

    fn not_allowed(&self, pos: usize, construct: impl Into<String>) -> CmdlineError {
        CmdlineError::NotAllowed {
            column: self.col_at(pos),
            construct: construct.into(),
        }
    }

    fn expect_end(&self, expected: &'static str) -> Result<(), CmdlineError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Skips whitespace; true when at the end of the line or at a `#` comment.
    fn at_line_end(&mut self) -> bool {
        self.skip_ws();
        if self.peek() == Some('#') {
            self.pos = self.chars.len();
        }
        self.at_end()
    }

    fn line(&mut self) -> Result<CmdletLine, CmdlineError> {
        let mut commands = Vec::new();
        loop {
            if self.at_line_end() {
                return Err(if commands.is_empty() {
                    CmdlineError::Empty
                } else {
                    self.unexpected("a command after '|'")
                });
            }
            commands.push(self.command()?);
            // `command` stops at the end of the line or at a `|`.
            if self.at_end() {
                return Ok(CmdletLine { commands });
            }
            if self.peek_at(1) == Some('|') {
                return Err(self.not_allowed(self.pos, "the '||' operator"));
            }
            self.pos += 1;
        }
    }

    fn command(&mut self) -> Result<ParsedCommand, CmdlineError> {
        let name = self.command_name()?;
        let mut parameters = Vec::new();
        loop {
            if self.at_line_end() || self.peek() == Some('|') {
                return Ok(ParsedCommand { name, parameters });
            }
            if is_param_start(self.chars, self.pos) {
                parameters.push(self.parameter()?);
            } else {
                let value = self.expression(0)?;
                parameters.push(ParsedParameter {
                    name: None,
                    value: Some(value),
                });
            }
        }
    }

    fn command_name(&mut self) -> Result<String, CmdlineError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('&') => return Err(self.not_allowed(start, "the call operator '&'")),
            Some('.') if self.peek_at(1).is_none_or(char::is_whitespace) => {
                return Err(self.not_allowed(start, "dot-sourcing"));
            }
            Some(c) if is_single_quote(c) || is_double_quote(c) || c == '@' => {
                let v = self.primary(0)?;
                return Err(CmdlineError::BadCommandName {
                    column: self.col_at(start),
                    name: match v {
                        Value::Str(s) => s,
                        _ => self.chars[start..self.pos].iter().collect(),
                    },
                });
            }
            _ => {}
        }
        if self.peek().is_some_and(|c| !is_terminator(c)) {
            self.script_check(start)?;
        }
        let (name, _) = self.bare_word()?;
        let mut it = name.chars();
        let valid = it.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && it.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '\\' | ':'));
        if !valid {
            return Err(CmdlineError::BadCommandName {
                column: self.col_at(start),
                name,
            });
        }
        Ok(name)
    }

    /// Reads `-Name` or `-Name:`; true when a colon follows the name.
    fn parameter_name(&mut self) -> Result<(String, bool), CmdlineError> {
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(is_param_name_char) {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        match self.peek() {
            Some(':') => {
                self.pos += 1;
                Ok((name, true))
            }
            None => Ok((name, false)),
            Some(c) if c.is_whitespace() || c == '|' => Ok((name, false)),
            Some(_) => Err(self.unexpected("a parameter name")),
        }
    }

    fn parameter(&mut self) -> Result<ParsedParameter, CmdlineError> {
        let start = self.pos;
        let (name, colon) = self.parameter_name()?;
        if colon {
            if self.peek().is_none_or(char::is_whitespace)
                && (self.at_line_end()
                    || self.peek() == Some('|')
                    || is_param_start(self.chars, self.pos))
            {
                return Err(CmdlineError::MissingValue {
                    column: self.col_at(start),
                    name,
                });
            }
            let value = self.expression(0)?;
            return Ok(ParsedParameter {
                name: Some(name),
                value: Some(value),
            });
        }
        if self.at_line_end()
            || self.peek() == Some('|')
            || is_param_start(self.chars, self.pos)
            || is_known_switch(&name)
        {
            return Ok(ParsedParameter {
                name: Some(name),
                value: None,
            });
        }
        let value = self.expression(0)?;
        Ok(ParsedParameter {
            name: Some(name),
            value: Some(value),
        })
    }

    /// A value, or several joined by commas into an array.
    fn expression(&mut self, depth: usize) -> Result<Value, CmdlineError> {
        let start = self.pos;
        let first = self.primary(depth + 1)?;
        let save = self.pos;
        self.skip_ws();
        if self.peek() != Some(',') {
            self.pos = save;
            return Ok(first);
        }
        if depth >= MAX_DEPTH {
            return Err(CmdlineError::TooDeep {
                column: self.col_at(start),
                max: MAX_DEPTH,
            });
        }
        let mut items = vec![first];
        while self.peek() == Some(',') {
            self.pos += 1;
            self.skip_ws_nl();
            if self
                .peek()
                .is_none_or(|c| matches!(c, ',' | '|' | ';' | ')' | '}' | '#'))
            {
                return Err(self.unexpected("a value after ','"));
            }
            items.push(self.primary(depth + 1)?);
            let save = self.pos;
            self.skip_ws();
            if self.peek() != Some(',') {
                self.pos = save;
            }
        }
        Ok(array(items))
    }

    /// Refuses the script constructs that can start at `pos`.
    fn script_check(&self, pos: usize) -> Result<(), CmdlineError> {
        let c = self.chars.get(pos).copied();
        let next = self.chars.get(pos + 1).copied();
        let construct = match c {
            Some('$') => match next {
                Some('(') => "a subexpression '$(...)'".to_owned(),
                Some('{') => "a braced variable '${...}'".to_owned(),
                Some(n) if n.is_alphanumeric() || matches!(n, '_' | '?' | '^' | ':') => {
                    let name: String = self.chars[pos + 1..]
                        .iter()
                        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '?' | '^'))
                        .take(64)
                        .collect();
                    if matches!(
                        name.to_ascii_lowercase().as_str(),
                        "true" | "false" | "null"
                    ) {
                        return Ok(());
                    }
                    format!("the variable '${name}' (only $true, $false and $null are)")
                }
                _ => return Ok(()),
            },
            Some('@') => match next {
                Some(n) if is_single_quote(n) || is_double_quote(n) => "a here-string".to_owned(),
                Some(n) if n.is_alphanumeric() || n == '_' => "splatting".to_owned(),
                _ => return Ok(()),
            },
            Some('\n') => "a second statement on a new line".to_owned(),
            Some('(') => "a parenthesised expression".to_owned(),
            Some('{') => "a script block".to_owned(),
            Some(';') => "a statement separator ';'".to_owned(),
            Some('&') => "the '&' operator".to_owned(),
            Some('>' | '<') => "redirection".to_owned(),
            Some('[') => "a type literal or cast".to_owned(),
            _ => return Ok(()),
        };
        Err(self.not_allowed(pos, construct))
    }

    /// One value: a literal, string, array or hashtable. `depth` counts the containers around it.
    fn primary(&mut self, depth: usize) -> Result<Value, CmdlineError> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.unexpected("a value"));
        };
        self.script_check(start)?;
        let value = match c {
            c if is_single_quote(c) => Value::Str(self.single_quoted()?),
            c if is_double_quote(c) => Value::Str(self.double_quoted()?),
            '@' if self.peek_at(1) == Some('{') => {
                if depth > MAX_DEPTH {
                    return Err(CmdlineError::TooDeep {
                        column: self.col(),
                        max: MAX_DEPTH,
                    });
                }
                self.hashtable_literal(depth)?
            }
            '@' if self.peek_at(1) == Some('(') => {
                if depth > MAX_DEPTH {
                    return Err(CmdlineError::TooDeep {
                        column: self.col(),
                        max: MAX_DEPTH,
                    });
                }
                self.array_literal(depth)?
            }
            '$' => {
                let word: String = self.chars[start + 1..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .take(8)
                    .collect();
                let v = match word.to_ascii_lowercase().as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Nil,
                    "" => return self.bare_value(),
                    _ => return Err(self.not_allowed(start, format!("the variable '${word}'"))),
                };
                self.pos += 1 + word.chars().count();
                if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return Err(self.not_allowed(start, "a variable"));
                }
                v
            }
            ')' | '}' | ',' | '|' | '=' => return Err(self.unexpected("a value")),
            _ => return self.bare_value(),
        };
        self.after_token()?;
        Ok(value)
    }

    /// After a string, `$true` or a container, the token must end.
    fn after_token(&self) -> Result<(), CmdlineError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_terminator(c) => Ok(()),
            Some(_) => Err(self.unexpected("whitespace, ',' or '|' after the value")),
        }
    }

    fn bare_value(&mut self) -> Result<Value, CmdlineError> {
        let (text, escaped) = self.bare_word()?;
        if !escaped && let Some(n) = parse_number(&text) {
            return Ok(n);
        }
        Ok(Value::Str(text))
    }

    /// A bare word, with backtick escapes; true when it held an escape.
    fn bare_word(&mut self) -> Result<(String, bool), CmdlineError> {
        let mut out = String::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if is_terminator(c) {
                break;
            }
            match c {
                '`' => {
                    escaped = true;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.unexpected("a character after the escape '`'"));
                    };
                    self.pos += 1;
                    out.push(escape_char(e));
                    continue;
                }
                c if is_single_quote(c) || is_double_quote(c) => {
                    return Err(self.unexpected("the end of the word (quote the whole value)"));
                }
                '$' if self.peek_at(1).is_some_and(|n| !is_terminator(n)) => {
                    self.script_check(self.pos)?;
                }
                '&' | '<' | '>' => self.script_check(self.pos)?,
                _ => {}
            }
            out.push(c);
            self.pos += 1;
        }
        if out.is_empty() {
            return Err(self.unexpected("a value"));
        }
        Ok((out, escaped))
    }

    fn single_quoted(&mut self) -> Result<String, CmdlineError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(CmdlineError::Unterminated {
                        column: self.col_at(start),
                        what: "string",
                    });
                }
                Some(c) if is_single_quote(c) => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if is_single_quote(n) => {
                            out.push(n);
                            self.pos += 1;
                        }
                        _ => return Ok(out),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, CmdlineError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(CmdlineError::Unterminated {
                    column: self.col_at(start),
                    what: "string",
                });
            };
            match c {
                c if is_double_quote(c) => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if is_double_quote(n) => {
                            out.push(n);
                            self.pos += 1;
                        }
                        _ => return Ok(out),
                    }
                }
                '`' => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(CmdlineError::Unterminated {
                            column: self.col_at(start),
                            what: "string",
                        });
                    };
                    if e == 'u' && self.peek_at(1) == Some('{') {
                        out.push(self.unicode_escape()?);
                    } else {
                        out.push(escape_char(e));
                        self.pos += 1;
                    }
                }
                '$' => {
                    let next = self.peek_at(1);
                    if next.is_some_and(|n| {
                        n.is_alphanumeric() || matches!(n, '_' | '{' | '(' | '?' | '^' | ':')
                    }) {
                        return Err(self.not_allowed(
                            self.pos,
                            "expansion of '$' in a double-quoted string (use single quotes or escape it as `$)",
                        ));
                    }
                    out.push('$');
                    self.pos += 1;
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `` `u{XXXX} `` inside a double-quoted string; `pos` is at the `u`.
    fn unicode_escape(&mut self) -> Result<char, CmdlineError> {
        let start = self.pos;
        self.pos += 2;
        let mut code: u32 = 0;
        let mut digits = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
            code = code.saturating_mul(16).saturating_add(d);
            digits += 1;
            self.pos += 1;
        }
        if self.peek() != Some('}') || digits == 0 || digits > 6 {
            return Err(unexpected_at(
                self.col_at(start),
                "a `u{hex} escape",
                &describe(self.peek()),
            ));
        }
        self.pos += 1;
        char::from_u32(code).ok_or_else(|| {
            unexpected_at(
                self.col_at(start),
                "a Unicode scalar value",
                &format!("U+{code:X}"),
            )
        })
    }

    fn array_literal(&mut self, depth: usize) -> Result<Value, CmdlineError> {
        let start = self.pos;
        self.pos += 2;
        let mut items = Vec::new();
        loop {
            self.skip_ws_nl();
            match self.peek() {
                None => {
                    return Err(CmdlineError::Unterminated {
                        column: self.col_at(start),
                        what: "array '@(...)'",
                    });
                }
                Some(')') => {
                    self.pos += 1;
                    break;
                }
                Some(';') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            items.push(self.primary(depth + 1)?);
            let newline = self.skip_ws_nl();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    self.skip_ws_nl();
                    if matches!(self.peek(), Some(')' | ',' | ';')) {
                        return Err(self.unexpected("a value after ','"));
                    }
                }
                Some(';' | ')') => {}
                None => {
                    return Err(CmdlineError::Unterminated {
                        column: self.col_at(start),
                        what: "array '@(...)'",
                    });
                }
                Some(_) if newline => {}
                Some(_) => return Err(self.unexpected("',' or ')'")),
            }
        }
        Ok(array(items))
    }

    fn hashtable_literal(&mut self, depth: usize) -> Result<Value, CmdlineError> {
        let start = self.pos;
        self.pos += 2;
        let unterminated = |p: &Self| CmdlineError::Unterminated {
            column: p.col_at(start),
            what: "hashtable '@{...}'",
        };
        let mut entries = Vec::new();
        loop {
            self.skip_ws_nl();
            match self.peek() {
                None => return Err(unterminated(self)),
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                Some(';') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let key = self.hashtable_key()?;
            self.skip_ws();
            if self.peek() != Some('=') {
                return Err(self.unexpected("'=' after the hashtable key"));
            }
            self.pos += 1;
            self.skip_ws_nl();
            match self.peek() {
                None => return Err(unterminated(self)),
                Some(';' | '}') => return Err(self.unexpected("a value after '='")),
                Some(_) => {}
            }
            let value = self.expression(depth)?;
            entries.push((key, value));
            let newline = self.skip_ws_nl();
            match self.peek() {
                Some(';' | '}') => {}
                None => return Err(unterminated(self)),
                Some(_) if newline => {}
                Some(_) => return Err(self.unexpected("';', a new line or '}'")),
            }
        }
        Ok(hashtable(entries))
    }

    fn hashtable_key(&mut self) -> Result<Value, CmdlineError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_single_quote(c) => return Ok(Value::Str(self.single_quoted()?)),
            Some(c) if is_double_quote(c) => return Ok(Value::Str(self.double_quoted()?)),
            _ => {}
        }
        self.script_check(start)?;
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if is_terminator(c) || c == '=' {
                break;
            }
            if c == '$'
                || c == '`'
                || is_single_quote(c)
                || is_double_quote(c)
                || matches!(c, '&' | '<' | '>' | '@')
            {
                return Err(self.unexpected("a hashtable key (a name, number or quoted string)"));
            }
            key.push(c);
            self.pos += 1;
        }
        if key.is_empty() {
            return Err(self.unexpected("a hashtable key"));
        }
        Ok(parse_number(&key).unwrap_or(Value::Str(key)))
    }
}

/// The character a backtick escape stands for.
fn escape_char(c: char) -> char {
    match c {
        '0' => '\0',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'e' => '\u{1b}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        other => other,
    }
}

/// Reads a PowerShell numeric literal: `Int32` when it fits, then `Int64`, then `Double`.
fn parse_number(text: &str) -> Option<Value> {
    let (neg, body) = match (text.strip_prefix(DASHES), text.strip_prefix('+')) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, text),
    };
    if body.is_empty() || !body.is_ascii() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut multiplier: i64 = 1;
    for (suffix, m) in [
        ("kb", 1i64 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("tb", 1 << 40),
        ("pb", 1 << 50),
    ] {
        if let Some(r) = rest.strip_suffix(suffix) {
            rest = r;
            multiplier = m;
            break;
        }
    }
    let hex = rest.starts_with("0x");
    let mut long = false;
    if let Some(r) = rest.strip_suffix('l') {
        rest = r;
        long = true;
    }
    if hex {
        let digits = &rest[2..];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = i64::try_from(u64::from_str_radix(digits, 16).ok()?).ok()?;
        let v = v.checked_mul(multiplier)?;
        return Some(int_value(if neg { -v } else { v }, long));
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    let int_digits = count_digits(&bytes[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    let mut is_real = false;
    if bytes.get(i) == Some(&b'.') {
        is_real = true;
        i += 1;
        frac_digits = count_digits(&bytes[i..]);
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if bytes.get(i) == Some(&b'e') {
        is_real = true;
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = count_digits(&bytes[i..]);
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != bytes.len() || (is_real && long) {
        return None;
    }
    let signed = if neg {
        format!("-{rest}")
    } else {
        rest.to_owned()
    };
    if !is_real
        && let Ok(v) = signed.parse::<i64>()
        && let Some(v) = v.checked_mul(multiplier)
    {
        return Some(int_value(v, long));
    }
    if long {
        return None;
    }
    let v = signed.parse::<f64>().ok()? * multiplier as f64;
    v.is_finite().then_some(Value::F64(v))
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

fn int_value(v: i64, long: bool) -> Value {
    match i32::try_from(v) {
        Ok(small) if !long => Value::I32(small),
        _ => Value::I64(v),
    }
}

impl fmt::Display for CmdletLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cmd) in self.commands.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ParsedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.parameters {
            f.write_str(" ")?;
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ParsedParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.value) {
            (Some(name), None) => write!(f, "-{name}"),
            (Some(name), Some(v)) if matches!(v, Value::Bool(_)) || is_known_switch(name) => {
                write!(f, "-{name}:")?;
                write_value(f, v, true)
            }
            (Some(name), Some(v)) => {
                write!(f, "-{name} ")?;
                write_value(f, v, true)
            }
            (None, Some(v)) => write_value(f, v, true),
            (None, None) => Ok(()),
        }
    }
}

/// True when `s` can be written as a bare word and reads back as the same string.
fn is_safe_bare(s: &str, in_key: bool) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok_char = |c: char| {
        c.is_alphanumeric()
            || matches!(
                c,
                '_' | '-' | '.' | '@' | ':' | '\\' | '/' | '*' | '?' | '+' | '~' | '%' | '!' | '^'
            )
            || (!in_key && c == '=')
    };
    (first.is_alphanumeric() || matches!(first, '_' | '*' | '.' | '\\' | '/'))
        && ok_char(first)
        && chars.all(ok_char)
        && parse_number(s).is_none()
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        if is_single_quote(c) {
            write!(f, "{c}")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("'")
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str, in_key: bool) -> fmt::Result {
    if is_safe_bare(s, in_key) {
        f.write_str(s)
    } else {
        write_quoted(f, s)
    }
}

fn write_value(f: &mut fmt::Formatter<'_>, v: &Value, top: bool) -> fmt::Result {
    match v {
        Value::Nil => f.write_str("$null"),
        Value::Bool(true) => f.write_str("$true"),
        Value::Bool(false) => f.write_str("$false"),
        Value::Str(s) => write_str(f, s, false),
        Value::I32(n) => write!(f, "{n}"),
        Value::I64(n) if i32::try_from(*n).is_ok() => write!(f, "{n}L"),
        Value::I64(n) => write!(f, "{n}"),
        Value::U8(n) => write!(f, "{n}"),
        Value::I8(n) => write!(f, "{n}"),
        Value::U16(n) => write!(f, "{n}"),
        Value::I16(n) => write!(f, "{n}"),
        Value::U32(n) => write!(f, "{n}"),
        Value::U64(n) => write!(f, "{n}"),
        Value::F64(x) if x.is_finite() => write!(f, "{x:?}"),
        Value::F32(x) if x.is_finite() => write!(f, "{:?}", f64::from(*x)),
        Value::Object(obj) => match &obj.base {
            ObjectBase::List(_, items) => {
                let flat = top && items.len() > 1 && items.iter().all(|i| !is_container(i));
                if !flat {
                    f.write_str("@(")?;
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(if flat { "," } else { ", " })?;
                    }
                    write_value(f, item, false)?;
                }
                if !flat {
                    f.write_str(")")?;
                }
                Ok(())
            }
            ObjectBase::Dict(entries) => {
                f.write_str("@{")?;
                for (i, (k, val)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    match k {
                        Value::Str(s) => write_str(f, s, true)?,
                        other => write_value(f, other, false)?,
                    }
                    f.write_str("=")?;
                    write_value(f, val, true)?;
                }
                f.write_str("}")
            }
            _ => write_quoted(
                f,
                obj.to_string.as_deref().or(obj.type_name()).unwrap_or(""),
            ),
        },
        Value::Char(c) => write_quoted(
            f,
            &char::from_u32(u32::from(*c))
                .map(String::from)
                .unwrap_or_default(),
        ),
        Value::Guid(g) => write_quoted(f, &g.to_string()),
        Value::DateTime(s)
        | Value::Duration(s)
        | Value::Decimal(s)
        | Value::Uri(s)
        | Value::Version(s)
        | Value::Xml(s) => write_quoted(f, s),
        _ => f.write_str("$null"),
    }
}

fn is_container(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| matches!(o.base, ObjectBase::List(..) | ObjectBase::Dict(_)))
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
    fn numbers() {
        assert_eq!(parse_number("5"), Some(Value::I32(5)));
        assert_eq!(parse_number("-5"), Some(Value::I32(-5)));
        assert_eq!(parse_number("5000000000"), Some(Value::I64(5_000_000_000)));
        assert_eq!(parse_number("5L"), Some(Value::I64(5)));
        assert_eq!(parse_number("1.5"), Some(Value::F64(1.5)));
        assert_eq!(parse_number("1e3"), Some(Value::F64(1000.0)));
        assert_eq!(parse_number("50GB"), Some(Value::I64(50 << 30)));
        assert_eq!(parse_number("1kb"), Some(Value::I32(1024)));
        assert_eq!(parse_number("0x1F"), Some(Value::I32(31)));
        assert_eq!(parse_number("99999999999999999999"), Some(Value::F64(1e20)));
        for s in [
            "", "-", ".", "1.5.3", "inf", "nan", "1e", "0x", "5a", "1e999", "1.5L", "--5",
        ] {
            assert_eq!(parse_number(s), None, "{s}");
        }
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
