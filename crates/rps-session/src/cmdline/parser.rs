//! The grammar: a pipeline of commands, their parameters and their values (literals,
//! arrays and hashtables).

use rps_psrp::clixml::Value;

use super::lexer::{
    Parser, is_double_quote, is_known_switch, is_param_name_char, is_param_start, is_single_quote,
    is_terminator,
};
use super::value::parse_number;
use super::{
    CmdletLine, CmdlineError, MAX_DEPTH, ParsedCommand, ParsedParameter, array, hashtable,
};

impl Parser<'_> {
    pub(super) fn line(&mut self) -> Result<CmdletLine, CmdlineError> {
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

    pub(super) fn command_name(&mut self) -> Result<String, CmdlineError> {
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
    pub(super) fn parameter_name(&mut self) -> Result<(String, bool), CmdlineError> {
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
    pub(super) fn expression(&mut self, depth: usize) -> Result<Value, CmdlineError> {
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
    pub(super) fn script_check(&self, pos: usize) -> Result<(), CmdlineError> {
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
