//! Rendering values and recorded outputs as text.

use std::fmt::Write as _;

use rps_psrp::clixml::{self, Value};

use super::Scenario;

pub(super) fn short(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Bool(b) => format!("${b}"),
        Value::Nil => "$null".to_owned(),
        v => match v.as_i64() {
            Some(i) if !matches!(v, Value::Object(_)) => i.to_string(),
            _ => display_value(v),
        },
    }
}

/// Renders a value on one line: strings as they are, objects by their `ToString` or as
/// JSON.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Nil => String::new(),
        Value::Object(o) => match &o.to_string {
            Some(s) => s.clone(),
            None => clixml::json::to_json(v).to_string(),
        },
        other => match clixml::json::to_json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// Renders what the transcript's pipelines produced (the recorded outputs), for printing:
/// one block per pipeline with its commands, its output objects one per line, its records
/// and its final state.
pub fn render_outputs(scenario: &Scenario) -> String {
    let mut out = String::new();
    for (i, (plan, want)) in scenario
        .pipelines
        .iter()
        .zip(&scenario.expected.pipelines)
        .enumerate()
    {
        let _ = writeln!(out, "# pipeline {i}: {}", plan.describe());
        for v in &want.output {
            let _ = writeln!(out, "{}", display_value(v));
        }
        for (kind, v) in &want.records {
            let text = v
                .as_object()
                .and_then(|o| o.to_string.clone())
                .unwrap_or_else(|| display_value(v));
            let _ = writeln!(out, "[{kind:?}] {text}");
        }
        let state = want
            .state
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}"));
        let _ = writeln!(
            out,
            "# state: {state}, {} output objects",
            want.output.len()
        );
    }
    if !scenario.expected.pool_states.is_empty() {
        let _ = writeln!(out, "# pool states: {:?}", scenario.expected.pool_states);
    }
    out
}
