//! PostgreSQL client for runbook actions: connection by URL or by container name, statement
//! splitting, script execution with transaction grouping, text-mode queries and quoting.
//!
//! Invariants: no error message contains a connection password, also when the password sits
//! inside a URL. `execute` runs consecutive statements that may run inside a transaction in one
//! transaction, and each statement that PostgreSQL rejects inside a transaction block on its own.

// A connection error is built once per failed connection, so its size does not matter.
#![allow(clippy::result_large_err)]

mod split;
mod sqlstate;

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::actions::docker::{DockerClient, DockerError};

pub use split::split_statements;
pub use sqlstate::condition_name;

/// Port used when a container target names none.
pub const DEFAULT_PORT: u16 = 5432;

/// Time allowed for establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Target of a named connection.
#[derive(Clone, PartialEq, Eq)]
pub enum PgTarget {
    /// A libpq-style URL (`postgres://user:password@host:port/database`) or key=value string.
    Url(String),
    /// A server in a container, reached at the container's IP address on a Docker network.
    Container {
        /// Container name or id.
        container: String,
        /// Network whose address to use. `None` requires the container to have exactly one network.
        network: Option<String>,
        /// Server port inside the container, usually [`DEFAULT_PORT`].
        port: u16,
        /// Role to log in as.
        user: String,
        /// Database to connect to.
        database: String,
        /// Password, for servers that require password authentication.
        password: Option<String>,
    },
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgTarget::Url(url) => formatter
                .debug_tuple("Url")
                .field(&redact_url(url))
                .finish(),
            PgTarget::Container {
                container,
                network,
                port,
                user,
                database,
                password,
            } => formatter
                .debug_struct("Container")
                .field("container", container)
                .field("network", network)
                .field("port", port)
                .field("user", user)
                .field("database", database)
                .field("password", &password.as_ref().map(|_| "<hidden>"))
                .finish(),
        }
    }
}

/// Errors of connecting to PostgreSQL. None of them contains the password.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PgConnectError {
    /// The URL or key=value string could not be parsed.
    #[error("invalid connection string for PostgreSQL connection {name} ({redacted}): {message}")]
    #[diagnostic(
        code(rb6::postgres::invalid_url),
        help("use postgres://USER:PASSWORD@HOST:PORT/DATABASE, with special characters percent-encoded")
    )]
    InvalidUrl {
        name: String,
        redacted: String,
        message: String,
    },

    /// The server could not be reached or rejected the login.
    #[error(
        "cannot connect to PostgreSQL connection {name} (host {host}, port {port}, user {user}, \
         database {database}): {message}"
    )]
    #[diagnostic(
        code(rb6::postgres::connect),
        help(
            "check that the server is running and that the user, database and password are right"
        )
    )]
    Connect {
        name: String,
        host: String,
        port: String,
        user: String,
        database: String,
        message: String,
    },

    /// A container target was given without a Docker client.
    #[error("PostgreSQL connection {name} targets container {container}, but no Docker Engine connection is available")]
    #[diagnostic(code(rb6::postgres::no_docker))]
    NoDocker { name: String, container: String },

    /// The target container does not exist.
    #[error("container {container} of PostgreSQL connection {name} not found")]
    #[diagnostic(
        code(rb6::postgres::container_not_found),
        help("start the container, or fix its name")
    )]
    ContainerNotFound { name: String, container: String },

    /// The container has no address on the requested network, or on any single network.
    #[error("container {container} of PostgreSQL connection {name} has no address on {network}; its networks: {networks}")]
    #[diagnostic(
        code(rb6::postgres::no_address),
        help("name the network the container shares with rb6's host, and check that the container is running")
    )]
    NoAddress {
        name: String,
        container: String,
        network: String,
        networks: String,
    },

    /// Inspecting the container failed.
    #[error("PostgreSQL connection {name}: {source}")]
    #[diagnostic(code(rb6::postgres::docker))]
    Docker {
        name: String,
        #[source]
        source: DockerError,
    },
}

/// A statement or query that failed, with the server's SQLSTATE when the server reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("statement {index} of {count} failed ({first_line}): {}", self.describe())]
#[diagnostic(code(rb6::postgres::statement))]
pub struct SqlError {
    /// 1-based position of the failed statement in its block.
    pub index: usize,
    /// Number of statements in the block.
    pub count: usize,
    /// First line of the failed statement.
    pub first_line: String,
    /// Five-character SQLSTATE, e.g. `42501`, or `None` when the client failed, not the server.
    pub code: Option<String>,
    /// Condition name of the SQLSTATE, e.g. `insufficient_privilege`.
    pub condition: Option<String>,
    /// Primary message of the server, or the client's error text.
    pub message: String,
    /// Server's DETAIL field.
    pub detail: Option<String>,
    /// Server's HINT field.
    pub hint: Option<String>,
}

impl SqlError {
    fn describe(&self) -> String {
        let mut text = match (&self.code, &self.condition) {
            (Some(code), Some(condition)) => format!("{code} {condition}: {}", self.message),
            (Some(code), None) => format!("{code}: {}", self.message),
            _ => self.message.clone(),
        };
        if let Some(detail) = &self.detail {
            text.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!(" (hint: {hint})"));
        }
        text
    }

    fn from_client(
        error: &tokio_postgres::Error,
        index: usize,
        count: usize,
        statement: &str,
    ) -> Self {
        let first_line = statement.lines().next().unwrap_or_default().to_string();
        match error.as_db_error() {
            Some(db) => SqlError {
                index,
                count,
                first_line,
                code: Some(db.code().code().to_string()),
                condition: condition_name(db.code().code()).map(str::to_string),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            },
            None => SqlError {
                index,
                count,
                first_line,
                code: None,
                condition: None,
                message: error.to_string(),
                detail: None,
                hint: None,
            },
        }
    }
}

/// A value that cannot be quoted for SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("cannot quote {what} for SQL: it contains a NUL byte at offset {offset}, which PostgreSQL text cannot hold")]
#[diagnostic(code(rb6::postgres::nul_byte))]
pub struct QuoteError {
    /// `literal` or `identifier`.
    pub what: &'static str,
    /// Byte offset of the first NUL.
    pub offset: usize,
}

/// Connects to the target of connection `name`. For a container target, the address is the
/// container's IP on the named network (or on its only network), looked up through `docker`.
pub async fn connect(
    name: &str,
    target: &PgTarget,
    docker: Option<&DockerClient>,
) -> Result<Client, PgConnectError> {
    connect_as(name, target, docker, None).await
}

/// Connects like [`connect`], setting the session's `application_name` when given, so the
/// server's `pg_stat_activity` shows which rb6 step a backend works for.
pub async fn connect_as(
    name: &str,
    target: &PgTarget,
    docker: Option<&DockerClient>,
    application_name: Option<&str>,
) -> Result<Client, PgConnectError> {
    let (mut config, password) = match target {
        PgTarget::Url(url) => url_config(name, url)?,
        PgTarget::Container { .. } => container_config(name, target, docker).await?,
    };
    config.connect_timeout(CONNECT_TIMEOUT);
    if let Some(application_name) = application_name {
        config.application_name(application_name);
    }

    let connected = config.connect(NoTls).await;
    let (client, connection) =
        connected.map_err(|error| connect_error(name, &config, &error, password.as_deref()))?;

    let connection_name = name.to_string();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(connection = %connection_name, %error, "PostgreSQL connection closed with an error");
        }
    });
    tracing::debug!(connection = %name, "connected to PostgreSQL");
    Ok(client)
}

fn url_config(name: &str, url: &str) -> Result<(Config, Option<String>), PgConnectError> {
    let config: Config = url.parse().map_err(|error: tokio_postgres::Error| {
        let mut message = error_chain(&error);
        if let Some(password) = url_password(url) {
            message = message.replace(&password, "<hidden>");
        }
        PgConnectError::InvalidUrl {
            name: name.to_string(),
            redacted: redact_url(url),
            message,
        }
    })?;
    let password = config
        .get_password()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    Ok((config, password))
}

async fn container_config(
    name: &str,
    target: &PgTarget,
    docker: Option<&DockerClient>,
) -> Result<(Config, Option<String>), PgConnectError> {
    let PgTarget::Container {
        container,
        network,
        port,
        user,
        database,
        password,
    } = target
    else {
        unreachable!("container_config is called for container targets only");
    };
    let docker = docker.ok_or_else(|| PgConnectError::NoDocker {
        name: name.to_string(),
        container: container.clone(),
    })?;

    let info = docker
        .inspect_container(container)
        .await
        .map_err(|source| PgConnectError::Docker {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| PgConnectError::ContainerNotFound {
            name: name.to_string(),
            container: container.clone(),
        })?;
    let address = container_address(&info.networks, network.as_deref());
    let address = address.ok_or_else(|| PgConnectError::NoAddress {
        name: name.to_string(),
        container: container.clone(),
        network: network
            .clone()
            .map_or("its only network".to_string(), |network| {
                format!("network {network}")
            }),
        networks: describe_networks(&info.networks),
    })?;

    let mut config = Config::new();
    config
        .host(&address)
        .port(*port)
        .user(user)
        .dbname(database);
    if let Some(password) = password {
        config.password(password.as_str());
    }
    Ok((config, password.clone()))
}

/// Picks the IP on `network`, or on the only network when `network` is `None`.
fn container_address(networks: &[(String, String)], network: Option<&str>) -> Option<String> {
    let address = match network {
        Some(wanted) => networks
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, ip)| ip.clone()),
        None if networks.len() == 1 => Some(networks[0].1.clone()),
        None => None,
    };
    address.filter(|ip| !ip.is_empty())
}

fn describe_networks(networks: &[(String, String)]) -> String {
    if networks.is_empty() {
        return "none (is the container running?)".to_string();
    }
    let described: Vec<String> = networks
        .iter()
        .map(|(name, ip)| {
            if ip.is_empty() {
                format!("{name} (no address)")
            } else {
                format!("{name} ({ip})")
            }
        })
        .collect();
    described.join(", ")
}

fn connect_error(
    name: &str,
    config: &Config,
    error: &tokio_postgres::Error,
    password: Option<&str>,
) -> PgConnectError {
    let host = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(host) => host.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");

    let mut message = error_chain(error);
    if let Some(password) = password.filter(|password| !password.is_empty()) {
        message = message.replace(password, "<hidden>");
    }

    PgConnectError::Connect {
        name: name.to_string(),
        host: if host.is_empty() {
            "localhost".to_string()
        } else {
            host
        },
        port: if port.is_empty() {
            DEFAULT_PORT.to_string()
        } else {
            port
        },
        user: config.get_user().unwrap_or("(default)").to_string(),
        database: config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("(default)")
            .to_string(),
        message,
    }
}

/// Joins an error with its sources, because tokio-postgres keeps the I/O cause in `source()`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Returns the password of a `scheme://user:password@host` URL, raw and percent-decoded.
fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password.to_string()).filter(|password| !password.is_empty())
}

/// Replaces the password in a URL or key=value connection string with `<hidden>`.
pub fn redact_url(url: &str) -> String {
    if let Some(password) = url_password(url) {
        return url.replacen(&format!(":{password}@"), ":<hidden>@", 1);
    }

    let mut redacted = Vec::new();
    let mut hide_next = false;
    for word in url.split(' ') {
        if hide_next {
            redacted.push("<hidden>".to_string());
            hide_next = false;
        } else if let Some(key) = word
            .strip_suffix('=')
            .filter(|key| key.trim() == "password")
        {
            redacted.push(format!("{key}="));
            hide_next = true;
        } else if word.trim_start().starts_with("password=") {
            redacted.push("password=<hidden>".to_string());
        } else {
            redacted.push(word.to_string());
        }
    }
    redacted.join(" ")
}

/// Returns whether PostgreSQL rejects `statement` inside a transaction block.
pub fn requires_own_transaction(statement: &str) -> bool {
    let words = leading_keywords(statement, 8);
    let word = |index: usize| words.get(index).map(String::as_str).unwrap_or("");

    match (word(0), word(1)) {
        ("CREATE" | "DROP", "DATABASE" | "TABLESPACE") => true,
        ("VACUUM", _) | ("ALTER", "SYSTEM") => true,
        ("CREATE", "INDEX") => word(2) == "CONCURRENTLY",
        ("CREATE", "UNIQUE") => word(2) == "INDEX" && word(3) == "CONCURRENTLY",
        ("DROP", "INDEX") => word(2) == "CONCURRENTLY",
        ("REINDEX", _) => words
            .iter()
            .any(|word| word == "CONCURRENTLY" || word == "SYSTEM" || word == "DATABASE"),
        _ => false,
    }
}

/// Returns whether `statement` begins or ends a transaction itself.
fn is_transaction_control(statement: &str) -> bool {
    let words = leading_keywords(statement, 2);
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" => true,
        "PREPARE" => words.get(1).is_some_and(|word| word == "TRANSACTION"),
        _ => false,
    }
}

/// Returns the first `limit` bare words of `statement`, upper-cased. A parenthesized group or a
/// quoted token counts as one word that matches no keyword.
fn leading_keywords(statement: &str, limit: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = statement.chars().peekable();
    let mut depth = 0usize;

    while let Some(&c) = chars.peek() {
        if words.len() >= limit {
            break;
        }
        if depth > 0 || c == '(' || c == ')' {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            chars.next();
            if depth == 0 {
                words.push("()".to_string());
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars
                .peek()
                .filter(|c| c.is_alphanumeric() || **c == '_' || **c == '$')
            {
                word.push(c.to_ascii_uppercase());
                chars.next();
            }
            words.push(word);
        } else if c.is_whitespace() {
            chars.next();
        } else {
            words.push(c.to_string());
            chars.next();
        }
    }
    words
}

/// Runs `statements` in order. Consecutive statements that may run inside a transaction run in
/// one transaction, and a statement that cannot (see [`requires_own_transaction`]) runs alone.
/// When the block contains its own BEGIN/COMMIT, every statement runs as written, without an
/// added transaction. Stops at the first failure, after rolling back the open transaction.
pub async fn execute(client: &Client, statements: &[String]) -> Result<(), SqlError> {
    let count = statements.len();
    let manages_transactions = statements
        .iter()
        .any(|statement| is_transaction_control(statement));

    let mut group: Vec<(usize, &str)> = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        if manages_transactions || requires_own_transaction(statement) {
            run_group(client, &group, count).await?;
            group.clear();
            run_single(client, index, statement, count).await?;
        } else {
            group.push((index, statement));
        }
    }
    run_group(client, &group, count).await
}

async fn run_single(
    client: &Client,
    index: usize,
    statement: &str,
    count: usize,
) -> Result<(), SqlError> {
    tracing::debug!(
        statement = index + 1,
        count,
        "running statement outside a transaction"
    );
    client
        .batch_execute(statement)
        .await
        .map_err(|error| SqlError::from_client(&error, index + 1, count, statement))
}

/// Runs the statements of `group` in one transaction, which a failure rolls back.
async fn run_group(client: &Client, group: &[(usize, &str)], count: usize) -> Result<(), SqlError> {
    let Some(&(first_index, first_statement)) = group.first() else {
        return Ok(());
    };
    if group.len() == 1 {
        return run_single(client, first_index, first_statement, count).await;
    }

    tracing::debug!(
        first = first_index + 1,
        statements = group.len(),
        "running statements in one transaction"
    );
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|error| SqlError::from_client(&error, first_index + 1, count, first_statement))?;

    for &(index, statement) in group {
        if let Err(error) = client.batch_execute(statement).await {
            if let Err(rollback_error) = client.batch_execute("ROLLBACK").await {
                tracing::warn!(error = %rollback_error, "ROLLBACK after a failed statement failed");
            }
            return Err(SqlError::from_client(&error, index + 1, count, statement));
        }
    }

    let (last_index, last_statement) = group[group.len() - 1];
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|error| SqlError::from_client(&error, last_index + 1, count, last_statement))
}

/// Runs `sql` with the simple query protocol and returns the rows of its last result as text,
/// with `None` for SQL NULL.
pub async fn query(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|error| SqlError::from_client(&error, 1, 1, sql))?;

    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(_) => rows.clear(),
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len())
                    .map(|column| row.get(column).map(str::to_string))
                    .collect();
                rows.push(values);
            }
            _ => {}
        }
    }
    Ok(rows)
}

/// Quotes `value` as a string literal, like libpq's PQescapeLiteral: quotes are doubled, and a
/// value with a backslash is written as ` E'…'` (with a leading space) with doubled backslashes,
/// so it reads the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> Result<String, QuoteError> {
    reject_nul(value, "literal")?;

    let has_backslash = value.contains('\\');
    let mut quoted = String::with_capacity(value.len() + 4);
    if has_backslash {
        quoted.push_str(" E");
    }
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push(c);
        }
        quoted.push(c);
    }
    quoted.push('\'');
    Ok(quoted)
}

/// Quotes `value` as an identifier, like libpq's PQescapeIdentifier: always in double quotes,
/// with `"` doubled, so the name keeps its case and any character.
pub fn quote_identifier(value: &str) -> Result<String, QuoteError> {
    reject_nul(value, "identifier")?;
    Ok(format!("\"{}\"", value.replace('"', "\"\"")))
}

fn reject_nul(value: &str, what: &'static str) -> Result<(), QuoteError> {
    match value.find('\0') {
        Some(offset) => Err(QuoteError { what, offset }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_own_transaction_cases() {
        let cases = [
            ("CREATE DATABASE app", true),
            ("create database app", true),
            ("DROP DATABASE IF EXISTS app", true),
            ("CREATE TABLESPACE fast LOCATION '/ssd'", true),
            ("DROP TABLESPACE fast", true),
            ("VACUUM ANALYZE t", true),
            ("vacuum", true),
            ("ALTER SYSTEM SET work_mem = '64MB'", true),
            ("CREATE INDEX CONCURRENTLY i ON t (a)", true),
            ("CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", true),
            ("DROP INDEX CONCURRENTLY i", true),
            ("REINDEX TABLE CONCURRENTLY t", true),
            ("REINDEX (VERBOSE) INDEX CONCURRENTLY i", true),
            ("REINDEX DATABASE app", true),
            ("REINDEX TABLE t", false),
            ("CREATE INDEX i ON t (a)", false),
            ("CREATE INDEX \"concurrently\" ON t (a)", false),
            ("CREATE TABLE database (id int)", false),
            ("ALTER DATABASE app OWNER TO me", false),
            ("SELECT 'VACUUM'", false),
            ("CREATE ROLE app LOGIN", false),
        ];
        for (statement, expected) in cases {
            assert_eq!(
                requires_own_transaction(statement),
                expected,
                "requires_own_transaction({statement:?})"
            );
        }
    }

    #[test]
    fn transaction_control_cases() {
        let cases = [
            ("BEGIN", true),
            ("begin isolation level serializable", true),
            ("START TRANSACTION", true),
            ("COMMIT", true),
            ("END", true),
            ("ROLLBACK", true),
            ("PREPARE TRANSACTION 'x'", true),
            ("PREPARE q AS SELECT 1", false),
            ("SELECT 1", false),
        ];
        for (statement, expected) in cases {
            assert_eq!(
                is_transaction_control(statement),
                expected,
                "is_transaction_control({statement:?})"
            );
        }
    }

    #[test]
    fn quote_literal_cases() {
        let cases = [
            ("plain", "'plain'"),
            ("it's", "'it''s'"),
            (r"a\b", r" E'a\\b'"),
            (r"'\", r" E'''\\'"),
            ("", "''"),
            ("é", "'é'"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                quote_literal(value).unwrap(),
                expected,
                "quote_literal({value:?})"
            );
        }
    }

    #[test]
    fn quote_identifier_cases() {
        let cases = [
            ("t", "\"t\""),
            ("Mixed", "\"Mixed\""),
            ("a\"b", "\"a\"\"b\""),
            ("", "\"\""),
        ];
        for (value, expected) in cases {
            assert_eq!(
                quote_identifier(value).unwrap(),
                expected,
                "quote_identifier({value:?})"
            );
        }
    }

    #[test]
    fn quoting_rejects_nul() {
        assert_eq!(
            quote_literal("a\0b"),
            Err(QuoteError {
                what: "literal",
                offset: 1
            }),
            "literal with NUL"
        );
        assert_eq!(
            quote_identifier("\0"),
            Err(QuoteError {
                what: "identifier",
                offset: 0
            }),
            "identifier with NUL"
        );
    }

    #[test]
    fn redact_url_hides_password() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/app",
                "postgres://app:<hidden>@db:5432/app",
            ),
            (
                "postgres://app:p@ss@db/app",
                "postgres://app:<hidden>@db/app",
            ),
            ("postgres://app@db/app", "postgres://app@db/app"),
            (
                "host=db password=s3cret user=app",
                "host=db password=<hidden> user=app",
            ),
            (
                "host=db password= s3cret user=app",
                "host=db password= <hidden> user=app",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "redact_url({url:?})");
        }
    }

    #[test]
    fn container_address_cases() {
        let networks = vec![
            ("app".to_string(), "172.18.0.2".to_string()),
            ("bridge".to_string(), String::new()),
        ];
        let single = vec![("app".to_string(), "172.18.0.2".to_string())];
        assert_eq!(
            container_address(&networks, Some("app")),
            Some("172.18.0.2".to_string()),
            "named network"
        );
        assert_eq!(
            container_address(&networks, Some("bridge")),
            None,
            "network without address"
        );
        assert_eq!(
            container_address(&networks, None),
            None,
            "two networks and none named"
        );
        assert_eq!(
            container_address(&single, None),
            Some("172.18.0.2".to_string()),
            "only network"
        );
    }
}
