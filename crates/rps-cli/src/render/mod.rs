//! Rendering pipeline output as table, list, JSON, JSON Lines, CSV or CLIXML.
//!
//! Output arrives as a stream of CLIXML [`Value`]s; a [`Renderer`] takes them one at a time and
//! writes them in the chosen [`Format`] without holding the whole output: the table buffers
//! only a window of rows to size its columns, the others write each value as it comes.
//!
//! Text formats (table, list, CSV) show values the way PowerShell's formatter does:
//! `True`/`False`, lists as `{a, b, c, d...}`, enums and Exchange value types (quotas,
//! identities) by their `ToString`, TimeSpans as `d.hh:mm:ss`, `$null` as nothing, and a
//! SecureString never by its content (see [`text`]). JSON and JSON Lines use the project's
//! JSON form, [`rps_psrp::clixml::json`]; CLIXML is written with [`rps_psrp::clixml::Writer`].
//!
//! ```
//! use rps_cli::render::{self, Format, Options};
//! use rps_psrp::clixml::{Object, Property, Value};
//!
//! let mut obj = Object::with_type_names(["Deserialized.Demo", "Deserialized.System.Object"]);
//! obj.adapted = vec![
//!     Property { name: "Name".into(), value: "alice".into() },
//!     Property { name: "Count".into(), value: Value::I32(3) },
//! ];
//! let mut out = Vec::new();
//! render::render_all(Format::Csv, &Options::default(), &[Value::object(obj)], &mut out)?;
//! assert_eq!(String::from_utf8(out).unwrap(), "Name,Count\r\nalice,3\r\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use rps_psrp::clixml::Value;

mod clixml;
mod csv;
mod json;
mod list;
mod table;
pub mod text;

/// An output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// Columns like `Format-Table`.
    #[default]
    Table,
    /// `Name : Value` blocks like `Format-List`.
    List,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// An `Export-Clixml` document (`<Objs>`).
    Clixml,
}

impl Format {
    /// Every format, in the order above.
    pub const ALL: [Format; 6] = [
        Format::Table,
        Format::List,
        Format::Json,
        Format::Jsonl,
        Format::Csv,
        Format::Clixml,
    ];

    /// The format's name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::List => "list",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Clixml => "clixml",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown output format {:?} (expected table, list, json, jsonl, csv or clixml)",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// How to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The properties to show, in order (`--property A,B`); `*` and `?` wildcards match the
    /// first object's property names. `None` picks defaults per format and type.
    pub properties: Option<Vec<String>>,
    /// The width a table must fit in, in terminal columns.
    pub width: usize,
    /// How many rows a table buffers to size its columns before it starts writing.
    pub window: usize,
    /// Use `...` instead of `…` when truncating.
    pub ascii: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            properties: None,
            width: 120,
            window: 64,
            ascii: false,
        }
    }
}

impl Options {
    /// Options with an explicit property selection, parsed from `A,B,C`.
    pub fn with_properties(mut self, list: &str) -> Self {
        let props: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        self.properties = (!props.is_empty()).then_some(props);
        self
    }
}

/// Writes a stream of values in one format.
pub trait Renderer {
    /// Renders one value (possibly buffering it).
    fn render(&mut self, value: &Value) -> io::Result<()>;
    /// Writes whatever is buffered and closes the document; call once, after the last value.
    fn finish(&mut self) -> io::Result<()>;
}

/// The text format PowerShell would pick for output starting with `first`: a table for
/// types with default columns or at most four properties, a list for wider records, and a
/// table (plain lines) for anything that is not a record.
pub fn auto_format(first: &Value) -> Format {
    match text::as_record(first) {
        Some(obj) if text::type_defaults(obj).is_none() => {
            let shown = text::property_names(obj)
                .into_iter()
                .filter(|n| {
                    !text::HIDDEN_PROPERTIES
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(n))
                })
                .count();
            if shown > 4 {
                Format::List
            } else {
                Format::Table
            }
        }
        _ => Format::Table,
    }
}

/// A renderer for `format` writing to `out`.
pub fn renderer<'w>(
    format: Format,
    options: &Options,
    out: &'w mut dyn Write,
) -> Box<dyn Renderer + 'w> {
    match format {
        Format::Table => Box::new(table::TableRenderer::new(options.clone(), out)),
        Format::List => Box::new(list::ListRenderer::new(options.clone(), out)),
        Format::Json => Box::new(json::JsonRenderer::new(options.clone(), out, false)),
        Format::Jsonl => Box::new(json::JsonRenderer::new(options.clone(), out, true)),
        Format::Csv => Box::new(csv::CsvRenderer::new(options.clone(), out)),
        Format::Clixml => Box::new(clixml::ClixmlRenderer::new(out)),
    }
}

/// Renders every value of `values` and finishes.
pub fn render_all<'a, I>(
    format: Format,
    options: &Options,
    values: I,
    out: &mut dyn Write,
) -> io::Result<()>
where
    I: IntoIterator<Item = &'a Value>,
{
    let mut r = renderer(format, options, out);
    for v in values {
        r.render(v)?;
    }
    r.finish()
}
