//! Parsing: `.rb6` text → [`syntax::Body`](crate::syntax::Body).
//!
//! Runs the pest grammar, converts its pairs into the syntax tree, and turns grammar errors
//! into [`Problem`]s that say what was expected at which line and column. Invariant: no input
//! (truncated, binary, huge, deeply nested) panics or hangs; it yields a problem instead.
//!
//! Top-level items are parsed one at a time: pest keeps every token of a parse in one queue
//! (40 bytes a token), which for a whole 10,000-step runbook reaches 80 MB. A file that does
//! not parse item by item is parsed whole, so its error is exactly the grammar's.

use std::cell::Cell;

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser;

use crate::diagnostic::{Problem, SourceFile};
use crate::grammar::{Rb6Parser, Rule};
use crate::syntax::{Attribute, Block, Body, Expr, ExprKind, Ident, Interpolation, Label, MapKey, Part, Reference, Span, Template};

/// Largest runbook accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;

/// Deepest nesting of blocks, lists and maps accepted.
pub const MAX_NESTING: usize = 64;

/// Parses a runbook's text into its syntax tree.
pub fn parse(source: &SourceFile) -> Result<Body, Problem> {
    check_limits(source)?;

    pest::set_call_limit(std::num::NonZeroUsize::new(50_000_000));
    match parse_items(&source.text) {
        Some(body) => Ok(body),
        None => parse_whole(source),
    }
}

/// Returns true when the text starts with a name followed by `=`, the shape of an attribute.
fn looks_like_attribute(text: &str) -> bool {
    let after_name = text.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    after_name.len() < text.len() && after_name.trim_start().starts_with('=')
}

/// Parses the file in one pass of the `file` rule.
fn parse_whole(source: &SourceFile) -> Result<Body, Problem> {
    let mut pairs = Rb6Parser::parse(Rule::file, &source.text).map_err(|error| grammar_problem(source, error))?;
    let file = pairs.next().expect("the file rule always produces one pair");
    let body = file.into_inner().next().expect("a file always contains a body");
    Ok(convert_body(body))
}

thread_local! {
    /// Byte offset, in the whole source, of the text whose pairs are being converted.
    static BASE_OFFSET: Cell<usize> = const { Cell::new(0) };
}

/// Parses the file's top-level blocks and attributes one at a time, as `body` would.
///
/// Returns `None` when an item does not parse or a comment is not closed. The caller then
/// parses the whole file, which reports the grammar's own error.
fn parse_items(text: &str) -> Option<Body> {
    let mut body = Body::default();
    let mut offset = skip_trivia(text, 0)?;
    while offset < text.len() {
        let rest = &text[offset..];
        // Trying the wrong rule first costs a pest error, whose position lookup scans the rest
        // of the file, so a file of many attributes would parse in quadratic time.
        let rules = if looks_like_attribute(rest) { [Rule::attribute, Rule::block] } else { [Rule::block, Rule::attribute] };
        let (rule, pair) = rules.into_iter().find_map(|rule| Some((rule, Rb6Parser::parse(rule, rest).ok()?.next()?)))?;
        let end = offset + pair.as_span().end();

        BASE_OFFSET.set(offset);
        match rule {
            Rule::block => body.blocks.push(convert_block(pair)),
            _ => body.attributes.push(convert_attribute(pair)),
        }
        BASE_OFFSET.set(0);
        offset = skip_trivia(text, end)?;
    }
    Some(body)
}

/// Skips whitespace and comments (the grammar's WHITESPACE and COMMENT) from `offset`;
/// `None` for a `/*` comment that is never closed.
fn skip_trivia(text: &str, mut offset: usize) -> Option<usize> {
    loop {
        let rest = &text[offset..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        offset += rest.len() - trimmed.len();
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            offset += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            offset += 2 + comment.find("*/")? + 2;
        } else {
            return Some(offset);
        }
    }
}

fn check_limits(source: &SourceFile) -> Result<(), Problem> {
    let text = source.text.as_str();
    if text.len() > MAX_SOURCE_BYTES {
        return Err(Problem::error(source, 0..0, format!("runbook is too large: {} bytes, the maximum is {MAX_SOURCE_BYTES}", text.len()), "file starts here"));
    }

    if let Some(offset) = text.find('\0') {
        return Err(Problem::error(source, offset..offset + 1, "runbook contains a NUL byte; is it a binary file?", "NUL byte here")
            .with_help("a runbook is UTF-8 text"));
    }

    if let Some(offset) = too_deep_offset(text) {
        return Err(Problem::error(source, offset..offset + 1, format!("nesting is deeper than {MAX_NESTING} levels"), "too deep here"));
    }
    Ok(())
}

/// Returns the offset where bracket nesting first exceeds [`MAX_NESTING`], skipping quoted strings.
fn too_deep_offset(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, character) in text.char_indices() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' | '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => in_string = true,
            '{' | '[' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(offset);
                }
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn grammar_problem(source: &SourceFile, error: pest::error::Error<Rule>) -> Problem {
    let span = match error.location {
        InputLocation::Pos(position) => position..position,
        InputLocation::Span((start, end)) => start..end,
    };
    let expected = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let found = describe_found(&source.text, span.start);
    Problem::error(source, span, format!("syntax error: expected {expected}, found {found}"), format!("expected {expected}"))
}

fn describe_expected(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules.iter().filter_map(|rule| rule_name(*rule)).collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => "valid syntax".to_string(),
        1 => names[0].to_string(),
        _ => {
            let (last, rest) = names.split_last().expect("at least two names");
            format!("{} or {last}", rest.join(", "))
        }
    }
}

fn rule_name(rule: Rule) -> Option<&'static str> {
    let name = match rule {
        Rule::EOI => "end of file",
        Rule::identifier | Rule::map_key => "a name",
        Rule::attribute => "an attribute (`name = value`)",
        Rule::block => "a block (`kind \"label\" { ... }`)",
        Rule::label => "a quoted label",
        Rule::block_open => "`{`",
        Rule::block_close | Rule::map_close | Rule::interpolation_close => "`}`",
        Rule::list_close => "`]`",
        Rule::string | Rule::heredoc | Rule::number | Rule::boolean | Rule::null | Rule::list | Rule::map | Rule::reference => "a value",
        Rule::string_close => "a closing `\"`",
        Rule::map_entry => "a map entry (`key = value`)",
        Rule::function_call => "a function call",
        Rule::function_close => "`)` (a function takes one reference)",
        Rule::heredoc_open_end => "end of line after the heredoc tag",
        Rule::heredoc_end => "the heredoc's closing tag on its own line",
        Rule::heredoc_tag => "a heredoc tag in capitals, like SQL",
        Rule::escape => "a valid escape (\\\", \\\\, \\n, \\t, \\r, \\$, \\u{...})",
        _ => return None,
    };
    Some(name)
}

fn describe_found(text: &str, offset: usize) -> String {
    match text.get(offset..).and_then(|rest| rest.chars().next()) {
        None => "end of file".to_string(),
        Some('\n') => "end of line".to_string(),
        Some(character) if character.is_control() => format!("control character U+{:04X}", character as u32),
        Some(_) => {
            let token: String = text[offset..].chars().take_while(|c| !c.is_whitespace()).take(20).collect();
            format!("`{token}`")
        }
    }
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let span = pair.as_span();
    let base = BASE_OFFSET.get();
    base + span.start()..base + span.end()
}

fn convert_body(pair: Pair<Rule>) -> Body {
    let mut body = Body::default();
    for item in pair.into_inner() {
        match item.as_rule() {
            Rule::attribute => body.attributes.push(convert_attribute(item)),
            Rule::block => body.blocks.push(convert_block(item)),
            rule => unreachable!("body contains only attributes and blocks, found {rule:?}"),
        }
    }
    body
}

fn convert_ident(pair: Pair<Rule>) -> Ident {
    Ident { name: pair.as_str().to_string(), span: span_of(&pair) }
}

fn convert_attribute(pair: Pair<Rule>) -> Attribute {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = convert_ident(inner.next().expect("attribute name"));
    let value = convert_expression(inner.next().expect("attribute value"));
    Attribute { name, value, span }
}

fn convert_block(pair: Pair<Rule>) -> Block {
    let span = span_of(&pair);
    let mut kind = None;
    let mut labels = Vec::new();
    let mut body = Body::default();
    for item in pair.into_inner() {
        match item.as_rule() {
            Rule::identifier => kind = Some(convert_ident(item)),
            Rule::label => {
                let label_span = span_of(&item);
                let string = item.into_inner().next().expect("a label is a string");
                labels.push(Label { value: convert_string(string), span: label_span });
            }
            Rule::body => body = convert_body(item),
            _ => {}
        }
    }
    Block { kind: kind.expect("a block starts with its kind"), labels, body, span }
}

fn convert_expression(pair: Pair<Rule>) -> Expr {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::string => ExprKind::Template(convert_string(pair)),
        Rule::heredoc => ExprKind::Template(convert_heredoc(pair)),
        Rule::number => ExprKind::Number(parse_number(pair.as_str())),
        Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
        Rule::null => ExprKind::Null,
        Rule::list => ExprKind::List(pair.into_inner().filter(|item| item.as_rule() != Rule::list_close).map(convert_expression).collect()),
        Rule::map => ExprKind::Map(pair.into_inner().filter(|item| item.as_rule() == Rule::map_entry).map(convert_map_entry).collect()),
        Rule::reference => ExprKind::Reference(convert_reference(pair)),
        rule => unreachable!("not an expression rule: {rule:?}"),
    };
    Expr { kind, span }
}

fn parse_number(text: &str) -> serde_json::Number {
    if let Ok(integer) = text.parse::<i64>() {
        return integer.into();
    }
    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).unwrap_or_else(|| 0.into())
}

fn convert_map_entry(pair: Pair<Rule>) -> (MapKey, Expr) {
    let mut inner = pair.into_inner();
    let key_pair = inner.next().expect("map key");
    let key_span = span_of(&key_pair);
    let key_inner = key_pair.into_inner().next().expect("a key is a string or a name");
    let (name, template) = match key_inner.as_rule() {
        Rule::string => {
            let template = convert_string(key_inner);
            (template_text(&template), template.as_literal().is_none().then_some(template))
        }
        _ => (key_inner.as_str().to_string(), None),
    };
    let value = convert_expression(inner.next().expect("map value"));
    (MapKey { name, template, span: key_span }, value)
}

/// The display text of a map key: `${...}` stands for each interpolation, which `MapKey::template` keeps.
fn template_text(template: &Template) -> String {
    template.as_literal().unwrap_or_else(|| "${...}".to_string())
}

fn convert_reference(pair: Pair<Rule>) -> Reference {
    let span = span_of(&pair);
    let segments = pair.into_inner().map(convert_ident).collect();
    Reference { segments, span }
}

fn convert_string(pair: Pair<Rule>) -> Template {
    let mut template = Template::default();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::string_text => push_text(&mut template, part.as_str()),
            Rule::escape => push_text(&mut template, &unescape(part.as_str())),
            Rule::escaped_dollar => push_text(&mut template, "${"),
            Rule::interpolation => template.parts.push(Part::Interpolation(convert_interpolation(part))),
            _ => {}
        }
    }
    template
}

fn unescape(escape: &str) -> String {
    match escape {
        "\\n" => "\n".to_string(),
        "\\t" => "\t".to_string(),
        "\\r" => "\r".to_string(),
        "\\\"" => "\"".to_string(),
        "\\\\" => "\\".to_string(),
        "\\$" => "$".to_string(),
        unicode => {
            let hex = unicode.trim_start_matches("\\u{").trim_end_matches('}');
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).map_or_else(|| "\u{FFFD}".to_string(), String::from)
        }
    }
}

fn push_text(template: &mut Template, text: &str) {
    if let Some(Part::Text(last)) = template.parts.last_mut() {
        last.push_str(text);
    } else {
        template.parts.push(Part::Text(text.to_string()));
    }
}

fn convert_interpolation(pair: Pair<Rule>) -> Interpolation {
    let span = span_of(&pair);
    let value = pair.into_inner().next().expect("an interpolation has a value");
    match value.as_rule() {
        Rule::function_call => {
            let mut inner = value.into_inner();
            let function = convert_ident(inner.next().expect("function name"));
            let reference = convert_reference(inner.next().expect("function argument"));
            Interpolation { function: Some(function), reference, span }
        }
        _ => Interpolation { function: None, reference: convert_reference(value), span },
    }
}

/// Converts a heredoc; `<<-TAG` strips the indentation common to all non-blank lines.
fn convert_heredoc(pair: Pair<Rule>) -> Template {
    let mut strip_indent = false;
    let mut lines: Vec<Vec<Part>> = Vec::new();
    for item in pair.into_inner() {
        match item.as_rule() {
            Rule::heredoc_indent => strip_indent = true,
            Rule::heredoc_line => lines.push(convert_heredoc_line(item)),
            _ => {}
        }
    }

    if strip_indent {
        let indent = common_indent(&lines);
        for line in &mut lines {
            if let Some(Part::Text(text)) = line.first_mut() {
                let cut = text.char_indices().take_while(|(_, c)| *c == ' ' || *c == '\t').take(indent).count();
                text.drain(..cut);
            }
        }
    }

    let mut template = Template::default();
    for part in lines.into_iter().flatten() {
        match part {
            Part::Text(text) => push_text(&mut template, &text),
            interpolation => template.parts.push(interpolation),
        }
    }
    template
}

fn convert_heredoc_line(pair: Pair<Rule>) -> Vec<Part> {
    let mut line = Template::default();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::heredoc_text | Rule::heredoc_newline => push_text(&mut line, part.as_str()),
            Rule::escaped_dollar => push_text(&mut line, "${"),
            Rule::interpolation => line.parts.push(Part::Interpolation(convert_interpolation(part))),
            _ => {}
        }
    }
    line.parts
}

fn common_indent(lines: &[Vec<Part>]) -> usize {
    lines
        .iter()
        .filter_map(|line| match line.first() {
            Some(Part::Text(text)) if text.trim().is_empty() && line.len() == 1 => None,
            Some(Part::Text(text)) => Some(text.chars().take_while(|c| *c == ' ' || *c == '\t').count()),
            _ => Some(0),
        })
        .min()
        .unwrap_or(0)
}


#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[(&str, &str)] = &[
        ("empty file", ""),
        ("only comments", "# one\n// two\n/* three\n */\n"),
        ("comments between blocks", "runbook \"r\" { description = \"d\" } # trailing\n/* a */ step \"a\" {\n  shell { run = \"true\" }\n}\n// end"),
        ("top-level attribute", "name = \"x\"\nstep \"a\" { needs = [b, c] }\n"),
        ("heredoc at end of file", "manual \"m\" {\n  instructions = <<-TEXT\n    Tell ${capture.x} é\n    TEXT\n}"),
        ("maps, lists and escapes", "\t\r\nstep \"s\" { env = { A = \"\\u{e9}$${x}\", \"b\": [1, 2.5, true, null] } }\n"),
    ];

    #[test]
    fn items_parse_like_the_whole_file() {
        for (name, text) in SAMPLES {
            let source = SourceFile::new("sample.rb6", text.to_string());
            let whole = parse_whole(&source).unwrap_or_else(|problem| panic!("{name}: the sample does not parse: {problem:?}"));
            let items = parse_items(text);
            assert_eq!(items.as_ref(), Some(&whole), "{name}: parsing item by item gives another tree (or spans) than the whole file");
        }
    }

    #[test]
    fn invalid_files_fall_back_to_the_whole_parse() {
        for text in ["step \"a\" {", "/* never closed", "step \"a\" { x = }\nstep \"b\" {}", "step \"a\" {}\n}"] {
            assert_eq!(parse_items(text), None, "{text:?} parsed item by item although it is invalid");
        }
    }
}
