//! Resolution and validation: syntax tree → typed [`Runbook`](crate::model::Runbook).
//!
//! Collects every declared name first, then checks each block against the language: the
//! header, variables, secrets, connections (this file), steps (`steps`), calls against their
//! schemas (`calls`) and the references inside values (`references`). Every problem found is
//! collected, so one run reports them all, in source order. Dependency cycles are found later
//! by `graph`, which needs the resolved steps.

mod calls;
mod quoting;
mod references;
mod steps;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::diagnostic::{Diagnostics, Problem, SourceFile};
use crate::model::{Connection, ConnectionKind, Runbook, Secret, SecretSource, Variable};
use crate::syntax::{Attribute, Block, Body, Expr, ExprKind, Span, Template};

pub use references::{did_you_mean, FUNCTIONS};

/// Names declared anywhere in the runbook, for checking references in any order.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub variables: Names,
    pub secrets: Names,
    pub postgres: Names,
    pub docker: Names,
    pub steps: Names,
    pub captures: Names,
}

/// Declared names in source order, with a set for lookups in constant time.
#[derive(Debug, Default)]
pub(crate) struct Names {
    order: Vec<String>,
    set: HashSet<String>,
}

impl Names {
    /// Adds a name (duplicates are kept in order; `resolve` reports them).
    pub fn push(&mut self, name: String) {
        self.set.insert(name.clone());
        self.order.push(name);
    }

    /// True when the name was declared.
    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    /// The names in source order.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.order.iter()
    }
}

/// Resolution state: the source, the declared names and the problems found so far.
pub(crate) struct Resolver<'a> {
    pub source: &'a SourceFile,
    pub declared: Declared,
    pub problems: Diagnostics,
}

/// Resolves a parsed runbook. Returns the runbook with its warnings, or every problem found.
///
/// Takes the syntax tree by value and frees each block once it is resolved, so the tree and
/// the model it becomes are not both held in full.
pub fn resolve(source: &SourceFile, body: Body, path: &Path) -> Result<(Runbook, Diagnostics), Diagnostics> {
    let mut resolver = Resolver { source, declared: Declared::default(), problems: Diagnostics::default() };
    resolver.declare(&body);

    let runbook = resolver.resolve_file(body, path);
    resolver.problems.sort();
    match runbook {
        Some(runbook) if !resolver.problems.has_errors() => Ok((runbook, resolver.problems)),
        _ => Err(resolver.problems),
    }
}

const TOP_LEVEL_BLOCKS: &[&str] = &["runbook", "variable", "secret", "postgres", "docker", "step", "gate", "manual"];

impl Resolver<'_> {
    pub fn error(&mut self, span: Span, message: impl Into<String>, label: impl Into<String>) -> &mut Problem {
        self.problems.push(Problem::error(self.source, span, message, label));
        self.problems.problems.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, span: Span, message: impl Into<String>, label: impl Into<String>) -> &mut Problem {
        self.problems.push(Problem::warning(self.source, span, message, label));
        self.problems.problems.last_mut().expect("just pushed")
    }

    fn declare(&mut self, body: &Body) {
        for block in &body.blocks {
            let Some(name) = block.labels.first().and_then(|label| label.value.as_literal()) else { continue };
            let list = match block.kind.name.as_str() {
                "variable" => &mut self.declared.variables,
                "secret" => &mut self.declared.secrets,
                "postgres" => &mut self.declared.postgres,
                "docker" => &mut self.declared.docker,
                "step" | "gate" | "manual" => &mut self.declared.steps,
                _ => continue,
            };
            list.push(name);
            for capture in block.body.blocks.iter().filter(|inner| inner.kind.name == "capture") {
                if let Some(capture_name) = capture.labels.first().and_then(|label| label.value.as_literal()) {
                    self.declared.captures.push(capture_name);
                }
            }
        }
    }

    fn resolve_file(&mut self, body: Body, path: &Path) -> Option<Runbook> {
        for attribute in &body.attributes {
            self.error(attribute.span.clone(), format!("unexpected attribute `{}` at the top level", attribute.name.name), "not inside a block")
                .help = Some("top-level items are blocks: runbook, variable, secret, postgres, docker, step, gate, manual".into());
        }

        let mut header: Option<(String, Option<String>)> = None;
        let mut runbook_block_span: Option<Span> = None;
        let mut variables = Vec::new();
        let mut secrets = Vec::new();
        let mut connections = Vec::new();
        let mut steps = Vec::new();
        let mut seen = NameRegistry::default();
        let first_block_start = body.blocks.first().map_or(0, |block| block.span.start);

        for block in body.blocks {
            let block = &block;
            match block.kind.name.as_str() {
                "runbook" => {
                    if let Some(first) = &runbook_block_span {
                        let first = first.clone();
                        self.error(block.kind.span.clone(), "duplicate runbook header", "second header").labels.push((first, "first header here".into()));
                        continue;
                    }
                    runbook_block_span = Some(block.span.clone());
                    header = self.resolve_header(block);
                }
                "variable" => {
                    if let Some(variable) = self.resolve_variable(block, &mut seen) {
                        variables.push(variable);
                    }
                }
                "secret" => {
                    if let Some(secret) = self.resolve_secret(block, &mut seen) {
                        secrets.push(secret);
                    }
                }
                "postgres" | "docker" => {
                    if let Some(connection) = self.resolve_connection(block, &mut seen) {
                        connections.push(connection);
                    }
                }
                "step" | "gate" | "manual" => {
                    if let Some(step) = self.resolve_step(block, &mut seen) {
                        steps.push(step);
                    }
                }
                other => {
                    let suggestion = did_you_mean(other, TOP_LEVEL_BLOCKS.iter().copied());
                    let problem = self.error(block.kind.span.clone(), format!("unknown block `{other}`"), "not a top-level block");
                    problem.help = Some(match suggestion {
                        Some(name) => format!("did you mean `{name}`?"),
                        None => format!("expected one of: {}", TOP_LEVEL_BLOCKS.join(", ")),
                    });
                }
            }
        }

        let Some((name, description)) = header else {
            if runbook_block_span.is_none() {
                let end = first_block_start;
                self.error(end..end, "missing runbook header", "expected `runbook \"name\" { ... }` here")
                    .help = Some("start the file with: runbook \"my-runbook\" { description = \"...\" }".into());
            }
            return None;
        };

        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Some(Runbook { name, description, source: self.source.clone(), directory, variables, secrets, connections, steps })
    }

    fn resolve_header(&mut self, block: &Block) -> Option<(String, Option<String>)> {
        let name = self.single_label(block, "runbook name")?;
        let mut attributes = AttributeReader::new(self, &block.body, "runbook", &["description"]);
        let description = attributes.literal_text("description");
        attributes.finish();
        self.no_blocks(&block.body, "runbook");
        Some((name.0, description))
    }

    fn resolve_variable(&mut self, block: &Block, seen: &mut NameRegistry) -> Option<Variable> {
        let (name, name_span) = self.single_label(block, "variable name")?;
        self.register(seen, "variable", &name, &name_span);
        let mut attributes = AttributeReader::new(self, &block.body, "variable", &["default", "description"]);
        let description = attributes.literal_text("description");
        let default = attributes.take("default").and_then(|expr| attributes.resolver.literal_value(expr));
        attributes.finish();
        self.no_blocks(&block.body, "variable");
        Some(Variable { name, default, description, span: block.span.clone() })
    }

    fn resolve_secret(&mut self, block: &Block, seen: &mut NameRegistry) -> Option<Secret> {
        let (name, name_span) = self.single_label(block, "secret name")?;
        self.register(seen, "secret", &name, &name_span);
        let mut attributes = AttributeReader::new(self, &block.body, "secret", &["length", "alphabet", "env", "file", "description"]);
        let description = attributes.literal_text("description");
        let length = attributes.integer("length");
        let alphabet = attributes.literal_text("alphabet");
        let env = attributes.literal_text("env");
        let file = attributes.template("file");
        attributes.finish();
        self.no_blocks(&block.body, "secret");

        let sources = usize::from(length.is_some()) + usize::from(env.is_some()) + usize::from(file.is_some());
        if sources != 1 {
            self.error(block.kind.span.clone(), format!("secret `{name}` needs exactly one source"), "set one of length, env or file")
                .help = Some("generate with `length = 64` (and optionally `alphabet`), or read with `env = \"NAME\"` or `file = \"/path\"`".into());
            return None;
        }

        let source = if let Some(length) = length {
            let alphabet = self.secret_alphabet(alphabet, block)?;
            if !(8..=4096).contains(&length) {
                self.error(block.kind.span.clone(), format!("secret `{name}` length must be between 8 and 4096, found {length}"), "invalid length");
                return None;
            }
            SecretSource::Generate { length: length as usize, alphabet }
        } else if let Some(env) = env {
            SecretSource::Env(env)
        } else {
            SecretSource::File(file.expect("exactly one source is set"))
        };
        Some(Secret { name, source, description, span: block.span.clone() })
    }

    fn secret_alphabet(&mut self, alphabet: Option<String>, block: &Block) -> Option<String> {
        let characters = match alphabet.as_deref() {
            None | Some("alphanumeric") => ('a'..='z').chain('A'..='Z').chain('0'..='9').collect(),
            Some("hex") => ('0'..='9').chain('a'..='f').collect(),
            Some("lowercase") => ('a'..='z').chain('0'..='9').collect(),
            Some(literal) => literal.to_string(),
        };
        let mut unique: Vec<char> = characters.chars().collect::<Vec<char>>();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() < 2 {
            self.error(block.kind.span.clone(), "secret alphabet needs at least two distinct characters", "invalid alphabet")
                .help = Some("use \"alphanumeric\", \"hex\", \"lowercase\", or list the characters".into());
            return None;
        }
        Some(unique.into_iter().collect())
    }

    fn resolve_connection(&mut self, block: &Block, seen: &mut NameRegistry) -> Option<Connection> {
        let kind = if block.kind.name == "postgres" { ConnectionKind::Postgres } else { ConnectionKind::Docker };
        let (name, name_span) = self.single_label(block, "connection name")?;
        self.register(seen, kind.keyword(), &name, &name_span);

        let allowed: &[&str] = match kind {
            ConnectionKind::Postgres => &["url", "container", "network", "port", "user", "database", "password", "docker"],
            ConnectionKind::Docker => &["url"],
        };
        let mut args = BTreeMap::new();
        let mut attributes = AttributeReader::new(self, &block.body, kind.keyword(), allowed);
        for name in allowed {
            if let Some(expr) = attributes.take(name) {
                args.insert(name.to_string(), expr.clone());
            }
        }
        attributes.finish();
        self.no_blocks(&block.body, kind.keyword());

        for (arg, expr) in &args {
            let expected = match arg.as_str() {
                "port" => crate::schema::ArgType::Integer,
                "docker" => crate::schema::ArgType::DockerConnection,
                _ => crate::schema::ArgType::Text,
            };
            self.check_value(expr, expected, arg);
        }
        if kind == ConnectionKind::Postgres {
            self.check_postgres_target(block, &args);
        }
        Some(Connection { name, kind, args, span: block.span.clone() })
    }

    fn check_postgres_target(&mut self, block: &Block, args: &BTreeMap<String, Expr>) {
        let has_url = args.contains_key("url");
        let has_container = args.contains_key("container");
        if has_url == has_container {
            self.error(block.kind.span.clone(), "a postgres connection needs either `url` or `container`", "set exactly one of them")
                .help = Some("url = \"postgres://user@host:5432/db\", or container = \"name\" with user, database and password".into());
        }
        if has_container {
            for required in ["user", "database"] {
                if !args.contains_key(required) {
                    self.error(block.kind.span.clone(), format!("a postgres connection by container needs `{required}`"), format!("missing `{required}`"));
                }
            }
        }
    }

    /// Returns the block's one label (its name) and the label's span.
    pub fn single_label(&mut self, block: &Block, what: &str) -> Option<(String, Span)> {
        let keyword = block.kind.name.clone();
        match block.labels.as_slice() {
            [label] => match label.value.as_literal() {
                Some(name) if is_name(&name) => Some((name, label.span.clone())),
                Some(name) => {
                    self.error(label.span.clone(), format!("invalid {what} \"{name}\""), "expected letters, digits, `_` or `-`, starting with a letter or `_`");
                    None
                }
                None => {
                    self.error(label.span.clone(), format!("{what} can't contain an interpolation"), "use a fixed name");
                    None
                }
            },
            [] => {
                self.error(block.kind.span.clone(), format!("missing {what}"), format!("expected `{keyword} \"name\" {{`"));
                None
            }
            [_, extra, ..] => {
                self.error(extra.span.clone(), format!("`{keyword}` takes one label, the {what}"), "unexpected label");
                None
            }
        }
    }

    pub fn register(&mut self, registry: &mut NameRegistry, kind: &str, name: &str, span: &Span) {
        let namespace = match kind {
            "step" | "gate" | "manual" => "step",
            other => other,
        };
        let key = (namespace.to_string(), name.to_string());
        if let Some(first) = registry.names.get(&key) {
            let first = first.clone();
            let what = if namespace == "step" { "step, gate or manual step" } else { kind };
            self.error(span.clone(), format!("duplicate {what} name `{name}`"), "defined again here").labels.push((first, "first defined here".into()));
        } else {
            registry.names.insert(key, span.clone());
        }
    }

    pub fn no_blocks(&mut self, body: &Body, context: &str) {
        for block in &body.blocks {
            self.error(block.kind.span.clone(), format!("unexpected block `{}` inside `{context}`", block.kind.name), "not allowed here");
        }
    }

    /// Converts an expression without interpolations or references into a JSON value.
    pub fn literal_value(&mut self, expr: &Expr) -> Option<serde_json::Value> {
        match &expr.kind {
            ExprKind::Template(template) => match template.as_literal() {
                Some(text) => Some(serde_json::Value::String(text)),
                None => {
                    self.error(expr.span.clone(), "a default value can't contain an interpolation", "use a fixed value");
                    None
                }
            },
            ExprKind::Number(number) => Some(serde_json::Value::Number(number.clone())),
            ExprKind::Bool(value) => Some(serde_json::Value::Bool(*value)),
            ExprKind::Null => Some(serde_json::Value::Null),
            ExprKind::List(items) => items.iter().map(|item| self.literal_value(item)).collect::<Option<Vec<_>>>().map(serde_json::Value::Array),
            ExprKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    map.insert(key.name.clone(), self.literal_value(value)?);
                }
                Some(serde_json::Value::Object(map))
            }
            ExprKind::Reference(_) => {
                self.error(expr.span.clone(), "a default value can't be a reference", "use a fixed value");
                None
            }
        }
    }
}

/// Checks the shape of a declared name.
fn is_name(name: &str) -> bool {
    let mut characters = name.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The span where each name was first declared, per namespace.
#[derive(Debug, Default)]
pub(crate) struct NameRegistry {
    names: BTreeMap<(String, String), Span>,
}

/// Reads a block's attributes by name, reporting unknown and duplicate ones on `finish`.
pub(crate) struct AttributeReader<'r, 'a, 'b> {
    pub resolver: &'r mut Resolver<'a>,
    body: &'b Body,
    context: String,
    allowed: &'b [&'b str],
}

impl<'r, 'a, 'b> AttributeReader<'r, 'a, 'b> {
    pub fn new(resolver: &'r mut Resolver<'a>, body: &'b Body, context: &str, allowed: &'b [&'b str]) -> Self {
        AttributeReader { resolver, body, context: context.to_string(), allowed }
    }

    /// Returns an attribute's value expression.
    pub fn take(&mut self, name: &str) -> Option<&'b Expr> {
        self.body.attribute(name).map(|attribute| &attribute.value)
    }

    /// Reads a string attribute without interpolations.
    pub fn literal_text(&mut self, name: &str) -> Option<String> {
        let expr = self.take(name)?;
        match &expr.kind {
            ExprKind::Template(template) => match template.as_literal() {
                Some(text) => Some(text),
                None => {
                    self.resolver.error(expr.span.clone(), format!("`{name}` can't contain an interpolation"), "use a fixed string");
                    None
                }
            },
            _ => {
                self.resolver.error(expr.span.clone(), format!("invalid value for `{name}`: expected a string"), format!("found {}", describe_expr(expr)));
                None
            }
        }
    }

    /// Reads a string attribute that may contain interpolations.
    pub fn template(&mut self, name: &str) -> Option<Template> {
        let expr = self.take(name)?;
        match &expr.kind {
            ExprKind::Template(template) => {
                self.resolver.check_value(expr, crate::schema::ArgType::Text, name);
                Some(template.clone())
            }
            _ => {
                self.resolver.error(expr.span.clone(), format!("invalid value for `{name}`: expected a string"), format!("found {}", describe_expr(expr)));
                None
            }
        }
    }

    /// Reads a whole-number attribute.
    pub fn integer(&mut self, name: &str) -> Option<i64> {
        let expr = self.take(name)?;
        match &expr.kind {
            ExprKind::Number(number) if number.as_i64().is_some() => number.as_i64(),
            _ => {
                self.resolver.error(expr.span.clone(), format!("invalid value for `{name}`: expected a whole number"), format!("found {}", describe_expr(expr)));
                None
            }
        }
    }

    /// Reads a boolean attribute.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let expr = self.take(name)?;
        match &expr.kind {
            ExprKind::Bool(value) => Some(*value),
            _ => {
                self.resolver.error(expr.span.clone(), format!("invalid value for `{name}`: expected true or false"), format!("found {}", describe_expr(expr)));
                None
            }
        }
    }

    /// Reads a duration attribute such as "30s".
    pub fn duration(&mut self, name: &str) -> Option<std::time::Duration> {
        let expr = self.take(name)?;
        let parsed = match &expr.kind {
            ExprKind::Template(template) => template.as_literal().and_then(|text| humantime::parse_duration(&text).ok()),
            _ => None,
        };
        if parsed.is_none() {
            self.resolver.error(expr.span.clone(), format!("invalid value for `{name}`: expected a duration string such as \"30s\" or \"5m\""), format!("found {}", describe_expr(expr)));
        }
        parsed
    }

    /// Reports attributes not in the allowed list and repeated attributes.
    pub fn finish(self) {
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for attribute in &self.body.attributes {
            report_attribute(self.resolver, attribute, &self.context, self.allowed, &mut seen);
        }
    }
}

fn report_attribute<'b>(resolver: &mut Resolver<'_>, attribute: &'b Attribute, context: &str, allowed: &[&str], seen: &mut BTreeMap<&'b str, Span>) {
    let name = attribute.name.name.as_str();
    if !allowed.contains(&name) {
        let problem = resolver.error(attribute.name.span.clone(), format!("unknown argument `{name}` for `{context}`"), "unknown argument");
        problem.help = Some(match did_you_mean(name, allowed.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None if allowed.is_empty() => format!("`{context}` takes no arguments"),
            None => format!("expected one of: {}", allowed.join(", ")),
        });
        return;
    }
    if let Some(first) = seen.get(name) {
        let first = first.clone();
        resolver.error(attribute.name.span.clone(), format!("duplicate argument `{name}`"), "set again here").labels.push((first, "first set here".into()));
        return;
    }
    seen.insert(name, attribute.name.span.clone());
}

/// Describes an expression's type for "found ..." labels.
pub(crate) fn describe_expr(expr: &Expr) -> &'static str {
    match &expr.kind {
        ExprKind::Template(_) => "a string",
        ExprKind::Number(_) => "a number",
        ExprKind::Bool(_) => "a boolean",
        ExprKind::Null => "null",
        ExprKind::List(_) => "a list",
        ExprKind::Map(_) => "a map",
        ExprKind::Reference(_) => "a reference",
    }
}
