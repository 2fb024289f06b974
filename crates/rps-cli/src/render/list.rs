//! `Format-List`-like output: one `Name : Value` block per object.

use std::io::{self, Write};

use rps_psrp::clixml::Value;

use super::Options;
use super::text;

pub(super) struct ListRenderer<'w> {
    opts: Options,
    out: &'w mut dyn Write,
    written: bool,
}

impl<'w> ListRenderer<'w> {
    pub(super) fn new(opts: Options, out: &'w mut dyn Write) -> Self {
        ListRenderer {
            opts,
            out,
            written: false,
        }
    }
}

impl super::Renderer for ListRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        if self.written {
            writeln!(self.out)?;
        }
        self.written = true;
        let Some(obj) = text::as_record(value) else {
            return writeln!(self.out, "{}", text::sanitize(&text::display(value), true));
        };
        // Every property (or the selection), like `Format-List *` minus the remoting noise.
        let columns = text::select_columns(obj, self.opts.properties.as_deref(), false, usize::MAX);
        let name_width = columns.iter().map(|c| text::width(c)).max().unwrap_or(0);
        let indent = " ".repeat(name_width + 3);
        for c in &columns {
            let shown = text::property(obj, c)
                .map(text::display)
                .unwrap_or_default();
            let shown = text::sanitize(&shown, true);
            let pad = " ".repeat(name_width - text::width(c));
            let mut lines = shown.split('\n');
            let first = lines.next().unwrap_or_default();
            let line = format!("{c}{pad} : {first}");
            writeln!(self.out, "{}", line.trim_end())?;
            for more in lines {
                writeln!(self.out, "{indent}{}", more.trim_end())?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
