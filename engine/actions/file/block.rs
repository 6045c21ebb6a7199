//! Marker-delimited blocks in text files, like Ansible's `blockinfile`.
//!
//! A block is the lines between `<comment> BEGIN rb6 <name>` and `<comment> END rb6 <name>`,
//! markers included. Invariants: inserting the same block twice leaves the text unchanged,
//! lines outside the block keep their bytes (CRLF included), and [`remove_block`] after an
//! [`insert_block`] into text without that block returns the original text byte for byte.

use regex::Regex;

/// Names the markers of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMarkers {
    /// Block name, the text after `BEGIN rb6 ` in the marker lines.
    pub name: String,
    /// Comment prefix of the marker lines, `#` by default.
    pub comment: String,
}

impl BlockMarkers {
    /// Builds markers for block `name` with the `#` comment prefix.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            comment: "#".to_owned(),
        }
    }

    /// Returns the opening marker line, without line ending.
    pub fn begin(&self) -> String {
        format!("{} BEGIN rb6 {}", self.comment, self.name)
    }

    /// Returns the closing marker line, without line ending.
    pub fn end(&self) -> String {
        format!("{} END rb6 {}", self.comment, self.name)
    }
}

/// Position at which [`insert_block`] puts a block that is not in the text yet.
#[derive(Debug, Clone)]
pub enum BlockPosition {
    /// After the last line.
    End,
    /// After the first line that the regex matches (line ending excluded).
    AfterRegex(Regex),
    /// Before the first line that the regex matches (line ending excluded).
    BeforeRegex(Regex),
    /// After the first line equal to this text (line ending excluded).
    AfterLine(String),
    /// Before the first line equal to this text (line ending excluded).
    BeforeLine(String),
}

impl BlockPosition {
    fn describe(&self) -> String {
        match self {
            Self::End => "end of file".to_owned(),
            Self::AfterRegex(re) | Self::BeforeRegex(re) => format!("line matching /{re}/"),
            Self::AfterLine(line) | Self::BeforeLine(line) => format!("line `{line}`"),
        }
    }
}

/// Failure to edit a block.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BlockError {
    /// The markers of the block are not one BEGIN line followed by one END line.
    #[error("block `{name}` is malformed: found {begins} `BEGIN` and {ends} `END` marker lines, expected one of each with BEGIN first")]
    #[diagnostic(help("fix the marker lines in the file by hand, then run again"))]
    Malformed {
        /// Block name.
        name: String,
        /// Number of BEGIN marker lines.
        begins: usize,
        /// Number of END marker lines.
        ends: usize,
    },

    /// No line matches the position anchor.
    #[error("cannot insert block `{name}`: no {anchor} in the file")]
    #[diagnostic(help("check the anchor, or insert at the end of the file"))]
    AnchorNotFound {
        /// Block name.
        name: String,
        /// Description of the anchor.
        anchor: String,
    },

    /// The block content contains one of its own marker lines.
    #[error("the content of block `{name}` contains its own marker line `{marker}`")]
    #[diagnostic(help("remove that line from the block content"))]
    MarkerInContent {
        /// Block name.
        name: String,
        /// Marker line found in the content.
        marker: String,
    },
}

/// Inserts `block` between the markers into `text`, or replaces the block in place when the
/// markers are there already.
///
/// New lines use the line ending of the first line of `text` (LF when it has none). A trailing
/// newline of `block` is ignored.
pub fn insert_block(
    text: &str,
    markers: &BlockMarkers,
    block: &str,
    position: &BlockPosition,
) -> Result<String, BlockError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let eol = line_ending(&lines);
    let mut new_lines = block_lines(markers, block, eol)?;

    if let Some((begin, end)) = find_block(&lines, markers)? {
        if !lines[end].ends_with('\n') {
            strip_line_ending(new_lines.last_mut().expect("markers are always present"));
        }
        return Ok(join(&lines[..begin], &new_lines, &lines[end + 1..]));
    }

    let index = insertion_index(&lines, position).ok_or_else(|| BlockError::AnchorNotFound {
        name: markers.name.clone(),
        anchor: position.describe(),
    })?;

    // After a last line without line ending, the block takes over that missing ending, so
    // remove_block can restore it.
    if index > 0 && !lines[index - 1].ends_with('\n') {
        let mut before: Vec<String> = lines[..index].iter().map(|l| (*l).to_owned()).collect();
        before.last_mut().expect("index > 0").push_str(eol);
        strip_line_ending(new_lines.last_mut().expect("markers are always present"));
        let before: Vec<&str> = before.iter().map(String::as_str).collect();
        return Ok(join(&before, &new_lines, &[]));
    }
    Ok(join(&lines[..index], &new_lines, &lines[index..]))
}

/// Removes the block and its markers from `text`; text without the block is returned as it is.
pub fn remove_block(text: &str, markers: &BlockMarkers) -> Result<String, BlockError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some((begin, end)) = find_block(&lines, markers)? else {
        return Ok(text.to_owned());
    };

    let mut before: Vec<String> = lines[..begin].iter().map(|l| (*l).to_owned()).collect();
    let block_was_last_without_ending = !lines[end].ends_with('\n');
    if block_was_last_without_ending {
        if let Some(last) = before.last_mut() {
            strip_line_ending(last);
        }
    }

    let before: Vec<&str> = before.iter().map(String::as_str).collect();
    Ok(join(&before, &[], &lines[end + 1..]))
}

/// Returns the (BEGIN, END) line indexes of the block, or `None` when it is absent.
fn find_block(
    lines: &[&str],
    markers: &BlockMarkers,
) -> Result<Option<(usize, usize)>, BlockError> {
    let (begin_marker, end_marker) = (markers.begin(), markers.end());
    let begins: Vec<usize> = positions(lines, &begin_marker);
    let ends: Vec<usize> = positions(lines, &end_marker);

    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => Ok(None),
        ([begin], [end]) if begin < end => Ok(Some((*begin, *end))),
        _ => Err(BlockError::Malformed {
            name: markers.name.clone(),
            begins: begins.len(),
            ends: ends.len(),
        }),
    }
}

fn positions(lines: &[&str], marker: &str) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line_content(line).trim_end() == marker)
        .map(|(i, _)| i)
        .collect()
}

fn insertion_index(lines: &[&str], position: &BlockPosition) -> Option<usize> {
    let first =
        |matches: &dyn Fn(&str) -> bool| lines.iter().position(|line| matches(line_content(line)));
    match position {
        BlockPosition::End => Some(lines.len()),
        BlockPosition::AfterRegex(re) => first(&|l| re.is_match(l)).map(|i| i + 1),
        BlockPosition::BeforeRegex(re) => first(&|l| re.is_match(l)),
        BlockPosition::AfterLine(text) => first(&|l| l == text).map(|i| i + 1),
        BlockPosition::BeforeLine(text) => first(&|l| l == text),
    }
}

/// Builds the marker and content lines, each ending with `eol`.
fn block_lines(markers: &BlockMarkers, block: &str, eol: &str) -> Result<Vec<String>, BlockError> {
    let (begin, end) = (markers.begin(), markers.end());
    let body = block.strip_suffix('\n').unwrap_or(block);
    let body = body.strip_suffix('\r').unwrap_or(body);

    let mut lines = vec![format!("{begin}{eol}")];
    if !block.is_empty() {
        for line in body.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim_end() == begin || line.trim_end() == end {
                return Err(BlockError::MarkerInContent {
                    name: markers.name.clone(),
                    marker: line.to_owned(),
                });
            }
            lines.push(format!("{line}{eol}"));
        }
    }
    lines.push(format!("{end}{eol}"));
    Ok(lines)
}

fn line_ending(lines: &[&str]) -> &'static str {
    match lines.first() {
        Some(first) if first.ends_with("\r\n") => "\r\n",
        _ => "\n",
    }
}

fn line_content(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn strip_line_ending(line: &mut String) {
    if line.ends_with("\r\n") {
        line.truncate(line.len() - 2);
    } else if line.ends_with('\n') {
        line.truncate(line.len() - 1);
    }
}

fn join(before: &[&str], middle: &[String], after: &[&str]) -> String {
    let mut text = String::new();
    text.extend(before.iter().copied());
    text.extend(middle.iter().map(String::as_str));
    text.extend(after.iter().copied());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers() -> BlockMarkers {
        BlockMarkers::new("ssh")
    }

    fn positions() -> Vec<BlockPosition> {
        vec![
            BlockPosition::End,
            BlockPosition::AfterRegex(Regex::new("^b").unwrap()),
            BlockPosition::BeforeRegex(Regex::new("^b").unwrap()),
            BlockPosition::AfterLine("b".into()),
            BlockPosition::BeforeLine("b".into()),
        ]
    }

    const TEXTS: &[&str] = &[
        "a\nb\nc\n",
        "a\nb\nc",
        "b",
        "b\n",
        "\n\nb\n\n",
        "a\n\nb\n\nc\n\n",
        "a\r\nb\r\nc\r\n",
        "a\r\nb\r\nc",
        "a\r\nb\nc\r\n",
        "  indented\nb\t\n\tb\nb\nb  \n",
    ];

    #[test]
    fn insert_then_remove_is_identity() {
        for text in TEXTS {
            for position in positions() {
                for block in ["x = 1\ny = 2\n", "x = 1", "", "\n", "only\r\n"] {
                    let inserted =
                        insert_block(text, &markers(), block, &position).unwrap_or_else(|e| {
                            panic!("insert into {text:?} at {position:?} failed: {e}")
                        });
                    let removed = remove_block(&inserted, &markers()).unwrap();

                    assert_eq!(&removed, text, "round trip of {text:?} at {position:?} with block {block:?} via {inserted:?}");
                }
            }
        }
    }

    #[test]
    fn insert_twice_is_idempotent() {
        for text in TEXTS {
            for position in positions() {
                let once = insert_block(text, &markers(), "x = 1\n", &position).unwrap();
                let twice = insert_block(&once, &markers(), "x = 1\n", &position).unwrap();

                assert_eq!(
                    once, twice,
                    "second insert into {text:?} at {position:?} changed the text"
                );
            }
        }
    }

    #[test]
    fn insert_places_block() {
        let cases: Vec<(&str, BlockPosition, &str)> = vec![
            (
                "a\nb\n",
                BlockPosition::End,
                "a\nb\n# BEGIN rb6 ssh\nx\n# END rb6 ssh\n",
            ),
            (
                "a\nb",
                BlockPosition::End,
                "a\nb\n# BEGIN rb6 ssh\nx\n# END rb6 ssh",
            ),
            (
                "",
                BlockPosition::End,
                "# BEGIN rb6 ssh\nx\n# END rb6 ssh\n",
            ),
            (
                "a\nb\nb\n",
                BlockPosition::AfterLine("b".into()),
                "a\nb\n# BEGIN rb6 ssh\nx\n# END rb6 ssh\nb\n",
            ),
            (
                "a\nb\n",
                BlockPosition::BeforeRegex(Regex::new("^a$").unwrap()),
                "# BEGIN rb6 ssh\nx\n# END rb6 ssh\na\nb\n",
            ),
            (
                "a\r\nb\r\n",
                BlockPosition::AfterLine("a".into()),
                "a\r\n# BEGIN rb6 ssh\r\nx\r\n# END rb6 ssh\r\nb\r\n",
            ),
        ];

        for (text, position, expected) in cases {
            let inserted = insert_block(text, &markers(), "x\n", &position).unwrap();

            assert_eq!(inserted, expected, "insert into {text:?} at {position:?}");
        }
    }

    #[test]
    fn insert_replaces_existing_block_in_place() {
        let text = "a\n# BEGIN rb6 ssh\nold\n# END rb6 ssh\nb\n";
        let replaced = insert_block(text, &markers(), "new 1\nnew 2", &BlockPosition::End).unwrap();

        assert_eq!(
            replaced, "a\n# BEGIN rb6 ssh\nnew 1\nnew 2\n# END rb6 ssh\nb\n",
            "block not replaced in place"
        );
    }

    #[test]
    fn custom_comment_prefix() {
        let markers = BlockMarkers {
            name: "pool".into(),
            comment: ";".into(),
        };
        let inserted =
            insert_block("[www]\n", &markers, "pm = static", &BlockPosition::End).unwrap();

        assert_eq!(
            inserted, "[www]\n; BEGIN rb6 pool\npm = static\n; END rb6 pool\n",
            "markers with ';' prefix"
        );
    }

    #[test]
    fn other_blocks_are_left_alone() {
        let text = "# BEGIN rb6 other\nkeep\n# END rb6 other\n";
        let inserted = insert_block(text, &markers(), "x", &BlockPosition::End).unwrap();
        let removed = remove_block(&inserted, &markers()).unwrap();

        assert!(
            inserted.starts_with(text),
            "other block changed: {inserted:?}"
        );
        assert_eq!(removed, text, "removing one block touched another");
    }

    #[test]
    fn remove_absent_block_keeps_text() {
        let text = "a\r\nb";

        assert_eq!(
            remove_block(text, &markers()).unwrap(),
            text,
            "text without the block changed"
        );
    }

    #[test]
    fn malformed_markers_are_rejected() {
        let texts = [
            "# BEGIN rb6 ssh\nx\n",
            "x\n# END rb6 ssh\n",
            "# END rb6 ssh\n# BEGIN rb6 ssh\n",
            "# BEGIN rb6 ssh\n# END rb6 ssh\n# BEGIN rb6 ssh\n# END rb6 ssh\n",
        ];

        for text in texts {
            let inserted = insert_block(text, &markers(), "x", &BlockPosition::End);
            let removed = remove_block(text, &markers());

            assert!(
                matches!(inserted, Err(BlockError::Malformed { .. })),
                "insert accepted malformed {text:?}"
            );
            assert!(
                matches!(removed, Err(BlockError::Malformed { .. })),
                "remove accepted malformed {text:?}"
            );
        }
    }

    #[test]
    fn missing_anchor_is_rejected() {
        let result = insert_block(
            "a\n",
            &markers(),
            "x",
            &BlockPosition::AfterLine("nope".into()),
        );

        assert!(
            matches!(result, Err(BlockError::AnchorNotFound { .. })),
            "got {result:?}"
        );
    }

    #[test]
    fn marker_inside_content_is_rejected() {
        let result = insert_block(
            "a\n",
            &markers(),
            "x\n# END rb6 ssh\ny",
            &BlockPosition::End,
        );

        assert!(
            matches!(result, Err(BlockError::MarkerInContent { .. })),
            "got {result:?}"
        );
    }
}
