//! Interpolation: turns templates and value expressions into text or JSON values.
//!
//! Quoting is decided by where a value lands, never by the value: in SQL an interpolated
//! value becomes a string literal (or an identifier with `ident(...)`), in a shell script one
//! shell word, so a value containing quotes, `;` or `$(...)` can't change the statement.
//! Invariant: in [`Mode::Display`] and [`Mode::Hash`] no secret value is ever produced.

use std::collections::{BTreeMap, BTreeSet};

use crate::schema::ArgType;
use crate::syntax::{Expr, ExprKind, Interpolation, Part, Template};

/// The purpose of the rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// For the plan and messages: secrets show as `(sensitive)`, unknown captures as `(known after apply)`.
    Display,
    /// For the definition hash: secrets and captures show as their reference.
    Hash,
    /// For execution: every value is real; an unknown value is an error.
    Execute,
}

/// Placeholder shown in place of a secret value.
pub const SENSITIVE: &str = "(sensitive)";
/// Placeholder shown for a capture read at apply time.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// The values references resolve to.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Secret values known so far (generated ones come from the state, others are read at apply time).
    pub secrets: BTreeMap<String, String>,
    pub captures: BTreeMap<String, String>,
    pub sensitive_captures: BTreeSet<String>,
    pub runbook_dir: String,
    pub runbook_name: String,
}

/// The reason a value could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("`{0}` has no value yet")]
    Unknown(String),
    #[error("value of `{0}` contains a NUL byte, which can't be passed to SQL or a shell")]
    NulByte(String),
}

impl Scope {
    /// Builds the scope of a runbook from variable values and the state's secrets and captures.
    pub fn new(runbook: &crate::model::Runbook, variables: BTreeMap<String, serde_json::Value>, state: &crate::state::records::State) -> Scope {
        let sensitive_captures = runbook.steps.iter().flat_map(|step| &step.captures).filter(|capture| capture.sensitive).map(|capture| capture.name.clone()).collect();
        Scope {
            variables,
            secrets: state.secrets.clone(),
            captures: state.captures(),
            sensitive_captures,
            runbook_dir: runbook.directory.display().to_string(),
            runbook_name: runbook.name.clone(),
        }
    }

    /// Renders a template for the given argument type.
    pub fn render(&self, template: &Template, context: ArgType, mode: Mode) -> Result<String, RenderError> {
        let mut text = String::new();
        for part in &template.parts {
            match part {
                Part::Text(piece) => text.push_str(piece),
                Part::Interpolation(interpolation) => text.push_str(&self.render_interpolation(interpolation, context, mode)?),
            }
        }
        Ok(text)
    }

    /// Renders an expression that must be a string (a template).
    pub fn render_text(&self, expr: &Expr, context: ArgType, mode: Mode) -> Result<String, RenderError> {
        match &expr.kind {
            ExprKind::Template(template) => self.render(template, context, mode),
            ExprKind::Number(number) => Ok(number.to_string()),
            ExprKind::Bool(value) => Ok(value.to_string()),
            ExprKind::Reference(_) | ExprKind::Null | ExprKind::List(_) | ExprKind::Map(_) => {
                let value = self.render_value(expr, mode)?;
                Ok(value_text(&value))
            }
        }
    }

    /// Renders any expression as a JSON value; strings are rendered as text (no quoting).
    pub fn render_value(&self, expr: &Expr, mode: Mode) -> Result<serde_json::Value, RenderError> {
        use serde_json::Value;
        Ok(match &expr.kind {
            ExprKind::Template(template) => Value::String(self.render(template, ArgType::Text, mode)?),
            ExprKind::Number(number) => Value::Number(number.clone()),
            ExprKind::Bool(value) => Value::Bool(*value),
            ExprKind::Null => Value::Null,
            ExprKind::List(items) => Value::Array(items.iter().map(|item| self.render_value(item, mode)).collect::<Result<_, _>>()?),
            ExprKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    map.insert(self.render_key(key, mode)?, self.render_value(value, mode)?);
                }
                Value::Object(map)
            }
            ExprKind::Reference(reference) => {
                let dotted = reference.dotted();
                match self.lookup(&dotted, mode)? {
                    Lookup::Variable(value) => value,
                    Lookup::Text(text) => Value::String(text),
                    Lookup::Placeholder(text) => Value::String(text),
                }
            }
        })
    }

    /// Renders a map key: its text, with its interpolations rendered as plain text.
    pub fn render_key(&self, key: &crate::syntax::MapKey, mode: Mode) -> Result<String, RenderError> {
        match &key.template {
            Some(template) => self.render(template, ArgType::Text, mode),
            None => Ok(key.name.clone()),
        }
    }

    /// Renders a list of strings.
    pub fn render_list(&self, expr: &Expr, mode: Mode) -> Result<Vec<String>, RenderError> {
        match &expr.kind {
            ExprKind::List(items) => items.iter().map(|item| self.render_text(item, ArgType::Text, mode)).collect(),
            _ => Ok(vec![self.render_text(expr, ArgType::Text, mode)?]),
        }
    }

    /// Renders a map of strings.
    pub fn render_map(&self, expr: &Expr, mode: Mode) -> Result<Vec<(String, String)>, RenderError> {
        match &expr.kind {
            ExprKind::Map(entries) => entries.iter().map(|(key, value)| Ok((self.render_key(key, mode)?, self.render_text(value, ArgType::Text, mode)?))).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn render_interpolation(&self, interpolation: &Interpolation, context: ArgType, mode: Mode) -> Result<String, RenderError> {
        let dotted = interpolation.reference.dotted();
        let value = match self.lookup(&dotted, mode)? {
            Lookup::Placeholder(text) => return Ok(text),
            Lookup::Variable(value) => value_text(&value),
            Lookup::Text(text) => text,
        };
        let function = interpolation.function.as_ref().map(|function| function.name.as_str());
        quote(&value, function, context).map_err(|_| RenderError::NulByte(dotted))
    }

    fn lookup(&self, dotted: &str, mode: Mode) -> Result<Lookup, RenderError> {
        let (namespace, name) = dotted.split_once('.').unwrap_or((dotted, ""));
        match namespace {
            "var" => self.variables.get(name).cloned().map(Lookup::Variable).ok_or_else(|| RenderError::Unknown(dotted.to_string())),
            "secret" => match mode {
                Mode::Display => Ok(Lookup::Placeholder(SENSITIVE.to_string())),
                Mode::Hash => Ok(Lookup::Placeholder(format!("${{{dotted}}}"))),
                Mode::Execute => self.secrets.get(name).cloned().map(Lookup::Text).ok_or_else(|| RenderError::Unknown(dotted.to_string())),
            },
            "capture" => match (mode, self.captures.get(name)) {
                (Mode::Hash, _) => Ok(Lookup::Placeholder(format!("${{{dotted}}}"))),
                (Mode::Display, Some(_)) if self.sensitive_captures.contains(name) => Ok(Lookup::Placeholder(SENSITIVE.to_string())),
                (Mode::Display, None) => Ok(Lookup::Placeholder(KNOWN_AFTER_APPLY.to_string())),
                (_, Some(value)) => Ok(Lookup::Text(value.clone())),
                (Mode::Execute, None) => Err(RenderError::Unknown(dotted.to_string())),
            },
            "runbook" if name == "dir" => Ok(Lookup::Text(self.runbook_dir.clone())),
            "runbook" => Ok(Lookup::Text(self.runbook_name.clone())),
            _ => Err(RenderError::Unknown(dotted.to_string())),
        }
    }

    /// Returns every secret value in this scope, for redaction.
    pub fn secret_values(&self) -> Vec<String> {
        let captured = self.captures.iter().filter(|(name, _)| self.sensitive_captures.contains(*name)).map(|(_, value)| value.clone());
        self.secrets.values().cloned().chain(captured).collect()
    }
}

enum Lookup {
    Variable(serde_json::Value),
    Text(String),
    Placeholder(String),
}

/// Returns the text form of a variable's value: strings as they are, other values as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Quotes a value for its context, or with an explicit function.
///
/// In SQL and shell scripts the context's quoting still applies after `regex`, `yaml`, `url`
/// and (in SQL) `shell`, so no function lets a value change the statement: only `ident` and
/// `literal` replace the SQL literal, and `shell` the shell word.
pub fn quote(value: &str, function: Option<&str>, context: ArgType) -> Result<String, RenderError> {
    let needs_no_nul = matches!(context, ArgType::Sql | ArgType::Shell) || matches!(function, Some("ident" | "literal" | "shell"));
    if needs_no_nul && value.contains('\0') {
        return Err(RenderError::NulByte(String::new()));
    }

    let text = match function {
        Some("ident") => return Ok(quote_sql_identifier(value)),
        Some("literal") => return Ok(quote_sql_literal(value)),
        Some("shell") if context == ArgType::Shell => return Ok(quote_shell_word(value)),
        Some("shell") => quote_shell_word(value),
        Some("regex") => regex_escape(value),
        Some("yaml") => quote_yaml(value),
        Some("url") => percent_encode(value),
        _ => value.to_string(),
    };
    Ok(match context {
        ArgType::Sql => quote_sql_literal(&text),
        ArgType::Shell => quote_shell_word(&text),
        _ => text,
    })
}

/// Quotes a SQL string literal like libpq's PQescapeLiteral: `'` doubled, `E'...'` when a backslash is present.
pub fn quote_sql_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// Quotes a SQL identifier: wrapped in `"` with `"` doubled.
pub fn quote_sql_identifier(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// Quotes a value as exactly one POSIX shell word.
pub fn quote_shell_word(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b)) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn regex_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

fn quote_yaml(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

fn percent_encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Replaces every secret value in a text with `(sensitive)`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Creates a redactor for these secret values; values shorter than 4 characters are ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|secret| secret.len() >= 4).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// Adds a secret value learned later (a generated secret or a sensitive capture).
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|known| known == secret) {
            self.secrets.push(secret.to_string());
            self.secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        }
    }

    /// Returns the text with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut output = text.to_string();
        for secret in &self.secrets {
            if output.contains(secret.as_str()) {
                output = output.replace(secret.as_str(), SENSITIVE);
            }
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literal_quoting() {
        let cases = [
            ("plain", "'plain'"),
            ("it's", "'it''s'"),
            ("a\\b", "E'a\\\\b'"),
            ("'; DROP TABLE users; --", "'''; DROP TABLE users; --'"),
        ];
        for (value, expected) in cases {
            assert_eq!(quote_sql_literal(value), expected, "literal for {value:?}");
        }
    }

    #[test]
    fn sql_identifier_quoting() {
        assert_eq!(quote_sql_identifier("mautrix_signal"), "\"mautrix_signal\"");
        assert_eq!(quote_sql_identifier("a\"b"), "\"a\"\"b\"", "embedded double quote is doubled");
    }

    #[test]
    fn shell_word_quoting() {
        let cases = [
            ("simple", "simple"),
            ("/opt/matrix", "/opt/matrix"),
            ("", "''"),
            ("two words", "'two words'"),
            ("$(touch pwned)", "'$(touch pwned)'"),
            ("it's", "'it'\\''s'"),
        ];
        for (value, expected) in cases {
            assert_eq!(quote_shell_word(value), expected, "shell word for {value:?}");
        }
    }

    #[test]
    fn functions_keep_context_quoting() {
        let cases = [
            ("a.b", Some("regex"), ArgType::Text, r"a\.b"),
            ("a.b", Some("regex"), ArgType::Shell, r"'a\.b'"),
            ("x; rm -rf /", Some("regex"), ArgType::Shell, r"'x; rm \-rf /'"),
            ("a.b", Some("regex"), ArgType::Sql, r"E'a\\.b'"),
            ("$(id)", Some("yaml"), ArgType::Shell, r#"'"$(id)"'"#),
            (r#"x"; DROP"#, Some("yaml"), ArgType::Sql, r#"E'"x\\"; DROP"'"#),
            ("a b", Some("url"), ArgType::Shell, "a%20b"),
            ("it's", Some("shell"), ArgType::Shell, r"'it'\''s'"),
            ("it's", Some("shell"), ArgType::Sql, r"E'''it''\\''''s'''"),
            ("it's", Some("shell"), ArgType::Text, r"'it'\''s'"),
            ("name", Some("ident"), ArgType::Sql, r#""name""#),
            ("it's", None, ArgType::Text, "it's"),
        ];
        for (value, function, context, expected) in cases {
            assert_eq!(quote(value, function, context).expect("no NUL byte"), expected, "{function:?}({value:?}) in {context:?}");
        }
    }

    #[test]
    fn regex_escape_domain() {
        assert_eq!(regex_escape("echo6.co"), "echo6\\.co");
    }

    #[test]
    fn redactor_replaces_longest_first() {
        let redactor = Redactor::new(["secretvalue".to_string(), "secretvalue-longer".to_string()]);
        assert_eq!(redactor.redact("a secretvalue-longer b"), "a (sensitive) b");
    }
}
