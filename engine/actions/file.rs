//! File actions: write, copy, create and remove files and directories, with enough recorded
//! to undo each change, plus marker-delimited blocks inside text files.
//!
//! Invariants: a file write is atomic (temporary file in the same directory, fsync, rename,
//! fsync of the directory), so a reader or a crash sees either the old or the new content.
//! Every change returns a [`FileChange`] from which [`restore`] rebuilds the previous state
//! byte for byte, with its permission bits and owner. [`insert_block`] followed by
//! [`remove_block`] returns the original text byte for byte.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Maximum total size of the files under a directory that [`remove_dir`] records for undo.
pub const MAX_TREE_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;

/// Permission bits kept from `st_mode`: rwx for user, group and other, plus setuid, setgid
/// and sticky.
const PERMISSION_BITS: u32 = 0o7777;

/// Resolved uid and gid to set; `None` in a part leaves it unchanged.
type OwnerIds = (Option<u32>, Option<u32>);

/// A user or group, by numeric id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// Numeric uid or gid.
    Id(u32),
    /// Name looked up in the user or group database.
    Name(String),
}

impl Principal {
    /// Parses `value` as a numeric id when it is all digits, as a name otherwise.
    pub fn parse(value: &str) -> Self {
        match value.parse() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(value.to_owned()),
        }
    }
}

/// Owner and group to give a file; `None` in a field leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Owning user.
    pub user: Option<Principal>,
    /// Owning group.
    pub group: Option<Principal>,
}

/// Permission bits and owner of a file, directory or symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
}

impl Attributes {
    fn of(metadata: &fs::Metadata) -> Self {
        Self {
            mode: metadata.mode() & PERMISSION_BITS,
            uid: metadata.uid(),
            gid: metadata.gid(),
        }
    }
}

/// Content and attributes of a regular file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSnapshot {
    /// Bytes of the file, stored as hex when serialized.
    #[serde(with = "hex_bytes")]
    pub content: Vec<u8>,
    /// Permission bits and owner.
    pub attributes: Attributes,
}

/// One entry of a directory tree recorded by [`remove_dir`], with its path relative to the
/// removed directory (empty for the directory itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreeEntry {
    /// A directory.
    Directory {
        relative: PathBuf,
        attributes: Attributes,
    },
    /// A regular file.
    File {
        relative: PathBuf,
        snapshot: FileSnapshot,
    },
    /// A symbolic link and its target, which is not followed.
    Symlink {
        relative: PathBuf,
        target: PathBuf,
        attributes: Attributes,
    },
}

/// State of a path before a change, as much as undo needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Before {
    /// Nothing existed at the path, so undo removes the file the change created.
    Absent,
    /// Nothing was changed (removing a directory that did not exist), so undo does nothing.
    Unchanged,
    /// A regular file with this content and these attributes.
    File(FileSnapshot),
    /// [`create_dir`] made the directories in `created`, outermost first. `existing` has the
    /// attributes of the target directory when it existed already.
    Directory {
        created: Vec<PathBuf>,
        existing: Option<Attributes>,
    },
    /// [`remove_dir`] removed this tree, listed parents before children.
    Tree(Vec<TreeEntry>),
}

/// Record of one change to the file system, enough to undo it with [`restore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Path changed, with symbolic links resolved for file writes.
    pub path: PathBuf,
    /// State before the change.
    pub before: Before,
    /// Lowercase hex SHA-256 of the file content after the change, `None` for directories.
    pub after_sha256: Option<String>,
}

/// Failure of a file action.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FileError {
    /// A system call on `path` failed.
    #[error("failed to {action} {}: {source}", .path.display())]
    Io {
        /// Operation that failed, e.g. "read", "rename".
        action: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Error from the operating system.
        #[source]
        source: std::io::Error,
    },

    /// A user name is not in the user database.
    #[error("user `{0}` not found")]
    #[diagnostic(help("create the user first, or give a numeric uid"))]
    UserNotFound(String),

    /// A group name is not in the group database.
    #[error("group `{0}` not found")]
    #[diagnostic(help("create the group first, or give a numeric gid"))]
    GroupNotFound(String),

    /// The path exists but has the wrong type for the action.
    #[error("{} exists and is not a {expected}", .path.display())]
    #[diagnostic(help("remove or move the existing entry, or choose another path"))]
    WrongType {
        /// Path that has the wrong type.
        path: PathBuf,
        /// Type the action needs ("directory", "regular file").
        expected: &'static str,
    },

    /// A directory is too large to record for undo.
    #[error("{} contains {size} bytes of files, more than the {limit} bytes recorded for undo", .path.display())]
    #[diagnostic(help("remove it with a shell step instead, which has no automatic undo"))]
    TreeTooLarge {
        /// Directory to remove.
        path: PathBuf,
        /// Bytes found so far.
        size: u64,
        /// Limit, [`MAX_TREE_SNAPSHOT_BYTES`].
        limit: u64,
    },

    /// A directory contains an entry that cannot be recorded (socket, FIFO, device).
    #[error("{} is a special file (socket, FIFO or device) that cannot be recorded for undo", .path.display())]
    #[diagnostic(help("remove it with a shell step instead, which has no automatic undo"))]
    SpecialFile {
        /// The special file.
        path: PathBuf,
    },

    /// Undo cannot put the previous state back without destroying something newer.
    #[error("cannot restore {}: {reason}", .path.display())]
    #[diagnostic(help("inspect the path, move away what is in the way, and run the undo again"))]
    RestoreConflict {
        /// Path that blocks the restore.
        path: PathBuf,
        /// Description of what blocks the restore.
        reason: String,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Returns the lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns the SHA-256 of the file at `path`, or `None` when nothing exists there.
///
/// The executor compares it with [`FileChange::after_sha256`] to reject undoing a file that
/// someone changed since.
pub fn current_sha256(path: &Path) -> Result<Option<String>, FileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(sha256_hex(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Renders a unified diff from `old` to `new`, empty when they are equal.
pub fn diff(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string()
}

/// Writes `content` to `path` atomically, creating or replacing a regular file.
///
/// `mode` sets the permission bits. With `None`, an existing file keeps its bits and owner
/// and a new file gets `0o666` minus the umask. Symbolic links at `path` are followed.
pub fn write_file(
    path: &Path,
    content: &[u8],
    mode: Option<u32>,
    owner: Option<&Owner>,
) -> Result<FileChange, FileError> {
    let path = resolve_symlink(path)?;
    let before = snapshot_file(&path)?;
    let ids = resolve_owner(owner)?;

    let (mode, keep_ids) = match &before {
        Before::File(previous) => (
            Some(mode.unwrap_or(previous.attributes.mode)),
            Some((previous.attributes.uid, previous.attributes.gid)),
        ),
        _ => (mode, None),
    };
    let ids = merge_ids(ids, keep_ids);
    atomic_write(&path, content, mode, ids)?;
    tracing::debug!(path = %path.display(), bytes = content.len(), "wrote file");

    Ok(FileChange {
        path,
        before,
        after_sha256: Some(sha256_hex(content)),
    })
}

/// Copies the regular file `src` to `dst` atomically, as [`write_file`] does.
///
/// With `mode` `None`, an existing `dst` keeps its bits and a new one gets the bits of `src`.
// NOTE: the whole source file is read into memory.
pub fn copy_file(
    src: &Path,
    dst: &Path,
    mode: Option<u32>,
    owner: Option<&Owner>,
) -> Result<FileChange, FileError> {
    let content = fs::read(src).map_err(io_error("read", src))?;
    let dst_exists = fs::metadata(dst).is_ok();
    let mode = match (mode, dst_exists) {
        (Some(mode), _) => Some(mode),
        (None, true) => None,
        (None, false) => {
            Some(fs::metadata(src).map_err(io_error("stat", src))?.mode() & PERMISSION_BITS)
        }
    };

    write_file(dst, &content, mode, owner)
}

/// Creates the directory `path` and any missing parents, like `mkdir -p`.
///
/// `mode` and `owner` apply to `path` only (also when it exists already). Parents get the
/// default `0o777` minus the umask. The change lists the directories created.
pub fn create_dir(
    path: &Path,
    mode: Option<u32>,
    owner: Option<&Owner>,
) -> Result<FileChange, FileError> {
    let ids = resolve_owner(owner)?;
    let existing = match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some(Attributes::of(&meta)),
        Ok(_) => {
            return Err(FileError::WrongType {
                path: path.to_path_buf(),
                expected: "directory",
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(FileError::Io {
                action: "stat",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };

    let missing = missing_ancestors(path);
    let mut created = Vec::new();
    for dir in &missing {
        match fs::DirBuilder::new().mode(0o777).create(dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => {
                return Err(FileError::Io {
                    action: "create directory",
                    path: dir.clone(),
                    source: e,
                })
            }
        }
        sync_parent(dir)?;
    }

    apply_attributes(path, mode, ids)?;
    tracing::debug!(path = %path.display(), created = created.len(), "created directory");

    Ok(FileChange {
        path: path.to_path_buf(),
        before: Before::Directory { created, existing },
        after_sha256: None,
    })
}

/// Removes the directory `path` and everything under it, recording the tree for undo.
///
/// A missing `path` is not an error: the change is then [`Before::Unchanged`]. Symbolic links
/// inside are removed, not followed.
// NOTE: modification times and extended attributes are not recorded, so undo does not restore them.
pub fn remove_dir(path: &Path) -> Result<FileChange, FileError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileChange {
                path: path.to_path_buf(),
                before: Before::Unchanged,
                after_sha256: None,
            });
        }
        Err(e) => {
            return Err(FileError::Io {
                action: "stat",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    if !meta.is_dir() {
        return Err(FileError::WrongType {
            path: path.to_path_buf(),
            expected: "directory",
        });
    }

    let tree = snapshot_tree(path)?;
    fs::remove_dir_all(path).map_err(io_error("remove directory", path))?;
    sync_parent(path)?;
    tracing::debug!(path = %path.display(), entries = tree.len(), "removed directory");

    Ok(FileChange {
        path: path.to_path_buf(),
        before: Before::Tree(tree),
        after_sha256: None,
    })
}

/// Puts back the state recorded in `change`.
///
/// A file is rewritten byte for byte with its previous bits and owner, or removed when it did
/// not exist. Directories that [`create_dir`] made are removed only when empty. A tree that
/// [`remove_dir`] removed is recreated only when nothing exists at its path.
pub fn restore(change: &FileChange) -> Result<(), FileError> {
    let path = &change.path;
    match &change.before {
        Before::Unchanged => Ok(()),
        Before::Absent => remove_file_if_present(path),
        Before::File(snapshot) => {
            let ids = Some((Some(snapshot.attributes.uid), Some(snapshot.attributes.gid)));
            atomic_write(path, &snapshot.content, Some(snapshot.attributes.mode), ids)
        }
        Before::Directory { created, existing } => {
            restore_created_dirs(path, created, existing.as_ref())
        }
        Before::Tree(entries) => restore_tree(path, entries),
    }
}

fn remove_file_if_present(path: &Path) -> Result<(), FileError> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn restore_created_dirs(
    path: &Path,
    created: &[PathBuf],
    existing: Option<&Attributes>,
) -> Result<(), FileError> {
    if let Some(attributes) = existing {
        set_attributes(path, attributes)?;
    }

    for dir in created.iter().rev() {
        match fs::remove_dir(dir) {
            Ok(()) => sync_parent(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                return Err(FileError::RestoreConflict {
                    path: dir.clone(),
                    reason: "the directory is not empty".into(),
                });
            }
            Err(e) => {
                return Err(FileError::Io {
                    action: "remove directory",
                    path: dir.clone(),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

fn restore_tree(root: &Path, entries: &[TreeEntry]) -> Result<(), FileError> {
    if fs::symlink_metadata(root).is_ok() {
        return Err(FileError::RestoreConflict {
            path: root.to_path_buf(),
            reason: "something exists at the path again".into(),
        });
    }

    // Directory bits are set last, after their contents exist, so read-only directories work.
    let mut directories = Vec::new();
    for entry in entries {
        match entry {
            TreeEntry::Directory {
                relative,
                attributes,
            } => {
                let dir = root.join(relative);
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io_error("create directory", &dir))?;
                directories.push((dir, *attributes));
            }
            TreeEntry::File { relative, snapshot } => {
                let file = root.join(relative);
                let ids = Some((Some(snapshot.attributes.uid), Some(snapshot.attributes.gid)));
                atomic_write(
                    &file,
                    &snapshot.content,
                    Some(snapshot.attributes.mode),
                    ids,
                )?;
            }
            TreeEntry::Symlink {
                relative,
                target,
                attributes,
            } => {
                let link = root.join(relative);
                std::os::unix::fs::symlink(target, &link)
                    .map_err(io_error("create symlink", &link))?;
                chown_if_needed(&link, attributes.uid, attributes.gid, true)?;
            }
        }
    }

    for (dir, attributes) in directories.iter().rev() {
        set_attributes(dir, attributes)?;
        fsync_dir(dir)?;
    }
    sync_parent(root)
}

/// Takes the state of a file before a change: its content and attributes, or that it is absent.
/// Returns the path with symbolic links resolved, as the change will record it.
pub fn snapshot(path: &Path) -> Result<(PathBuf, Before), FileError> {
    let path = resolve_symlink(path)?;
    let before = snapshot_file(&path)?;
    Ok((path, before))
}

fn snapshot_file(path: &Path) -> Result<Before, FileError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Before::Absent),
        Err(e) => {
            return Err(FileError::Io {
                action: "stat",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    if !meta.is_file() {
        return Err(FileError::WrongType {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }

    let content = fs::read(path).map_err(io_error("read", path))?;
    Ok(Before::File(FileSnapshot {
        content,
        attributes: Attributes::of(&meta),
    }))
}

fn snapshot_tree(root: &Path) -> Result<Vec<TreeEntry>, FileError> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![PathBuf::new()];

    while let Some(relative) = pending.pop() {
        let path = root.join(&relative);
        let meta = fs::symlink_metadata(&path).map_err(io_error("stat", &path))?;
        let attributes = Attributes::of(&meta);
        let kind = meta.file_type();

        if kind.is_dir() {
            entries.push(TreeEntry::Directory {
                relative: relative.clone(),
                attributes,
            });
            let mut children: Vec<PathBuf> = fs::read_dir(&path)
                .map_err(io_error("list", &path))?
                .map(|child| child.map(|c| relative.join(c.file_name())))
                .collect::<Result<_, _>>()
                .map_err(io_error("list", &path))?;
            children.sort();
            pending.extend(children.into_iter().rev());
        } else if kind.is_file() {
            total += meta.len();
            if total > MAX_TREE_SNAPSHOT_BYTES {
                return Err(FileError::TreeTooLarge {
                    path: root.to_path_buf(),
                    size: total,
                    limit: MAX_TREE_SNAPSHOT_BYTES,
                });
            }
            let content = fs::read(&path).map_err(io_error("read", &path))?;
            entries.push(TreeEntry::File {
                relative,
                snapshot: FileSnapshot {
                    content,
                    attributes,
                },
            });
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("read symlink", &path))?;
            entries.push(TreeEntry::Symlink {
                relative,
                target,
                attributes,
            });
        } else {
            return Err(FileError::SpecialFile { path });
        }
    }
    Ok(entries)
}

/// Writes `content` to a temporary file next to `path`, syncs it, renames it over `path` and
/// syncs the directory. `mode` `None` leaves the new file at `0o666` minus the umask.
fn atomic_write(
    path: &Path,
    content: &[u8],
    mode: Option<u32>,
    ids: Option<OwnerIds>,
) -> Result<(), FileError> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| FileError::WrongType {
        path: path.to_path_buf(),
        expected: "regular file",
    })?;
    let temp = dir.join(format!(
        ".{}.rb6-{:016x}.tmp",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));

    // A file whose mode is given starts private, so its content is never readable by others.
    let create_mode = if mode.is_some() { 0o600 } else { 0o666 };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(create_mode)
            .open(&temp)
            .map_err(io_error("create", &temp))?;
        file.write_all(content).map_err(io_error("write", &temp))?;

        // chown before chmod, because chown clears the setuid and setgid bits.
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::fchown(&file, uid, gid)
                .map_err(io_error("change owner of", &temp))?;
        }
        if let Some(mode) = mode {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_error("change mode of", &temp))?;
        }
        file.sync_all().map_err(io_error("sync", &temp))?;
        fs::rename(&temp, path).map_err(io_error("rename temporary file onto", path))
    })();

    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    fsync_dir(dir)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}

fn sync_parent(path: &Path) -> Result<(), FileError> {
    fsync_dir(parent_dir(path))
}

fn resolve_symlink(path: &Path) -> Result<PathBuf, FileError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(io_error("resolve symlink", path))
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// Returns the directories from the outermost missing ancestor of `path` down to `path`.
fn missing_ancestors(path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

fn apply_attributes(
    path: &Path,
    mode: Option<u32>,
    ids: Option<OwnerIds>,
) -> Result<(), FileError> {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, uid, gid).map_err(io_error("change owner of", path))?;
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(io_error("change mode of", path))?;
    }
    Ok(())
}

fn set_attributes(path: &Path, attributes: &Attributes) -> Result<(), FileError> {
    chown_if_needed(path, attributes.uid, attributes.gid, false)?;
    fs::set_permissions(path, fs::Permissions::from_mode(attributes.mode))
        .map_err(io_error("change mode of", path))
}

/// Changes the owner only when it differs, so restoring works without root for one's own files.
fn chown_if_needed(path: &Path, uid: u32, gid: u32, is_symlink: bool) -> Result<(), FileError> {
    let meta = fs::symlink_metadata(path).map_err(io_error("stat", path))?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    let changed = if is_symlink {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    } else {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    };
    changed.map_err(io_error("change owner of", path))
}

/// Fills the parts of `ids` that are unset with `keep`, so a rewrite keeps the old owner.
fn merge_ids(ids: Option<OwnerIds>, keep: Option<(u32, u32)>) -> Option<OwnerIds> {
    match (ids, keep) {
        (None, None) => None,
        (Some(ids), None) => Some(ids),
        (None, Some((uid, gid))) => Some((Some(uid), Some(gid))),
        (Some((uid, gid)), Some((keep_uid, keep_gid))) => {
            Some((uid.or(Some(keep_uid)), gid.or(Some(keep_gid))))
        }
    }
}

fn resolve_owner(owner: Option<&Owner>) -> Result<Option<OwnerIds>, FileError> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let uid = owner.user.as_ref().map(resolve_user).transpose()?;
    let gid = owner.group.as_ref().map(resolve_group).transpose()?;
    Ok(Some((uid, gid)))
}

fn resolve_user(user: &Principal) -> Result<u32, FileError> {
    match user {
        Principal::Id(uid) => Ok(*uid),
        Principal::Name(name) => {
            lookup_user(name).ok_or_else(|| FileError::UserNotFound(name.clone()))
        }
    }
}

fn resolve_group(group: &Principal) -> Result<u32, FileError> {
    match group {
        Principal::Id(gid) => Ok(*gid),
        Principal::Name(name) => {
            lookup_group(name).ok_or_else(|| FileError::GroupNotFound(name.clone()))
        }
    }
}

/// Looks up a user name with getpwnam_r(3).
fn lookup_user(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    loop {
        // SAFETY: all pointers are valid for the call, and `buffer.len()` is the buffer's size.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(entry.pw_uid);
    }
}

/// Looks up a group name with getgrnam_r(3).
fn lookup_group(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    loop {
        // SAFETY: all pointers are valid for the call, and `buffer.len()` is the buffer's size.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(entry.gr_gid);
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

mod block;
pub use block::{insert_block, remove_block, BlockError, BlockMarkers, BlockPosition};

#[cfg(test)]
mod tests;
