//! Lossless YAML edits on real configuration files: a mautrix-signal bridge config (4-space
//! indentation) and a generated Synapse homeserver.yaml (2-space indentation).

use std::collections::BTreeMap;

use rb6::actions::yaml::{self, KeyPath, YamlEditError};
use serde_json::{json, Value};
use similar::{ChangeTag, TextDiff};

const BRIDGE: &str = include_str!("fixtures/mautrix-signal-config.yaml");
const HOMESERVER: &str = include_str!("fixtures/homeserver.yaml");

fn path(text: &str) -> KeyPath {
    text.parse()
        .unwrap_or_else(|error| panic!("key path {text:?} should parse: {error}"))
}

/// Returns the deleted lines (1-based line number in `before`, text) and the inserted lines
/// (text, in order) of a line diff.
fn changed_lines(before: &str, after: &str) -> (BTreeMap<usize, String>, Vec<String>) {
    let diff = TextDiff::from_lines(before, after);
    let mut deleted = BTreeMap::new();
    let mut inserted = Vec::new();
    for change in diff.iter_all_changes() {
        let line = change.value().trim_end_matches('\n').to_string();
        match change.tag() {
            ChangeTag::Delete => {
                deleted.insert(
                    change.old_index().expect("a deleted line has an old index") + 1,
                    line,
                );
            }
            ChangeTag::Insert => inserted.push(line),
            ChangeTag::Equal => {}
        }
    }
    (deleted, inserted)
}

/// The bridge edits of a deployment, with the fixture lines each one replaces and the lines it
/// writes in their place. An edit to a value the file already has changes no line.
fn bridge_edits() -> Vec<(&'static str, Value, Vec<usize>, Vec<&'static str>)> {
    vec![
        (
            "database.uri",
            json!("postgres://mautrix_signal:p%40ss@matrix-postgres:5432/mautrix_signal?sslmode=disable"),
            vec![206],
            vec!["    uri: postgres://mautrix_signal:p%40ss@matrix-postgres:5432/mautrix_signal?sslmode=disable"],
        ),
        ("homeserver.address", json!("http://matrix-synapse:8008"), vec![220], vec!["    address: http://matrix-synapse:8008"]),
        ("homeserver.domain", json!("echo6.co"), vec![222], vec!["    domain: echo6.co"]),
        ("appservice.address", json!("http://mautrix-signal:29328"), vec![257], vec!["    address: http://mautrix-signal:29328"]),
        ("appservice.hostname", json!("0.0.0.0"), vec![265], vec!["    hostname: 0.0.0.0"]),
        ("appservice.port", json!(29328), vec![], vec![]),
        ("encryption.allow", json!(true), vec![447], vec!["    allow: true"]),
        ("encryption.default", json!(true), vec![449], vec!["    default: true"]),
        ("encryption.require", json!(true), vec![451], vec!["    require: true"]),
        ("encryption.appservice", json!(false), vec![], vec![]),
        ("encryption.msc4190", json!(true), vec![459], vec!["    msc4190: true"]),
        ("encryption.allow_key_sharing", json!(true), vec![], vec![]),
        ("encryption.pickle_key", json!("generate"), vec![], vec![]),
        ("encryption.self_sign", json!(true), vec![466], vec!["    self_sign: true"]),
        (
            "bridge.permissions",
            json!({"*": "relay", "echo6.co": "user", "@matt:echo6.co": "admin"}),
            vec![192, 193, 194],
            vec!["        \"*\": relay", "        echo6.co: user", "        \"@matt:echo6.co\": admin"],
        ),
        (
            "double_puppet.secrets",
            json!({"echo6.co": "as_token:abc"}),
            vec![440],
            vec!["        echo6.co: as_token:abc"],
        ),
    ]
}

#[test]
fn bridge_edits_change_only_their_lines() {
    let mut text = BRIDGE.to_string();
    for (key, value, _, _) in bridge_edits() {
        text = yaml::set(&text, &path(key), &value)
            .unwrap_or_else(|error| panic!("set {key} failed: {error}"));
    }

    let allowed: BTreeMap<usize, &str> = bridge_edits()
        .iter()
        .flat_map(|(_, _, lines, new)| lines.iter().copied().zip(new.iter().copied()))
        .collect();
    let (deleted, inserted) = changed_lines(BRIDGE, &text);
    for line in deleted.keys() {
        assert!(
            allowed.contains_key(line),
            "line {line} changed but no edit touches it: {:?}",
            deleted[line]
        );
    }
    for line in &inserted {
        assert!(
            allowed.values().any(|new| new == line),
            "unexpected new line {line:?}"
        );
    }

    // Every edit keeps the line count, so line numbers still match: each touched line has its
    // new text and every other line is byte-identical.
    let before: Vec<&str> = BRIDGE.split_inclusive('\n').collect();
    let after: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(
        after.len(),
        before.len(),
        "the edits must keep the line count"
    );
    for (index, (old, new)) in before.iter().zip(&after).enumerate() {
        match allowed.get(&(index + 1)) {
            Some(expected) => assert_eq!(
                new.trim_end_matches('\n'),
                *expected,
                "line {} after the edits",
                index + 1
            ),
            None => assert_eq!(new, old, "line {} must be byte-identical", index + 1),
        }
    }
    for (key, value, _, _) in bridge_edits() {
        let read = yaml::get(&text, &path(key)).expect("the edited file should parse");
        assert_eq!(
            read.as_ref(),
            Some(&value),
            "value of {key} after all edits"
        );
    }
}

#[test]
fn bridge_edit_of_equal_value_is_identity() {
    let unchanged = yaml::set(BRIDGE, &path("appservice.port"), &json!(29328)).expect("set port");
    assert_eq!(
        unchanged, BRIDGE,
        "setting the value a key already has must not change the text"
    );
}

#[test]
fn bridge_nested_key_follows_four_space_indent() {
    let value = json!({"enabled": true, "rooms": ["!a:echo6.co"]});
    let text =
        yaml::set(BRIDGE, &path("appservice.extra.nested"), &value).expect("set a new nested key");

    let (deleted, inserted) = changed_lines(BRIDGE, &text);
    assert!(
        deleted.is_empty(),
        "a new key must not change existing lines: {deleted:#?}"
    );
    assert_eq!(
        inserted,
        vec![
            "    extra:",
            "        nested:",
            "            enabled: true",
            "            rooms:",
            "                - \"!a:echo6.co\"",
        ],
        "the new key must be indented like its siblings, four spaces per level"
    );
    let username_template = text.find("username_template").expect("last appservice key");
    let extra = text.find("    extra:").expect("new key");
    assert!(
        extra > username_template,
        "the new key must follow the last appservice entry"
    );
}

#[test]
fn bridge_block_value_replaced_by_scalar() {
    let text =
        yaml::set(BRIDGE, &path("bridge.permissions"), &json!({})).expect("set an empty mapping");
    let (deleted, inserted) = changed_lines(BRIDGE, &text);

    assert_eq!(
        deleted.keys().copied().collect::<Vec<_>>(),
        vec![191, 192, 193, 194],
        "the old mapping's lines"
    );
    assert_eq!(
        inserted,
        vec!["    permissions: {}"],
        "an empty mapping is written in flow style"
    );
}

fn homeserver_setup(text: &str) -> String {
    let features =
        json!({"msc3202_transaction_extensions": true, "msc2409_to_device_messages_enabled": true});
    let text = yaml::set(text, &path("experimental_features"), &features)
        .expect("set experimental_features");
    let text = yaml::append(
        &text,
        &path("app_service_config_files"),
        &json!("/data/registration.yaml"),
    )
    .expect("append the bridge registration");
    yaml::append(
        &text,
        &path("app_service_config_files"),
        &json!("/data/doublepuppet.yaml"),
    )
    .expect("append the double puppet registration")
}

fn remove_registrations(text: &str) -> String {
    let items = [
        json!("/data/registration.yaml"),
        json!("/data/doublepuppet.yaml"),
    ];
    yaml::remove_items(text, &path("app_service_config_files"), &items, true).expect("remove_items")
}

#[test]
fn homeserver_setup_appends_blocks_at_end() {
    let text = homeserver_setup(HOMESERVER);
    let added = text
        .strip_prefix(HOMESERVER)
        .expect("the original text must stay a prefix");

    assert_eq!(
        added,
        "\n\nexperimental_features:\n  msc3202_transaction_extensions: true\n  msc2409_to_device_messages_enabled: true\n\
         \napp_service_config_files:\n  - /data/registration.yaml\n  - /data/doublepuppet.yaml",
        "new top-level keys go at the end after one blank line, indented two spaces, and the file \
         keeps ending without a line break"
    );
}

/// Returns the homeserver fixture as generated, without a final line break, and with one, as
/// most edited files end.
fn homeserver_variants() -> [String; 2] {
    [HOMESERVER.to_string(), format!("{HOMESERVER}\n")]
}

#[test]
fn homeserver_round_trip_removing_list_first() {
    for original in homeserver_variants() {
        let text = homeserver_setup(&original);
        let text = remove_registrations(&text);
        let text = yaml::remove(&text, &path("experimental_features"))
            .expect("remove experimental_features");
        assert_eq!(
            text, original,
            "undoing the edits must restore the file byte for byte"
        );
    }
}

#[test]
fn homeserver_round_trip_removing_features_first() {
    for original in homeserver_variants() {
        let text = homeserver_setup(&original);
        let text = yaml::remove(&text, &path("experimental_features"))
            .expect("remove experimental_features");
        let text = remove_registrations(&text);
        assert_eq!(
            text, original,
            "undoing the edits must restore the file byte for byte"
        );
    }
}

#[test]
fn homeserver_nested_sequence_edits() {
    let bind = path("database.args.cp_min");
    let text = yaml::set(HOMESERVER, &bind, &json!(5)).expect("set a nested scalar");
    let (deleted, inserted) = changed_lines(HOMESERVER, &text);
    assert!(
        deleted.is_empty(),
        "a new nested scalar must not change existing lines"
    );
    assert_eq!(
        inserted,
        vec!["    cp_min: 5"],
        "the new nested key sits with its siblings"
    );

    let servers = path("trusted_key_servers");
    let text = yaml::append(HOMESERVER, &servers, &json!({"server_name": "echo6.co"}))
        .expect("append a mapping");
    let read = yaml::get(&text, &servers).expect("read trusted_key_servers");
    assert_eq!(
        read,
        Some(json!([{"server_name": "matrix.org"}, {"server_name": "echo6.co"}])),
        "a mapping item is appended"
    );
    let text = yaml::remove_items(&text, &servers, &[json!({"server_name": "echo6.co"})], true)
        .expect("remove it");
    assert_eq!(
        text, HOMESERVER,
        "removing the appended item restores the file"
    );
}

/// One edit of the idempotence table.
enum Edit {
    Set(&'static str, Value),
    Append(&'static str, Value),
    Remove(&'static str),
    RemoveItems(&'static str, Vec<Value>, bool),
}

impl Edit {
    fn apply(&self, text: &str) -> Result<String, YamlEditError> {
        match self {
            Edit::Set(key, value) => yaml::set(text, &path(key), value),
            Edit::Append(key, item) => yaml::append(text, &path(key), item),
            Edit::Remove(key) => yaml::remove(text, &path(key)),
            Edit::RemoveItems(key, items, drop) => {
                yaml::remove_items(text, &path(key), items, *drop)
            }
        }
    }
}

#[test]
fn edits_are_idempotent() {
    let cases = [
        (BRIDGE, Edit::Set("database.uri", json!("postgres://db/x"))),
        (
            BRIDGE,
            Edit::Set(
                "bridge.permissions",
                json!({"*": "relay", "@matt:echo6.co": "admin"}),
            ),
        ),
        (BRIDGE, Edit::Set("new_section.child.leaf", json!("true"))),
        (BRIDGE, Edit::Set("env_config_prefix.sub", json!(1))),
        (BRIDGE, Edit::Remove("double_puppet.secrets")),
        (BRIDGE, Edit::Remove("logging")),
        (BRIDGE, Edit::Append("bridge.extra_list", json!("x"))),
        (
            HOMESERVER,
            Edit::Set(
                "experimental_features",
                json!({"msc3202_transaction_extensions": true}),
            ),
        ),
        (
            HOMESERVER,
            Edit::Append("app_service_config_files", json!("/data/registration.yaml")),
        ),
        (
            HOMESERVER,
            Edit::Append("listeners", json!({"port": 9000, "type": "metrics"})),
        ),
        (
            HOMESERVER,
            Edit::RemoveItems(
                "trusted_key_servers",
                vec![json!({"server_name": "matrix.org"})],
                true,
            ),
        ),
        (
            HOMESERVER,
            Edit::RemoveItems(
                "trusted_key_servers",
                vec![json!({"server_name": "matrix.org"})],
                false,
            ),
        ),
        (HOMESERVER, Edit::Remove("report_stats")),
    ];
    for (index, (text, edit)) in cases.iter().enumerate() {
        let once = edit
            .apply(text)
            .unwrap_or_else(|error| panic!("case {index}: first edit failed: {error}"));
        let twice = edit
            .apply(&once)
            .unwrap_or_else(|error| panic!("case {index}: second edit failed: {error}"));
        assert_eq!(
            twice, once,
            "case {index}: applying the edit twice must equal applying it once"
        );
        assert_ne!(
            once, **text,
            "case {index}: the first edit must change the text"
        );
    }
}

#[test]
fn strings_that_read_as_other_types_are_quoted() {
    let cases = [
        ("true", "flag: \"true\""),
        ("123", "flag: \"123\""),
        ("null", "flag: \"null\""),
        ("*.example.com", "flag: \"*.example.com\""),
        ("@matt:echo6.co", "flag: \"@matt:echo6.co\""),
        ("key: value", "flag: \"key: value\""),
        ("yes", "flag: \"yes\""),
        ("plain text", "flag: plain text"),
    ];
    let original = "top:\n  flag: old\n";
    for (value, line) in cases {
        let text = yaml::set(original, &path("top.flag"), &json!(value)).expect("set a string");
        assert!(
            text.contains(line),
            "string {value:?} should be written as `{line}`, got:\n{text}"
        );
        let read = yaml::get(&text, &path("top.flag")).expect("read it back");
        assert_eq!(
            read,
            Some(json!(value)),
            "string {value:?} must read back as a string"
        );
    }
}

#[test]
fn block_value_keeps_key_comment() {
    let original = "# head\na:\n  # about b\n  b: 1 # the b\n  c: [1, 2]\n\n# about d\nd: x\n";
    let text = yaml::set(original, &path("a.b"), &json!({"x": 1})).expect("set a block value");
    assert_eq!(
        text, "# head\na:\n  # about b\n  b: # the b\n    x: 1\n  c: [1, 2]\n\n# about d\nd: x\n",
        "a block value goes under the key, which keeps its comment"
    );
    let text = yaml::append(original, &path("a.c"), &json!(3)).expect("append to a flow sequence");
    assert!(
        text.contains("  c: [1, 2, 3]\n"),
        "a flow sequence stays flow: {text}"
    );
}

#[test]
fn key_path_parse_table() {
    let cases: [(&str, &[&str]); 5] = [
        ("a", &["a"]),
        ("a.b.c", &["a", "b", "c"]),
        (
            "bridge.permissions.\"@matt:echo6.co\"",
            &["bridge", "permissions", "@matt:echo6.co"],
        ),
        ("\"a.b\".c", &["a.b", "c"]),
        ("\"say \\\"hi\\\"\"", &["say \"hi\""]),
    ];
    for (input, segments) in cases {
        let parsed = path(input);
        assert_eq!(parsed.segments(), segments, "segments of {input:?}");
        assert_eq!(parsed.to_string(), input, "display of {input:?}");
    }
}

#[test]
fn key_path_errors_table() {
    let cases = [
        ("", "empty"),
        ("a..b", "segment 2 is empty"),
        ("a.", "segment 2 is empty"),
        (".a", "segment 1 is empty"),
        ("\"\"", "segment 1 is empty"),
        ("a.\"b", "no closing"),
        ("\"a\"b", "expected `.`"),
        ("\"a\\x\"", "unknown escape"),
    ];
    for (input, reason) in cases {
        let error = input.parse::<KeyPath>().expect_err(input);
        assert!(
            matches!(&error, YamlEditError::InvalidPath { .. }),
            "{input:?} should be an invalid path, got {error:?}"
        );
        assert!(
            error.to_string().contains(reason),
            "error for {input:?} should say {reason:?}: {error}"
        );
    }
}

#[test]
fn quoted_segment_edits_its_key() {
    let key = path("bridge.permissions.\"@admin:example.com\"");
    let text = yaml::set(BRIDGE, &key, &json!("user")).expect("set through a quoted segment");
    let (deleted, inserted) = changed_lines(BRIDGE, &text);

    assert_eq!(
        deleted.keys().copied().collect::<Vec<_>>(),
        vec![194],
        "only the quoted key's line"
    );
    assert_eq!(
        inserted,
        vec!["        \"@admin:example.com\": user"],
        "the key keeps its quotes"
    );
}

#[test]
fn path_through_scalar_is_rejected() {
    for (index, result) in [
        yaml::set(BRIDGE, &path("database.uri.host"), &json!("x")).map(|_| ()),
        yaml::get(BRIDGE, &path("database.uri.host")).map(|_| ()),
        yaml::remove(BRIDGE, &path("database.uri.host")).map(|_| ()),
        yaml::append(BRIDGE, &path("database.uri.host"), &json!(1)).map(|_| ()),
    ]
    .into_iter()
    .enumerate()
    {
        let error = result.expect_err("a path through a scalar must fail");
        let message = error.to_string();
        assert!(
            matches!(&error, YamlEditError::NotAMapping { at, found: "a string", .. } if at == "database.uri"),
            "case {index}: expected NotAMapping at database.uri, got {error:?}"
        );
        assert!(
            message.contains("database.uri.host"),
            "case {index}: message names the path: {message}"
        );
    }
}

#[test]
fn append_to_mapping_is_rejected() {
    let error = yaml::append(BRIDGE, &path("bridge.permissions"), &json!("x"))
        .expect_err("append to a mapping");
    assert!(
        matches!(
            &error,
            YamlEditError::NotASequence {
                found: "a mapping",
                ..
            }
        ),
        "expected NotASequence, got {error:?}"
    );
    assert!(
        error.to_string().contains("bridge.permissions"),
        "message names the path: {error}"
    );

    let error = yaml::remove_items(BRIDGE, &path("database.uri"), &[json!("x")], true)
        .expect_err("remove_items on a string");
    assert!(
        matches!(
            &error,
            YamlEditError::NotASequence {
                found: "a string",
                ..
            }
        ),
        "got {error:?}"
    );
}

#[test]
fn invalid_yaml_is_rejected_with_position() {
    let text = "a: 1\nb: [1, 2\nc: 3\n";
    let results = [
        yaml::get(text, &path("a")).map(|_| ()),
        yaml::set(text, &path("a"), &json!(2)).map(|_| ()),
        yaml::remove(text, &path("a")).map(|_| ()),
    ];
    for (index, result) in results.into_iter().enumerate() {
        let error = result.expect_err("invalid YAML must fail");
        assert!(
            matches!(&error, YamlEditError::InvalidYaml { line, .. } if *line >= 2),
            "case {index}: expected InvalidYaml at line 2 or later, got {error:?}"
        );
        assert!(
            error.to_string().contains("line"),
            "case {index}: message gives the line: {error}"
        );
    }
}

#[test]
fn absent_keys_leave_text_unchanged() {
    let cases = [
        yaml::remove(BRIDGE, &path("no_such_key")),
        yaml::remove(BRIDGE, &path("database.no_such_key")),
        yaml::remove_items(BRIDGE, &path("no_such_list"), &[json!(1)], true),
        yaml::remove_items(
            HOMESERVER,
            &path("trusted_key_servers"),
            &[json!("absent")],
            false,
        ),
    ];
    for (index, result) in cases.into_iter().enumerate() {
        let text = result.unwrap_or_else(|error| panic!("case {index} failed: {error}"));
        assert!(
            text == BRIDGE || text == HOMESERVER,
            "case {index}: text must be unchanged"
        );
    }
}

#[test]
fn empty_document_gets_first_key() {
    let cases = [
        ("", "a:\n  b: 1\n"),
        ("# only a comment\n", "# only a comment\n\na:\n  b: 1\n"),
    ];
    for (original, expected) in cases {
        let text =
            yaml::set(original, &path("a.b"), &json!(1)).expect("set into an empty document");
        assert_eq!(text, expected, "first key of {original:?}");
    }
}

#[test]
fn edit_changing_an_alias_is_rejected() {
    let text = "base: &base\n  x: 1\nother: *base\n";
    let error =
        yaml::set(text, &path("base.x"), &json!(2)).expect_err("the alias would change too");
    assert!(
        matches!(&error, YamlEditError::Verification { .. }),
        "an edit that also changes an alias must fail verification, got {error:?}"
    );
    assert!(
        error.to_string().contains("outside this key"),
        "message says why: {error}"
    );
}

#[test]
fn merged_key_removal_is_rejected() {
    let text = "base: &base\n  x: 1\nchild:\n  <<: *base\n  y: 2\n";
    let error = yaml::remove(text, &path("child.x")).expect_err("child.x comes from a merge key");
    assert!(
        matches!(&error, YamlEditError::Unsupported { .. }),
        "removing a merged key must be rejected, got {error:?}"
    );
    let text =
        yaml::set(text, &path("child.x"), &json!(5)).expect("a merged key can be overridden");
    assert!(
        text.ends_with("  y: 2\n  x: 5\n"),
        "the override goes into child: {text}"
    );
}

#[test]
fn set_layout_table() {
    let cases = [
        (
            "ports:\n  8008: a\n",
            "ports.8008",
            json!("x"),
            "ports:\n  8008: x\n",
        ),
        (
            "a:\n  - x\n",
            "a",
            json!({"k": [1, {"m": 2}]}),
            "a:\n  k:\n    - 1\n    - m: 2\n",
        ),
        (
            "a: {b: 1}\n",
            "a.c.d",
            json!([1, 2]),
            "a: {b: 1, c: {d: [1, 2]}}\n",
        ),
        (
            "a: {b: 1}\n",
            "a.b",
            json!({"q": "true"}),
            "a: {b: {q: \"true\"}}\n",
        ),
        ("a: 1 # c\nb: 2", "b", json!([1]), "a: 1 # c\nb:\n  - 1"),
        ("a: 1 # c\nb: 2", "a", json!([1]), "a: # c\n  - 1\nb: 2"),
        (
            "x:\n    y: 1",
            "x.z",
            json!({"w": 1}),
            "x:\n    y: 1\n    z:\n        w: 1",
        ),
        ("x:\n    y: 1\n", "x.y", json!(null), "x:\n    y: null\n"),
        ("x: null\n", "x.k", json!("v"), "x:\n  k: v\n"),
        ("x: null\n", "x.y", json!("v"), "x:\n  \"y\": v\n"),
    ];
    for (original, key, value, expected) in cases {
        let text = yaml::set(original, &path(key), &value)
            .unwrap_or_else(|error| panic!("set {key} in {original:?} failed: {error}"));
        assert_eq!(text, expected, "set {key} = {value} in {original:?}");
    }
}

#[test]
fn remove_non_string_key() {
    let text = yaml::remove("ports:\n  8008: a\n  9000: b\n", &path("ports.8008"))
        .expect("remove an int key");
    assert_eq!(
        text, "ports:\n  9000: b\n",
        "the int key 8008 matches the segment 8008"
    );
}
