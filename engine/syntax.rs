//! The syntax tree of a `.rb6` file: blocks, attributes and expressions with their byte spans.
//!
//! Invariant: every node carries the span of the source text it came from, so later stages
//! can point a diagnostic at it. The tree carries no meaning. `resolve` checks it.

use std::ops::Range;

/// Byte range in the source file.
pub type Span = Range<usize>;

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// The contents of a file or of a block: attributes and nested blocks, each in source order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<Block>,
}

/// `name = expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `kind "label" ... { body }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub labels: Vec<Label>,
    pub body: Body,
    pub span: Span,
}

/// A quoted block label such as the name in `step "create_role" { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub value: Template,
    pub span: Span,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The forms an expression can take.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A quoted string or heredoc, possibly with `${...}` interpolations.
    Template(Template),
    Number(serde_json::Number),
    Bool(bool),
    Null,
    List(Vec<Expr>),
    Map(Vec<(MapKey, Expr)>),
    /// A bare reference such as `var.domain` or a step name in `needs`.
    Reference(Reference),
}

/// A key of a map literal.
#[derive(Debug, Clone, PartialEq)]
pub struct MapKey {
    /// The key's text; `${...}` stands for each interpolation when `template` is set.
    pub name: String,
    /// The quoted key with its interpolations, when it has any (`"${var.domain}" = "user"`).
    pub template: Option<Template>,
    pub span: Span,
}

/// Text with interpolations, from a quoted string or a heredoc.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Interpolation(Interpolation),
}

/// `${reference}` or `${function(reference)}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpolation {
    pub function: Option<Ident>,
    pub reference: Reference,
    pub span: Span,
}

/// A dotted name: `var.domain`, `secret.db_password`, `capture.as_token`, `postgres.admin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Template {
    /// Returns the text when the template has no interpolation.
    pub fn as_literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(piece) => text.push_str(piece),
                Part::Interpolation(_) => return None,
            }
        }
        Some(text)
    }

    /// Iterates over the interpolations of the template.
    pub fn interpolations(&self) -> impl Iterator<Item = &Interpolation> {
        self.parts.iter().filter_map(|part| match part {
            Part::Interpolation(interpolation) => Some(interpolation),
            Part::Text(_) => None,
        })
    }
}

impl Reference {
    /// Returns the dotted form, e.g. `var.domain`.
    pub fn dotted(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|segment| segment.name.as_str()).collect();
        names.join(".")
    }
}

impl Body {
    /// Finds the attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|attribute| attribute.name.name == name)
    }
}

impl Expr {
    /// Collects every reference in the expression, in bare form or inside interpolations.
    pub fn collect_references<'a>(&'a self, found: &mut Vec<&'a Reference>) {
        match &self.kind {
            ExprKind::Template(template) => found.extend(template.interpolations().map(|interpolation| &interpolation.reference)),
            ExprKind::Reference(reference) => found.push(reference),
            ExprKind::List(items) => items.iter().for_each(|item| item.collect_references(found)),
            ExprKind::Map(entries) => entries.iter().for_each(|(key, value)| {
                if let Some(template) = &key.template {
                    found.extend(template.interpolations().map(|interpolation| &interpolation.reference));
                }
                value.collect_references(found);
            }),
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Null => {}
        }
    }
}
