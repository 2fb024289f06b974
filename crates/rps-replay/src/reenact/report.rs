//! The outcome of a check, and the comparison of live results with the recorded ones.

use std::fmt;

use rps_psrp::clixml::Value;
use rps_psrp::event::RecordKind;
use rps_psrp::messages::{PsInvocationState, RunspacePoolState};
use rps_wsman::Envelope;

use super::{ExpectedPipeline, Scenario, Unsupported};
use crate::replayer::{Mismatch, Replayer, Tolerated, diff_values};

/// How a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The sans-IO session machine, no sockets.
    InMemory,
    /// The async client over HTTP on the loopback interface.
    Loopback,
}

/// One pipeline's recorded and live results.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineReport {
    /// The commands, as text.
    pub commands: String,
    /// Recorded output objects.
    pub expected_output: usize,
    /// Live output objects.
    pub output: usize,
    /// Recorded final state.
    pub expected_state: Option<PsInvocationState>,
    /// Live final state.
    pub state: Option<PsInvocationState>,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The transcript's source.
    pub source: String,
    /// How the check ran.
    pub mode: Mode,
    /// Recorded exchanges.
    pub exchanges: usize,
    /// Live requests that matched a recorded exchange.
    pub matched: usize,
    /// Requests that did not match (the check stops at the first).
    pub mismatches: Vec<Mismatch>,
    /// Differences the replayer accepted.
    pub tolerated: Vec<Tolerated>,
    /// Per pipeline.
    pub pipelines: Vec<PipelineReport>,
    /// Recorded pool states.
    pub expected_pool_states: Vec<RunspacePoolState>,
    /// Pool states the client reported.
    pub pool_states: Vec<RunspacePoolState>,
    /// Differences in results (outputs, records, states), one line each.
    pub diffs: Vec<String>,
    /// Recorded operations the client does not perform (in memory, the check stops at the
    /// first; over loopback it is not run).
    pub unsupported: Vec<Unsupported>,
    /// Errors the client reported (a recorded fault is expected to produce one).
    pub client_errors: Vec<String>,
}

impl Report {
    /// True when every exchange matched and every result is equal.
    pub fn passed(&self) -> bool {
        self.unsupported.is_empty()
            && self.mismatches.is_empty()
            && self.diffs.is_empty()
            && self.matched + self.skipped() == self.exchanges
    }

    /// Recorded exchanges skipped as tolerated.
    pub fn skipped(&self) -> usize {
        self.tolerated
            .iter()
            .filter(|t| t.kind == crate::replayer::ToleranceKind::SkippedRecordedSignal)
            .count()
    }

    /// True when every pipeline's outputs are equal, object by object.
    pub fn outputs_equal(&self) -> bool {
        !self.diffs.iter().any(|d| d.contains("output"))
            && self.pipelines.iter().all(|p| p.expected_output == p.output)
    }

    /// True when pipeline and pool states are equal.
    pub fn states_equal(&self) -> bool {
        self.expected_pool_states == self.pool_states
            && self.pipelines.iter().all(|p| p.expected_state == p.state)
    }

    pub(super) fn empty(scenario: &Scenario, mode: Mode, exchanges: usize) -> Report {
        Report {
            source: scenario.source.clone(),
            mode,
            exchanges,
            matched: 0,
            mismatches: Vec::new(),
            tolerated: Vec::new(),
            pipelines: Vec::new(),
            expected_pool_states: scenario.expected.pool_states.clone(),
            pool_states: Vec::new(),
            diffs: Vec::new(),
            unsupported: scenario.unsupported.clone(),
            client_errors: Vec::new(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::InMemory => "in memory",
            Mode::Loopback => "over loopback",
        };
        writeln!(
            f,
            "{} ({mode}): {}",
            self.source,
            if self.passed() { "PASS" } else { "FAIL" }
        )?;
        writeln!(
            f,
            "  requests matched: {}/{} ({} skipped as tolerated)",
            self.matched,
            self.exchanges,
            self.skipped()
        )?;
        for u in &self.unsupported {
            writeln!(f, "  unsupported: {u}")?;
        }
        for m in &self.mismatches {
            writeln!(f, "  mismatch: {m}")?;
        }
        for t in &self.tolerated {
            writeln!(f, "  tolerated: {t}")?;
        }
        for (i, p) in self.pipelines.iter().enumerate() {
            writeln!(
                f,
                "  pipeline {i}: {}: outputs {}/{}, state {:?} (recorded {:?})",
                one_line(&p.commands, 100),
                p.output,
                p.expected_output,
                p.state,
                p.expected_state
            )?;
        }
        writeln!(
            f,
            "  pool states: {:?} (recorded {:?})",
            self.pool_states, self.expected_pool_states
        )?;
        for d in &self.diffs {
            writeln!(f, "  diff: {d}")?;
        }
        for e in &self.client_errors {
            writeln!(f, "  client error: {e}")?;
        }
        Ok(())
    }
}

/// `text` on one line (whitespace runs collapsed), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// What the live client produced.
#[derive(Debug, Default)]
pub(super) struct Actual {
    pub(super) pipelines: Vec<ExpectedPipeline>,
    pub(super) pool_states: Vec<RunspacePoolState>,
    pub(super) shell_states: Vec<Option<bool>>,
}

fn compare(scenario: &Scenario, actual: &Actual, report: &mut Report) {
    for (i, (plan, want)) in scenario
        .pipelines
        .iter()
        .zip(&scenario.expected.pipelines)
        .enumerate()
    {
        let empty = ExpectedPipeline::default();
        let got = actual.pipelines.get(i).unwrap_or(&empty);
        report.pipelines.push(PipelineReport {
            commands: plan.describe(),
            expected_output: want.output.len(),
            output: got.output.len(),
            expected_state: want.state,
            state: got.state,
        });
        if want.output.len() != got.output.len() {
            report.diffs.push(format!(
                "pipeline {i}: {} output objects recorded, {} received",
                want.output.len(),
                got.output.len()
            ));
        }
        for (j, (w, g)) in want.output.iter().zip(&got.output).enumerate() {
            if let Some((p, e, f)) = diff_values(w, g) {
                report.diffs.push(format!(
                    "pipeline {i} output[{j}]{p}: expected {e}, found {f}"
                ));
            }
        }
        let kinds = |r: &[(RecordKind, Value)]| r.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        if kinds(&want.records) != kinds(&got.records) {
            report.diffs.push(format!(
                "pipeline {i}: records {:?} recorded, {:?} received",
                kinds(&want.records),
                kinds(&got.records)
            ));
        } else {
            for (j, ((k, w), (_, g))) in want.records.iter().zip(&got.records).enumerate() {
                if let Some((p, e, f)) = diff_values(w, g) {
                    report.diffs.push(format!(
                        "pipeline {i} record[{j}] ({k:?}){p}: expected {e}, found {f}"
                    ));
                }
            }
        }
        if want.state != got.state {
            report.diffs.push(format!(
                "pipeline {i}: state {:?} recorded, {:?} reached",
                want.state, got.state
            ));
        }
        if want.host_calls != got.host_calls {
            report.diffs.push(format!(
                "pipeline {i}: {} host calls recorded, {} received",
                want.host_calls, got.host_calls
            ));
        }
    }
    if actual.shell_states != scenario.expected.shell_states {
        report.diffs.push(format!(
            "shell states {:?} recorded, {:?} reached",
            scenario.expected.shell_states, actual.shell_states
        ));
    }
    report.pool_states = actual.pool_states.clone();
    if actual.pool_states != scenario.expected.pool_states {
        report.diffs.push(format!(
            "pool states {:?} recorded, {:?} reached",
            scenario.expected.pool_states, actual.pool_states
        ));
    }
}

pub(super) fn finish(
    scenario: &Scenario,
    replayer: &Replayer,
    actual: &Actual,
    report: &mut Report,
) {
    report.matched = replayer.matched();
    report.tolerated = replayer.tolerated().to_vec();
    if report.mismatches.is_empty() && report.unsupported.is_empty() && !replayer.is_finished() {
        let at = replayer.position();
        let next = replayer
            .transcript()
            .exchanges
            .get(at)
            .and_then(|e| Envelope::decode(e.request.body.as_bytes()).ok())
            .and_then(|e| {
                e.action()
                    .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
            })
            .unwrap_or_default();
        report.mismatches.push(Mismatch {
            exchange: at,
            field_path: "exchange".to_owned(),
            expected: format!("a {next} request"),
            found: "no request: the client stopped".to_owned(),
        });
    }
    compare(scenario, actual, report);
}
