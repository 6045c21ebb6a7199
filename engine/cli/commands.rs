//! One handler per command. Each returns the process exit code.

use std::path::{Path, PathBuf};

use rb6::interpolate::Scope;
use rb6::plan::{plan_apply, plan_undo, Plan};
use rb6::render::{plan_json, plan_text, Style};
use rb6::report::Reporter;
use rb6::saved_plan::SavedPlan;
use rb6::state::records::State;
use rb6::state::store::Store;
use rb6::vars::{resolve_values, VariableInputs};
use rb6::{LoadError, LoadedRunbook};

use super::{Command, PlanArgs, StateArgs, StateCommand, VariableArgs};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for any error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code for "changes pending" with `--detailed-exitcode`.
pub const EXIT_CHANGES: u8 = 2;

/// Runs one command.
pub fn dispatch(command: Command, reporter: &Reporter) -> u8 {
    let result = match command {
        Command::Validate { file } => validate(&file, reporter),
        Command::Plan(args) => plan(args, reporter),
        Command::Graph { file } => graph(&file, reporter),
        Command::Apply(args) => super::apply::apply(args, reporter),
        Command::Undo(args) => super::apply::undo(args, reporter),
        Command::State { command } => state(command, reporter),
        Command::Unlock { file, state, force } => super::apply::unlock(&file, &state, force, reporter),
        Command::Doctor { file, variables } => super::doctor::doctor(file.as_deref(), &variables, reporter),
    };
    result.unwrap_or_else(|code| code)
}

/// Loads a runbook, reporting its problems and warnings; `Err(EXIT_ERROR)` when invalid.
pub fn load(file: &Path, reporter: &Reporter) -> Result<LoadedRunbook, u8> {
    match rb6::load(file) {
        Ok(loaded) => {
            reporter.problems(&loaded.warnings.problems);
            Ok(loaded)
        }
        Err(LoadError::Invalid(diagnostics)) => {
            reporter.problems(&diagnostics.problems);
            reporter.error(&format!("{} is invalid: {diagnostics}", file.display()));
            Err(EXIT_ERROR)
        }
        Err(error) => {
            reporter.diagnostic(&error);
            Err(EXIT_ERROR)
        }
    }
}

fn validate(file: &Path, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = load(file, reporter)?;
    let steps = loaded.runbook.steps.len();
    let warnings = loaded.warnings.warning_count();
    reporter.print(&format!("{} is valid: {steps} steps, {warnings} warning(s).\n", file.display()));
    Ok(EXIT_OK)
}

fn graph(file: &Path, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = load(file, reporter)?;
    reporter.print(&loaded.graph.to_dot(&loaded.runbook));
    Ok(EXIT_OK)
}

/// Returns the state directory: `--state DIR`, or `.rb6` beside the runbook.
pub fn state_dir(loaded: &LoadedRunbook, args: &StateArgs) -> PathBuf {
    args.state.clone().unwrap_or_else(|| loaded.runbook.directory.join(".rb6"))
}

/// Resolves variable values from defaults, the environment, files and `--var`.
pub fn variable_values(loaded: &LoadedRunbook, args: &VariableArgs, reporter: &Reporter) -> Result<std::collections::BTreeMap<String, serde_json::Value>, u8> {
    variable_values_over(loaded, None, args, reporter)
}

/// Resolves variable values over `base` (a saved plan's values) or, when `None`, the defaults.
pub fn variable_values_over(
    loaded: &LoadedRunbook,
    base: Option<std::collections::BTreeMap<String, Option<serde_json::Value>>>,
    args: &VariableArgs,
    reporter: &Reporter,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>, u8> {
    let fail = |error: rb6::vars::VariableError| {
        reporter.diagnostic(&error);
        EXIT_ERROR
    };
    let assignments = VariableInputs::parse_assignments(&args.vars).map_err(fail)?;
    let inputs = VariableInputs { assignments, files: args.var_files.clone(), environment: Vec::new() }.with_process_environment();
    match base {
        Some(base) => rb6::vars::resolve_values_over(&loaded.runbook, base, &inputs).map_err(fail),
        None => resolve_values(&loaded.runbook, &inputs).map_err(fail),
    }
}

/// Reads the state without changing it.
pub fn read_state(dir: &Path, reporter: &Reporter) -> Result<State, u8> {
    Store::read(dir).map_err(|error| {
        reporter.diagnostic(&error);
        EXIT_ERROR
    })
}

fn plan(args: PlanArgs, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = load(&args.file, reporter)?;
    let values = variable_values(&loaded, &args.variables, reporter)?;
    let dir = state_dir(&loaded, &args.state);
    let mut state = read_state(&dir, reporter)?;
    let scope = Scope::new(&loaded.runbook, values.clone(), &state);

    if args.refresh && !args.undo {
        super::apply::refresh(&loaded, &scope, &mut state, reporter);
    }

    let plan = if args.undo {
        plan_undo(&loaded.runbook, &loaded.graph, &state, &scope, target_index(&loaded, None, reporter)?)
    } else {
        plan_apply(&loaded.runbook, &loaded.graph, &state, &scope)
    };

    show_plan(&plan, args.json, reporter);
    if let Some(out) = &args.out {
        save_plan(&loaded, &values, &state, &plan, out, reporter)?;
    }

    let pending = !plan.summary.is_empty();
    // The process exits next: freeing a large runbook and its plan piece by piece would cost
    // a tenth of the plan's time, and the operating system reclaims the memory anyway.
    std::mem::forget((loaded, plan, state, scope));
    Ok(if args.detailed_exitcode && pending { EXIT_CHANGES } else { EXIT_OK })
}

/// Prints a plan as text or JSON.
pub fn show_plan(plan: &Plan, json: bool, reporter: &Reporter) {
    if json {
        reporter.print(&plan_json(plan));
    } else {
        reporter.print(&plan_text(plan, Style { color: reporter.color }));
    }
}

fn save_plan(loaded: &LoadedRunbook, values: &std::collections::BTreeMap<String, serde_json::Value>, state: &State, plan: &Plan, out: &Path, reporter: &Reporter) -> Result<(), u8> {
    let saved = SavedPlan::new(loaded, values, state, plan.clone());
    saved.write(out).map_err(|error| {
        reporter.error(&format!("can't write plan file {}: {error}", out.display()));
        EXIT_ERROR
    })?;
    reporter.print(&format!("\nSaved the plan to {}. Apply it exactly with: rb6 apply {}\n", out.display(), out.display()));
    Ok(())
}

/// Finds a `--target` step's index, reporting an unknown name.
pub fn target_index(loaded: &LoadedRunbook, target: Option<&str>, reporter: &Reporter) -> Result<Option<usize>, u8> {
    let Some(target) = target else { return Ok(None) };
    match loaded.runbook.step_index(target) {
        Some(index) => Ok(Some(index)),
        None => {
            let names = loaded.runbook.steps.iter().map(|step| step.name.as_str());
            let hint = rb6::resolve::did_you_mean(target, names).map(|name| format!(" Did you mean `{name}`?")).unwrap_or_default();
            reporter.error(&format!("unknown step `{target}` for --target.{hint}"));
            Err(EXIT_ERROR)
        }
    }
}

fn state(command: StateCommand, reporter: &Reporter) -> Result<u8, u8> {
    match command {
        StateCommand::List { file, state } => {
            let loaded = load(&file, reporter)?;
            let current = read_state(&state_dir(&loaded, &state), reporter)?;
            reporter.add_secrets(current.secrets.values());
            for step in &loaded.runbook.steps {
                let status = current.steps.get(&step.name).map_or("pending".to_string(), |record| status_name(record.status));
                let finished = current.steps.get(&step.name).and_then(|record| record.finished_at.clone()).unwrap_or_default();
                reporter.print(&format!("{:<8} {:<40} {:<12} {finished}\n", step.kind.keyword(), step.name, status));
            }
            for name in current.secrets.keys() {
                reporter.print(&format!("{:<8} {:<40} {:<12}\n", "secret", name, "(sensitive)"));
            }
            Ok(EXIT_OK)
        }
        StateCommand::Show { file, step, state } => {
            let loaded = load(&file, reporter)?;
            let current = read_state(&state_dir(&loaded, &state), reporter)?;
            reporter.add_secrets(current.secrets.values());
            let sensitive: Vec<String> = loaded.runbook.steps.iter().flat_map(|s| &s.captures).filter(|c| c.sensitive).map(|c| c.name.clone()).collect();
            let Some(record) = current.steps.get(&step) else {
                reporter.error(&format!("step `{step}` has no record in the state (never applied)"));
                return Err(EXIT_ERROR);
            };
            let mut record = record.clone();
            for (name, value) in record.captures.iter_mut() {
                if sensitive.contains(name) {
                    reporter.add_secrets([&value.clone()]);
                    *value = rb6::interpolate::SENSITIVE.to_string();
                }
            }
            let mut shown = serde_json::to_value(&record).unwrap_or_default();
            shown["undo"] = undo_summary(&record.undo);
            if let Some(fields) = shown.as_object_mut() {
                fields.remove("before");
            }
            reporter.print(&(serde_json::to_string_pretty(&shown).unwrap_or_default() + "\n"));
            Ok(EXIT_OK)
        }
    }
}

/// Describes a step's undo data without its content: recorded file contents may contain
/// secrets in encodings the redactor can't see (the journal stores them as hex).
fn undo_summary(undo: &serde_json::Value) -> serde_json::Value {
    if let Some(change) = undo.get("file") {
        let previous = match change.get("before") {
            Some(serde_json::Value::String(kind)) => kind.to_lowercase(),
            Some(serde_json::Value::Object(fields)) => match fields.keys().next().map(String::as_str) {
                Some("File") => "file content recorded (not shown)".to_string(),
                Some("Directory") => "created directories recorded".to_string(),
                Some("Tree") => "removed tree recorded (not shown)".to_string(),
                Some(other) => other.to_lowercase(),
                None => String::new(),
            },
            _ => String::new(),
        };
        return serde_json::json!({ "file": change.get("path"), "previous": previous, "after_sha256": change.get("after_sha256") });
    }
    undo.clone()
}

/// Spells a status as the journal does: `applied`, `undo_started`, ...
fn status_name(status: rb6::state::records::StepStatus) -> String {
    serde_json::to_value(status).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}
