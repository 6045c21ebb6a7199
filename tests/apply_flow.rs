//! `rb6 apply` through the real binary: confirmation without a terminal, retries, timeouts,
//! stopping at the first failure, manual steps, gate reports, parallelism and changed steps.

mod common;

use common::{journal_frames, process_alive, Sandbox};

#[test]
fn no_terminal_without_auto_approve() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "confirm" { description = "One file" }
step "write" {
  file {
    path    = "${runbook.dir}/out.txt"
    content = "written\n"
  }
}
"#,
    );

    let run = sandbox.run("apply", &[]).expect_code(1);
    run.expect_output("no terminal to confirm the apply; nothing was changed");
    run.expect_output("--auto-approve");
    assert!(!sandbox.exists("out.txt"), "apply without confirmation should not write the file");
    assert_eq!(sandbox.status("write"), "pending", "apply without confirmation should leave the step pending");
    assert!(journal_frames(&sandbox.journal()).is_empty(), "apply without confirmation should record nothing");
}

#[test]
fn flaky_step_passes_on_third_attempt() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "retries" { description = "A step that fails twice" }
step "flaky" {
  retries     = 2
  retry_delay = "10ms"
  shell { run = "n=$(cat ${runbook.dir}/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${runbook.dir}/count; test $n -ge 3" }
  undo { none = "test output" }
}
"#,
    );

    let run = sandbox.apply_ok(&[]);
    run.expect_output("attempt 3 of 3");
    assert_eq!(sandbox.read("count").trim(), "3", "the step should have run exactly three times");
    assert_eq!(sandbox.status("flaky"), "applied", "the step should be applied after its third attempt");
}

#[test]
fn step_fails_after_last_retry() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "retries" { description = "A step that always fails" }
step "hopeless" {
  retries     = 1
  retry_delay = "10ms"
  shell { run = "echo attempt >> ${runbook.dir}/attempts; exit 7" }
  undo { none = "test output" }
}
"#,
    );

    let run = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
    run.expect_output("failed: hopeless");
    assert_eq!(sandbox.lines("attempts").len(), 2, "retries = 1 should run the step twice\n{run}");
    assert_eq!(sandbox.status("hopeless"), "failed", "the step should be recorded as failed");
}

#[test]
fn timeout_kills_process_group() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "timeout" { description = "A step that runs too long" }
step "slow" {
  timeout = "1s"
  shell { run = "echo $$ > ${runbook.dir}/shell.pid; sleep 60 & echo $! > ${runbook.dir}/child.pid; wait" }
  undo { none = "test output" }
}
"#,
    );

    let run = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
    run.expect_output("timed out after 1s");
    assert!(run.elapsed < std::time::Duration::from_secs(30), "the timeout should end the step long before its sleep ends\n{run}");
    assert_eq!(sandbox.status("slow"), "failed", "a timed-out step should be recorded as failed");
    for file in ["shell.pid", "child.pid"] {
        let pid: i32 = sandbox.read(file).trim().parse().unwrap_or_else(|error| panic!("{file} should hold a pid ({error})\n{run}"));
        assert!(common::eventually(|| !process_alive(pid)), "process {pid} from {file} should be killed with its group\n{run}");
    }
}

#[test]
fn first_failure_stops_new_steps() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "failure" { description = "One failure among running steps" }
step "slow" {
  shell { run = "sleep 1; echo slow >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
step "boom" {
  shell { run = "sleep 0.2; echo boom >> ${runbook.dir}/log; exit 3" }
  undo { none = "test output" }
}
step "queued" {
  shell { run = "echo queued >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
step "after_slow" {
  needs = [slow]
  shell { run = "echo after_slow >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
"#,
    );

    let run = sandbox.run("apply", &["--auto-approve", "--parallelism", "2"]).expect_code(1);
    assert_eq!(sandbox.lines("log"), ["boom", "slow"], "only the two steps running at the failure should have run\n{run}");
    assert_eq!(sandbox.status("slow"), "applied", "the step running when another failed should finish and be recorded");
    assert_eq!(sandbox.status("boom"), "failed", "the failed step should be recorded as failed");
    assert_eq!(sandbox.status("queued"), "pending", "no new step should start after the failure");
    assert_eq!(sandbox.status("after_slow"), "pending", "a dependent of the finished step should not start after the failure");

    run.expect_output("Apply stopped: 1 ran, 0 already done, 0 unchanged, 0 skipped, 1 failed, 0 waiting, 2 not started.");
    run.expect_output("failed: boom: ");
    run.expect_output("not started: queued, after_slow");
}

#[test]
fn manual_step_waits_for_confirm() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "manual" { description = "A manual step between two steps" }
step "prepare" {
  shell { run = "echo prepare >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
manual "approve" {
  needs = [prepare]
  instructions = <<-TEXT
    Read the log and approve.
  TEXT
}
step "finish" {
  needs = [approve]
  shell { run = "echo finish >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
"#,
    );

    let waiting = sandbox.run("apply", &["--auto-approve"]).expect_code(3);
    waiting.expect_output("Read the log and approve.");
    waiting.expect_output("waiting for the operator");
    waiting.expect_output("--confirm approve");
    assert_eq!(sandbox.lines("log"), ["prepare"], "the step after the manual step should wait");

    let again = sandbox.run("apply", &["--auto-approve"]).expect_code(3);
    assert_eq!(sandbox.lines("log"), ["prepare"], "a second apply without --confirm should still wait\n{again}");

    let confirmed = sandbox.apply_ok(&["--confirm", "approve"]);
    confirmed.expect_output("manual step \"approve\" confirmed");
    assert_eq!(sandbox.lines("log"), ["prepare", "finish"], "--confirm should let the steps after the manual step run");
    sandbox.run("plan", &["--detailed-exitcode"]).expect_code(0);
}

#[test]
fn gate_failure_writes_report() {
    let sandbox = Sandbox::with_runbook(
        r#"
runbook "gate" { description = "A gate between two steps" }
step "before" {
  shell { run = "echo before >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
gate "ready" {
  needs = [before]
  description = "The service reports ready"
  file_check {
    path     = "${runbook.dir}/ready"
    contains = "ok"
  }
  on_fail {
    command { run = "echo evidence-from-on-fail" }
  }
}
step "after" {
  needs = [ready]
  shell { run = "echo after >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
"#,
    );

    let failed = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
    let pattern = regex::Regex::new(r"evidence written to (\S+\.txt)").expect("valid regex");
    let report_path = pattern.captures(&failed.stdout).unwrap_or_else(|| panic!("the output should print the report path\n{failed}"))[1].to_string();
    let report_path = std::path::PathBuf::from(report_path);
    assert!(report_path.starts_with(sandbox.path(".rb6/reports")), "the report {} should be under .rb6/reports\n{failed}", report_path.display());
    let report = std::fs::read_to_string(&report_path).unwrap_or_else(|error| panic!("can't read the report {}: {error}", report_path.display()));
    assert!(report.contains("gate: ready"), "the report should name the gate:\n{report}");
    assert!(report.contains("result: FAILED"), "the report should say the gate failed:\n{report}");
    assert!(report.contains("evidence-from-on-fail"), "the report should contain the on_fail evidence:\n{report}");
    assert_eq!(sandbox.lines("log"), ["before"], "the step after a failed gate should not run");
    assert_eq!(sandbox.status("after"), "pending", "the step after a failed gate should stay pending");

    sandbox.write("ready", "ok\n");
    let passed = sandbox.apply_ok(&[]);
    passed.expect_output("gate \"ready\" passed");
    assert_eq!(sandbox.lines("log"), ["before", "after"], "after fixing the cause, the rerun should pass the gate and run the rest once");
}

/// Four independent steps that each sleep 0.5 s and record when they started and ended.
const SLEEPERS: &str = r#"
runbook "parallel" { description = "Independent sleeps" }
step "s1" {
  shell { run = "a=$(date +%s.%N); sleep 0.5; echo $a $(date +%s.%N) > ${runbook.dir}/s1" }
  undo { none = "test output" }
}
step "s2" {
  shell { run = "a=$(date +%s.%N); sleep 0.5; echo $a $(date +%s.%N) > ${runbook.dir}/s2" }
  undo { none = "test output" }
}
step "s3" {
  shell { run = "a=$(date +%s.%N); sleep 0.5; echo $a $(date +%s.%N) > ${runbook.dir}/s3" }
  undo { none = "test output" }
}
step "s4" {
  shell { run = "a=$(date +%s.%N); sleep 0.5; echo $a $(date +%s.%N) > ${runbook.dir}/s4" }
  undo { none = "test output" }
}
"#;

/// Applies [`SLEEPERS`] with `--parallelism N`; returns each step's (start, end) in seconds.
fn sleep_intervals(parallelism: &str) -> Vec<(f64, f64)> {
    let sandbox = Sandbox::with_runbook(SLEEPERS);
    sandbox.apply_ok(&["--parallelism", parallelism]);
    let mut intervals: Vec<(f64, f64)> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|step| {
            let text = sandbox.read(step);
            let times: Vec<f64> = text.split_whitespace().map(|time| time.parse().expect("a time in seconds")).collect();
            assert_eq!(times.len(), 2, "{step} should record its start and end: {text:?}");
            (times[0], times[1])
        })
        .collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    intervals
}

fn makespan(intervals: &[(f64, f64)]) -> f64 {
    let start = intervals.iter().map(|interval| interval.0).fold(f64::MAX, f64::min);
    let end = intervals.iter().map(|interval| interval.1).fold(f64::MIN, f64::max);
    end - start
}

#[test]
fn parallelism_limits_concurrent_steps() {
    let sequential = sleep_intervals("1");
    for pair in sequential.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "with --parallelism 1 no two steps should overlap: {sequential:?}");
    }

    let parallel = sleep_intervals("4");
    let last_start = parallel.iter().map(|interval| interval.0).fold(f64::MIN, f64::max);
    let first_end = parallel.iter().map(|interval| interval.1).fold(f64::MAX, f64::min);
    assert!(last_start < first_end, "with --parallelism 4 the four sleeps should overlap: {parallel:?}");
    assert!(makespan(&parallel) < makespan(&sequential), "--parallelism 4 should finish sooner than 1: {parallel:?} vs {sequential:?}");
}

#[test]
fn changed_step_is_reapplied() {
    let runbook = |greeting: &str| {
        format!(
            r#"
runbook "change" {{ description = "A step whose definition changes" }}
step "greet" {{
  shell {{ run = "echo {greeting} >> ${{runbook.dir}}/log" }}
  undo {{ none = "test output" }}
}}
step "other" {{
  shell {{ run = "echo other >> ${{runbook.dir}}/log" }}
  undo {{ none = "test output" }}
}}
"#
        )
    };
    let sandbox = Sandbox::with_runbook(&runbook("hello"));
    sandbox.apply_ok(&[]);

    sandbox.write_runbook(&runbook("goodbye"));
    let symbols = sandbox.plan_symbols(&[]);
    assert_eq!(symbols.into_iter().collect::<Vec<_>>(), [("greet".to_string(), "~".to_string())], "only the edited step should be planned, as changed");
    sandbox.run("plan", &[]).expect_code(0).expect_output("~ step \"greet\"");

    let run = sandbox.apply_ok(&[]);
    run.expect_output("step \"greet\" applied");
    let mut lines = sandbox.lines("log");
    lines.sort();
    assert_eq!(lines, ["goodbye", "hello", "other"], "only the edited step should run again");
    sandbox.run("plan", &["--detailed-exitcode"]).expect_code(0);
}
