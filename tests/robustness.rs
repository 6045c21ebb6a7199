//! Fuzz-style robustness tests of loading: truncated, mutated, huge, deeply nested and binary
//! runbooks must give an error with a `line:column` location, never a panic or a hang.
//!
//! The inputs are derived deterministically (a seeded PRNG) from three valid runbooks, so a
//! failure reproduces. Each case runs on a worker thread with a time bound. Text goes through
//! `rb6::load_source`, and bytes are written to a file for `rb6::load`. A few cases also go
//! through the binary, which must exit 1 and never 101 (the exit code of a Rust panic).

mod cli_support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rb6::diagnostic::SourceFile;
use rb6::LoadError;

use cli_support::Scratch;

/// Upper bound for loading one input in a debug build.
const CASE_LIMIT: Duration = Duration::from_secs(10);

const LOCAL: &str = r#"runbook "local" { description = "files, shell and a heredoc" }

variable "greeting" { default = "hello; $(touch pwned) 'quoted'" }
variable "dir" { default = "/tmp/rb6-robustness/out" }
secret "token" { length = 32 }

step "make_dir" {
  directory { path = var.dir }
}

step "write_file" {
  needs = [make_dir]
  file {
    path    = "${var.dir}/greeting.txt"
    content = "${var.greeting}\ntoken=${secret.token}\n"
    mode    = "0640"
  }
}

step "echo" {
  needs = [write_file]
  shell { run = "echo ${var.greeting} > ${var.dir}/echo.txt; cat ${var.dir}/echo.txt" }
  capture "echoed" { stdout = true }
  undo { shell { run = "rm -f ${var.dir}/echo.txt" } }
}

gate "file_ok" {
  needs = [echo]
  file_check {
    path     = "${var.dir}/echo.txt"
    contains = "quoted"
  }
}

manual "tell_team" {
  needs = [file_ok]
  instructions = <<-TEXT
    Tell the team that ${capture.echoed} is ready. # not a comment
    Literal $${braces} stay.
  TEXT
}
"#;

const REMOTE: &str = r#"runbook "remote" { description = "postgres, docker and http" }

variable "role" { default = "reader" }
secret "db_password" { length = 32, alphabet = "hex" }
secret "api" { env = "RB6_ROBUSTNESS_API" }

postgres "admin" {
  container = "rb6-test-pg"
  network   = "rb6-test-net"
  user      = "postgres"
  database  = "postgres"
  password  = "${secret.db_password}"
  port      = 5432
}

docker "local" { url = "unix:///var/run/docker.sock" }

/* A role, then a check that it can log in. */
step "create_role" {
  description = "create the application role"
  timeout     = "30s"
  retries     = 2
  retry_delay = "1s"
  sql {
    connection = postgres.admin
    statements = <<SQL
      CREATE ROLE ${ident(var.role)} LOGIN PASSWORD ${secret.db_password};
      GRANT CONNECT ON DATABASE postgres TO ${ident(var.role)};
    SQL
  }
  check {
    query {
      connection  = postgres.admin
      sql         = "SELECT 1 FROM pg_roles WHERE rolname = ${var.role}"
      expect_rows = 1
    }
  }
  undo {
    sql {
      connection = postgres.admin
      statements = "DROP ROLE ${ident(var.role)}"
    }
  }
}

step "run_tool" {
  needs = [create_role]
  docker_run {
    connection = docker.local
    image      = "busybox:latest"
    command    = ["sh", "-c", "echo ok"]
    env        = { MODE = "test", "A_B" = "c", }
    volumes    = ["/tmp:/data:ro"]
  }
  undo { none = "a one-off container" }
}

gate "api_up" {
  needs   = [run_tool]
  retries = 3
  http {
    url                  = "http://127.0.0.1:1/health"
    headers              = { Authorization = "Bearer ${secret.api}" }
    expect_status        = [200, 204]
    expect_json          = { "status.ok" = true, "count" = 3 }
    fail_on_redirect     = true
    expect_body_contains = ["ok"]
  }
  wait_until {
    interval = "1s"
    timeout  = "10s"
    command { run = "true" }
  }
  on_fail {
    docker_logs {
      container = "rb6-test-pg"
      tail      = 50
    }
    command { run = "date" }
  }
}
"#;

const YAML: &str = r#"runbook "yaml" { description = "YAML edits and blocks" }

variable "config" { default = "/tmp/rb6-robustness/config.yaml" }
variable "port" { default = 8008 }
variable "enabled" { default = true }

step "set_values" {
  yaml_set {
    file   = var.config
    values = {
      "server.port"    = 8008,
      "server.enabled" = true,
      "server.name"    = "${var.config}",
      "list"           = [1, 2.5, -3, null, "x"],
    }
  }
}

step "append" {
  needs = [set_values]
  yaml_append {
    file  = var.config
    key   = "app_service_config_files"
    items = ["/data/a.yaml", "/data/b.yaml"]
  }
}

step "marker" {
  needs = [append]
  block {
    path    = "/tmp/rb6-robustness/notes.txt"
    marker  = "rb6 robustness"
    content = <<EOT
line one
  line "two" with $${literal}
EOT
  }
  check {
    yaml_check {
      file   = var.config
      key    = "server.port"
      equals = 8008
    }
  }
}

// End of the runbook.
"#;

/// What loading one input produced.
#[derive(Debug)]
enum Outcome {
    Valid,
    /// The `file:line:column` of every problem, and the rendered report.
    Invalid { locations: Vec<String>, rendered: String },
    Unreadable(String),
}

fn summarize(result: Result<rb6::LoadedRunbook, LoadError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Valid,
        Err(LoadError::Invalid(diagnostics)) => Outcome::Invalid {
            locations: diagnostics.problems.iter().map(|problem| problem.location()).collect(),
            rendered: rb6::diagnostic::render(&diagnostics.problems, false),
        },
        Err(LoadError::Unreadable { message, .. }) => Outcome::Unreadable(message),
    }
}

/// Runs `work` on a worker thread; panics with `case` when it panics or exceeds [`CASE_LIMIT`].
fn bounded(case: &str, work: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    let (sender, receiver) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let _ = sender.send(work());
        })
        .expect("spawn a worker thread");
    let started = Instant::now();
    match receiver.recv_timeout(CASE_LIMIT) {
        Ok(outcome) => {
            worker.join().expect("worker finished");
            outcome
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("case {case}: loading panicked"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("case {case}: loading took longer than {CASE_LIMIT:?} (started {:?} ago)", started.elapsed()),
    }
}

/// Asserts that an invalid outcome locates every problem as `runbook.rb6:LINE:COL`.
fn assert_located(case: &str, outcome: &Outcome) {
    let location = regex::Regex::new(r"^runbook\.rb6:\d+:\d+$").expect("valid regex");
    match outcome {
        Outcome::Valid => {}
        Outcome::Invalid { locations, rendered } => {
            assert!(!locations.is_empty(), "case {case}: an invalid runbook has at least one problem");
            for found in locations {
                assert!(location.is_match(found), "case {case}: problem location {found:?} is file:line:column");
            }
            assert!(rendered.contains("runbook.rb6:"), "case {case}: the rendered report names the file:\n{rendered}");
        }
        Outcome::Unreadable(message) => panic!("case {case}: a readable file was reported unreadable: {message}"),
    }
}

/// Loads text with `rb6::load_source`.
fn check_text(case: &str, text: String) -> Outcome {
    let outcome = bounded(case, move || summarize(rb6::load_source(SourceFile::new("runbook.rb6", text), Path::new("/tmp/rb6-robustness/runbook.rb6"))));
    assert_located(case, &outcome);
    outcome
}

/// Writes bytes to `runbook.rb6` in `dir` and loads them with `rb6::load`.
fn check_bytes(case: &str, dir: &Path, bytes: &[u8]) -> Outcome {
    let path = dir.join("runbook.rb6");
    std::fs::write(&path, bytes).expect("write the mutated runbook");

    let outcome = bounded(case, move || relocate(summarize(rb6::load(&path)), &path));
    assert_located(case, &outcome);
    outcome
}

/// Rewrites an absolute runbook path in locations to `runbook.rb6`, as a relative path would show.
fn relocate(outcome: Outcome, path: &Path) -> Outcome {
    let absolute = path.display().to_string();
    match outcome {
        Outcome::Invalid { locations, rendered } => Outcome::Invalid {
            locations: locations.into_iter().map(|location| location.replacen(&absolute, "runbook.rb6", 1)).collect(),
            rendered: rendered.replace(&absolute, "runbook.rb6"),
        },
        other => other,
    }
}

fn bases() -> [(&'static str, &'static str); 3] {
    [("local", LOCAL), ("remote", REMOTE), ("yaml", YAML)]
}

#[test]
fn base_runbooks_are_valid() {
    for (name, text) in bases() {
        let outcome = check_text(name, text.to_string());
        assert!(matches!(outcome, Outcome::Valid), "base runbook {name} is valid: {outcome:?}");
    }
}

#[test]
fn truncation_at_every_char() {
    for (name, text) in bases() {
        let mut invalid = 0;
        for (offset, _) in text.char_indices() {
            let outcome = check_text(&format!("{name} truncated at {offset}"), text[..offset].to_string());
            invalid += usize::from(matches!(outcome, Outcome::Invalid { .. }));
        }
        assert!(invalid > text.len() / 2, "{name}: most truncations are invalid ({invalid} of {})", text.len());
    }
}

#[test]
fn truncation_inside_multibyte_chars() {
    let scratch = Scratch::new();
    let text = "runbook \"é☃😀\" { description = \"grüße ☃ 😀\" }\n".as_bytes();
    for offset in 0..text.len() {
        check_bytes(&format!("multibyte truncated at {offset}"), scratch.path(), &text[..offset]);
    }
}

/// Applies one deterministic mutation to `bytes` and describes it.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> (String, Vec<u8>) {
    let mut out = bytes.to_vec();
    let at = rng.random_range(0..out.len());
    match rng.random_range(0..7) {
        0 => {
            let bit = 1u8 << rng.random_range(0..8);
            out[at] ^= bit;
            (format!("flip bit {bit:#04x} at {at}"), out)
        }
        1 => {
            let end = (at + rng.random_range(1..64)).min(out.len());
            out.drain(at..end);
            (format!("delete {at}..{end}"), out)
        }
        2 => {
            let end = (at + rng.random_range(1..128)).min(out.len());
            let span = out[at..end].to_vec();
            out.splice(at..at, span);
            (format!("duplicate {at}..{end}"), out)
        }
        3 => {
            let count = rng.random_range(1..8);
            let inserted: Vec<u8> = (0..count).map(|_| rng.random_range(0x20u8..0x7f)).collect();
            out.splice(at..at, inserted.iter().copied());
            (format!("insert ASCII {:?} at {at}", String::from_utf8_lossy(&inserted)), out)
        }
        4 => {
            let inserted = [[0xffu8].as_slice(), &[0xc3], &[0xe2, 0x98], &[0xed, 0xa0, 0x80], &[0xf8, 0x88, 0x80, 0x80, 0x80]][rng.random_range(0..5)];
            out.splice(at..at, inserted.iter().copied());
            (format!("insert non-UTF-8 {inserted:02x?} at {at}"), out)
        }
        5 => {
            let token = ["{", "}", "[", "]", "\"", "${", "$${", "<<EOT\n", "<<-EOT\n", "\nEOT\n", "/*", "*/", "#", "=", ",", "\\", "\n"][rng.random_range(0..17)];
            out.splice(at..at, token.bytes());
            (format!("insert {token:?} at {at}"), out)
        }
        _ => {
            out[at] = 0;
            (format!("NUL at {at}"), out)
        }
    }
}

#[test]
fn deterministic_mutations() {
    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(0x7262_3621);
    for (name, text) in bases() {
        for round in 0..400 {
            let (what, bytes) = mutate(text.as_bytes(), &mut rng);
            let case = format!("{name} round {round}: {what}");
            match String::from_utf8(bytes) {
                Ok(text) => check_text(&case, text),
                Err(error) => check_bytes(&case, scratch.path(), error.as_bytes()),
            };
        }
    }
}

#[test]
fn stacked_mutations() {
    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(0x0dd_5eed);
    for (name, text) in bases() {
        for round in 0..60 {
            let mut bytes = text.as_bytes().to_vec();
            let mut applied = Vec::new();
            for _ in 0..rng.random_range(2..10) {
                let (what, next) = mutate(&bytes, &mut rng);
                applied.push(what);
                bytes = next;
            }
            check_bytes(&format!("{name} round {round}: {}", applied.join(", ")), scratch.path(), &bytes);
        }
    }
}

#[test]
fn deep_nesting_is_rejected() {
    let table: Vec<(&str, String)> = vec![
        ("10,000 [", format!("x = {}", "[".repeat(10_000))),
        ("10,000 [ closed", format!("x = {}1{}", "[".repeat(10_000), "]".repeat(10_000))),
        ("10,000 {", format!("step \"a\" {}", "{".repeat(10_000))),
        ("10,000 map levels", format!("x = {}", "{ a = ".repeat(10_000))),
        ("10,000 blocks", "a { ".repeat(10_000)),
        ("10,000 interpolations opened", format!("x = \"{}\"", "${".repeat(10_000))),
        ("10,000 (", format!("x = \"${{{}var.x\"", "f(".repeat(10_000))),
        ("10,000 mixed", "[{(".repeat(3_334)),
    ];
    for (case, text) in table {
        let outcome = check_text(case, text);
        assert!(matches!(outcome, Outcome::Invalid { .. }), "case {case}: rejected");
    }
}

#[test]
fn huge_inputs_are_bounded() {
    let scratch = Scratch::new();
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("20 MB of valid steps", LOCAL.repeat(20 * 1024 * 1024 / LOCAL.len() + 1).into_bytes()),
        ("20 MB of one line", vec![b'x'; 20 * 1024 * 1024]),
        ("1 MB unterminated string", format!("x = \"{}", "a".repeat(1024 * 1024)).into_bytes()),
        ("1 MB unterminated comment", format!("/*{}", "a\n".repeat(512 * 1024)).into_bytes()),
        ("1 MB unterminated heredoc", format!("x = <<EOT\n{}", "EOTX\n".repeat(200 * 1024)).into_bytes()),
        ("1 MB of attributes", "x = 1\n".repeat(170 * 1024).into_bytes()),
    ];
    for (case, bytes) in table {
        let started = Instant::now();
        let outcome = check_bytes(case, scratch.path(), &bytes);
        assert!(matches!(outcome, Outcome::Invalid { .. }), "case {case}: rejected, got {outcome:?}");
        assert!(started.elapsed() < CASE_LIMIT, "case {case}: took {:?}", started.elapsed());
    }
}

#[test]
fn many_problems_are_capped() {
    let text = "x = 1\n".repeat(100_000);
    let started = Instant::now();
    let outcome = check_text("100,000 top-level attributes", text);
    let Outcome::Invalid { locations, rendered } = outcome else { panic!("100,000 top-level attributes are rejected") };
    assert_eq!(locations.len(), rb6::load::MAX_PROBLEMS + 1, "problems are capped, plus one that counts the rest");
    assert!(rendered.contains("more not shown"), "the last problem counts the omitted ones");
    assert!(started.elapsed() < Duration::from_secs(5), "loading and rendering take under 5 s, took {:?}", started.elapsed());
}

#[test]
fn many_steps_load_quickly() {
    let mut text = String::from("runbook \"many\" { description = \"many steps\" }\n");
    for index in 0..2000 {
        let needs = if index == 0 { String::new() } else { format!("needs = [s{}]", index - 1) };
        text.push_str(&format!("step \"s{index}\" {{\n  {needs}\n  directory {{ path = \"/tmp/rb6-many/{index}\" }}\n}}\n"));
    }
    let started = Instant::now();
    let outcome = check_text("2,000 chained steps", text);
    assert!(matches!(outcome, Outcome::Valid), "2,000 chained steps are valid: {outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "2,000 steps load in under 5 s, took {:?}", started.elapsed());
}

#[test]
fn binary_and_nul_inputs() {
    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(42);
    let random: Vec<u8> = (0..64 * 1024).map(|_| rng.random()).collect();
    let executable = std::fs::read(cli_support::RB6).expect("read the rb6 binary");
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("64 KiB of random bytes", random),
        ("start of an ELF binary", executable[..64 * 1024].to_vec()),
        ("the whole rb6 binary", executable),
        ("only NUL bytes", vec![0; 1024]),
        ("NUL in a string", b"runbook \"a\" { description = \"a\0b\" }\n".to_vec()),
        ("NUL after a valid runbook", [LOCAL.as_bytes(), b"\0"].concat()),
        ("UTF-16 text", "runbook \"a\" {}".encode_utf16().flat_map(u16::to_le_bytes).collect()),
        ("byte order mark", [b"\xef\xbb\xbf".as_slice(), LOCAL.as_bytes()].concat()),
        ("lone continuation byte", b"runbook \"\x80\" {}\n".to_vec()),
    ];
    for (case, bytes) in table {
        let outcome = check_bytes(case, scratch.path(), &bytes);
        assert!(matches!(outcome, Outcome::Invalid { .. }), "case {case}: rejected, got {outcome:?}");
    }
}

#[test]
fn binary_reports_location_never_panics() {
    let line_column = regex::Regex::new(r"runbook\.rb6:\d+:\d+").expect("valid regex");
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", LOCAL.as_bytes()[..LOCAL.len() / 2].to_vec()),
        ("10,000 [", format!("x = {}", "[".repeat(10_000)).into_bytes()),
        ("20 MB", vec![b'#'; 20 * 1024 * 1024]),
        ("NUL bytes", vec![0; 100]),
        ("invalid UTF-8", [LOCAL.as_bytes(), b"\xff\xfe"].concat()),
        ("unterminated heredoc", b"runbook \"a\" { description = <<EOT\nnever ends\n".to_vec()),
    ];
    for (case, bytes) in table {
        let scratch = Scratch::new();
        std::fs::write(scratch.path().join("runbook.rb6"), &bytes).expect("write the runbook");
        for command in ["validate", "plan", "graph"] {
            let run = scratch.rb6(&[command, "runbook.rb6"]);
            assert_ne!(run.code, 101, "case {case}: rb6 {command} panicked:\n{}", run.stderr);
            assert_eq!(run.code, 1, "case {case}: rb6 {command} exits 1:\n{}", run.stderr);
            assert!(line_column.is_match(&run.stderr), "case {case}: rb6 {command} shows runbook.rb6:LINE:COL:\n{}", run.stderr);
        }
    }
}
