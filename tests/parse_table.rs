//! Table-driven tests of the parser: source text → syntax-tree facts, or the position of the
//! syntax error.
//!
//! Each accepted input is one top-level attribute `x = ...` (the parser accepts attributes at
//! the top level; `resolve` rejects them later). Its value is rendered to a compact notation:
//! strings and heredocs as `"text"` parts joined by ` + ` with `${fn(ref)}` for interpolations,
//! `ref:a.b` for bare references, `[..]` for lists and `{k: v}` for maps.

use rb6::diagnostic::SourceFile;
use rb6::parse::parse;
use rb6::syntax::{Body, Expr, ExprKind, Part, Template};

fn parse_text(text: &str) -> Result<Body, rb6::diagnostic::Problem> {
    parse(&SourceFile::new("table.rb6", text))
}

fn render_template(template: &Template) -> String {
    if template.parts.is_empty() {
        return "\"\"".to_string();
    }
    let parts: Vec<String> = template
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => format!("{text:?}"),
            Part::Interpolation(interpolation) => match &interpolation.function {
                Some(function) => format!("${{{}({})}}", function.name, interpolation.reference.dotted()),
                None => format!("${{{}}}", interpolation.reference.dotted()),
            },
        })
        .collect();
    parts.join(" + ")
}

fn render(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Template(template) => render_template(template),
        ExprKind::Number(number) => number.to_string(),
        ExprKind::Bool(value) => value.to_string(),
        ExprKind::Null => "null".to_string(),
        ExprKind::List(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        ExprKind::Map(entries) => {
            let entries: Vec<String> = entries.iter().map(|(key, value)| format!("{}: {}", key.name, render(value))).collect();
            format!("{{{}}}", entries.join(", "))
        }
        ExprKind::Reference(reference) => format!("ref:{}", reference.dotted()),
    }
}

/// Parses `text` and renders the value of its attribute `x`.
fn value_of(text: &str) -> String {
    let body = parse_text(text).unwrap_or_else(|problem| panic!("{text:?} should parse, got {}: {}", problem.location(), problem.message));
    let attribute = body.attribute("x").unwrap_or_else(|| panic!("{text:?} should contain attribute x"));
    render(&attribute.value)
}

#[test]
fn accepted_values_table() {
    let table: &[(&str, &str, &str)] = &[
        // Strings and escapes.
        ("plain string", r#"x = "plain""#, r#""plain""#),
        ("empty string", r#"x = """#, r#""""#),
        ("every escape", r#"x = "q\" b\\ n\n t\t r\r d\$ u\u{41}\u{1F600}""#, "\"q\\\" b\\\\ n\\n t\\t r\\r d$ uA\u{1F600}\""),
        ("escaped dollar brace", r#"x = "cost $${var.x} here""#, r#""cost ${var.x} here""#),
        ("double dollar without brace", r#"x = "a $$b $c""#, r#""a $$b $c""#),
        ("backslash dollar then brace", r#"x = "\${var.x}""#, r#""${var.x}""#),
        ("hash inside string", r##"x = "a # not a comment // nor this""##, r##""a # not a comment // nor this""##),
        ("non-ASCII text", r#"x = "grüße ☃""#, r#""grüße ☃""#),
        // Interpolations.
        ("interpolation in text", r#"x = "a ${var.x} b""#, r#""a " + ${var.x} + " b""#),
        ("interpolation alone", r#"x = "${secret.token}""#, "${secret.token}"),
        ("interpolation with spaces", r#"x = "${ var.x }""#, "${var.x}"),
        ("adjacent interpolations", r#"x = "${var.a}${var.b}""#, "${var.a} + ${var.b}"),
        ("function ident", r#"x = "grant ${ident(var.role)}""#, r#""grant " + ${ident(var.role)}"#),
        ("function literal", r#"x = "${literal(var.x)}""#, "${literal(var.x)}"),
        ("function shell", r#"x = "${shell(capture.out)}""#, "${shell(capture.out)}"),
        ("function raw", r#"x = "${raw(var.x)}""#, "${raw(var.x)}"),
        ("function regex", r#"x = "^${regex(var.domain)}$""#, r#""^" + ${regex(var.domain)} + "$""#),
        ("function with spaces", r#"x = "${ url( var.x ) }""#, "${url(var.x)}"),
        ("runbook dir", r#"x = "${runbook.dir}/a""#, r#"${runbook.dir} + "/a""#),
        // Heredocs.
        ("heredoc", "x = <<EOT\nline one\n  line two\nEOT\n", r#""line one\n  line two\n""#),
        ("heredoc at end of file", "x = <<EOT\nbody\nEOT", r#""body\n""#),
        ("heredoc empty", "x = <<EOT\nEOT\n", r#""""#),
        ("heredoc keeps quotes and hashes", "x = <<EOT\nsay \"hi\" # kept\n/* kept */\nEOT\n", r#""say \"hi\" # kept\n/* kept */\n""#),
        ("heredoc interpolation", "x = <<SQL\nGRANT ${ident(var.role)} TO x;\nSQL\n", r#""GRANT " + ${ident(var.role)} + " TO x;\n""#),
        ("heredoc escaped dollar", "x = <<EOT\ncost $${var.x}\nEOT\n", r#""cost ${var.x}\n""#),
        ("heredoc no escapes", "x = <<EOT\na\\nb\nEOT\n", r#""a\\nb\n""#),
        ("heredoc tag-like lines", "x = <<EOT\nEOTX\nEOT is not the end\nXEOT\nEOT\n", r#""EOTX\nEOT is not the end\nXEOT\n""#),
        ("heredoc indented terminator", "x = <<EOT\n  body\n  EOT\n", r#""  body\n""#),
        ("heredoc tag with digits", "x = <<END_2\nbody\nEND_2\n", r#""body\n""#),
        ("heredoc indent stripped", "x = <<-EOT\n    a\n      b\n    EOT\n", r#""a\n  b\n""#),
        ("heredoc indent blank line", "x = <<-EOT\n    a\n\n    b\n  EOT\n", r#""a\n\nb\n""#),
        ("heredoc indent tabs", "x = <<-EOT\n\t\ta\n\t\t\tb\n\tEOT\n", r#""a\n\tb\n""#),
        ("heredoc indent with interpolation", "x = <<-EOT\n    Tell ${capture.who}\n      now\n    EOT\n", r#""Tell " + ${capture.who} + "\n  now\n""#),
        ("heredoc indent least indented wins", "x = <<-EOT\n      a\n    b\n    EOT\n", r#""  a\nb\n""#),
        ("heredoc without dash keeps indent", "x = <<EOT\n    a\n    EOT\n", r#""    a\n""#),
        // Lists.
        ("empty list", "x = []", "[]"),
        ("list", r#"x = [1, "a", true]"#, r#"[1, "a", true]"#),
        ("list trailing comma", "x = [1, 2, 3,]", "[1, 2, 3]"),
        ("list across lines", "x = [\n  a,\n  b,\n]\n", "[ref:a, ref:b]"),
        ("nested lists", "x = [[1, 2], [], [[3]]]", "[[1, 2], [], [[3]]]"),
        // Maps.
        ("empty map", "x = {}", "{}"),
        ("map with commas", r#"x = { a = 1, "b.c" = "d" }"#, r#"{a: 1, b.c: "d"}"#),
        ("map trailing comma", "x = { a = 1, b = 2, }", "{a: 1, b: 2}"),
        ("map with colons", r#"x = { "a": 1, b: [2] }"#, "{a: 1, b: [2]}"),
        ("map across lines without commas", "x = {\n  a = 1\n  b = 2\n}\n", "{a: 1, b: 2}"),
        ("map of maps", "x = { a = { b = null } }", "{a: {b: null}}"),
        // Comments of all three kinds.
        ("hash comment", "# heading\nx = 1 # trailing\n", "1"),
        ("slash comment", "// heading\nx = 1 // trailing\n", "1"),
        ("block comment", "/* one\n two */ x = /* inline */ 1 /* after */\n", "1"),
        ("comment in list", "x = [1, # one\n  /* two */ 2, // three\n]", "[1, 2]"),
        ("comment in map", "x = {\n  a = 1 # note\n  // b = 2\n}\n", "{a: 1}"),
        ("block comment with stars", "/** doc **/ x = 1", "1"),
        // Numbers.
        ("zero", "x = 0", "0"),
        ("negative", "x = -42", "-42"),
        ("decimal", "x = 1.5", "1.5"),
        ("negative decimal", "x = -0.25", "-0.25"),
        ("beyond i64", "x = 12345678901234567890", "1.2345678901234567e+19"),
        // Booleans, null and references.
        ("true", "x = true", "true"),
        ("false", "x = false", "false"),
        ("null", "x = null", "null"),
        ("word starting with true", "x = trueish", "ref:trueish"),
        ("word starting with null", "x = null_value", "ref:null_value"),
        ("bare name", "x = create_role", "ref:create_role"),
        ("dotted reference", "x = var.domain", "ref:var.domain"),
        ("connection reference", "x = postgres.admin", "ref:postgres.admin"),
        ("name with dashes", "x = my-step", "ref:my-step"),
    ];

    for (case, text, expected) in table {
        assert_eq!(&value_of(text), expected, "case `{case}`: value of {text:?}");
    }
}

#[test]
fn rejected_inputs_table() {
    // (case, text, expected line:column, a fragment of the message)
    let table: &[(&str, &str, &str, &str)] = &[
        ("unterminated string", "x = \"abc\n", "1:9", "closing `\"`"),
        ("unterminated string at end", "x = \"abc", "1:9", "closing `\"`"),
        ("unknown escape", r#"x = "a \q b""#, "1:8", "valid escape"),
        ("escape u without braces", r#"x = "\u0041""#, "1:6", "valid escape"),
        ("unclosed interpolation", r#"x = "${var.x""#, "1:13", "`}`"),
        ("empty interpolation", r#"x = "${}""#, "1:8", ""),
        ("interpolation of a literal", r#"x = "${"a"}""#, "1:8", ""),
        ("two function arguments", r#"x = "${ident(var.x, var.y)}""#, "1:19", "`)`"),
        ("nested function call", r#"x = "${ident(raw(var.x))}""#, "1:17", "`)`"),
        ("unclosed list", "x = [1, 2", "1:10", "`]`"),
        ("list without commas", "x = [1 2]", "1:8", "`]`"),
        ("map entry without value", "x = { a = }", "1:11", "a value"),
        ("missing value", "x =\n", "2:1", "a value"),
        ("unclosed block", "step \"a\" {\n  x = 1\n", "3:1", "`}`"),
        ("stray closing brace", "x = 1\n}\n", "2:1", ""),
        ("value on its own", "\"just a string\"\n", "1:1", ""),
        ("missing value in block", "runbook \"a\" {\n  description =\n}\n", "3:1", "a value"),
        ("unterminated block comment", "x = 1\n/* never closed\n", "2:1", ""),
        ("number with exponent", "x = 1e5", "1:5", ""),
        ("number with trailing dot", "x = 1.", "1:6", "end of file"),
        ("heredoc without terminator", "x = <<EOT\nbody\n", "3:1", "closing tag"),
        ("heredoc lower-case tag", "x = <<eot\nbody\neot\n", "1:7", "heredoc tag"),
        ("heredoc text after tag", "x = <<EOT trailing\nbody\nEOT\n", "1:11", "end of line after the heredoc tag"),
        ("heredoc other terminator", "x = <<EOT\nbody\nEND\n", "4:1", "closing tag"),
        ("unlabelled block with number label", "step 1 { }", "1:6", ""),
        ("control character", "x = 1\n\u{7}\n", "2:1", "control character U+0007"),
    ];

    let mut wrong_locations = Vec::new();
    let mut wrong_messages = Vec::new();
    for (case, text, location, fragment) in table {
        let problem = match parse_text(text) {
            Ok(body) => panic!("case `{case}`: {text:?} should be rejected, parsed as {body:?}"),
            Err(problem) => problem,
        };
        let expected_location = format!("table.rb6:{location}");
        if problem.location() != expected_location {
            wrong_locations.push(format!("`{case}`: expected {expected_location}, found {} ({})", problem.location(), problem.message));
        }
        if !problem.message.starts_with("syntax error: expected ") || !problem.message.contains(fragment) {
            wrong_messages.push(format!("`{case}`: expected a syntax error mentioning {fragment:?}, found {:?}", problem.message));
        }
    }
    assert!(wrong_locations.is_empty(), "error locations differ:\n{}", wrong_locations.join("\n"));
    assert!(wrong_messages.is_empty(), "error messages differ:\n{}", wrong_messages.join("\n"));
}

#[test]
fn blocks_and_labels_table() {
    // (case, text, block kind, labels rendered, attribute names in the body, nested block kinds)
    let table: &[(&str, &str, &str, &[&str], &[&str], &[&str])] = &[
        ("one label", "step \"a\" { x = 1 }", "step", &[r#""a""#], &["x"], &[]),
        ("no label", "check { }", "check", &[], &[], &[]),
        ("two labels", "kind \"a\" \"b\" {}", "kind", &[r#""a""#, r#""b""#], &[], &[]),
        ("label with escape", "step \"a\\\"b\" {}", "step", &[r#""a\"b""#], &[], &[]),
        ("label with interpolation", "step \"${var.x}\" {}", "step", &["${var.x}"], &[], &[]),
        ("nested blocks", "step \"a\" {\n  shell { run = \"x\" }\n  undo { none = \"y\" }\n}", "step", &[r#""a""#], &[], &["shell", "undo"]),
        ("attributes on one line", "file { path = \"/a\" content = \"b\" mode = \"0640\" }", "file", &[], &["path", "content", "mode"], &[]),
        ("block on one line after comment", "/* c */ gate \"g\" { needs = [a] } # end", "gate", &[r#""g""#], &["needs"], &[]),
    ];

    for (case, text, kind, labels, attributes, nested) in table {
        let body = parse_text(text).unwrap_or_else(|problem| panic!("case `{case}`: {text:?} should parse: {}", problem.message));
        assert_eq!(body.blocks.len(), 1, "case `{case}`: number of top-level blocks");
        let block = &body.blocks[0];
        assert_eq!(&block.kind.name, kind, "case `{case}`: block kind");

        let rendered: Vec<String> = block.labels.iter().map(|label| render_template(&label.value)).collect();
        assert_eq!(&rendered, labels, "case `{case}`: labels");

        let names: Vec<&str> = block.body.attributes.iter().map(|attribute| attribute.name.name.as_str()).collect();
        assert_eq!(&names, attributes, "case `{case}`: attribute names");

        let kinds: Vec<&str> = block.body.blocks.iter().map(|inner| inner.kind.name.as_str()).collect();
        assert_eq!(&kinds, nested, "case `{case}`: nested block kinds");
    }
}

#[test]
fn spans_point_at_source_table() {
    // (case, text, the text the value's span covers, the text the first interpolation's span covers)
    let table: &[(&str, &str, &str, Option<&str>)] = &[
        ("string", "x = \"a ${var.b} c\"", "\"a ${var.b} c\"", Some("${var.b}")),
        ("function", "x   =   \"${ident(var.role)}\"", "\"${ident(var.role)}\"", Some("${ident(var.role)}")),
        ("reference", "x = var.domain # comment", "var.domain", None),
        ("list", "x = [ 1, 2 ]\n", "[ 1, 2 ]", None),
        ("heredoc", "x = <<EOT\nhi ${var.who}\nEOT\n", "<<EOT\nhi ${var.who}\nEOT", Some("${var.who}")),
        ("after multibyte text", "# ☃☃\nx = \"é${var.b}\"", "\"é${var.b}\"", Some("${var.b}")),
    ];

    for (case, text, value_text, interpolation_text) in table {
        let body = parse_text(text).unwrap_or_else(|problem| panic!("case `{case}`: {text:?} should parse: {}", problem.message));
        let value = &body.attribute("x").expect("attribute x").value;
        assert_eq!(&text[value.span.clone()], *value_text, "case `{case}`: value span");

        let first = match &value.kind {
            ExprKind::Template(template) => template.interpolations().next().map(|interpolation| &text[interpolation.span.clone()]),
            _ => None,
        };
        assert_eq!(first, *interpolation_text, "case `{case}`: interpolation span");
    }
}

#[test]
fn reference_segments_have_spans() {
    let text = "x = \"${capture.as_token}\"";
    let body = parse_text(text).expect("parses");
    let ExprKind::Template(template) = &body.attributes[0].value.kind else { panic!("x should be a template") };
    let interpolation = template.interpolations().next().expect("one interpolation");
    let segments: Vec<&str> = interpolation.reference.segments.iter().map(|segment| &text[segment.span.clone()]).collect();
    assert_eq!(segments, ["capture", "as_token"], "segment spans of capture.as_token");
}

#[test]
fn limits_are_reported_with_location() {
    let deep = format!("x = {}1{}", "[".repeat(rb6::parse::MAX_NESTING + 1), "]".repeat(rb6::parse::MAX_NESTING + 1));
    let problem = parse_text(&deep).expect_err("nesting beyond the limit is rejected");
    assert!(problem.message.contains("nesting is deeper than"), "message names the nesting limit: {}", problem.message);
    assert_eq!(problem.location(), format!("table.rb6:1:{}", 5 + rb6::parse::MAX_NESTING), "location of the first bracket beyond the limit");

    let within = format!("x = {}1{}", "[".repeat(rb6::parse::MAX_NESTING), "]".repeat(rb6::parse::MAX_NESTING));
    assert!(parse_text(&within).is_ok(), "nesting at the limit is accepted");

    let brackets_in_string = format!("x = \"{}\"", "[".repeat(1000));
    assert!(parse_text(&brackets_in_string).is_ok(), "brackets inside a string do not count as nesting");

    let nul = "x = 1\ny = \"a\0b\"\n";
    let problem = parse_text(nul).expect_err("a NUL byte is rejected");
    assert_eq!(problem.location(), "table.rb6:2:7", "location of the NUL byte");
}
