//! Shared helpers of the tests that run the real `rb6` binary: a sandbox directory with a
//! runbook, commands that report everything on failure, background runs killed with SIGKILL,
//! and a reader of the state journal's frames.
//!
//! Invariant: every `rb6` process runs with stdin from /dev/null (so it has no terminal),
//! `NO_COLOR=1`, no inherited `RB6_*` variables, and the sandbox as its working directory.
//! Background runs start in a session of their own, so [`Background::kill`] can kill the
//! binary and every step process it started, as a crash of the whole service would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const RB6: &str = env!("CARGO_BIN_EXE_rb6");

/// A script for pause points: `sh pause.sh POINT` sleeps when the environment variable
/// `PAUSE_AT` equals POINT, after creating the file `paused` beside the script.
pub const PAUSE_SCRIPT: &str = r#"#!/bin/sh
if [ "$PAUSE_AT" = "$1" ]; then
  touch "$(dirname "$0")/paused"
  exec sleep 60
fi
"#;

/// Name of the runbook file in every sandbox.
pub const RUNBOOK: &str = "runbook.rb6";

/// Maximum wait for a condition that a healthy run reaches in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A temporary directory holding one runbook and its `.rb6` state.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Creates an empty sandbox.
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("rb6-test-").tempdir().expect("create a temporary directory");
        Sandbox { dir }
    }

    /// Creates a sandbox with `text` as its runbook.
    pub fn with_runbook(text: &str) -> Sandbox {
        let sandbox = Sandbox::new();
        sandbox.write_runbook(text);
        sandbox
    }

    /// Returns the sandbox directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns a path inside the sandbox.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Returns the runbook's path.
    pub fn runbook(&self) -> PathBuf {
        self.path(RUNBOOK)
    }

    /// Returns the state directory's path.
    pub fn state_dir(&self) -> PathBuf {
        self.path(".rb6")
    }

    /// Returns the journal's path.
    pub fn journal(&self) -> PathBuf {
        self.path(".rb6/journal")
    }

    /// Replaces the runbook.
    pub fn write_runbook(&self, text: &str) {
        self.write(RUNBOOK, text);
    }

    /// Writes a file inside the sandbox, creating its parent directories.
    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a sandbox path has a parent")).expect("create parent directories");
        std::fs::write(&path, content).unwrap_or_else(|error| panic!("can't write {}: {error}", path.display()));
    }

    /// Reads a file inside the sandbox as text; empty when it does not exist.
    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    /// Reads the lines of a file inside the sandbox, none when it does not exist.
    pub fn lines(&self, relative: &str) -> Vec<String> {
        self.read(relative).lines().map(str::to_string).collect()
    }

    /// Returns whether a file or directory exists inside the sandbox.
    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }

    /// Builds a command that runs `rb6 ARGS` in the sandbox.
    pub fn rb6(&self, args: &[&str]) -> Rb6 {
        Rb6::new(self.dir(), args)
    }

    /// Runs `rb6 COMMAND runbook.rb6 EXTRA...` and returns its result.
    pub fn run(&self, command: &str, extra: &[&str]) -> Run {
        let mut args = vec![command, RUNBOOK];
        args.extend_from_slice(extra);
        self.rb6(&args).run()
    }

    /// Runs `rb6 apply --auto-approve EXTRA...`, which must exit 0.
    pub fn apply_ok(&self, extra: &[&str]) -> Run {
        let mut args = vec!["--auto-approve"];
        args.extend_from_slice(extra);
        self.run("apply", &args).expect_code(0)
    }

    /// Runs `rb6 undo --auto-approve EXTRA...`, which must exit 0.
    pub fn undo_ok(&self, extra: &[&str]) -> Run {
        let mut args = vec!["--auto-approve"];
        args.extend_from_slice(extra);
        self.run("undo", &args).expect_code(0)
    }

    /// Runs `rb6 ARGS` with `PAUSE_AT=pause` until it reaches that pause point, then kills it
    /// and every step process. Needs [`PAUSE_SCRIPT`] as `pause.sh` in the sandbox.
    pub fn kill_at(&self, pause: &str, args: &[&str]) {
        let mut run = self.rb6(args).env("PAUSE_AT", pause).spawn(&self.path("runs"));
        run.wait_for_file(&self.path("paused"));
        run.kill();
        std::fs::remove_file(self.path("paused")).expect("remove the pause marker");
    }

    /// Runs `rb6 state list` and drops the finish times, leaving one `kind name status` line per step.
    pub fn state_list(&self) -> Vec<String> {
        let run = self.rb6(&["state", "list", RUNBOOK]).run().expect_code(0);
        run.stdout.lines().map(|line| line.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).collect()
    }

    /// Returns the status that `rb6 state list` shows for one step.
    pub fn status(&self, step: &str) -> String {
        let lines = self.state_list();
        let line = lines.iter().find(|line| line.split(' ').nth(1) == Some(step)).unwrap_or_else(|| panic!("step {step} is missing from `rb6 state list`:\n{}", lines.join("\n")));
        line.split(' ').nth(2).unwrap_or_default().to_string()
    }

    /// Runs `rb6 plan --json` and maps each step that changes to its plan symbol.
    pub fn plan_symbols(&self, extra: &[&str]) -> BTreeMap<String, String> {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let run = self.run("plan", &args).expect_code(0);
        let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("plan --json is not JSON ({error}):\n{run}"));
        plan["entries"]
            .as_array()
            .expect("plan entries are a list")
            .iter()
            .filter(|entry| entry["change"] != "none")
            .map(|entry| (entry["step"].as_str().unwrap_or_default().to_string(), entry["symbol"].as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// Finds every path under the sandbox whose file name is `name`.
    pub fn find_named(&self, name: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.dir().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.file_name().is_some_and(|file| file == name) {
                    found.push(path.clone());
                }
                if path.is_dir() {
                    pending.push(path);
                }
            }
        }
        found
    }
}

/// One `rb6` invocation being built.
pub struct Rb6 {
    command: Command,
    display: String,
}

impl Rb6 {
    fn new(dir: &Path, args: &[&str]) -> Rb6 {
        let mut command = Command::new(RB6);
        command.args(args).current_dir(dir).stdin(Stdio::null()).env("NO_COLOR", "1");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RB6_") {
                command.env_remove(key);
            }
        }
        let display = format!("(cd {} && rb6 {})", dir.display(), args.iter().map(|arg| quote(arg)).collect::<Vec<_>>().join(" "));
        Rb6 { command, display }
    }

    /// Sets an environment variable of the process.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Rb6 {
        let value = value.into();
        self.display = format!("{}={} {}", key, quote(&value.to_string_lossy()), self.display);
        self.command.env(key, value);
        self
    }

    /// Runs the command to its end.
    pub fn run(mut self) -> Run {
        let started = Instant::now();
        let output = self.command.output().unwrap_or_else(|error| panic!("can't run {}: {error}", self.display));
        Run {
            command: self.display,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Starts the command in a session of its own, its output going to files in `log_dir`.
    pub fn spawn(mut self, log_dir: &Path) -> Background {
        std::fs::create_dir_all(log_dir).expect("create the log directory");
        let stamp = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        let stdout_path = log_dir.join(format!("rb6-{stamp}.stdout"));
        let stderr_path = log_dir.join(format!("rb6-{stamp}.stderr"));
        self.command.stdout(std::fs::File::create(&stdout_path).expect("create the stdout file"));
        self.command.stderr(std::fs::File::create(&stderr_path).expect("create the stderr file"));
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            self.command.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
        }
        let child = self.command.spawn().unwrap_or_else(|error| panic!("can't start {}: {error}", self.display));
        Background { child, command: self.display, stdout_path, stderr_path, status: None, started: Instant::now() }
    }
}

/// The result of one finished `rb6` run.
pub struct Run {
    pub command: String,
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command: {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---", self.command, self.code, self.stdout, self.stderr)
    }
}

impl Run {
    /// Panics with the whole run unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Returns stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the whole run unless stdout or stderr contains `text`.
    pub fn expect_output(&self, text: &str) -> &Run {
        assert!(self.output().contains(text), "expected the output to contain {text:?}\n{self}");
        self
    }

    /// Panics with the whole run if stdout or stderr contains `text`.
    pub fn expect_no_output(&self, text: &str) -> &Run {
        assert!(!self.output().contains(text), "expected the output not to contain {text:?}\n{self}");
        self
    }

    /// Returns the index of the first stdout line containing `text`.
    pub fn line_index(&self, text: &str) -> usize {
        self.stdout.lines().position(|line| line.contains(text)).unwrap_or_else(|| panic!("no stdout line contains {text:?}\n{self}"))
    }
}

/// An `rb6` process running in the background in a session of its own.
pub struct Background {
    child: Child,
    pub command: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
    started: Instant,
}

impl Background {
    /// Returns the process id, which is also its session and process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns whether the process has exited, reaping it if so.
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("poll the rb6 process");
        }
        self.status.is_some()
    }

    /// Waits until `condition` is true, polling every few milliseconds. Returns false when the
    /// process exits first; panics after [`PATIENCE`].
    pub fn wait_until(&mut self, what: &str, mut condition: impl FnMut() -> bool) -> bool {
        loop {
            if condition() {
                return true;
            }
            if self.has_exited() {
                return condition();
            }
            assert!(self.started.elapsed() < PATIENCE, "timed out waiting for {what}\n{}", self.report());
            sleep(Duration::from_millis(2));
        }
    }

    /// Waits until `path` exists; panics with the run's output if the process exits first.
    pub fn wait_for_file(&mut self, path: &Path) {
        let appeared = self.wait_until(&format!("{} to appear", path.display()), || path.exists());
        assert!(appeared, "the process exited before {} appeared\n{}", path.display(), self.report());
    }

    /// Kills only the rb6 process with SIGKILL and reaps it; its step processes keep running.
    pub fn kill_rb6_only(&mut self) {
        let _ = self.child.kill();
        self.status = Some(self.child.wait().expect("reap the killed rb6 process"));
    }

    /// Kills the process and every process of its session with SIGKILL, then reaps it, like a
    /// crash of the whole machine or service. [`Background::kill_rb6_only`] covers the case where
    /// step processes outlive rb6.
    pub fn kill(&mut self) {
        let session = self.pid() as i32;
        kill_session(session);
        let _ = self.child.kill();
        self.status = Some(self.child.wait().expect("reap the killed rb6 process"));
        kill_session(session);
    }

    /// Waits for the process to exit and returns the finished run.
    pub fn finish(mut self) -> Run {
        while !self.has_exited() {
            assert!(self.started.elapsed() < PATIENCE * 2, "rb6 did not finish\n{}", self.report());
            sleep(Duration::from_millis(5));
        }
        self.into_run()
    }

    fn into_run(self) -> Run {
        Run {
            command: self.command.clone(),
            code: self.status.and_then(|status| status.code()),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Formats the command and its output so far, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "command: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.command,
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// Kills the process and returns what it wrote.
    pub fn kill_and_collect(mut self) -> Run {
        self.kill();
        self.into_run()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
        }
    }
}

/// Sends SIGKILL to every process whose session id is `session` until none is left.
pub fn kill_session(session: i32) {
    for _ in 0..200 {
        let members = session_members(session);
        if members.is_empty() {
            return;
        }
        for pid in members {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        sleep(Duration::from_millis(5));
    }
    panic!("processes of session {session} survived SIGKILL: {:?}", session_members(session));
}

/// Lists the live (not zombie) processes of a session, read from /proc.
pub fn session_members(session: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Some(fields) = proc_stat_fields(pid) else { continue };
        if fields.first().map(String::as_str) != Some("Z") && fields.get(3).and_then(|field| field.parse::<i32>().ok()) == Some(session) {
            members.push(pid);
        }
    }
    members
}

/// Returns whether a process is alive, counting a zombie as dead.
pub fn process_alive(pid: i32) -> bool {
    proc_stat_fields(pid).is_some_and(|fields| fields.first().map(String::as_str) != Some("Z"))
}

/// Reads the fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ...
fn proc_stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Waits until `condition` is true or [`PATIENCE`] passes, and returns whether it became true.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if condition() {
            return true;
        }
        sleep(Duration::from_millis(10));
    }
    condition()
}

/// One frame of the state journal.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Byte offset of the frame header in the file.
    pub offset: usize,
    /// Length of the whole frame: 32-byte header and payload.
    pub len: usize,
    pub seq: u64,
    /// The record, parsed from the payload.
    pub record: serde_json::Value,
}

/// Length of the journal's file header.
pub const JOURNAL_HEADER_LEN: usize = 8;

/// Length of a frame header: magic, sequence number, payload length, checksum.
pub const FRAME_HEADER_LEN: usize = 32;

/// Reads the complete frames of a journal, stopping at the first incomplete one.
pub fn journal_frames(path: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut frames = Vec::new();
    let mut offset = JOURNAL_HEADER_LEN;
    while offset + FRAME_HEADER_LEN <= bytes.len() {
        let seq = u64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().expect("8 bytes"));
        let payload_len = u32::from_le_bytes(bytes[offset + 12..offset + 16].try_into().expect("4 bytes")) as usize;
        let end = offset + FRAME_HEADER_LEN + payload_len;
        if end > bytes.len() {
            break;
        }
        let record = serde_json::from_slice(&bytes[offset + FRAME_HEADER_LEN..end]).unwrap_or(serde_json::Value::Null);
        frames.push(Frame { offset, len: end - offset, seq, record });
        offset = end;
    }
    frames
}

/// Quotes a word for display in a shell command line.
pub fn quote(word: &str) -> String {
    shlex::try_quote(word).map(|quoted| quoted.into_owned()).unwrap_or_else(|_| format!("{word:?}"))
}

/// Returns the host name of this machine, as the lock records it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}
