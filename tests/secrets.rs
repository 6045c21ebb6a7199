//! A generated secret and a sensitive capture pass through every command that prints: plan,
//! plan --json, plan -out, apply -v, a failing step, a failing gate with evidence, state list,
//! state show and undo. None of their outputs, the saved plan or the gate reports may contain
//! either value, and the state directory must be private (files 0600, directories 0700).
//!
//! The values are read back from the state with the library (`Store::read`), so the test
//! checks the real values rb6 generated and captured.

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cli_support::{Run, Scratch};
use rb6::state::store::Store;

const RUNBOOK: &str = r#"runbook "secrets" { description = "a secret through every output" }

variable "fail" { default = "no" }
variable "gate" { default = "pass" }

secret "token" { length = 40 }

step "make_dir" {
  directory { path = "${runbook.dir}/out" }
}

step "write" {
  needs = [make_dir]
  file {
    path    = "${runbook.dir}/out/token.txt"
    content = "token=${secret.token}\n"
    mode    = "0600"
  }
}

step "use" {
  needs = [write]
  shell { run = "echo using ${secret.token}; printf %s ${secret.token} > ${runbook.dir}/out/copy.txt" }
  capture "copied" {
    file      = "${runbook.dir}/out/copy.txt"
    sensitive = true
  }
  undo { shell { run = "echo undoing ${secret.token}; rm -f ${runbook.dir}/out/copy.txt" } }
}

step "pin" {
  needs = [make_dir]
  shell { run = "od -An -N12 -tx1 /dev/urandom | tr -d ' \\n' > ${runbook.dir}/out/pin.txt" }
  capture "pin" {
    file      = "${runbook.dir}/out/pin.txt"
    sensitive = true
  }
  undo { shell { run = "rm -f ${runbook.dir}/out/pin.txt" } }
}

step "echo_captures" {
  needs = [use, pin]
  shell { run = "echo captured ${capture.copied} and pin ${capture.pin}; echo pin ${capture.pin} >&2" }
  undo { none = "prints only" }
}

step "flaky" {
  needs = [write]
  shell { run = "test ${var.fail} = no || { echo leaked ${secret.token} >&2; echo out ${secret.token}; exit 7; }" }
  undo { none = "test step" }
}

gate "token_written" {
  needs = [use]
  command { run = "test ${var.gate} = pass || { echo gate saw ${secret.token}; exit 1; }" }
  on_fail {
    command { run = "echo evidence ${secret.token}; cat ${runbook.dir}/out/token.txt" }
  }
}

manual "announce" {
  needs = [token_written, echo_captures]
  instructions = "The pin is ${capture.pin}; the token is in ${runbook.dir}/out/token.txt."
}
"#;

/// Every output collected during the test, labelled by the command that produced it.
struct Outputs {
    runs: Vec<(String, Run)>,
}

impl Outputs {
    fn record(&mut self, scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> &Run {
        let mut command = scratch.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let run = scratch.run(command);
        self.runs.push((args.join(" "), run));
        &self.runs.last().expect("just pushed").1
    }
}

fn state_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|error| panic!("list {}: {error}", dir.display())) {
        let path = entry.expect("directory entry").path();
        found.push(path.clone());
        if path.is_dir() {
            state_files(&path, found);
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|error| panic!("stat {}: {error}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn secrets_never_leak() {
    let scratch = Scratch::with_runbook(RUNBOOK);
    let mut outputs = Outputs { runs: Vec::new() };

    let plan = outputs.record(&scratch, &["plan", "runbook.rb6"], &[]);
    assert_eq!(plan.code, 0, "plan succeeds:\n{}", plan.stderr);
    let json = outputs.record(&scratch, &["plan", "--json", "runbook.rb6"], &[]);
    assert_eq!(json.code, 0, "plan --json succeeds:\n{}", json.stderr);
    let saved = outputs.record(&scratch, &["plan", "-out", "saved.plan", "runbook.rb6"], &[]);
    assert_eq!(saved.code, 0, "plan -out succeeds:\n{}", saved.stderr);

    let apply = outputs.record(&scratch, &["apply", "-v", "--confirm-all", "saved.plan"], &[]);
    assert_eq!(apply.code, 0, "apply -v of the saved plan succeeds:\n{}", apply.all_output());
    assert!(apply.stdout.contains("using (sensitive)"), "apply -v streams the step output with the secret redacted:\n{}", apply.stdout);

    let state = Store::read(&scratch.path().join(".rb6")).expect("read the state with the library");
    let token = state.secrets.get("token").expect("the state holds the generated secret").clone();
    let pin = state.steps.get("pin").and_then(|record| record.captures.get("pin")).expect("the state holds the sensitive capture").clone();
    assert_eq!(token.len(), 40, "the secret has the declared length");
    assert_eq!(pin.len(), 24, "the pin capture holds 12 random bytes in hex: {}", pin.len());
    assert!(scratch.read("out/token.txt").contains(&token), "the runbook wrote the real secret, so the checks below are meaningful");

    for args in [["state", "list", "runbook.rb6"].as_slice(), &["state", "show", "runbook.rb6", "use"], &["state", "show", "runbook.rb6", "pin"], &["state", "show", "runbook.rb6", "echo_captures"]] {
        let run = outputs.record(&scratch, args, &[]);
        assert_eq!(run.code, 0, "rb6 {} succeeds:\n{}", args.join(" "), run.stderr);
    }

    let gate = outputs.record(&scratch, &["apply", "-v", "--auto-approve", "--confirm-all", "runbook.rb6", "--var", "gate=fail"], &[("RB6_LOG", "debug")]);
    assert_eq!(gate.code, 1, "a failing gate stops the apply:\n{}", gate.all_output());

    let flaky = outputs.record(&scratch, &["apply", "-v", "--auto-approve", "--confirm-all", "runbook.rb6", "--var", "fail=yes"], &[("RB6_LOG", "debug")]);
    assert_eq!(flaky.code, 1, "a failing step stops the apply:\n{}", flaky.all_output());
    assert!(flaky.all_output().contains("leaked (sensitive)"), "the failing step's stderr is shown redacted:\n{}", flaky.all_output());

    let show_failed = outputs.record(&scratch, &["state", "show", "runbook.rb6", "flaky"], &[]);
    assert_eq!(show_failed.code, 0, "state show of the failed step succeeds:\n{}", show_failed.stderr);

    let undo = outputs.record(&scratch, &["undo", "-v", "--auto-approve", "runbook.rb6"], &[]);
    assert_eq!(undo.code, 0, "undo succeeds:\n{}", undo.all_output());
    assert!(undo.stdout.contains("undoing (sensitive)"), "undo -v streams the undo output redacted:\n{}", undo.stdout);

    for (command, run) in &outputs.runs {
        assert!(!run.stdout.contains(&token), "rb6 {command}: stdout contains the secret:\n{}", run.stdout);
        assert!(!run.stderr.contains(&token), "rb6 {command}: stderr contains the secret:\n{}", run.stderr);
        assert!(!run.stdout.contains(&pin), "rb6 {command}: stdout contains the sensitive capture:\n{}", run.stdout);
        assert!(!run.stderr.contains(&pin), "rb6 {command}: stderr contains the sensitive capture:\n{}", run.stderr);
    }

    let saved_plan = scratch.read("saved.plan");
    assert!(!saved_plan.contains(&token), "the saved plan contains the secret");
    assert_eq!(mode(&scratch.path().join("saved.plan")), 0o600, "mode of the saved plan");

    let reports: Vec<PathBuf> = std::fs::read_dir(scratch.path().join(".rb6/reports")).expect("the failing gate wrote a report").map(|entry| entry.expect("report entry").path()).collect();
    assert!(!reports.is_empty(), "the failing gate wrote at least one report");
    for report in &reports {
        let text = std::fs::read_to_string(report).expect("read the gate report");
        assert!(text.contains("evidence (sensitive)"), "the report holds the redacted evidence ({}):\n{text}", report.display());
        assert!(!text.contains(&token), "the gate report {} contains the secret", report.display());
        assert!(!text.contains(&pin), "the gate report {} contains the sensitive capture", report.display());
    }

    let state_dir = scratch.path().join(".rb6");
    assert_eq!(mode(&state_dir), 0o700, "mode of the state directory");
    let mut files = Vec::new();
    state_files(&state_dir, &mut files);
    for path in files {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "mode of {}", path.display());
    }
}
