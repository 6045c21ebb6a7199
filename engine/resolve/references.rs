//! Checks values against argument types, and the references and functions inside them.

use crate::schema::ArgType;
use crate::syntax::{Expr, ExprKind, Interpolation, Reference, Template};

use super::{describe_expr, Resolver};

/// The functions an interpolation may apply, with where each is allowed.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("ident", "SQL only: quote as an identifier (\"name\")"),
    ("literal", "SQL only: quote as a string literal ('value'), the default in SQL"),
    ("shell", "quote as one shell word, the default in shell scripts"),
    ("raw", "insert as it is; not allowed in SQL or shell scripts"),
    ("regex", "escape regular-expression metacharacters"),
    ("yaml", "quote as a YAML scalar"),
    ("url", "percent-encode for a URL component"),
];

/// Returns the closest candidate to `name` when it is close enough to be a likely typo.
///
/// A candidate is close when its Jaro-Winkler similarity exceeds 0.8, or when it is one edit
/// away (none for names of 1 or 2 characters, two for names longer than 4), counting a swap of
/// neighbours as one edit.
/// The edit distance catches typos in short names such as `tow` for `two`, which Jaro's
/// matching window misses. Among close candidates, the fewest edits win, then the highest
/// similarity.
pub fn did_you_mean<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let max_edits = match name.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    };
    candidates
        .into_iter()
        .map(|candidate| (strsim::osa_distance(name, candidate), strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(edits, similarity, _)| *similarity > 0.8 || *edits <= max_edits)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, candidate)| candidate)
}

impl Resolver<'_> {
    /// Checks an argument's value against its type, and every reference inside it.
    pub fn check_value(&mut self, expr: &Expr, expected: ArgType, arg: &str) {
        if !self.has_type(expr, expected) {
            self.error(expr.span.clone(), format!("invalid value for `{arg}`: expected {}", expected.describe()), format!("found {}", describe_expr(expr)));
            return;
        }
        self.check_references(expr, expected);
    }

    fn has_type(&mut self, expr: &Expr, expected: ArgType) -> bool {
        let is_integer = |expr: &Expr| matches!(&expr.kind, ExprKind::Number(number) if number.as_i64().is_some());
        // A bare reference (`var.x`) is a string wherever a string is expected, also in lists and maps.
        let is_string = |expr: &Expr| matches!(&expr.kind, ExprKind::Template(_) | ExprKind::Reference(_));
        match (&expr.kind, expected) {
            (ExprKind::Template(_), ArgType::Text | ArgType::Sql | ArgType::Shell) => true,
            (ExprKind::Template(template), ArgType::Duration) => template.as_literal().is_some_and(|text| humantime::parse_duration(&text).is_ok()),
            (ExprKind::Template(template), ArgType::Mode) => template.as_literal().is_some_and(|text| u32::from_str_radix(&text, 8).is_ok_and(|mode| mode <= 0o7777)),
            (_, ArgType::Integer) => is_integer(expr),
            (ExprKind::Bool(_), ArgType::Bool) => true,
            (ExprKind::List(items), ArgType::TextList) => items.iter().all(is_string),
            (ExprKind::List(items), ArgType::IntegerList) => items.iter().all(is_integer),
            (ExprKind::Number(_), ArgType::IntegerList) => is_integer(expr),
            (ExprKind::Map(entries), ArgType::TextMap) => entries.iter().all(|(_, value)| is_string(value)),
            (ExprKind::List(_), ArgType::ValueList) => true,
            (ExprKind::Map(_), ArgType::ValueMap) => true,
            (ExprKind::Reference(_), ArgType::PostgresConnection | ArgType::DockerConnection) => true,
            (ExprKind::Reference(_), ArgType::Value | ArgType::Text) => true,
            (_, ArgType::Value) => true,
            _ => false,
        }
    }

    fn check_references(&mut self, expr: &Expr, context: ArgType) {
        match &expr.kind {
            ExprKind::Template(template) => self.check_template(template, context),
            ExprKind::List(items) => {
                let item_context = if context == ArgType::IntegerList { ArgType::Integer } else { ArgType::Text };
                for item in items {
                    self.check_references(item, item_context);
                }
            }
            ExprKind::Map(entries) => {
                for (key, value) in entries {
                    if let Some(template) = &key.template {
                        self.check_template(template, ArgType::Text);
                    }
                    self.check_references(value, ArgType::Text);
                }
            }
            ExprKind::Reference(reference) => match context {
                ArgType::PostgresConnection => self.check_connection(reference, "postgres"),
                ArgType::DockerConnection => self.check_connection(reference, "docker"),
                _ => self.check_reference(reference),
            },
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Null => {}
        }
    }

    /// Checks the references and functions of a template used in `context`.
    pub fn check_template(&mut self, template: &Template, context: ArgType) {
        self.check_quoting(template, context);
        for interpolation in template.interpolations() {
            self.check_function(interpolation, context);
            self.check_reference(&interpolation.reference);
        }
    }

    fn check_function(&mut self, interpolation: &Interpolation, context: ArgType) {
        let Some(function) = &interpolation.function else { return };
        let name = function.name.as_str();
        if !FUNCTIONS.iter().any(|(known, _)| *known == name) {
            let known: Vec<&str> = FUNCTIONS.iter().map(|(known, _)| *known).collect();
            let help = match did_you_mean(name, known.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("functions: {}", known.join(", ")),
            };
            self.error(function.span.clone(), format!("unknown function `{name}`"), "unknown function").help = Some(help);
            return;
        }

        let sql_only = matches!(name, "ident" | "literal");
        if sql_only && context != ArgType::Sql {
            self.error(function.span.clone(), format!("`{name}()` quotes for SQL and is only allowed in SQL"), "not a SQL value");
        }
        if name == "raw" && matches!(context, ArgType::Sql | ArgType::Shell) {
            self.error(function.span.clone(), "`raw()` is not allowed in SQL or shell scripts", "would let a value change the statement")
                .help = Some("values are quoted for you: as a literal in SQL (or `ident(...)` for a name), as one word in shell".into());
        }
    }

    fn check_connection(&mut self, reference: &Reference, keyword: &str) {
        let names = if keyword == "postgres" { &self.declared.postgres } else { &self.declared.docker };
        let segments: Vec<&str> = reference.segments.iter().map(|segment| segment.name.as_str()).collect();
        match segments.as_slice() {
            [prefix, name] if *prefix == keyword && names.contains(name) => {}
            [prefix, name] if *prefix == keyword => {
                let suggestion = did_you_mean(name, names.iter().map(String::as_str)).map(str::to_string);
                let problem = self.error(reference.span.clone(), format!("undefined {keyword} connection `{name}`"), "not declared");
                problem.help = Some(match suggestion {
                    Some(suggestion) => format!("did you mean `{keyword}.{suggestion}`?"),
                    None => format!("declare it with `{keyword} \"{name}\" {{ ... }}`"),
                });
            }
            _ => {
                self.error(reference.span.clone(), format!("expected a {keyword} connection such as `{keyword}.name`"), "not a connection");
            }
        }
    }

    /// Checks a `var.`, `secret.`, `capture.` or `runbook.` reference.
    pub fn check_reference(&mut self, reference: &Reference) {
        let segments: Vec<&str> = reference.segments.iter().map(|segment| segment.name.as_str()).collect();
        let (namespace, what, names) = match segments.as_slice() {
            ["var", _] => ("var", "variable", &self.declared.variables),
            ["secret", _] => ("secret", "secret", &self.declared.secrets),
            ["capture", _] => ("capture", "capture", &self.declared.captures),
            ["runbook", "dir" | "name"] => return,
            _ => {
                self.error(reference.span.clone(), format!("invalid reference `{}`", reference.dotted()), "unknown name")
                    .help = Some("references are var.NAME, secret.NAME, capture.NAME, runbook.dir or runbook.name".into());
                return;
            }
        };

        let name = segments[1];
        if names.contains(name) {
            return;
        }
        let suggestion = did_you_mean(name, names.iter().map(String::as_str)).map(str::to_string);
        let problem = self.error(reference.span.clone(), format!("undefined {what} `{namespace}.{name}`"), format!("no {what} named `{name}`"));
        problem.help = Some(match suggestion {
            Some(suggestion) => format!("did you mean `{namespace}.{suggestion}`?"),
            None => format!("declare it with `{what} \"{name}\" {{ ... }}`"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn did_you_mean_table() {
        let steps = ["one", "two", "create_role", "create_database", "grant"];
        // (typed name, expected suggestion)
        let table: &[(&str, Option<&str>)] = &[
            ("tow", Some("two")),
            ("on", Some("one")),
            ("ab", None),
            ("ones", Some("one")),
            ("create_rol", Some("create_role")),
            ("craete_role", Some("create_role")),
            ("create_databse", Some("create_database")),
            ("grnat", Some("grant")),
            ("x", None),
            ("deploy", None),
            ("", None),
        ];
        for (typed, expected) in table {
            assert_eq!(did_you_mean(typed, steps.iter().copied()), *expected, "suggestion for `{typed}`");
        }
    }
}
