//! The typed runbook: what `resolve` produces from the syntax tree and every later stage reads.
//!
//! Invariant: a [`Runbook`] has passed validation. Every name it references (step, variable,
//! secret, connection, capture) exists, and every call's arguments match its schema. Values
//! that depend on variables, secrets or captures stay as expressions until apply time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostic::SourceFile;
use crate::schema::{CallKind, Schema};
use crate::syntax::{Expr, Span, Template};

/// A validated runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    pub source: SourceFile,
    /// The directory containing the runbook file; `${runbook.dir}` expands to it.
    pub directory: PathBuf,
    pub variables: Vec<Variable>,
    pub secrets: Vec<Secret>,
    pub connections: Vec<Connection>,
    pub steps: Vec<Step>,
}

/// `variable "name" { default = ..., description = ... }`.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    pub span: Span,
}

/// `secret "name" { ... }`: a value never shown in any output.
#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub source: SecretSource,
    pub description: Option<String>,
    pub span: Span,
}

/// The source of a secret's value.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// Generated once at the first apply and kept in the state directory.
    Generate { length: usize, alphabet: String },
    /// Read from an environment variable at apply time.
    Env(String),
    /// Read from a file at apply time; surrounding whitespace is trimmed.
    File(Template),
}

/// A named connection to a PostgreSQL server or a Docker engine.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub kind: ConnectionKind,
    pub args: BTreeMap<String, Expr>,
    pub span: Span,
}

/// The kinds of connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Postgres,
    Docker,
}

impl ConnectionKind {
    /// Returns the block keyword, which is also the reference prefix (`postgres.admin`).
    pub fn keyword(self) -> &'static str {
        match self {
            ConnectionKind::Postgres => "postgres",
            ConnectionKind::Docker => "docker",
        }
    }
}

/// The kind of node a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Performs an action.
    Step,
    /// Asserts pass criteria; a failure blocks everything that depends on it.
    Gate,
    /// An operator's task, confirmed interactively or with `--confirm`.
    Manual,
}

impl StepKind {
    /// Returns the block keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            StepKind::Step => "step",
            StepKind::Gate => "gate",
            StepKind::Manual => "manual",
        }
    }
}

/// A step, gate or manual step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub description: Option<String>,
    pub needs: Vec<Need>,
    /// The action of a step; gates and manual steps have none.
    pub action: Option<Call>,
    /// Probes: a step is already done when all pass; a gate passes when all pass.
    pub checks: Vec<Call>,
    pub undo: Undo,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub captures: Vec<Capture>,
    /// Evidence a gate collects when it fails.
    pub on_fail: Vec<Call>,
    /// A manual step's instructions for the operator.
    pub instructions: Option<Template>,
    pub span: Span,
    pub name_span: Span,
}

/// One entry of `needs`.
#[derive(Debug, Clone)]
pub struct Need {
    pub name: String,
    pub span: Span,
}

/// The way a step is undone.
#[derive(Debug, Clone)]
pub enum Undo {
    /// The action's inverse is recorded at apply time and restored (file and YAML edits, ...).
    Automatic,
    /// The step changes nothing, so there is nothing to undo.
    NoEffect,
    /// The action can't be inverted and the runbook gives no undo: left in place.
    Missing,
    /// `undo { none = "reason" }`: deliberately left in place.
    LeftInPlace { reason: String },
    /// An explicit `undo { ... }` block.
    Explicit(ExplicitUndo),
}

/// An `undo { action ...; only_if { ... }; order = ... }` block.
#[derive(Debug, Clone)]
pub struct ExplicitUndo {
    pub action: Call,
    /// The undo runs only when all these probes pass; otherwise it is skipped and recorded so.
    pub only_if: Vec<Call>,
    pub order: UndoOrder,
    pub span: Span,
}

/// When an undo runs relative to the undo of the steps its step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoOrder {
    /// The usual order: a step is undone before the steps it needs.
    BeforeNeeds,
    /// Handler-style: the undo runs again after the steps it needs are undone (e.g. a restart
    /// that must pick up the removal of the files it was restarted for).
    AfterNeeds,
}

/// One call of an action, probe or evidence collector, with arguments checked against its schema.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub args: BTreeMap<String, Expr>,
    /// The nested probe of `wait_until`.
    pub nested: Option<Box<Call>>,
    pub span: Span,
}

impl Call {
    /// Returns the schema of this call's kind.
    pub fn schema(&self) -> &'static Schema {
        crate::schema::of(self.kind)
    }

    /// Returns an argument's expression.
    pub fn arg(&self, name: &str) -> Option<&Expr> {
        self.args.get(name)
    }
}

/// `capture "name" { ... }`: a value read at apply time that later steps use as `capture.name`.
#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub source: CaptureSource,
    pub sensitive: bool,
    pub span: Span,
}

/// The source a capture reads its value from.
#[derive(Debug, Clone)]
pub enum CaptureSource {
    /// A key path in a YAML file.
    YamlKey { file: Template, key: Template },
    /// A whole file's content, trimmed.
    File(Template),
    /// The step action's standard output, trimmed.
    Stdout,
    /// A shell command's standard output, trimmed.
    Command(Template),
}

impl Runbook {
    /// Finds a step by name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.name == name)
    }

    /// Finds a step's index by name.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.name == name)
    }

    /// Finds a connection by kind and name.
    pub fn connection(&self, kind: ConnectionKind, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|connection| connection.kind == kind && connection.name == name)
    }

    /// Finds the step that declares a capture.
    pub fn capture_owner(&self, capture: &str) -> Option<(&Step, &Capture)> {
        self.steps.iter().find_map(|step| step.captures.iter().find(|c| c.name == capture).map(|c| (step, c)))
    }
}
