//! Shared helpers of the tests that run the real `rb6` binary: a scratch directory with a
//! runbook in it, and a command runner that captures exit code, stdout and stderr.
//!
//! Invariant: every run has `NO_COLOR` set, `RB6_LOG` and every inherited `RB6_VAR_*` removed,
//! and the scratch directory as its working directory, so outputs are plain and stable.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the binary cargo built for these tests.
pub const RB6: &str = env!("CARGO_BIN_EXE_rb6");

/// The captured result of one `rb6` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or_else(|| panic!("rb6 was killed by a signal: {:?}", output.status)),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stdout and stderr together, for checks that cover every output.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A temporary directory that holds one runbook and its `.rb6` state.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates an empty scratch directory.
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("create a temporary directory") }
    }

    /// Creates a scratch directory with `text` written to `runbook.rb6`.
    pub fn with_runbook(text: &str) -> Scratch {
        let scratch = Scratch::new();
        scratch.write("runbook.rb6", text);
        scratch
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        path
    }

    /// Reads a file of the directory as text.
    pub fn read(&self, name: &str) -> String {
        let path = self.path().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    }

    /// A command for `rb6 ARGS` inside the directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(RB6);
        command.args(args).current_dir(self.path()).env("NO_COLOR", "1").env_remove("RB6_LOG");
        for (key, _) in std::env::vars() {
            if key.starts_with("RB6_VAR_") {
                command.env_remove(key);
            }
        }
        command
    }

    /// Runs `rb6 ARGS` inside the directory with stdin closed.
    pub fn rb6(&self, args: &[&str]) -> Run {
        self.run(self.command(args))
    }

    /// Runs a prepared command with stdin closed.
    pub fn run(&self, mut command: Command) -> Run {
        command.stdin(std::process::Stdio::null());
        let output = command.output().unwrap_or_else(|error| panic!("can't run {RB6}: {error}"));
        Run::from_output(output)
    }
}

/// Replaces the scratch directory's path and RFC 3339 timestamps with placeholders.
pub fn stable(text: &str, scratch: &Scratch) -> String {
    let text = text.replace(&scratch.path().display().to_string(), "[DIR]");
    let timestamp = regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").expect("valid regex");
    timestamp.replace_all(&text, "[TIME]").into_owned()
}
