//! Saved plans (`rb6 plan -out FILE`): a plan bound to what it was made from.
//!
//! The file records sha256 digests of the runbook text, the variable values and the state, so
//! `rb6 apply FILE` can refuse a plan that no longer matches. Invariant: the file holds no
//! secret value — the plan is already redacted and the state digest covers secret names only.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::Plan;
use crate::state::records::State;
use crate::LoadedRunbook;

/// The format tag at the top of a saved plan file.
pub const FORMAT: &str = "rb6-plan/1";

/// A plan file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub runbook_path: PathBuf,
    pub runbook_sha256: String,
    pub variables_sha256: String,
    pub state_sha256: String,
    pub variables: BTreeMap<String, serde_json::Value>,
    pub created_at: String,
    pub plan: serde_json::Value,
}

impl SavedPlan {
    /// Binds a plan to the runbook, variables and state it was made from.
    pub fn new(loaded: &LoadedRunbook, variables: &BTreeMap<String, serde_json::Value>, state: &State, plan: Plan) -> SavedPlan {
        SavedPlan {
            format: FORMAT.to_string(),
            runbook_path: loaded.path.clone(),
            runbook_sha256: sha256(loaded.runbook.source.text.as_bytes()),
            variables_sha256: variables_digest(variables),
            state_sha256: state_digest(state),
            variables: variables.clone(),
            created_at: crate::report::timestamp(),
            plan: serde_json::to_value(plan).expect("plans serialize"),
        }
    }

    /// Writes the plan file with mode 0600.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("saved plans serialize");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    }

    /// Reads a plan file; `None` when the file is not a saved plan (e.g. a runbook).
    pub fn read(path: &Path) -> Option<SavedPlan> {
        let text = std::fs::read_to_string(path).ok()?;
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str::<SavedPlan>(&text).ok().filter(|plan| plan.format == FORMAT)
    }

    /// Lists what differs from when the plan was made; empty when the plan still applies.
    pub fn staleness(&self, loaded: &LoadedRunbook, variables: &BTreeMap<String, serde_json::Value>, state: &State) -> Vec<String> {
        let mut changes = Vec::new();
        if sha256(loaded.runbook.source.text.as_bytes()) != self.runbook_sha256 {
            changes.push(format!("the runbook {} changed", loaded.path.display()));
        }
        if variables_digest(variables) != self.variables_sha256 {
            changes.push("the variable values changed".to_string());
        }
        if state_digest(state) != self.state_sha256 {
            changes.push("the state changed (another apply or undo ran)".to_string());
        }
        changes
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn variables_digest(variables: &BTreeMap<String, serde_json::Value>) -> String {
    sha256(serde_json::to_string(variables).expect("values serialize").as_bytes())
}

/// Digest of the state with secret values left out.
fn state_digest(state: &State) -> String {
    let view = serde_json::json!({
        "steps": state.steps,
        "confirmed": state.confirmed,
        "secrets": state.secrets.keys().collect::<Vec<_>>(),
    });
    sha256(view.to_string().as_bytes())
}
