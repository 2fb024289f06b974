//! Parsing the words of a command line after `--`.

use rps_psrp::clixml::Value;

use super::error::unexpected_at;
use super::lexer::{Parser, is_double_quote, is_known_switch, is_param_start, is_single_quote};
use super::value::parse_number;
use super::{CmdletLine, CmdlineError, MAX_LINE_LEN, ParsedCommand, ParsedParameter};

/// Parses the words of a command line after `--`, whose shell quoting is gone.
///
/// Each word is one token. A word of the form `-Name` or `-Name:value` is a parameter and a
/// lone `|` separates commands. Any other word is a value: a word starting with `@`, `$`, a
/// quote, `(`, `{` or `[`, or holding a comma and no whitespace, is read with the PowerShell
/// syntax of [`parse_line`] (so `a,b,c`, `@{k=1}`, `'x'` and `$false` work); other words are taken
/// literally (a number if they read as one, else a string), so `"john doe"` quoted for the
/// shell stays one string. Error columns count in the words joined by single spaces.
///
/// [`parse_line`]: super::parse_line
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
