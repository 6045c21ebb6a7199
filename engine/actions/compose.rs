//! Docker Compose actions through the compose CLI: up, restart, stop and rm of one service.
//!
//! Invariant: the tool is detected once per process and then reused. The `docker compose` v2
//! plugin is preferred, and the standalone `docker-compose` v1 (Debian ships 1.29) is the
//! fallback. Every subcommand used here takes the same flags in both versions.
//!
//! Commands on the same project directory run one at a time within a process. Two concurrent
//! `up` runs of one project would each create the project's default network. Docker Engine 20.10
//! accepts the duplicate name, and then both runs fail with "network ... is ambiguous".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::process::Command;
use tokio::sync::OnceCell;

static DETECTED: OnceCell<ComposeTool> = OnceCell::const_new();

/// One lock per project directory, held while a compose command runs in it.
static PROJECT_LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    OnceLock::new();

fn project_lock(project_dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    let key = project_dir
        .canonicalize()
        .unwrap_or_else(|_| project_dir.to_path_buf());
    let locks = PROJECT_LOCKS.get_or_init(Default::default);
    locks
        .lock()
        .expect("compose project locks")
        .entry(key)
        .or_default()
        .clone()
}

/// Errors of compose actions.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ComposeError {
    /// Neither compose tool ran `version` successfully.
    #[error("no Docker Compose found: `docker compose version` failed ({v2}) and `docker-compose version` failed ({v1})")]
    #[diagnostic(
        code(rb6::compose::not_found),
        help("install the Docker Compose v2 plugin (docker-compose-plugin) or docker-compose v1")
    )]
    NotFound { v2: String, v1: String },

    /// The tool could not be started.
    #[error("cannot run `{command}` in {project_dir}: {message}")]
    #[diagnostic(code(rb6::compose::spawn))]
    Spawn {
        command: String,
        project_dir: String,
        message: String,
    },

    /// The tool exited with a failure status.
    #[error("`{command}` in {project_dir} failed with {status}: {stderr}")]
    #[diagnostic(code(rb6::compose::failed))]
    Failed {
        command: String,
        project_dir: String,
        status: String,
        stderr: String,
    },
}

/// Kind of the installed compose CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeFlavor {
    /// The `docker compose` CLI plugin.
    V2Plugin,
    /// The standalone Python `docker-compose`.
    V1Standalone,
}

/// The detected compose CLI and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTool {
    /// Plugin or standalone tool.
    pub flavor: ComposeFlavor,
    /// Version as the tool prints it with `version --short`, e.g. `1.29.2`.
    pub version: String,
}

/// Output of a successful compose command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeOutput {
    /// The tool's stdout.
    pub stdout: String,
    /// The tool's stderr, where compose writes its progress lines.
    pub stderr: String,
}

impl ComposeTool {
    /// Detects the compose CLI on the first call and returns the cached result afterwards.
    pub async fn detect() -> Result<ComposeTool, ComposeError> {
        DETECTED.get_or_try_init(probe).await.cloned()
    }

    /// Returns the tool's name and version, e.g. `docker-compose 1.29.2 (v1)`.
    pub fn describe(&self) -> String {
        match self.flavor {
            ComposeFlavor::V2Plugin => format!("docker compose {} (v2 plugin)", self.version),
            ComposeFlavor::V1Standalone => format!("docker-compose {} (v1)", self.version),
        }
    }

    /// Creates and starts `service` in the background (`up -d SERVICE`).
    pub async fn up(
        &self,
        project_dir: &Path,
        service: &str,
    ) -> Result<ComposeOutput, ComposeError> {
        self.run(project_dir, &["up", "-d", service]).await
    }

    /// Restarts `service` (`restart SERVICE`).
    pub async fn restart(
        &self,
        project_dir: &Path,
        service: &str,
    ) -> Result<ComposeOutput, ComposeError> {
        self.run(project_dir, &["restart", service]).await
    }

    /// Stops `service` (`stop SERVICE`).
    pub async fn stop(
        &self,
        project_dir: &Path,
        service: &str,
    ) -> Result<ComposeOutput, ComposeError> {
        self.run(project_dir, &["stop", service]).await
    }

    /// Stops `service` if needed and removes its containers without asking (`rm -f -s SERVICE`).
    pub async fn rm(
        &self,
        project_dir: &Path,
        service: &str,
    ) -> Result<ComposeOutput, ComposeError> {
        self.run(project_dir, &["rm", "-f", "-s", service]).await
    }

    /// Runs the tool with `args` in `project_dir`, where it finds the compose file.
    pub async fn run(
        &self,
        project_dir: &Path,
        args: &[&str],
    ) -> Result<ComposeOutput, ComposeError> {
        let (program, prefix) = self.program();
        let command_line = std::iter::once(program)
            .chain(prefix.iter().copied())
            .chain(args.iter().copied());
        let command_text = command_line.collect::<Vec<_>>().join(" ");
        let project = project_dir.display().to_string();
        let lock = project_lock(project_dir);
        let _running = lock.lock().await;
        tracing::debug!(command = %command_text, project_dir = %project, "running compose");

        let output = Command::new(program)
            .args(prefix)
            .args(args)
            .current_dir(project_dir)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|error| ComposeError::Spawn {
                command: command_text.clone(),
                project_dir: project.clone(),
                message: error.to_string(),
            })?;

        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(ComposeError::Failed {
                command: command_text,
                project_dir: project,
                status: output.status.to_string(),
                stderr: stderr.trim().to_string(),
            });
        }
        Ok(ComposeOutput { stdout, stderr })
    }

    fn program(&self) -> (&'static str, &'static [&'static str]) {
        match self.flavor {
            ComposeFlavor::V2Plugin => ("docker", &["compose"]),
            ComposeFlavor::V1Standalone => ("docker-compose", &[]),
        }
    }
}

async fn probe() -> Result<ComposeTool, ComposeError> {
    let v2 = match version_of("docker", &["compose", "version", "--short"]).await {
        Ok(version) => {
            return Ok(ComposeTool {
                flavor: ComposeFlavor::V2Plugin,
                version,
            })
        }
        Err(message) => message,
    };
    let v1 = match version_of("docker-compose", &["version", "--short"]).await {
        Ok(version) => {
            return Ok(ComposeTool {
                flavor: ComposeFlavor::V1Standalone,
                version,
            })
        }
        Err(message) => message,
    };
    Err(ComposeError::NotFound { v2, v1 })
}

/// Runs a version command and returns its trimmed stdout, or a one-line failure description.
async fn version_of(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| error.to_string())?;

    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_line = stderr
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{}: {}", output.status, first_line.trim()));
    }
    let version = String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    Ok(version)
}
