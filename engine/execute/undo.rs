//! Undo: runs the inverses of applied steps, dependents first, honouring `only_if` guards and
//! handler-style undos ordered after the steps they need.

use std::collections::{BTreeMap, BTreeSet};
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

    let reverted = reverted_dependencies(&context, &selected, &state);
    let start = |position: usize| -> NodeFuture {
        let context = context.clone();
        let index = members[position];
        let reverted_dependency = reverted.get(&index).cloned();
        Box::pin(async move { undo_node(&context, index, reverted_dependency).await })
    };
    let outcome = walk(&names, &waits_for, context.options.parallelism, start, |position| position as i64).await;
    if let Err(error) = context.compact() {
        tracing::warn!(%error, "compaction after undo failed; the journal is kept as it is");
    }
    outcome
}

/// For each selected step that stays in place, the first step it depends on whose undo reverts
/// something. Such a step's effect may be gone with that dependency (a file in a removed
/// directory), so it is recorded as undone and the next apply runs it again.
fn reverted_dependencies(context: &Context, selected: &BTreeSet<usize>, state: &crate::state::records::State) -> BTreeMap<usize, String> {
    let runbook = &context.loaded.runbook;
    let reverts = |index: &usize| {
        let step = &runbook.steps[*index];
        matches!(step.undo, Undo::Automatic | Undo::Explicit(_)) && !state.steps.get(&step.name).is_some_and(|record| record.preexisting)
    };
    selected
        .iter()
        .filter(|index| matches!(runbook.steps[**index].undo, Undo::Missing | Undo::LeftInPlace { .. }))
        .filter_map(|index| {
            let dependency = context.loaded.graph.with_dependencies(*index).into_iter().filter(|dependency| dependency != index && selected.contains(dependency)).find(|dependency| reverts(dependency))?;
            Some((*index, runbook.steps[dependency].name.clone()))
        })
        .collect()
}

async fn undo_node(context: &Context, index: usize, reverted_dependency: Option<String>) -> NodeResult {
    let step = &context.loaded.runbook.steps[index];
    let scope = context.scope();
    let record = context.with_state(|state| state.steps.get(&step.name).cloned());
    if record.as_ref().is_some_and(|record| record.status == StepStatus::UndoStarted) {
        context.kill_leftovers(&step.name);
    }
    let now = crate::report::timestamp;

    let result: Result<NodeResult, String> = async {
        if record.as_ref().is_some_and(|record| record.preexisting) {
            let reason = "its effect existed before rb6 applied it (its check passed on the first run)".to_string();
            context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: Some(reason.clone()) })?;
            context.reporter.line(&format!("= step \"{}\" left in place: {reason}", step.name));
            return Ok(NodeResult::Succeeded(Done::Skipped));
        }
        match &step.undo {
            Undo::NoEffect => {
                context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: None })?;
                Ok(NodeResult::Succeeded(Done::Skipped))
            }
            Undo::Missing | Undo::LeftInPlace { .. } => {
                match reverted_dependency {
                    Some(dependency) => {
                        let reason = format!("left in place; `{dependency}`, which it depends on, is being undone, so the next apply runs it again");
                        context.record(Record::Undone { step: step.name.clone(), at: now(), skipped: Some(reason.clone()) })?;
                        context.reporter.line(&format!("= step \"{}\" {reason}", step.name));
                    }
                    None => context.reporter.line(&format!("= step \"{}\" left in place (no undo)", step.name)),
                }
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
