//! Parsing a script: cmdlet lines spanning several physical lines.

use super::{CmdletLine, CmdlineError, MAX_CONTINUATION_LINES, MAX_SCRIPT_LEN, parse_line};

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
