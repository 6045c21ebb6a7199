//! User-facing diagnostics: problems in a runbook, each pointing at labelled spans of its source.
//!
//! Every stage that reads a runbook reports through [`Problem`]; problems are collected and
//! shown together, in source order, by [`Diagnostics`]. Rendering never prints secret values
//! because problems only quote the runbook's own text.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use crate::syntax::Span;

/// A runbook file's name and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<String>,
    named: NamedSource<Arc<String>>,
}

impl SourceFile {
    /// Wraps a file's name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let name = name.into();
        let text = Arc::new(text.into());
        let named = NamedSource::new(name.clone(), text.clone());
        SourceFile { name, text, named }
    }

    /// Returns the 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |tail| tail.chars().count()) + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One problem found in a runbook: an error or a warning.
#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    pub source: SourceFile,
}

impl Problem {
    /// Creates an error whose primary label points at `span`.
    pub fn error(source: &SourceFile, span: Span, message: impl Into<String>, label: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            labels: vec![(span, label.into())],
            help: None,
            source: source.clone(),
        }
    }

    /// Creates a warning whose primary label points at `span`.
    pub fn warning(source: &SourceFile, span: Span, message: impl Into<String>, label: impl Into<String>) -> Problem {
        Problem { severity: Severity::Warning, ..Problem::error(source, span, message, label) }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Problem {
        self.labels.push((span, label.into()));
        self
    }

    /// Returns true for errors (as opposed to warnings).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Returns the start offset of the primary label, used to sort problems in source order.
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |(span, _)| span.start)
    }

    /// Returns `file:line:column` of the primary label.
    pub fn location(&self) -> String {
        let (line, column) = self.source.line_column(self.offset());
        format!("{}:{}:{}", self.source.name, line, column)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source.named)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let length = self.source.text.len();
        let labels = self.labels.iter().enumerate().map(move |(index, (span, text))| {
            let start = span.start.min(length);
            let end = span.end.clamp(start, length);
            let text = (!text.is_empty()).then(|| text.clone());
            if index == 0 {
                LabeledSpan::new_primary_with_span(text, start..end)
            } else {
                LabeledSpan::new_with_span(text, start..end)
            }
        });
        Some(Box::new(labels))
    }
}

/// All problems found in one runbook, in source order.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub problems: Vec<Problem>,
}

impl Diagnostics {
    /// Adds one problem.
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Returns true when at least one problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    /// Sorts problems by their position in the file, keeping the order of equal positions.
    pub fn sort(&mut self) {
        self.problems.sort_by_key(Problem::offset);
    }

    /// Keeps the first `limit` problems in source order and replaces the rest with one problem
    /// that counts them (an error when any of them is). Rendering a problem scans the source up to its offset, so showing
    /// every problem of a large generated file would take time quadratic in its size.
    pub fn truncate(&mut self, limit: usize) {
        if self.problems.len() <= limit {
            return;
        }
        let omitted = self.problems.split_off(limit);
        let first = &omitted[0];
        let span = first.labels.first().map_or(0..0, |(span, _)| span.clone());
        let message = format!("too many problems: {} more not shown", omitted.len());
        let summary = if omitted.iter().any(Problem::is_error) {
            Problem::error(&first.source, span, message, "the first one not shown")
        } else {
            Problem::warning(&first.source, span, message, "the first one not shown")
        };
        let summary = summary.with_help("fix the problems above and run again");
        self.problems.push(summary);
    }

    /// Returns the number of errors.
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|problem| problem.is_error()).count()
    }

    /// Returns the number of warnings.
    pub fn warning_count(&self) -> usize {
        self.problems.len() - self.error_count()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} error(s), {} warning(s)", self.error_count(), self.warning_count())
    }
}

impl std::error::Error for Diagnostics {}

/// Renders problems as miette reports, with or without color.
pub fn render(problems: &[Problem], color: bool) -> String {
    let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100).with_context_lines(1);
    let mut output = String::new();
    for problem in problems {
        if handler.render_report(&mut output, problem).is_err() {
            output.push_str(&format!("{}: {}\n", problem.location(), problem.message));
        }
        output.push('\n');
    }
    output
}
