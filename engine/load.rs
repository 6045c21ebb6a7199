//! Loading: the front half of the pipeline in one call — read, parse, resolve, build the graph.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostics, Problem, SourceFile};
use crate::graph::StepGraph;
use crate::model::Runbook;

/// A runbook that passed validation, with its graph and warnings.
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    pub runbook: Runbook,
    pub graph: StepGraph,
    pub warnings: Diagnostics,
    pub path: PathBuf,
}

/// The reason a runbook could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("can't read runbook {path}: {message}")]
    #[diagnostic(help("check the path and that the file is readable"))]
    Unreadable { path: String, message: String },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates a runbook file.
pub fn load(path: &Path) -> Result<LoadedRunbook, LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Unreadable { path: path.display().to_string(), message: error.to_string() })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let source = SourceFile::new(path.display().to_string(), lossy);
            let problem = Problem::error(&source, offset..offset, format!("runbook is not valid UTF-8 (invalid byte at offset {offset})"), "invalid UTF-8 here")
                .with_help("a runbook is UTF-8 text; is this a binary file?");
            return Err(LoadError::Invalid(Diagnostics { problems: vec![problem] }));
        }
    };
    load_source(SourceFile::new(path.display().to_string(), text), path)
}

/// Most problems reported for one runbook; the rest are counted in one last error.
pub const MAX_PROBLEMS: usize = 100;

/// Validates runbook text already in memory; `path` locates `${runbook.dir}`.
pub fn load_source(source: SourceFile, path: &Path) -> Result<LoadedRunbook, LoadError> {
    let body = crate::parse::parse(&source).map_err(|problem| LoadError::Invalid(Diagnostics { problems: vec![problem] }))?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (runbook, mut warnings) = crate::resolve::resolve(&source, body, &absolute).map_err(|mut problems| {
        problems.truncate(MAX_PROBLEMS);
        LoadError::Invalid(problems)
    })?;
    let graph = StepGraph::build(&runbook).map_err(|mut cycles| {
        cycles.problems.extend(warnings.problems.iter().cloned());
        cycles.sort();
        cycles.truncate(MAX_PROBLEMS);
        LoadError::Invalid(cycles)
    })?;
    warnings.truncate(MAX_PROBLEMS);
    Ok(LoadedRunbook { runbook, graph, warnings, path: absolute })
}
