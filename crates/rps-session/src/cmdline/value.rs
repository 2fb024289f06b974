//! Values: the CLIXML form of arrays and hashtables, and PowerShell numeric literals.

use rps_psrp::clixml::{ListKind, Object, ObjectBase, Value};

use super::lexer::DASHES;

/// The type names PowerShell serializes an `object[]` with.
const ARRAY_TYPE_NAMES: [&str; 3] = ["System.Object[]", "System.Array", "System.Object"];
/// The type names PowerShell serializes a hashtable with.
const HASHTABLE_TYPE_NAMES: [&str; 2] = ["System.Collections.Hashtable", "System.Object"];

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

/// Reads a PowerShell numeric literal: `Int32` when it fits, then `Int64`, then `Double`.
pub(super) fn parse_number(text: &str) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
