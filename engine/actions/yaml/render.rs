//! Writes JSON values as YAML text: scalars, flow collections, and block collections at a given
//! column with the file's own indentation step.
//!
//! Invariant: a string is written plain only when YAML 1.1 readers (PyYAML, which Synapse uses)
//! and YAML 1.2 readers both read it back as that same string. Every other string is
//! double-quoted.

use serde_json::{Map, Value};

/// Returns the indentation step of a block-style YAML text, in spaces (2 when it has no nesting).
///
/// Each line ending in `:` followed by a deeper line gives one sample: the difference between the
/// key's column and the next line's indentation. The most frequent sample wins, the smaller one
/// on a tie. A `- key:` line counts its key's column, so a compact sequence adds no sample.
pub(super) fn detect_indent_step(text: &str) -> usize {
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    let mut previous_key_column: Option<usize> = None;

    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(key_column) = previous_key_column {
            if indent > key_column {
                *counts.entry(indent - key_column).or_default() += 1;
            }
        }

        previous_key_column = trimmed.trim_end().ends_with(':').then(|| {
            let dashes = trimmed.len() - trimmed.trim_start_matches(['-', ' ']).len();
            indent + dashes
        });
    }

    counts
        .into_iter()
        .max_by(|(step_a, count_a), (step_b, count_b)| {
            count_a.cmp(count_b).then(step_b.cmp(step_a))
        })
        .map_or(2, |(step, _)| step)
}

/// Returns the one-line form of a scalar or an empty collection, or `None` for a non-empty
/// collection, which needs block or flow style.
pub(super) fn inline(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(number(n)),
        Value::String(s) => Some(string(s)),
        Value::Array(items) if items.is_empty() => Some("[]".to_string()),
        Value::Object(map) if map.is_empty() => Some("{}".to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Returns a value in flow style (`{a: 1, b: [x, y]}`), usable inside a flow collection.
pub(super) fn flow(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", string(key), flow(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        scalar => inline(scalar).unwrap_or_default(),
    }
}

/// Returns one block mapping entry `key: value` whose key sits at `column`, ending in a newline.
pub(super) fn block_entry(key: &str, value: &Value, column: usize, step: usize) -> String {
    let mut out = format!("{}{}:", " ".repeat(column), string(key));
    match inline(value) {
        Some(scalar) => {
            out.push(' ');
            out.push_str(&scalar);
            out.push('\n');
        }
        None => {
            out.push('\n');
            out.push_str(&block(value, column + step, step));
        }
    }
    out
}

/// Returns a non-empty collection in block style, each line indented at least `column` spaces
/// and ending in a newline. A scalar or empty collection comes back in its inline form.
pub(super) fn block(value: &Value, column: usize, step: usize) -> String {
    match value {
        Value::Object(map) if !map.is_empty() => block_mapping(map, column, step),
        Value::Array(items) if !items.is_empty() => block_sequence(items, column, step),
        scalar => inline(scalar).unwrap_or_default() + "\n",
    }
}

fn block_mapping(map: &Map<String, Value>, column: usize, step: usize) -> String {
    map.iter()
        .map(|(key, value)| block_entry(key, value, column, step))
        .collect()
}

/// Writes each item as `- item`. A collection item starts on the dash's line and puts its other
/// lines two columns right of the dash, the compact form that YAML 1.1 and 1.2 both define.
fn block_sequence(items: &[Value], column: usize, step: usize) -> String {
    let dash = format!("{}- ", " ".repeat(column));
    let mut out = String::new();
    for item in items {
        match inline(item) {
            Some(scalar) => {
                out.push_str(&dash);
                out.push_str(&scalar);
                out.push('\n');
            }
            None => {
                let nested = block(item, column + 2, step);
                out.push_str(&dash);
                out.push_str(&nested[column + 2..]);
            }
        }
    }
    out
}

/// Writes a JSON number so that YAML 1.1 and 1.2 readers both read the same number: a float
/// always has a `.` and a signed exponent, which the YAML 1.1 float pattern requires.
fn number(n: &serde_json::Number) -> String {
    let text = n.to_string();
    if n.is_i64() || n.is_u64() {
        return text;
    }

    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa.to_string(), Some(exponent.to_string())),
        None => (text.clone(), None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exponent {
        Some(exponent) if exponent.starts_with(['-', '+']) => format!("{mantissa}e{exponent}"),
        Some(exponent) => format!("{mantissa}e+{exponent}"),
        None => mantissa,
    }
}

/// Writes a string plain when that is safe (see the module invariant), otherwise double-quoted.
pub(super) fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        double_quoted(s)
    }
}

/// Characters allowed in a plain string after its first character. Flow indicators (`,[]{}`),
/// quotes, `#`, `|` and `\` are left out so the string also stays plain inside flow collections.
const PLAIN_CHARS: &str = " -_./:@%?=&+~()$^;<>!*";

/// Words that YAML 1.1 or 1.2 reads as a boolean or null, compared case-insensitively.
const RESERVED_WORDS: [&str; 10] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '_') {
        return false;
    }
    if s.ends_with([' ', ':']) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || PLAIN_CHARS.contains(c))
    {
        return false;
    }
    if RESERVED_WORDS
        .iter()
        .any(|word| s.eq_ignore_ascii_case(word))
    {
        return false;
    }
    !first.is_ascii_digit() || is_plain_safe_after_digit(s)
}

/// Checks a string that starts with a digit, which may read as an int, float, sexagesimal number
/// or date. It stays plain only when it is a dotted version or address (`0.0.0.0`, `1.2.3`), or when it contains a
/// letter that no number uses or a character such as `/` that no number or date contains.
fn is_plain_safe_after_digit(s: &str) -> bool {
    let dotted = s.split('.').count() >= 3
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let non_numeric = s.chars().any(|c| {
        (c.is_ascii_alphabetic() && !"abcdefABCDEFxXoO".contains(c)) || "/@?=&%~ ".contains(c)
    });
    dotted || non_numeric
}

/// Writes a YAML double-quoted scalar, escaping `"`, `\` and every character that YAML does not
/// allow unescaped (C0 and C1 controls, DEL, U+2028, U+2029 and U+FEFF).
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_quoting_table() {
        let cases = [
            ("relay", "relay"),
            ("0.0.0.0", "0.0.0.0"),
            ("http://matrix-synapse:8008", "http://matrix-synapse:8008"),
            ("as_token:abc", "as_token:abc"),
            ("10s", "10s"),
            ("true", "\"true\""),
            ("Yes", "\"Yes\""),
            ("off", "\"off\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("123", "\"123\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("0x1f", "\"0x1f\""),
            ("1:30", "\"1:30\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("*", "\"*\""),
            ("@matt:echo6.co", "\"@matt:echo6.co\""),
            ("a: b", "\"a: b\""),
            ("a #b", "\"a #b\""),
            ("key:", "\"key:\""),
            ("", "\"\""),
            (" padded", "\" padded\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\n\""),
            ("\u{2028}", "\"\\u2028\""),
            ("échelle", "\"échelle\""),
        ];
        for (input, expected) in cases {
            assert_eq!(string(input), expected, "rendering of string {input:?}");
        }
    }

    #[test]
    fn number_forms_table() {
        let cases = [
            (json!(29328), "29328"),
            (json!(-7), "-7"),
            (json!(1.5), "1.5"),
            (json!(100.0), "100.0"),
            (json!(1e20), "1.0e+20"),
            (json!(1.5e-7), "1.5e-7"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                inline(&input).unwrap(),
                expected,
                "rendering of number {input}"
            );
        }
    }

    #[test]
    fn block_nested_collections() {
        let value = json!({"a": {"b": 1}, "list": [1, {"x": true, "z": [2]}], "empty": {}});
        let expected = "\
a:
    b: 1
list:
    - 1
    - x: true
      z:
          - 2
empty: {}
";
        assert_eq!(
            block(&value, 0, 4),
            expected,
            "block rendering with a 4-space step, keys in insertion order"
        );
    }

    #[test]
    fn flow_nested_collections() {
        let value = json!({"a": [1, "true"], "b": {}});
        assert_eq!(flow(&value), "{a: [1, \"true\"], b: {}}", "flow rendering");
    }

    #[test]
    fn indent_step_detection_table() {
        let cases = [
            ("a:\n    b: 1\n    c:\n        - x\n", 4),
            ("a:\n  b: 1\nlist:\n  - bind:\n    - ::1\n", 2),
            ("a: 1\nb: 2\n", 2),
            ("# a:\n#       b\nx:\n   y: 1\n", 3),
        ];
        for (text, expected) in cases {
            assert_eq!(
                detect_indent_step(text),
                expected,
                "indent step of {text:?}"
            );
        }
    }
}
