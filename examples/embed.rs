//! Embedding rb6: load, validate and plan a runbook from Rust, and optionally apply and undo it.
//!
//! ```console
//! $ cargo run --example embed -- examples/local-files.rb6           # print the plan
//! $ cargo run --example embed -- examples/local-files.rb6 --apply   # apply, then undo
//! ```
//!
//! `--apply` keeps its state in a fresh directory under the system temp directory, so it
//! never touches the `.rb6/` state beside the runbook. Variables come from the defaults and
//! `RB6_VAR_name`, as with the `rb6` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use rb6::execute::{self, Context, Options};
use rb6::interpolate::Scope;
use rb6::plan::{plan_apply, plan_undo};
use rb6::render::{plan_text, Style};
use rb6::report::Reporter;
use rb6::state::records::State;
use rb6::state::store::Store;
use rb6::state::{LockHolder, StateDir, StateLock};
use rb6::vars::{resolve_values, VariableInputs};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: embed RUNBOOK [--apply]");
        return ExitCode::FAILURE;
    };
    let apply = args.next().as_deref() == Some("--apply");

    match run(&path, apply) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, apply: bool) -> Result<(), String> {
    // Load: parse, resolve and build the graph. An invalid runbook returns every problem found.
    let loaded = rb6::load(path).map_err(|error| match error {
        rb6::LoadError::Invalid(diagnostics) => format!("{} is invalid: {diagnostics}", path.display()),
        other => other.to_string(),
    })?;
    println!("{} is valid: {} steps", loaded.runbook.name, loaded.runbook.steps.len());

    // Variables: defaults, then RB6_VAR_name (the binary adds --var-file and --var on top).
    let inputs = VariableInputs::default().with_process_environment();
    let values = resolve_values(&loaded.runbook, &inputs).map_err(|error| error.to_string())?;

    // Plan against an empty state, offline: nothing is run or written.
    let scope = Scope::new(&loaded.runbook, values.clone(), &State::default());
    let plan = plan_apply(&loaded.runbook, &loaded.graph, &State::default(), &scope);
    print!("{}", plan_text(&plan, Style::default()));
    if !apply {
        return Ok(());
    }

    let state_dir = std::env::temp_dir().join(format!("rb6-embed-{}", std::process::id()));
    println!("\nApplying with the state in {}", state_dir.display());
    let result = apply_then_undo(loaded, values, &state_dir);
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}

fn apply_then_undo(loaded: rb6::LoadedRunbook, values: std::collections::BTreeMap<String, serde_json::Value>, state_dir: &std::path::Path) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
    let reporter = Reporter::new(false);

    // The lock keeps a second rb6 process off this state directory while it is held.
    let dir = StateDir::open(state_dir).map_err(|error| error.to_string())?;
    let _lock = StateLock::acquire(&dir, LockHolder::current("embed example")).map_err(|error| error.to_string())?;

    for undo in [false, true] {
        let store = Store::open(state_dir).map_err(|error| error.to_string())?;
        let scope = Scope::new(&loaded.runbook, values.clone(), store.state());
        if undo {
            let plan = plan_undo(&loaded.runbook, &loaded.graph, store.state(), &scope, None);
            print!("\n{}", plan_text(&plan, Style::default()));
        }

        let options = Options { parallelism: 4, ..Options::default() };
        let context = Context::new(loaded.clone(), scope, store, reporter.clone(), options);
        let outcome = runtime.block_on(async {
            context.prepare_secrets()?;
            Ok::<_, String>(if undo { execute::undo(context).await } else { execute::apply(context).await })
        })?;

        let verb = if undo { "undo" } else { "apply" };
        if !outcome.is_success() {
            return Err(format!("{verb} stopped: failed {:?}, waiting {:?}, not started {:?}", outcome.failed, outcome.waiting, outcome.not_started));
        }
        println!("{verb}: {} ran, {} already done, {} skipped", outcome.ran.len(), outcome.already_done.len(), outcome.skipped.len());
    }
    Ok(())
}
