//! Comparing CLIXML values: the first difference, and the rules that are not byte equality.

use std::fmt;

use rps_psrp::clixml::{self, ObjectBase, Value};

pub(super) fn show<T: fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(absent)".to_owned(),
    }
}

/// A short, unambiguous rendering of a CLIXML value for a mismatch.
pub fn render_value(v: &Value) -> String {
    let mut s = clixml::to_string(v);
    if s.len() > 240 {
        let mut cut = 240;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The first difference between two CLIXML values: `(path suffix, expected, found)`.
pub fn diff_values(expected: &Value, found: &Value) -> Option<(String, String, String)> {
    let mut path = String::new();
    diff_into(&mut path, expected, found)
}

fn diff_into(path: &mut String, e: &Value, f: &Value) -> Option<(String, String, String)> {
    let (Value::Object(eo), Value::Object(fo)) = (e, f) else {
        if e == f {
            return None;
        }
        return Some((path.clone(), render_value(e), render_value(f)));
    };
    let at = path.len();
    let done = |path: &mut String, r| {
        path.truncate(at);
        r
    };
    // Enums: the value is what the peer reads; type names and ToString vary between
    // serializers (pypsrp writes the wrong type name for ApartmentState).
    if let (Some(a), Some(b)) = (enum_value(eo), enum_value(fo)) {
        if a == b {
            return None;
        }
        path.push_str(".<value>");
        let r = Some((path.clone(), a.to_string(), b.to_string()));
        return done(path, r);
    }
    let names = |o: &rps_psrp::clixml::Object| {
        o.type_names
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|n| strip_assembly_details(n))
            .collect::<Vec<_>>()
    };
    if names(eo) != names(fo) {
        path.push_str(".<TN>");
        let r = Some((
            path.clone(),
            format!("{:?}", eo.type_names.as_deref().unwrap_or_default()),
            format!("{:?}", fo.type_names.as_deref().unwrap_or_default()),
        ));
        return done(path, r);
    }
    if eo.to_string != fo.to_string {
        path.push_str(".<ToString>");
        let r = Some((path.clone(), show(&eo.to_string), show(&fo.to_string)));
        return done(path, r);
    }
    match (&eo.base, &fo.base) {
        (ObjectBase::None, ObjectBase::None) => {}
        (ObjectBase::Primitive(a), ObjectBase::Primitive(b)) => {
            path.push_str(".<value>");
            if let Some(r) = diff_into(path, a, b) {
                return done(path, Some(r));
            }
            path.truncate(at);
        }
        (ObjectBase::List(ka, a), ObjectBase::List(kb, b)) => {
            if ka != kb || a.len() != b.len() {
                path.push_str(".<items>");
                let r = Some((
                    path.clone(),
                    format!("{} of {} items", ka.tag(), a.len()),
                    format!("{} of {} items", kb.tag(), b.len()),
                ));
                return done(path, r);
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                path.push_str(&format!("[{i}]"));
                if let Some(r) = diff_into(path, x, y) {
                    return done(path, Some(r));
                }
                path.truncate(at);
            }
        }
        (ObjectBase::Dict(a), ObjectBase::Dict(b)) => {
            if a.len() != b.len() {
                path.push_str(".<entries>");
                let r = Some((
                    path.clone(),
                    format!("{} entries", a.len()),
                    format!("{} entries", b.len()),
                ));
                return done(path, r);
            }
            for (i, ((ka, va), (kb, vb))) in a.iter().zip(b).enumerate() {
                path.push_str(&format!("{{{i}}}.Key"));
                if let Some(r) = diff_into(path, ka, kb) {
                    return done(path, Some(r));
                }
                path.truncate(at);
                let key = ka.as_str().map_or_else(|| i.to_string(), str::to_owned);
                path.push_str(&format!("{{{key}}}"));
                if let Some(r) = diff_into(path, va, vb) {
                    return done(path, Some(r));
                }
                path.truncate(at);
            }
        }
        (a, b) => {
            path.push_str(".<base>");
            let kind = |b: &ObjectBase| match b {
                ObjectBase::None => "no base".to_owned(),
                ObjectBase::Primitive(v) => format!("primitive {}", render_value(v)),
                ObjectBase::List(k, _) => k.tag().to_owned(),
                ObjectBase::Dict(_) => "DCT".to_owned(),
                _ => "other".to_owned(),
            };
            let r = Some((path.clone(), kind(a), kind(b)));
            return done(path, r);
        }
    }
    for (label, ep, fp) in [
        ("", &eo.extended, &fo.extended),
        (".<Props>", &eo.adapted, &fo.adapted),
    ] {
        for p in ep {
            path.push_str(label);
            path.push('.');
            path.push_str(&p.name);
            // PowerShell matches property names without regard to case (pypsrp writes `CI`
            // where PowerShell writes `ci`).
            match fp.iter().find(|q| q.name.eq_ignore_ascii_case(&p.name)) {
                // PowerShell reads a missing property as null.
                None if p.value.is_nil() => {}
                Some(q) => {
                    if let Some(r) = diff_into(path, &p.value, &q.value) {
                        return done(path, Some(r));
                    }
                }
                None => {
                    let r = Some((path.clone(), render_value(&p.value), "(absent)".to_owned()));
                    return done(path, r);
                }
            }
            path.truncate(at);
        }
        if let Some(q) = fp
            .iter()
            .find(|q| !q.value.is_nil() && !ep.iter().any(|p| p.name.eq_ignore_ascii_case(&q.name)))
        {
            path.push_str(label);
            path.push('.');
            path.push_str(&q.name);
            let r = Some((path.clone(), "(absent)".to_owned(), render_value(&q.value)));
            return done(path, r);
        }
    }
    None
}

/// A type name without the assembly version, culture and public key token of its
/// (generic argument) types: `List`1[[PSObject, System.Management.Automation, Version=1.0.0.0,
/// ...]]` and the same with `Version=3.0.0.0` name the same type.
fn strip_assembly_details(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find(", ") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        if ["Version=", "Culture=", "PublicKeyToken="]
            .iter()
            .any(|k| after.starts_with(k))
        {
            let end = after.find([',', ']']).unwrap_or(after.len());
            rest = &after[end..];
        } else {
            out.push_str(", ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The integer of an enum object (type names include `System.Enum`).
fn enum_value(o: &rps_psrp::clixml::Object) -> Option<i64> {
    let is_enum = o
        .type_names
        .as_deref()
        .is_some_and(|t| t.iter().any(|n| n == "System.Enum"));
    match (&o.base, is_enum) {
        (ObjectBase::Primitive(v), true) => v.as_i64(),
        _ => None,
    }
}
