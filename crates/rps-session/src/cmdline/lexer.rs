//! Characters and tokens: the character classes, the cursor over a line, and the lexing of
//! bare words, quoted strings and escapes.

use super::error::unexpected_at;
use super::{CmdlineError, KNOWN_SWITCHES};

pub(super) fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}')
}

pub(super) fn is_double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201c}' | '\u{201d}' | '\u{201e}')
}

fn is_param_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '?'
}

pub(super) fn is_param_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '?' || c == '-'
}

/// `-` and the dashes PowerShell accepts in its place (en dash, em dash, horizontal bar),
/// which text pasted from documents often carries.
pub(super) const DASHES: [char; 4] = ['-', '\u{2013}', '\u{2014}', '\u{2015}'];

pub(super) fn is_param_start(chars: &[char], pos: usize) -> bool {
    chars.get(pos).is_some_and(|c| DASHES.contains(c))
        && chars.get(pos + 1).is_some_and(|&c| is_param_name_start(c))
}

pub(super) fn is_known_switch(name: &str) -> bool {
    KNOWN_SWITCHES.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Characters that end a bare word.
pub(super) fn is_terminator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '|' | ';' | '(' | ')' | '{' | '}')
}

fn describe(c: Option<char>) -> String {
    match c {
        None => "end of line".to_owned(),
        Some(c) => format!("{c:?}"),
    }
}

pub(super) struct Parser<'a> {
    pub(super) chars: &'a [char],
    pub(super) pos: usize,
    /// Column offset of `chars[0]` (0-based) within the whole line.
    pub(super) base: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(chars: &'a [char], base: usize) -> Self {
        Parser {
            chars,
            pos: 0,
            base,
        }
    }

    pub(super) fn col(&self) -> usize {
        self.base + self.pos + 1
    }

    pub(super) fn col_at(&self, pos: usize) -> usize {
        self.base + pos + 1
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Skips whitespace on the current line (a newline ends a statement).
    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() && c != '\n') {
            self.pos += 1;
        }
    }

    /// Inside `@(...)` and `@{...}`: skips whitespace, newlines and `#` comments; true when
    /// a newline was crossed (it separates entries like `;`).
    pub(super) fn skip_ws_nl(&mut self) -> bool {
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

    pub(super) fn unexpected(&self, expected: &'static str) -> CmdlineError {
        unexpected_at(self.col(), expected, &describe(self.peek()))
    }

    pub(super) fn not_allowed(&self, pos: usize, construct: impl Into<String>) -> CmdlineError {
        CmdlineError::NotAllowed {
            column: self.col_at(pos),
            construct: construct.into(),
        }
    }

    pub(super) fn expect_end(&self, expected: &'static str) -> Result<(), CmdlineError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Skips whitespace; true when at the end of the line or at a `#` comment.
    pub(super) fn at_line_end(&mut self) -> bool {
        self.skip_ws();
        if self.peek() == Some('#') {
            self.pos = self.chars.len();
        }
        self.at_end()
    }

    /// A bare word, with backtick escapes; true when it held an escape.
    pub(super) fn bare_word(&mut self) -> Result<(String, bool), CmdlineError> {
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

    pub(super) fn single_quoted(&mut self) -> Result<String, CmdlineError> {
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

    pub(super) fn double_quoted(&mut self) -> Result<String, CmdlineError> {
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
