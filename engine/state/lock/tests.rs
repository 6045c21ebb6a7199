//! Tests of the state lock with real files and real processes, including holders killed
//! with SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

use super::*;

/// Environment variable that makes `child_holds_lock` take the lock of this directory.
const CHILD_DIR_ENV: &str = "RB6_TEST_LOCK_CHILD_DIR";

fn state_dir() -> (tempfile::TempDir, StateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path().join(".rb6")).unwrap();
    (tmp, dir)
}

fn holder(command: &str) -> LockHolder {
    LockHolder::current(command)
}

fn stale_holder() -> LockHolder {
    LockHolder {
        pid: 4_000_000,
        host: "old-host".into(),
        started_at: "2024-01-02T03:04:05Z".into(),
        command: "rb6 apply site.rb6".into(),
    }
}

/// Waits until `child` prints the line `LOCKED`, then returns it still running.
fn wait_until_locked(mut child: Child) -> Child {
    let stdout = child.stdout.take().expect("child stdout is piped");
    let locked = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.trim() == "LOCKED");
    assert!(locked, "child process exited without taking the lock");
    child
}

fn kill_9(mut child: Child) {
    // SAFETY: kill(2) with the pid of a child that has not been waited for yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "sending SIGKILL failed");
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "child did not die of SIGKILL"
    );
}

#[test]
fn holder_current_describes_this_process() {
    let holder = LockHolder::current("rb6 apply site.rb6");

    assert_eq!(holder.pid, std::process::id(), "pid is not this process's");
    assert!(!holder.host.is_empty(), "host name is empty");
    let shape: String = holder
        .started_at
        .chars()
        .map(|c| if c.is_ascii_digit() { 'D' } else { c })
        .collect();
    assert_eq!(
        shape, "DDDD-DD-DDTDD:DD:DDZ",
        "started_at is not RFC 3339 UTC in seconds"
    );
}

#[test]
fn acquire_records_holder_in_0600_file() {
    let (_tmp, dir) = state_dir();
    let me = holder("rb6 apply");

    let lock = StateLock::acquire(&dir, me.clone()).unwrap();

    let mode = fs::metadata(lock.path()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "lock file mode is not 0600");
    assert_eq!(
        StateLock::read_holder(&dir).unwrap(),
        Some(me),
        "lock file does not name the holder"
    );
    assert_eq!(lock.taken_over, None, "a fresh lock reports a takeover");
}

#[test]
fn second_acquire_in_process_is_held() {
    let (_tmp, dir) = state_dir();
    let first = holder("rb6 apply site.rb6");
    let _lock = StateLock::acquire(&dir, first.clone()).unwrap();

    let err = StateLock::acquire(&dir, holder("rb6 undo site.rb6")).unwrap_err();

    let LockError::Held { holder, .. } = &err else {
        panic!("expected Held, got {err:?}");
    };
    assert_eq!(holder.as_ref(), Some(&first), "Held names the wrong holder");
    let message = err.to_string();
    for part in [
        first.pid.to_string(),
        first.host.clone(),
        first.started_at.clone(),
        first.command.clone(),
        "rb6 unlock".to_string(),
    ] {
        assert!(message.contains(&part), "message lacks {part:?}: {message}");
    }
}

#[test]
fn drop_releases_and_removes_file() {
    let (_tmp, dir) = state_dir();
    let lock = StateLock::acquire(&dir, holder("rb6 apply")).unwrap();
    let path = lock.path().to_path_buf();

    drop(lock);
    assert!(!path.exists(), "lock file left behind after drop");
    let again = StateLock::acquire(&dir, holder("rb6 apply")).expect("acquire after drop failed");

    assert_eq!(
        again.taken_over, None,
        "a cleanly released lock was reported as taken over"
    );
}

#[test]
fn left_behind_holder_is_taken_over() {
    let (_tmp, dir) = state_dir();
    let stale = stale_holder();
    dir.write_atomic(LOCK_FILE, &serde_json::to_vec(&stale).unwrap())
        .unwrap();

    let lock = StateLock::acquire(&dir, holder("rb6 apply")).unwrap();

    assert_eq!(
        lock.taken_over,
        Some(stale),
        "taken_over does not name the stale holder"
    );
}

#[test]
fn unreadable_free_lock_file_is_taken() {
    let (_tmp, dir) = state_dir();
    dir.write_atomic(LOCK_FILE, b"{\"pid\": 12").unwrap();

    let lock = StateLock::acquire(&dir, holder("rb6 apply")).unwrap();

    assert_eq!(
        lock.taken_over, None,
        "garbage in the lock file was reported as a holder"
    );
}

/// Not a test on its own: `killed_holder_is_taken_over` runs it in a child process, where it
/// takes the lock, prints `LOCKED` and sleeps until it is killed.
#[test]
#[ignore = "helper process for killed_holder_is_taken_over"]
fn child_holds_lock() {
    let Some(path) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let dir = StateDir::open(path).unwrap();
    let _lock = StateLock::acquire(&dir, holder("rb6 apply (test child)")).unwrap();

    let mut stdout = std::io::stdout();
    writeln!(stdout, "LOCKED").unwrap();
    stdout.flush().unwrap();
    thread::sleep(Duration::from_secs(60));
}

#[test]
fn killed_holder_is_taken_over() {
    let (_tmp, dir) = state_dir();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "state::lock::tests::child_holds_lock",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = wait_until_locked(child);
    let child_pid = child.id();

    let err = StateLock::acquire(&dir, holder("rb6 apply")).unwrap_err();
    let held_by = match &err {
        LockError::Held { holder, .. } => holder.as_ref().map(|h| h.pid),
        other => panic!("expected Held while the child runs, got {other:?}"),
    };
    assert_eq!(held_by, Some(child_pid), "Held does not name the child");

    kill_9(child);
    let lock = StateLock::acquire(&dir, holder("rb6 apply")).unwrap();

    let previous = lock
        .taken_over
        .as_ref()
        .expect("taken_over is empty after SIGKILL");
    assert_eq!(
        previous.pid, child_pid,
        "taken_over does not name the killed child"
    );
    assert_eq!(
        previous.command, "rb6 apply (test child)",
        "taken_over has the wrong command"
    );
}

#[test]
fn killed_flock_holder_is_taken_over() {
    let (_tmp, dir) = state_dir();
    let stale = stale_holder();
    dir.write_atomic(LOCK_FILE, &serde_json::to_vec(&stale).unwrap())
        .unwrap();

    // The shell locks fd 9 with util-linux flock, then execs sleep, which keeps fd 9 and
    // the pid, so killing that pid releases the lock.
    let child = Command::new("sh")
        .args([
            "-c",
            "exec 9<>\"$1\" && flock -x 9 && echo LOCKED && exec sleep 60",
            "sh",
        ])
        .arg(dir.file(LOCK_FILE))
        .stdout(Stdio::piped())
        .spawn()
        .expect("running sh failed");
    let child = wait_until_locked(child);

    let err = StateLock::acquire(&dir, holder("rb6 apply")).unwrap_err();
    assert!(
        matches!(err, LockError::Held { .. }),
        "expected Held while flock runs, got {err:?}"
    );

    kill_9(child);
    let lock = StateLock::acquire(&dir, holder("rb6 apply")).unwrap();

    assert_eq!(
        lock.taken_over,
        Some(stale),
        "taken_over does not name the recorded holder"
    );
}

#[test]
fn force_remove_of_free_lock() {
    let (_tmp, dir) = state_dir();
    let stale = stale_holder();
    dir.write_atomic(LOCK_FILE, &serde_json::to_vec(&stale).unwrap())
        .unwrap();

    let removed = StateLock::force_remove(&dir).unwrap();

    assert_eq!(
        removed.previous,
        Some(stale),
        "previous holder not reported"
    );
    assert!(
        !removed.held_by_live_process,
        "a free lock was reported as held"
    );
    assert!(!dir.file(LOCK_FILE).exists(), "lock file still exists");
}

#[test]
fn force_remove_without_lock_file() {
    let (_tmp, dir) = state_dir();

    let removed = StateLock::force_remove(&dir).unwrap();

    assert_eq!(
        removed,
        ForceRemoved {
            previous: None,
            held_by_live_process: false
        },
        "removing a missing lock reported something"
    );
}

#[test]
fn force_removed_holder_keeps_new_lock_file() {
    let (_tmp, dir) = state_dir();
    let old_holder = holder("rb6 apply old");
    let old = StateLock::acquire(&dir, old_holder.clone()).unwrap();

    let removed = StateLock::force_remove(&dir).unwrap();
    let new_holder = holder("rb6 apply new");
    let new = StateLock::acquire(&dir, new_holder.clone()).unwrap();
    drop(old);

    assert!(
        removed.held_by_live_process,
        "a held lock was reported as free"
    );
    assert_eq!(
        removed.previous,
        Some(old_holder),
        "previous holder not reported"
    );
    assert_eq!(
        StateLock::read_holder(&dir).unwrap(),
        Some(new_holder),
        "dropping the old lock removed the new holder's file"
    );
    assert_eq!(
        new.taken_over, None,
        "the new lock reports a takeover of a removed file"
    );
}
