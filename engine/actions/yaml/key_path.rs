//! Key paths such as `bridge.permissions."@matt:echo6.co"`: segments separated by dots, where a
//! segment that contains a dot or a quote is written in double quotes.
//!
//! Invariant: a parsed path has at least one segment and no segment is empty, and
//! `path.to_string().parse()` returns the same path.

use std::fmt;
use std::str::FromStr;

use super::YamlEditError;

/// A path of mapping keys from the document root, one segment per nesting level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPath {
    segments: Vec<String>,
}

impl KeyPath {
    /// Builds a path from already split segments; rejects an empty list or an empty segment.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, YamlEditError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        let path = KeyPath { segments };
        if path.segments.is_empty() {
            return Err(invalid("", "the path is empty"));
        }
        if let Some(index) = path.segments.iter().position(String::is_empty) {
            let reason = format!("segment {} is empty", index + 1);
            return Err(invalid(&path.to_string(), &reason));
        }
        Ok(path)
    }

    /// Returns the keys, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Returns the path made of the first `len` segments.
    pub(super) fn prefix(&self, len: usize) -> KeyPath {
        KeyPath {
            segments: self.segments[..len].to_vec(),
        }
    }
}

impl FromStr for KeyPath {
    type Err = YamlEditError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(invalid(input, "the path is empty"));
        }

        let mut segments = Vec::new();
        let mut chars = input.char_indices().peekable();
        loop {
            let segment = match chars.peek() {
                Some(&(_, '"')) => {
                    chars.next();
                    parse_quoted(input, &mut chars)?
                }
                _ => parse_plain(&mut chars),
            };
            if segment.is_empty() {
                let reason = format!("segment {} is empty", segments.len() + 1);
                return Err(invalid(input, &reason));
            }
            segments.push(segment);

            match chars.next() {
                None => break,
                Some((_, '.')) if chars.peek().is_none() => {
                    let reason = format!("segment {} is empty", segments.len() + 1);
                    return Err(invalid(input, &reason));
                }
                Some((_, '.')) => continue,
                Some((offset, other)) => {
                    let reason = format!(
                        "expected `.` after the quoted segment at byte {offset}, found `{other}`"
                    );
                    return Err(invalid(input, &reason));
                }
            }
        }
        Ok(KeyPath { segments })
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                f.write_str(".")?;
            }
            if needs_quotes(segment) {
                write!(
                    f,
                    "\"{}\"",
                    segment.replace('\\', "\\\\").replace('"', "\\\"")
                )?;
            } else {
                f.write_str(segment)?;
            }
        }
        Ok(())
    }
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Reads an unquoted segment up to the next dot or the end of the input.
fn parse_plain(chars: &mut Chars<'_>) -> String {
    let mut segment = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c == '.' {
            break;
        }
        segment.push(c);
        chars.next();
    }
    segment
}

/// Reads a quoted segment after its opening quote; `\"` and `\\` stand for `"` and `\`.
fn parse_quoted(input: &str, chars: &mut Chars<'_>) -> Result<String, YamlEditError> {
    let mut segment = String::new();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok(segment),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => segment.push(escaped),
                Some((_, other)) => {
                    let reason = format!(
                        "unknown escape `\\{other}` at byte {offset}; only `\\\"` and `\\\\` are allowed"
                    );
                    return Err(invalid(input, &reason));
                }
                None => break,
            },
            _ => segment.push(c),
        }
    }
    Err(invalid(input, "a quoted segment has no closing `\"`"))
}

fn needs_quotes(segment: &str) -> bool {
    segment.contains(['.', '"', '\\'])
}

fn invalid(input: &str, reason: &str) -> YamlEditError {
    YamlEditError::InvalidPath {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}
