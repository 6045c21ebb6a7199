//! Snapshot tests of the diagnostics `rb6 validate` prints, rendered without color.
//!
//! Each test writes one small runbook, runs the real binary on it, asserts the exit code, and
//! snapshots stderr. The runbook is named `runbook.rb6` and given as a relative path, so the
//! snapshots show `runbook.rb6:LINE:COL` whatever the temporary directory is.

mod cli_support;

use cli_support::Scratch;

const HEADER: &str = "runbook \"diag\" { description = \"diagnostics test\" }\n";

/// Runs `rb6 validate runbook.rb6` on `body` (after the runbook header).
fn validate(body: &str) -> cli_support::Run {
    let scratch = Scratch::with_runbook(&format!("{HEADER}{body}"));
    scratch.rb6(&["validate", "runbook.rb6"])
}

#[test]
fn syntax_error_shows_location() {
    let run = validate("step \"a\" {\n  timeout =\n  shell { run = \"true\" }\n}\n");
    assert_eq!(run.code, 1, "exit code of validate on a syntax error");
    assert!(run.stderr.contains("runbook.rb6:4:"), "stderr names file and line:column:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn unterminated_string_error() {
    let run = validate("step \"a\" {\n  shell { run = \"echo hi }\n}\n");
    assert_eq!(run.code, 1, "exit code of validate on an unterminated string");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn unknown_need_suggests_name() {
    let body = r#"
step "two" {
  directory { path = "/tmp/rb6-diag-two" }
}
step "three" {
  needs = [tow]
  directory { path = "/tmp/rb6-diag-three" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with an unknown step in needs");
    assert!(run.stderr.contains("did you mean `two`?"), "stderr suggests `two`:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn cycle_prints_full_path() {
    let body = r#"
step "a" {
  needs = [c]
  directory { path = "/tmp/rb6-diag-a" }
}
step "b" {
  needs = [a]
  directory { path = "/tmp/rb6-diag-b" }
}
step "c" {
  needs = [b]
  directory { path = "/tmp/rb6-diag-c" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate on a dependency cycle");
    assert!(run.stderr.contains("a → c → b → a"), "stderr prints the whole cycle:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn capture_cycle_is_reported() {
    let body = r#"
step "a" {
  needs = [b]
  shell { run = "echo a" }
  capture "from_a" { stdout = true }
  undo { none = "test" }
}
step "b" {
  shell { run = "echo ${capture.from_a}" }
  undo { none = "test" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate on a cycle through a capture");
    assert!(run.stderr.contains("dependency cycle"), "stderr reports the cycle:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn duplicate_names_point_at_first() {
    let body = r#"
variable "dir" { default = "/tmp/a" }
variable "dir" { default = "/tmp/b" }
step "make" {
  directory { path = var.dir }
}
gate "make" {
  file_check { path = var.dir }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with duplicate names");
    assert_eq!(run.stderr.matches("first defined here").count(), 2, "both duplicates point at the first definition:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn undefined_references_suggest_names() {
    let body = r#"
variable "domain" { default = "example.org" }
secret "token" { length = 32 }
step "read" {
  shell { run = "echo hi" }
  capture "greeting" { stdout = true }
  undo { none = "only prints" }
}
step "use" {
  file {
    path    = "/tmp/rb6-diag/${var.domian}"
    content = "${secret.tokn} ${capture.greting}"
  }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with undefined references");
    assert!(run.stderr.contains("did you mean `var.domain`?"), "variable suggestion:\n{}", run.stderr);
    assert!(run.stderr.contains("did you mean `secret.token`?"), "secret suggestion:\n{}", run.stderr);
    assert!(run.stderr.contains("did you mean `capture.greeting`?"), "capture suggestion:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn unknown_action_suggests_name() {
    let body = r#"
step "a" {
  shel { run = "true" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with an unknown action");
    assert!(run.stderr.contains("did you mean `shell`?"), "stderr suggests `shell`:\n{}", run.stderr);
    assert!(!run.stderr.contains("has no action"), "an unknown action is not also reported as a missing one:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn unknown_argument_lists_known() {
    let body = r#"
step "a" {
  file {
    path    = "/tmp/rb6-diag/a"
    content = "x"
    colour  = "red"
  }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with an unknown argument");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn missing_required_argument() {
    let body = r#"
step "a" {
  file { path = "/tmp/rb6-diag/a" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with a missing argument");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn wrong_value_type() {
    let body = r#"
step "a" {
  retries = "three"
  file {
    path    = "/tmp/rb6-diag/a"
    content = "x"
    mode    = 640
  }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with values of the wrong type");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn raw_rejected_in_sql() {
    let body = r#"
variable "role" { default = "reader" }
postgres "db" { url = "postgres://rb6@127.0.0.1:1/postgres" }
step "grant" {
  sql {
    connection = postgres.db
    statements = "GRANT SELECT ON t TO ${raw(var.role)}"
  }
  undo { none = "test" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with raw() in SQL");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn ident_rejected_outside_sql() {
    let body = r#"
variable "role" { default = "reader" }
step "echo" {
  shell { run = "echo ${ident(var.role)}" }
  undo { none = "test" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with ident() in a shell script");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn missing_undo_is_warning() {
    let body = r#"
step "touch" {
  shell { run = "true" }
}
"#;
    let scratch = Scratch::with_runbook(&format!("{HEADER}{body}"));
    let run = scratch.rb6(&["validate", "runbook.rb6"]);
    assert_eq!(run.code, 0, "a missing undo is a warning, so validate succeeds");
    assert!(run.stdout.contains("is valid: 1 steps, 1 warning(s)"), "stdout counts the warning:\n{}", run.stdout);
    insta::assert_snapshot!("missing_undo_is_warning_stderr", run.stderr);

    let plan = scratch.rb6(&["plan", "runbook.rb6"]);
    assert_eq!(plan.code, 0, "plan of a runbook with a warning succeeds");
    assert!(plan.stdout.contains("undo:         no undo: left in place"), "plan marks the step as left in place:\n{}", plan.stdout);
    insta::assert_snapshot!("missing_undo_is_warning_plan", plan.stdout);
}

#[test]
fn errors_reported_in_source_order() {
    let body = r#"
step "first" {
  needs = [nothing]
  directory { path = "/tmp/rb6-diag/first" }
}
step "second" {
  directory {
    path = "/tmp/rb6-diag/second"
    size = 3
  }
}
step "third" {
  file { path = "/tmp/rb6-diag/${var.missing}" content = "x" }
}
"#;
    let run = validate(body);
    assert_eq!(run.code, 1, "exit code of validate with several errors");
    assert!(run.stderr.contains("3 error(s), 0 warning(s)"), "stderr counts all three errors:\n{}", run.stderr);

    let positions: Vec<usize> = ["unknown step `nothing`", "unknown argument `size`", "undefined variable `var.missing`"]
        .iter()
        .map(|message| run.stderr.find(message).unwrap_or_else(|| panic!("stderr reports {message:?}:\n{}", run.stderr)))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "errors appear in source order: {positions:?}");
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn unknown_top_level_block() {
    let run = validate("stpe \"a\" {\n  directory { path = \"/tmp/x\" }\n}\n");
    assert_eq!(run.code, 1, "exit code of validate with a misspelled block kind");
    assert!(run.stderr.contains("did you mean `step`?"), "stderr suggests `step`:\n{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn missing_runbook_file() {
    let scratch = Scratch::new();
    let run = scratch.rb6(&["validate", "absent.rb6"]);
    assert_eq!(run.code, 1, "exit code of validate on a missing file");
    insta::assert_snapshot!(run.stderr);
}
