//! The state directory's lock: one apply or undo per state directory at a time.
//!
//! Exclusion comes from an OS file lock (`flock(2)` through [`File::try_lock`]) on the file
//! `lock`, which also stores the holder's details as JSON. The kernel releases the lock
//! when its holder exits, however it exits, so a lock file whose OS lock is free belongs to
//! a holder that is gone and is taken over. Invariant: a [`StateLock`] holds the OS lock on
//! the file that the path `lock` names at the time it was acquired. After taking the OS
//! lock, [`StateLock::acquire`] checks that the path still names the locked file, because a
//! releasing holder or [`StateLock::force_remove`] may have unlinked it in between.
//!
//! NOTE: only tested on a local file system (ext4). On NFS, flock is emulated with
//! byte-range locks (flock(2) on Linux), whose release after a client crash depends on
//! the NFS server's lock recovery.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{open_state_file, sync_dir, StateDir, StateError};

/// Name of the lock file in the state directory.
pub const LOCK_FILE: &str = "lock";

/// Attempts at reading the details of a holder that has not written them yet.
const HOLDER_READ_ATTEMPTS: u32 = 5;

/// Pause between those attempts. A holder writes its details right after taking the lock,
/// so the whole wait of about 40 ms only happens when it never writes them.
const HOLDER_READ_PAUSE: Duration = Duration::from_millis(10);

/// Attempts at locking when the lock file is replaced between opening and locking it.
const ACQUIRE_ATTEMPTS: u32 = 10;

/// The process that holds, or held, a state directory's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the machine the holder runs on.
    pub host: String,
    /// Time the holder took the lock, RFC 3339 in UTC.
    pub started_at: String,
    /// Command line of the holder, for people reading the lock error.
    pub command: String,
}

impl LockHolder {
    /// Describes the current process running `command`, starting now.
    pub fn current(command: impl Into<String>) -> LockHolder {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond");
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            started_at: now
                .format(&Rfc3339)
                .expect("a UTC time formats as RFC 3339"),
            command: command.into(),
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on host {} (started {}, command `{}`)",
            self.pid, self.host, self.started_at, self.command
        )
    }
}

/// Errors of taking or removing the lock.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "state directory {} is locked by {}. Wait for it to finish; if that process no \
         longer runs, remove the stale lock with `rb6 unlock`",
        .dir.display(),
        describe_holder(.holder)
    )]
    #[diagnostic(code(rb6::state::locked))]
    Held {
        /// The locked state directory.
        dir: PathBuf,
        /// The holder's details, `None` if it has not recorded them.
        holder: Option<LockHolder>,
    },

    /// A file system operation on the lock file failed.
    #[error("{action} {path} failed: {source}")]
    #[diagnostic(code(rb6::state::lock_io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The lock file was replaced on every attempt to lock it.
    #[error("lock file {path} was replaced {ACQUIRE_ATTEMPTS} times while locking it")]
    #[diagnostic(
        code(rb6::state::lock_contended),
        help("another rb6 is taking and releasing this lock in a loop; run this command again")
    )]
    Contended { path: PathBuf },

    /// Opening the lock file failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
}

fn describe_holder(holder: &Option<LockHolder>) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => "another process that has not recorded its details".to_string(),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io {
        action,
        path,
        source,
    }
}

/// The result of [`StateLock::force_remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForceRemoved {
    /// The details stored in the removed lock file, if it had any.
    pub previous: Option<LockHolder>,
    /// A live process still held the lock, and keeps running without exclusion.
    pub held_by_live_process: bool,
}

/// The held lock of a state directory. Dropping it releases the lock and removes the lock
/// file with the holder's details.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
    /// The previous holder, if its lock file was left behind by a process that is gone.
    pub taken_over: Option<LockHolder>,
}

impl StateLock {
    /// Takes the lock of `dir` for `holder` without waiting.
    ///
    /// Fails with [`LockError::Held`] if a live process holds it. If the lock file names a
    /// holder that is gone, takes the lock over and reports that holder in
    /// [`StateLock::taken_over`].
    pub fn acquire(dir: &StateDir, holder: LockHolder) -> Result<StateLock, LockError> {
        let path = dir.file(LOCK_FILE);
        let file = lock_current_file(dir, &path)?;

        let taken_over = match read_holder_from(&file, &path)? {
            HolderInfo::Valid(previous) => Some(previous),
            HolderInfo::Empty => None,
            HolderInfo::Invalid(reason) => {
                tracing::warn!(lock = %path.display(), reason, "ignoring unreadable details in a free lock file");
                None
            }
        };
        if let Some(previous) = &taken_over {
            tracing::warn!(lock = %path.display(), previous = %previous, "took over a lock whose holder is gone");
        }

        write_holder(&file, &path, &holder)?;
        tracing::debug!(lock = %path.display(), holder = %holder, "acquired state lock");
        Ok(StateLock {
            file,
            path,
            holder,
            taken_over,
        })
    }

    /// Returns the details this lock was taken with.
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// Returns the path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the details stored in `dir`'s lock file, whether or not a live process
    /// holds the lock.
    pub fn read_holder(dir: &StateDir) -> Result<Option<LockHolder>, LockError> {
        let path = dir.file(LOCK_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("reading", &path)(err)),
        }
    }

    /// Removes `dir`'s lock file, for `rb6 unlock`.
    ///
    /// If a live process holds the lock, it keeps running, and the next
    /// [`StateLock::acquire`] succeeds beside it: the caller should warn about that.
    pub fn force_remove(dir: &StateDir) -> Result<ForceRemoved, LockError> {
        let path = dir.file(LOCK_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(ForceRemoved {
                    previous: None,
                    held_by_live_process: false,
                })
            }
            Err(err) => return Err(io_error("opening", &path)(err)),
        };

        let held_by_live_process = match file.try_lock() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(err)) => return Err(io_error("locking", &path)(err)),
        };
        let previous = match read_holder_from(&file, &path)? {
            HolderInfo::Valid(holder) => Some(holder),
            HolderInfo::Empty | HolderInfo::Invalid(_) => None,
        };

        remove_if_exists(&path)?;
        sync_dir(dir.path())?;
        tracing::warn!(
            lock = %path.display(),
            previous = describe_holder(&previous),
            held_by_live_process,
            "removed state lock by force"
        );
        Ok(ForceRemoved {
            previous,
            held_by_live_process,
        })
    }

    fn release(&self) -> Result<(), LockError> {
        self.file
            .set_len(0)
            .map_err(io_error("clearing holder details in", &self.path))?;

        // After a force_remove the path may name a newer holder's file, which must stay.
        if names_file(&self.path, &self.file)? {
            remove_if_exists(&self.path)?;
        }
        Ok(())
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The `file` field is closed after this method returns, which releases the OS lock
        // even if `release` failed.
        match self.release() {
            Ok(()) => tracing::debug!(lock = %self.path.display(), "released state lock"),
            Err(err) => {
                tracing::warn!(lock = %self.path.display(), error = %err, "failed to remove the lock file")
            }
        }
    }
}

/// Opens `path` and takes the OS lock on it, retrying when the path was replaced between
/// opening and locking.
fn lock_current_file(dir: &StateDir, path: &Path) -> Result<File, LockError> {
    for _ in 0..ACQUIRE_ATTEMPTS {
        // std opens files with O_CLOEXEC, so commands that steps run do not inherit the
        // lock and cannot keep it held after rb6 exits.
        let file = open_state_file(path, false)?;

        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.path().to_path_buf(),
                    holder: read_holder_of_live_process(&file, path)?,
                })
            }
            Err(TryLockError::Error(err)) => return Err(io_error("locking", path)(err)),
        }

        if names_file(path, &file)? {
            return Ok(file);
        }
        tracing::debug!(lock = %path.display(), "lock file was replaced while locking it; retrying");
    }

    Err(LockError::Contended {
        path: path.to_path_buf(),
    })
}

/// Returns whether `path` currently names the open `file` (same device and inode).
fn names_file(path: &Path, file: &File) -> Result<bool, LockError> {
    let open = file
        .metadata()
        .map_err(io_error("reading metadata of", path))?;
    match fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("reading metadata of", path)(err)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), LockError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error("removing", path)(err)),
    }
}

enum HolderInfo {
    Valid(LockHolder),
    Empty,
    Invalid(String),
}

fn read_holder_from(file: &File, path: &Path) -> Result<HolderInfo, LockError> {
    let len = file
        .metadata()
        .map_err(io_error("reading metadata of", path))?
        .len();
    let mut bytes = vec![0; len as usize];
    let read = file
        .read_at(&mut bytes, 0)
        .map_err(io_error("reading", path))?;
    bytes.truncate(read);

    if bytes.is_empty() {
        return Ok(HolderInfo::Empty);
    }
    Ok(match serde_json::from_slice(&bytes) {
        Ok(holder) => HolderInfo::Valid(holder),
        Err(err) => HolderInfo::Invalid(err.to_string()),
    })
}

/// Reads the details of the live process that holds the lock, which may be writing them
/// at this moment, so a few attempts are made before giving up.
fn read_holder_of_live_process(file: &File, path: &Path) -> Result<Option<LockHolder>, LockError> {
    for attempt in 1..=HOLDER_READ_ATTEMPTS {
        if let HolderInfo::Valid(holder) = read_holder_from(file, path)? {
            return Ok(Some(holder));
        }
        if attempt < HOLDER_READ_ATTEMPTS {
            thread::sleep(HOLDER_READ_PAUSE);
        }
    }
    Ok(None)
}

fn write_holder(file: &File, path: &Path, holder: &LockHolder) -> Result<(), LockError> {
    let json = serde_json::to_vec(holder).expect("LockHolder serializes to JSON");

    file.set_len(0).map_err(io_error("truncating", path))?;
    file.write_all_at(&json, 0)
        .map_err(io_error("writing", path))?;
    file.sync_data().map_err(io_error("fdatasyncing", path))
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }

    // POSIX leaves the name unterminated if it was truncated, so stop at the buffer's end.
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[cfg(test)]
mod tests;
