//! Variable values reach shell steps, probes and file contents as data only, whether they come
//! from `--var`, a `--var-file` or `RB6_VAR_name`: the exact bytes arrive, and the command
//! substitutions inside them never run (no file `pwned` appears).

mod common;

use common::Sandbox;

/// Quotes, separators, command substitutions, an rb6 interpolation, backslashes and newlines.
const PAYLOAD: &str = "it's \"quoted\"; $(touch pwned) `touch pwned` && touch pwned | ${runbook.dir} $HOME \\back\\slash\nsecond line\ttab\n'; touch pwned; echo '";

/// Each step writes the variable to a file under `out/` in a different way.
const RUNBOOK: &str = r#"
runbook "injection" { description = "Variables are data" }

variable "payload" { default = "unset" }

step "out_dir" {
  directory { path = "${runbook.dir}/out" }
}

step "shell_word" {
  needs = [out_dir]
  shell { run = "printf '%s' ${var.payload} > ${runbook.dir}/out/shell_word" }
  undo { none = "test output" }
}

step "shell_heredoc" {
  needs = [out_dir]
  shell {
    run = <<-SH
      printf '%s' ${var.payload} > ${runbook.dir}/out/shell_heredoc
    SH
  }
  undo { none = "test output" }
}

step "shell_env" {
  needs = [out_dir]
  shell {
    run = "printf '%s' \"$PAYLOAD\" > ${runbook.dir}/out/shell_env"
    env = { PAYLOAD = "${var.payload}" }
  }
  undo { none = "test output" }
}

step "probe" {
  needs = [out_dir]
  shell { run = "true" }
  check {
    command { run = "printf '%s' ${var.payload} > ${runbook.dir}/out/probe; false" }
  }
  undo { none = "test output" }
}

step "file" {
  needs = [out_dir]
  file {
    path    = "${runbook.dir}/out/file"
    content = var.payload
  }
}

step "file_template" {
  needs = [out_dir]
  file {
    path    = "${runbook.dir}/out/file_template"
    content = "[${var.payload}]"
  }
}

step "yaml" {
  needs = [out_dir]
  file {
    path    = "${runbook.dir}/out/config.yaml"
    content = "key: old\n"
  }
}

step "yaml_value" {
  needs = [yaml]
  yaml_set {
    file   = "${runbook.dir}/out/config.yaml"
    values = { "key" = var.payload }
  }
}
"#;

/// Writes `value` as an rb6 string literal.
fn rb6_string(value: &str) -> String {
    let mut literal = String::from("\"");
    let mut rest = value;
    while let Some(character) = rest.chars().next() {
        if rest.starts_with("${") {
            literal.push_str("$${");
            rest = &rest[2..];
            continue;
        }
        match character {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            '\t' => literal.push_str("\\t"),
            other => literal.push(other),
        }
        rest = &rest[character.len_utf8()..];
    }
    literal.push('"');
    literal
}

/// Asserts that every output file contains the payload's exact bytes and no `pwned` file exists.
fn assert_payload_arrived(sandbox: &Sandbox, source: &str) {
    for name in ["shell_word", "shell_heredoc", "shell_env", "probe", "file"] {
        let bytes = std::fs::read(sandbox.path(&format!("out/{name}"))).unwrap_or_else(|error| panic!("{source}: step {name} wrote no output: {error}"));
        assert_eq!(String::from_utf8_lossy(&bytes), PAYLOAD, "{source}: step {name} should receive the exact bytes");
    }
    assert_eq!(sandbox.read("out/file_template"), format!("[{PAYLOAD}]"), "{source}: a file template should contain the exact bytes");

    let yaml = sandbox.read("out/config.yaml");
    let path = "key".parse().expect("a valid key path");
    let value = rb6::actions::yaml::get(&yaml, &path).expect("the edited YAML parses");
    assert_eq!(value, Some(serde_json::Value::String(PAYLOAD.to_string())), "{source}: the YAML value should be the exact text:\n{yaml}");

    assert_eq!(sandbox.find_named("pwned"), Vec::<std::path::PathBuf>::new(), "{source}: no command inside the value may run");
}

#[test]
fn var_flag_value_is_data() {
    let sandbox = Sandbox::with_runbook(RUNBOOK);
    let assignment = format!("payload={PAYLOAD}");
    sandbox.run("plan", &["--var", &assignment]).expect_code(0);
    sandbox.apply_ok(&["--var", &assignment]);
    assert_payload_arrived(&sandbox, "--var");
}

#[test]
fn var_file_value_is_data() {
    let sandbox = Sandbox::with_runbook(RUNBOOK);
    sandbox.write("values.rb6vars", format!("payload = {}\n", rb6_string(PAYLOAD)));
    sandbox.apply_ok(&["--var-file", "values.rb6vars"]);
    assert_payload_arrived(&sandbox, "--var-file");
}

#[test]
fn environment_value_is_data() {
    let sandbox = Sandbox::with_runbook(RUNBOOK);
    sandbox.rb6(&["apply", common::RUNBOOK, "--auto-approve"]).env("RB6_VAR_payload", PAYLOAD).run().expect_code(0);
    assert_payload_arrived(&sandbox, "RB6_VAR_payload");
}

#[test]
fn plan_shows_value_without_running_it() {
    let sandbox = Sandbox::with_runbook(RUNBOOK);
    let plan = sandbox.rb6(&["plan", common::RUNBOOK]).env("RB6_VAR_payload", PAYLOAD).run().expect_code(0);
    plan.expect_output("$(touch pwned)");
    assert_eq!(sandbox.find_named("pwned"), Vec::<std::path::PathBuf>::new(), "plan should run nothing");
}
