//! The state's records and their fold into [`State`]: what each step's last apply or undo did.
//!
//! The journal stores [`Record`]s in order; folding them (after the snapshot) gives the state.
//! Folding is idempotent per record, so replaying a record twice leaves the same state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The status of a step in the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The action began and did not finish: the run was interrupted.
    Started,
    Applied,
    Failed,
    /// The undo began and did not finish.
    UndoStarted,
    Undone,
    UndoFailed,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Started {
        step: String,
        hash: String,
        at: String,
        /// The state the action is about to change (e.g. a file's content), taken before it runs,
        /// so an undo after an interrupted and resumed apply still restores the original.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        before: serde_json::Value,
    },
    Applied {
        step: String,
        hash: String,
        at: String,
        /// True when the check probe passed and the action did not run.
        via_check: bool,
        /// True when the check passed before rb6 ever ran the step: rb6 did not create its effect,
        /// so undo leaves it in place.
        #[serde(default)]
        preexisting: bool,
        #[serde(default)]
        captures: BTreeMap<String, String>,
        /// Data for undo, e.g. a file's previous content.
        #[serde(default)]
        undo: serde_json::Value,
        #[serde(default)]
        output: String,
    },
    Failed { step: String, hash: String, at: String, error: String },
    UndoStarted { step: String, at: String },
    Undone { step: String, at: String, skipped: Option<String> },
    UndoFailed { step: String, at: String, error: String },
    SecretGenerated { name: String, value: String },
    Confirmed { step: String, at: String },
}

/// The state's record of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: StepStatus,
    pub hash: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub via_check: bool,
    /// The step's effect existed before rb6 ran it (see [`Record::Applied`]).
    #[serde(default)]
    pub preexisting: bool,
    /// The earliest pre-action state of the current attempt and the interrupted ones before it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub before: serde_json::Value,
    pub captures: BTreeMap<String, String>,
    pub undo: serde_json::Value,
    pub output: String,
    pub error: Option<String>,
}

/// The folded state of a runbook's applies and undos.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub steps: BTreeMap<String, StepRecord>,
    pub secrets: BTreeMap<String, String>,
    pub confirmed: BTreeSet<String>,
}

impl State {
    /// Applies one record.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Started { step, hash, at, before } => {
                let entry = self.entry(step, hash);
                let resumed = entry.status == StepStatus::Started && !entry.before.is_null();
                if !resumed {
                    entry.before = before.clone();
                }
                entry.status = StepStatus::Started;
                entry.hash = hash.clone();
                entry.started_at = Some(at.clone());
                entry.finished_at = None;
                entry.error = None;
            }
            Record::Applied { step, hash, at, via_check, preexisting, captures, undo, output } => {
                let entry = self.entry(step, hash);
                entry.status = StepStatus::Applied;
                entry.hash = hash.clone();
                entry.finished_at = Some(at.clone());
                entry.via_check = *via_check;
                entry.preexisting = *preexisting;
                entry.before = serde_json::Value::Null;
                entry.captures = captures.clone();
                entry.undo = undo.clone();
                entry.output = output.clone();
                entry.error = None;
            }
            Record::Failed { step, hash, at, error } => {
                let entry = self.entry(step, hash);
                entry.status = StepStatus::Failed;
                entry.finished_at = Some(at.clone());
                entry.error = Some(error.clone());
            }
            Record::UndoStarted { step, at } => self.set_undo_status(step, StepStatus::UndoStarted, at, None),
            Record::Undone { step, at, .. } => {
                self.set_undo_status(step, StepStatus::Undone, at, None);
                self.confirmed.remove(step);
            }
            Record::UndoFailed { step, at, error } => self.set_undo_status(step, StepStatus::UndoFailed, at, Some(error.clone())),
            Record::SecretGenerated { name, value } => {
                self.secrets.insert(name.clone(), value.clone());
            }
            Record::Confirmed { step, .. } => {
                self.confirmed.insert(step.clone());
            }
        }
    }

    fn entry(&mut self, step: &str, hash: &str) -> &mut StepRecord {
        self.steps.entry(step.to_string()).or_insert_with(|| StepRecord {
            status: StepStatus::Started,
            hash: hash.to_string(),
            started_at: None,
            finished_at: None,
            via_check: false,
            preexisting: false,
            before: serde_json::Value::Null,
            captures: BTreeMap::new(),
            undo: serde_json::Value::Null,
            output: String::new(),
            error: None,
        })
    }

    fn set_undo_status(&mut self, step: &str, status: StepStatus, at: &str, error: Option<String>) {
        if let Some(entry) = self.steps.get_mut(step) {
            entry.status = status;
            entry.finished_at = Some(at.to_string());
            entry.error = error;
        }
    }

    /// Returns every captured value, from every applied step.
    pub fn captures(&self) -> BTreeMap<String, String> {
        self.steps.values().filter(|record| record.status == StepStatus::Applied).flat_map(|record| record.captures.clone()).collect()
    }

    /// Returns the status of a step, if the state has a record of it.
    pub fn status(&self, step: &str) -> Option<StepStatus> {
        self.steps.get(step).map(|record| record.status)
    }
}
