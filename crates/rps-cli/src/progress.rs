//! Progress records drawn as progress bars on a terminal (indicatif), silent otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rps_psrp::clixml::Value;

/// The bars of the running activities, keyed by ActivityId.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<i64, ProgressBar>>,
}

impl Progress {
    /// Bars on stderr when it is a terminal; nothing otherwise.
    pub fn new() -> Self {
        Progress {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Shows one progress record.
    pub fn update(&self, record: &Value) {
        let Some(multi) = &self.multi else { return };
        let Some(o) = record.as_object() else { return };
        let id = o.get("ActivityId").and_then(Value::as_i64).unwrap_or(0);
        let activity = o.get("Activity").and_then(Value::as_str).unwrap_or("");
        let status = o
            .get("StatusDescription")
            .and_then(Value::as_str)
            .unwrap_or("");
        let percent = o
            .get("PercentComplete")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let completed = o
            .get("Type")
            .and_then(|t| t.as_object().and_then(|t| t.to_string.clone()))
            .is_some_and(|t| t == "Completed");
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if completed {
            if let Some(bar) = bars.remove(&id) {
                bar.finish_and_clear();
            }
            return;
        }
        let bar = bars.entry(id).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(100));
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}%") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_message(format!("{activity}: {status}"));
        if (0..=100).contains(&percent) {
            bar.set_position(u64::try_from(percent).unwrap_or(0));
        }
    }

    /// Clears every bar.
    pub fn finish(&self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
