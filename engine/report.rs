//! The reporter: the one owner of the terminal.
//!
//! Every line rb6 shows a user goes through here: plans, step progress, step output, problems.
//! On a terminal it draws indicatif spinners and keeps them from tearing; elsewhere it writes
//! plain timestamped lines. Invariant: every text passes through the [`Redactor`] first, so no
//! secret value reaches the terminal, a pipe or a log file. Debug logs go through `tracing`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::diagnostic::{render, Problem};
use crate::interpolate::Redactor;

/// The terminal's owner. Clones share the same redactor and progress bars.
#[derive(Clone)]
pub struct Reporter {
    /// Whether stdout is a terminal (bars and color are used only then).
    pub interactive: bool,
    pub color: bool,
    pub verbose: bool,
    redactor: Arc<Mutex<Redactor>>,
    bars: MultiProgress,
}

impl Reporter {
    /// Creates a reporter for this process's stdout and stderr, honouring `NO_COLOR`.
    pub fn new(verbose: bool) -> Reporter {
        let interactive = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let bars = MultiProgress::with_draw_target(if interactive { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        Reporter { interactive, color: interactive && !no_color, verbose, redactor: Arc::new(Mutex::new(Redactor::default())), bars }
    }

    /// Registers secret values to redact from now on.
    pub fn add_secrets<'a>(&self, secrets: impl IntoIterator<Item = &'a String>) {
        let mut redactor = self.redactor.lock().expect("redactor lock");
        for secret in secrets {
            redactor.add(secret);
        }
    }

    /// Returns the text with every known secret replaced by `(sensitive)`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.lock().expect("redactor lock").redact(text)
    }

    /// Writes text to stdout as it is (after redaction).
    pub fn print(&self, text: &str) {
        let text = self.redact(text);
        self.bars.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        });
    }

    /// Writes one status line: plain lines get a UTC timestamp when stdout is not a terminal.
    pub fn line(&self, text: &str) {
        if self.interactive {
            self.print(&format!("{text}\n"));
        } else {
            self.print(&format!("{} {text}\n", timestamp()));
        }
    }

    /// Writes an error message to stderr.
    pub fn error(&self, text: &str) {
        let text = self.redact(text);
        let prefix = if self.color { "\x1b[31mError:\x1b[0m" } else { "Error:" };
        self.bars.suspend(|| eprintln!("{prefix} {text}"));
    }

    /// Writes a warning message to stderr.
    pub fn warn(&self, text: &str) {
        let text = self.redact(text);
        let prefix = if self.color { "\x1b[33mWarning:\x1b[0m" } else { "Warning:" };
        self.bars.suspend(|| eprintln!("{prefix} {text}"));
    }

    /// Writes problems as miette diagnostics to stderr.
    pub fn problems(&self, problems: &[Problem]) {
        let text = self.redact(&render(problems, self.color_stderr()));
        self.bars.suspend(|| eprint!("{text}"));
    }

    /// Writes any miette diagnostic to stderr.
    pub fn diagnostic(&self, diagnostic: &dyn miette::Diagnostic) {
        let theme = if self.color_stderr() { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        let mut text = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
        if handler.render_report(&mut text, diagnostic).is_err() {
            text = format!("Error: {diagnostic}\n");
        }
        let text = self.redact(&text);
        self.bars.suspend(|| eprint!("{text}"));
    }

    fn color_stderr(&self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        !no_color && std::io::stderr().is_terminal()
    }

    /// Starts a spinner for a running step; a hidden one when not on a terminal.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        // A steady tick runs a thread per spinner: start none when nothing is drawn.
        if !self.interactive {
            return ProgressBar::hidden();
        }
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
        bar.set_message(self.redact(message));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Streams one line of a step's output when verbose.
    pub fn step_output(&self, step: &str, line: &str) {
        if self.verbose {
            self.line(&format!("  {step} | {line}"));
        }
    }

    /// Asks a question on the terminal and returns the trimmed answer; `None` without a terminal.
    pub fn ask(&self, question: &str) -> Option<String> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        self.print(question);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok()?;
        Some(answer.trim().to_string())
    }
}

/// Returns the current UTC time in RFC 3339.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
