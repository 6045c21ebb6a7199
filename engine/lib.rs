//! rb6: a runbook engine.
//!
//! A `.rb6` runbook declares steps, their dependencies, gates, manual steps and the undo of
//! each step. The pipeline is one module per stage:
//!
//! `grammar` → `parse` (syntax tree) → `resolve` (typed [`model::Runbook`], validation)
//! → `graph` (petgraph DAG) → `plan` → `render`, and on the apply side
//! `execute` → `actions` (one file per action family) → `state` (journal, lock) → `report`.

pub mod actions;
pub mod state;
