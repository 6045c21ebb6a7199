//! `rb6 apply`, `rb6 undo`, `rb6 unlock` and `plan --refresh`: the commands that run steps.

use std::path::Path;
use std::sync::Arc;

use rb6::execute::{self, Context, Options, Outcome};
use rb6::interpolate::Scope;
use rb6::plan::{plan_apply, plan_undo};
use rb6::report::Reporter;
use rb6::saved_plan::SavedPlan;
use rb6::state::records::{Record, State};
use rb6::state::store::Store;
use rb6::state::{LockError, LockHolder, StateDir, StateLock};
use rb6::LoadedRunbook;

use super::commands::{load, show_plan, state_dir, target_index, variable_values, variable_values_over, EXIT_ERROR, EXIT_OK};
use super::{ApplyArgs, StateArgs, UndoArgs};

/// Exit code when the run stopped at a manual step waiting for the operator.
pub const EXIT_WAITING: u8 = 3;

/// `rb6 apply FILE` or `rb6 apply PLANFILE`.
pub fn apply(args: ApplyArgs, reporter: &Reporter) -> Result<u8, u8> {
    let saved = SavedPlan::read(&args.file);
    let runbook_path = saved.as_ref().map_or(args.file.clone(), |plan| plan.runbook_path.clone());
    let loaded = load(&runbook_path, reporter)?;
    // A saved plan carries its variable values; values given now override them, and then
    // count as a change that makes the plan stale.
    let base = saved.as_ref().map(|saved| saved.variables.iter().map(|(name, value)| (name.clone(), Some(value.clone()))).collect());
    let values = variable_values_over(&loaded, base, &args.variables, reporter)?;
    let dir = state_dir(&loaded, &args.state);
    let (_lock, store) = lock_and_open(&dir, "apply", reporter)?;

    if let Some(saved) = &saved {
        let changes = saved.staleness(&loaded, &values, store.state());
        if !changes.is_empty() {
            reporter.error(&format!("the saved plan {} is stale and was not applied: {}. Run `rb6 plan -out FILE` again.", args.file.display(), changes.join("; ")));
            return Err(EXIT_ERROR);
        }
    }

    let scope = Scope::new(&loaded.runbook, values, store.state());
    let plan = plan_apply(&loaded.runbook, &loaded.graph, store.state(), &scope);
    show_plan(&plan, false, reporter);
    if plan.summary.is_empty() {
        return Ok(EXIT_OK);
    }
    if saved.is_none() && !args.auto_approve {
        confirm("apply", reporter)?;
    }

    let options = Options { parallelism: args.parallelism, confirm: args.confirm.into_iter().collect(), confirm_all: args.confirm_all, retry_interrupted: args.retry_interrupted, force: false, target: None };
    let context = Context::new(loaded, scope, store, reporter.clone(), options);
    let outcome = run(context, true, reporter)?;
    Ok(finish("Apply", &outcome, reporter))
}

/// `rb6 undo FILE`.
pub fn undo(args: UndoArgs, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = load(&args.file, reporter)?;
    let values = variable_values(&loaded, &args.variables, reporter)?;
    let target = target_index(&loaded, args.target.as_deref(), reporter)?;
    let dir = state_dir(&loaded, &args.state);
    let (_lock, store) = lock_and_open(&dir, "undo", reporter)?;

    let scope = Scope::new(&loaded.runbook, values, store.state());
    let plan = plan_undo(&loaded.runbook, &loaded.graph, store.state(), &scope, target);
    show_plan(&plan, false, reporter);
    if plan.entries.is_empty() {
        return Ok(EXIT_OK);
    }
    if !args.auto_approve {
        confirm("undo", reporter)?;
    }

    let options = Options { parallelism: args.parallelism, force: args.force, target, ..Options::default() };
    let context = Context::new(loaded, scope, store, reporter.clone(), options);
    let outcome = run(context, false, reporter)?;
    Ok(finish("Undo", &outcome, reporter))
}

fn lock_and_open(dir: &Path, command: &str, reporter: &Reporter) -> Result<(StateLock, Store), u8> {
    let fail = |message: String| {
        reporter.error(&message);
        EXIT_ERROR
    };
    let state_dir = StateDir::open(dir).map_err(|error| fail(error.to_string()))?;
    let holder = LockHolder::current(format!("rb6 {command} {}", std::env::args().skip(2).collect::<Vec<_>>().join(" ")));
    let lock = match StateLock::acquire(&state_dir, holder) {
        Ok(lock) => lock,
        Err(error @ LockError::Held { .. }) => return Err(fail(error.to_string())),
        Err(error) => return Err(fail(format!("can't lock the state in {}: {error}", dir.display()))),
    };
    if let Some(previous) = &lock.taken_over {
        reporter.warn(&format!("took over the lock of pid {} on {} (started {}, `{}`): that process is gone", previous.pid, previous.host, previous.started_at, previous.command));
    }
    let store = Store::open(dir).map_err(|error| {
        reporter.diagnostic(&error);
        EXIT_ERROR
    })?;
    Ok((lock, store))
}

fn confirm(verb: &str, reporter: &Reporter) -> Result<(), u8> {
    let question = format!("\nDo you want to perform these actions?\n  rb6 will {verb} the steps described above.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    match reporter.ask(&question) {
        Some(answer) if answer == "yes" => Ok(()),
        Some(_) => {
            reporter.error(&format!("{verb} cancelled."));
            Err(EXIT_ERROR)
        }
        None => {
            reporter.error(&format!("no terminal to confirm the {verb}; nothing was changed. Run with --auto-approve to {verb} without asking."));
            Err(EXIT_ERROR)
        }
    }
}

fn runtime(reporter: &Reporter) -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|error| {
        reporter.error(&format!("can't start the async runtime: {error}"));
        EXIT_ERROR
    })
}

fn run(context: Arc<Context>, apply: bool, reporter: &Reporter) -> Result<Outcome, u8> {
    runtime(reporter)?.block_on(async move {
        if let Err(error) = context.prepare_secrets() {
            reporter.error(&error);
            return Err(EXIT_ERROR);
        }
        Ok(if apply { execute::apply(context).await } else { execute::undo(context).await })
    })
}

fn finish(verb: &str, outcome: &Outcome, reporter: &Reporter) -> u8 {
    let counts = format!(
        "{} ran, {} already done, {} unchanged, {} skipped, {} failed, {} waiting, {} not started",
        outcome.ran.len(),
        outcome.already_done.len(),
        outcome.unchanged.len(),
        outcome.skipped.len(),
        outcome.failed.len(),
        outcome.waiting.len(),
        outcome.not_started.len()
    );
    if outcome.is_success() {
        reporter.print(&format!("\n{verb} complete: {counts}.\n"));
        return EXIT_OK;
    }

    reporter.print(&format!("\n{verb} stopped: {counts}.\n"));
    for (step, error) in &outcome.failed {
        reporter.print(&format!("  failed: {step}: {error}\n"));
    }
    if !outcome.not_started.is_empty() {
        reporter.print(&format!("  not started: {}\n", outcome.not_started.join(", ")));
    }
    if outcome.interrupted {
        reporter.print("  interrupted by Ctrl-C: running steps finished and were recorded; run the command again to continue.\n");
    }
    if !outcome.waiting.is_empty() && outcome.failed.is_empty() {
        let waiting: Vec<&str> = outcome.waiting.iter().map(String::as_str).collect();
        reporter.print(&format!("  waiting for the operator: {}. When done, confirm with:\n    {}\n", outcome.waiting.join(", "), execute::confirm_command(&waiting)));
        return EXIT_WAITING;
    }
    EXIT_ERROR
}

/// `rb6 unlock FILE`: removes a lock, asking first unless `--force`.
pub fn unlock(file: &Path, state: &StateArgs, force: bool, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = load(file, reporter)?;
    let dir = state_dir(&loaded, state);
    let state_dir = StateDir::open(&dir).map_err(|error| {
        reporter.error(&error.to_string());
        EXIT_ERROR
    })?;
    let holder = StateLock::read_holder(&state_dir).ok().flatten();
    let Some(holder) = holder else {
        reporter.print(&format!("No lock is held in {}.\n", dir.display()));
        return Ok(EXIT_OK);
    };

    reporter.print(&format!("The state in {} is locked by pid {} on {} since {} (`{}`).\n", dir.display(), holder.pid, holder.host, holder.started_at, holder.command));
    if !force {
        match reporter.ask("Remove this lock? Only 'yes' will be accepted: ") {
            Some(answer) if answer == "yes" => {}
            Some(_) => return Err(EXIT_ERROR),
            None => {
                reporter.error("no terminal to confirm; run `rb6 unlock --force FILE` to remove the lock without asking");
                return Err(EXIT_ERROR);
            }
        }
    }
    let removed = StateLock::force_remove(&state_dir).map_err(|error| {
        reporter.error(&error.to_string());
        EXIT_ERROR
    })?;
    if removed.held_by_live_process {
        reporter.warn("the holder process is still running; it may still write to the state");
    }
    reporter.print("Lock removed.\n");
    Ok(EXIT_OK)
}

/// Runs the read-only check probes of pending steps and marks passing ones done, in memory only.
pub fn refresh(loaded: &LoadedRunbook, scope: &Scope, state: &mut State, reporter: &Reporter) {
    let Ok(runtime) = runtime(reporter) else { return };
    let context = Context::read_only(loaded.clone(), scope.clone(), state.clone(), reporter.clone());
    let found = runtime.block_on(execute::refresh(context.clone()));
    for (step, hash) in found {
        state.apply(&Record::Applied { step, hash, at: rb6::report::timestamp(), via_check: true, preexisting: false, captures: Default::default(), undo: serde_json::Value::Null, output: String::new() });
    }
}

