//! rb6: a runbook engine.
//!
//! A `.rb6` runbook declares steps, their dependencies, gates, manual steps and the undo of
//! each step. The pipeline is one module per stage:
//!
//! `grammar` → `parse` (syntax tree) → `resolve` (typed [`model::Runbook`], validation)
//! → `graph` (petgraph DAG) → `plan` → `render`, and on the apply side
//! `execute` → `actions` (one file per action family) → `state` (journal, lock) → `report`.

pub mod actions;
pub mod diagnostic;
pub mod execute;
pub mod grammar;
pub mod graph;
pub mod interpolate;
pub mod load;
pub mod model;
pub mod parse;
pub mod plan;
pub mod render;
pub mod report;
pub mod resolve;
pub mod saved_plan;
pub mod schema;
pub mod state;
pub mod syntax;
pub mod vars;

pub use load::{load, load_source, LoadError, LoadedRunbook};
