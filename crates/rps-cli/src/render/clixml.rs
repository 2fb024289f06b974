//! `Export-Clixml`-style output: one `<Objs>` document, written value by value.

use std::io::{self, Write};

use rps_psrp::clixml::{CLIXML_NAMESPACE, Value, Writer};

pub(super) struct ClixmlRenderer<'w> {
    out: &'w mut dyn Write,
    /// One RefId scope for the whole document, as `Export-Clixml` writes it.
    writer: Writer,
    started: bool,
    buf: String,
}

impl<'w> ClixmlRenderer<'w> {
    pub(super) fn new(out: &'w mut dyn Write) -> Self {
        ClixmlRenderer {
            out,
            writer: Writer::new(),
            started: false,
            buf: String::new(),
        }
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            write!(
                self.out,
                "<Objs Version=\"1.1.0.1\" xmlns=\"{CLIXML_NAMESPACE}\">"
            )?;
        }
        Ok(())
    }
}

impl super::Renderer for ClixmlRenderer<'_> {
    fn render(&mut self, value: &Value) -> io::Result<()> {
        self.start()?;
        self.buf.clear();
        self.writer.write(&mut self.buf, value);
        self.out.write_all(self.buf.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.start()?;
        self.out.write_all(b"</Objs>\n")?;
        self.out.flush()
    }
}
