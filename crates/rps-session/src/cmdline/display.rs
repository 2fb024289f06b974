//! The [`Display`](fmt::Display) form of a cmdlet line: PowerShell text that parses back into
//! the same line.

use std::fmt;

use rps_psrp::clixml::{ObjectBase, Value};

use super::lexer::{is_known_switch, is_single_quote};
use super::value::parse_number;
use super::{CmdletLine, ParsedCommand, ParsedParameter};

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
