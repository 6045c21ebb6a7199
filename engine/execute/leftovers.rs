//! Leftover processes of an interrupted run.
//!
//! Shell steps run in a process group of their own, so a `kill -9` of rb6 leaves them running.
//! Each shell step carries `RB6_STEP=<marker>` in its environment, where the marker is derived
//! from the state directory and the step name. Before an interrupted step is checked or run
//! again, every process still carrying its marker is killed, so the old run can't finish the
//! step's effect a second time behind the new one. The state lock guarantees no live rb6 run
//! uses the same marker at that moment.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The environment variable that marks a step's processes.
pub const MARKER_VARIABLE: &str = "RB6_STEP";

/// Maximum wait for killed processes to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Returns the marker of a step's processes for a state directory.
pub fn marker(state_dir: &Path, step: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(state_dir.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    hasher.update(step.as_bytes());
    format!("{}/{}", &hex::encode(hasher.finalize())[..16], step)
}

/// Kills every process whose environment carries this marker; returns how many there were.
pub fn kill_marked(marker: &str) -> usize {
    let needle = format!("{MARKER_VARIABLE}={marker}");
    let own_pid = std::process::id() as i32;
    let marked: Vec<i32> = marked_processes(&needle).into_iter().filter(|pid| *pid != own_pid).collect();
    for pid in &marked {
        // SAFETY: kill(2) with a pid read from /proc and a valid signal number has no memory effects.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }

    let started = Instant::now();
    while started.elapsed() < KILL_WAIT && !marked_processes(&needle).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !marked.is_empty() {
        tracing::info!(count = marked.len(), marker, "killed leftover processes of an interrupted step");
    }
    marked.len()
}

fn marked_processes(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(environment) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
            environment.split(|byte| *byte == 0).any(|variable| variable == needle.as_bytes())
        })
        .collect()
}
