//! The text edits behind the public functions: `yaml-edit` syntax-tree edits, and line splices at
//! byte offsets that the tree gives.
//!
//! Invariant: the caller has already checked the path against the parsed data (every key on the
//! way is a mapping or null, and the targeted key exists when the operation needs it), and it
//! verifies the returned text. These functions only have to leave other lines untouched.

use std::str::FromStr;

use serde_json::Value;
use yaml_edit::{AsYaml, Document, Mapping, MappingEntry, Sequence};

use super::render;
use super::{KeyPath, YamlEditError};

/// Sets `value` at `path`, creating missing mappings.
/// `empty_document` is set when the text contains no data (only comments, blank lines, or nothing),
/// which `yaml-edit` cannot always parse as a document. The key then goes at the end.
pub(super) fn set(
    text: &str,
    path: &KeyPath,
    value: &Value,
    empty_document: bool,
) -> Result<String, YamlEditError> {
    let step = render::detect_indent_step(text);
    if empty_document {
        let value = nest(&path.segments()[1..], value);
        return Ok(append_top_level_entry(
            text,
            &path.segments()[0],
            &value,
            step,
        ));
    }
    let doc = parse_tree(text, path)?;

    match locate(&doc, path)? {
        Spot::Entry {
            mapping,
            entry,
            depth,
        } => {
            let value = nest(&path.segments()[depth + 1..], value);
            replace_value(text, &doc, &mapping, &entry, &value, step, path)
        }
        Spot::Missing { mapping, depth } => {
            let key = &path.segments()[depth];
            let value = nest(&path.segments()[depth + 1..], value);
            insert_entry(text, &doc, mapping, key, &value, step, path)
        }
    }
}

/// Appends `item` to the existing sequence at `path`.
pub(super) fn append(text: &str, path: &KeyPath, item: &Value) -> Result<String, YamlEditError> {
    let doc = parse_tree(text, path)?;
    let (_, entry) = locate_entry(&doc, path)?;
    let sequence = sequence_of(&entry, path)?;

    let item_text = if sequence.is_flow_style() {
        render::flow(item)
    } else {
        render::inline(item)
            .unwrap_or_else(|| render::block(item, 0, render::detect_indent_step(text)))
    };
    let fragment = Fragment::parse(&item_text, path)?;
    sequence.push(fragment.as_yaml());
    tracing::debug!(%path, "appended a sequence item through yaml-edit");
    Ok(doc.to_string())
}

/// Removes the key at `path`, which exists.
pub(super) fn remove(text: &str, path: &KeyPath) -> Result<String, YamlEditError> {
    let doc = parse_tree(text, path)?;
    let (mapping, entry) = locate_entry(&doc, path)?;
    remove_key(&mapping, &entry);
    tracing::debug!(%path, "removed a key through yaml-edit");
    Ok(trim_new_trailing_blank_lines(text, doc.to_string()))
}

/// Removes the items at `indices` (ascending) from the sequence at `path`, then the key itself
/// if `drop_key` is set.
pub(super) fn remove_items(
    text: &str,
    path: &KeyPath,
    indices: &[usize],
    drop_key: bool,
) -> Result<String, YamlEditError> {
    let doc = parse_tree(text, path)?;
    let (mapping, entry) = locate_entry(&doc, path)?;

    if drop_key {
        remove_key(&mapping, &entry);
    } else {
        let sequence = sequence_of(&entry, path)?;
        for &index in indices.iter().rev() {
            sequence.remove(index);
        }
    }
    tracing::debug!(%path, removed = indices.len(), drop_key, "removed sequence items through yaml-edit");
    Ok(trim_new_trailing_blank_lines(text, doc.to_string()))
}

/// The place in the syntax tree where a key path ends.
enum Spot {
    /// The entry for segment `depth` exists in `mapping`. Either `depth` is the last segment, or
    /// the entry's value is null and the rest of the path has to be created under it.
    Entry {
        mapping: Mapping,
        entry: MappingEntry,
        depth: usize,
    },
    /// Segment `depth` is missing from `mapping`; `None` means the document has no root mapping.
    Missing {
        mapping: Option<Mapping>,
        depth: usize,
    },
}

fn locate(doc: &Document, path: &KeyPath) -> Result<Spot, YamlEditError> {
    let Some(mut mapping) = doc.as_mapping() else {
        return Ok(Spot::Missing {
            mapping: None,
            depth: 0,
        });
    };

    let last = path.segments().len() - 1;
    for (depth, segment) in path.segments().iter().enumerate() {
        let Some(entry) = find_entry(&mapping, segment) else {
            return Ok(Spot::Missing {
                mapping: Some(mapping),
                depth,
            });
        };
        let child = entry
            .value_node()
            .and_then(|node| node.as_mapping().cloned());
        match child {
            Some(child) if depth < last => mapping = child,
            _ => {
                return Ok(Spot::Entry {
                    mapping,
                    entry,
                    depth,
                })
            }
        }
    }
    unreachable!("the loop returns at the last segment")
}

/// Locates the entry of the last segment, which exists in the parsed data.
fn locate_entry(doc: &Document, path: &KeyPath) -> Result<(Mapping, MappingEntry), YamlEditError> {
    match locate(doc, path)? {
        Spot::Entry {
            mapping,
            entry,
            depth,
        } if depth + 1 == path.segments().len() => Ok((mapping, entry)),
        _ => Err(YamlEditError::Unsupported {
            path: path.clone(),
            reason: "the key is not written in the file itself; it may come from an alias or a \
                     merge key (`<<`), so edit the anchored node instead"
                .to_string(),
        }),
    }
}

fn sequence_of(entry: &MappingEntry, path: &KeyPath) -> Result<Sequence, YamlEditError> {
    entry
        .value_node()
        .and_then(|node| node.as_sequence().cloned())
        .ok_or_else(|| YamlEditError::Unsupported {
            path: path.clone(),
            reason: "the sequence is written as an alias or a tagged node, which these edits do \
                     not change"
                .to_string(),
        })
}

/// Finds the entry whose key reads as `segment`. A plain key that YAML reads as another type
/// (`8008:`, `true:`) matches its text, as the parsed data turns such keys into strings.
fn find_entry(mapping: &Mapping, segment: &str) -> Option<MappingEntry> {
    mapping.find_entry_by_key(segment).or_else(|| {
        mapping.entries().find(|entry| {
            let key = entry.key_node();
            let scalar = key.as_ref().and_then(|key| key.as_scalar());
            scalar.is_some_and(|scalar| !scalar.is_quoted() && scalar.value() == segment)
        })
    })
}

fn remove_key(mapping: &Mapping, entry: &MappingEntry) {
    if let Some(key) = entry.key_node() {
        mapping.remove(key);
    }
}

/// Replaces the value of an existing entry. Scalars and anything in a flow mapping go through
/// `yaml-edit`; a block collection is spliced in as lines at the file's indentation step.
fn replace_value(
    text: &str,
    doc: &Document,
    mapping: &Mapping,
    entry: &MappingEntry,
    value: &Value,
    step: usize,
    path: &KeyPath,
) -> Result<String, YamlEditError> {
    let flow = mapping.is_flow_style();
    let inline = if flow {
        Some(render::flow(value))
    } else {
        render::inline(value)
    };
    let Some(inline) = inline else {
        return splice_block_value(text, entry, value, step, path);
    };

    let fragment = Fragment::parse(&inline, path)?;
    entry.set_value(fragment.as_yaml(), flow);
    tracing::debug!(%path, "replaced a value through yaml-edit");
    Ok(doc.to_string())
}

/// Replaces the value of a block mapping entry with a block collection, as lines under the key.
/// The key line keeps its text up to the colon and any comment; the old value's lines go.
fn splice_block_value(
    text: &str,
    entry: &MappingEntry,
    value: &Value,
    step: usize,
    path: &KeyPath,
) -> Result<String, YamlEditError> {
    let entry_start = entry.byte_range().start as usize;
    let column = entry_start - line_start(text, entry_start);
    let colon = colon_after_key(text, entry, path)?;
    let key_line_end = line_end(text, colon);

    // The lines from the key line to the end of the old value are rewritten. A comment that
    // followed the old value on its last line, or the key on its line, is kept on the key line.
    let old_value = entry
        .value_node()
        .map(|node| node.byte_range())
        .filter(|range| range.end > range.start);
    let (tail_start, mut key_line_rest) = match old_value {
        Some(range) => {
            let value_start = range.start as usize;
            let value_end = value_start + text[value_start..range.end as usize].trim_end().len();
            let tail_start = line_end(text, value_end.saturating_sub(1).max(value_start));
            let key_line_rest = if value_start > key_line_end {
                text[colon + 1..key_line_end].trim_end().to_string()
            } else {
                String::new()
            };
            let after_value = text[value_end..tail_start].trim();
            if !after_value.is_empty() && !after_value.starts_with('#') {
                return Err(unsupported_layout(path, after_value));
            }
            let rest = if after_value.is_empty() {
                key_line_rest
            } else {
                format!("{key_line_rest} {after_value}")
            };
            (tail_start, rest)
        }
        None => (
            key_line_end,
            text[colon + 1..key_line_end].trim_end().to_string(),
        ),
    };
    if !key_line_rest.is_empty() && !key_line_rest.starts_with(' ') {
        key_line_rest.insert(0, ' ');
    }

    let block = render::block(value, column + step, step);
    let mut out = String::with_capacity(text.len() + block.len());
    out.push_str(&text[..=colon]);
    out.push_str(&key_line_rest);
    out.push('\n');
    out.push_str(block.strip_suffix('\n').unwrap_or(&block));
    out.push_str(&text[tail_start..]);
    tracing::debug!(%path, column, step, "replaced a value with block lines");
    Ok(out)
}

/// Adds a new entry for `key`. A top-level entry goes at the end of the file after one blank
/// line, and a block collection under a nested key is spliced in as lines. A scalar under a
/// nested key, and anything in a flow mapping, goes through `yaml-edit`.
fn insert_entry(
    text: &str,
    doc: &Document,
    mapping: Option<Mapping>,
    key: &str,
    value: &Value,
    step: usize,
    path: &KeyPath,
) -> Result<String, YamlEditError> {
    let Some(mapping) = mapping.filter(|m| m.is_flow_style() || !is_root(doc, m)) else {
        return Ok(append_top_level_entry(text, key, value, step));
    };

    let flow = mapping.is_flow_style();
    let inline = if flow {
        Some(render::flow(value))
    } else {
        render::inline(value)
    };
    let Some(inline) = inline else {
        return Ok(splice_nested_entry(text, &mapping, key, value, step));
    };

    let key_fragment = Fragment::parse(&render::string(key), path)?;
    let value_fragment = Fragment::parse(&inline, path)?;
    mapping.set(key_fragment.as_yaml(), value_fragment.as_yaml());
    tracing::debug!(%path, "inserted a key through yaml-edit");
    Ok(doc.to_string())
}

fn is_root(doc: &Document, mapping: &Mapping) -> bool {
    doc.as_mapping()
        .is_some_and(|root| root.byte_range() == mapping.byte_range())
}

/// Appends `key: value` at the end of the file, after one blank line unless the file is empty
/// or already ends with a blank line. A file without a final line break keeps having none.
fn append_top_level_entry(text: &str, key: &str, value: &Value, step: usize) -> String {
    let final_line_break = text.is_empty() || text.ends_with('\n');
    let mut out = text.to_string();
    if !final_line_break {
        out.push('\n');
    }
    if !out.trim().is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let entry = render::block_entry(key, value, 0, step);
    out.push_str(if final_line_break {
        &entry
    } else {
        entry.trim_end_matches('\n')
    });
    tracing::debug!(key, "appended a top-level key at the end of the file");
    out
}

/// Inserts `key:` with a block collection after the last entry of a nested block mapping, at
/// the column of its entries.
fn splice_nested_entry(
    text: &str,
    mapping: &Mapping,
    key: &str,
    value: &Value,
    step: usize,
) -> String {
    let column = mapping.entries().next().map_or(0, |first| {
        let start = first.byte_range().start as usize;
        start - line_start(text, start)
    });
    let at = mapping.byte_range().end as usize;
    let lines = render::block_entry(key, value, column, step);

    // At the end of a file without a final line break, the break moves before the new lines.
    let mut out = String::with_capacity(text.len() + lines.len() + 1);
    out.push_str(&text[..at]);
    if text[..at].ends_with('\n') {
        out.push_str(&lines);
    } else {
        out.push('\n');
        out.push_str(lines.trim_end_matches('\n'));
    }
    out.push_str(&text[at..]);
    tracing::debug!(key, column, step, "inserted a nested key as block lines");
    out
}

/// Returns the byte offset of the `:` that ends the entry's key.
fn colon_after_key(
    text: &str,
    entry: &MappingEntry,
    path: &KeyPath,
) -> Result<usize, YamlEditError> {
    let key_end = entry
        .key_node()
        .map(|key| key.byte_range().end as usize)
        .ok_or_else(|| unsupported_layout(path, "an entry without a key"))?;
    let gap = text[key_end..].len() - text[key_end..].trim_start_matches([' ', '\t']).len();
    let colon = key_end + gap;
    if text[colon..].starts_with(':') {
        Ok(colon)
    } else {
        Err(unsupported_layout(
            path,
            "a key whose `:` is not on the key's line",
        ))
    }
}

fn unsupported_layout(path: &KeyPath, found: &str) -> YamlEditError {
    YamlEditError::Unsupported {
        path: path.clone(),
        reason: format!("unexpected layout near the key: {found}"),
    }
}

/// Wraps `value` in one mapping per segment: `["a", "b"]` and `1` give `{a: {b: 1}}`.
fn nest(segments: &[String], value: &Value) -> Value {
    segments.iter().rev().fold(value.clone(), |inner, segment| {
        let mut map = serde_json::Map::new();
        map.insert(segment.clone(), inner);
        Value::Object(map)
    })
}

/// Removing the last entry of a file leaves the blank line that separated it from the lines
/// before, because `yaml-edit` keeps it. Returns `edited` ending like `original`: with no line
/// break, one, or the blank lines it already had.
fn trim_new_trailing_blank_lines(original: &str, edited: String) -> String {
    if original.ends_with("\n\n") {
        return edited;
    }
    let mut trimmed = edited.trim_end_matches('\n').to_string();
    if original.ends_with('\n') {
        trimmed.push('\n');
    }
    trimmed
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |newline| newline + 1)
}

/// Returns the offset of the `\n` that ends the line holding `offset`, or the text length.
fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map_or(text.len(), |newline| offset + newline)
}

/// Parses `text` into a `yaml-edit` document and checks that it prints back byte for byte.
fn parse_tree(text: &str, path: &KeyPath) -> Result<Document, YamlEditError> {
    let doc = Document::from_str(text).map_err(|error| YamlEditError::Unsupported {
        path: path.clone(),
        reason: format!("the lossless YAML parser rejected the file: {error}"),
    })?;
    if doc.to_string() != text {
        return Err(YamlEditError::Unsupported {
            path: path.clone(),
            reason: "the lossless YAML parser does not reproduce this file byte for byte"
                .to_string(),
        });
    }
    Ok(doc)
}

/// A YAML node written by [`render`] and parsed on its own, to hand to `yaml-edit`.
enum Fragment {
    Scalar(yaml_edit::Scalar),
    Mapping(Mapping),
    Sequence(Sequence),
}

impl Fragment {
    fn parse(text: &str, path: &KeyPath) -> Result<Fragment, YamlEditError> {
        let doc = Document::from_str(text).ok();
        let fragment = doc.and_then(|doc| {
            doc.as_scalar()
                .map(Fragment::Scalar)
                .or_else(|| doc.as_mapping().map(Fragment::Mapping))
                .or_else(|| doc.as_sequence().map(Fragment::Sequence))
        });
        fragment.ok_or_else(|| YamlEditError::Unsupported {
            path: path.clone(),
            reason: format!("the lossless YAML parser could not read the new value `{text}`"),
        })
    }

    fn as_yaml(&self) -> &dyn AsYaml {
        match self {
            Fragment::Scalar(scalar) => scalar,
            Fragment::Mapping(mapping) => mapping,
            Fragment::Sequence(sequence) => sequence,
        }
    }
}
