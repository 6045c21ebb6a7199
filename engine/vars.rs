//! Variable values: defaults, overridden by `RB6_VAR_name`, then `--var-file`, then `--var`.
//!
//! The precedence follows Terraform's: later sources win. A value given for an undeclared
//! variable with `--var` or in a file is an error (an `RB6_VAR_` one is ignored), as is a
//! variable left without any value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Problem, SourceFile};
use crate::model::Runbook;
use crate::syntax::ExprKind;

/// The sources of variable values besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct VariableInputs {
    /// `--var name=value`, in command-line order.
    pub assignments: Vec<(String, String)>,
    /// `--var-file FILE`, in command-line order.
    pub files: Vec<PathBuf>,
    /// `RB6_VAR_name=value` from the environment.
    pub environment: Vec<(String, String)>,
}

/// The reason variable values could not be determined.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VariableError {
    #[error("unknown variable `{name}` (from {origin})")]
    #[diagnostic(help("{help}"))]
    Unknown { name: String, origin: String, help: String },
    #[error("variable `{name}` has no value")]
    #[diagnostic(help("give it a default, or pass --var {name}=VALUE, --var-file FILE or RB6_VAR_{name}"))]
    Missing { name: String },
    #[error("invalid --var `{0}`: expected NAME=VALUE")]
    InvalidAssignment(String),
    #[error("can't read variable file {path}: {message}")]
    UnreadableFile { path: String, message: String },
    #[error("invalid variable file")]
    #[diagnostic(transparent)]
    InvalidFile(#[from] Box<Problem>),
}

impl VariableInputs {
    /// Collects `RB6_VAR_*` variables from this process's environment.
    pub fn with_process_environment(mut self) -> VariableInputs {
        self.environment = std::env::vars().filter_map(|(key, value)| key.strip_prefix("RB6_VAR_").map(|name| (name.to_string(), value))).collect();
        self
    }

    /// Parses `NAME=VALUE` command-line assignments.
    pub fn parse_assignments(raw: &[String]) -> Result<Vec<(String, String)>, VariableError> {
        raw.iter()
            .map(|assignment| match assignment.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
                _ => Err(VariableError::InvalidAssignment(assignment.clone())),
            })
            .collect()
    }
}

/// Computes every variable's value.
pub fn resolve_values(runbook: &Runbook, inputs: &VariableInputs) -> Result<BTreeMap<String, serde_json::Value>, VariableError> {
    let defaults = runbook.variables.iter().map(|variable| (variable.name.clone(), variable.default.clone())).collect();
    resolve_values_over(runbook, defaults, inputs)
}

/// Computes every variable's value, starting from `base` instead of the defaults (a saved plan's values).
pub fn resolve_values_over(runbook: &Runbook, base: BTreeMap<String, Option<serde_json::Value>>, inputs: &VariableInputs) -> Result<BTreeMap<String, serde_json::Value>, VariableError> {
    let mut values = base;

    for (name, value) in &inputs.environment {
        // Like Terraform with TF_VAR_, an environment variable for an undeclared variable is
        // ignored: the shell may export values meant for other runbooks.
        if !values.contains_key(name) {
            tracing::debug!(variable = %name, "ignoring RB6_VAR_ for a variable this runbook does not declare");
            continue;
        }
        set_value(runbook, &mut values, name, value.clone().into(), &format!("environment variable RB6_VAR_{name}"))?;
    }
    for path in &inputs.files {
        for (name, value) in read_variable_file(path)? {
            set_value(runbook, &mut values, &name, value, &path.display().to_string())?;
        }
    }
    for (name, value) in &inputs.assignments {
        set_value(runbook, &mut values, name, value.clone().into(), "--var")?;
    }

    values.into_iter().map(|(name, value)| value.map(|value| (name.clone(), value)).ok_or(VariableError::Missing { name })).collect()
}

fn set_value(runbook: &Runbook, values: &mut BTreeMap<String, Option<serde_json::Value>>, name: &str, value: serde_json::Value, origin: &str) -> Result<(), VariableError> {
    let Some(slot) = values.get_mut(name) else {
        let known = runbook.variables.iter().map(|variable| variable.name.as_str());
        let help = match crate::resolve::did_you_mean(name, known) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => "declare it in the runbook with `variable \"NAME\" { ... }`".to_string(),
        };
        return Err(VariableError::Unknown { name: name.to_string(), origin: origin.to_string(), help });
    };
    *slot = Some(convert_like_default(value, slot.as_ref()));
    Ok(())
}

/// Converts a text value to the default's type when it parses as one (numbers, booleans).
fn convert_like_default(value: serde_json::Value, default: Option<&serde_json::Value>) -> serde_json::Value {
    let serde_json::Value::String(text) = &value else { return value };
    match default {
        Some(serde_json::Value::Number(_)) => text.parse::<i64>().map(Into::into).or_else(|_| text.parse::<f64>().map(Into::into)).unwrap_or(value),
        Some(serde_json::Value::Bool(_)) => text.parse::<bool>().map(Into::into).unwrap_or(value),
        _ => value,
    }
}

/// Reads a variable file: `name = value` lines in the runbook syntax, like a Terraform tfvars file.
fn read_variable_file(path: &Path) -> Result<Vec<(String, serde_json::Value)>, VariableError> {
    let text = std::fs::read_to_string(path).map_err(|error| VariableError::UnreadableFile { path: path.display().to_string(), message: error.to_string() })?;
    let source = SourceFile::new(path.display().to_string(), text);
    let body = crate::parse::parse(&source).map_err(Box::new)?;

    if let Some(block) = body.blocks.first() {
        let problem = Problem::error(&source, block.kind.span.clone(), "a variable file contains only `name = value` lines", "unexpected block");
        return Err(Box::new(problem).into());
    }
    body.attributes.iter().map(|attribute| Ok((attribute.name.name.clone(), literal(&source, &attribute.value)?))).collect()
}

fn literal(source: &SourceFile, expr: &crate::syntax::Expr) -> Result<serde_json::Value, VariableError> {
    Ok(match &expr.kind {
        ExprKind::Template(template) => match template.as_literal() {
            Some(text) => text.into(),
            None => return Err(Box::new(Problem::error(source, expr.span.clone(), "a variable value can't contain an interpolation", "use a fixed value")).into()),
        },
        ExprKind::Number(number) => serde_json::Value::Number(number.clone()),
        ExprKind::Bool(value) => (*value).into(),
        ExprKind::Null => serde_json::Value::Null,
        ExprKind::List(items) => serde_json::Value::Array(items.iter().map(|item| literal(source, item)).collect::<Result<_, _>>()?),
        ExprKind::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (key, value) in entries {
                map.insert(key.name.clone(), literal(source, value)?);
            }
            serde_json::Value::Object(map)
        }
        ExprKind::Reference(_) => return Err(Box::new(Problem::error(source, expr.span.clone(), "a variable value can't be a reference", "use a fixed value")).into()),
    })
}
