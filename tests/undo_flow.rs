//! `rb6 undo` through the real binary. Every edited file comes back byte-identical after a full
//! or a partial apply. An `only_if` guard skips an undo, and a handler-style undo runs after the
//! undos of the steps it needs. `--target` limits the undo, a file edited since the apply stops
//! the undo unless `--force`, and an undo killed with SIGKILL resumes.

mod common;

use common::{Sandbox, PAUSE_SCRIPT};

const BRIDGE: &[u8] = include_bytes!("fixtures/mautrix-signal-config.yaml");
const HOMESERVER: &[u8] = include_bytes!("fixtures/homeserver.yaml");
const EXISTING: &str = "original\ncontent\n";
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost\n";

/// Edits of every automatic kind, a handler, a guarded undo and a slow undo.
///
/// `guard` fails while the file `stop` exists, which stops the apply part-way. `restart`
/// records in `events` whether the edits of the steps it needs were already undone when its
/// own undo ran.
const RUNBOOK: &str = r#"
runbook "undo" { description = "File edits and their undo" }

step "conf_dir" {
  directory { path = "${runbook.dir}/etc/conf.d" }
}

step "new_conf" {
  needs = [conf_dir]
  file {
    path    = "${runbook.dir}/etc/conf.d/app.conf"
    content = "fresh\n"
    mode    = "0640"
  }
}

step "overwrite" {
  file {
    path    = "${runbook.dir}/etc/existing.conf"
    content = "replaced\n"
  }
}

step "hosts_block" {
  block {
    path    = "${runbook.dir}/etc/hosts"
    marker  = "rb6 matrix"
    content = "10.0.0.5 matrix.example\n"
  }
}

step "slow_undo" {
  needs = [hosts_block]
  shell { run = "echo slow-apply >> ${runbook.dir}/events" }
  undo {
    shell { run = "sh ${runbook.dir}/pause.sh undo; echo slow-undo >> ${runbook.dir}/events" }
  }
}

step "bridge_copy" {
  copy {
    source      = "${runbook.dir}/src/bridge.yaml"
    destination = "${runbook.dir}/etc/bridge.yaml"
  }
}

step "bridge_set" {
  needs = [bridge_copy]
  yaml_set {
    file   = "${runbook.dir}/etc/bridge.yaml"
    values = { "homeserver.address" = "http://synapse:8008", "homeserver.domain" = "test.example", "appservice.port" = 29999 }
  }
}

step "bridge_tags" {
  needs = [bridge_set]
  yaml_append {
    file  = "${runbook.dir}/etc/bridge.yaml"
    key   = "bridge.only_bridge_tags"
    items = ["u.rb6-appended"]
  }
}

step "hs_set" {
  yaml_set {
    file   = "${runbook.dir}/etc/homeserver.yaml"
    values = { "server_name" = "test.example", "database.name" = "psycopg2", "database.args.cp_min" = 5 }
  }
}

step "hs_append" {
  needs = [hs_set]
  yaml_append {
    file  = "${runbook.dir}/etc/homeserver.yaml"
    key   = "trusted_key_servers"
    items = [{ server_name = "rb6-appended.example" }]
  }
}

step "guard" {
  needs = [hs_append]
  shell { run = "test ! -e ${runbook.dir}/stop" }
  undo { none = "only a test" }
}

step "hs_remove" {
  needs = [guard]
  yaml_remove {
    file = "${runbook.dir}/etc/homeserver.yaml"
    key  = "report_stats"
  }
}

step "restart" {
  needs = [hs_remove, bridge_tags]
  shell { run = "echo restart-apply >> ${runbook.dir}/events" }
  undo {
    shell { run = <<-SH
      cd ${runbook.dir}
      if grep -q '^report_stats:' etc/homeserver.yaml; then echo restart-undo-after-hs_remove >> events; else echo restart-undo-before-hs_remove >> events; fi
      if grep -q 'u.rb6-appended' etc/bridge.yaml 2>/dev/null; then echo restart-undo-before-bridge_tags >> events; else echo restart-undo-after-bridge_tags >> events; fi
    SH
    }
    order = "after_needs"
  }
}

step "service" {
  shell { run = "echo service-on >> ${runbook.dir}/events" }
  undo {
    shell { run = "echo service-off >> ${runbook.dir}/events" }
    only_if {
      file_check {
        path   = "${runbook.dir}/service.enabled"
        exists = true
      }
    }
  }
}
"#;

/// The files rb6 creates: undo must remove them.
const CREATED: [&str; 3] = ["etc/conf.d/app.conf", "etc/conf.d", "etc/bridge.yaml"];

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::with_runbook(RUNBOOK);
    sandbox.write("pause.sh", PAUSE_SCRIPT);
    sandbox.write("src/bridge.yaml", BRIDGE);
    sandbox.write("etc/homeserver.yaml", HOMESERVER);
    sandbox.write("etc/existing.conf", EXISTING);
    sandbox.write("etc/hosts", HOSTS);
    sandbox
}

fn read_bytes(sandbox: &Sandbox, relative: &str) -> Vec<u8> {
    std::fs::read(sandbox.path(relative)).unwrap_or_else(|error| panic!("can't read {relative}: {error}"))
}

/// Asserts that every edited file is changed, and every created file exists, after an apply.
fn assert_all_edited(sandbox: &Sandbox) {
    assert_ne!(read_bytes(sandbox, "etc/homeserver.yaml"), HOMESERVER, "apply should edit homeserver.yaml");
    assert_ne!(read_bytes(sandbox, "etc/existing.conf"), EXISTING.as_bytes(), "apply should overwrite existing.conf");
    assert_ne!(read_bytes(sandbox, "etc/hosts"), HOSTS.as_bytes(), "apply should add a block to hosts");
    assert_ne!(read_bytes(sandbox, "etc/bridge.yaml"), BRIDGE, "apply should edit the copied bridge.yaml");
    for created in CREATED {
        assert!(sandbox.exists(created), "apply should create {created}");
    }
}

/// Asserts that every file is byte-identical to its original and every created file is gone.
fn assert_all_restored(sandbox: &Sandbox) {
    assert!(read_bytes(sandbox, "etc/homeserver.yaml") == HOMESERVER, "homeserver.yaml should be restored byte-identical");
    assert!(read_bytes(sandbox, "etc/existing.conf") == EXISTING.as_bytes(), "existing.conf should be restored byte-identical");
    assert!(read_bytes(sandbox, "etc/hosts") == HOSTS.as_bytes(), "hosts should be restored byte-identical");
    assert!(read_bytes(sandbox, "src/bridge.yaml") == BRIDGE, "the copy's source should be left alone");
    for created in CREATED {
        assert!(!sandbox.exists(created), "undo should remove {created}, which apply created");
    }
}

fn count(lines: &[String], text: &str) -> usize {
    lines.iter().filter(|line| *line == text).count()
}

#[test]
fn full_undo_restores_every_file() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);
    assert_all_edited(&sandbox);

    let undo = sandbox.undo_ok(&[]);
    assert_all_restored(&sandbox);
    let events = sandbox.lines("events");
    assert_eq!(count(&events, "slow-undo"), 1, "the explicit undo should run once: {events:?}");
    assert_eq!(count(&events, "service-off"), 0, "the only_if guard should skip the service's undo: {events:?}\n{undo}");
    undo.expect_output("step \"service\" undo skipped: only_if did not hold");

    undo.expect_output("step \"guard\" left in place; `hs_");
    undo.expect_output("which it depends on, is being undone, so the next apply runs it again");
    for line in sandbox.state_list() {
        assert!(line.ends_with(" undone"), "after a full undo every step should be recorded undone; guard, which has no undo, because a step it needs was undone: {line}");
    }
    sandbox.run("plan", &["--undo"]).expect_code(0).expect_output("Nothing to undo (0 left in place)");
}

#[test]
fn only_if_guard_allows_undo() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);
    sandbox.write("service.enabled", "");
    sandbox.undo_ok(&["--target", "service"]);
    assert_eq!(count(&sandbox.lines("events"), "service-off"), 1, "the undo should run when its only_if guard holds");
}

#[test]
fn handler_undo_runs_after_needs() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);

    let plan = sandbox.run("plan", &["--undo", "--json"]).expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan --json is JSON");
    let restart = plan["entries"].as_array().expect("entries").iter().find(|entry| entry["step"] == "restart").expect("restart is in the undo plan");
    let after: Vec<&str> = restart["undo_after"].as_array().expect("undo_after").iter().filter_map(|name| name.as_str()).collect();
    for need in ["hs_remove", "bridge_tags"] {
        assert!(after.contains(&need), "restart's undo should be planned after {need}'s: {after:?}");
    }

    let undo = sandbox.undo_ok(&[]);
    let restart_at = undo.line_index("step \"restart\" undone");
    for need in ["hs_remove", "bridge_tags"] {
        assert!(undo.line_index(&format!("step \"{need}\" undone")) < restart_at, "{need} should be undone before restart\n{undo}");
    }
    let events = sandbox.lines("events");
    assert_eq!(count(&events, "restart-undo-after-hs_remove"), 1, "restart's undo should see hs_remove already undone: {events:?}");
    assert_eq!(count(&events, "restart-undo-after-bridge_tags"), 1, "restart's undo should see bridge_tags already undone: {events:?}");
}

#[test]
fn partial_apply_undo_restores_every_file() {
    let sandbox = sandbox();
    sandbox.write("stop", "");
    let apply = sandbox.run("apply", &["--auto-approve"]).expect_code(1);
    apply.expect_output("failed: guard");
    assert_eq!(sandbox.status("hs_append"), "applied", "the steps before the failure should be applied\n{apply}");
    assert_eq!(sandbox.status("hs_remove"), "pending", "the steps after the failure should not run\n{apply}");

    sandbox.undo_ok(&[]);
    assert_all_restored(&sandbox);
}

#[test]
fn target_undoes_step_and_dependents() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);

    let undo = sandbox.undo_ok(&["--target", "hs_append"]);
    undo.expect_output("step \"guard\" left in place; `hs_append`, which it depends on, is being undone");
    assert_eq!(sandbox.status("guard"), "undone", "guard has no undo and stays in place, but needs hs_append, so the next apply runs it again");
    for step in ["hs_append", "hs_remove", "restart"] {
        assert_eq!(sandbox.status(step), "undone", "--target hs_append should undo {step}, which depends on it");
    }
    for step in ["hs_set", "bridge_copy", "bridge_set", "bridge_tags", "overwrite", "hosts_block", "new_conf", "service"] {
        assert_eq!(sandbox.status(step), "applied", "--target hs_append should leave {step} applied");
    }

    let homeserver = sandbox.read("etc/homeserver.yaml");
    assert!(homeserver.contains("server_name: \"test.example\"") || homeserver.contains("server_name: test.example"), "hs_set's edit should stay:\n{homeserver}");
    assert!(!homeserver.contains("rb6-appended.example"), "hs_append's edit should be undone:\n{homeserver}");
    assert!(homeserver.contains("report_stats: false"), "hs_remove's edit should be undone:\n{homeserver}");
    assert_eq!(read_bytes(&sandbox, "etc/existing.conf"), b"replaced\n", "--target should not undo unrelated steps");

    sandbox.undo_ok(&[]);
    assert_all_restored(&sandbox);
}

#[test]
fn edited_file_stops_undo_unless_force() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);
    sandbox.write("etc/existing.conf", "replaced\nlocal edit\n");

    let stopped = sandbox.run("undo", &["--auto-approve"]).expect_code(1);
    stopped.expect_output("existing.conf changed since rb6 wrote it, so undo stopped");
    stopped.expect_output("-local edit");
    stopped.expect_output("+original");
    stopped.expect_output("rb6 undo --force");
    assert_eq!(sandbox.read("etc/existing.conf"), "replaced\nlocal edit\n", "undo should leave the edited file as it is");
    assert_eq!(sandbox.status("overwrite"), "undo_failed", "the stopped undo should be recorded as failed");

    sandbox.undo_ok(&["--force"]);
    assert_all_restored(&sandbox);
}

#[test]
fn killed_undo_resumes() {
    let sandbox = sandbox();
    sandbox.apply_ok(&[]);

    sandbox.kill_at("undo", &["undo", common::RUNBOOK, "--auto-approve"]);
    assert_eq!(sandbox.status("slow_undo"), "undo_started", "the killed undo should be recorded as started");
    assert_eq!(sandbox.status("hosts_block"), "applied", "the step slow_undo needs should wait for its undo");

    let resumed = sandbox.undo_ok(&[]);
    resumed.expect_output("step \"slow_undo\" undone");
    assert_all_restored(&sandbox);
    assert_eq!(count(&sandbox.lines("events"), "slow-undo"), 1, "the resumed undo should finish the slow undo once");
}

/// One file edit, for the interrupted-before-its-record case.
const SINGLE_EDIT: &str = r#"
runbook "edit" { description = "One file edit" }

step "edit" {
  file {
    path    = "${runbook.dir}/config.txt"
    content = "edited\n"
  }
}
"#;

#[test]
fn undo_after_resumed_edit_restores_original() {
    let sandbox = Sandbox::with_runbook(SINGLE_EDIT);
    sandbox.write("config.txt", "original\n");

    // A kill between the write and its "applied" record leaves a "started" record that holds
    // the original's snapshot, and the file already edited.
    let (path, before) = rb6::actions::file::snapshot(&sandbox.path("config.txt")).expect("snapshot the original");
    let mut store = rb6::state::store::Store::open(&sandbox.state_dir()).expect("open the state");
    let before = serde_json::json!({ "path": path, "before": before });
    store
        .append(rb6::state::records::Record::Started { step: "edit".into(), hash: "interrupted".into(), at: "2026-01-01T00:00:00Z".into(), before })
        .expect("append the started record");
    drop(store);
    sandbox.write("config.txt", "edited\n");

    sandbox.apply_ok(&["--retry-interrupted"]);
    sandbox.undo_ok(&[]);
    assert_eq!(sandbox.read("config.txt"), "original\n", "undo restores the content from before the first, interrupted attempt");
}

/// A directory with automatic undo, and a file written into it by a step with no undo.
const GENERATED_IN_DIR: &str = r#"
runbook "redeploy" { description = "A generated file inside a directory that undo removes" }

step "data_dir" {
  directory { path = "${runbook.dir}/data" }
  undo { remove_directory { path = "${runbook.dir}/data" } }
}

step "generate" {
  needs = [data_dir]
  shell { run = "echo generated > ${runbook.dir}/data/config.txt" }
  check { file_check { path = "${runbook.dir}/data/config.txt" } }
  undo { none = "the file goes with the directory" }
}

step "use" {
  needs = [generate]
  shell { run = "cp ${runbook.dir}/data/config.txt ${runbook.dir}/copy.txt" }
  undo { shell { run = "rm -f ${runbook.dir}/copy.txt" } }
}
"#;

#[test]
fn redeploy_after_undo_regenerates_files() {
    let sandbox = Sandbox::with_runbook(GENERATED_IN_DIR);
    sandbox.apply_ok(&[]);
    let undo = sandbox.undo_ok(&[]);
    undo.expect_output("so the next apply runs it again");
    assert!(!sandbox.exists("data"), "undo removes the directory with the generated file");

    let again = sandbox.apply_ok(&[]);
    again.expect_output("step \"generate\" applied");
    assert_eq!(sandbox.read("copy.txt"), "generated\n", "the redeploy regenerates the file the removed directory held");
}
