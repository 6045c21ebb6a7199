//! The catalogue of actions, probes and evidence collectors a runbook may use, with their arguments.
//!
//! `resolve` checks every call against this table (unknown action, unknown or missing argument,
//! wrong value type), `render` uses it to summarise a call, and `execute` dispatches on
//! [`CallKind`]. Invariant: an argument the table marks required is present after resolution.

/// The type an argument's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// Text; interpolated values are inserted as they are.
    Text,
    /// SQL; interpolated values are quoted as literals unless wrapped in `ident(...)`.
    Sql,
    /// A shell script; interpolated values are quoted as one shell word each.
    Shell,
    Integer,
    Bool,
    /// A duration such as `"30s"`, `"5m"`, `"1h 30m"`.
    Duration,
    /// A file mode in octal, such as `"0640"`.
    Mode,
    TextList,
    IntegerList,
    /// A map of text keys to text values.
    TextMap,
    /// Any value: text, number, bool, null, list or map.
    Value,
    /// A list of any values.
    ValueList,
    /// A map of text keys (key paths) to any values.
    ValueMap,
    /// A reference to a `postgres` connection block.
    PostgresConnection,
    /// A reference to a `docker` connection block.
    DockerConnection,
}

impl ArgType {
    /// Describes the type for "expected ..." messages.
    pub fn describe(self) -> &'static str {
        match self {
            ArgType::Text | ArgType::Sql | ArgType::Shell => "a string",
            ArgType::Integer => "a whole number",
            ArgType::Bool => "true or false",
            ArgType::Duration => "a duration string such as \"30s\" or \"5m\"",
            ArgType::Mode => "an octal file mode string such as \"0640\"",
            ArgType::TextList => "a list of strings",
            ArgType::IntegerList => "a whole number or a list of whole numbers",
            ArgType::TextMap => "a map of strings, such as { name = \"value\" }",
            ArgType::Value => "a value",
            ArgType::ValueList => "a list",
            ArgType::ValueMap => "a map, such as { \"key.path\" = value }",
            ArgType::PostgresConnection => "a postgres connection, such as postgres.admin",
            ArgType::DockerConnection => "a docker connection, such as docker.local",
        }
    }
}

/// One argument of a call.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
}

const fn required(name: &'static str, ty: ArgType) -> ArgSpec {
    ArgSpec { name, ty, required: true }
}

const fn optional(name: &'static str, ty: ArgType) -> ArgSpec {
    ArgSpec { name, ty, required: false }
}

/// The kind of inverse a call's effect has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inverse {
    /// rb6 records the previous state and restores it.
    Automatic,
    /// The effect can't be inverted automatically: the step needs an `undo` block or stays in place.
    Missing,
    /// The call changes nothing (a probe, a wait, reading logs).
    NoEffect,
}

/// The place a block kind may appear in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The main action of a step or of an undo.
    Action,
    /// A read-only check in `check`, gates, `only_if` and `wait_until`.
    Probe,
    /// Evidence collected in a gate's `on_fail`.
    Evidence,
}

/// Every block kind that can be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Sql,
    Shell,
    File,
    Copy,
    Directory,
    RemoveDirectory,
    Block,
    YamlSet,
    YamlAppend,
    YamlRemove,
    DockerImage,
    DockerRun,
    DockerExec,
    DockerStart,
    DockerStop,
    DockerRestart,
    DockerRemoveContainer,
    DockerRemoveImage,
    DockerLogs,
    ComposeUp,
    ComposeRestart,
    ComposeStop,
    ComposeRm,
    Http,
    WaitUntil,
    Query,
    Command,
    FileCheck,
    YamlCheck,
    Container,
}

/// The schema of one block kind.
#[derive(Debug)]
pub struct Schema {
    pub kind: CallKind,
    pub name: &'static str,
    pub roles: &'static [Role],
    pub args: &'static [ArgSpec],
    pub inverse: Inverse,
    /// The arguments shown in a one-line summary in the plan.
    pub summary: &'static [&'static str],
    /// Whether the block contains one nested probe block (`wait_until`).
    pub nested_probe: bool,
}

use ArgType::*;
use Role::*;

const HTTP_ARGS: &[ArgSpec] = &[
    required("url", Text),
    optional("method", Text),
    optional("headers", TextMap),
    optional("body", Text),
    optional("timeout", Duration),
    optional("expect_status", IntegerList),
    optional("expect_body_contains", TextList),
    optional("expect_json", ValueMap),
    optional("expect_header", TextMap),
    optional("fail_status", IntegerList),
    optional("fail_on_redirect", Bool),
    optional("fail_body_contains", TextList),
    optional("fail_header", TextMap),
];

const OWNERSHIP: [ArgSpec; 3] = [optional("mode", Mode), optional("owner", Text), optional("group", Text)];

/// The catalogue, in the order the language reference lists it.
pub static SCHEMAS: &[Schema] = &[
    Schema { kind: CallKind::Sql, name: "sql", roles: &[Action], args: &[required("connection", PostgresConnection), required("statements", Sql)], inverse: Inverse::Missing, summary: &["connection", "statements"], nested_probe: false },
    Schema { kind: CallKind::Shell, name: "shell", roles: &[Action], args: &[required("run", Shell), optional("cwd", Text), optional("env", TextMap), optional("expect_exit", IntegerList)], inverse: Inverse::Missing, summary: &["run"], nested_probe: false },
    Schema { kind: CallKind::File, name: "file", roles: &[Action], args: &[required("path", Text), required("content", Text), OWNERSHIP[0], OWNERSHIP[1], OWNERSHIP[2]], inverse: Inverse::Automatic, summary: &["path"], nested_probe: false },
    Schema { kind: CallKind::Copy, name: "copy", roles: &[Action], args: &[required("source", Text), required("destination", Text), OWNERSHIP[0], OWNERSHIP[1], OWNERSHIP[2]], inverse: Inverse::Automatic, summary: &["source", "destination"], nested_probe: false },
    Schema { kind: CallKind::Directory, name: "directory", roles: &[Action], args: &[required("path", Text), OWNERSHIP[0], OWNERSHIP[1], OWNERSHIP[2]], inverse: Inverse::Automatic, summary: &["path"], nested_probe: false },
    Schema { kind: CallKind::RemoveDirectory, name: "remove_directory", roles: &[Action], args: &[required("path", Text)], inverse: Inverse::Missing, summary: &["path"], nested_probe: false },
    Schema { kind: CallKind::Block, name: "block", roles: &[Action], args: &[required("path", Text), required("marker", Text), required("content", Text), optional("after", Text), optional("before", Text), optional("comment", Text)], inverse: Inverse::Automatic, summary: &["path", "marker"], nested_probe: false },
    Schema { kind: CallKind::YamlSet, name: "yaml_set", roles: &[Action], args: &[required("file", Text), required("values", ValueMap)], inverse: Inverse::Automatic, summary: &["file", "values"], nested_probe: false },
    Schema { kind: CallKind::YamlAppend, name: "yaml_append", roles: &[Action], args: &[required("file", Text), required("key", Text), required("items", ValueList)], inverse: Inverse::Automatic, summary: &["file", "key", "items"], nested_probe: false },
    Schema { kind: CallKind::YamlRemove, name: "yaml_remove", roles: &[Action], args: &[required("file", Text), required("key", Text), optional("items", ValueList), optional("remove_if_empty", Bool)], inverse: Inverse::Automatic, summary: &["file", "key", "items"], nested_probe: false },
    Schema { kind: CallKind::DockerImage, name: "docker_image", roles: &[Action, Probe], args: &[required("image", Text), optional("pull", Bool), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["image"], nested_probe: false },
    Schema { kind: CallKind::DockerRun, name: "docker_run", roles: &[Action], args: &[required("image", Text), optional("command", TextList), optional("env", TextMap), optional("volumes", TextList), optional("network", Text), optional("user", Text), optional("name", Text), optional("workdir", Text), optional("expect_exit", IntegerList), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["image", "command", "volumes"], nested_probe: false },
    Schema { kind: CallKind::DockerExec, name: "docker_exec", roles: &[Action, Probe, Evidence], args: &[required("container", Text), required("command", TextList), optional("env", TextMap), optional("user", Text), optional("expect_exit", IntegerList), optional("expect_stdout_contains", Text), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["container", "command"], nested_probe: false },
    Schema { kind: CallKind::DockerStart, name: "docker_start", roles: &[Action], args: &[required("container", Text), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["container"], nested_probe: false },
    Schema { kind: CallKind::DockerStop, name: "docker_stop", roles: &[Action], args: &[required("container", Text), optional("timeout", Duration), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["container"], nested_probe: false },
    Schema { kind: CallKind::DockerRestart, name: "docker_restart", roles: &[Action], args: &[required("container", Text), optional("timeout", Duration), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["container"], nested_probe: false },
    Schema { kind: CallKind::DockerRemoveContainer, name: "docker_remove_container", roles: &[Action], args: &[required("container", Text), optional("force", Bool), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["container"], nested_probe: false },
    Schema { kind: CallKind::DockerRemoveImage, name: "docker_remove_image", roles: &[Action], args: &[required("image", Text), optional("force", Bool), optional("connection", DockerConnection)], inverse: Inverse::Missing, summary: &["image"], nested_probe: false },
    Schema { kind: CallKind::DockerLogs, name: "docker_logs", roles: &[Action, Evidence], args: &[required("container", Text), optional("tail", Integer), optional("connection", DockerConnection)], inverse: Inverse::NoEffect, summary: &["container", "tail"], nested_probe: false },
    Schema { kind: CallKind::ComposeUp, name: "compose_up", roles: &[Action], args: &[required("project_dir", Text), required("service", Text)], inverse: Inverse::Automatic, summary: &["project_dir", "service"], nested_probe: false },
    Schema { kind: CallKind::ComposeRestart, name: "compose_restart", roles: &[Action], args: &[required("project_dir", Text), required("service", Text)], inverse: Inverse::Missing, summary: &["project_dir", "service"], nested_probe: false },
    Schema { kind: CallKind::ComposeStop, name: "compose_stop", roles: &[Action], args: &[required("project_dir", Text), required("service", Text)], inverse: Inverse::Missing, summary: &["project_dir", "service"], nested_probe: false },
    Schema { kind: CallKind::ComposeRm, name: "compose_rm", roles: &[Action], args: &[required("project_dir", Text), required("service", Text)], inverse: Inverse::Missing, summary: &["project_dir", "service"], nested_probe: false },
    Schema { kind: CallKind::Http, name: "http", roles: &[Action, Probe, Evidence], args: HTTP_ARGS, inverse: Inverse::NoEffect, summary: &["method", "url"], nested_probe: false },
    Schema { kind: CallKind::WaitUntil, name: "wait_until", roles: &[Action, Probe], args: &[optional("interval", Duration), optional("timeout", Duration)], inverse: Inverse::NoEffect, summary: &["timeout"], nested_probe: true },
    Schema { kind: CallKind::Query, name: "query", roles: &[Probe, Evidence], args: &[required("connection", PostgresConnection), required("sql", Sql), optional("expect_rows", Integer), optional("rows", ValueList), optional("expect_error", Text)], inverse: Inverse::NoEffect, summary: &["connection", "sql"], nested_probe: false },
    Schema { kind: CallKind::Command, name: "command", roles: &[Probe, Evidence], args: &[required("run", Shell), optional("cwd", Text), optional("env", TextMap), optional("expect_exit", IntegerList), optional("expect_stdout_contains", Text)], inverse: Inverse::NoEffect, summary: &["run"], nested_probe: false },
    Schema { kind: CallKind::FileCheck, name: "file_check", roles: &[Probe], args: &[required("path", Text), optional("exists", Bool), optional("contains", Text)], inverse: Inverse::NoEffect, summary: &["path"], nested_probe: false },
    Schema { kind: CallKind::YamlCheck, name: "yaml_check", roles: &[Probe], args: &[required("file", Text), required("key", Text), optional("exists", Bool), optional("equals", Value), optional("empty", Bool)], inverse: Inverse::NoEffect, summary: &["file", "key"], nested_probe: false },
    Schema { kind: CallKind::Container, name: "container", roles: &[Probe], args: &[required("name", Text), optional("exists", Bool), optional("running", Bool), optional("healthy", Bool), optional("network", Text), optional("published_ports", Bool), optional("connection", DockerConnection)], inverse: Inverse::NoEffect, summary: &["name"], nested_probe: false },
];

/// Finds the schema of a block kind by its name in the language.
pub fn find(name: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|schema| schema.name == name)
}

/// Returns the schema of a call kind.
pub fn of(kind: CallKind) -> &'static Schema {
    SCHEMAS.iter().find(|schema| schema.kind == kind).expect("every call kind has a schema")
}

/// Returns the names usable in a role, for "expected one of ..." messages and did-you-mean.
pub fn names_for(role: Role) -> Vec<&'static str> {
    SCHEMAS.iter().filter(|schema| schema.roles.contains(&role)).map(|schema| schema.name).collect()
}

impl Schema {
    /// Finds an argument's spec by name.
    pub fn arg(&self, name: &str) -> Option<&ArgSpec> {
        self.args.iter().find(|spec| spec.name == name)
    }
}
