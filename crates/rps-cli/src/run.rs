//! Running cmdlet lines on a runspace pool and printing what they produce.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use rps_psrp::clixml::{Object, Value};
use rps_psrp::event::RecordKind;
use rps_psrp::messages::PsInvocationState;
use rps_session::cmdline::{CmdletLine, ParsedCommand};
use rps_session::{Command, PipelineEvent, RunspacePool};

use crate::render::{self, Format, Options};

/// Output options shared by the subcommands that run cmdlets.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format: table, list, json, jsonl, csv or clixml (default: table on a terminal,
    /// jsonl otherwise).
    #[arg(long, short = 'o', value_name = "FORMAT", global = true)]
    pub output: Option<Format>,
    /// Only these properties, comma separated (wildcards allowed).
    #[arg(long, value_name = "A,B", global = true)]
    pub property: Option<String>,
}

impl OutputArgs {
    /// The format to use.
    pub fn format(&self) -> Format {
        self.output.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Jsonl
            }
        })
    }

    /// The render options.
    pub fn options(&self) -> Options {
        let mut o = Options::default();
        if let Some(p) = &self.property {
            o = o.with_properties(p);
        }
        if let Some(w) = terminal_width() {
            o.width = w;
        }
        o
    }
}

fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
}

/// The typed command a parsed cmdlet-line command stands for.
pub fn to_command(c: &ParsedCommand) -> Command {
    let mut cmd = Command::new(c.name.clone());
    for p in &c.parameters {
        cmd = match (&p.name, &p.value) {
            (Some(n), Some(v)) => cmd.param(n.clone(), v.clone()),
            (Some(n), None) => cmd.switch(n.clone()),
            (None, Some(v)) => cmd.arg(v.clone()),
            (None, None) => cmd,
        };
    }
    cmd
}

/// What running one or more cmdlet lines produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Output objects written.
    pub objects: usize,
    /// Error records written.
    pub errors: usize,
    /// Pipelines that failed or were stopped.
    pub failed: usize,
}

impl Outcome {
    /// The process exit code: 0 on success, 1 when a pipeline failed or wrote errors.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.errors > 0 || self.failed > 0)
    }
}

/// Runs each line on `pool`, streaming output to stdout and records to stderr. Ctrl-C stops
/// the running pipeline.
pub async fn run_lines(
    pool: &RunspacePool,
    lines: &[CmdletLine],
    out: &OutputArgs,
) -> anyhow::Result<Outcome> {
    let format = out.format();
    let options = out.options();
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    let mut renderer = render::renderer(format, &options, &mut lock);
    let mut outcome = Outcome::default();
    let progress = crate::progress::Progress::new();
    for line in lines {
        let commands: Vec<Command> = line.commands.iter().map(to_command).collect();
        let mut pipeline = pool
            .invoke(commands)
            .await
            .context("cannot start the pipeline")?;
        let mut interrupted = false;
        // One listener for the whole pipeline: a Ctrl-C that arrives while an object is being
        // rendered must not be lost between two polls.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let ev = tokio::select! {
                ev = pipeline.next_event() => ev,
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    eprintln!("rps: stopping the pipeline (Ctrl-C)");
                    pipeline.stop()?;
                    continue;
                }
            };
            let Some(ev) = ev else { break };
            match ev? {
                // After Ctrl-C, output already received is dropped, as PowerShell does, so
                // the stop is not held up by rendering what was in flight.
                PipelineEvent::Output(_) if interrupted => {}
                PipelineEvent::Output(v) => {
                    outcome.objects += 1;
                    renderer.render(&v)?;
                }
                PipelineEvent::Record { kind, value } => {
                    if kind == RecordKind::Error {
                        outcome.errors += 1;
                    }
                    if kind == RecordKind::Progress {
                        progress.update(&value);
                    } else {
                        eprintln!("{}", record_text(kind, &value));
                    }
                }
                PipelineEvent::HostCall(call) if call.needs_reply() => {
                    let reply = call.fail(Value::Str("the rps host cannot prompt".into()));
                    pipeline.host_reply(reply)?;
                }
                PipelineEvent::Finished {
                    state,
                    error_record,
                } => {
                    if state != PsInvocationState::Completed {
                        outcome.failed += 1;
                    }
                    if let Some(e) = error_record {
                        eprintln!("{}", record_text(RecordKind::Error, &e));
                    }
                }
                _ => {}
            }
        }
    }
    progress.finish();
    renderer.finish()?;
    drop(renderer);
    lock.flush()?;
    Ok(outcome)
}

fn get<'a>(o: &'a Object, name: &str) -> Option<&'a Value> {
    o.get(name)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Str(s) => Some(s.clone()),
        Value::Object(o) => o.to_string.clone(),
        Value::Nil => None,
        other => Some(format!("{other:?}")),
    }
}

/// A record as PowerShell shows it: errors with category and FullyQualifiedErrorId,
/// other streams prefixed (`WARNING: ...`).
pub fn record_text(kind: RecordKind, value: &Value) -> String {
    use rps_psrp::records::{ErrorRecord, InformationRecord, InformationalRecord};
    let typed =
        match kind {
            RecordKind::Error => ErrorRecord::from_value(value).ok().map(|r| r.to_string()),
            RecordKind::Warning => InformationalRecord::from_value(value)
                .ok()
                .map(|r| format!("WARNING: {}", r.message)),
            RecordKind::Verbose => InformationalRecord::from_value(value)
                .ok()
                .map(|r| format!("VERBOSE: {}", r.message)),
            RecordKind::Debug => InformationalRecord::from_value(value)
                .ok()
                .map(|r| format!("DEBUG: {}", r.message)),
            RecordKind::Information => InformationRecord::from_value(value).ok().map(|r| match &r
                .message_data
            {
                Value::Str(s) => s.clone(),
                other => record_text_loose(kind, other),
            }),
            _ => None,
        };
    typed.unwrap_or_else(|| record_text_loose(kind, value))
}

/// [`record_text`] for records that don't have the expected shape.
fn record_text_loose(kind: RecordKind, value: &Value) -> String {
    let obj = value.as_object();
    let message = match obj {
        Some(o) => text(get(o, "ErrorDetails_Message"))
            .or_else(|| text(get(o, "Exception")).filter(|s| !s.is_empty()))
            .or_else(|| text(get(o, "InformationalRecord_Message")))
            .or_else(|| text(get(o, "Message")))
            .or_else(|| text(get(o, "MessageData")))
            .or_else(|| o.to_string.clone())
            .unwrap_or_default(),
        None => text(Some(value)).unwrap_or_default(),
    };
    match kind {
        RecordKind::Error => {
            let mut s = message;
            if let Some(o) = obj {
                if let Some(cat) =
                    text(get(o, "ErrorCategory_Message")).or_else(|| text(get(o, "CategoryInfo")))
                {
                    s.push_str(&format!("\n    + CategoryInfo          : {cat}"));
                }
                if let Some(id) = text(get(o, "FullyQualifiedErrorId")) {
                    s.push_str(&format!("\n    + FullyQualifiedErrorId : {id}"));
                }
            }
            s
        }
        RecordKind::Warning => format!("WARNING: {message}"),
        RecordKind::Verbose => format!("VERBOSE: {message}"),
        RecordKind::Debug => format!("DEBUG: {message}"),
        RecordKind::Information => message,
        RecordKind::Progress => format!("PROGRESS: {message}"),
        #[allow(unreachable_patterns)]
        _ => message,
    }
}
