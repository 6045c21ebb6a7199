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
