//! Runbooks that use the PostgreSQL, Docker and compose actions, run through the rb6 binary
//! against the real engines. Each test checks the effects itself, with the PostgreSQL client
//! library or the docker CLI, and does not trust rb6's own report.
//!
//! Invariants: a missing Docker Engine or PostgreSQL server fails the test with a message that
//! names what to start, and no test skips itself. Every container, network, image, database and
//! role a test creates is named `rb6-test-*` or `rb6_test_*` and is removed by a guard when the
//! test ends, also when an assert fails. The shared server container rb6-test-pg and its network
//! rb6-test-net are started by tests/support/start-pg-container.sh and left running for reuse.

mod support;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use rb6::actions::postgres::{quote_literal, PgTarget, DEFAULT_PORT};
use support::{
    docker_cli, pg_client, pg_container, pg_url, test_image, unique_name, ContainerGuard,
    NetworkGuard, PG_NETWORK, PG_PASSWORD,
};

// ---------------------------------------------------------------------------------------------
// Running rb6

/// The exit status and output of one rb6 run.
struct Run {
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Returns stdout and stderr together, for checks that do not care which stream a line took.
    fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn contains(&self, text: &str) -> bool {
        self.output().contains(text)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "rb6 {:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary directory holding runbooks and their default state directory `.rb6/`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a runbook (or any file) into the workspace and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("write {name}: {error}"));
        path
    }

    /// Runs rb6 in the workspace with `NO_COLOR` set and extra environment variables.
    fn rb6(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_rb6"))
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env_remove("RB6_LOG")
            .current_dir(self.path())
            .output()
            .unwrap_or_else(|error| panic!("cannot run rb6 {args:?}: {error}"));
        Run {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `rb6 apply FILE --auto-approve` plus `extra` arguments.
    fn apply(&self, file: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["apply", file, "--auto-approve"];
        args.extend_from_slice(extra);
        self.rb6(&args, env)
    }

    /// Runs `rb6 undo FILE --auto-approve` plus `extra` arguments.
    fn undo(&self, file: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["undo", file, "--auto-approve"];
        args.extend_from_slice(extra);
        self.rb6(&args, env)
    }

    /// Returns the contents of every file under `dir`, relative to the workspace.
    fn files_under(&self, dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        let mut pending = vec![self.path().join(dir)];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    found.push((path, bytes));
                }
            }
        }
        found
    }
}

/// Replaces each `@KEY@` placeholder of a runbook template, so templates keep `${...}` readable.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("@{key}@"), value);
    }
    let unfilled = regex::Regex::new("@[A-Z]+@").expect("placeholder pattern");
    assert!(
        !unfilled.is_match(&text),
        "runbook template has a placeholder without a value:\n{text}"
    );
    text
}

// ---------------------------------------------------------------------------------------------
// Engines and cleanup

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// Fails the test unless the Docker Engine responds, and returns the local busybox test image.
fn require_docker() -> String {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match version {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "these tests need a running Docker Engine: start it (systemctl start docker, or \
             dockerd) and check that `docker info` works: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!(
            "these tests need the docker CLI and a running Docker Engine: install docker.io and \
             start dockerd: {error}"
        ),
    }
    test_image()
}

/// Runs one query on the test server of tests/support/start-postgres.sh and returns its rows.
/// Panics with what to start when the server is not there.
fn pg_rows(sql: &str) -> Vec<Vec<Option<String>>> {
    block_on(async {
        let client = pg_client().await;
        rb6::actions::postgres::query(&client, sql)
            .await
            .unwrap_or_else(|error| panic!("query {sql:?} failed: {error}"))
    })
}

/// Fails the test with what to start unless the test server of start-postgres.sh accepts queries.
fn require_postgres() {
    pg_rows("SELECT 1");
}

/// Returns the rows of a query on the server in container rb6-test-pg, as user rb6.
fn pg_container_rows(sql: &str) -> Vec<Vec<Option<String>>> {
    let target = PgTarget::Container {
        container: pg_container().to_string(),
        network: Some(PG_NETWORK.to_string()),
        port: DEFAULT_PORT,
        user: "rb6".into(),
        database: "postgres".into(),
        password: Some(PG_PASSWORD.into()),
    };
    block_on(async {
        let docker = support::docker().await;
        let client = rb6::actions::postgres::connect("verify", &target, Some(&docker))
            .await
            .unwrap_or_else(|error| panic!("connect to container {}: {error}", pg_container()));
        rb6::actions::postgres::query(&client, sql)
            .await
            .unwrap_or_else(|error| panic!("query {sql:?} failed: {error}"))
    })
}

/// Quotes a value as an SQL literal for the verification queries of the tests.
fn literal(value: &str) -> String {
    quote_literal(value).expect("quote an SQL literal")
}

/// Returns the first cell of each row, for compact asserts on one-column results.
fn cells(rows: Vec<Vec<Option<String>>>) -> Vec<Option<String>> {
    rows.into_iter()
        .map(|row| row.into_iter().next().flatten())
        .collect()
}

/// Returns a unique lower-case SQL name `rb6_test_<purpose>_<pid>_<n>`.
fn sql_name(purpose: &str) -> String {
    unique_name(purpose).replace('-', "_")
}

/// Runs cleanup statements on a PostgreSQL server when dropped, one by one, ignoring errors.
struct PgCleanup {
    target: PgTarget,
    statements: Vec<String>,
}

impl PgCleanup {
    fn host(statements: Vec<String>) -> PgCleanup {
        PgCleanup {
            target: PgTarget::Url(pg_url()),
            statements,
        }
    }
}

impl Drop for PgCleanup {
    fn drop(&mut self) {
        let target = self.target.clone();
        let statements = std::mem::take(&mut self.statements);
        // Runs on its own thread because the test may be unwinding from a panic.
        let _ = std::thread::spawn(move || {
            block_on(async {
                let docker = match &target {
                    PgTarget::Container { .. } => {
                        rb6::actions::docker::DockerClient::connect(None).await.ok()
                    }
                    PgTarget::Url(_) => None,
                };
                let Ok(client) =
                    rb6::actions::postgres::connect("cleanup", &target, docker.as_ref()).await
                else {
                    return;
                };
                for statement in statements {
                    let _ = client.batch_execute(&statement).await;
                }
            })
        })
        .join();
    }
}

/// Removes an image tag when dropped.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

/// Starts a detached busybox container that prints `lines` and sleeps; removed when dropped.
fn start_service(name: &str, extra: &[&str], lines: &[&str]) -> ContainerGuard {
    let image = require_docker();
    let mut script: String = lines.iter().map(|line| format!("echo {line}; ")).collect();
    script.push_str("exec sleep 3600");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image.as_str(), "sh", "-c", &script]);
    docker_cli(&args);
    ContainerGuard(name.to_string())
}

fn container_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", name])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|output| output.status.success())
}

// ---------------------------------------------------------------------------------------------
// sql and query

const ROLE_AND_DATABASE: &str = r#"
runbook "database" { description = "Create an application role and its database" }

variable "name" { default = "@NAME@" }

postgres "admin" { url = "@URL@" }

step "role" {
  sql {
    connection = postgres.admin
    statements = "CREATE ROLE ${ident(var.name)} LOGIN PASSWORD 'rb6-test-app'"
  }
  check {
    query {
      connection  = postgres.admin
      sql         = "SELECT 1 FROM pg_roles WHERE rolname = ${var.name}"
      expect_rows = 1
    }
  }
  undo {
    sql {
      connection = postgres.admin
      statements = "DROP ROLE ${ident(var.name)}"
    }
  }
}

step "database" {
  needs = [role]
  sql {
    connection = postgres.admin
    statements = <<-SQL
      CREATE DATABASE ${ident(var.name)} OWNER ${ident(var.name)}
        TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
      COMMENT ON DATABASE ${ident(var.name)} IS 'created by rb6';
    SQL
  }
  check {
    query {
      connection  = postgres.admin
      sql         = "SELECT 1 FROM pg_database WHERE datname = ${var.name}"
      expect_rows = 1
    }
  }
  undo {
    sql {
      connection = postgres.admin
      statements = "DROP DATABASE ${ident(var.name)} WITH (FORCE)"
    }
  }
}
"#;

#[test]
fn sql_role_and_database_apply_check_undo() {
    require_postgres();
    let name = sql_name("app");
    let _cleanup = PgCleanup::host(vec![
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}"),
    ]);
    let workspace = Workspace::new();
    workspace.write(
        "db.rb6",
        &render(ROLE_AND_DATABASE, &[("NAME", &name), ("URL", &pg_url())]),
    );

    let applied = workspace.apply("db.rb6", &[], &[]);
    assert_eq!(applied.code, 0, "first apply failed:\n{applied}");
    let database = pg_rows(&format!(
        "SELECT pg_get_userbyid(datdba), datcollate, datctype, pg_encoding_to_char(encoding) \
         FROM pg_database WHERE datname = {}",
        literal(&name)
    ));
    let expected = vec![vec![
        Some(name.clone()),
        Some("C".to_string()),
        Some("C".to_string()),
        Some("UTF8".to_string()),
    ]];
    assert_eq!(
        database, expected,
        "owner, collation and encoding of database {name}"
    );
    let login = pg_rows(&format!(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = {}",
        literal(&name)
    ));
    assert_eq!(
        cells(login),
        vec![Some("t".to_string())],
        "role {name} can log in"
    );

    let again = workspace.apply("db.rb6", &[], &[]);
    assert_eq!(
        again.code, 0,
        "second apply with the same state failed:\n{again}"
    );
    assert!(
        again.contains("No changes"),
        "second apply did not report no changes:\n{again}"
    );

    // A fresh state directory has no records, so only the check probes can find the work done.
    let checked = workspace.apply("db.rb6", &["--state", "fresh-state"], &[]);
    assert_eq!(
        checked.code, 0,
        "apply with a fresh state failed:\n{checked}"
    );
    for step in ["role", "database"] {
        let line = format!("step \"{step}\" already done (check passed)");
        assert!(
            checked.contains(&line),
            "fresh-state apply lacks `{line}`:\n{checked}"
        );
    }

    let undone = workspace.undo("db.rb6", &[], &[]);
    assert_eq!(undone.code, 0, "undo failed:\n{undone}");
    let databases = pg_rows(&format!(
        "SELECT 1 FROM pg_database WHERE datname = {}",
        literal(&name)
    ));
    assert!(databases.is_empty(), "undo left database {name}");
    let roles = pg_rows(&format!(
        "SELECT 1 FROM pg_roles WHERE rolname = {}",
        literal(&name)
    ));
    assert!(roles.is_empty(), "undo left role {name}");
}

const HOSTILE_VALUES: &str = r#"
runbook "hostile" { description = "Values with quotes, semicolons and command substitutions" }

variable "role" { description = "role name, used as an identifier" }
variable "note" { description = "free text, used as a literal" }

postgres "admin" { url = "@URL@" }

step "role" {
  sql {
    connection = postgres.admin
    statements = <<-SQL
      CREATE ROLE ${ident(var.role)} NOLOGIN;
      COMMENT ON ROLE ${ident(var.role)} IS ${var.note};
      INSERT INTO @CANARY@ (note) VALUES (${var.note});
    SQL
  }
  undo {
    sql {
      connection = postgres.admin
      statements = "DROP ROLE ${ident(var.role)}"
    }
  }
}
"#;

#[test]
fn sql_hostile_variables_stay_data() {
    require_postgres();
    let canary = sql_name("canary");
    let workspace = Workspace::new();
    let marker = workspace.path().join("marker-from-note");
    // PostgreSQL truncates identifiers to 63 bytes, so the role name stays short.
    let role = format!("{}\"; $(touch marker-from-role); '", sql_name("h"));
    let note = format!(
        "x'); DROP TABLE {canary}; -- $(touch {}) \"q\" `id`",
        marker.display()
    );
    let _cleanup = PgCleanup::host(vec![
        format!("DROP ROLE IF EXISTS \"{}\"", role.replace('"', "\"\"")),
        format!("DROP TABLE IF EXISTS {canary}"),
    ]);
    pg_rows(&format!("CREATE TABLE {canary} (note text)"));
    workspace.write(
        "hostile.rb6",
        &render(HOSTILE_VALUES, &[("URL", &pg_url()), ("CANARY", &canary)]),
    );

    let role_arg = format!("role={role}");
    let applied = workspace.apply(
        "hostile.rb6",
        &["--var", &role_arg],
        &[("RB6_VAR_note", &note)],
    );
    assert_eq!(applied.code, 0, "apply failed:\n{applied}");

    let roles = pg_rows(&format!(
        "SELECT rolname FROM pg_roles WHERE rolname = {}",
        literal(&role)
    ));
    assert_eq!(
        cells(roles),
        vec![Some(role.clone())],
        "role named by ident() is the exact value"
    );
    let comment = pg_rows(&format!(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = {}",
        literal(&role)
    ));
    assert_eq!(
        cells(comment),
        vec![Some(note.clone())],
        "comment is the exact literal"
    );
    let inserted = pg_rows(&format!("SELECT note FROM {canary}"));
    assert_eq!(
        cells(inserted),
        vec![Some(note.clone())],
        "canary table holds the literal"
    );
    assert!(
        !marker.exists(),
        "a command substitution in the note ran: {}",
        marker.display()
    );
    let role_marker = workspace.path().join("marker-from-role");
    assert!(
        !role_marker.exists(),
        "a command substitution in the role name ran"
    );

    let undone = workspace.undo(
        "hostile.rb6",
        &["--var", &role_arg],
        &[("RB6_VAR_note", &note)],
    );
    assert_eq!(undone.code, 0, "undo failed:\n{undone}");
    let left = pg_rows(&format!(
        "SELECT 1 FROM pg_roles WHERE rolname = {}",
        literal(&role)
    ));
    assert!(left.is_empty(), "undo left the role {role:?}");
}

const FAILING_STATEMENT: &str = r#"
runbook "failing" { description = "The third statement fails" }

postgres "admin" { url = "@URL@" }

step "broken" {
  sql {
    connection = postgres.admin
    statements = <<-SQL
      CREATE TABLE @TABLE@ (id int);
      INSERT INTO @TABLE@ VALUES (1);
      SELECT * FROM @MISSING@;
    SQL
  }
  undo { none = "the statements fail" }
}
"#;

#[test]
fn sql_failure_names_sqlstate_and_statement() {
    require_postgres();
    let table = sql_name("rolled_back");
    let missing = sql_name("missing");
    let _cleanup = PgCleanup::host(vec![format!("DROP TABLE IF EXISTS {table}")]);
    let workspace = Workspace::new();
    workspace.write(
        "failing.rb6",
        &render(
            FAILING_STATEMENT,
            &[("URL", &pg_url()), ("TABLE", &table), ("MISSING", &missing)],
        ),
    );

    let run = workspace.apply("failing.rb6", &[], &[]);
    assert_eq!(
        run.code, 1,
        "apply of a failing statement must exit 1:\n{run}"
    );
    assert!(
        run.contains("statement 3 of 3 failed"),
        "error lacks the statement index:\n{run}"
    );
    assert!(
        run.contains("42P01"),
        "error lacks the SQLSTATE 42P01:\n{run}"
    );
    assert!(
        run.contains("undefined_table"),
        "error lacks the condition name:\n{run}"
    );
    assert!(
        run.contains(&missing),
        "error lacks the failing statement:\n{run}"
    );

    // The three statements form one transaction, so the table of the first one is gone.
    let tables = pg_rows(&format!(
        "SELECT 1 FROM pg_tables WHERE tablename = {}",
        literal(&table)
    ));
    assert!(
        tables.is_empty(),
        "table {table} survived the failed transaction"
    );
}

const PRIVILEGE_GATE: &str = r#"
runbook "privileges" { description = "An unprivileged role cannot read the table" }

variable "role"  { default = "@ROLE@" }
variable "table" { default = "@TABLE@" }

postgres "admin" { url = "@URL@" }

step "setup" {
  sql {
    connection = postgres.admin
    statements = <<-SQL
      CREATE ROLE ${ident(var.role)} NOLOGIN;
      CREATE TABLE ${ident(var.table)} (secret text);
      REVOKE ALL ON ${ident(var.table)} FROM PUBLIC;
    SQL
  }
  undo {
    sql {
      connection = postgres.admin
      statements = <<-SQL
        DROP TABLE ${ident(var.table)};
        DROP ROLE ${ident(var.role)};
      SQL
    }
  }
}

gate "denied" {
  needs = [setup]
  query {
    connection   = postgres.admin
    sql          = "SET ROLE ${ident(var.role)}; SELECT * FROM ${ident(var.table)}"
    expect_error = "42501"
  }
  query {
    connection   = postgres.admin
    sql          = "SET ROLE ${ident(var.role)}; SELECT * FROM ${ident(var.table)}"
    expect_error = "insufficient_privilege"
  }
}

gate "admin_denied" {
  needs       = [denied]
  description = "fails: the superuser can read the table"
  query {
    connection   = postgres.admin
    sql          = "SELECT * FROM ${ident(var.table)}"
    expect_error = "42501"
  }
}
"#;

#[test]
fn query_gate_passes_on_expected_error() {
    require_postgres();
    let role = sql_name("noperm");
    let table = sql_name("secret");
    let _cleanup = PgCleanup::host(vec![
        format!("DROP TABLE IF EXISTS {table}"),
        format!("DROP ROLE IF EXISTS {role}"),
    ]);
    let workspace = Workspace::new();
    workspace.write(
        "privileges.rb6",
        &render(
            PRIVILEGE_GATE,
            &[("URL", &pg_url()), ("ROLE", &role), ("TABLE", &table)],
        ),
    );

    let run = workspace.apply("privileges.rb6", &[], &[]);
    assert!(
        run.contains("gate \"denied\" passed"),
        "gate expecting 42501 did not pass:\n{run}"
    );
    assert!(
        run.contains("PASS query `SET ROLE"),
        "gate output lacks the passed criterion:\n{run}"
    );
    assert!(
        run.contains("(observed 42501 insufficient_privilege"),
        "gate output lacks the observed SQLSTATE:\n{run}"
    );
    assert!(
        run.contains("gate \"admin_denied\" failed"),
        "gate expecting an error from a succeeding query passed:\n{run}"
    );
    assert!(
        run.contains("(observed success, 0 row(s))"),
        "failed gate does not say the query succeeded:\n{run}"
    );
    assert_eq!(run.code, 1, "apply with a failed gate must exit 1:\n{run}");

    let undone = workspace.undo("privileges.rb6", &[], &[]);
    assert_eq!(undone.code, 0, "undo failed:\n{undone}");
    let left = pg_rows(&format!(
        "SELECT 1 FROM pg_roles WHERE rolname = {}",
        literal(&role)
    ));
    assert!(left.is_empty(), "undo left role {role}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL in a container on a user-defined network

const CONTAINER_CONNECTION: &str = r#"
runbook "container_db" { description = "Reach PostgreSQL by container name" }

secret "db_password" { env = "RB6_TEST_DB_PASSWORD" }

postgres "db" {
  container = "@CONTAINER@"
  network   = "@NETWORK@"
  user      = "rb6"
  database  = "postgres"
  password  = "${secret.db_password}"
}

step "table" {
  sql {
    connection = postgres.db
    statements = "CREATE TABLE @TABLE@ (id int)"
  }
  undo {
    sql {
      connection = postgres.db
      statements = "DROP TABLE @TABLE@"
    }
  }
}

gate "session" {
  needs = [table]
  query {
    connection = postgres.db
    sql        = "SELECT current_user, current_database()"
    rows       = [["rb6", "postgres"]]
  }
}
"#;

fn container_runbook(workspace: &Workspace, table: &str) {
    require_docker();
    let container = pg_container();
    workspace.write(
        "container.rb6",
        &render(
            CONTAINER_CONNECTION,
            &[
                ("CONTAINER", container),
                ("NETWORK", PG_NETWORK),
                ("TABLE", table),
            ],
        ),
    );
}

#[test]
fn postgres_container_connection_with_secret() {
    let table = sql_name("in_container");
    let workspace = Workspace::new();
    container_runbook(&workspace, &table);
    let _cleanup = PgCleanup {
        target: PgTarget::Container {
            container: pg_container().to_string(),
            network: Some(PG_NETWORK.to_string()),
            port: DEFAULT_PORT,
            user: "rb6".into(),
            database: "postgres".into(),
            password: Some(PG_PASSWORD.into()),
        },
        statements: vec![format!("DROP TABLE IF EXISTS {table}")],
    };
    let env = [("RB6_TEST_DB_PASSWORD", PG_PASSWORD)];

    let applied = workspace.apply("container.rb6", &[], &env);
    assert_eq!(
        applied.code, 0,
        "apply through the container connection failed:\n{applied}"
    );
    assert!(
        applied.contains("gate \"session\" passed"),
        "session gate did not pass:\n{applied}"
    );
    assert!(
        !applied.contains(PG_PASSWORD),
        "apply output shows the password:\n{applied}"
    );
    let tables = pg_container_rows(&format!(
        "SELECT 1 FROM pg_tables WHERE tablename = {}",
        literal(&table)
    ));
    assert_eq!(
        tables.len(),
        1,
        "table {table} is missing in container {}",
        pg_container()
    );

    let undone = workspace.undo("container.rb6", &[], &env);
    assert_eq!(undone.code, 0, "undo failed:\n{undone}");
    let tables = pg_container_rows(&format!(
        "SELECT 1 FROM pg_tables WHERE tablename = {}",
        literal(&table)
    ));
    assert!(tables.is_empty(), "undo left table {table}");
}

#[test]
fn postgres_wrong_password_is_never_shown() {
    let table = sql_name("never_created");
    let workspace = Workspace::new();
    container_runbook(&workspace, &table);
    let wrong = format!("rb6-test-wrong-{}", std::process::id());
    let env = [("RB6_TEST_DB_PASSWORD", wrong.as_str())];

    let run = workspace.apply("container.rb6", &[], &env);
    assert_eq!(
        run.code, 1,
        "apply with a wrong password must exit 1:\n{run}"
    );
    let expected = [
        "PostgreSQL connection db",
        "host ",
        "port 5432",
        "user rb6",
        "database postgres",
        "password authentication failed",
    ];
    for part in expected {
        assert!(
            run.contains(part),
            "connection error lacks `{part}`:\n{run}"
        );
    }
    assert!(
        !run.contains(&wrong),
        "apply output shows the password:\n{run}"
    );
    for (path, bytes) in workspace.files_under(".rb6") {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&wrong),
            "{} contains the password",
            path.display()
        );
    }

    let doctor = workspace.rb6(&["doctor", "container.rb6"], &env);
    assert_eq!(
        doctor.code, 1,
        "doctor with a wrong password must exit 1:\n{doctor}"
    );
    assert!(
        doctor.contains("FAIL  postgres.db:"),
        "doctor does not name postgres.db:\n{doctor}"
    );
    assert!(
        !doctor.contains(&wrong),
        "doctor output shows the password:\n{doctor}"
    );
}

// ---------------------------------------------------------------------------------------------
// Docker actions and probes

const ONE_SHOT: &str = r#"
runbook "one_shot" { description = "Write a file through a one-shot container" }

variable "greeting" { default = "hello from rb6; $(not run) 'quoted'" }

step "write" {
  docker_run {
    image   = "@IMAGE@"
    name    = "@NAME@"
    command = ["sh", "-c", "printf '%s\\n' \"$GREETING\" > /data/out.txt; echo written"]
    env     = { GREETING = var.greeting }
    volumes = ["${runbook.dir}/data:/data"]
  }
  capture "said" { stdout = true }
  undo { none = "the file stays" }
}

step "record" {
  file {
    path    = "${runbook.dir}/said.txt"
    content = capture.said
  }
}
"#;

#[test]
fn docker_run_writes_into_bind_mount() {
    let image = require_docker();
    let name = unique_name("oneshot");
    let _guard = ContainerGuard(name.clone());
    let workspace = Workspace::new();
    std::fs::create_dir(workspace.path().join("data")).expect("create the bind-mount directory");
    workspace.write(
        "run.rb6",
        &render(ONE_SHOT, &[("IMAGE", &image), ("NAME", &name)]),
    );

    let run = workspace.apply("run.rb6", &[], &[]);
    assert_eq!(run.code, 0, "apply failed:\n{run}");
    let written = std::fs::read_to_string(workspace.path().join("data/out.txt"))
        .expect("the container wrote data/out.txt");
    assert_eq!(
        written, "hello from rb6; $(not run) 'quoted'\n",
        "content of data/out.txt"
    );
    let said = std::fs::read_to_string(workspace.path().join("said.txt"))
        .expect("the record step wrote said.txt");
    assert_eq!(said.trim(), "written", "captured stdout of the container");
    assert!(
        !container_exists(&name),
        "one-shot container {name} was not removed"
    );
}

const EXEC_AND_RESTART: &str = r#"
runbook "service" { description = "Exec in a service, restart it, check its shape" }

variable "container" { default = "@CONTAINER@" }
variable "marker"    { default = "/tmp/marker" }

step "mark" {
  docker_exec {
    container   = var.container
    command     = ["sh", "-c", "echo rb6-marker > /tmp/marker; exit 3"]
    expect_exit = [3]
  }
  check {
    docker_exec {
      container              = var.container
      command                = ["cat", var.marker]
      expect_stdout_contains = "rb6-marker"
    }
  }
  undo { none = "the marker file is harmless" }
}

step "restart" {
  needs = [mark]
  docker_restart {
    container = var.container
    timeout   = "1s"
  }
  undo { none = "a restart has no inverse" }
}

gate "shape" {
  needs = [restart]
  container {
    name            = var.container
    running         = true
    network         = "@NETWORK@"
    published_ports = false
  }
}
"#;

fn started_at(container: &str) -> String {
    docker_cli(&["inspect", "-f", "{{.State.StartedAt}}", container])
}

#[test]
fn docker_exec_restart_and_container_probe() {
    require_docker();
    let network = unique_name("net");
    docker_cli(&["network", "create", &network]);
    let _network = NetworkGuard(network.clone());
    let container = unique_name("service");
    let guard = start_service(&container, &["--network", &network], &["service-started"]);
    let workspace = Workspace::new();
    workspace.write(
        "service.rb6",
        &render(
            EXEC_AND_RESTART,
            &[("CONTAINER", &container), ("NETWORK", &network)],
        ),
    );
    let before = started_at(&container);

    let run = workspace.apply("service.rb6", &[], &[]);
    assert_eq!(run.code, 0, "apply failed:\n{run}");
    assert!(
        run.contains("step \"mark\" applied"),
        "mark did not run:\n{run}"
    );
    let marker = docker_cli(&["exec", &container, "cat", "/tmp/marker"]);
    assert_eq!(marker, "rb6-marker", "marker written by docker_exec");
    assert_ne!(
        started_at(&container),
        before,
        "docker_restart did not restart {container}"
    );
    let expected = [
        format!("PASS container {container} running is true"),
        format!("PASS container {container} is on network {network}"),
        format!("PASS container {container} has no published ports"),
    ];
    for line in &expected {
        assert!(run.contains(line), "gate output lacks `{line}`:\n{run}");
    }

    let checked = workspace.apply("service.rb6", &["--state", "fresh-state"], &[]);
    assert_eq!(
        checked.code, 0,
        "apply with a fresh state failed:\n{checked}"
    );
    assert!(
        checked.contains("step \"mark\" already done (check passed)"),
        "the docker_exec check probe did not find the marker:\n{checked}"
    );
    drop(guard);
}

const UNEXPECTED_EXIT: &str = r#"
runbook "exit_code" { description = "An exec exits with an unexpected code" }

step "fail" {
  docker_exec {
    container = "@CONTAINER@"
    command   = ["sh", "-c", "echo rb6-stderr-line >&2; exit 4"]
  }
  undo { none = "it fails" }
}
"#;

#[test]
fn docker_exec_unexpected_exit_fails_step() {
    require_docker();
    let container = unique_name("exit");
    let _guard = start_service(&container, &[], &[]);
    let workspace = Workspace::new();
    workspace.write(
        "exit.rb6",
        &render(UNEXPECTED_EXIT, &[("CONTAINER", &container)]),
    );

    let run = workspace.apply("exit.rb6", &[], &[]);
    assert_eq!(run.code, 1, "apply of a failing exec must exit 1:\n{run}");
    assert!(
        run.contains(&format!(
            "exec in {container} exited with code 4 (expected [0])"
        )),
        "error lacks the exit code:\n{run}"
    );
    assert!(
        run.contains("rb6-stderr-line"),
        "error lacks the exec's stderr:\n{run}"
    );
}

const LOGS_EVIDENCE: &str = r#"
runbook "evidence" { description = "A failing gate collects the container's logs" }

gate "healthy" {
  description = "fails on purpose"
  docker_exec {
    container              = "@CONTAINER@"
    command                = ["echo", "status=degraded"]
    expect_stdout_contains = "status=ok"
  }
  on_fail {
    docker_logs {
      container = "@CONTAINER@"
      tail      = 2
    }
  }
}
"#;

#[test]
fn docker_logs_are_gate_evidence() {
    require_docker();
    let container = unique_name("logs");
    let lines = ["rb6-log-line-1", "rb6-log-line-2", "rb6-log-line-3"];
    let _guard = start_service(&container, &[], &lines);
    let workspace = Workspace::new();
    workspace.write(
        "evidence.rb6",
        &render(LOGS_EVIDENCE, &[("CONTAINER", &container)]),
    );
    // The service prints its lines right after it starts; wait until Docker has them all.
    for _ in 0..50 {
        if docker_cli(&["logs", &container]).contains(lines[2]) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let run = workspace.apply("evidence.rb6", &[], &[]);
    assert_eq!(run.code, 1, "apply with a failed gate must exit 1:\n{run}");
    assert!(
        run.contains("evidence written to"),
        "gate failure does not name its report:\n{run}"
    );
    let reports = workspace.files_under(".rb6/reports");
    assert_eq!(reports.len(), 1, "expected one gate report:\n{run}");
    let (path, bytes) = &reports[0];
    let report = String::from_utf8_lossy(bytes);
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("healthy-"), "report file name: {name}");
    assert!(
        report.contains("FAIL output contains \"status=ok\""),
        "report lacks the failed criterion:\n{report}"
    );
    let heading = format!("== last 2 log lines of container {container}");
    assert!(
        report.contains(&heading),
        "report lacks `{heading}`:\n{report}"
    );
    assert!(
        report.contains(lines[1]),
        "report lacks log line 2:\n{report}"
    );
    assert!(
        report.contains(lines[2]),
        "report lacks log line 3:\n{report}"
    );
    assert!(
        !report.contains(lines[0]),
        "report has more than the last 2 lines:\n{report}"
    );
}

const REMOVE_IMAGE: &str = r#"
runbook "images" { description = "Remove a throwaway image tag" }

step "remove" {
  docker_remove_image { image = "@TAG@" }
  undo { none = "the tag was a throwaway" }
}
"#;

#[test]
fn docker_remove_image_removes_tag() {
    let image = require_docker();
    let tag = format!("rb6-test/throwaway:{}", unique_name("tag"));
    docker_cli(&["tag", &image, &tag]);
    let _guard = ImageGuard(tag.clone());
    let workspace = Workspace::new();
    workspace.write("images.rb6", &render(REMOVE_IMAGE, &[("TAG", &tag)]));

    let run = workspace.apply("images.rb6", &[], &[]);
    assert_eq!(run.code, 0, "apply failed:\n{run}");
    assert!(!image_exists(&tag), "tag {tag} is still present");
    assert!(
        image_exists(&image),
        "removing the tag removed the image {image} too"
    );

    let again = workspace.apply("images.rb6", &["--state", "fresh-state", "-v"], &[]);
    assert_eq!(
        again.code, 0,
        "removing an absent tag must succeed:\n{again}"
    );
}

const PUBLISHED_PORTS: &str = r#"
runbook "ports" { description = "A container must not publish ports" }

gate "private" {
  container {
    name            = "@CONTAINER@"
    published_ports = false
  }
}
"#;

#[test]
fn container_probe_detects_published_port() {
    require_docker();
    let container = unique_name("published");
    let _guard = start_service(&container, &["-p", "127.0.0.1::8080"], &[]);
    let workspace = Workspace::new();
    workspace.write(
        "ports.rb6",
        &render(PUBLISHED_PORTS, &[("CONTAINER", &container)]),
    );

    let run = workspace.apply("ports.rb6", &[], &[]);
    assert_eq!(
        run.code, 1,
        "gate on a container with a published port must fail:\n{run}"
    );
    let line = format!("FAIL container {container} has no published ports (observed [");
    assert!(run.contains(&line), "gate output lacks `{line}`:\n{run}");
    assert!(
        run.contains("8080"),
        "gate output lacks the published port:\n{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// compose

const COMPOSE_FILE: &str = r#"version: "2.4"
services:
  app:
    image: @IMAGE@
    container_name: @PROJECT@-app
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  side:
    image: @IMAGE@
    container_name: @PROJECT@-side
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
"#;

/// `up_app` and `up_side` have no dependency between them, so rb6 runs them concurrently on the
/// same compose project.
const COMPOSE_RUNBOOK: &str = r#"
runbook "compose" { description = "Start two services, then stop and remove one" }

step "up_app" {
  compose_up {
    project_dir = "${runbook.dir}/@PROJECT@"
    service     = "app"
  }
}

step "up_side" {
  compose_up {
    project_dir = "${runbook.dir}/@PROJECT@"
    service     = "side"
  }
}

step "stop_side" {
  needs = [up_side]
  compose_stop {
    project_dir = "${runbook.dir}/@PROJECT@"
    service     = "side"
  }
  undo { none = "compose_up's undo removes the service" }
}

step "rm_side" {
  needs = [stop_side]
  compose_rm {
    project_dir = "${runbook.dir}/@PROJECT@"
    service     = "side"
  }
  undo { none = "compose_up's undo removes the service" }
}
"#;

/// Runs `compose down` in a project directory and removes its containers when dropped.
struct ComposeGuard {
    dir: PathBuf,
    containers: Vec<String>,
}

impl Drop for ComposeGuard {
    fn drop(&mut self) {
        let plugin = Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|output| output.status.success());
        let mut down = if plugin {
            let mut command = Command::new("docker");
            command.arg("compose");
            command
        } else {
            Command::new("docker-compose")
        };
        let _ = down
            .args(["down", "-t", "0"])
            .current_dir(&self.dir)
            .output();
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", container])
                .output();
        }

        // `down` fails when a race left two networks with the project's name, so remove them by id.
        let project = self.dir.file_name().unwrap_or_default().to_string_lossy();
        let listed = Command::new("docker")
            .args(["network", "ls", "-q", "--filter"])
            .arg(format!("name={project}_default"))
            .output();
        let ids = listed.map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
        for id in ids.unwrap_or_default().split_whitespace() {
            let _ = Command::new("docker").args(["network", "rm", id]).output();
        }
    }
}

fn container_running(name: &str) -> Option<bool> {
    let output = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", name])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim() == "true")
}

#[test]
fn compose_up_stop_rm_and_undo() {
    let image = require_docker();
    let project = unique_name("compose");
    let workspace = Workspace::new();
    let project_dir = workspace.path().join(&project);
    std::fs::create_dir(&project_dir).expect("create the compose project directory");
    let values = [("IMAGE", image.as_str()), ("PROJECT", project.as_str())];
    std::fs::write(
        project_dir.join("docker-compose.yml"),
        render(COMPOSE_FILE, &values),
    )
    .expect("write docker-compose.yml");
    workspace.write("compose.rb6", &render(COMPOSE_RUNBOOK, &values));
    let app = format!("{project}-app");
    let side = format!("{project}-side");
    let _guard = ComposeGuard {
        dir: project_dir,
        containers: vec![app.clone(), side.clone()],
    };

    let applied = workspace.apply("compose.rb6", &[], &[]);
    assert_eq!(applied.code, 0, "apply failed:\n{applied}");
    assert_eq!(
        container_running(&app),
        Some(true),
        "service app is not running after compose_up"
    );
    assert_eq!(
        container_running(&side),
        None,
        "service side still exists after compose_rm"
    );

    let plan = workspace.rb6(&["plan", "compose.rb6", "--undo"], &[]);
    assert_eq!(plan.code, 0, "plan --undo failed:\n{plan}");
    assert!(
        plan.contains("2 to undo"),
        "plan --undo does not count the compose_up undos:\n{plan}"
    );

    let undone = workspace.undo("compose.rb6", &[], &[]);
    assert_eq!(undone.code, 0, "undo failed:\n{undone}");
    assert!(
        undone.contains("step \"up_app\" undone"),
        "undo did not undo up_app:\n{undone}"
    );
    assert_eq!(
        container_running(&app),
        None,
        "compose_up's undo left container {app}"
    );
}

// ---------------------------------------------------------------------------------------------
// doctor

const DOCTOR_RUNBOOK: &str = r#"
runbook "doctor" { description = "Connections for rb6 doctor" }

secret "db_password" { env = "RB6_TEST_DB_PASSWORD" }

postgres "host" { url = "@URL@" }

postgres "ctr" {
  container = "@CONTAINER@"
  network   = "@NETWORK@"
  user      = "rb6"
  database  = "postgres"
  password  = "${secret.db_password}"
}
"#;

#[test]
fn doctor_reports_engines_with_versions() {
    require_docker();
    let server_version = cells(pg_rows("SHOW server_version"))
        .remove(0)
        .unwrap_or_default();
    let workspace = Workspace::new();
    workspace.write(
        "doctor.rb6",
        &render(
            DOCTOR_RUNBOOK,
            &[
                ("URL", &pg_url()),
                ("CONTAINER", pg_container()),
                ("NETWORK", PG_NETWORK),
            ],
        ),
    );

    let bare = workspace.rb6(&["doctor"], &[]);
    assert_eq!(bare.code, 0, "doctor failed:\n{bare}");
    let engine = docker_cli(&["version", "--format", "{{.Server.Version}}"]);
    assert!(
        bare.contains(&format!("ok    docker: Engine {engine} (API ")),
        "doctor lacks Docker Engine {engine}:\n{bare}"
    );
    assert!(
        bare.contains("ok    compose: docker"),
        "doctor lacks the compose tool:\n{bare}"
    );

    let env = [("RB6_TEST_DB_PASSWORD", PG_PASSWORD)];
    let with_file = workspace.rb6(&["doctor", "doctor.rb6"], &env);
    assert_eq!(with_file.code, 0, "doctor FILE failed:\n{with_file}");
    let line = format!("ok    postgres.host: PostgreSQL {server_version}");
    assert!(
        with_file.contains(&line),
        "doctor lacks `{line}`:\n{with_file}"
    );
    assert!(
        with_file.contains("ok    postgres.ctr: PostgreSQL 15"),
        "doctor lacks the container's PostgreSQL:\n{with_file}"
    );
    assert!(
        !with_file.contains(PG_PASSWORD),
        "doctor output shows the password:\n{with_file}"
    );
}

#[test]
fn doctor_names_unreachable_postgres() {
    require_docker();
    // Binding port 0 and closing the socket yields a loopback port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free loopback port")
        .port();
    let workspace = Workspace::new();
    let url = format!("postgres://rb6:rb6-test-unused@127.0.0.1:{port}/postgres");
    workspace.write(
        "down.rb6",
        &format!(
            "runbook \"down\" {{ description = \"No server listens\" }}\n\
             postgres \"down\" {{ url = \"{url}\" }}\n"
        ),
    );

    let run = workspace.rb6(&["doctor", "down.rb6"], &[]);
    assert_eq!(
        run.code, 1,
        "doctor with an unreachable server must exit 1:\n{run}"
    );
    assert!(
        run.contains("FAIL  postgres.down:"),
        "doctor does not name postgres.down:\n{run}"
    );
    assert!(
        run.contains(&format!("port {port}")),
        "doctor does not name port {port}:\n{run}"
    );
    assert!(
        run.contains("ok    docker:"),
        "doctor lost the Docker line:\n{run}"
    );
    assert!(
        !run.contains("rb6-test-unused"),
        "doctor output shows the URL's password:\n{run}"
    );
}

const NAMED_ENGINES: &str = r#"
runbook "engines" { description = "Docker calls on named engines" }

docker "local" { url = "unix:///var/run/docker.sock" }
docker "nowhere" { url = "tcp://127.0.0.1:1" }

step "present" {
  docker_image {
    image      = "@IMAGE@"
    connection = docker.local
  }
  undo { none = "the image belongs to the test setup" }
}

step "elsewhere" {
  needs = [present]
  docker_image {
    image      = "@IMAGE@"
    connection = docker.nowhere
  }
  undo { none = "never applied" }
}
"#;

#[test]
fn docker_calls_use_named_connection() {
    let image = require_docker();
    let workspace = Workspace::new();
    workspace.write("engines.rb6", &render(NAMED_ENGINES, &[("IMAGE", &image)]));

    let run = workspace.apply("engines.rb6", &[], &[]);
    assert_eq!(run.code, 1, "the step on the unreachable engine must fail:\n{run}");
    assert!(run.stdout.contains("step \"present\" applied"), "the step on docker.local runs on the local engine:\n{run}");
    assert!(run.stdout.contains("127.0.0.1:1"), "the failure names the engine of docker.nowhere:\n{run}");
}

const PULL_MISSING: &str = r#"
runbook "pull" { description = "Pull an image that no registry serves" }

step "pull" {
  docker_image {
    image = "127.0.0.1:1/rb6-test/absent:1"
    pull  = true
  }
  undo { none = "never pulled" }
}
"#;

#[test]
fn docker_image_pull_failure_is_reported() {
    require_docker();
    let workspace = Workspace::new();
    workspace.write("pull.rb6", PULL_MISSING);

    let run = workspace.apply("pull.rb6", &[], &[]);
    assert_eq!(run.code, 1, "pulling from an unreachable registry must fail:\n{run}");
    assert!(run.stdout.contains("pull of image"), "the error comes from the pull, not from the image check:\n{run}");
    assert!(run.stdout.contains("127.0.0.1:1/rb6-test/absent:1"), "the error names the image:\n{run}");
}
