//! Actions: the effects a step can have, one file per action family, plus their dispatch.
//!
//! `perform` runs an action call, `probe` evaluates read-only checks, `capture` reads values
//! after a step, and `inverse` undoes an action from what its apply recorded.

mod args;
pub mod capture;
pub mod compose;
pub mod docker;
pub mod file;
pub mod http;
pub mod inverse;
mod perform;
pub mod postgres;
pub mod probe;
pub mod shell;
pub mod yaml;

pub use perform::{clean_up_interrupted, connect_postgres, perform, ActionOutput};
