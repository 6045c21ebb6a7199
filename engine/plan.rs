//! Planning: compares the runbook with the state and decides what apply or undo would do.
//!
//! The plan is data ([`Plan`]); `render` prints it as text or JSON. Planning is offline: it
//! reads only the runbook, the variable values and the state. Invariant: a plan contains no
//! secret value; secrets appear as `(sensitive)` and unread captures as `(known after apply)`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::graph::StepGraph;
use crate::interpolate::{Mode, Scope};
use crate::model::{Call, Runbook, Step, StepKind, Undo, UndoOrder};
use crate::schema::ArgType;
use crate::state::records::{State, StepStatus};

/// The kind of plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanMode {
    Apply,
    Undo,
}

/// The change planned for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `+`: not applied yet (or interrupted, or failed).
    Apply,
    /// `~`: applied, but its definition changed since.
    Change,
    /// `?`: a gate that will be evaluated.
    Gate,
    /// `!`: a manual step waiting for the operator.
    Manual,
    /// `-`: will be undone.
    Undo,
    /// Nothing to do: applied and unchanged, or nothing to undo.
    None,
    /// Undo leaves it in place: no inverse.
    LeftInPlace,
}

impl Change {
    /// Returns the plan symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Change::Apply => "+",
            Change::Change => "~",
            Change::Gate => "?",
            Change::Manual => "!",
            Change::Undo => "-",
            Change::None => " ",
            Change::LeftInPlace => "=",
        }
    }
}

/// A call as the plan shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub kind: &'static str,
    /// Arguments in schema order, rendered with secrets redacted.
    pub args: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested: Option<Box<CallView>>,
}

/// The undo of a step, as the plan shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UndoView {
    /// `automatic`, `explicit`, `no_effect`, `left_in_place` or `missing`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<CallView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_if: Vec<CallView>,
    pub order: UndoOrder,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One step of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    pub step: String,
    pub kind: StepKind,
    pub change: Change,
    pub symbol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub needs: Vec<String>,
    /// The reason the step is in this plan (e.g. "interrupted", "definition changed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<CallView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CallView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_fail: Vec<CallView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    pub undo: UndoView,
    /// In an undo plan: the steps whose undo runs first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undo_after: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<String>,
    pub definition_sha256: String,
}

/// The plan's counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub to_apply: usize,
    pub to_change: usize,
    pub gates: usize,
    pub manual: usize,
    pub to_undo: usize,
    pub left_in_place: usize,
}

impl Summary {
    /// True when running the plan would do nothing.
    pub fn is_empty(&self) -> bool {
        *self == Summary { left_in_place: self.left_in_place, ..Summary::default() }
    }
}

/// A plan: the entries in execution order, with the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub runbook: String,
    pub mode: PlanMode,
    pub entries: Vec<PlanEntry>,
    pub summary: Summary,
}

/// Computes the sha256 of a step's resolved definition (secrets and captures by name only).
pub fn definition_hash(step: &Step, scope: &Scope) -> String {
    let view = DefinitionView { kind: step.kind, needs: step.needs.iter().map(|need| need.name.as_str()).collect(), body: step_views(step, scope, Mode::Hash) };
    let canonical = serde_json::to_string(&view).expect("plan views serialize");
    let mut hasher = Sha256::new();
    hasher.update(step.name.as_bytes());
    hasher.update([0]);
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

#[derive(Serialize)]
struct DefinitionView<'a> {
    kind: StepKind,
    needs: Vec<&'a str>,
    body: StepViews,
}

#[derive(Serialize)]
struct StepViews {
    action: Option<CallView>,
    checks: Vec<CallView>,
    on_fail: Vec<CallView>,
    instructions: Option<String>,
    undo: UndoView,
    captures: Vec<String>,
}

fn step_views(step: &Step, scope: &Scope, mode: Mode) -> StepViews {
    StepViews {
        action: step.action.as_ref().map(|call| call_view(call, scope, mode)),
        checks: step.checks.iter().map(|call| call_view(call, scope, mode)).collect(),
        on_fail: step.on_fail.iter().map(|call| call_view(call, scope, mode)).collect(),
        instructions: step.instructions.as_ref().map(|text| scope.render(text, ArgType::Text, mode).unwrap_or_else(|error| error.to_string())),
        undo: undo_view(&step.undo, scope, mode),
        captures: step.captures.iter().map(|capture| capture.name.clone()).collect(),
    }
}

/// Renders a call's arguments for display or hashing.
pub fn call_view(call: &Call, scope: &Scope, mode: Mode) -> CallView {
    let schema = call.schema();
    let args = schema
        .args
        .iter()
        .filter_map(|spec| call.arg(spec.name).map(|expr| (spec, expr)))
        .map(|(spec, expr)| {
            let rendered = match spec.ty {
                ArgType::Text | ArgType::Sql | ArgType::Shell | ArgType::Duration | ArgType::Mode => scope.render_text(expr, spec.ty, mode),
                ArgType::PostgresConnection | ArgType::DockerConnection => Ok(reference_text(expr)),
                _ => scope.render_value(expr, mode).map(|value| compact_json(&value)),
            };
            (spec.name.to_string(), rendered.unwrap_or_else(|error| format!("<{error}>")))
        })
        .collect();
    CallView { kind: schema.name, args, nested: call.nested.as_ref().map(|nested| Box::new(call_view(nested, scope, mode))) }
}

fn reference_text(expr: &crate::syntax::Expr) -> String {
    match &expr.kind {
        crate::syntax::ExprKind::Reference(reference) => reference.dotted(),
        _ => String::new(),
    }
}

fn compact_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(text.clone()).to_string(),
        other => other.to_string(),
    }
}

fn undo_view(undo: &Undo, scope: &Scope, mode: Mode) -> UndoView {
    let empty = |kind| UndoView { kind, action: None, only_if: Vec::new(), order: UndoOrder::BeforeNeeds, reason: None };
    match undo {
        Undo::Automatic => empty("automatic"),
        Undo::NoEffect => empty("no_effect"),
        Undo::Missing => empty("missing"),
        Undo::LeftInPlace { reason } => UndoView { reason: Some(reason.clone()), ..empty("left_in_place") },
        Undo::Explicit(explicit) => UndoView {
            kind: "explicit",
            action: Some(call_view(&explicit.action, scope, mode)),
            only_if: explicit.only_if.iter().map(|call| call_view(call, scope, mode)).collect(),
            order: explicit.order,
            reason: None,
        },
    }
}

fn entry(step: &Step, change: Change, reason: Option<String>, scope: &Scope) -> PlanEntry {
    let views = step_views(step, scope, Mode::Display);
    PlanEntry {
        step: step.name.clone(),
        kind: step.kind,
        change,
        symbol: change.symbol(),
        description: step.description.clone(),
        needs: step.needs.iter().map(|need| need.name.clone()).collect(),
        reason,
        action: views.action,
        checks: views.checks,
        on_fail: views.on_fail,
        instructions: views.instructions,
        undo: views.undo,
        undo_after: Vec::new(),
        captures: views.captures,
        definition_sha256: definition_hash(step, scope),
    }
}

/// Plans an apply: every step not applied with its current definition.
pub fn plan_apply(runbook: &Runbook, graph: &StepGraph, state: &State, scope: &Scope) -> Plan {
    let mut entries = Vec::new();
    let mut summary = Summary::default();
    for index in graph.apply_order() {
        let step = &runbook.steps[index];
        let (change, reason) = apply_change(step, state, scope);
        match change {
            Change::None => continue,
            Change::Apply => summary.to_apply += 1,
            Change::Change => summary.to_change += 1,
            Change::Gate => summary.gates += 1,
            Change::Manual => summary.manual += 1,
            Change::Undo | Change::LeftInPlace => {}
        }
        entries.push(entry(step, change, reason, scope));
    }
    Plan { format_version: 1, runbook: runbook.name.clone(), mode: PlanMode::Apply, entries, summary }
}

/// Decides what apply does with one step, and why.
pub fn apply_change(step: &Step, state: &State, scope: &Scope) -> (Change, Option<String>) {
    let pending = match step.kind {
        StepKind::Step => Change::Apply,
        StepKind::Gate => Change::Gate,
        StepKind::Manual => Change::Manual,
    };
    let Some(record) = state.steps.get(&step.name) else { return (pending, None) };

    match record.status {
        StepStatus::Applied if record.hash == definition_hash(step, scope) => (Change::None, None),
        StepStatus::Applied if step.kind == StepKind::Step => (Change::Change, Some("definition changed since it was applied".into())),
        StepStatus::Applied => (pending, Some("definition changed since it passed".into())),
        StepStatus::Started => (pending, Some("interrupted: started but not finished".into())),
        StepStatus::Failed => (pending, Some("failed last time".into())),
        StepStatus::UndoStarted | StepStatus::UndoFailed => (pending, Some("undo did not finish".into())),
        StepStatus::Undone => (pending, None),
    }
}

/// Plans an undo of the applied steps, or of `target` and everything that depends on it.
pub fn plan_undo(runbook: &Runbook, graph: &StepGraph, state: &State, scope: &Scope, target: Option<usize>) -> Plan {
    let in_scope: BTreeSet<usize> = match target {
        Some(target) => graph.with_dependents(target),
        None => (0..runbook.steps.len()).collect(),
    };
    let selected: BTreeSet<usize> = in_scope.into_iter().filter(|index| needs_undo(state.status(&runbook.steps[*index].name))).collect();

    let mut entries = Vec::new();
    let mut summary = Summary::default();
    let names: BTreeMap<usize, &str> = runbook.steps.iter().enumerate().map(|(index, step)| (index, step.name.as_str())).collect();
    for (index, before) in graph.undo_order(runbook, &selected) {
        let step = &runbook.steps[index];
        let preexisting = state.steps.get(&step.name).is_some_and(|record| record.preexisting);
        let change = match &step.undo {
            _ if preexisting => Change::LeftInPlace,
            Undo::Automatic | Undo::Explicit(_) => Change::Undo,
            Undo::Missing | Undo::LeftInPlace { .. } => Change::LeftInPlace,
            Undo::NoEffect => Change::None,
        };
        match change {
            Change::Undo => summary.to_undo += 1,
            Change::LeftInPlace => summary.left_in_place += 1,
            _ => {}
        }
        let reason = preexisting.then(|| "its effect existed before rb6 applied it: left in place".to_string());
        let mut planned = entry(step, change, reason, scope);
        planned.undo_after = before.iter().filter(|index| !matches!(runbook.steps[**index].undo, Undo::NoEffect)).map(|index| names[index].to_string()).collect();
        entries.push(planned);
    }
    Plan { format_version: 1, runbook: runbook.name.clone(), mode: PlanMode::Undo, entries, summary }
}

fn needs_undo(status: Option<StepStatus>) -> bool {
    matches!(status, Some(StepStatus::Applied | StepStatus::UndoStarted | StepStatus::UndoFailed))
}
