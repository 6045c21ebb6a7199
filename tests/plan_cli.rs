//! Tests of `rb6 plan`, `rb6 graph` and saved plans, run through the real binary.
//!
//! The runbooks are local: they write files under the scratch directory (`${runbook.dir}`),
//! so apply runs for real without Docker or PostgreSQL. Plan snapshots replace the scratch
//! directory's path with `[DIR]`.

mod cli_support;

use std::os::unix::fs::PermissionsExt;

use cli_support::{stable, Scratch};

const LOCAL: &str = r#"runbook "plan-demo" { description = "local plan test" }

variable "word" { default = "hello" }
secret "token" { length = 24 }

step "make_dir" {
  description = "create the output directory"
  directory { path = "${runbook.dir}/out" }
}

step "write" {
  needs = [make_dir]
  file {
    path    = "${runbook.dir}/out/a.txt"
    content = "${var.word} ${secret.token}\n"
    mode    = "0600"
  }
}

step "count" {
  needs = [write]
  shell { run = "wc -c < ${runbook.dir}/out/a.txt" }
  capture "size" { stdout = true }
  undo { none = "only reads the file" }
}

step "stamp" {
  needs = [write]
  shell { run = "date > ${runbook.dir}/out/stamp.txt" }
}

gate "written" {
  needs = [count]
  file_check {
    path     = "${runbook.dir}/out/a.txt"
    contains = var.word
  }
}

manual "announce" {
  needs = [written, stamp]
  instructions = <<-TEXT
    The file has ${capture.size} bytes.
  TEXT
}
"#;

fn local() -> Scratch {
    Scratch::with_runbook(LOCAL)
}

fn apply_all(scratch: &Scratch, extra: &[&str]) {
    let mut args = vec!["apply", "--auto-approve", "--confirm-all", "runbook.rb6"];
    args.extend_from_slice(extra);
    let run = scratch.rb6(&args);
    assert_eq!(run.code, 0, "apply of the local runbook succeeds:\n{}", run.all_output());
}

fn plan_json(scratch: &Scratch, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--json", "runbook.rb6"];
    args.extend_from_slice(extra);
    let run = scratch.rb6(&args);
    assert_eq!(run.code, 0, "plan --json succeeds:\n{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("plan --json prints JSON ({error}):\n{}", run.stdout))
}

/// The rendered `content` argument of step `write` in a JSON plan.
fn write_content(plan: &serde_json::Value) -> String {
    let entry = plan["entries"].as_array().expect("entries is a list").iter().find(|entry| entry["step"] == "write").expect("plan has step write");
    let args = entry["action"]["args"].as_array().expect("action args are a list");
    let content = args.iter().find(|pair| pair[0] == "content").expect("write has a content argument");
    content[1].as_str().expect("content is a string").to_string()
}

#[test]
fn plan_shows_legend_and_summary() {
    let scratch = local();
    let run = scratch.rb6(&["plan", "runbook.rb6"]);
    assert_eq!(run.code, 0, "plan exits 0 without --detailed-exitcode:\n{}", run.stderr);
    assert!(run.stdout.starts_with("Symbols:\n  + apply\n  ? gate: check and stop on failure\n  ! manual step for the operator\n"), "legend lists + ? !:\n{}", run.stdout);
    assert!(run.stdout.contains("Plan: 4 to apply, 0 to change, 1 gates, 1 manual."), "summary line counts steps:\n{}", run.stdout);
    assert!(run.stdout.contains("(sensitive)"), "the secret is shown as (sensitive):\n{}", run.stdout);
    assert!(run.stdout.contains("The file has (known after apply) bytes."), "an unread capture is (known after apply):\n{}", run.stdout);
    assert!(run.stdout.contains("undo:         no undo: left in place"), "a shell step without undo is marked:\n{}", run.stdout);
    insta::assert_snapshot!(stable(&run.stdout, &scratch));
}

#[test]
fn plan_undo_shows_left_in_place() {
    let scratch = local();
    apply_all(&scratch, &[]);

    let run = scratch.rb6(&["plan", "--undo", "runbook.rb6"]);
    assert_eq!(run.code, 0, "plan --undo exits 0:\n{}", run.stderr);
    assert!(run.stdout.contains("  - undo\n"), "legend lists - undo:\n{}", run.stdout);
    assert!(run.stdout.contains("  = no undo: left in place\n"), "legend lists = left in place:\n{}", run.stdout);
    insta::assert_snapshot!(stable(&run.stdout, &scratch));
}

#[test]
fn detailed_exitcode_pending_then_clean() {
    let scratch = local();
    let pending = scratch.rb6(&["plan", "--detailed-exitcode", "runbook.rb6"]);
    assert_eq!(pending.code, 2, "changes pending gives exit 2:\n{}", pending.stderr);

    apply_all(&scratch, &[]);
    let clean = scratch.rb6(&["plan", "--detailed-exitcode", "runbook.rb6"]);
    assert_eq!(clean.code, 0, "no changes after apply gives exit 0:\n{}", clean.all_output());
    assert_eq!(clean.stdout, "No changes. Every step is applied and up to date.\n", "plan output after apply");
}

#[test]
fn detailed_exitcode_error_is_one() {
    let scratch = Scratch::with_runbook("runbook \"broken\" {\n  description = \n}\n");
    let run = scratch.rb6(&["plan", "--detailed-exitcode", "runbook.rb6"]);
    assert_eq!(run.code, 1, "an invalid runbook gives exit 1 with --detailed-exitcode");
}

#[test]
fn json_plan_has_documented_fields() {
    let scratch = local();
    let plan = plan_json(&scratch, &[]);

    assert_eq!(plan["format_version"], 1, "format_version");
    assert_eq!(plan["runbook"], "plan-demo", "runbook name");
    assert_eq!(plan["mode"], "apply", "mode");
    assert_eq!(plan["summary"], serde_json::json!({"to_apply": 4, "to_change": 0, "gates": 1, "manual": 1, "to_undo": 0, "left_in_place": 0}), "summary counts");

    let entries = plan["entries"].as_array().expect("entries is a list");
    let names: Vec<&str> = entries.iter().map(|entry| entry["step"].as_str().expect("step is a string")).collect();
    assert_eq!(names, ["make_dir", "write", "count", "stamp", "written", "announce"], "entries in execution order");

    let symbols: Vec<&str> = entries.iter().map(|entry| entry["symbol"].as_str().expect("symbol is a string")).collect();
    assert_eq!(symbols, ["+", "+", "+", "+", "?", "!"], "entry symbols");

    let changes: Vec<&str> = entries.iter().map(|entry| entry["change"].as_str().expect("change is a string")).collect();
    assert_eq!(changes, ["apply", "apply", "apply", "apply", "gate", "manual"], "entry changes");

    for entry in entries {
        let name = &entry["step"];
        assert!(entry["kind"].is_string(), "{name}: kind");
        assert!(entry["needs"].is_array(), "{name}: needs");
        assert!(entry["undo"]["kind"].is_string(), "{name}: undo.kind");
        let hash = entry["definition_sha256"].as_str().unwrap_or_default();
        assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}: definition_sha256 is a sha256 hex digest: {hash:?}");
    }

    assert_eq!(entries[1]["needs"], serde_json::json!(["make_dir"]), "needs of write");
    assert_eq!(entries[0]["description"], "create the output directory", "description of make_dir");
    assert_eq!(entries[2]["captures"], serde_json::json!(["size"]), "captures of count");
    assert_eq!(entries[3]["undo"]["kind"], "missing", "undo kind of a shell step without undo");
    assert_eq!(entries[2]["undo"]["kind"], "left_in_place", "undo kind of `undo {{ none = ... }}`");
    assert_eq!(entries[2]["undo"]["reason"], "only reads the file", "undo reason");
    assert_eq!(entries[5]["instructions"], "The file has (known after apply) bytes.\n", "instructions with an unread capture");
    assert_eq!(write_content(&plan), "hello (sensitive)\n", "secret redacted in the JSON plan");
}

#[test]
fn saved_plan_applies() {
    let scratch = local();
    let run = scratch.rb6(&["plan", "-out", "saved.plan", "runbook.rb6"]);
    assert_eq!(run.code, 0, "plan -out succeeds:\n{}", run.stderr);
    assert!(run.stdout.contains("Saved the plan to saved.plan"), "plan -out says where it saved:\n{}", run.stdout);

    let mode = std::fs::metadata(scratch.path().join("saved.plan")).expect("plan file exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved plan is readable by its owner only");

    let saved: serde_json::Value = serde_json::from_str(&scratch.read("saved.plan")).expect("the saved plan is JSON");
    assert_eq!(saved["format"], "rb6-plan/1", "saved plan format tag");
    assert_eq!(saved["plan"]["summary"]["to_apply"], 4, "saved plan carries the plan");

    let apply = scratch.rb6(&["apply", "--confirm-all", "saved.plan"]);
    assert_eq!(apply.code, 0, "apply of a saved plan runs without --auto-approve:\n{}", apply.all_output());
    assert!(scratch.path().join("out/a.txt").exists(), "the saved plan's steps ran");
}

#[test]
fn stale_plan_runbook_edited() {
    let scratch = local();
    assert_eq!(scratch.rb6(&["plan", "-out", "saved.plan", "runbook.rb6"]).code, 0, "plan -out succeeds");
    scratch.write("runbook.rb6", &format!("{LOCAL}\n# an edit after planning\n"));

    let run = scratch.rb6(&["apply", "saved.plan"]);
    assert_eq!(run.code, 1, "a saved plan of an edited runbook is rejected");
    assert!(run.stderr.contains("is stale and was not applied"), "stderr says the plan is stale:\n{}", run.stderr);
    assert!(run.stderr.contains("runbook.rb6 changed"), "stderr names the runbook as what changed:\n{}", run.stderr);
    assert!(!scratch.path().join("out").exists(), "nothing ran");
}

#[test]
fn stale_plan_variable_changed() {
    let scratch = local();
    assert_eq!(scratch.rb6(&["plan", "-out", "saved.plan", "runbook.rb6"]).code, 0, "plan -out succeeds");

    let run = scratch.rb6(&["apply", "saved.plan", "--var", "word=other"]);
    assert_eq!(run.code, 1, "a saved plan applied with other variable values is rejected");
    assert!(run.stderr.contains("the variable values changed"), "stderr names the variables as what changed:\n{}", run.stderr);

    let mut with_env = scratch.command(&["apply", "saved.plan"]);
    with_env.env("RB6_VAR_word", "from-env");
    let run = scratch.run(with_env);
    assert_eq!(run.code, 1, "a saved plan applied with RB6_VAR_word set is rejected");
    assert!(run.stderr.contains("the variable values changed"), "stderr names the variables as what changed:\n{}", run.stderr);
}

#[test]
fn stale_plan_state_changed() {
    let scratch = local();
    assert_eq!(scratch.rb6(&["plan", "-out", "saved.plan", "runbook.rb6"]).code, 0, "plan -out succeeds");
    apply_all(&scratch, &[]);

    let run = scratch.rb6(&["apply", "saved.plan"]);
    assert_eq!(run.code, 1, "a saved plan made before another apply is rejected");
    assert!(run.stderr.contains("the state changed"), "stderr names the state as what changed:\n{}", run.stderr);
}

#[test]
fn graph_prints_every_step() {
    let scratch = local();
    let run = scratch.rb6(&["graph", "runbook.rb6"]);
    assert_eq!(run.code, 0, "graph succeeds:\n{}", run.stderr);
    assert!(run.stdout.starts_with("digraph \"plan-demo\" {"), "graph prints DOT:\n{}", run.stdout);
    for name in ["step make_dir", "step write", "step count", "step stamp", "gate written", "manual announce"] {
        assert!(run.stdout.contains(&format!("label=\"{name}\"")), "graph has a node for {name}:\n{}", run.stdout);
    }
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn variable_precedence() {
    let scratch = local();
    scratch.write("file.vars", "word = \"from-file\"\n");

    assert_eq!(write_content(&plan_json(&scratch, &[])), "hello (sensitive)\n", "the default applies without inputs");

    let env_only = {
        let mut command = scratch.command(&["plan", "--json", "runbook.rb6"]);
        command.env("RB6_VAR_word", "from-env");
        scratch.run(command)
    };
    let plan: serde_json::Value = serde_json::from_str(&env_only.stdout).expect("plan --json prints JSON");
    assert_eq!(write_content(&plan), "from-env (sensitive)\n", "RB6_VAR_word overrides the default");

    let env_and_file = {
        let mut command = scratch.command(&["plan", "--json", "runbook.rb6", "--var-file", "file.vars"]);
        command.env("RB6_VAR_word", "from-env");
        scratch.run(command)
    };
    let plan: serde_json::Value = serde_json::from_str(&env_and_file.stdout).expect("plan --json prints JSON");
    assert_eq!(write_content(&plan), "from-file (sensitive)\n", "--var-file overrides RB6_VAR_word");

    let all_three = {
        let mut command = scratch.command(&["plan", "--json", "runbook.rb6", "--var-file", "file.vars", "--var", "word=from-flag"]);
        command.env("RB6_VAR_word", "from-env");
        scratch.run(command)
    };
    let plan: serde_json::Value = serde_json::from_str(&all_three.stdout).expect("plan --json prints JSON");
    assert_eq!(write_content(&plan), "from-flag (sensitive)\n", "--var overrides --var-file and RB6_VAR_word");

    let last_flag = plan_json(&scratch, &["--var", "word=first", "--var", "word=second"]);
    assert_eq!(write_content(&last_flag), "second (sensitive)\n", "the last --var wins");
}

#[test]
fn unknown_var_name_is_error() {
    let scratch = local();
    let run = scratch.rb6(&["plan", "runbook.rb6", "--var", "wrod=x"]);
    assert_eq!(run.code, 1, "an unknown --var name is an error");
    assert!(run.stderr.contains("unknown variable `wrod` (from --var)"), "stderr names the variable and its origin:\n{}", run.stderr);
    assert!(run.stderr.contains("did you mean `word`?"), "stderr suggests `word`:\n{}", run.stderr);

    scratch.write("bad.vars", "nope = 1\n");
    let run = scratch.rb6(&["plan", "runbook.rb6", "--var-file", "bad.vars"]);
    assert_eq!(run.code, 1, "an unknown name in a variable file is an error");
    assert!(run.stderr.contains("unknown variable `nope` (from bad.vars)"), "stderr names the variable and the file:\n{}", run.stderr);

    let run = scratch.rb6(&["plan", "runbook.rb6", "--var", "novalue"]);
    assert_eq!(run.code, 1, "a --var without = is an error");
    assert!(run.stderr.contains("expected NAME=VALUE"), "stderr shows the expected form:\n{}", run.stderr);
}

const REMOTE: &str = r#"runbook "remote" { description = "connections that do not exist" }

secret "db_password" { length = 32 }

postgres "admin" {
  container = "rb6-test-absent-pg"
  network   = "rb6-test-absent-net"
  user      = "postgres"
  database  = "postgres"
  password  = "${secret.db_password}"
}

docker "local" { url = "tcp://127.0.0.1:1" }

step "create_role" {
  sql {
    connection = postgres.admin
    statements = "CREATE ROLE app LOGIN PASSWORD ${secret.db_password}"
  }
  undo {
    sql {
      connection = postgres.admin
      statements = "DROP ROLE app"
    }
  }
}

step "probe" {
  needs = [create_role]
  docker_exec {
    connection = docker.local
    container  = "rb6-test-absent"
    command    = ["cat", "/etc/hostname"]
  }
  capture "hostname" { stdout = true }
  undo { none = "reads only" }
}

gate "healthy" {
  needs = [probe]
  http {
    url           = "http://127.0.0.1:1/${capture.hostname}"
    expect_status = 200
  }
}
"#;

#[test]
fn plan_is_offline() {
    let scratch = Scratch::with_runbook(REMOTE);
    let mut command = scratch.command(&["plan", "--detailed-exitcode", "runbook.rb6"]);
    command.env("DOCKER_HOST", "tcp://127.0.0.1:1").env("PGHOST", "127.0.0.1").env("PGPORT", "1");

    let started = std::time::Instant::now();
    let run = scratch.run(command);
    assert_eq!(run.code, 2, "plan succeeds without Docker or PostgreSQL:\n{}", run.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "plan returns quickly, took {:?}", started.elapsed());
    assert!(run.stdout.contains("PASSWORD (sensitive)"), "the secret in SQL is (sensitive):\n{}", run.stdout);
    assert!(run.stdout.contains("http://127.0.0.1:1/(known after apply)"), "the capture is (known after apply):\n{}", run.stdout);
    assert!(!scratch.path().join(".rb6").exists(), "plan creates no state directory");
    insta::assert_snapshot!(stable(&run.stdout, &scratch));
}

#[test]
fn changed_step_shows_tilde() {
    let scratch = local();
    apply_all(&scratch, &[]);

    let run = scratch.rb6(&["plan", "--detailed-exitcode", "runbook.rb6", "--var", "word=changed"]);
    assert_eq!(run.code, 2, "a changed definition is a pending change:\n{}", run.stderr);
    assert!(run.stdout.contains("  ~ step \"write\"\n"), "the changed step is marked ~:\n{}", run.stdout);
    assert!(run.stdout.contains("reason:       definition changed since it was applied"), "the plan says why:\n{}", run.stdout);
    assert!(run.stdout.contains("Plan: 0 to apply, 1 to change, 1 gates, 0 manual."), "summary counts the change:\n{}", run.stdout);
    insta::assert_snapshot!(stable(&run.stdout, &scratch));
}
