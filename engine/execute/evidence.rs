//! Gate reports: when a gate fails, its criteria and the `on_fail` evidence go to a report file.

use std::path::PathBuf;

use crate::actions::probe::{self, Evaluation};
use crate::interpolate::Scope;
use crate::model::Step;

use super::Context;

/// Collects the gate's `on_fail` evidence and writes the report under `<state>/reports/`.
pub async fn write_gate_report(context: &Context, step: &Step, evaluation: &Evaluation, scope: &Scope) -> Result<PathBuf, String> {
    let mut report = format!("rb6 gate report\nrunbook: {}\ngate: {}\ntime: {}\nresult: FAILED\n\n", context.loaded.runbook.name, step.name, crate::report::timestamp());
    if let Some(description) = &step.description {
        report.push_str(&format!("description: {description}\n\n"));
    }

    report.push_str("== criteria\n");
    for line in evaluation.lines() {
        report.push_str(&format!("{line}\n"));
    }
    for transcript in evaluation.transcripts() {
        report.push_str("\n== HTTP exchange\n");
        report.push_str(&transcript);
        report.push('\n');
    }

    for call in &step.on_fail {
        let (title, text) = probe::collect_evidence(context, call, scope).await;
        report.push_str(&format!("\n== {title}\n{text}\n"));
    }

    let report = context.reporter.redact(&report);
    let dir = context.state_dir().join("reports");
    let reports = crate::state::StateDir::open(&dir).map_err(|error| error.to_string())?;
    let name = format!("{}-{}.txt", step.name, crate::report::timestamp().replace(':', ""));
    reports.write_atomic(&name, report.as_bytes()).map_err(|error| error.to_string())?;
    Ok(dir.join(name))
}
