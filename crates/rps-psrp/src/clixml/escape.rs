//! String escaping: the `_xHHHH_` form of [MS-PSRP] 2.2.5.3.2 and XML character escaping.
//!
//! PowerShell cannot put every UTF-16 string into XML: control characters are not allowed (or
//! not preserved: `\r` is normalised away by XML parsers) and lone surrogates cannot be encoded.
//! Such characters are written as `_xHHHH_`, `HHHH` being the UTF-16 code unit in hexadecimal.
//! An underscore that would otherwise be read as the start of such an escape is itself escaped
//! as `_x005F_`.
//!
//! What this module escapes when writing:
//! * C0 controls `U+0000..=U+001F`, `DEL` and the C1 controls `U+007F..=U+009F`;
//! * the non-characters `U+FFFE` and `U+FFFF`;
//! * characters outside the BMP, as their two surrogate code units (`😀` is
//!   `_xD83D__xDE00_`), as PowerShell does for every surrogate `char`;
//! * `_` when followed by `x` or `X` (a superset of the spec's "could be misread" rule that
//!   PowerShell and psrpcore both accept).
//!
//! What it accepts when reading: `_xHHHH_` (4 hex digits, either case) and the 8-digit
//! `_xHHHHHHHH_` form of `XmlConvert.DecodeName`. Surrogate escapes are paired; a lone
//! surrogate cannot live in a Rust `String` and becomes `U+FFFD` (or an error, see
//! [`Limits::lossy_surrogates`](super::Limits::lossy_surrogates)). Anything else that starts
//! with `_x` but is not a complete escape is kept as literal text.

use std::borrow::Cow;

/// Why an escaped string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEscape {
    /// The offending escape text.
    pub text: String,
}

fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Parses `_x` + `n` hex digits + `_` at `bytes[i..]`; returns the value.
fn escape_at(bytes: &[u8], i: usize, n: usize) -> Option<u32> {
    let end = i + 2 + n;
    if bytes.len() <= end || bytes[i + 1] != b'x' || bytes[end] != b'_' {
        return None;
    }
    let mut v = 0u32;
    for &b in &bytes[i + 2..end] {
        v = (v << 4) | hex_val(b)?;
    }
    Some(v)
}

/// Decodes `_xHHHH_` escapes. Borrows when there is nothing to decode.
pub(crate) fn decode(s: &str, lossy: bool) -> Result<Cow<'_, str>, BadEscape> {
    let bytes = s.as_bytes();
    let Some(first) = find_escape_start(bytes, 0) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = first;
    loop {
        // `i` is at a '_' followed by 'x'.
        let mut consumed = 0;
        let mut ch: Option<char> = None;
        if let Some(unit) = escape_at(bytes, i, 4) {
            consumed = 7;
            if (0xD800..0xDC00).contains(&unit) {
                // High surrogate: pair it with an escaped low surrogate right after.
                if let Some(low) =
                    escape_at(bytes, i + 7, 4).filter(|l| (0xDC00..0xE000).contains(l))
                {
                    let cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    ch = char::from_u32(cp);
                    consumed = 14;
                }
            } else {
                ch = char::from_u32(unit);
            }
            if ch.is_none() {
                if !lossy {
                    return Err(BadEscape {
                        text: s[i..i + consumed].to_owned(),
                    });
                }
                ch = Some('\u{FFFD}');
            }
        } else if let Some(c) = escape_at(bytes, i, 8).and_then(char::from_u32) {
            ch = Some(c);
            consumed = 11;
        }
        if let Some(c) = ch {
            out.push_str(&s[copied..i]);
            out.push(c);
            copied = i + consumed;
            i = copied;
        } else {
            i += 1;
        }
        match find_escape_start(bytes, i) {
            Some(next) => i = next,
            None => break,
        }
    }
    out.push_str(&s[copied..]);
    Ok(Cow::Owned(out))
}

fn find_escape_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        let at = i + memchr::memchr(b'_', &bytes[i..])?;
        if bytes.get(at + 1) == Some(&b'x') {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// Something that escaped text can be appended to.
pub(crate) trait Sink {
    fn put(&mut self, s: &str);
}

impl Sink for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Byte classes: 0 plain, 1 XML special, 2 control (escape), 3 needs a closer look.
const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 2;
        i += 1;
    }
    t[0x7F] = 2;
    t[b'<' as usize] = 1;
    t[b'>' as usize] = 1;
    t[b'&' as usize] = 1;
    t[b'"' as usize] = 1;
    t[b'_' as usize] = 3;
    t[0xC2] = 3; // C1 controls are C2 80..C2 9F
    t[0xEF] = 3; // U+FFFE / U+FFFF are EF BF BE / EF BF BF
    let mut j = 0xF0;
    while j < 0xF8 {
        t[j] = 3; // 4-byte sequences: outside the BMP
        j += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn put_unit<S: Sink + ?Sized>(out: &mut S, unit: u32) {
    let buf = [
        b'_',
        b'x',
        HEX[((unit >> 12) & 0xF) as usize],
        HEX[((unit >> 8) & 0xF) as usize],
        HEX[((unit >> 4) & 0xF) as usize],
        HEX[(unit & 0xF) as usize],
        b'_',
    ];
    // All bytes are ASCII.
    if let Ok(s) = std::str::from_utf8(&buf) {
        out.put(s);
    }
}

/// Writes `s` with `_xHHHH_` escapes (when `clixml` is set) and XML escapes for `<`, `>`, `&`
/// and `"`.
pub(crate) fn write_text<S: Sink + ?Sized>(out: &mut S, s: &str, clixml: bool) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    // Past a word that failed the fast scan, go byte by byte until its end.
    let mut bytewise_until = 0;
    while i < bytes.len() {
        if i >= bytewise_until {
            while let Some(chunk) = bytes.get(i..i + 8) {
                let w: &[u8; 8] = match chunk.try_into() {
                    Ok(w) => w,
                    Err(_) => break,
                };
                let any = CLASS[w[0] as usize]
                    | CLASS[w[1] as usize]
                    | CLASS[w[2] as usize]
                    | CLASS[w[3] as usize]
                    | CLASS[w[4] as usize]
                    | CLASS[w[5] as usize]
                    | CLASS[w[6] as usize]
                    | CLASS[w[7] as usize];
                if any != 0 {
                    break;
                }
                i += 8;
            }
            bytewise_until = i + 8;
            if i >= bytes.len() {
                break;
            }
        }
        let b = bytes[i];
        let class = CLASS[b as usize];
        if class == 0 {
            i += 1;
            continue;
        }
        let (rep, len): (Option<&str>, usize) = match class {
            1 => (
                Some(match b {
                    b'<' => "&lt;",
                    b'>' => "&gt;",
                    b'&' => "&amp;",
                    _ => "&quot;",
                }),
                1,
            ),
            2 if clixml => (None, 1),
            2 => (xml_control(b), 1),
            _ if !clixml => (None, 0),
            _ => match b {
                b'_' if matches!(bytes.get(i + 1), Some(b'x' | b'X')) => (Some("_x005F_"), 1),
                0xC2 if matches!(bytes.get(i + 1), Some(0x80..=0x9F)) => (None, 2),
                0xEF if bytes.get(i + 1) == Some(&0xBF)
                    && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
                {
                    (None, 3)
                }
                0xF0..=0xF7 => (None, 4),
                _ => (None, 0),
            },
        };
        if len == 0 || (rep.is_none() && class == 2 && !clixml) {
            i += 1;
            continue;
        }
        out.put(&s[copied..i]);
        match rep {
            Some(r) => out.put(r),
            None => {
                let ch = s[i..].chars().next().map_or(0, u32::from);
                if ch >= 0x10000 {
                    let v = ch - 0x10000;
                    put_unit(out, 0xD800 + (v >> 10));
                    put_unit(out, 0xDC00 + (v & 0x3FF));
                } else {
                    put_unit(out, ch);
                }
            }
        }
        i += len;
        copied = i;
    }
    out.put(&s[copied..]);
}

/// Raw text only: controls other than tab/newline cannot appear in XML 1.0 at all; they are
/// dropped from non-CLIXML text (dates, numbers: never present in practice).
fn xml_control(b: u8) -> Option<&'static str> {
    match b {
        b'\t' | b'\n' | 0x7F => None,
        b'\r' => Some("&#13;"),
        _ => Some(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut o = String::new();
        write_text(&mut o, s, true);
        o
    }

    #[test]
    fn encodes_controls_underscores_and_markup() {
        assert_eq!(enc("Order\nDetails"), "Order_x000A_Details");
        assert_eq!(enc("Order_Details"), "Order_Details");
        assert_eq!(enc("Order_x0020_"), "Order_x005F_x0020_");
        assert_eq!(enc("a<b>&\"c"), "a&lt;b&gt;&amp;&quot;c");
        assert_eq!(enc("\u{85}\u{FFFE}é"), "_x0085__xFFFE_é");
        assert_eq!(enc("😀"), "_xD83D__xDE00_");
        assert_eq!(
            enc("plain ascii text, long enough<"),
            "plain ascii text, long enough&lt;"
        );
        assert_eq!(enc("0123456789abcdef\u{1}"), "0123456789abcdef_x0001_");
        assert_eq!(
            enc("01234567_x89abcdef\u{7f}x"),
            "01234567_x005F_x89abcdef_x007F_x"
        );
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(
            decode("Order_x000A_Details", true).unwrap(),
            "Order\nDetails"
        );
        assert_eq!(decode("_x005F_x0020_", true).unwrap(), "_x0020_");
        assert_eq!(decode("_xD83D__xDE00_", true).unwrap(), "😀");
        assert_eq!(decode("_x0001F600_", true).unwrap(), "😀");
        assert_eq!(decode("_xD83D_", true).unwrap(), "\u{FFFD}");
        assert!(decode("_xD83D_", false).is_err());
        assert_eq!(
            decode("_x12_ _xZZZZ_ _x", true).unwrap(),
            "_x12_ _xZZZZ_ _x"
        );
        assert!(matches!(decode("plain", true).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn raw_text_mode_only_escapes_markup() {
        let mut o = String::new();
        write_text(&mut o, "a_x<\r", false);
        assert_eq!(o, "a_x&lt;&#13;");
    }
}
