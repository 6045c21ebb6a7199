//! The state lock through the real binary: a second apply on a locked state fails at once and
//! names the holder, a lock left by a killed apply is taken over, and `rb6 unlock` removes one.

mod common;

use std::time::Duration;

use common::{host_name, Background, Sandbox};

/// A step that waits until the file `release` exists, after creating `started`.
const WAITING: &str = r#"
runbook "locking" { description = "A step that waits for the test" }

step "wait" {
  shell { run = "touch ${runbook.dir}/started; while [ ! -e ${runbook.dir}/release ]; do sleep 0.05; done; echo wait >> ${runbook.dir}/log" }
  check { file_check {
    path     = "${runbook.dir}/log"
    contains = "wait"
  } }
  undo { none = "test output" }
}
"#;

/// Starts an apply of [`WAITING`] and waits until its step runs, so it holds the lock.
fn holder(sandbox: &Sandbox) -> Background {
    let mut run = sandbox.rb6(&["apply", common::RUNBOOK, "--auto-approve"]).spawn(&sandbox.path("runs"));
    run.wait_for_file(&sandbox.path("started"));
    run
}

#[test]
fn second_apply_fails_naming_holder() {
    let sandbox = Sandbox::with_runbook(WAITING);
    let first = holder(&sandbox);

    let second = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
    assert!(second.elapsed < Duration::from_secs(10), "the second apply should fail at once, took {:?}\n{second}", second.elapsed);
    second.expect_output(&format!("pid {}", first.pid()));
    second.expect_output(&format!("on host {}", host_name()));
    let started = regex::Regex::new(r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").expect("valid regex");
    assert!(started.is_match(&second.stderr), "the error should give the holder's start time\n{second}");
    second.expect_output("command `rb6 apply runbook.rb6 --auto-approve`");

    sandbox.run("undo", &["--auto-approve"]).expect_code(1).expect_output(&format!("pid {}", first.pid()));
    sandbox.run("plan", &[]).expect_code(0);

    sandbox.write("release", "");
    let first = first.finish().expect_code(0);
    first.expect_output("step \"wait\" applied");
    assert_eq!(sandbox.lines("log"), ["wait"], "only the first apply should have run the step");
}

#[test]
fn dead_holder_is_taken_over() {
    let sandbox = Sandbox::with_runbook(WAITING);
    let mut first = holder(&sandbox);
    let pid = first.pid();
    first.kill();
    assert!(sandbox.exists(".rb6/lock"), "the killed apply should leave its lock file behind");

    sandbox.write("release", "");
    let resumed = sandbox.apply_ok(&[]);
    resumed.expect_output(&format!("took over the lock of pid {pid} on {}", host_name()));
    resumed.expect_output("that process is gone");
    assert_eq!(sandbox.lines("log"), ["wait"], "the resumed apply should run the interrupted step once");
}

#[test]
fn unlock_force_removes_lock() {
    let sandbox = Sandbox::with_runbook(WAITING);
    sandbox.run("unlock", &["--force"]).expect_code(0).expect_output("No lock is held");

    let mut first = holder(&sandbox);
    let pid = first.pid();
    first.kill();

    let asked = sandbox.run("unlock", &[]).expect_code(1);
    asked.expect_output(&format!("locked by pid {pid}"));
    asked.expect_output("--force");
    assert!(sandbox.exists(".rb6/lock"), "unlock without a terminal and without --force should keep the lock");

    sandbox.run("unlock", &["--force"]).expect_code(0).expect_output("Lock removed.");
    assert!(!sandbox.exists(".rb6/lock"), "unlock --force should remove the lock file");

    sandbox.write("release", "");
    let resumed = sandbox.apply_ok(&[]);
    resumed.expect_no_output("took over");
}

#[test]
fn unlock_force_warns_about_live_holder() {
    let sandbox = Sandbox::with_runbook(WAITING);
    let first = holder(&sandbox);

    let unlocked = sandbox.run("unlock", &["--force"]).expect_code(0);
    unlocked.expect_output(&format!("locked by pid {}", first.pid()));
    unlocked.expect_output("still running");
    assert!(!sandbox.exists(".rb6/lock"), "unlock --force should remove the lock file of a live holder too");

    sandbox.write("release", "");
    first.finish().expect_code(0);
}
