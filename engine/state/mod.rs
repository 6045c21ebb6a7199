//! Durable state of a runbook's applies: the state directory, the journal of step records
//! and the lock.
//!
//! Invariants: the state directory is mode 0700, and every file this module creates in it
//! is created with mode 0600 rather than narrowed afterwards. Every file that replaces
//! another does so with an atomic rename after its contents were fsynced, so after a crash
//! or power loss a reader sees either the old or the new file in full.

pub mod journal;
pub mod lock;
pub mod records;
pub mod store;

pub use journal::{Journal, Loaded, TornTail};
pub use lock::{ForceRemoved, LockError, LockHolder, StateLock};

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the state directory: only the owner may list or enter it.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every file in the state directory: only the owner may read or write it.
pub const FILE_MODE: u32 = 0o600;

/// Errors of the state directory and the journal.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    /// A file system operation failed.
    #[error("{action} {path} failed: {source}")]
    #[diagnostic(code(rb6::state::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The state path exists but is not a directory.
    #[error("state path {path} exists but is not a directory")]
    #[diagnostic(
        code(rb6::state::not_a_directory),
        help("move the file away; rb6 keeps its state in a directory at this path")
    )]
    NotADirectory { path: PathBuf },

    /// The journal contains a damaged record that is not the last one, or a record that
    /// does not follow its predecessor.
    #[error("journal {path} is corrupt at byte offset {offset}: {reason}")]
    #[diagnostic(
        code(rb6::state::corrupt_journal),
        help(
            "rb6 does not discard state it cannot read; restore the file from a backup, \
             or inspect the bytes at that offset"
        )
    )]
    CorruptJournal {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The snapshot file cannot be parsed.
    #[error("snapshot {path} is corrupt at byte offset {offset}: {reason}")]
    #[diagnostic(
        code(rb6::state::corrupt_snapshot),
        help("rb6 does not discard state it cannot read; restore the file from a backup")
    )]
    CorruptSnapshot {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A record or snapshot could not be serialized.
    #[error("serializing a {what} for {path} failed: {source}")]
    #[diagnostic(code(rb6::state::serialize))]
    Serialize {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A record is larger than the journal's frame format allows.
    #[error("journal record of {len} bytes for {path} exceeds the maximum of {max} bytes")]
    #[diagnostic(
        code(rb6::state::record_too_large),
        help("keep large step outputs in files and record their paths instead")
    )]
    RecordTooLarge {
        path: PathBuf,
        len: usize,
        max: usize,
    },

    /// An earlier fsync of the journal failed, so its on-disk state is unknown.
    #[error("journal {path} rejects writes because an earlier fsync failed")]
    #[diagnostic(
        code(rb6::state::poisoned),
        help("fix the storage error, then run rb6 again; it reloads the journal from disk")
    )]
    Poisoned { path: PathBuf },
}

impl StateError {
    /// Builds an [`StateError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }
}

/// The per-runbook state directory (`.rb6/` beside the runbook).
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens the state directory at `path`, creating it (and missing parents) with mode
    /// 0700, and narrows the mode of an existing directory that is wider than 0700.
    pub fn open(path: impl AsRef<Path>) -> Result<StateDir, StateError> {
        let path = path.as_ref().to_path_buf();

        match fs::metadata(&path) {
            Ok(meta) => repair_dir_mode(&path, &meta)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => create_dir(&path)?,
            Err(err) => return Err(StateError::io("reading metadata of", &path)(err)),
        }

        Ok(StateDir { path })
    }

    /// Returns the directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the path of `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Atomically replaces `name` in this directory with `bytes`; see [`write_atomic`].
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        write_atomic(&self.path, name, bytes)
    }
}

fn create_dir(path: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(StateError::io("creating directory", path))?;

    // The umask may have removed bits from DIR_MODE but never adds any, so the directory
    // is at most 0700. Syncing the parent makes the new directory entry durable.
    tracing::debug!(path = %path.display(), "created state directory");
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

fn repair_dir_mode(path: &Path, meta: &fs::Metadata) -> Result<(), StateError> {
    if !meta.is_dir() {
        return Err(StateError::NotADirectory {
            path: path.to_path_buf(),
        });
    }

    let mode = meta.mode() & 0o7777;
    if mode & !DIR_MODE == 0 {
        return Ok(());
    }

    tracing::warn!(
        path = %path.display(),
        mode = format!("{mode:04o}"),
        "state directory was accessible to other users; narrowing its mode to 0700"
    );
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
        .map_err(StateError::io("setting mode 0700 on", path))
}

/// Narrows the mode of an open state file to 0600 if it is wider, warning when it does.
pub(crate) fn repair_file_mode(file: &File, path: &Path) -> Result<(), StateError> {
    let mode = file
        .metadata()
        .map_err(StateError::io("reading metadata of", path))?
        .mode()
        & 0o7777;
    if mode & !FILE_MODE == 0 {
        return Ok(());
    }

    tracing::warn!(
        path = %path.display(),
        mode = format!("{mode:04o}"),
        "state file was accessible to other users; narrowing its mode to 0600"
    );
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .map_err(StateError::io("setting mode 0600 on", path))
}

/// Opens (creating with mode 0600 if missing) a state file for reading and writing.
pub(crate) fn open_state_file(path: &Path, append: bool) -> Result<File, StateError> {
    let file = OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(StateError::io("opening", path))?;
    repair_file_mode(&file, path)?;
    Ok(file)
}

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StateError::io("fsyncing directory", dir))
}

/// Atomically replaces the file `name` in `dir` with `bytes`, durably and with mode 0600.
///
/// Writes a temporary file in `dir` (created 0600 with `O_EXCL`), fsyncs it, renames it
/// over `name` and fsyncs `dir`. After a crash at any point, `name` is either the old file
/// or the new one in full. A crash before the rename can leave the temporary file
/// (`.NAME.PID.N.tmp`) behind.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let target = dir.join(name);
    let temp = dir.join(temp_name(name));

    let result = write_and_rename(&temp, &target, bytes);
    if result.is_err() {
        // Best effort: the temp file may not exist if creating it was what failed.
        let _ = fs::remove_file(&temp);
        return result;
    }

    sync_dir(dir)
}

fn write_and_rename(temp: &Path, target: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(temp)
        .map_err(StateError::io("creating", temp))?;

    file.write_all(bytes)
        .map_err(StateError::io("writing", temp))?;
    file.sync_all().map_err(StateError::io("fsyncing", temp))?;
    drop(file);

    fs::rename(temp, target).map_err(StateError::io("renaming temporary file onto", target))
}

fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}.{n}.tmp", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn open_creates_dir_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested/.rb6");

        let dir = StateDir::open(&path).unwrap();

        assert!(dir.path().is_dir(), "state directory was not created");
        assert_eq!(mode_of(&path), 0o700, "state directory mode is not 0700");
    }

    #[test]
    fn open_narrows_wide_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".rb6");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();

        StateDir::open(&path).unwrap();

        assert_eq!(
            mode_of(&path),
            0o700,
            "existing 0755 directory was not narrowed to 0700"
        );
    }

    #[test]
    fn open_rejects_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".rb6");
        fs::write(&path, b"not a directory").unwrap();

        let err = StateDir::open(&path).unwrap_err();

        assert!(
            matches!(err, StateError::NotADirectory { .. }),
            "expected NotADirectory, got {err:?}"
        );
    }

    #[test]
    fn write_atomic_replaces_file_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join(".rb6")).unwrap();

        dir.write_atomic("report.json", b"first").unwrap();
        dir.write_atomic("report.json", b"second").unwrap();

        let path = dir.file("report.json");
        assert_eq!(
            fs::read(&path).unwrap(),
            b"second",
            "file does not hold the last write"
        );
        assert_eq!(
            mode_of(&path),
            0o600,
            "atomically written file mode is not 0600"
        );
    }

    #[test]
    fn write_atomic_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join(".rb6")).unwrap();

        dir.write_atomic("report.json", b"body").unwrap();

        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["report.json".to_string()],
            "unexpected files in state directory"
        );
    }

    /// Environment variable naming the directory where `create_state_files` works.
    const UMASK_CHILD_DIR_ENV: &str = "RB6_TEST_UMASK_CHILD_DIR";

    /// Not a test on its own: `files_0600_under_umask_0` runs it in a child process whose
    /// umask is 0, where it creates every kind of state file.
    #[test]
    #[ignore = "helper process for files_0600_under_umask_0"]
    fn create_state_files() {
        let Some(path) = std::env::var_os(UMASK_CHILD_DIR_ENV) else {
            return;
        };
        let dir = StateDir::open(path).unwrap();

        fs::write(dir.file("control"), b"").unwrap();
        dir.write_atomic("report.json", b"{}").unwrap();
        let mut journal: Journal<Vec<u32>, u32> = Journal::open(&dir);
        journal.append(&1).unwrap();
        journal.compact(&vec![1]).unwrap();
        journal.append(&2).unwrap();

        // Leaking the lock keeps its file, and the process exit releases the OS lock.
        std::mem::forget(StateLock::acquire(&dir, LockHolder::current("test")).unwrap());
    }

    #[test]
    fn files_0600_under_umask_0() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".rb6");

        // umask is process-wide, so a child process gets umask 0 instead of this one.
        let output = Command::new("sh")
            .args(["-c", "umask 000 && exec \"$@\"", "sh"])
            .arg(std::env::current_exe().unwrap())
            .args(["state::tests::create_state_files", "--exact", "--ignored"])
            .env(UMASK_CHILD_DIR_ENV, &path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "child creating state files failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );

        assert_eq!(
            mode_of(&path.join("control")),
            0o666,
            "child did not run with umask 0"
        );
        assert_eq!(
            mode_of(&path),
            0o700,
            "directory created under umask 0 is not 0700"
        );
        for name in ["report.json", "journal", "snapshot.json", "lock"] {
            let mode = mode_of(&path.join(name));
            assert_eq!(mode, 0o600, "{name} created under umask 0 is not 0600");
        }
    }
}
