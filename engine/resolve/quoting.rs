//! Rejects interpolations placed inside quotes, comments or here-documents of SQL and shell.
//!
//! rb6 quotes every value it interpolates into SQL (as a literal) or a shell script (as one
//! word). That quoting is only safe where the value lands in plain code: inside `'...'` or
//! `"..."` the quotes it adds would end the surrounding string and let the value's text run as
//! code. So validation scans each SQL and shell template and reports any interpolation that is
//! not in plain code. Escaped `$${` text is not an interpolation and is not checked.

use crate::schema::ArgType;
use crate::syntax::{Interpolation, Part, Template};

use super::Resolver;

/// Where the scanner is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Context {
    Code,
    SingleQuoted,
    DoubleQuoted,
    EscapeString,
    QuotedIdentifier,
    DollarQuoted(String),
    LineComment,
    BlockComment(usize),
    HereDocument,
}

impl Context {
    fn describe(&self) -> &'static str {
        match self {
            Context::Code => "code",
            Context::SingleQuoted => "a single-quoted string",
            Context::DoubleQuoted => "a double-quoted string",
            Context::EscapeString => "an E'...' string",
            Context::QuotedIdentifier => "a quoted identifier",
            Context::DollarQuoted(_) => "a dollar-quoted string",
            Context::LineComment | Context::BlockComment(_) => "a comment",
            Context::HereDocument => "an unquoted here-document",
        }
    }
}

impl Resolver<'_> {
    /// Reports interpolations of a SQL or shell template that are not in plain code.
    pub fn check_quoting(&mut self, template: &Template, context: ArgType) {
        let misplaced = match context {
            ArgType::Sql => scan(template, &mut SqlScanner::default()),
            ArgType::Shell => scan(template, &mut ShellScanner::default()),
            _ => return,
        };
        for (interpolation, inside) in misplaced {
            let (language, quoted_as) = if context == ArgType::Sql { ("SQL", "a SQL literal (or an identifier with ident(...))") } else { ("a shell script", "one shell word") };
            self.error(interpolation.span.clone(), format!("`${{{}}}` is inside {} in {language}", interpolation.reference.dotted(), inside.describe()), "interpolated here")
                .help = Some(format!("rb6 quotes the value as {quoted_as} itself; remove the surrounding quotes and put the interpolation in plain code"));
        }
    }
}

trait Scanner {
    fn feed(&mut self, text: &str);
    fn context(&self) -> Context;
    /// Treats an interpolated value as one plain word.
    fn feed_value(&mut self);
}

fn scan<'t>(template: &'t Template, scanner: &mut dyn Scanner) -> Vec<(&'t Interpolation, Context)> {
    let mut misplaced = Vec::new();
    for part in &template.parts {
        match part {
            Part::Text(text) => scanner.feed(text),
            Part::Interpolation(interpolation) => {
                let context = scanner.context();
                if context != Context::Code {
                    misplaced.push((interpolation, context));
                }
                scanner.feed_value();
            }
        }
    }
    misplaced
}

/// A PostgreSQL lexer just deep enough to know whether a position is plain code.
#[derive(Debug)]
struct SqlScanner {
    context: Context,
    previous: char,
    pending: String,
}

impl Default for SqlScanner {
    fn default() -> Self {
        SqlScanner { context: Context::Code, previous: ' ', pending: String::new() }
    }
}

impl Scanner for SqlScanner {
    fn feed(&mut self, text: &str) {
        self.pending.push_str(text);
        let characters: Vec<char> = std::mem::take(&mut self.pending).chars().collect();
        let mut index = 0;
        while index < characters.len() {
            index += self.step(&characters[index..]);
        }
    }

    fn context(&self) -> Context {
        self.context.clone()
    }

    fn feed_value(&mut self) {
        self.previous = 'x';
    }
}

impl SqlScanner {
    /// Consumes one token at the start of `rest` and returns how many characters it used.
    fn step(&mut self, rest: &[char]) -> usize {
        let current = rest[0];
        let next = rest.get(1).copied();
        let used = match (&self.context, current, next) {
            (Context::Code, '\'', _) => {
                self.context = if matches!(self.previous, 'E' | 'e') { Context::EscapeString } else { Context::SingleQuoted };
                1
            }
            (Context::Code, '"', _) => {
                self.context = Context::QuotedIdentifier;
                1
            }
            (Context::Code, '-', Some('-')) => {
                self.context = Context::LineComment;
                2
            }
            (Context::Code, '/', Some('*')) => {
                self.context = Context::BlockComment(1);
                2
            }
            (Context::Code, '$', _) if !self.previous.is_alphanumeric() && self.previous != '_' => match dollar_tag(rest) {
                Some(tag) => {
                    let length = tag.chars().count();
                    self.context = Context::DollarQuoted(tag);
                    length
                }
                None => 1,
            },
            (Context::SingleQuoted | Context::EscapeString, '\'', Some('\'')) => 2,
            (Context::EscapeString, '\\', Some(_)) => 2,
            (Context::SingleQuoted | Context::EscapeString, '\'', _) => {
                self.context = Context::Code;
                1
            }
            (Context::QuotedIdentifier, '"', Some('"')) => 2,
            (Context::QuotedIdentifier, '"', _) => {
                self.context = Context::Code;
                1
            }
            (Context::LineComment, '\n', _) => {
                self.context = Context::Code;
                1
            }
            (Context::BlockComment(depth), '*', Some('/')) => {
                self.context = if *depth == 1 { Context::Code } else { Context::BlockComment(depth - 1) };
                2
            }
            (Context::BlockComment(depth), '/', Some('*')) => {
                self.context = Context::BlockComment(depth + 1);
                2
            }
            (Context::DollarQuoted(tag), '$', _) if starts_with(rest, tag) => {
                let length = tag.chars().count();
                self.context = Context::Code;
                length
            }
            _ => 1,
        };
        self.previous = rest[used - 1];
        used
    }
}

/// Returns the dollar-quote tag (`$$` or `$name$`) at the start of `rest`, if it is one.
fn dollar_tag(rest: &[char]) -> Option<String> {
    let mut tag = String::from("$");
    for (index, character) in rest.iter().enumerate().skip(1) {
        match character {
            '$' => {
                tag.push('$');
                return Some(tag);
            }
            c if c.is_alphabetic() || *c == '_' || (c.is_ascii_digit() && index > 1) => tag.push(*c),
            _ => return None,
        }
    }
    None
}

fn starts_with(rest: &[char], tag: &str) -> bool {
    let tag: Vec<char> = tag.chars().collect();
    rest.len() >= tag.len() && rest[..tag.len()] == tag[..]
}

/// A POSIX shell lexer just deep enough to know whether a position is plain code.
#[derive(Debug)]
struct ShellScanner {
    /// Nested contexts: `$(...)` and backquotes start plain code again inside strings.
    stack: Vec<Context>,
    /// Parenthesis depth of each open `$(`, to find its closing `)`.
    parentheses: Vec<usize>,
    previous: char,
    escaped: bool,
    /// Here-documents announced on the current line: (delimiter, strip tabs, quoted).
    announced: Vec<(String, bool, bool)>,
    /// The here-document whose body is being read, and the current line so far.
    body: Option<(String, bool, bool)>,
    line: String,
    pending: String,
}

impl Default for ShellScanner {
    fn default() -> Self {
        ShellScanner { stack: vec![Context::Code], parentheses: vec![0], previous: '\n', escaped: false, announced: Vec::new(), body: None, line: String::new(), pending: String::new() }
    }
}

impl Scanner for ShellScanner {
    fn feed(&mut self, text: &str) {
        self.pending.push_str(text);
        let characters: Vec<char> = std::mem::take(&mut self.pending).chars().collect();
        let mut index = 0;
        while index < characters.len() {
            index += self.step(&characters[index..]);
        }
    }

    fn context(&self) -> Context {
        match &self.body {
            Some((_, _, false)) => Context::HereDocument,
            Some((_, _, true)) => Context::SingleQuoted,
            None => self.stack.last().cloned().unwrap_or(Context::Code),
        }
    }

    fn feed_value(&mut self) {
        self.previous = 'x';
        self.line.push('x');
    }
}

impl ShellScanner {
    fn step(&mut self, rest: &[char]) -> usize {
        if self.body.is_some() {
            return self.step_body(rest[0]);
        }
        let current = rest[0];
        if self.escaped {
            self.escaped = false;
            self.previous = 'x';
            return 1;
        }

        let top = self.stack.last().cloned().unwrap_or(Context::Code);
        let used = match (top, current) {
            (Context::SingleQuoted, '\'') => self.pop(),
            (Context::SingleQuoted, _) => 1,
            (Context::LineComment, '\n') => {
                self.pop();
                self.end_of_line()
            }
            (Context::LineComment, _) => 1,
            (Context::DoubleQuoted, '"') => self.pop(),
            (Context::DoubleQuoted | Context::Code, '\\') => {
                self.escaped = true;
                1
            }
            (Context::DoubleQuoted | Context::Code, '$') if rest.get(1) == Some(&'(') => {
                self.stack.push(Context::Code);
                self.parentheses.push(0);
                2
            }
            (Context::DoubleQuoted | Context::Code, '`') if self.stack.len() > 1 && self.stack.last() == Some(&Context::Code) && self.parentheses.last() == Some(&usize::MAX) => self.pop_substitution(),
            (Context::DoubleQuoted | Context::Code, '`') => {
                self.stack.push(Context::Code);
                self.parentheses.push(usize::MAX);
                1
            }
            (Context::Code, '\'') => self.push(Context::SingleQuoted),
            (Context::Code, '"') => self.push(Context::DoubleQuoted),
            (Context::Code, '#') if self.previous.is_whitespace() || ";&|(".contains(self.previous) => self.push(Context::LineComment),
            (Context::Code, '(') => {
                if let Some(depth) = self.parentheses.last_mut().filter(|depth| **depth != usize::MAX) {
                    *depth += 1;
                }
                1
            }
            (Context::Code, ')') if self.stack.len() > 1 => match self.parentheses.last_mut() {
                Some(0) => self.pop_substitution(),
                Some(depth) if *depth != usize::MAX => {
                    *depth -= 1;
                    1
                }
                _ => 1,
            },
            (Context::Code, '<') if rest.get(1) == Some(&'<') && rest.get(2) != Some(&'<') => self.announce_here_document(rest),
            (Context::Code, '\n') => self.end_of_line(),
            _ => 1,
        };
        if used > 0 {
            self.previous = rest[used - 1];
            if self.body.is_none() && rest[used - 1] != '\n' {
                self.line.extend(&rest[..used]);
            }
        }
        used.max(1)
    }

    fn push(&mut self, context: Context) -> usize {
        self.stack.push(context);
        1
    }

    fn pop(&mut self) -> usize {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
        1
    }

    fn pop_substitution(&mut self) -> usize {
        if self.stack.len() > 1 {
            self.stack.pop();
            self.parentheses.pop();
        }
        1
    }

    /// Reads `<<WORD`, `<<-WORD`, `<<'WORD'` or `<<"WORD"`; the body starts after this line.
    fn announce_here_document(&mut self, rest: &[char]) -> usize {
        let mut index = 2;
        let strip_tabs = rest.get(index) == Some(&'-');
        if strip_tabs {
            index += 1;
        }
        while rest.get(index).is_some_and(|c| *c == ' ' || *c == '\t') {
            index += 1;
        }
        let mut delimiter = String::new();
        let mut quoted = false;
        while let Some(character) = rest.get(index) {
            match character {
                '\'' | '"' | '\\' => quoted = true,
                c if c.is_whitespace() || ";&|<>()".contains(*c) => break,
                c => delimiter.push(*c),
            }
            index += 1;
        }
        if !delimiter.is_empty() {
            self.announced.push((delimiter, strip_tabs, quoted));
        }
        index
    }

    fn end_of_line(&mut self) -> usize {
        self.line.clear();
        if !self.announced.is_empty() {
            self.body = Some(self.announced.remove(0));
        }
        1
    }

    fn step_body(&mut self, current: char) -> usize {
        if current != '\n' {
            self.line.push(current);
            return 1;
        }
        let (delimiter, strip_tabs, _) = self.body.clone().expect("inside a here-document");
        let line = if strip_tabs { self.line.trim_start_matches('\t') } else { self.line.as_str() };
        if line == delimiter {
            self.body = None;
            if !self.announced.is_empty() {
                self.body = Some(self.announced.remove(0));
            }
        }
        self.line.clear();
        self.previous = '\n';
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{Ident, Reference};

    /// Builds a template from text where `@` marks an interpolation.
    fn template(text: &str) -> Template {
        let mut parts = Vec::new();
        for (index, piece) in text.split('@').enumerate() {
            if index > 0 {
                let reference = Reference { segments: vec![Ident { name: "var".into(), span: 0..0 }, Ident { name: "x".into(), span: 0..0 }], span: 0..0 };
                parts.push(Part::Interpolation(Interpolation { function: None, reference, span: 0..0 }));
            }
            if !piece.is_empty() {
                parts.push(Part::Text(piece.to_string()));
            }
        }
        Template { parts }
    }

    fn misplaced(text: &str, context: ArgType) -> Vec<Context> {
        let template = template(text);
        let found = match context {
            ArgType::Sql => scan(&template, &mut SqlScanner::default()),
            _ => scan(&template, &mut ShellScanner::default()),
        };
        found.into_iter().map(|(_, context)| context).collect()
    }

    #[test]
    fn sql_positions() {
        let cases: &[(&str, &[Context])] = &[
            ("SELECT @", &[]),
            ("CREATE ROLE @ LOGIN PASSWORD @;", &[]),
            ("SELECT '@'", &[Context::SingleQuoted]),
            ("SELECT 'it''s @'", &[Context::SingleQuoted]),
            ("SELECT 'done', @", &[]),
            ("SELECT E'a\\'b @'", &[Context::EscapeString]),
            ("SELECT \"@\"", &[Context::QuotedIdentifier]),
            ("SELECT 1 -- @\n, @", &[Context::LineComment]),
            ("/* a /* @ */ */ SELECT @", &[Context::BlockComment(2)]),
            ("DO $$ BEGIN PERFORM @; END $$; SELECT @", &[Context::DollarQuoted("$$".into())]),
            ("DO $body$ @ $body$", &[Context::DollarQuoted("$body$".into())]),
            ("SELECT $1, @", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(misplaced(text, ArgType::Sql), *expected, "SQL: {text}");
        }
    }

    #[test]
    fn shell_positions() {
        let cases: &[(&str, &[Context])] = &[
            ("echo @ > @/file", &[]),
            ("echo '@'", &[Context::SingleQuoted]),
            ("echo \"x @\"", &[Context::DoubleQuoted]),
            ("echo \"$(cat @)\"", &[]),
            ("echo `cat @`", &[]),
            ("echo \\\"@", &[]),
            ("echo done # @", &[Context::LineComment]),
            ("echo a#b @", &[]),
            ("cat <<EOF\n@\nEOF\necho @", &[Context::HereDocument]),
            ("cat <<'EOF'\n@\nEOF", &[Context::SingleQuoted]),
            ("cat <<-EOF\n\t@\n\tEOF\necho @", &[Context::HereDocument]),
            ("if [ -f @ ]; then (cd @ && ls); fi", &[]),
            ("echo \"$$\" @", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(misplaced(text, ArgType::Shell), *expected, "shell: {text}");
        }
    }
}
