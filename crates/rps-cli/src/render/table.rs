//! `Format-Table`-like output: columns sized from a window of rows, then streamed.

use std::io::{self, Write};

use rps_psrp::clixml::Value;

use super::Options;
use super::text::{self, DEFAULT_MAX_COLUMNS};

struct Cell {
    text: String,
    numeric: bool,
}

enum Pending {
    Row(Vec<Cell>),
    Text(String),
}

struct Layout {
    /// Width of each shown column; columns past `widths.len()` did not fit.
    widths: Vec<usize>,
    right: Vec<bool>,
}

pub(super) struct TableRenderer<'w> {
    opts: Options,
    out: &'w mut dyn Write,
    columns: Option<Vec<String>>,
    layout: Option<Layout>,
    pending: Vec<Pending>,
}

impl<'w> TableRenderer<'w> {
    pub(super) fn new(opts: Options, out: &'w mut dyn Write) -> Self {
        TableRenderer {
            opts,
            out,
            columns: None,
            layout: None,
            pending: Vec::new(),
        }
    }

    fn cell(v: Option<&Value>) -> Cell {
        match v {
            None => Cell {
                text: String::new(),
                numeric: false,
            },
            Some(v) => Cell {
                text: text::sanitize(&text::display(v), false),
                numeric: text::is_numeric(v),
            },
        }
    }

    fn compute_layout(&self) -> Layout {
        let columns = self.columns.as_deref().unwrap_or_default();
        let avail = self.opts.width.max(10);
        let mut natural: Vec<usize> = columns.iter().map(|c| text::width(c)).collect();
        let mut numeric = vec![false; columns.len()];
        let mut other = vec![false; columns.len()];
        for p in &self.pending {
            if let Pending::Row(cells) = p {
                for (i, c) in cells.iter().enumerate() {
                    natural[i] = natural[i].max(text::width(&c.text));
                    if c.numeric {
                        numeric[i] = true;
                    } else if !c.text.is_empty() {
                        other[i] = true;
                    }
                }
            }
        }
        let right: Vec<bool> = numeric.iter().zip(&other).map(|(n, o)| *n && !*o).collect();
        for w in &mut natural {
            *w = (*w).clamp(1, avail);
        }
        let min: Vec<usize> = natural.iter().map(|w| (*w).min(8)).collect();
        // Drop trailing columns until the minimum widths fit.
        let mut shown = natural.len();
        while shown > 1 && min[..shown].iter().sum::<usize>() + shown - 1 > avail {
            shown -= 1;
        }
        let mut widths = natural[..shown].to_vec();
        let mut total = widths.iter().sum::<usize>() + shown.saturating_sub(1);
        // Shrink the widest column, one step at a time, until the table fits.
        while total > avail {
            let Some((i, _)) = widths
                .iter()
                .enumerate()
                .filter(|(i, w)| **w > min[*i])
                .max_by_key(|(i, w)| (**w - min[*i], usize::MAX - i))
            else {
                break;
            };
            widths[i] -= 1;
            total -= 1;
        }
        Layout {
            widths,
            right: right[..shown].to_vec(),
        }
    }

    fn write_cells(&mut self, cells: &[(String, bool)]) -> io::Result<()> {
        let Some(layout) = &self.layout else {
            return Ok(());
        };
        let mut line = String::new();
        let last = layout.widths.len().saturating_sub(1);
        for (i, w) in layout.widths.iter().enumerate() {
            let (s, numeric) = cells
                .get(i)
                .map(|(s, n)| (s.as_str(), *n))
                .unwrap_or(("", false));
            let s = text::truncate(s, *w, self.opts.ascii);
            let pad = w.saturating_sub(text::width(&s));
            if layout.right[i] && numeric {
                line.push_str(&" ".repeat(pad));
                line.push_str(&s);
            } else {
                line.push_str(&s);
                if i != last {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if i != last {
                line.push(' ');
            }
        }
        writeln!(self.out, "{}", line.trim_end())
    }

    fn write_header(&mut self) -> io::Result<()> {
        let Some(layout) = &self.layout else {
            return Ok(());
        };
        let columns = self.columns.clone().unwrap_or_default();
        let right = layout.right.clone();
        let header: Vec<(String, bool)> = columns
            .iter()
            .zip(&right)
            .map(|(c, r)| (c.clone(), *r))
            .collect();
        self.write_cells(&header)?;
        let widths = self
            .layout
            .as_ref()
            .map(|l| l.widths.clone())
            .unwrap_or_default();
        let dashes: Vec<(String, bool)> = columns
            .iter()
            .zip(&widths)
            .zip(&right)
            .map(|((c, w), r)| ("-".repeat(text::width(c).min(*w)), *r))
            .collect();
        self.write_cells(&dashes)
    }

    fn write_row(&mut self, cells: Vec<Cell>) -> io::Result<()> {
        let cells: Vec<(String, bool)> = cells.into_iter().map(|c| (c.text, c.numeric)).collect();
        self.write_cells(&cells)
    }

    /// Flushes once the buffer holds a window's worth of entries.
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.pending.len() >= self.opts.window.max(1) {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Sizes the columns from the buffered rows and writes everything buffered.
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.layout.is_none() && self.columns.is_some() {
            self.layout = Some(self.compute_layout());
            self.write_header()?;
        }
        for p in std::mem::take(&mut self.pending) {
            match p {
                Pending::Row(cells) => self.write_row(cells)?,
                Pending::Text(t) => writeln!(self.out, "{t}")?,
            }
        }
        Ok(())
    }
}

impl super::Renderer for TableRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        let Some(obj) = text::as_record(value) else {
            let line = text::sanitize(&text::display(value), true);
            if self.pending.is_empty() {
                return writeln!(self.out, "{line}");
            }
            // Lines between buffered rows wait with them (and count towards the window, so the
            // buffer stays bounded).
            self.pending.push(Pending::Text(line));
            return self.maybe_flush();
        };
        let columns = self.columns.get_or_insert_with(|| {
            text::select_columns(
                obj,
                self.opts.properties.as_deref(),
                true,
                DEFAULT_MAX_COLUMNS,
            )
        });
        if columns.is_empty() {
            let line = text::sanitize(&text::display(value), true);
            return writeln!(self.out, "{line}");
        }
        let cells: Vec<Cell> = columns
            .iter()
            .map(|c| Self::cell(text::property(obj, c)))
            .collect();
        if self.layout.is_some() {
            return self.write_row(cells);
        }
        self.pending.push(Pending::Row(cells));
        self.maybe_flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush_pending()?;
        self.out.flush()
    }
}
