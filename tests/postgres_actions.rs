//! PostgreSQL actions against real PostgreSQL 15 servers: the one of tests/support/start-postgres.sh
//! (or `RB6_TEST_PG_URL`) and one in a container on a user-defined Docker network.

mod support;

use rb6::actions::postgres::{
    connect, execute, query, quote_identifier, quote_literal, split_statements, PgConnectError,
    PgTarget, SqlError, DEFAULT_PORT,
};
use support::{docker, pg_client, pg_container, pg_url, unique_name, PG_NETWORK, PG_PASSWORD};
use tokio_postgres::Client;

/// Returns a unique lower-case SQL name, so parallel tests do not collide.
fn sql_name(purpose: &str) -> String {
    unique_name(purpose).replace('-', "_")
}

async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    query(client, sql)
        .await
        .unwrap_or_else(|error| panic!("query {sql:?} failed: {error}"))
}

async fn run_script(client: &Client, sql: &str) -> Result<(), SqlError> {
    execute(client, &split_statements(sql)).await
}

fn container_target(password: &str, network: Option<&str>) -> PgTarget {
    PgTarget::Container {
        container: pg_container().to_string(),
        network: network.map(str::to_string),
        port: DEFAULT_PORT,
        user: "rb6".into(),
        database: "postgres".into(),
        password: Some(password.into()),
    }
}

#[tokio::test]
async fn role_and_database_created_outside_transaction() {
    let client = pg_client().await;
    let name = sql_name("app");
    let script = format!(
        "CREATE ROLE {name} LOGIN PASSWORD 'app-password';\n\
         CREATE TABLE {name}_log (id int);\n\
         INSERT INTO {name}_log VALUES (1);\n\
         CREATE DATABASE {name} OWNER {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';\n\
         COMMENT ON DATABASE {name} IS 'created by rb6 tests';\n"
    );

    run_script(&client, &script)
        .await
        .expect("role and database script");

    let collation = rows(
        &client,
        &format!("SELECT datcollate, datctype FROM pg_database WHERE datname = '{name}'"),
    )
    .await;
    assert_eq!(
        collation,
        vec![vec![Some("C".to_string()), Some("C".to_string())]],
        "collation of database {name}"
    );
    let owner = rows(
        &client,
        &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'"),
    )
    .await;
    assert_eq!(
        owner,
        vec![vec![Some(name.clone())]],
        "owner of database {name}"
    );
    let login = rows(
        &client,
        &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{name}'"),
    )
    .await;
    assert_eq!(
        login,
        vec![vec![Some("t".to_string())]],
        "role {name} can log in"
    );
    let logged = rows(&client, &format!("SELECT count(*) FROM {name}_log")).await;
    assert_eq!(
        logged,
        vec![vec![Some("1".to_string())]],
        "rows inserted in the transaction group"
    );

    let app_url = pg_url()
        .replace("rb6:rb6-test-password", &format!("{name}:app-password"))
        .replace("/postgres", &format!("/{name}"));
    let app = connect("app", &PgTarget::Url(app_url), None)
        .await
        .expect("login as the new role");
    let current = rows(&app, "SELECT current_user, current_database()").await;
    assert_eq!(
        current,
        vec![vec![Some(name.clone()), Some(name.clone())]],
        "session of the new role"
    );
    drop(app);

    run_script(
        &client,
        &format!("DROP DATABASE {name} WITH (FORCE); DROP TABLE {name}_log; DROP ROLE {name};"),
    )
    .await
    .expect("cleanup");
}

#[tokio::test]
async fn failed_statement_rolls_back_its_group() {
    let client = pg_client().await;
    let table = sql_name("rollback");
    let script = format!(
        "CREATE TABLE {table} (id int);\n\
         INSERT INTO {table} VALUES (1);\n\
         SELECT 1 / 0\n  AS boom;\n\
         INSERT INTO {table} VALUES (2);"
    );

    let error = run_script(&client, &script)
        .await
        .expect_err("division by zero must fail");

    assert_eq!(error.index, 3, "1-based index of the failed statement");
    assert_eq!(error.count, 4, "statements in the block");
    assert_eq!(
        error.first_line, "SELECT 1 / 0",
        "first line of the failed statement"
    );
    assert_eq!(error.code.as_deref(), Some("22012"), "SQLSTATE");
    assert_eq!(
        error.condition.as_deref(),
        Some("division_by_zero"),
        "condition name"
    );
    let text = error.to_string();
    assert!(
        text.contains("statement 3 of 4"),
        "error text lacks the statement index: {text}"
    );
    assert!(
        text.contains("22012 division_by_zero"),
        "error text lacks the SQLSTATE and its name: {text}"
    );
    let exists = rows(&client, &format!("SELECT to_regclass('{table}') IS NULL")).await;
    assert_eq!(
        exists,
        vec![vec![Some("t".to_string())]],
        "CREATE TABLE of the failed group must be rolled back"
    );
}

#[tokio::test]
async fn expected_permission_error_is_42501() {
    let client = pg_client().await;
    let role = sql_name("noprivs");
    let table = sql_name("secret");
    run_script(
        &client,
        &format!("CREATE ROLE {role} NOLOGIN; CREATE TABLE {table} (id int);"),
    )
    .await
    .expect("setup");

    let probe = query(&client, &format!("SET ROLE {role}; SELECT * FROM {table}")).await;
    let block = run_script(
        &client,
        &format!("RESET ROLE;\nSET ROLE {role};\nSELECT id\nFROM {table};"),
    )
    .await;
    run_script(
        &client,
        &format!("RESET ROLE; DROP TABLE {table}; DROP ROLE {role};"),
    )
    .await
    .expect("cleanup");

    let error = probe.expect_err("SELECT without privileges must fail");
    assert_eq!(
        error.code.as_deref(),
        Some("42501"),
        "SQLSTATE of the probe"
    );
    assert_eq!(
        error.condition.as_deref(),
        Some("insufficient_privilege"),
        "condition name of the probe"
    );
    assert!(
        error.message.contains("permission denied"),
        "server message: {}",
        error.message
    );
    let error = block.expect_err("SELECT without privileges must fail in a block");
    assert_eq!(error.index, 3, "failed statement of the block");
    assert_eq!(
        error.first_line, "SELECT id",
        "first line of the failed statement"
    );
    assert!(
        error.to_string().contains("42501 insufficient_privilege"),
        "error text: {error}"
    );
}

#[tokio::test]
async fn query_returns_text_rows_with_nulls() {
    let client = pg_client().await;

    let result = rows(
        &client,
        "SELECT 1 AS a, NULL::text AS b UNION ALL SELECT 2, 'x' ORDER BY a",
    )
    .await;

    let expected = vec![
        vec![Some("1".to_string()), None],
        vec![Some("2".to_string()), Some("x".to_string())],
    ];
    assert_eq!(result, expected, "rows as text with NULL as None");
}

#[tokio::test]
async fn non_transactional_statements_run_alone() {
    let client = pg_client().await;
    let table = sql_name("concurrent");
    let script = format!(
        "CREATE TABLE {table} (id int);\n\
         INSERT INTO {table} SELECT generate_series(1, 100);\n\
         CREATE INDEX CONCURRENTLY {table}_id ON {table} (id);\n\
         VACUUM ANALYZE {table};\n\
         REINDEX TABLE CONCURRENTLY {table};\n\
         DROP INDEX CONCURRENTLY {table}_id;\n\
         DROP TABLE {table};"
    );

    run_script(&client, &script)
        .await
        .expect("statements that cannot run in a transaction block");

    let exists = rows(&client, &format!("SELECT to_regclass('{table}') IS NULL")).await;
    assert_eq!(
        exists,
        vec![vec![Some("t".to_string())]],
        "table must be dropped at the end"
    );
}

#[tokio::test]
async fn explicit_transaction_is_kept() {
    let client = pg_client().await;
    let table = sql_name("explicit");
    let script = format!(
        "CREATE TABLE {table} (id int);\n\
         BEGIN;\n\
         INSERT INTO {table} VALUES (1);\n\
         ROLLBACK;\n\
         INSERT INTO {table} VALUES (2);"
    );

    run_script(&client, &script)
        .await
        .expect("script with its own transaction");

    let ids = rows(&client, &format!("SELECT id FROM {table}")).await;
    run_script(&client, &format!("DROP TABLE {table}"))
        .await
        .expect("cleanup");
    assert_eq!(
        ids,
        vec![vec![Some("2".to_string())]],
        "the script's own ROLLBACK must undo only its INSERT"
    );
}

#[tokio::test]
async fn dollar_quoted_function_runs() {
    let client = pg_client().await;
    let function = sql_name("fn");
    let script = format!(
        "CREATE FUNCTION {function}(x int) RETURNS text LANGUAGE plpgsql AS $body$\n\
         BEGIN\n\
           -- a comment; with a semicolon\n\
           RETURN 'got ' || x || ';';\n\
         END;\n\
         $body$;\n\
         SELECT {function}(1);"
    );

    run_script(&client, &script)
        .await
        .expect("function definition");

    let result = rows(&client, &format!("SELECT {function}(7)")).await;
    run_script(&client, &format!("DROP FUNCTION {function}(int)"))
        .await
        .expect("cleanup");
    assert_eq!(
        result,
        vec![vec![Some("got 7;".to_string())]],
        "function result"
    );
}

const HOSTILE_VALUES: &[&str] = &[
    "plain",
    "it's",
    "''",
    "'; DROP TABLE pg_class; --",
    "a;b",
    "$(touch pwned)",
    "`touch pwned`",
    r"back\slash",
    r"\'",
    r"trailing\",
    "two\nlines\r\n",
    "$$",
    "$tag$ x $tag$",
    "\"double\"",
    "tab\tseparated",
    "/* comment */ -- dash",
    "unicode: é ü ß 日本 🙂",
    "",
];

#[tokio::test]
async fn quote_literal_round_trips_hostile_values() {
    let client = pg_client().await;

    for value in HOSTILE_VALUES {
        let quoted = quote_literal(value).expect("quote_literal");
        let result = rows(&client, &format!("SELECT {quoted}")).await;
        assert_eq!(
            result,
            vec![vec![Some(value.to_string())]],
            "SELECT {quoted} must return {value:?}"
        );
    }

    client
        .batch_execute("SET standard_conforming_strings = off")
        .await
        .expect("SET");
    for value in HOSTILE_VALUES {
        let quoted = quote_literal(value).expect("quote_literal");
        let result = rows(&client, &format!("SELECT {quoted}")).await;
        assert_eq!(
            result,
            vec![vec![Some(value.to_string())]],
            "with standard_conforming_strings off, SELECT {quoted}"
        );
    }
}

#[tokio::test]
async fn quote_identifier_creates_exact_names() {
    let client = pg_client().await;
    let schema = sql_name("quote");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");

    let mut failures = Vec::new();
    for value in HOSTILE_VALUES.iter().filter(|value| !value.is_empty()) {
        let table = format!(
            "{schema}.{}",
            quote_identifier(value).expect("quote_identifier")
        );
        let created = query(
            &client,
            &format!("CREATE TABLE {table} (id int); INSERT INTO {table} VALUES (1)"),
        )
        .await;
        let found = query(
            &client,
            &format!(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{schema}' AND c.relname = {}",
                quote_literal(value).expect("quote_literal")
            ),
        )
        .await;
        let counted = query(&client, &format!("SELECT count(*) FROM {table}")).await;
        if created.is_err()
            || found != Ok(vec![vec![Some(value.to_string())]])
            || counted != Ok(vec![vec![Some("1".into())]])
        {
            failures.push(format!(
                "{value:?}: created {created:?}, found {found:?}, counted {counted:?}"
            ));
        }
    }
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("cleanup");

    assert!(
        failures.is_empty(),
        "identifiers not created or found exactly:\n{}",
        failures.join("\n")
    );
    assert!(
        !std::path::Path::new("pwned").exists(),
        "a quoted value ran a shell command"
    );
}

#[tokio::test]
async fn url_password_never_in_errors() {
    let password = "Sup3r-s3cret-Pa55";
    let wrong = pg_url().replace(PG_PASSWORD, password);
    let invalid_port = format!("postgres://rb6:{password}@127.0.0.1:notaport/postgres");
    let invalid_key_value = format!("host=127.0.0.1 password={password} sslmode=bogus");

    for (label, url) in [
        ("wrong password", &wrong),
        ("invalid port", &invalid_port),
        ("invalid option", &invalid_key_value),
    ] {
        let error = connect("billing-db", &PgTarget::Url(url.clone()), None)
            .await
            .expect_err("connect must fail");
        let text = format!("{error} {error:?}");
        assert!(
            !text.contains(password),
            "{label}: the password appears in the error: {text}"
        );
        assert!(
            text.contains("billing-db"),
            "{label}: the error does not name the connection: {text}"
        );
    }

    let error = connect("billing-db", &PgTarget::Url(wrong), None)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(error, PgConnectError::Connect { .. }),
        "expected Connect, got {error:?}"
    );
    let text = error.to_string();
    let config: tokio_postgres::Config = pg_url().parse().expect("test URL parses");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    assert!(
        text.contains(&format!("host {host}")),
        "error does not name the host: {text}"
    );
    assert!(
        text.contains(&format!("port {}", config.get_ports()[0])),
        "error does not name the port: {text}"
    );
    assert!(
        text.contains("user rb6"),
        "error does not name the user: {text}"
    );
    assert!(
        text.contains("database postgres"),
        "error does not name the database: {text}"
    );
    assert!(
        text.contains("password authentication failed"),
        "error does not carry the server message: {text}"
    );
}

#[tokio::test]
async fn connects_by_container_name_on_network() {
    let docker = docker().await;

    let client = connect(
        "in-container",
        &container_target(PG_PASSWORD, Some(PG_NETWORK)),
        Some(&docker),
    )
    .await
    .expect("connect by container name and network");
    let result = rows(&client, "SELECT current_user, inet_server_port()").await;
    assert_eq!(
        result,
        vec![vec![Some("rb6".to_string()), Some("5432".to_string())]],
        "session in the container"
    );

    let only_network = connect(
        "in-container",
        &container_target(PG_PASSWORD, None),
        Some(&docker),
    )
    .await;
    assert!(
        only_network.is_ok(),
        "the container's only network must be used when none is named: {:?}",
        only_network.err()
    );
}

#[tokio::test]
async fn container_target_errors_name_the_problem() {
    let docker = docker().await;
    let password = "container-Secret-77";

    let wrong = connect(
        "in-container",
        &container_target(password, Some(PG_NETWORK)),
        Some(&docker),
    )
    .await
    .expect_err("wrong password");
    let text = format!("{wrong} {wrong:?}");
    assert!(
        !text.contains(password),
        "the password appears in the error: {text}"
    );
    assert!(
        text.contains("in-container"),
        "error does not name the connection: {text}"
    );
    assert!(
        text.contains("user rb6"),
        "error does not name the user: {text}"
    );

    let other_network = connect(
        "in-container",
        &container_target(password, Some("bridge")),
        Some(&docker),
    )
    .await
    .expect_err("container is not on bridge");
    assert!(
        matches!(other_network, PgConnectError::NoAddress { .. }),
        "expected NoAddress, got {other_network:?}"
    );
    assert!(
        other_network.to_string().contains(PG_NETWORK),
        "error does not list the container's networks: {other_network}"
    );

    let missing = PgTarget::Container {
        container: unique_name("absent"),
        network: None,
        port: DEFAULT_PORT,
        user: "rb6".into(),
        database: "postgres".into(),
        password: None,
    };
    let error = connect("in-container", &missing, Some(&docker))
        .await
        .expect_err("missing container");
    assert!(
        matches!(error, PgConnectError::ContainerNotFound { .. }),
        "expected ContainerNotFound, got {error:?}"
    );

    let error = connect("in-container", &missing, None)
        .await
        .expect_err("no docker client");
    assert!(
        matches!(error, PgConnectError::NoDocker { .. }),
        "expected NoDocker, got {error:?}"
    );
}
