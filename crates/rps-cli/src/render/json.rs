//! JSON and JSON Lines output.
//!
//! Values are written in the project's JSON form, [`rps_psrp::clixml::json`] (records become
//! objects of their properties in document order, enums their names, lists arrays, dates
//! their ISO 8601 text, SecureStrings a marker), streamed through `serde` without building a
//! JSON tree. A property selection (`--property`) keeps only those properties, in the order
//! given, like `Select-Object`.

use std::io::{self, Write};

use rps_psrp::clixml::Value;
use rps_psrp::clixml::json::Json;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::Options;
use super::text;

/// A record restricted to some of its properties (missing ones are `null`).
struct Selected<'v> {
    entries: Vec<(String, Option<&'v Value>)>,
}

impl Serialize for Selected<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            match v {
                Some(v) => map.serialize_entry(k, &Json::new(v))?,
                None => map.serialize_entry(k, &())?,
            }
        }
        map.end()
    }
}

/// Serializes `value`, restricted to `selection` when it is a record.
fn write_value<W: Write>(
    out: W,
    value: &Value,
    selection: Option<&[String]>,
    pretty: bool,
) -> serde_json::Result<()> {
    let selected = match (text::as_record(value), selection) {
        (Some(obj), Some(sel)) => Some(Selected {
            entries: text::select_columns(obj, Some(sel), false, usize::MAX)
                .into_iter()
                .map(|c| {
                    let v = text::property(obj, &c);
                    (c, v)
                })
                .collect(),
        }),
        _ => None,
    };
    match (selected, pretty) {
        (Some(sel), true) => serde_json::to_writer_pretty(out, &sel),
        (Some(sel), false) => serde_json::to_writer(out, &sel),
        (None, true) => serde_json::to_writer_pretty(out, &Json::new(value)),
        (None, false) => serde_json::to_writer(out, &Json::new(value)),
    }
}

pub(super) struct JsonRenderer<'w> {
    opts: Options,
    out: &'w mut dyn Write,
    lines: bool,
    count: usize,
    buf: Vec<u8>,
}

impl<'w> JsonRenderer<'w> {
    pub(super) fn new(opts: Options, out: &'w mut dyn Write, lines: bool) -> Self {
        JsonRenderer {
            opts,
            out,
            lines,
            count: 0,
            buf: Vec::new(),
        }
    }
}

impl super::Renderer for JsonRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        let selection = self.opts.properties.as_deref();
        if self.lines {
            write_value(&mut *self.out, value, selection, false)?;
            self.out.write_all(b"\n")?;
        } else {
            self.out
                .write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
            // Pretty-print the element, then indent it one level inside the array.
            self.buf.clear();
            write_value(&mut self.buf, value, selection, true)?;
            let mut indented = Vec::with_capacity(self.buf.len() + 64);
            indented.extend_from_slice(b"  ");
            for &b in &self.buf {
                indented.push(b);
                if b == b'\n' {
                    indented.extend_from_slice(b"  ");
                }
            }
            self.out.write_all(&indented)?;
        }
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.lines {
            self.out
                .write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}
