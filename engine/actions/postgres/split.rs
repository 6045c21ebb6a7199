//! Splitting of SQL scripts into statements on top-level `;`, as psql does.
//!
//! Invariant: a `;` splits only outside quotes, comments and parentheses. The scanner handles
//! '…' literals (with `''`), E'…' escape strings (with `\`), "…" identifiers (with `""`),
//! $tag$…$tag$ dollar quotes, `--` line comments and nested `/* */` block comments. It assumes
//! `standard_conforming_strings = on` (the default since PostgreSQL 9.1), so a backslash
//! escapes only inside E'…'.

/// Splits `sql` into statements on top-level `;`. Each statement is trimmed and starts at its
/// first token, without leading comments. Statements that contain only whitespace and comments
/// are dropped.
///
/// NOTE: SQL-standard function bodies (`BEGIN ATOMIC … END`) contain top-level `;` and are
/// split apart, so write such functions with a dollar-quoted body instead.
pub fn split_statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth = 0usize;
    let mut i = 0;

    while i < bytes.len() {
        let byte = bytes[i];
        let next = bytes.get(i + 1).copied();

        if byte == b'-' && next == Some(b'-') {
            i = skip_line_comment(bytes, i);
            continue;
        }
        if byte == b'/' && next == Some(b'*') {
            i = skip_block_comment(bytes, i);
            continue;
        }
        if byte == b';' && depth == 0 {
            push_statement(&mut statements, sql, start.take(), i);
            i += 1;
            continue;
        }
        if byte.is_ascii_whitespace() {
            i += 1;
            continue;
        }

        start.get_or_insert(i);
        i = match byte {
            b'\'' => skip_quoted(bytes, i, is_escape_string(bytes, i)),
            b'"' => skip_quoted(bytes, i, false),
            b'$' => dollar_quote_end(bytes, i).unwrap_or(i + 1),
            b'(' => {
                depth += 1;
                i + 1
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i + 1
            }
            _ => i + 1,
        };
    }

    push_statement(&mut statements, sql, start, bytes.len());
    statements
}

fn push_statement(statements: &mut Vec<String>, sql: &str, start: Option<usize>, end: usize) {
    if let Some(start) = start {
        let statement = sql[start..end].trim_end();
        if !statement.is_empty() {
            statements.push(statement.to_string());
        }
    }
}

/// Returns whether `byte` may continue an identifier. Bytes of multi-byte UTF-8 characters count as letters.
fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// Returns whether the quote at `quote` opens an E'…' string: it follows `E` or `e`, and that
/// letter does not end a longer word.
fn is_escape_string(bytes: &[u8], quote: usize) -> bool {
    if quote == 0 || !matches!(bytes[quote - 1], b'E' | b'e') {
        return false;
    }
    quote < 2 || !is_identifier_byte(bytes[quote - 2])
}

/// Returns the index after the closing quote of the literal or identifier opening at `open`
/// (or the end of input when it is unterminated). A doubled quote stands for one quote.
fn skip_quoted(bytes: &[u8], open: usize, backslash_escapes: bool) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        if backslash_escapes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn skip_line_comment(bytes: &[u8], start: usize) -> usize {
    match bytes[start..].iter().position(|&byte| byte == b'\n') {
        Some(offset) => start + offset + 1,
        None => bytes.len(),
    }
}

/// Skips a block comment. PostgreSQL nests block comments, so `/* /* */ */` is one comment.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// If a dollar quote opens at `open`, returns the index after its closing delimiter (or the end
/// of input when unterminated). Returns `None` for `$1` parameters and `$` inside identifiers.
fn dollar_quote_end(bytes: &[u8], open: usize) -> Option<usize> {
    if open > 0 && is_identifier_byte(bytes[open - 1]) {
        return None;
    }

    let tag_length = bytes[open + 1..].iter().position(|&byte| byte == b'$')?;
    let tag = &bytes[open + 1..open + 1 + tag_length];
    let valid_tag = match tag.first() {
        None => true,
        Some(first) => {
            !first.is_ascii_digit()
                && tag
                    .iter()
                    .all(|&byte| is_identifier_byte(byte) && byte != b'$')
        }
    };
    if !valid_tag {
        return None;
    }

    let delimiter = &bytes[open..open + tag_length + 2];
    let body_start = open + delimiter.len();
    let closing = bytes[body_start..]
        .windows(delimiter.len())
        .position(|window| window == delimiter);
    Some(match closing {
        Some(offset) => body_start + offset + delimiter.len(),
        None => bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_statements_cases() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("plain", "SELECT 1; SELECT 2", &["SELECT 1", "SELECT 2"]),
            ("trailing semicolon", "SELECT 1;\n", &["SELECT 1"]),
            ("empty statements", ";; SELECT 1 ;;\n;", &["SELECT 1"]),
            (
                "literal",
                "SELECT 'a;b'; SELECT 2",
                &["SELECT 'a;b'", "SELECT 2"],
            ),
            (
                "doubled quote",
                "SELECT 'it''s;'; SELECT 2",
                &["SELECT 'it''s;'", "SELECT 2"],
            ),
            (
                "standard string backslash",
                r"SELECT 'a\'; SELECT 2",
                &[r"SELECT 'a\'", "SELECT 2"],
            ),
            (
                "escape string",
                r"SELECT E'a\';b'; SELECT 2",
                &[r"SELECT E'a\';b'", "SELECT 2"],
            ),
            (
                "lowercase escape string",
                r"SELECT e'\\'; SELECT 2",
                &[r"SELECT e'\\'", "SELECT 2"],
            ),
            (
                "word ending in e",
                r"SELECT name'\'; SELECT 2",
                &[r"SELECT name'\'", "SELECT 2"],
            ),
            (
                "identifier",
                r#"SELECT 1 AS "a;""b"; SELECT 2"#,
                &[r#"SELECT 1 AS "a;""b""#, "SELECT 2"],
            ),
            (
                "dollar quote",
                "SELECT $$a;b$$; SELECT 2",
                &["SELECT $$a;b$$", "SELECT 2"],
            ),
            (
                "tagged dollar quote",
                "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2",
                &["DO $body$ BEGIN PERFORM 1; END $body$", "SELECT 2"],
            ),
            (
                "nested dollar tags",
                "SELECT $a$ $$;$$ $a$; SELECT 2",
                &["SELECT $a$ $$;$$ $a$", "SELECT 2"],
            ),
            (
                "positional parameter",
                "PREPARE p AS SELECT $1; SELECT 2",
                &["PREPARE p AS SELECT $1", "SELECT 2"],
            ),
            (
                "dollar in identifier",
                "SELECT a$b; SELECT 2",
                &["SELECT a$b", "SELECT 2"],
            ),
            (
                "line comment",
                "SELECT 1 -- a;b\n; SELECT 2",
                &["SELECT 1 -- a;b", "SELECT 2"],
            ),
            (
                "leading comment dropped",
                "-- setup\nSELECT 1;",
                &["SELECT 1"],
            ),
            (
                "comment-only statement",
                "SELECT 1; -- done\n/* end; */",
                &["SELECT 1"],
            ),
            (
                "block comment",
                "SELECT /* ; */ 1; SELECT 2",
                &["SELECT /* ; */ 1", "SELECT 2"],
            ),
            (
                "nested block comment",
                "SELECT /* /* ; */ ; */ 1; SELECT 2",
                &["SELECT /* /* ; */ ; */ 1", "SELECT 2"],
            ),
            (
                "parentheses",
                "CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b); SELECT 2",
                &[
                    "CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b)",
                    "SELECT 2",
                ],
            ),
            (
                "unicode",
                "SELECT 'é;ü'; SELECT 'ß'",
                &["SELECT 'é;ü'", "SELECT 'ß'"],
            ),
            (
                "unterminated literal",
                "SELECT 'abc; SELECT 2",
                &["SELECT 'abc; SELECT 2"],
            ),
            ("only whitespace", "  \n\t ", &[]),
        ];
        for (name, sql, expected) in cases {
            assert_eq!(split_statements(sql), *expected, "case {name}: {sql:?}");
        }
    }
}
