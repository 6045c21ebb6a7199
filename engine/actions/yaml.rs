//! Lossless edits of YAML configuration files at a key path: `set`, `append`, `remove` and
//! `remove_items` over text, plus `get` to read a value.
//!
//! Invariant: an edit changes only the lines of the key it touches. Comments, key order, quoting
//! and indentation of every other line stay byte-identical. An edit whose result is already in
//! place returns the input unchanged. Every result is parsed again with `serde-saphyr` and its
//! data compared with the expected document; on any difference the edit returns
//! [`YamlEditError::Verification`] instead of a wrong text.
//!
//! Edits go through `yaml-edit`'s lossless syntax tree, except two cases that it writes in a
//! layout the file does not use, which are spliced in as lines located through that tree:
//! - a non-empty mapping or sequence value, because `yaml-edit` 0.3 always indents a block value
//!   two spaces right of its key (`MappingEntry::new` documents this), while a file may use four;
//! - a new top-level key, because `yaml-edit` 0.3 writes it right after the last line of the
//!   file, comment lines included, with no blank line before it.
//!
//! Strings are written plain only when YAML 1.1 and 1.2 readers both read them back as strings;
//! others, such as `"true"`, `"123"`, `"*"` or `"@matt:echo6.co"`, are double-quoted.

mod key_path;
mod render;
mod tree;

use serde_json::Value;

pub use key_path::KeyPath;

/// Errors of key path parsing and of YAML reads and edits, each naming the key path.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum YamlEditError {
    /// The key path text is malformed.
    #[error("invalid key path `{input}`: {reason}")]
    #[diagnostic(
        code(rb6::yaml::invalid_path),
        help("write keys separated by dots, and put a key that contains a dot in double quotes: bridge.permissions.\"@matt:echo6.co\"")
    )]
    InvalidPath { input: String, reason: String },

    /// The input text is not valid YAML.
    #[error(
        "cannot read `{path}`: the YAML is invalid at line {line}, column {column}: {message}"
    )]
    #[diagnostic(
        code(rb6::yaml::invalid_yaml),
        help("fix the file at that line, or restore it from its previous version")
    )]
    InvalidYaml {
        path: KeyPath,
        line: u64,
        column: u64,
        message: String,
    },

    /// A key on the path has a value other than a mapping, so the path cannot go through it.
    #[error("cannot use `{path}`: `{at}` is {found}, not a mapping")]
    #[diagnostic(
        code(rb6::yaml::not_a_mapping),
        help("check the key path against the file: only mappings can contain keys")
    )]
    NotAMapping {
        path: KeyPath,
        at: String,
        found: &'static str,
    },

    /// The value at the key is not a sequence.
    #[error("cannot use `{path}` as a list: it is {found}, not a sequence")]
    #[diagnostic(
        code(rb6::yaml::not_a_sequence),
        help("use `set` to replace the value, or point the path at a sequence")
    )]
    NotASequence { path: KeyPath, found: &'static str },

    /// The file is valid YAML but written in a form that these edits do not handle.
    #[error("cannot edit `{path}`: {reason}")]
    #[diagnostic(code(rb6::yaml::unsupported))]
    Unsupported { path: KeyPath, reason: String },

    /// The edited text did not read back as the expected data, so no text is returned.
    #[error("the edit of `{path}` was rejected because the result {reason}")]
    #[diagnostic(
        code(rb6::yaml::verification_failed),
        help("the file was not changed; edit this key by hand and report the file layout that caused this")
    )]
    Verification { path: KeyPath, reason: String },
}

/// Returns the value at `path`, or `None` when a key on the path is absent or null.
pub fn get(text: &str, path: &KeyPath) -> Result<Option<Value>, YamlEditError> {
    let data = read_data(text, path)?;
    Ok(lookup(&data, path)?.cloned())
}

/// Sets the value at `path`, replacing a scalar or a whole mapping or sequence, and creating
/// missing mappings on the way. A new top-level key goes at the end of the file after one blank
/// line. A new nested key goes after the last entry of its mapping, indented like its siblings.
pub fn set(text: &str, path: &KeyPath, value: &Value) -> Result<String, YamlEditError> {
    let before = read_data(text, path)?;
    let mut expected = before.clone();
    set_data(&mut expected, path, value.clone())?;
    if expected == before {
        return Ok(text.to_string());
    }

    let edited = tree::set(text, path, value, before.is_null())?;
    verify(&edited, path, &expected)?;
    Ok(edited)
}

/// Appends `item` to the sequence at `path`, creating a block sequence if the key is absent or
/// null. Returns the text unchanged when the sequence already contains an equal item.
pub fn append(text: &str, path: &KeyPath, item: &Value) -> Result<String, YamlEditError> {
    let before = read_data(text, path)?;
    let current = match lookup(&before, path)? {
        None | Some(Value::Null) => return set(text, path, &Value::Array(vec![item.clone()])),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(not_a_sequence(path, other)),
    };
    if current.contains(item) {
        return Ok(text.to_string());
    }

    let mut expected = before.clone();
    if let Some(Value::Array(items)) = lookup_mut(&mut expected, path) {
        items.push(item.clone());
    }
    let edited = tree::append(text, path, item)?;
    verify(&edited, path, &expected)?;
    Ok(edited)
}

/// Removes the key at `path` with its value. Comment lines above the key stay. Returns the text
/// unchanged when the key is absent.
pub fn remove(text: &str, path: &KeyPath) -> Result<String, YamlEditError> {
    let before = read_data(text, path)?;
    if !contains_key(&before, path)? {
        return Ok(text.to_string());
    }

    let mut expected = before.clone();
    remove_data(&mut expected, path);
    let edited = tree::remove(text, path)?;
    verify(&edited, path, &expected)?;
    Ok(edited)
}

/// Removes every item equal to one of `items` from the sequence at `path`. With
/// `remove_if_empty`, the key itself is removed when the sequence is empty afterwards. Returns
/// the text unchanged when the key is absent or null or nothing needs removing.
pub fn remove_items(
    text: &str,
    path: &KeyPath,
    items: &[Value],
    remove_if_empty: bool,
) -> Result<String, YamlEditError> {
    let before = read_data(text, path)?;
    let current = match lookup(&before, path)? {
        None | Some(Value::Null) => return Ok(text.to_string()),
        Some(Value::Array(current)) => current,
        Some(other) => return Err(not_a_sequence(path, other)),
    };
    let doomed: Vec<usize> = (0..current.len())
        .filter(|&index| items.contains(&current[index]))
        .collect();
    let drop_key = remove_if_empty && current.len() == doomed.len();
    if doomed.is_empty() && !drop_key {
        return Ok(text.to_string());
    }

    let mut expected = before.clone();
    if drop_key {
        remove_data(&mut expected, path);
    } else if let Some(Value::Array(kept)) = lookup_mut(&mut expected, path) {
        kept.retain(|item| !items.contains(item));
    }
    let edited = tree::remove_items(text, path, &doomed, drop_key)?;
    verify(&edited, path, &expected)?;
    Ok(edited)
}

/// Parses `text` into data, reporting invalid YAML with its line and column.
fn read_data(text: &str, path: &KeyPath) -> Result<Value, YamlEditError> {
    parse_data(text).map_err(|problem| YamlEditError::InvalidYaml {
        path: path.clone(),
        line: problem.line,
        column: problem.column,
        message: problem.message,
    })
}

/// A YAML syntax error with its 1-based position.
struct ParseProblem {
    line: u64,
    column: u64,
    message: String,
}

fn parse_data(text: &str) -> Result<Value, ParseProblem> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|error| {
        let location = error.location();
        ParseProblem {
            line: location.as_ref().map_or(0, |l| l.line()),
            column: location.as_ref().map_or(0, |l| l.column()),
            message: error.to_string(),
        }
    })
}

/// Checks that `edited` parses to exactly `expected`.
fn verify(edited: &str, path: &KeyPath, expected: &Value) -> Result<(), YamlEditError> {
    let rejected = |reason: String| YamlEditError::Verification {
        path: path.clone(),
        reason,
    };
    let actual = parse_data(edited).map_err(|problem| {
        rejected(format!(
            "is invalid YAML at line {}, column {}: {}",
            problem.line, problem.column, problem.message
        ))
    })?;
    if &actual == expected {
        tracing::debug!(%path, "edited YAML verified");
        return Ok(());
    }

    let actual_value = lookup(&actual, path).ok().flatten();
    let expected_value = lookup(expected, path).ok().flatten();
    if actual_value != expected_value {
        let show = |value: Option<&Value>| value.map_or("absent".to_string(), Value::to_string);
        return Err(rejected(format!(
            "reads back {} at this key instead of {}",
            show(actual_value),
            show(expected_value)
        )));
    }
    Err(rejected("changes data outside this key".to_string()))
}

/// Walks `path` through nested mappings. A missing or null key on the way gives `None`; a
/// scalar or sequence on the way is an error.
fn lookup<'a>(data: &'a Value, path: &KeyPath) -> Result<Option<&'a Value>, YamlEditError> {
    let mut node = data;
    for (depth, segment) in path.segments().iter().enumerate() {
        let map = match node {
            Value::Null => return Ok(None),
            Value::Object(map) => map,
            other => return Err(not_a_mapping(path, depth, other)),
        };
        match map.get(segment) {
            Some(child) => node = child,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

fn lookup_mut<'a>(data: &'a mut Value, path: &KeyPath) -> Option<&'a mut Value> {
    path.segments()
        .iter()
        .try_fold(data, |node, segment| node.as_object_mut()?.get_mut(segment))
}

/// Returns whether the key at `path` exists (with any value, null included).
fn contains_key(data: &Value, path: &KeyPath) -> Result<bool, YamlEditError> {
    let (last, parents) = path
        .segments()
        .split_last()
        .expect("a key path is never empty");
    let parent = if parents.is_empty() {
        Some(data)
    } else {
        lookup(data, &path.prefix(parents.len()))?
    };
    match parent {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(map)) => Ok(map.contains_key(last)),
        Some(other) => Err(not_a_mapping(path, parents.len(), other)),
    }
}

/// Applies `set` to data: creates missing or null mappings on the way.
fn set_data(data: &mut Value, path: &KeyPath, value: Value) -> Result<(), YamlEditError> {
    let mut node = data;
    for (depth, segment) in path.segments().iter().enumerate() {
        if node.is_null() {
            *node = Value::Object(serde_json::Map::new());
        }
        let map = match node {
            Value::Object(map) => map,
            other => return Err(not_a_mapping(path, depth, other)),
        };
        node = map.entry(segment.clone()).or_insert(Value::Null);
    }
    *node = value;
    Ok(())
}

fn remove_data(data: &mut Value, path: &KeyPath) {
    let (last, parents) = path
        .segments()
        .split_last()
        .expect("a key path is never empty");
    let parent = if parents.is_empty() {
        Some(data)
    } else {
        lookup_mut(data, &path.prefix(parents.len()))
    };
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

/// Builds the error for a non-mapping found where segment `depth` of `path` should be looked up.
fn not_a_mapping(path: &KeyPath, depth: usize, found: &Value) -> YamlEditError {
    let at = if depth == 0 {
        "the document root".to_string()
    } else {
        path.prefix(depth).to_string()
    };
    YamlEditError::NotAMapping {
        path: path.clone(),
        at,
        found: kind_name(found),
    }
}

fn not_a_sequence(path: &KeyPath, found: &Value) -> YamlEditError {
    YamlEditError::NotASequence {
        path: path.clone(),
        found: kind_name(found),
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}
