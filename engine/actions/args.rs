//! Typed access to a call's arguments, rendered for execution.
//!
//! Validation guaranteed the types, so a mismatch here is a bug; it still returns an error
//! rather than panicking. Rendering uses [`Mode::Execute`]: secrets are real values here.

use std::time::Duration;

use crate::interpolate::{Mode, Scope};
use crate::model::Call;
use crate::schema::ArgType;
use crate::syntax::ExprKind;

/// A call's arguments with the scope to render them.
pub struct Args<'a> {
    pub call: &'a Call,
    pub scope: &'a Scope,
}

impl<'a> Args<'a> {
    /// Wraps a call and a scope.
    pub fn new(call: &'a Call, scope: &'a Scope) -> Args<'a> {
        Args { call, scope }
    }

    fn render(&self, name: &str, context: ArgType) -> Result<Option<String>, String> {
        match self.call.arg(name) {
            None => Ok(None),
            Some(expr) => self.scope.render_text(expr, context, Mode::Execute).map(Some).map_err(|error| format!("argument `{name}`: {error}")),
        }
    }

    /// Returns a required text argument.
    pub fn text(&self, name: &str) -> Result<String, String> {
        self.text_opt(name)?.ok_or_else(|| format!("missing argument `{name}`"))
    }

    /// Returns an optional text argument.
    pub fn text_opt(&self, name: &str) -> Result<Option<String>, String> {
        self.render(name, ArgType::Text)
    }

    /// Returns a SQL argument, with interpolated values quoted as literals or identifiers.
    pub fn sql(&self, name: &str) -> Result<String, String> {
        self.render(name, ArgType::Sql)?.ok_or_else(|| format!("missing argument `{name}`"))
    }

    /// Returns a shell argument, with interpolated values quoted as single words.
    pub fn shell(&self, name: &str) -> Result<String, String> {
        self.render(name, ArgType::Shell)?.ok_or_else(|| format!("missing argument `{name}`"))
    }

    /// Returns an optional whole number.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.call.arg(name).map(|expr| &expr.kind) {
            Some(ExprKind::Number(number)) => number.as_i64(),
            _ => None,
        }
    }

    /// Returns an optional boolean.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.call.arg(name).map(|expr| &expr.kind) {
            Some(ExprKind::Bool(value)) => Some(*value),
            _ => None,
        }
    }

    /// Returns a whole number or a list of whole numbers, empty when absent.
    pub fn integers(&self, name: &str) -> Vec<i64> {
        match self.call.arg(name).map(|expr| &expr.kind) {
            Some(ExprKind::Number(number)) => number.as_i64().into_iter().collect(),
            Some(ExprKind::List(items)) => items.iter().filter_map(|item| if let ExprKind::Number(number) = &item.kind { number.as_i64() } else { None }).collect(),
            _ => Vec::new(),
        }
    }

    /// Returns an optional duration such as "30s".
    pub fn duration(&self, name: &str) -> Option<Duration> {
        let text = self.text_opt(name).ok().flatten()?;
        humantime::parse_duration(&text).ok()
    }

    /// Returns an optional octal file mode.
    pub fn mode(&self, name: &str) -> Option<u32> {
        let text = self.text_opt(name).ok().flatten()?;
        u32::from_str_radix(&text, 8).ok()
    }

    /// Returns a list of text values, empty when absent.
    pub fn list(&self, name: &str) -> Result<Vec<String>, String> {
        match self.call.arg(name) {
            None => Ok(Vec::new()),
            Some(expr) => self.scope.render_list(expr, Mode::Execute).map_err(|error| format!("argument `{name}`: {error}")),
        }
    }

    /// Returns a map of text values, empty when absent.
    pub fn map(&self, name: &str) -> Result<Vec<(String, String)>, String> {
        match self.call.arg(name) {
            None => Ok(Vec::new()),
            Some(expr) => self.scope.render_map(expr, Mode::Execute).map_err(|error| format!("argument `{name}`: {error}")),
        }
    }

    /// Any value, rendered to JSON; `None` when absent.
    pub fn value(&self, name: &str) -> Result<Option<serde_json::Value>, String> {
        match self.call.arg(name) {
            None => Ok(None),
            Some(expr) => self.scope.render_value(expr, Mode::Execute).map(Some).map_err(|error| format!("argument `{name}`: {error}")),
        }
    }

    /// Returns the entries of a map argument as (key, value) pairs in source order.
    pub fn value_entries(&self, name: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
        let Some(expr) = self.call.arg(name) else { return Ok(Vec::new()) };
        let ExprKind::Map(entries) = &expr.kind else { return Err(format!("argument `{name}` is not a map")) };
        entries
            .iter()
            .map(|(key, value)| Ok((self.scope.render_key(key, Mode::Execute).map_err(|error| format!("argument `{name}`: {error}"))?, self.scope.render_value(value, Mode::Execute).map_err(|error| format!("argument `{name}`: {error}"))?)))
            .collect()
    }

    /// The connection name of a connection argument (`postgres.admin` → `admin`).
    pub fn connection(&self, name: &str) -> Option<String> {
        match self.call.arg(name).map(|expr| &expr.kind) {
            Some(ExprKind::Reference(reference)) => reference.segments.last().map(|segment| segment.name.clone()),
            _ => None,
        }
    }
}
