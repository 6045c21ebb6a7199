//! The runbooks in `examples/` and `runbooks/` run through the real `rb6` binary.
//!
//! Every runbook must validate. Each local example (no Docker, no PostgreSQL) is applied and
//! undone in a temporary copy of `examples/`, with its files under a temporary `dir` and its
//! state in a temporary directory. After the undo, the work directory must be gone and the
//! copied example files byte-identical to before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Examples that apply and undo on this machine alone, with the environment each needs.
const LOCAL_EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    ("local-files.rb6", &[]),
    ("shell-and-captures.rb6", &[]),
    ("gates.rb6", &[]),
    ("manual-step.rb6", &[]),
    ("undo-order.rb6", &[]),
    ("variables.rb6", &[]),
    ("secrets.rb6", &[("EXAMPLE_API_KEY", "key-from-the-test")]),
];

/// Examples that need Docker or PostgreSQL to apply: they are validated and planned only.
const ENGINE_EXAMPLES: &[&str] = &["docker.rb6", "postgres.rb6"];

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runbooks_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries.map(|entry| entry.expect("a readable directory entry").path()).filter(|path| path.extension().is_some_and(|ext| ext == "rb6")).collect();
    found.sort();
    found
}

/// Runs the rb6 binary with stdin not a terminal, so it never waits for input.
fn rb6(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rb6"));
    command.args(args).stdin(Stdio::null()).env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the rb6 binary runs")
}

fn describe(output: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Reads every file under `dir`, keyed by its path relative to `dir`.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("a readable directory") {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.strip_prefix(dir).expect("inside dir").to_path_buf(), std::fs::read(&path).expect("a readable file"));
            }
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("a readable directory") {
        let path = entry.expect("a readable directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != ".rb6") {
                copy_dir(&path, &target);
            }
        } else {
            std::fs::copy(&path, &target).expect("copy a file");
        }
    }
}

/// A temporary copy of `examples/` with a work directory and a state directory beside it.
struct Sandbox {
    _root: tempfile::TempDir,
    examples: PathBuf,
    work: PathBuf,
    state: PathBuf,
    original: BTreeMap<PathBuf, Vec<u8>>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().expect("a temporary directory");
        let examples = root.path().join("examples");
        copy_dir(&repository().join("examples"), &examples);
        let original = files_under(&examples);
        let work = root.path().join("work");
        let state = root.path().join("state");
        Sandbox { _root: root, examples, work, state, original }
    }

    /// Runs `rb6 COMMAND EXAMPLE --var dir=WORK --state STATE --auto-approve EXTRA...`.
    fn run(&self, command: &str, example: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let runbook = self.examples.join(example);
        let dir = format!("dir={}", self.work.display());
        let mut args = vec![command, runbook.to_str().expect("UTF-8 path"), "--var", &dir, "--state", self.state.to_str().expect("UTF-8 path"), "--auto-approve"];
        args.extend_from_slice(extra);
        rb6(&args, env)
    }

    fn assert_clean(&self, example: &str) {
        assert!(!self.work.exists(), "{example}: undo left the work directory {} behind: {:?}", self.work.display(), files_under(&self.work).keys().collect::<Vec<_>>());
        let now = files_under(&self.examples);
        for (path, bytes) in &self.original {
            assert_eq!(now.get(path), Some(bytes), "{example}: {} changed or disappeared after apply and undo", path.display());
        }
        let added: Vec<&PathBuf> = now.keys().filter(|path| !self.original.contains_key(*path)).collect();
        assert!(added.is_empty(), "{example}: apply and undo left new files in the examples copy: {added:?}");
    }
}

#[test]
fn every_runbook_validates() {
    let mut runbooks = runbooks_in(&repository().join("examples"));
    runbooks.extend(runbooks_in(&repository().join("runbooks")));
    assert!(runbooks.len() >= LOCAL_EXAMPLES.len() + ENGINE_EXAMPLES.len(), "expected the examples in examples/, found {runbooks:?}");

    for runbook in runbooks {
        let output = rb6(&["validate", runbook.to_str().expect("UTF-8 path")], &[]);
        assert!(output.status.success(), "rb6 validate {} failed:\n{}", runbook.display(), describe(&output));
    }
}

#[test]
fn every_example_is_listed() {
    for runbook in runbooks_in(&repository().join("examples")) {
        let name = runbook.file_name().and_then(|name| name.to_str()).expect("a UTF-8 file name");
        let listed = LOCAL_EXAMPLES.iter().any(|(local, _)| *local == name) || ENGINE_EXAMPLES.contains(&name);
        assert!(listed, "examples/{name} is in neither LOCAL_EXAMPLES nor ENGINE_EXAMPLES of tests/examples.rs");
    }
}

#[test]
fn engine_examples_plan_offline() {
    let state = tempfile::tempdir().expect("a temporary directory");
    for example in ENGINE_EXAMPLES {
        let runbook = repository().join("examples").join(example);
        let output = rb6(&["plan", runbook.to_str().expect("UTF-8 path"), "--state", state.path().to_str().expect("UTF-8 path"), "--detailed-exitcode"], &[]);
        assert_eq!(output.status.code(), Some(2), "rb6 plan {example} should exit 2 (changes pending):\n{}", describe(&output));
    }
}

#[test]
fn local_examples_apply_and_undo() {
    for (example, env) in LOCAL_EXAMPLES {
        let sandbox = Sandbox::new();
        let confirm: &[&str] = if *example == "manual-step.rb6" { &["--confirm-all"] } else { &[] };

        let applied = sandbox.run("apply", example, confirm, env);
        assert!(applied.status.success(), "{example}: apply failed:\n{}", describe(&applied));
        assert!(sandbox.work.exists(), "{example}: apply did not create the work directory");

        let again = sandbox.run("apply", example, confirm, env);
        assert!(String::from_utf8_lossy(&again.stdout).contains("No changes."), "{example}: a second apply should change nothing:\n{}", describe(&again));

        let undone = sandbox.run("undo", example, &[], env);
        assert!(undone.status.success(), "{example}: undo failed:\n{}", describe(&undone));
        sandbox.assert_clean(example);
    }
}

#[test]
fn manual_step_waits_with_exit_code_3() {
    let sandbox = Sandbox::new();
    let waiting = sandbox.run("apply", "manual-step.rb6", &[], &[]);
    assert_eq!(waiting.status.code(), Some(3), "apply without --confirm should stop at the manual step:\n{}", describe(&waiting));
    assert!(!sandbox.work.join("data.txt").exists(), "the step after the manual step ran before the confirmation");

    let confirmed = sandbox.run("apply", "manual-step.rb6", &["--confirm", "check_disk"], &[]);
    assert!(confirmed.status.success(), "apply --confirm check_disk failed:\n{}", describe(&confirmed));
    assert!(sandbox.work.join("data.txt").exists(), "the step after the manual step did not run after the confirmation");

    let undone = sandbox.run("undo", "manual-step.rb6", &[], &[]);
    assert!(undone.status.success(), "undo failed:\n{}", describe(&undone));
    sandbox.assert_clean("manual-step.rb6");
}

#[test]
fn failing_gate_writes_report() {
    let sandbox = Sandbox::new();
    let failed = sandbox.run("apply", "gates.rb6", &["--var", "workers=0"], &[]);
    assert_eq!(failed.status.code(), Some(1), "apply with workers=0 should fail at the gate:\n{}", describe(&failed));
    assert!(!sandbox.work.join("ready").exists(), "the step after the failed gate ran");

    let reports: Vec<PathBuf> = std::fs::read_dir(sandbox.state.join("reports")).expect("a reports directory").map(|entry| entry.expect("an entry").path()).collect();
    assert_eq!(reports.len(), 1, "expected one gate report, found {reports:?}");
    let report = std::fs::read_to_string(&reports[0]).expect("a readable report");
    assert!(report.contains("workers: 0"), "the report should contain the on_fail evidence (the config file):\n{report}");

    let undone = sandbox.run("undo", "gates.rb6", &["--var", "workers=0"], &[]);
    assert!(undone.status.success(), "undo after the failed gate failed:\n{}", describe(&undone));
    sandbox.assert_clean("gates.rb6");
}

#[test]
fn variables_reapplied_undo_to_nothing() {
    let sandbox = Sandbox::new();
    let var_file = sandbox.examples.join("variables.rb6vars");
    let runs: [&[&str]; 3] = [&[], &["--var-file", var_file.to_str().expect("UTF-8 path")], &["--var-file", var_file.to_str().expect("UTF-8 path"), "--var", "port=9000"]];
    for extra in runs {
        let applied = sandbox.run("apply", "variables.rb6", extra, &[]);
        assert!(applied.status.success(), "apply {extra:?} failed:\n{}", describe(&applied));
    }

    let settings = std::fs::read_to_string(sandbox.work.join("settings.yaml")).expect("settings.yaml written");
    assert!(settings.contains("port: 9000"), "--var must win over --var-file:\n{settings}");
    assert!(settings.contains("owner: \"it's me\""), "the var file's value must be used:\n{settings}");

    let undone = sandbox.run("undo", "variables.rb6", &[], &[]);
    assert!(undone.status.success(), "undo failed:\n{}", describe(&undone));
    sandbox.assert_clean("variables.rb6");
}

#[test]
fn shell_values_stay_one_word() {
    let sandbox = Sandbox::new();
    let marker = sandbox.work.with_file_name("pwned");
    let greeting = format!("greeting=x'; touch {} #", marker.display());
    let applied = sandbox.run("apply", "shell-and-captures.rb6", &["--var", &greeting], &[]);
    assert!(applied.status.success(), "apply failed:\n{}", describe(&applied));
    assert!(!marker.exists(), "a variable value ran as a command");

    let written = std::fs::read_to_string(sandbox.work.join("greeting.txt")).expect("greeting.txt written");
    assert_eq!(written, format!("{}\n", &greeting["greeting=".len()..]), "the value must be printed as it is");

    let undone = sandbox.run("undo", "shell-and-captures.rb6", &[], &[]);
    assert!(undone.status.success(), "undo failed:\n{}", describe(&undone));
}
