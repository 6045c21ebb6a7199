//! Rendering: plans as Terraform-style text or JSON.
//!
//! Text rendering is pure (a `String` out); the reporter decides where it goes. Color is
//! applied only when asked for, so files, pipes and snapshot tests get plain text.

use crate::model::StepKind;
use crate::plan::{CallView, Change, Plan, PlanEntry, PlanMode};

/// Options for text rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn symbol(self, change: Change) -> String {
        let code = match change {
            Change::Apply => "32",
            Change::Change => "33",
            Change::Undo => "31",
            Change::Gate | Change::Manual => "36",
            Change::None | Change::LeftInPlace => "2",
        };
        self.paint(code, change.symbol())
    }
}

/// Renders a plan as text: legend, one block per step, summary line.
pub fn plan_text(plan: &Plan, style: Style) -> String {
    let shown: Vec<&PlanEntry> = plan.entries.iter().filter(|entry| entry.change != Change::None).collect();
    if shown.is_empty() {
        return format!("{}\n", summary_line(plan));
    }

    let mut text = legend(&shown, style);
    let verb = if plan.mode == PlanMode::Apply { "apply" } else { "undo" };
    text.push_str(&format!("\nrb6 will {verb} runbook \"{}\" in this order:\n", plan.runbook));
    for entry in shown {
        text.push('\n');
        text.push_str(&entry_text(entry, plan.mode, style));
    }
    text.push('\n');
    text.push_str(&style.paint("1", &summary_line(plan)));
    text.push('\n');
    text
}

fn legend(entries: &[&PlanEntry], style: Style) -> String {
    let all = [
        (Change::Apply, "apply"),
        (Change::Change, "changed since applied: apply again"),
        (Change::Undo, "undo"),
        (Change::LeftInPlace, "no undo: left in place"),
        (Change::Gate, "gate: check and stop on failure"),
        (Change::Manual, "manual step for the operator"),
    ];
    let mut text = String::from("Symbols:\n");
    for (change, meaning) in all {
        if entries.iter().any(|entry| entry.change == change) {
            text.push_str(&format!("  {} {meaning}\n", style.symbol(change)));
        }
    }
    text
}

/// Returns the one-line summary, e.g. `Plan: 18 to apply, 0 to change, 3 gates, 2 manual.`
pub fn summary_line(plan: &Plan) -> String {
    let summary = &plan.summary;
    match plan.mode {
        PlanMode::Apply if summary.is_empty() => "No changes. Every step is applied and up to date.".to_string(),
        PlanMode::Apply => format!("Plan: {} to apply, {} to change, {} gates, {} manual.", summary.to_apply, summary.to_change, summary.gates, summary.manual),
        PlanMode::Undo if summary.to_undo == 0 => format!("No changes. Nothing to undo ({} left in place).", summary.left_in_place),
        PlanMode::Undo => format!("Plan: {} to undo, {} left in place.", summary.to_undo, summary.left_in_place),
    }
}

fn entry_text(entry: &PlanEntry, mode: PlanMode, style: Style) -> String {
    let mut lines = vec![format!("  {} {} \"{}\"", style.symbol(entry.change), entry.kind.keyword(), entry.step)];
    let mut field = |name: &str, value: &str| push_field(&mut lines, name, value);

    if let Some(description) = &entry.description {
        field("description", description);
    }
    if let Some(reason) = &entry.reason {
        field("reason", reason);
    }
    if !entry.needs.is_empty() {
        field("needs", &entry.needs.join(", "));
    }
    if mode == PlanMode::Undo {
        undo_fields(entry, &mut lines);
        return lines.join("\n") + "\n";
    }

    if let Some(action) = &entry.action {
        push_call(&mut lines, "action", action);
    }
    let check_label = if entry.kind == StepKind::Gate { "pass if" } else { "skip if" };
    for check in &entry.checks {
        push_call(&mut lines, check_label, check);
    }
    for evidence in &entry.on_fail {
        push_call(&mut lines, "on fail", evidence);
    }
    if let Some(instructions) = &entry.instructions {
        push_field(&mut lines, "instructions", instructions.trim_end());
    }
    if !entry.captures.is_empty() {
        push_field(&mut lines, "captures", &format!("{} (known after apply)", entry.captures.join(", ")));
    }
    if entry.kind == StepKind::Step {
        undo_fields(entry, &mut lines);
    }
    lines.join("\n") + "\n"
}

fn undo_fields(entry: &PlanEntry, lines: &mut Vec<String>) {
    let undo = &entry.undo;
    match undo.kind {
        "automatic" => push_field(lines, "undo", "automatic: restore the recorded previous state"),
        "no_effect" => push_field(lines, "undo", "nothing to undo"),
        "missing" => push_field(lines, "undo", "no undo: left in place"),
        "left_in_place" => push_field(lines, "undo", &format!("no undo: left in place ({})", undo.reason.as_deref().unwrap_or(""))),
        _ => {
            if let Some(action) = &undo.action {
                push_call(lines, "undo", action);
            }
            for guard in &undo.only_if {
                push_call(lines, "undo only if", guard);
            }
            if undo.order == crate::model::UndoOrder::AfterNeeds {
                push_field(lines, "undo order", &format!("after the undo of: {}", entry.needs.join(", ")));
            }
        }
    }
    if !entry.undo_after.is_empty() {
        push_field(lines, "undo after", &entry.undo_after.join(", "));
    }
}

const INDENT: usize = 6;
const LABEL_WIDTH: usize = 13;

fn push_field(lines: &mut Vec<String>, name: &str, value: &str) {
    let prefix = format!("{:INDENT$}{:<LABEL_WIDTH$} ", "", format!("{name}:"));
    let continuation = " ".repeat(prefix.len());
    for (index, line) in value.lines().enumerate() {
        lines.push(if index == 0 { format!("{prefix}{line}") } else { format!("{continuation}{line}") }.trim_end().to_string());
    }
    if value.is_empty() {
        lines.push(prefix.trim_end().to_string());
    }
}

fn push_call(lines: &mut Vec<String>, label: &str, call: &CallView) {
    push_field(lines, label, call.kind);
    let nested_indent = " ".repeat(INDENT + LABEL_WIDTH + 3);
    for (name, value) in &call.args {
        let mut value_lines = value.lines();
        let first = value_lines.next().unwrap_or("");
        lines.push(format!("{nested_indent}{name} = {first}").trim_end().to_string());
        for line in value_lines {
            lines.push(format!("{nested_indent}    {line}").trim_end().to_string());
        }
    }
    if let Some(nested) = &call.nested {
        lines.push(format!("{nested_indent}until {}", nested.kind));
        for (name, value) in &nested.args {
            lines.push(format!("{nested_indent}    {name} = {}", value.lines().collect::<Vec<_>>().join(" ")).trim_end().to_string());
        }
    }
}

/// Renders a plan as pretty-printed JSON.
pub fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plans serialize") + "\n"
}
