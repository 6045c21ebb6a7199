//! Shell action: run a script with `SHELL -c SCRIPT` and stream its output line by line.
//!
//! Invariant: the script runs in its own process group, and [`run`] never leaves that group
//! running behind it when it gives up. On timeout, and when the future returned by [`run`] is
//! dropped before the script exits, the whole group gets SIGTERM and, after
//! [`ShellSpec::kill_grace`], SIGKILL. Processes that leave the group (`setsid`, daemons that
//! detach) are outside this guarantee. Captured output is bounded to the last
//! [`MAX_CAPTURE_BYTES`] of each stream, so a chatty script cannot exhaust memory.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

/// Bytes of each output stream kept in [`ShellOutcome`]. Older output is dropped first.
pub const MAX_CAPTURE_BYTES: usize = 1024 * 1024;

/// Maximum length of a line passed to the line callback. A longer run of bytes without a
/// newline is split into several callback lines of at most this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Number of stderr lines quoted in the error for an unexpected exit code.
const STDERR_TAIL_LINES: usize = 20;

/// Time to keep reading output after the shell exits, for background processes that still
/// hold the pipes open.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// Interval between checks whether a signalled process group is gone.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// One shell step: the script and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSpec {
    /// Script passed to the shell as the argument of `-c`.
    pub script: String,
    /// Shell program, `/bin/sh` by default.
    pub shell: String,
    /// Working directory, the engine's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit for the script, unlimited when `None`.
    pub timeout: Option<Duration>,
    /// Exit codes that count as success, `[0]` by default.
    pub expect_exit: Vec<i32>,
    /// Text written to the script's standard input, which is closed afterwards.
    /// With `None` the script reads from `/dev/null`.
    pub stdin: Option<String>,
    /// Time between SIGTERM and SIGKILL when the process group is stopped.
    pub kill_grace: Duration,
}

impl ShellSpec {
    /// Builds a spec for `script` with the defaults: `/bin/sh`, exit code 0 expected,
    /// no timeout, 5 s kill grace.
    pub fn new(script: impl Into<String>) -> Self {
        Self {
            script: script.into(),
            shell: "/bin/sh".to_owned(),
            cwd: None,
            env: Vec::new(),
            timeout: None,
            expect_exit: vec![0],
            stdin: None,
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// Output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Result of a script that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutcome {
    /// Exit code, or 128 + signal number when a signal ended the shell (the shell convention).
    pub exit_code: i32,
    /// Last [`MAX_CAPTURE_BYTES`] of standard output, decoded as lossy UTF-8.
    pub stdout: String,
    /// Last [`MAX_CAPTURE_BYTES`] of standard error, decoded as lossy UTF-8.
    pub stderr: String,
    /// Wall-clock time from spawn to exit.
    pub duration: Duration,
}

/// Failure of a shell step.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ShellError {
    /// The shell program could not be started.
    #[error("failed to start shell `{shell}`: {source}")]
    #[diagnostic(help(
        "check that the shell exists and is executable, and that `cwd` is an existing directory"
    ))]
    Spawn {
        /// Shell program that failed.
        shell: String,
        /// Error from the operating system.
        #[source]
        source: std::io::Error,
    },

    /// Reading output or waiting for the shell failed.
    #[error("failed while running the script: {0}")]
    Io(#[from] std::io::Error),

    /// The script exited with a code outside `expect_exit`.
    #[error("script exited with code {}, expected {}{}", .outcome.exit_code, format_codes(.expected), format_tail(.stderr_tail))]
    #[diagnostic(help(
        "read the script output above; add the code to `expect_exit` if it means success"
    ))]
    UnexpectedExit {
        /// Exit codes that would have counted as success.
        expected: Vec<i32>,
        /// Last lines of standard error.
        stderr_tail: String,
        /// Full result of the run.
        outcome: Box<ShellOutcome>,
    },

    /// The script ran past its timeout and its process group was killed.
    #[error("script timed out after {}; its process group was stopped{}", humantime::format_duration(*.timeout), format_tail(.stderr_tail))]
    #[diagnostic(help("raise the step timeout, or find out why the script hangs"))]
    TimedOut {
        /// Timeout that expired.
        timeout: Duration,
        /// Last lines of standard error read before the kill.
        stderr_tail: String,
        /// Output captured before the kill.
        stdout: String,
    },
}

fn format_codes(codes: &[i32]) -> String {
    let parts: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    match parts.len() {
        0 => "none".to_owned(),
        1 => parts[0].clone(),
        _ => format!("one of {}", parts.join(", ")),
    }
}

fn format_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines of stderr:\n{tail}")
    }
}

/// Error from [`quote_word`].
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot quote a value containing a NUL byte as a shell word")]
#[diagnostic(help("remove the NUL byte: POSIX shells cannot pass it in an argument"))]
pub struct QuoteError;

/// Quotes `value` as exactly one POSIX shell word, so the shell passes it to the program
/// byte for byte.
pub fn quote_word(value: &str) -> Result<Cow<'_, str>, QuoteError> {
    shlex::try_quote(value).map_err(|_| QuoteError)
}

/// Runs `spec.script` with `spec.shell -c`, calling `on_line` for each line of standard output
/// and standard error as it arrives.
///
/// Returns the outcome when the exit code is in `spec.expect_exit`, and an error otherwise.
/// Dropping the returned future stops the script's process group.
pub async fn run<F>(spec: &ShellSpec, mut on_line: F) -> Result<ShellOutcome, ShellError>
where
    F: FnMut(Stream, &str),
{
    let started = Instant::now();
    let mut child = spawn(spec)?;
    let pgid = child.id().map(|pid| pid as i32);
    tracing::debug!(shell = %spec.shell, pid = ?pgid, "started script");

    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut guard = GroupGuard {
        pgid,
        child: Some(child),
        grace: spec.kill_grace,
    };

    let mut out = StreamReader::new(Stream::Stdout, stdout);
    let mut err = StreamReader::new(Stream::Stderr, stderr);
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);

    let pumped = pump(
        &mut guard,
        stdin,
        spec.stdin.as_deref(),
        &mut out,
        &mut err,
        deadline,
        &mut on_line,
    )
    .await;
    out.finish(&mut on_line);
    err.finish(&mut on_line);

    let status = match pumped {
        Ok(status) => status,
        Err(PumpError::TimedOut) => {
            guard.terminate().await;
            let timeout = spec.timeout.unwrap_or_default();
            tracing::debug!(pid = ?pgid, ?timeout, "script timed out");
            return Err(ShellError::TimedOut {
                timeout,
                stderr_tail: err.capture.tail_lines(STDERR_TAIL_LINES),
                stdout: out.capture.to_string_lossy(),
            });
        }
        Err(PumpError::Io(e)) => {
            guard.terminate().await;
            return Err(ShellError::Io(e));
        }
    };
    guard.disarm();

    let outcome = ShellOutcome {
        exit_code: exit_code(status),
        stdout: out.capture.to_string_lossy(),
        stderr: err.capture.to_string_lossy(),
        duration: started.elapsed(),
    };
    tracing::debug!(pid = ?pgid, exit_code = outcome.exit_code, "script exited");

    if spec.expect_exit.contains(&outcome.exit_code) {
        Ok(outcome)
    } else {
        Err(ShellError::UnexpectedExit {
            expected: spec.expect_exit.clone(),
            stderr_tail: err.capture.tail_lines(STDERR_TAIL_LINES),
            outcome: Box::new(outcome),
        })
    }
}

fn spawn(spec: &ShellSpec) -> Result<Child, ShellError> {
    let mut command = Command::new(&spec.shell);
    command
        .arg("-c")
        .arg(&spec.script)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }

    command.spawn().map_err(|source| ShellError::Spawn {
        shell: spec.shell.clone(),
        source,
    })
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;

    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

enum PumpError {
    TimedOut,
    Io(std::io::Error),
}

/// Feeds stdin, reads both output streams and waits for the shell, until the shell has exited
/// and both streams reached end of file (or [`OUTPUT_DRAIN`] passed after the exit).
async fn pump<F: FnMut(Stream, &str)>(
    guard: &mut GroupGuard,
    stdin: Option<ChildStdin>,
    input: Option<&str>,
    out: &mut StreamReader,
    err: &mut StreamReader,
    deadline: Option<tokio::time::Instant>,
    on_line: &mut F,
) -> Result<ExitStatus, PumpError> {
    let child = guard
        .child
        .as_mut()
        .expect("child is present until the guard is disarmed");
    let mut feed: Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match (stdin, input) {
        (Some(pipe), Some(text)) => Box::pin(write_stdin(pipe, text.as_bytes().to_vec())),
        _ => Box::pin(std::future::ready(())),
    };
    let mut fed = false;
    let mut status: Option<ExitStatus> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let far_future = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);

    loop {
        if status.is_some() && out.done && err.done {
            break;
        }
        let timeout_at = deadline.unwrap_or(far_future);
        let drain_at = drain_until.unwrap_or(far_future);

        tokio::select! {
            _ = &mut feed, if !fed => fed = true,
            read = out.read_once(), if !out.done => read.map(|()| out.emit(on_line)).map_err(PumpError::Io)?,
            read = err.read_once(), if !err.done => read.map(|()| err.emit(on_line)).map_err(PumpError::Io)?,
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.map_err(PumpError::Io)?);
                drain_until = Some(tokio::time::Instant::now() + OUTPUT_DRAIN);
            }
            _ = tokio::time::sleep_until(drain_at), if drain_until.is_some() => {
                // NOTE: a background process of the script still holds stdout or stderr open.
                // It keeps running; its later output is not read.
                tracing::debug!("stopped reading output of a background process after the shell exited");
                break;
            }
            _ = tokio::time::sleep_until(timeout_at), if deadline.is_some() => return Err(PumpError::TimedOut),
        }
    }

    Ok(status.expect("loop ends only after the shell exited"))
}

async fn write_stdin(mut pipe: ChildStdin, bytes: Vec<u8>) {
    // A script that exits without reading its input closes the pipe: that is not an error.
    if let Err(e) = pipe.write_all(&bytes).await {
        tracing::debug!(error = %e, "script closed stdin before reading all input");
    }
    drop(pipe);
}

/// Reads one output stream, splits it into lines and keeps the bounded capture.
struct StreamReader {
    stream: Stream,
    source: Pin<Box<dyn AsyncRead + Send>>,
    buffer: Vec<u8>,
    pending: Vec<u8>,
    capture: Capture,
    done: bool,
}

impl StreamReader {
    fn new(stream: Stream, source: impl AsyncRead + Send + 'static) -> Self {
        Self {
            stream,
            source: Box::pin(source),
            buffer: vec![0; 16 * 1024],
            pending: Vec::new(),
            capture: Capture::default(),
            done: false,
        }
    }

    /// Reads one chunk into `pending`; cancel-safe because `read` is.
    async fn read_once(&mut self) -> std::io::Result<()> {
        let n = self.source.read(&mut self.buffer).await?;
        if n == 0 {
            self.done = true;
        }
        self.capture.push(&self.buffer[..n]);
        self.pending.extend_from_slice(&self.buffer[..n]);
        Ok(())
    }

    /// Passes every complete line in `pending` to `on_line`.
    fn emit<F: FnMut(Stream, &str)>(&mut self, on_line: &mut F) {
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            emit_line(self.stream, &self.pending[start..end], on_line);
            start = end + 1;
        }
        self.pending.drain(..start);

        while self.pending.len() >= MAX_LINE_BYTES {
            let rest = self.pending.split_off(MAX_LINE_BYTES);
            emit_line(self.stream, &self.pending, on_line);
            self.pending = rest;
        }
    }

    /// Passes the last line, which has no newline, to `on_line`.
    fn finish<F: FnMut(Stream, &str)>(&mut self, on_line: &mut F) {
        self.emit(on_line);
        if !self.pending.is_empty() {
            emit_line(self.stream, &self.pending, on_line);
            self.pending.clear();
        }
    }
}

fn emit_line<F: FnMut(Stream, &str)>(stream: Stream, line: &[u8], on_line: &mut F) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    on_line(stream, &String::from_utf8_lossy(line));
}

/// The last [`MAX_CAPTURE_BYTES`] bytes of a stream.
#[derive(Default)]
struct Capture {
    bytes: VecDeque<u8>,
}

impl Capture {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(MAX_CAPTURE_BYTES);
        self.bytes.drain(..excess);
    }

    fn to_string_lossy(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut joined = Vec::with_capacity(self.bytes.len());
        joined.extend_from_slice(front);
        joined.extend_from_slice(back);
        String::from_utf8_lossy(&joined).into_owned()
    }

    fn tail_lines(&self, count: usize) -> String {
        let text = self.to_string_lossy();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }
}

/// Owns the shell process while it runs and stops its process group when dropped armed.
struct GroupGuard {
    pgid: Option<i32>,
    child: Option<Child>,
    grace: Duration,
}

impl GroupGuard {
    /// Marks the shell as finished: dropping the guard no longer signals the group.
    fn disarm(&mut self) {
        self.child = None;
    }

    /// Stops the process group and waits until it is gone.
    async fn terminate(&mut self) {
        let (Some(pgid), Some(child)) = (self.pgid, self.child.take()) else {
            return;
        };
        let grace = self.grace;
        let stopped = tokio::task::spawn_blocking(move || stop_group(pgid, child, grace)).await;
        if let Err(e) = stopped {
            tracing::warn!(pgid, error = %e, "stopping the script's process group failed");
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let (Some(pgid), Some(child)) = (self.pgid, self.child.take()) else {
            return;
        };
        tracing::debug!(pgid, "script cancelled; stopping its process group");

        // Drop cannot wait asynchronously, so a thread sees the group through the grace period.
        let grace = self.grace;
        std::thread::spawn(move || stop_group(pgid, child, grace));
    }
}

/// Sends SIGTERM to the group, waits up to `grace` for every member to exit, then sends SIGKILL.
///
/// The shell is reaped while waiting because a zombie still counts as a group member. Linux
/// does not reuse a pid while a live process has it as its group id, so signalling `-pgid`
/// after the shell was reaped reaches only the script's own processes.
// NOTE: once every member has exited, a new group with the same id could appear before the
// SIGKILL; the window is one poll interval at the end of the grace period.
fn stop_group(pgid: i32, mut child: Child, grace: Duration) {
    signal_group(pgid, libc::SIGTERM);

    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let _ = child.try_wait();
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(GROUP_POLL);
    }

    tracing::debug!(pgid, "process group outlived SIGTERM; sending SIGKILL");
    signal_group(pgid, libc::SIGKILL);
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a group.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc != 0 {
        tracing::debug!(pgid, signal, error = %std::io::Error::last_os_error(), "signalling process group failed");
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists and can be signalled.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn run_collect(spec: &ShellSpec) -> (Result<ShellOutcome, ShellError>, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        let result = runtime().block_on(run(spec, |stream, line| {
            lines.push((stream, line.to_owned()))
        }));
        (result, lines)
    }

    /// Returns true while `pid` exists and has not exited (a zombie counts as exited).
    fn process_running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
                state != 'Z'
            }
            Err(_) => false,
        }
    }

    fn wait_until_stopped(pid: i32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !process_running(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn read_pid(path: &std::path::Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            assert!(
                Instant::now() < deadline,
                "script never wrote its pid file {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn run_streams_both_outputs() {
        let spec = ShellSpec::new("echo one; echo two >&2; printf 'three'");
        let (result, lines) = run_collect(&spec);
        let outcome = result.expect("script should succeed");

        assert_eq!(outcome.exit_code, 0, "exit code");
        assert_eq!(outcome.stdout, "one\nthree", "captured stdout");
        assert_eq!(outcome.stderr, "two\n", "captured stderr");
        assert!(
            lines.contains(&(Stream::Stdout, "one".into())),
            "callback missed stdout line: {lines:?}"
        );
        assert!(
            lines.contains(&(Stream::Stderr, "two".into())),
            "callback missed stderr line: {lines:?}"
        );
        assert!(
            lines.contains(&(Stream::Stdout, "three".into())),
            "callback missed last line without newline: {lines:?}"
        );
        assert_eq!(lines.len(), 3, "callback line count: {lines:?}");
    }

    #[test]
    fn run_unexpected_exit_reports_code_and_stderr() {
        let spec = ShellSpec::new("echo early >&2; echo 'disk full' >&2; exit 3");
        let (result, _) = run_collect(&spec);
        let error = result.expect_err("exit 3 should fail when 0 is expected");
        let message = error.to_string();

        assert!(
            message.contains("code 3"),
            "message lacks the exit code: {message}"
        );
        assert!(
            message.contains("disk full"),
            "message lacks stderr tail: {message}"
        );
        match error {
            ShellError::UnexpectedExit { outcome, .. } => {
                assert_eq!(outcome.exit_code, 3, "outcome exit code")
            }
            other => panic!("expected UnexpectedExit, got {other:?}"),
        }
    }

    #[test]
    fn run_accepts_listed_exit_codes() {
        let mut spec = ShellSpec::new("exit 3");
        spec.expect_exit = vec![0, 3];
        let (result, _) = run_collect(&spec);

        assert_eq!(
            result.expect("exit 3 is expected").exit_code,
            3,
            "exit code"
        );
    }

    #[test]
    fn run_passes_stdin_env_and_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ShellSpec::new("cat; printf '%s|' \"$GREETING\"; pwd");
        spec.stdin = Some("from stdin\n".into());
        spec.env = vec![("GREETING".into(), "hello world".into())];
        spec.cwd = Some(dir.path().to_path_buf());
        let (result, _) = run_collect(&spec);
        let outcome = result.expect("script should succeed");
        let expected = format!(
            "from stdin\nhello world|{}\n",
            dir.path().canonicalize().unwrap().display()
        );

        assert_eq!(outcome.stdout, expected, "stdout");
    }

    #[test]
    fn run_reports_signal_as_128_plus_number() {
        let mut spec = ShellSpec::new("kill -9 $$");
        spec.expect_exit = vec![137];
        let (result, _) = run_collect(&spec);

        assert_eq!(
            result.expect("137 is expected").exit_code,
            137,
            "exit code for SIGKILL"
        );
    }

    #[test]
    fn run_missing_shell_is_spawn_error() {
        let mut spec = ShellSpec::new("true");
        spec.shell = "/nonexistent/shell".into();
        let (result, _) = run_collect(&spec);

        assert!(
            matches!(result, Err(ShellError::Spawn { .. })),
            "expected Spawn error, got {result:?}"
        );
    }

    #[test]
    fn timeout_kills_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        let mut spec = ShellSpec::new(format!(
            "sleep 30 & echo $! > {}; echo started; sleep 30",
            pid_file.display()
        ));
        spec.timeout = Some(Duration::from_millis(500));
        let started = Instant::now();
        let (result, lines) = run_collect(&spec);
        let elapsed = started.elapsed();

        assert!(
            matches!(result, Err(ShellError::TimedOut { .. })),
            "expected TimedOut, got {result:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "timeout took {elapsed:?}, SIGTERM should be enough"
        );
        assert!(
            lines.contains(&(Stream::Stdout, "started".into())),
            "output before the timeout is lost: {lines:?}"
        );
        let background = read_pid(&pid_file);
        assert!(
            wait_until_stopped(background, Duration::from_secs(2)),
            "background process {background} still runs"
        );
    }

    #[test]
    fn timeout_escalates_to_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("stubborn.pid");
        let mut spec = ShellSpec::new(format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pid_file.display()
        ));
        spec.timeout = Some(Duration::from_millis(300));
        spec.kill_grace = Duration::from_millis(300);
        let (result, _) = run_collect(&spec);

        assert!(
            matches!(result, Err(ShellError::TimedOut { .. })),
            "expected TimedOut, got {result:?}"
        );
        let stubborn = read_pid(&pid_file);
        assert!(
            wait_until_stopped(stubborn, Duration::from_secs(2)),
            "process {stubborn} ignoring SIGTERM still runs"
        );
    }

    #[test]
    fn dropped_future_kills_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        let spec = ShellSpec::new(format!(
            "sleep 30 & echo $! > {}; sleep 30",
            pid_file.display()
        ));
        let rt = runtime();
        let cancelled = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(500), run(&spec, |_, _| {})).await
        });

        assert!(
            cancelled.is_err(),
            "the script should still have been running"
        );
        let background = read_pid(&pid_file);
        assert!(
            wait_until_stopped(background, Duration::from_secs(2)),
            "background process {background} survived cancellation"
        );
    }

    #[test]
    fn capture_keeps_last_mebibyte() {
        // 3 MiB of numbered 16-byte lines ("%015d\n").
        let spec = ShellSpec::new("seq -f '%015g' 1 196608");
        let mut count = 0usize;
        let outcome = runtime()
            .block_on(run(&spec, |_, _| count += 1))
            .expect("seq should succeed");

        assert_eq!(outcome.stdout.len(), MAX_CAPTURE_BYTES, "capture size");
        assert!(
            outcome.stdout.ends_with("000000000196608\n"),
            "capture lacks the last line"
        );
        assert_eq!(
            count, 196608,
            "callback should see every line, not only the captured ones"
        );
    }

    #[test]
    fn long_line_is_split_for_callback() {
        let spec = ShellSpec::new("head -c 200000 /dev/zero | tr '\\0' x");
        let mut lengths = Vec::new();
        let outcome = runtime()
            .block_on(run(&spec, |_, line| lengths.push(line.len())))
            .unwrap();

        assert_eq!(outcome.stdout.len(), 200000, "captured length");
        assert!(
            lengths.iter().all(|&n| n <= MAX_LINE_BYTES),
            "a callback line exceeds the limit: {lengths:?}"
        );
        assert_eq!(
            lengths.iter().sum::<usize>(),
            200000,
            "callback lines lost bytes"
        );
    }

    #[test]
    fn quote_word_passes_one_exact_argument() {
        let values = [
            "plain",
            "",
            "it's",
            "say \"hi\"",
            "a; touch pwned",
            "$(touch pwned)",
            "`touch pwned`",
            "line one\nline two",
            "two  spaces ",
            "*",
            "back\\slash",
            "~root",
            "$HOME ${HOME}",
            "-n",
            "tab\there",
            "ünïcödé",
            "!history #comment",
            "a|b&c>d<e",
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decoy-file"), "").unwrap();

        for value in values {
            let quoted = quote_word(value).expect("value without NUL must quote");
            let mut spec = ShellSpec::new(format!("printf '%s\\0' {quoted}"));
            spec.cwd = Some(dir.path().to_path_buf());
            let (result, _) = run_collect(&spec);
            let outcome = result.unwrap_or_else(|e| panic!("script for {value:?} failed: {e}"));

            assert_eq!(
                outcome.stdout,
                format!("{value}\0"),
                "value {value:?} quoted as {quoted} did not arrive as one exact argument"
            );
        }
        assert!(
            !dir.path().join("pwned").exists(),
            "a quoted value ran a command"
        );
    }

    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let spec = ShellSpec::new("true");
        let future = run(&spec, |_, _| {});

        assert_send(&future);
    }

    #[test]
    fn quote_word_rejects_nul() {
        assert!(quote_word("a\0b").is_err(), "NUL byte must be rejected");
    }
}
