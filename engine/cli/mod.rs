//! Command-line interface: argument parsing and one handler per command.
//!
//! Handlers call the library and hand every message to the [`Reporter`]. Exit codes:
//! 0 success (no changes with `--detailed-exitcode`), 1 error, 2 changes pending with
//! `--detailed-exitcode`, 3 stopped waiting for an operator's confirmation of a manual step.

mod apply;
mod commands;
mod doctor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use rb6::report::Reporter;

/// rb6: plan, apply and undo runbooks with checkpoints.
#[derive(Debug, Parser)]
#[command(name = "rb6", version = version_text(), about, long_about = None)]
pub struct Cli {
    /// Stream every line of step output.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a runbook and report every problem found.
    Validate {
        /// The runbook file.
        file: PathBuf,
    },
    /// Show what `apply` (or, with --undo, `undo`) would do.
    Plan(PlanArgs),
    /// Print the dependency graph in Graphviz DOT.
    Graph {
        /// The runbook file.
        file: PathBuf,
    },
    /// Apply a runbook, or a plan saved with `plan -out FILE`.
    Apply(ApplyArgs),
    /// Undo applied steps, dependents before the steps they need.
    Undo(UndoArgs),
    /// Inspect the state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Remove a lock left by an rb6 process (after confirmation).
    Unlock {
        /// The runbook file.
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Remove without asking.
        #[arg(long)]
        force: bool,
    },
    /// Check that Docker, compose and the runbook's PostgreSQL connections are reachable.
    Doctor {
        /// The runbook file whose connections to check.
        file: Option<PathBuf>,
        #[command(flatten)]
        variables: VariableArgs,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// List every step with its status.
    List {
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one step's record, secrets redacted.
    Show {
        file: PathBuf,
        step: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Variable inputs shared by commands.
#[derive(Debug, Args, Clone, Default)]
pub struct VariableArgs {
    /// Set a variable: --var name=value (repeatable; wins over --var-file and RB6_VAR_name).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variables from a file of `name = value` lines (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// The state directory option.
#[derive(Debug, Args, Clone, Default)]
pub struct StateArgs {
    /// State directory (default: .rb6 beside the runbook).
    #[arg(long = "state", value_name = "DIR")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The runbook file.
    file: PathBuf,
    #[command(flatten)]
    variables: VariableArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Plan an undo instead of an apply.
    #[arg(long)]
    undo: bool,
    /// Run the steps' read-only `check` probes to find steps already done.
    #[arg(long)]
    refresh: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 when there are no changes, 1 on error, 2 when changes are pending.
    #[arg(long = "detailed-exitcode")]
    detailed_exitcode: bool,
    /// Save the plan to FILE for `rb6 apply FILE` (also spelled -out FILE).
    #[arg(long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The runbook file, or a plan file saved by `plan -out`.
    file: PathBuf,
    #[command(flatten)]
    variables: VariableArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Apply without asking for confirmation.
    #[arg(long = "auto-approve")]
    auto_approve: bool,
    /// Run at most N steps at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    parallelism: usize,
    /// Confirm a manual step as done (repeatable).
    #[arg(long = "confirm", value_name = "STEP")]
    confirm: Vec<String>,
    /// Confirm every manual step as done.
    #[arg(long = "confirm-all")]
    confirm_all: bool,
    /// Run interrupted steps that have no `check` probe again without asking.
    #[arg(long = "retry-interrupted")]
    retry_interrupted: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The runbook file.
    file: PathBuf,
    #[command(flatten)]
    variables: VariableArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Undo without asking for confirmation.
    #[arg(long = "auto-approve")]
    auto_approve: bool,
    /// Undo only STEP and everything that depends on it.
    #[arg(long, value_name = "STEP")]
    target: Option<String>,
    /// Undo file edits even when the file changed since rb6 wrote it.
    #[arg(long)]
    force: bool,
    /// Run at most N undos at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    parallelism: usize,
}

fn version_text() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Parses the command line and runs the command; returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse_from(terraform_style_args(std::env::args_os()));
    init_tracing();
    let reporter = Reporter::new(cli.verbose);
    let code = commands::dispatch(cli.command, &reporter);
    ExitCode::from(code)
}

/// Accepts Terraform's single-dash `-out FILE` spelling as `--out FILE`.
fn terraform_style_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|arg| match arg.to_str() {
        Some("-out") => "--out".into(),
        Some(text) if text.starts_with("-out=") => format!("-{text}").into(),
        _ => arg,
    })
    .collect()
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RB6_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
