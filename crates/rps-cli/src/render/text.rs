//! PowerShell-like text for values, and the choice of properties to show.

use rps_psrp::clixml::{Object, ObjectBase, Value};
use unicode_width::UnicodeWidthChar;

/// How many items of a list the text form shows before `...` (PowerShell's
/// `$FormatEnumerationLimit`).
pub const ENUMERATION_LIMIT: usize = 4;

/// How many properties a table shows for a type without defaults.
pub const DEFAULT_MAX_COLUMNS: usize = 6;

/// Properties PowerShell remoting adds to every object, left out of default selections.
pub const HIDDEN_PROPERTIES: &[&str] = &["PSComputerName", "RunspaceId", "PSShowComputerName"];

/// What a SecureString shows as: its type name, never its content.
pub const SECURE_STRING_TEXT: &str = "System.Security.SecureString";

/// Nesting below which objects show by type name only.
const MAX_TEXT_DEPTH: usize = 4;

/// Default table columns for known Exchange types, keyed by type name without the
/// `Deserialized.` prefix. They follow what Exchange's own format views show.
pub const DEFAULT_COLUMNS: &[(&str, &[&str])] = &[
    (
        "Microsoft.Exchange.Data.Directory.Management.Mailbox",
        &["Name", "Alias", "ServerName", "ProhibitSendQuota"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.ReducedRecipient",
        &["Name", "RecipientType"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.User",
        &["Name", "RecipientType"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.MailUser",
        &["Name", "RecipientType"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.MailContact",
        &["Name", "Alias", "RecipientType"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.DistributionGroup",
        &["Name", "DisplayName", "GroupType", "PrimarySmtpAddress"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.Management.CASMailbox",
        &[
            "Name",
            "ActiveSyncEnabled",
            "OWAEnabled",
            "PopEnabled",
            "ImapEnabled",
            "MapiEnabled",
        ],
    ),
    (
        "Microsoft.Exchange.Management.MapiTasks.Presentation.MailboxStatistics",
        &[
            "DisplayName",
            "ItemCount",
            "StorageLimitStatus",
            "LastLogonTime",
        ],
    ),
    (
        "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
        &["Identity", "User", "AccessRights", "IsInherited", "Deny"],
    ),
    (
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",
        &["Name", "DomainName", "DomainType", "Default"],
    ),
];

/// The object when `value` is a property bag shown as a record (a row, a list block), not as
/// a single text: enums, strings with extended members and collections are not records.
pub fn as_record(value: &Value) -> Option<&Object> {
    let obj = value.as_object()?;
    (matches!(obj.base, ObjectBase::None) && obj.properties().next().is_some()).then_some(obj)
}

/// Looks a property up like PowerShell: by exact name, then ignoring ASCII case.
pub fn property<'a>(obj: &'a Object, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.properties()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| &p.value)
    })
}

/// Property names in document order (adapted, then extended), each once.
pub fn property_names(obj: &Object) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for p in obj.properties() {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&p.name)) {
            names.push(&p.name);
        }
    }
    names
}

/// The default table columns of a known type, looked up through every type name.
pub fn type_defaults(obj: &Object) -> Option<&'static [&'static str]> {
    let names = obj.type_names.as_deref()?;
    names.iter().find_map(|tn| {
        let tn = tn.strip_prefix("Deserialized.").unwrap_or(tn);
        DEFAULT_COLUMNS
            .iter()
            .find(|(t, _)| *t == tn)
            .map(|(_, cols)| *cols)
    })
}

/// Matches `name` against a pattern with `*` and `?` wildcards, ignoring ASCII case.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Which properties to show for records like `first`.
///
/// An explicit `selection` wins (wildcards expand against `first`'s properties; plain names
/// are kept even when `first` lacks them). Otherwise, with `use_type_defaults`, a known
/// type's [`DEFAULT_COLUMNS`] when `first` has at least one of them; otherwise the first
/// `max` properties, without [`HIDDEN_PROPERTIES`].
pub fn select_columns(
    first: &Object,
    selection: Option<&[String]>,
    use_type_defaults: bool,
    max: usize,
) -> Vec<String> {
    if let Some(sel) = selection {
        let names = property_names(first);
        let mut out: Vec<String> = Vec::new();
        for s in sel {
            if s.contains(['*', '?']) {
                for n in names.iter().filter(|n| wildcard_match(s, n)) {
                    if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                        out.push((*n).to_owned());
                    }
                }
            } else if !out.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                out.push(s.clone());
            }
        }
        return out;
    }
    // A known type's defaults, unless the object carries none of them (a trimmed-down
    // property set, as `Get-EXOMailbox` returns).
    if use_type_defaults
        && let Some(cols) = type_defaults(first)
        && cols.iter().any(|c| property(first, c).is_some())
    {
        return cols.iter().map(|c| (*c).to_owned()).collect();
    }
    property_names(first)
        .into_iter()
        .filter(|n| !HIDDEN_PROPERTIES.iter().any(|h| h.eq_ignore_ascii_case(n)))
        .take(max)
        .map(str::to_owned)
        .collect()
}

/// True for integer and floating-point primitives (right-aligned in tables).
pub fn is_numeric(v: &Value) -> bool {
    matches!(
        v,
        Value::U8(_)
            | Value::I8(_)
            | Value::U16(_)
            | Value::I16(_)
            | Value::U32(_)
            | Value::I32(_)
            | Value::U64(_)
            | Value::I64(_)
            | Value::F32(_)
            | Value::F64(_)
            | Value::Decimal(_)
    )
}

/// The text PowerShell's formatter would show for `v` in a table cell or list entry.
pub fn display(v: &Value) -> String {
    text(v, 0, Style::Display)
}

/// The text for CSV: lists in full joined by `;`, dates as their ISO 8601 text, byte arrays
/// as base64.
pub fn plain(v: &Value) -> String {
    text(v, 0, Style::Plain)
}

/// Replaces control characters (which could drive a terminal) with spaces; keeps newlines
/// when `keep_newlines`.
pub fn sanitize(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !(keep_newlines && c == '\n') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Display width in terminal columns: the sum of the characters' widths (control characters
/// count as zero), the same measure [`truncate`] cuts by.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    UnicodeWidthChar::width(c).unwrap_or(0)
}

/// Cuts `s` to at most `max` columns, ending it with an ellipsis when cut.
pub fn truncate(s: &str, max: usize, ascii: bool) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    let ellipsis = if ascii { "..." } else { "…" };
    let budget = max.saturating_sub(width(ellipsis));
    let room = if max >= width(ellipsis) { budget } else { max };
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    if max >= width(ellipsis) {
        out.push_str(ellipsis);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Display,
    Plain,
}

fn text(v: &Value, depth: usize, style: Style) -> String {
    match v {
        Value::Nil => String::new(),
        Value::Str(s) => s.clone(),
        Value::Char(c) => char::from_u32(u32::from(*c))
            .unwrap_or('\u{fffd}')
            .to_string(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::DateTime(s) => match style {
            Style::Display => format_datetime(s),
            Style::Plain => s.clone(),
        },
        Value::Duration(s) => format_duration(s).unwrap_or_else(|| s.clone()),
        Value::U8(n) => n.to_string(),
        Value::I8(n) => n.to_string(),
        Value::U16(n) => n.to_string(),
        Value::I16(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::F32(x) => format_float(f64::from(*x)),
        Value::F64(x) => format_float(*x),
        Value::Decimal(s)
        | Value::Uri(s)
        | Value::Version(s)
        | Value::Xml(s)
        | Value::ScriptBlock(s) => s.clone(),
        Value::Bytes(b) => match style {
            Style::Display => enumerate(b.iter().map(u8::to_string), b.len(), Style::Display),
            Style::Plain => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
        },
        Value::Guid(g) => g.to_string(),
        Value::SecureString(_) => SECURE_STRING_TEXT.to_owned(),
        Value::Progress(p) => p.activity.clone(),
        Value::Object(o) => object_text(o, depth, style),
        _ => String::new(),
    }
}

fn object_text(o: &Object, depth: usize, style: Style) -> String {
    if depth >= MAX_TEXT_DEPTH {
        return o
            .to_string
            .clone()
            .or_else(|| o.type_name().map(str::to_owned))
            .unwrap_or_default();
    }
    match &o.base {
        ObjectBase::List(_, items) => enumerate(
            items.iter().map(|i| text(i, depth + 1, style)),
            items.len(),
            style,
        ),
        ObjectBase::Dict(entries) => enumerate(
            entries.iter().map(|(k, v)| match style {
                Style::Display => format!(
                    "[{}, {}]",
                    text(k, depth + 1, style),
                    text(v, depth + 1, style)
                ),
                Style::Plain => format!(
                    "{}={}",
                    text(k, depth + 1, style),
                    text(v, depth + 1, style)
                ),
            }),
            entries.len(),
            style,
        ),
        ObjectBase::Primitive(p) => o
            .to_string
            .clone()
            .unwrap_or_else(|| text(p, depth + 1, style)),
        _ => match &o.to_string {
            Some(s) if !s.is_empty() => s.clone(),
            _ => o.type_name().unwrap_or_default().to_owned(),
        },
    }
}

/// `{a, b, c, d...}` (display) or `a;b;c;d;e` (plain).
fn enumerate(items: impl Iterator<Item = String>, total: usize, style: Style) -> String {
    match style {
        Style::Display => {
            let shown: Vec<String> = items.take(ENUMERATION_LIMIT).collect();
            let more = if total > ENUMERATION_LIMIT { "..." } else { "" };
            format!("{{{}{more}}}", shown.join(", "))
        }
        Style::Plain => items.collect::<Vec<_>>().join(";"),
    }
}

fn format_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        x.to_string()
    }
}

/// `2018-04-12T10:42:08.6215765+00:00` shows as `2018-04-12 10:42:08Z`; other offsets are
/// kept (`...08+02:00`), fractions of a second dropped. Text that is not an xs:dateTime is
/// returned as is.
pub fn format_datetime(s: &str) -> String {
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return s.to_owned();
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let zone = match rest {
        "" => "",
        "Z" | "+00:00" | "-00:00" => "Z",
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => z,
        _ => return s.to_owned(),
    };
    format!("{} {}{zone}", &s[..10], &s[11..19])
}

/// An xs:duration (`P1DT2H3M4.5S`) as a TimeSpan shows (`1.02:03:04.5000000`); `None` when
/// the text is not a day-time duration.
pub fn format_duration(s: &str) -> Option<String> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut rest = rest.strip_prefix('P')?;
    let mut total: u64 = 0;
    let mut fraction = String::new();
    let mut in_time = false;
    let mut any = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            if in_time {
                return None;
            }
            in_time = true;
            rest = r;
            continue;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let mut frac = "";
        if let Some(r) = rest.strip_prefix('.') {
            let f = r.bytes().take_while(u8::is_ascii_digit).count();
            frac = &r[..f];
            rest = &r[f..];
        }
        let unit = rest.chars().next()?;
        rest = &rest[unit.len_utf8()..];
        let secs = match (unit, in_time) {
            ('D', false) => 86_400,
            ('H', true) => 3_600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => return None,
        };
        if !frac.is_empty() {
            if unit != 'S' {
                return None;
            }
            fraction = frac.to_owned();
        }
        total = total.checked_add(n.checked_mul(secs)?)?;
        any = true;
    }
    if !any {
        return None;
    }
    let (days, h, m, sec) = (
        total / 86_400,
        (total % 86_400) / 3_600,
        (total % 3_600) / 60,
        total % 60,
    );
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{sec:02}"));
    let ticks: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(7)
        .collect();
    if ticks.chars().any(|c| c != '0') {
        out.push('.');
        out.push_str(&ticks);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            format_duration("PT9.0269026S").as_deref(),
            Some("00:00:09.0269026")
        );
        assert_eq!(format_duration("P30D").as_deref(), Some("30.00:00:00"));
        assert_eq!(
            format_duration("P1DT2H3M4.5S").as_deref(),
            Some("1.02:03:04.5000000")
        );
        assert_eq!(format_duration("-PT90M").as_deref(), Some("-01:30:00"));
        assert_eq!(format_duration("PT0S").as_deref(), Some("00:00:00"));
        for bad in [
            "", "P", "PT", "P1Y", "PT1D", "P1H", "PT1.5M", "PTT1S", "P1", "x",
        ] {
            assert_eq!(format_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn datetimes() {
        assert_eq!(
            format_datetime("2018-04-12T10:42:08.6215765+00:00"),
            "2018-04-12 10:42:08Z"
        );
        assert_eq!(
            format_datetime("2018-04-12T10:42:08+02:00"),
            "2018-04-12 10:42:08+02:00"
        );
        assert_eq!(
            format_datetime("2018-04-12T10:42:08"),
            "2018-04-12 10:42:08"
        );
        assert_eq!(
            format_datetime("2018-04-12T10:42:08.5Z"),
            "2018-04-12 10:42:08Z"
        );
        assert_eq!(format_datetime("yesterday"), "yesterday");
        assert_eq!(
            format_datetime("2018-04-12T10:42:08junk"),
            "2018-04-12T10:42:08junk"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "Name"));
        assert!(wildcard_match("Prohibit*", "ProhibitSendQuota"));
        assert!(wildcard_match("*quota", "ProhibitSendQuota"));
        assert!(wildcard_match("n?me", "Name"));
        assert!(wildcard_match("*Send*", "ProhibitSendReceiveQuota"));
        assert!(!wildcard_match("Prohibit*", "Name"));
        assert!(!wildcard_match("n?me", "Names"));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("abcdef", 6, false), "abcdef");
        assert_eq!(truncate("abcdefg", 6, false), "abcde…");
        assert_eq!(truncate("abcdefg", 6, true), "abc...");
        assert_eq!(truncate("abcdefg", 2, true), "ab");
        assert_eq!(truncate("日本語テキスト", 7, false), "日本語…");
        assert_eq!(width(&truncate("日本語テキスト", 7, false)), 7);
    }
}
