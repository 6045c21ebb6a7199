//! Crash and resume through the real binary: `rb6 apply` killed with SIGKILL at every step
//! boundary and in the middle of every step, then resumed, applies each step's effect exactly
//! once and ends in the same state as an uninterrupted run. Also covers a step without a
//! `check` probe that was interrupted, and a torn or corrupt journal.
//!
//! Each step appends its own name to `log`, and its `check` probe looks for that line, so a
//! rerun after a crash is exactly-once. Pause points make the kills deterministic: the script
//! `pause.sh POINT` sleeps when the environment variable `PAUSE_AT` equals POINT, after
//! creating the file `paused`, which the test waits for before it kills the run. A kill takes
//! the binary and every step process it started (see `common::Background::kill`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::thread::sleep;
use std::time::Duration;

use common::{journal_frames, Background, Run, Sandbox, FRAME_HEADER_LEN, PAUSE_SCRIPT};

/// Number of steps of the generated runbook.
const STEPS: usize = 32;

fn step_name(index: usize) -> String {
    format!("s{index:02}")
}

/// Returns the steps a step needs: a chain broken every fourth step, plus links five and eight back.
fn needs(index: usize) -> Vec<usize> {
    let mut needs = BTreeSet::new();
    if !index.is_multiple_of(4) && index >= 1 {
        needs.insert(index - 1);
    }
    if index >= 5 && index.is_multiple_of(3) {
        needs.insert(index - 5);
    }
    if index >= 8 && index.is_multiple_of(4) {
        needs.insert(index - 8);
        needs.insert(index - 3);
    }
    needs.into_iter().collect()
}

/// Some steps sleep 0.3 s before their effect and some after it.
fn sleep_before(index: usize) -> bool {
    index % 9 == 2
}

fn sleep_after(index: usize) -> bool {
    index % 9 == 6
}

/// Generates a runbook of [`STEPS`] shell steps with `check` probes and pause points.
fn runbook() -> String {
    let mut text = String::from("runbook \"crash\" {\n  description = \"Steps that append their name to a log exactly once\"\n}\n");
    for index in 0..STEPS {
        let name = step_name(index);
        let needs: Vec<String> = needs(index).into_iter().map(step_name).collect();
        let before = if sleep_before(index) { "sleep 0.3\n      " } else { "" };
        let after = if sleep_after(index) { "sleep 0.3\n      " } else { "" };
        write!(
            text,
            r#"
step "{name}" {{
  needs = [{needs}]
  shell {{
    run = <<-SH
      sh ${{runbook.dir}}/pause.sh before:{name}
      {before}echo {name} >> ${{runbook.dir}}/log
      {after}sh ${{runbook.dir}}/pause.sh after:{name}
    SH
  }}
  check {{
    command {{ run = "sh ${{runbook.dir}}/pause.sh check:{name}; grep -qxF {name} ${{runbook.dir}}/log" }}
  }}
  undo {{ none = "the log is test output" }}
}}
"#,
            needs = needs.join(", ")
        )
        .expect("write to a string");
    }
    text
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::with_runbook(&runbook());
    sandbox.write("pause.sh", PAUSE_SCRIPT);
    sandbox
}

/// Starts `rb6 apply --auto-approve EXTRA...` in the background, pausing at `pause`.
fn spawn_apply(sandbox: &Sandbox, pause: &str, extra: &[&str]) -> Background {
    let mut args = vec!["apply", common::RUNBOOK, "--auto-approve"];
    args.extend_from_slice(extra);
    sandbox.rb6(&args).env("PAUSE_AT", pause).spawn(&sandbox.path("runs"))
}

/// Runs `rb6 apply --auto-approve EXTRA...` until it reaches `pause`, then kills it.
fn kill_at(sandbox: &Sandbox, pause: &str, extra: &[&str]) {
    let mut args = vec!["apply", common::RUNBOOK, "--auto-approve"];
    args.extend_from_slice(extra);
    sandbox.kill_at(pause, &args);
}

/// Asserts that no line of the log appears twice.
fn assert_no_duplicates(sandbox: &Sandbox, when: &str) {
    let lines = sandbox.lines("log");
    let mut seen = BTreeSet::new();
    for line in &lines {
        assert!(seen.insert(line), "step {line} appended its line twice {when}; log:\n{}", lines.join("\n"));
    }
}

/// Asserts that every step's line appears exactly once and after the lines of the steps it needs.
fn assert_complete_log(sandbox: &Sandbox) {
    assert_no_duplicates(sandbox, "by the end");
    let lines = sandbox.lines("log");
    let position: BTreeMap<&str, usize> = lines.iter().enumerate().map(|(index, line)| (line.as_str(), index)).collect();
    for index in 0..STEPS {
        let name = step_name(index);
        let at = *position.get(name.as_str()).unwrap_or_else(|| panic!("step {name} never appended its line; log:\n{}", lines.join("\n")));
        for need in needs(index) {
            let need_at = position[step_name(need).as_str()];
            assert!(need_at < at, "step {name} ran before {} that it needs; log:\n{}", step_name(need), lines.join("\n"));
        }
    }
    assert_eq!(lines.len(), STEPS, "the log should have one line per step");
}

/// Applies the same runbook without interruption and returns its state and log lines.
fn uninterrupted() -> (Vec<String>, BTreeSet<String>) {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);
    assert_complete_log(&sandbox);
    (sandbox.state_list(), sandbox.lines("log").into_iter().collect())
}

fn assert_same_as_uninterrupted(sandbox: &Sandbox) {
    let (state, lines) = uninterrupted();
    assert_eq!(sandbox.state_list(), state, "`rb6 state list` should match an uninterrupted run's");
    assert_eq!(sandbox.lines("log").into_iter().collect::<BTreeSet<_>>(), lines, "the log's lines should match an uninterrupted run's");
    sandbox.run("plan", &["--detailed-exitcode"]).expect_code(0);
}

/// Returns the steps in the order a run with `--parallelism 1` applies them.
fn apply_order(sandbox: &Sandbox) -> Vec<String> {
    let run = sandbox.run("plan", &["--json"]).expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("plan --json is JSON");
    plan["entries"].as_array().expect("plan entries").iter().map(|entry| entry["step"].as_str().expect("step name").to_string()).collect()
}

#[test]
fn kill_at_every_boundary_and_mid_step() {
    let sandbox = sandbox();
    let order = apply_order(&sandbox);
    assert_eq!(order.len(), STEPS, "the plan should list every step");

    for name in &order {
        kill_at(&sandbox, &format!("check:{name}"), &["--parallelism", "1"]);
        let state = sandbox.state_list();
        assert!(!state.iter().any(|line| line.ends_with(" started")), "at the boundary before {name} no step should be started:\n{}", state.join("\n"));
        assert_eq!(sandbox.status(name), "pending", "{name} should not have started at the boundary before it");

        kill_at(&sandbox, &format!("before:{name}"), &["--parallelism", "1"]);
        assert_eq!(sandbox.status(name), "started", "{name} killed before its effect should be recorded as started");
        assert!(!sandbox.lines("log").contains(name), "{name} killed before its effect should not have appended its line");

        kill_at(&sandbox, &format!("after:{name}"), &["--parallelism", "1"]);
        assert_eq!(sandbox.status(name), "started", "{name} killed after its effect should still be recorded as started");
        assert!(sandbox.lines("log").contains(name), "{name} killed after its effect should have appended its line");
        assert_no_duplicates(&sandbox, &format!("after the kills around {name}"));
    }

    let last = sandbox.apply_ok(&[]);
    last.expect_output(&format!("step \"{}\" already done (check passed)", order[STEPS - 1]));
    assert_complete_log(&sandbox);
    assert_same_as_uninterrupted(&sandbox);
}

#[test]
fn kill_parallel_apply_repeatedly() {
    let sandbox = sandbox();
    let delays_ms = [0u64, 3, 10, 30, 100];
    let mut kills = 0;
    let mut finished: Option<Run> = None;

    for attempt in 0..200 {
        let lines_before = sandbox.lines("log").len();
        let mut run = spawn_apply(&sandbox, "", &["--parallelism", "4"]);
        let progressed = run.wait_until("a new log line", || sandbox.lines("log").len() > lines_before);
        if progressed {
            std::thread::sleep(std::time::Duration::from_millis(delays_ms[attempt % delays_ms.len()]));
        }
        if run.has_exited() {
            finished = Some(run.finish());
            break;
        }
        run.kill();
        kills += 1;
        assert_no_duplicates(&sandbox, &format!("after kill {kills}"));
    }

    let finished = finished.expect("the apply should finish within 200 attempts");
    finished.expect_code(0);
    assert!(kills >= 3, "the test should have killed the apply several times, killed it {kills} times");
    assert_complete_log(&sandbox);
    assert_same_as_uninterrupted(&sandbox);
}

/// A runbook whose step `noprobe` has no `check` probe.
const NO_PROBE: &str = r#"
runbook "noprobe" { description = "A step without a check probe" }

step "first" {
  shell { run = "echo first >> ${runbook.dir}/log" }
  check { command { run = "grep -qxF first ${runbook.dir}/log" } }
  undo { none = "test output" }
}

step "noprobe" {
  needs = [first]
  shell { run = "sh ${runbook.dir}/pause.sh mid:noprobe; echo noprobe >> ${runbook.dir}/log" }
  undo { none = "test output" }
}

step "after" {
  needs = [noprobe]
  shell { run = "echo after >> ${runbook.dir}/log" }
  undo { none = "test output" }
}
"#;

#[test]
fn interrupted_step_without_probe() {
    let sandbox = Sandbox::with_runbook(NO_PROBE);
    sandbox.write("pause.sh", PAUSE_SCRIPT);
    kill_at(&sandbox, "mid:noprobe", &[]);
    assert_eq!(sandbox.status("noprobe"), "started", "the killed step should be recorded as started");

    for attempt in 1..=2 {
        let refused = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
        refused.expect_output("--retry-interrupted");
        assert_eq!(sandbox.lines("log"), ["first"], "attempt {attempt} without --retry-interrupted should not rerun the step\n{refused}");
        assert_eq!(sandbox.status("after"), "pending", "attempt {attempt}: the dependent of the refused step should not run");
    }

    let retried = sandbox.apply_ok(&["--retry-interrupted"]);
    retried.expect_output("step \"noprobe\" applied");
    assert_eq!(sandbox.lines("log"), ["first", "noprobe", "after"], "--retry-interrupted should rerun the step once, then its dependent");
}

/// `a` then `b`, and `paused_check` whose check probe pauses, so the journal ends with b's
/// "applied" record when the run is killed there.
const TORN: &str = r#"
runbook "torn" { description = "A journal cut inside its last record" }

step "a" {
  shell { run = "echo a >> ${runbook.dir}/log" }
  check { command { run = "grep -qxF a ${runbook.dir}/log" } }
  undo { none = "test output" }
}

step "b" {
  needs = [a]
  shell { run = "echo b >> ${runbook.dir}/log" }
  check { command { run = "grep -qxF b ${runbook.dir}/log" } }
  undo { none = "test output" }
}

step "paused_check" {
  needs = [b]
  shell { run = "echo paused_check >> ${runbook.dir}/log" }
  check { command { run = "sh ${runbook.dir}/pause.sh check; grep -qxF paused_check ${runbook.dir}/log" } }
  undo { none = "test output" }
}
"#;

/// Applies [`TORN`] until the check of `paused_check` pauses, kills it and returns the journal.
fn journal_ending_with_applied_b() -> (Sandbox, Vec<u8>) {
    let sandbox = Sandbox::with_runbook(TORN);
    sandbox.write("pause.sh", PAUSE_SCRIPT);
    kill_at(&sandbox, "check", &[]);

    let frames = journal_frames(&sandbox.journal());
    let last = frames.last().expect("the killed apply should have left records in the journal");
    assert_eq!(last.record["record"], "applied", "the last record should be b's applied record: {frames:?}");
    assert_eq!(last.record["step"], "b", "the last record should be b's applied record: {frames:?}");
    let bytes = std::fs::read(sandbox.journal()).expect("read the journal");
    assert_eq!(last.offset + last.len, bytes.len(), "the journal should end with that record");
    (sandbox, bytes)
}

#[test]
fn torn_last_record_is_ignored() {
    let (sandbox, bytes) = journal_ending_with_applied_b();
    let last = journal_frames(&sandbox.journal()).pop().expect("a last record");
    let cuts = [last.offset + 1, last.offset + 4, last.offset + 20, last.offset + FRAME_HEADER_LEN, last.offset + FRAME_HEADER_LEN + 7, bytes.len() - 1];

    for cut in cuts {
        std::fs::write(sandbox.journal(), &bytes[..cut]).expect("write the cut journal");
        let symbols = sandbox.plan_symbols(&[]);
        assert_eq!(symbols.get("b").map(String::as_str), Some("+"), "with the journal cut at byte {cut}, b should be pending: {symbols:?}");
        assert_eq!(symbols.get("a"), None, "with the journal cut at byte {cut}, a should stay applied: {symbols:?}");
        assert_eq!(sandbox.status("b"), "started", "with the journal cut at byte {cut}, b's last complete record is its start");
    }

    let resumed = sandbox.apply_ok(&[]);
    resumed.expect_output("step \"b\" already done (check passed)");
    assert_eq!(sandbox.lines("log"), ["a", "b", "paused_check"], "the resumed apply should finish every step once");
    sandbox.run("plan", &["--detailed-exitcode"]).expect_code(0);
}

#[test]
fn corrupt_middle_record_is_an_error() {
    let (sandbox, mut bytes) = journal_ending_with_applied_b();
    let frames = journal_frames(&sandbox.journal());
    let middle = frames.iter().find(|frame| frame.record["record"] == "applied" && frame.record["step"] == "a").expect("a's applied record").clone();
    bytes[middle.offset + FRAME_HEADER_LEN + 3] ^= 0x20;
    std::fs::write(sandbox.journal(), &bytes).expect("write the corrupt journal");

    for command in ["plan", "apply"] {
        let run = sandbox.run(command, &["--auto-approve"].into_iter().filter(|_| command == "apply").collect::<Vec<_>>()).expect_code(1);
        run.expect_output(&sandbox.journal().display().to_string());
        run.expect_output(&format!("byte offset {}", middle.offset));
    }
    assert_eq!(std::fs::read(sandbox.journal()).expect("read the journal"), bytes, "rb6 should leave a corrupt journal as it is");
    assert_eq!(sandbox.lines("log"), ["a", "b"], "no step should run over a corrupt journal");
}

/// One slow step with a probe: its shell sleeps, then appends to the log.
const SLOW_STEP: &str = r#"
runbook "leftover" { description = "A step whose process outlives a killed rb6" }

step "slow" {
  shell { run = "touch ${runbook.dir}/running; sleep 1; echo slow >> ${runbook.dir}/log" }
  check { command { run = "grep -qxF slow ${runbook.dir}/log" } }
  undo { none = "test output" }
}
"#;

#[test]
fn leftover_step_process_killed_on_resume() {
    let sandbox = Sandbox::with_runbook(SLOW_STEP);
    let mut run = sandbox.rb6(&["apply", common::RUNBOOK, "--auto-approve"]).spawn(&sandbox.path("runs"));
    run.wait_for_file(&sandbox.path("running"));
    run.kill_rb6_only();

    let resumed = sandbox.apply_ok(&[]);
    resumed.expect_output("left running by the interrupted run");
    sleep(Duration::from_millis(1500));
    assert_eq!(sandbox.lines("log"), ["slow"], "the leftover process of the killed run must not append a second line\n{resumed}");
}
