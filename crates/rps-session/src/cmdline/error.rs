//! Why a cmdlet line could not be parsed.

/// Why a cmdlet line could not be parsed. Columns count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdlineError {
    /// The line holds no command.
    #[error("empty command line")]
    Empty,
    /// The line is longer than [`MAX_LINE_LEN`](super::MAX_LINE_LEN).
    #[error("command line is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The line's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The script is longer than [`MAX_SCRIPT_LEN`](super::MAX_SCRIPT_LEN).
    #[error("script is {len} bytes long; the limit is {max}")]
    ScriptTooLong {
        /// The script's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Arrays or hashtables nest deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
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
    pub(super) fn set_column(&mut self, col: usize) {
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

pub(super) fn unexpected_at(column: usize, expected: &'static str, found: &str) -> CmdlineError {
    CmdlineError::Unexpected {
        column,
        expected,
        found: found.to_owned(),
    }
}
