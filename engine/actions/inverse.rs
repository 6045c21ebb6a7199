//! Automatic inverses: undoing an action from what its apply recorded.
//!
//! File edits are restored byte-identical, but only when the file still has the content rb6
//! wrote (its sha256 was recorded); otherwise undo stops and shows the difference, unless
//! `--force`. A compose service that `compose_up` started is stopped and removed.

use std::path::PathBuf;

use super::file::{self, Before, FileChange};
use super::perform::compose_remove;
use crate::execute::Context;
use crate::model::Step;

/// Undoes a step from its recorded undo data.
pub async fn restore(context: &Context, step: &Step, undo: &serde_json::Value) -> Result<(), String> {
    if let Some(change) = undo.get("file") {
        let change: FileChange = serde_json::from_value(change.clone()).map_err(|error| format!("invalid undo record: {error}"))?;
        return restore_file(context, &change);
    }
    if let Some(compose) = undo.get("compose") {
        let project_dir = PathBuf::from(compose["project_dir"].as_str().unwrap_or_default());
        let service = compose["service"].as_str().unwrap_or_default();
        let tool = context.compose().await?;
        compose_remove(tool, &project_dir, service).await.map_err(|error| error.to_string())?;
        return Ok(());
    }
    context.reporter.line(&format!("- step \"{}\": nothing recorded to undo (it was found already done by its check)", step.name));
    Ok(())
}

/// Combines the undo data of a step applied again after a definition change with the data
/// of its earlier apply, so undo still restores the state from before the first apply.
///
/// The earlier `before` is kept when the step rewrote its own output: the same file path
/// whose content was still what the earlier apply wrote, or the same directory. Otherwise
/// (another step changed the file in between, or the path changed) the new data wins. When
/// the new apply recorded nothing (its `check` passed), the earlier data is kept.
pub fn merge_reapplied(previous: &serde_json::Value, new: serde_json::Value) -> serde_json::Value {
    if new.is_null() {
        return previous.clone();
    }
    let (Some(previous_change), Some(new_change)) = (file_change(previous), file_change(&new)) else { return new };
    if previous_change.path != new_change.path {
        return new;
    }

    let own_output = match (&previous_change.before, &new_change.before) {
        (Before::Directory { .. }, Before::Directory { .. }) => true,
        (_, Before::File(snapshot)) => previous_change.after_sha256.as_deref() == Some(file::sha256_hex(&snapshot.content).as_str()),
        _ => false,
    };
    if !own_output {
        return new;
    }
    let merged = FileChange { before: previous_change.before, ..new_change };
    serde_json::json!({ "file": merged })
}

fn file_change(undo: &serde_json::Value) -> Option<FileChange> {
    serde_json::from_value(undo.get("file")?.clone()).ok()
}

fn restore_file(context: &Context, change: &FileChange) -> Result<(), String> {
    if let Some(after) = &change.after_sha256 {
        let current = file::current_sha256(&change.path).map_err(|error| error.to_string())?;
        let before = before_sha256(&change.before);
        if current == before {
            return Ok(());
        }
        if current.as_deref() != Some(after.as_str()) && !context.options.force {
            return Err(changed_since_message(change));
        }
    }
    file::restore(change).map_err(|error| error.to_string())
}

fn before_sha256(before: &Before) -> Option<String> {
    match before {
        Before::File(snapshot) => Some(file::sha256_hex(&snapshot.content)),
        _ => None,
    }
}

fn changed_since_message(change: &FileChange) -> String {
    let current = std::fs::read_to_string(&change.path).unwrap_or_default();
    let restored = match &change.before {
        Before::File(snapshot) => String::from_utf8_lossy(&snapshot.content).into_owned(),
        _ => String::new(),
    };
    format!(
        "{} changed since rb6 wrote it, so undo stopped; undo would make this change to the current file:\n{}\nrun `rb6 undo --force` to restore the recorded content anyway",
        change.path.display(),
        file::diff(&current, &restored)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, before: Before, after: Option<&[u8]>) -> serde_json::Value {
        let change = FileChange { path: PathBuf::from(path), before, after_sha256: after.map(file::sha256_hex) };
        serde_json::json!({ "file": change })
    }

    fn snapshot(content: &[u8]) -> Before {
        Before::File(file::FileSnapshot { content: content.to_vec(), attributes: file::Attributes { mode: 0o644, uid: 0, gid: 0 } })
    }

    #[test]
    fn reapplied_file_keeps_first_before() {
        let first = change("/x/a", Before::Absent, Some(b"v1"));
        let second = change("/x/a", snapshot(b"v1"), Some(b"v2"));
        let merged = file_change(&merge_reapplied(&first, second)).expect("a file change");
        assert_eq!(merged.before, Before::Absent, "undo must restore the state before the first apply");
        assert_eq!(merged.after_sha256, Some(file::sha256_hex(b"v2")), "the new content is what undo expects to find");
    }

    #[test]
    fn file_changed_by_others_keeps_new_before() {
        let first = change("/x/a", Before::Absent, Some(b"v1"));
        let second = change("/x/a", snapshot(b"rewritten by another step"), Some(b"v2"));
        let merged = file_change(&merge_reapplied(&first, second.clone())).expect("a file change");
        assert_eq!(serde_json::json!({ "file": merged }), second, "another step's content must be restored, not skipped");
    }

    #[test]
    fn other_path_keeps_new_data() {
        let first = change("/x/a", Before::Absent, Some(b"v1"));
        let second = change("/x/b", Before::Absent, Some(b"v1"));
        assert_eq!(merge_reapplied(&first, second.clone()), second, "a new path has its own undo");
    }

    #[test]
    fn check_passed_keeps_previous_data() {
        let first = change("/x/a", Before::Absent, Some(b"v1"));
        assert_eq!(merge_reapplied(&first, serde_json::Value::Null), first, "a passing check records nothing new");
    }

    #[test]
    fn reapplied_directory_keeps_created_list() {
        let first = change("/x/d", Before::Directory { created: vec![PathBuf::from("/x/d")], existing: None }, None);
        let attributes = file::Attributes { mode: 0o750, uid: 0, gid: 0 };
        let second = change("/x/d", Before::Directory { created: Vec::new(), existing: Some(attributes) }, None);
        let merged = file_change(&merge_reapplied(&first, second)).expect("a file change");
        assert_eq!(merged.before, Before::Directory { created: vec![PathBuf::from("/x/d")], existing: None }, "undo must remove the directory the first apply created");
    }
}

/// Takes the pre-action state of a single-file action, for the "started" record.
///
/// Returns `Null` for actions that change no single file or whose target can't be read yet;
/// the action itself then reports any error.
pub fn snapshot_before(call: &crate::model::Call, scope: &crate::interpolate::Scope) -> serde_json::Value {
    use crate::schema::CallKind;

    let args = super::args::Args::new(call, scope);
    let target = match call.kind {
        CallKind::File | CallKind::Block => args.text("path"),
        CallKind::Copy => args.text("destination"),
        CallKind::YamlSet | CallKind::YamlAppend | CallKind::YamlRemove => args.text("file"),
        _ => return serde_json::Value::Null,
    };
    let Ok(path) = target else { return serde_json::Value::Null };
    match file::snapshot(std::path::Path::new(&path)) {
        Ok((path, before)) => serde_json::json!({ "path": path, "before": before }),
        Err(_) => serde_json::Value::Null,
    }
}

/// Replaces the "before" of a file change with the earliest one recorded for the same path.
///
/// After a kill between a file write and its "applied" record, the resumed run sees the file
/// already edited; the snapshot taken before the first attempt is the real original.
pub fn with_earliest_before(undo: serde_json::Value, earliest: &serde_json::Value) -> serde_json::Value {
    let Some(mut change) = file_change(&undo) else { return undo };
    let Some(path) = earliest.get("path").and_then(|path| path.as_str()) else { return undo };
    let Ok(before) = serde_json::from_value::<Before>(earliest["before"].clone()) else { return undo };
    if std::path::Path::new(path) != change.path {
        return undo;
    }
    change.before = before;
    serde_json::json!({ "file": change })
}
