//! Plan snapshot of the mautrix-signal runbook: `rb6 plan` on it with an empty state, compared
//! with a stored snapshot, so a change to the runbook or to plan rendering shows up as a diff.
//! Invariant: the plan never contains a secret value.

use std::path::Path;
use std::process::Command;

/// Runs `rb6 plan` on the runbook with an empty state directory and returns its output.
fn plan_output() -> (i32, String, String) {
    let state = tempfile::tempdir().expect("create a temporary state directory");
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/mautrix-signal.rb6");
    let output = Command::new(env!("CARGO_BIN_EXE_rb6"))
        .arg("plan")
        .arg(&runbook)
        .arg("--state")
        .arg(state.path())
        .env("NO_COLOR", "1")
        .env_remove("SYNAPSE_POSTGRES_PASSWORD")
        .output()
        .expect("run rb6 plan");
    let stdout = String::from_utf8(output.stdout).expect("plan output is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("plan errors are UTF-8");
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn plan_matches_snapshot() {
    let (code, stdout, stderr) = plan_output();

    assert_eq!(code, 0, "rb6 plan failed: {stderr}");
    insta::assert_snapshot!("mautrix_signal_plan", stdout);
}

#[test]
fn plan_shows_no_secret() {
    let (_, stdout, stderr) = plan_output();
    let secret_like = regex::Regex::new("[A-Za-z0-9]{64}").expect("valid pattern");

    assert!(!secret_like.is_match(&stdout), "the plan shows a 64-character token: {:?}", secret_like.find(&stdout));
    assert!(!secret_like.is_match(&stderr), "plan's stderr shows a 64-character token");
    assert!(stdout.contains("PASSWORD (sensitive)"), "the role password is not shown as (sensitive)");
    assert!(stdout.contains("as_token:(sensitive)"), "the double-puppet token is not shown as (sensitive)");
}

#[test]
fn plan_renders_interpolated_map_keys() {
    let (_, stdout, _) = plan_output();

    assert!(stdout.contains(r#""echo6.co":"user""#), "the domain key of bridge.permissions is not rendered");
    assert!(stdout.contains(r#""@matt:echo6.co":"admin""#), "the admin key of bridge.permissions is not rendered");
    assert!(stdout.contains(r#"{"echo6.co":"as_token:(sensitive)"}"#), "the domain key of double_puppet.secrets is not rendered");
    assert!(!stdout.contains("${...}"), "a map key is shown unrendered");
}
