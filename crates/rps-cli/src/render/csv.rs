//! CSV output (RFC 4180): a header row from the first object, then one row per value.

use std::io::{self, Write};

use rps_psrp::clixml::Value;

use super::Options;
use super::text;

pub(super) struct CsvRenderer<'w> {
    opts: Options,
    out: &'w mut dyn Write,
    columns: Option<Vec<String>>,
}

impl<'w> CsvRenderer<'w> {
    pub(super) fn new(opts: Options, out: &'w mut dyn Write) -> Self {
        CsvRenderer {
            opts,
            out,
            columns: None,
        }
    }

    fn write_record<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> io::Result<()> {
        let mut line = String::new();
        for (i, f) in fields.enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_field(&mut line, f);
        }
        line.push_str("\r\n");
        self.out.write_all(line.as_bytes())
    }
}

/// Appends one field, quoted when it holds a comma, a quote, CR or LF (quotes doubled).
fn push_field(line: &mut String, f: &str) {
    if f.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&f.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(f);
    }
}

impl super::Renderer for CsvRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        let record = text::as_record(value);
        if self.columns.is_none() {
            let columns = match record {
                Some(obj) => {
                    text::select_columns(obj, self.opts.properties.as_deref(), false, usize::MAX)
                }
                None => vec!["Value".to_owned()],
            };
            self.write_record(columns.iter().map(String::as_str))?;
            self.columns = Some(columns);
        }
        let columns = self.columns.clone().unwrap_or_default();
        let fields: Vec<String> = match record {
            Some(obj) => columns
                .iter()
                .map(|c| text::property(obj, c).map(text::plain).unwrap_or_default())
                .collect(),
            None => {
                let mut row = vec![String::new(); columns.len().max(1)];
                row[0] = text::plain(value);
                row
            }
        };
        self.write_record(fields.iter().map(String::as_str))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
