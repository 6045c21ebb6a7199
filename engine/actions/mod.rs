//! Actions: the effects a step can have, one file per action family.

pub mod compose;
pub mod docker;
pub mod file;
pub mod http;
pub mod postgres;
pub mod shell;
pub mod yaml;
