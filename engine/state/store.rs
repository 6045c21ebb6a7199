//! The store: the folded [`State`] of one state directory, kept in step with its journal.
//!
//! Every change is a [`Record`] appended durably before it is folded into memory, so what
//! the process believes never runs ahead of what a crash would leave on disk. The journal is
//! compacted into a snapshot once it holds [`COMPACT_EVERY`] records and at least as many
//! records as the state has steps, so load time stays linear in the state's size and each
//! append pays a constant share of the snapshots written.

use std::path::Path;

use super::journal::Journal;
use super::records::{Record, State};
use super::{StateDir, StateError};

/// Minimum number of records appended between two compactions.
pub const COMPACT_EVERY: usize = 512;

/// A writable state: the caller holds the directory's lock.
pub struct Store {
    dir: StateDir,
    journal: Journal<State, Record>,
    state: State,
    appended: usize,
}

impl Store {
    /// Opens (creating it 0700 if needed) and loads a state directory.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let dir = StateDir::open(path)?;
        let mut journal = Journal::open(&dir);
        let state = fold(&mut journal)?;
        Ok(Store { dir, journal, state, appended: 0 })
    }

    /// Loads a state directory without creating or changing anything; empty when it does not exist.
    pub fn read(path: &Path) -> Result<State, StateError> {
        if !path.exists() {
            return Ok(State::default());
        }
        let dir = StateDir::open(path)?;
        let mut journal: Journal<State, Record> = Journal::open(&dir);
        fold(&mut journal)
    }

    /// Returns the current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Returns the state directory.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Appends a record durably, then folds it into the state.
    pub fn append(&mut self, record: Record) -> Result<(), StateError> {
        self.journal.append(&record)?;
        self.state.apply(&record);
        self.appended += 1;
        if self.appended >= COMPACT_EVERY.max(self.state.steps.len()) {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes the state as a snapshot and starts a fresh journal.
    pub fn compact(&mut self) -> Result<(), StateError> {
        self.journal.compact(&self.state)?;
        self.appended = 0;
        Ok(())
    }
}

fn fold(journal: &mut Journal<State, Record>) -> Result<State, StateError> {
    let loaded = journal.load()?;
    if let Some(torn) = &loaded.torn_tail {
        tracing::warn!(offset = torn.offset, length = torn.len, "ignored a torn last record in the journal");
    }
    let mut state = loaded.snapshot.unwrap_or_default();
    for record in &loaded.records {
        state.apply(record);
    }
    Ok(state)
}
