//! Apply: runs each pending step, gate and manual step, recording every transition.

use std::sync::Arc;

use crate::actions::{self, probe, ActionOutput};
use crate::interpolate::Scope;
use crate::model::{Step, StepKind};
use crate::plan::{apply_change, definition_hash, Change};
use crate::state::records::{Record, StepStatus};

use super::{walk, Context, Done, NodeFuture, NodeResult, Outcome};

/// Applies the runbook: every step not applied with its current definition.
pub async fn apply(context: Arc<Context>) -> Outcome {
    let runbook = &context.loaded.runbook;
    let names: Vec<String> = runbook.steps.iter().map(|step| step.name.clone()).collect();
    let waits_for: Vec<Vec<usize>> = (0..runbook.steps.len()).map(|index| context.loaded.graph.dependencies(index)).collect();
    let order = context.loaded.graph.apply_order();
    let mut rank = vec![0i64; order.len()];
    for (position, index) in order.iter().enumerate() {
        rank[*index] = position as i64;
    }

    let start = |index: usize| -> NodeFuture {
        let context = context.clone();
        Box::pin(async move { apply_node(&context, index).await })
    };
    let outcome = walk(&names, &waits_for, context.options.parallelism, start, |index| rank[index]).await;
    if let Err(error) = context.compact() {
        tracing::warn!(%error, "compaction after apply failed; the journal is kept as it is");
    }
    outcome
}

async fn apply_node(context: &Context, index: usize) -> NodeResult {
    let step = &context.loaded.runbook.steps[index];
    let scope = context.scope();
    let (change, interrupted) = context.with_state(|state| (apply_change(step, state, &scope).0, state.status(&step.name) == Some(StepStatus::Started)));
    if change == Change::None {
        return NodeResult::Succeeded(Done::Unchanged);
    }

    let hash = definition_hash(step, &scope);
    let result = match step.kind {
        StepKind::Manual => apply_manual(context, step, &hash, &scope).await,
        StepKind::Gate => apply_gate(context, step, &hash, &scope, interrupted).await,
        StepKind::Step => apply_step(context, step, &hash, &scope, interrupted).await,
    };
    match result {
        Ok(result) => result,
        Err(message) => {
            let message = context.reporter.redact(&message);
            let _ = context.record(Record::Failed { step: step.name.clone(), hash, at: crate::report::timestamp(), error: message.clone() });
            context.reporter.line(&format!("✗ {} \"{}\" failed: {message}", step.kind.keyword(), step.name));
            NodeResult::Failed(message)
        }
    }
}

async fn apply_step(context: &Context, step: &Step, hash: &str, scope: &Scope, interrupted: bool) -> Result<NodeResult, String> {
    if interrupted {
        context.kill_leftovers(&step.name);
        if let Some(action) = &step.action {
            actions::clean_up_interrupted(context, &step.name, action, scope).await;
        }
    }
    // A step applied before with another definition keeps the undo data of that first apply.
    let previous_undo = context.with_state(|state| state.steps.get(&step.name).filter(|record| record.status == StepStatus::Applied).map(|record| record.undo.clone()));
    let merge_undo = |mut output: ActionOutput| {
        if let Some(previous) = &previous_undo {
            output.undo = actions::inverse::merge_reapplied(previous, output.undo);
        }
        output
    };

    if !step.checks.is_empty() {
        let checks = probe::evaluate_all(context, &step.checks, scope).await;
        if checks.passed {
            record_applied(context, step, hash, true, merge_undo(ActionOutput::default()), scope).await?;
            context.reporter.line(&format!("✓ step \"{}\" already done (check passed)", step.name));
            return Ok(NodeResult::Succeeded(Done::AlreadyDone));
        }
    } else if interrupted && !context.options.retry_interrupted && !ask_rerun(context, step) {
        // No "failed" record: it would replace the "started" one, and the next run would then
        // rerun the step without asking.
        let message = "step was interrupted during an earlier run and has no check probe to tell whether it finished; verify its effect, then run again with --retry-interrupted (or add a `check` block)".to_string();
        context.reporter.line(&format!("✗ step \"{}\" failed: {message}", step.name));
        return Ok(NodeResult::Failed(message));
    }

    let action = step.action.as_ref().expect("a step has an action");
    let before = actions::inverse::snapshot_before(action, scope);
    context.record(Record::Started { step: step.name.clone(), hash: hash.to_string(), at: crate::report::timestamp(), before })?;
    let spinner = context.reporter.spinner(&format!("step \"{}\"", step.name));
    let output = run_with_retries(context, step, || actions::perform(context, &step.name, action, scope)).await;
    spinner.finish_and_clear();

    let mut output = output?;
    if let Some(earliest) = context.with_state(|state| state.steps.get(&step.name).map(|record| record.before.clone())) {
        output.undo = actions::inverse::with_earliest_before(output.undo, &earliest);
    }
    let output = merge_undo(output);
    record_applied(context, step, hash, false, output, scope).await?;
    context.reporter.line(&format!("✓ step \"{}\" applied", step.name));
    Ok(NodeResult::Succeeded(Done::Ran))
}

fn ask_rerun(context: &Context, step: &Step) -> bool {
    let question = format!("Step \"{}\" was interrupted in an earlier run and has no check probe. Run it again? Only 'yes' will be accepted: ", step.name);
    context.reporter.ask(&question).is_some_and(|answer| answer == "yes")
}

async fn record_applied(context: &Context, step: &Step, hash: &str, via_check: bool, output: ActionOutput, scope: &Scope) -> Result<(), String> {
    let captures = actions::capture::read_all(context, step, &output, scope).await?;
    context.add_captures(&captures);
    let output_text = context.reporter.redact(&tail(&output.stdout, 4096));
    let preexisting = via_check && context.with_state(|state| was_never_run(state, &step.name));
    context.record(Record::Applied { step: step.name.clone(), hash: hash.to_string(), at: crate::report::timestamp(), via_check, preexisting, captures, undo: output.undo, output: output_text })
}

/// Returns true when rb6 never ran the step's action here: no record, or it was undone, or it
/// was itself found pre-existing. A started or failed record means the action may have run.
fn was_never_run(state: &crate::state::records::State, step: &str) -> bool {
    match state.steps.get(step) {
        None => true,
        Some(record) => match record.status {
            StepStatus::Undone => true,
            StepStatus::Applied => record.preexisting,
            _ => false,
        },
    }
}

/// Runs an attempt up to `1 + retries` times, each bounded by the step's timeout.
async fn run_with_retries<F, Fut>(context: &Context, step: &Step, mut attempt: F) -> Result<ActionOutput, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<ActionOutput, String>>,
{
    let mut last_error = String::new();
    for number in 0..=step.retries {
        if number > 0 {
            context.reporter.line(&format!("↻ {} \"{}\": attempt {} of {} after: {last_error}", step.kind.keyword(), step.name, number + 1, step.retries + 1));
            tokio::time::sleep(step.retry_delay).await;
        }
        let result = match step.timeout {
            Some(limit) => tokio::time::timeout(limit, attempt()).await.unwrap_or_else(|_| Err(format!("timed out after {}", humantime::format_duration(limit)))),
            None => attempt().await,
        };
        match result {
            Ok(output) => return Ok(output),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

async fn apply_gate(context: &Context, step: &Step, hash: &str, scope: &Scope, interrupted: bool) -> Result<NodeResult, String> {
    if interrupted {
        context.kill_leftovers(&step.name);
    }
    context.record(Record::Started { step: step.name.clone(), hash: hash.to_string(), at: crate::report::timestamp(), before: serde_json::Value::Null })?;
    let spinner = context.reporter.spinner(&format!("gate \"{}\"", step.name));
    let evaluation = match step.timeout {
        Some(limit) => match tokio::time::timeout(limit, evaluate_gate(context, step, scope)).await {
            Ok(evaluation) => evaluation,
            Err(_) => probe::Evaluation::timed_out(&format!("gate did not finish within {}", humantime::format_duration(limit))),
        },
        None => evaluate_gate(context, step, scope).await,
    };
    spinner.finish_and_clear();

    if evaluation.passed {
        context.record(Record::Applied { step: step.name.clone(), hash: hash.to_string(), at: crate::report::timestamp(), via_check: false, preexisting: false, captures: Default::default(), undo: serde_json::Value::Null, output: evaluation.summary() })?;
        context.reporter.line(&format!("✓ gate \"{}\" passed", step.name));
        for line in evaluation.lines() {
            context.reporter.line(&format!("    {line}"));
        }
        return Ok(NodeResult::Succeeded(Done::Ran));
    }

    let report = super::evidence::write_gate_report(context, step, &evaluation, scope).await;
    let message = match &report {
        Ok(path) => format!("gate failed; evidence written to {}", path.display()),
        Err(error) => format!("gate failed; the evidence report could not be written: {error}"),
    };
    for line in evaluation.lines() {
        context.reporter.line(&format!("    {line}"));
    }
    Err(message)
}

/// Evaluates a gate's probes, up to `1 + retries` times until they pass.
async fn evaluate_gate(context: &Context, step: &Step, scope: &Scope) -> probe::Evaluation {
    let mut evaluation = probe::evaluate_all(context, &step.checks, scope).await;
    for attempt in 1..=step.retries {
        if evaluation.passed {
            break;
        }
        context.reporter.line(&format!("↻ gate \"{}\": attempt {} of {}", step.name, attempt + 1, step.retries + 1));
        tokio::time::sleep(step.retry_delay).await;
        evaluation = probe::evaluate_all(context, &step.checks, scope).await;
    }
    evaluation
}

async fn apply_manual(context: &Context, step: &Step, hash: &str, scope: &Scope) -> Result<NodeResult, String> {
    if !step.checks.is_empty() && probe::evaluate_all(context, &step.checks, scope).await.passed {
        record_applied(context, step, hash, true, ActionOutput::default(), scope).await?;
        context.reporter.line(&format!("✓ manual step \"{}\" already done (check passed)", step.name));
        return Ok(NodeResult::Succeeded(Done::AlreadyDone));
    }
    let instructions = step.instructions.as_ref().map(|text| scope.render(text, crate::schema::ArgType::Text, crate::interpolate::Mode::Display).unwrap_or_default()).unwrap_or_default();
    let confirmed = context.options.confirm_all || context.options.confirm.contains(&step.name) || context.with_state(|state| state.confirmed.contains(&step.name));

    if !confirmed {
        context.reporter.print(&format!("\n! manual step \"{}\":\n{}\n", step.name, indent(&instructions)));
        let answer = context.reporter.ask("Type 'done' when you have finished this step: ");
        if answer.as_deref() != Some("done") {
            context.reporter.line(&format!("… manual step \"{}\" is waiting for the operator; when it is done, continue with: {}", step.name, confirm_command(&[step.name.as_str()])));
            return Ok(NodeResult::Waiting);
        }
    }

    let now = crate::report::timestamp();
    context.record(Record::Confirmed { step: step.name.clone(), at: now.clone() })?;
    context.record(Record::Applied { step: step.name.clone(), hash: hash.to_string(), at: now, via_check: false, preexisting: false, captures: Default::default(), undo: serde_json::Value::Null, output: String::new() })?;
    context.reporter.line(&format!("✓ manual step \"{}\" confirmed", step.name));
    Ok(NodeResult::Succeeded(Done::Ran))
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

/// Returns the last `limit` bytes of a text, cut at a character boundary.
pub fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Runs the check probes of pending steps; returns the (step, definition hash) of those that pass.
pub async fn refresh(context: Arc<Context>) -> Vec<(String, String)> {
    let scope = context.scope();
    let state = context.state();
    let mut done = Vec::new();
    for step in &context.loaded.runbook.steps {
        let pending = apply_change(step, &state, &scope).0 != Change::None;
        if step.kind != StepKind::Step || step.checks.is_empty() || !pending {
            continue;
        }
        if probe::evaluate_all(&context, &step.checks, &scope).await.passed {
            done.push((step.name.clone(), definition_hash(step, &scope)));
        }
    }
    done
}

/// Returns this run's command line with `--confirm STEP` added for each step, shell-quoted,
/// so the operator can paste it with the same runbook, variables and state directory.
pub fn confirm_command(steps: &[&str]) -> String {
    let mut words: Vec<String> = vec!["rb6".to_string()];
    words.extend(std::env::args().skip(1).map(|arg| crate::interpolate::quote_shell_word(&arg)));
    for step in steps {
        words.push("--confirm".to_string());
        words.push(crate::interpolate::quote_shell_word(step));
    }
    words.join(" ")
}
