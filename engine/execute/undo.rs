//! Undo: runs the inverses of applied steps, dependents first, honouring `only_if` guards and
//! handler-style undos ordered after the steps they need.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::actions::{self, probe};
use crate::model::Undo;
use crate::state::records::{Record, StepStatus};

use super::{walk, Context, Done, NodeFuture, NodeResult, Outcome};

/// Undoes the applied steps, or `--target` and everything that depends on it.
pub async fn undo(context: Arc<Context>) -> Outcome {
    let runbook = &context.loaded.runbook;
    let graph = &context.loaded.graph;
    let state = context.state();

    let in_scope: BTreeSet<usize> = match context.options.target {
        Some(target) => graph.with_dependents(target),
        None => (0..runbook.steps.len()).collect(),
    };
    let selected: BTreeSet<usize> = in_scope
        .into_iter()
        .filter(|index| matches!(state.status(&runbook.steps[*index].name), Some(StepStatus::Applied | StepStatus::UndoStarted | StepStatus::UndoFailed)))
        .collect();

    let order = graph.undo_order(runbook, &selected);
    let members: Vec<usize> = order.iter().map(|(step, _)| *step).collect();
    let positions: std::collections::HashMap<usize, usize> = members.iter().enumerate().map(|(position, step)| (*step, position)).collect();
    let local = |step: usize| positions[&step];
    let names: Vec<String> = members.iter().map(|index| runbook.steps[*index].name.clone()).collect();
    let waits_for: Vec<Vec<usize>> = order.iter().map(|(_, before)| before.iter().map(|step| local(*step)).collect()).collect();

    let start = |position: usize| -> NodeFuture {
        let context = context.clone();
        let index = members[position];
        Box::pin(async move { undo_node(&context, index).await })
    };
    let outcome = walk(&names, &waits_for, context.options.parallelism, start, |position| position as i64).await;
    if let Err(error) = context.compact() {
        tracing::warn!(%error, "compaction after undo failed; the journal is kept as it is");
    }
    outcome
}

async fn undo_node(context: &Context, index: usize) -> NodeResult {
    let step = &context.loaded.runbook.steps[index];
    let scope = context.scope();
    let record = context.with_state(|state| state.steps.get(&step.name).cloned());
    let now = crate::report::timestamp;

    let result: Result<NodeResult, String> = async {
        match &step.undo {
            Undo::NoEffect => {
                context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: None })?;
                Ok(NodeResult::Succeeded(Done::Skipped))
            }
            Undo::Missing | Undo::LeftInPlace { .. } => {
                context.reporter.line(&format!("= step \"{}\" left in place (no undo)", step.name));
                Ok(NodeResult::Succeeded(Done::Skipped))
            }
            Undo::Automatic => {
                let undo_data = record.map(|record| record.undo).unwrap_or_default();
                context.record(Record::UndoStarted { step: step.name.clone(), at: now() })?;
                actions::inverse::restore(context, step, &undo_data).await?;
                context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: None })?;
                context.reporter.line(&format!("✓ step \"{}\" undone", step.name));
                Ok(NodeResult::Succeeded(Done::Ran))
            }
            Undo::Explicit(explicit) => {
                if !explicit.only_if.is_empty() {
                    let guard = probe::evaluate_all(context, &explicit.only_if, &scope).await;
                    if !guard.passed {
                        let reason = format!("only_if did not hold: {}", guard.summary());
                        context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: Some(reason.clone()) })?;
                        context.reporter.line(&format!("- step \"{}\" undo skipped: {reason}", step.name));
                        return Ok(NodeResult::Succeeded(Done::Skipped));
                    }
                }
                context.record(Record::UndoStarted { step: step.name.clone(), at: now() })?;
                let spinner = context.reporter.spinner(&format!("undo \"{}\"", step.name));
                let result = actions::perform(context, &step.name, &explicit.action, &scope).await;
                spinner.finish_and_clear();
                result?;
                context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: None })?;
                context.reporter.line(&format!("✓ step \"{}\" undone", step.name));
                Ok(NodeResult::Succeeded(Done::Ran))
            }
        }
    }
    .await;

    result.unwrap_or_else(|message| {
        let message = context.reporter.redact(&message);
        let _ = context.record(Record::UndoFailed { step: step.name.clone(), at: now(), error: message.clone() });
        context.reporter.line(&format!("✗ undo of \"{}\" failed: {message}", step.name));
        NodeResult::Failed(message)
    })
}
