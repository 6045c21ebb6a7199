//! Append-only journal of state records plus a snapshot that compaction writes.
//!
//! Files in the state directory:
//! - `journal`: an 8-byte file header ([`FILE_HEADER`]) followed by framed records. Each
//!   frame is a 32-byte header (4-byte magic `FE 72 36 6A`, sequence number as u64 LE,
//!   payload length as u32 LE, the first 16 bytes of SHA-256 over sequence number, length
//!   and payload) and the payload, the record as JSON. JSON is UTF-8 and UTF-8 never
//!   contains the byte `0xFE`, so a payload cannot contain a frame magic.
//! - `snapshot.json`: `{"format": 1, "seq": N, "state": ...}`, the state after applying
//!   every record up to sequence number N.
//!
//! Invariants: [`Journal::append`] returns only after the frame is fdatasynced, and
//! sequence numbers in the journal increase by one from frame to frame. A crash can only
//! damage the frame being appended, so a damaged region with no valid frame after it is a
//! torn tail that [`Journal::load`] reports and ignores, while any other damage is an error.
//! Records whose sequence number is covered by the snapshot are skipped on load, which makes
//! every crash point of [`Journal::compact`] safe.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{open_state_file, StateDir, StateError};

/// Name of the journal file in the state directory.
pub const JOURNAL_FILE: &str = "journal";

/// Name of the snapshot file in the state directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// First bytes of every journal file: a name and the format version.
pub const FILE_HEADER: &[u8; 8] = b"rb6jnl\x00\x01";

/// Maximum payload size of one record in bytes.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

const SNAPSHOT_FORMAT: u32 = 1;
const FRAME_MAGIC: [u8; 4] = [0xFE, b'r', b'6', b'j'];
const FRAME_HEADER_LEN: usize = 32;
const CHECKSUM_LEN: usize = 16;

/// Contents of the state directory as [`Journal::load`] found them.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<S, R> {
    /// The last snapshot, if compaction ever ran.
    pub snapshot: Option<S>,
    /// Sequence number of the last record the snapshot covers, 0 without a snapshot.
    pub snapshot_seq: u64,
    /// Records after the snapshot in append order. `records[i]` has sequence number
    /// `snapshot_seq + 1 + i`.
    pub records: Vec<R>,
    /// Sequence number of the last record, covered by the snapshot or not (0 if none).
    pub last_seq: u64,
    /// The damaged end of the journal that was ignored, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// A partially written last frame, left by a crash during an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the damaged frame starts (the end of the last complete frame).
    pub offset: u64,
    /// Number of bytes from `offset` to the end of the file.
    pub len: u64,
}

/// Handle on the journal and snapshot of one state directory.
///
/// Callers that append or compact must hold the directory's
/// [`StateLock`](super::StateLock); loading needs no lock.
pub struct Journal<S, R> {
    dir: StateDir,
    journal_path: PathBuf,
    snapshot_path: PathBuf,
    file: Option<File>,
    tail: Option<Tail>,
    poisoned: bool,
    _types: PhantomData<fn() -> (S, R)>,
}

/// End of the journal and next sequence number, as the next append needs them.
#[derive(Debug, Clone, Copy)]
struct Tail {
    next_seq: u64,
    valid_len: u64,
    needs_truncate: bool,
}

impl<S, R> fmt::Debug for Journal<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("journal_path", &self.journal_path)
            .field("tail", &self.tail)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<S, R> Journal<S, R>
where
    S: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// Returns a journal handle for `dir` without touching any file.
    pub fn open(dir: &StateDir) -> Journal<S, R> {
        Journal {
            dir: dir.clone(),
            journal_path: dir.file(JOURNAL_FILE),
            snapshot_path: dir.file(SNAPSHOT_FILE),
            file: None,
            tail: None,
            poisoned: false,
            _types: PhantomData,
        }
    }

    /// Returns the path of the journal file.
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }

    /// Returns the path of the snapshot file.
    pub fn snapshot_path(&self) -> &Path {
        &self.snapshot_path
    }

    /// Reads the snapshot and the records after it. Modifies no file: a torn tail is
    /// reported in [`Loaded::torn_tail`] and truncated by the next [`Journal::append`].
    pub fn load(&mut self) -> Result<Loaded<S, R>, StateError> {
        let snapshot = read_snapshot::<S>(&self.snapshot_path)?;
        let snapshot_seq = snapshot.as_ref().map_or(0, |s| s.seq);

        let bytes = read_if_exists(&self.journal_path)?.unwrap_or_default();
        let scan = scan_journal(&bytes, &self.journal_path, snapshot_seq)?;

        let mut records = Vec::new();
        for frame in scan.frames.iter().filter(|f| f.seq > snapshot_seq) {
            let record = serde_json::from_slice(&bytes[frame.payload.clone()]).map_err(|err| {
                StateError::CorruptJournal {
                    path: self.journal_path.clone(),
                    offset: frame.offset,
                    reason: format!(
                        "record {} does not parse as the expected type: {err}",
                        frame.seq
                    ),
                }
            })?;
            records.push(record);
        }
        tracing::debug!(
            journal = %self.journal_path.display(),
            snapshot_seq,
            records = records.len(),
            skipped = scan.frames.len() - records.len(),
            "loaded state"
        );

        let last_seq = scan.last_seq.max(snapshot_seq);
        self.remember_tail(&scan, last_seq);
        Ok(Loaded {
            snapshot: snapshot.map(|s| s.state),
            snapshot_seq,
            records,
            last_seq,
            torn_tail: scan.torn_tail,
        })
    }

    /// Appends `record` and fdatasyncs the journal before returning its sequence number.
    ///
    /// The first append of a handle that was not loaded scans the journal once. Every
    /// later append costs one write and one fdatasync, whatever the journal's size.
    pub fn append(&mut self, record: &R) -> Result<u64, StateError> {
        let payload = serde_json::to_vec(record).map_err(|source| StateError::Serialize {
            what: "journal record",
            path: self.journal_path.clone(),
            source,
        })?;
        if payload.len() > MAX_RECORD_LEN {
            return Err(StateError::RecordTooLarge {
                path: self.journal_path.clone(),
                len: payload.len(),
                max: MAX_RECORD_LEN,
            });
        }

        self.check_poisoned()?;
        let mut tail = self.current_tail()?;
        let file = self.writable_file(&mut tail)?;

        let frame = encode_frame(tail.next_seq, &payload);
        if let Err(err) = file.write_all(&frame) {
            // Part of the frame may be in the file: cut it off before the next append.
            tail.needs_truncate = true;
            self.tail = Some(tail);
            return Err(StateError::io("appending to", &self.journal_path)(err));
        }
        if let Err(err) = file.sync_data() {
            self.poison();
            return Err(StateError::io("fdatasyncing", &self.journal_path)(err));
        }

        let seq = tail.next_seq;
        tail.next_seq += 1;
        tail.valid_len += frame.len() as u64;
        self.tail = Some(tail);
        Ok(seq)
    }

    /// Replaces the snapshot with `snapshot`, which must be the state after every record
    /// appended so far, then starts an empty journal.
    ///
    /// Both steps are atomic renames. A crash between them leaves the new snapshot and the
    /// old journal, whose records the snapshot covers and [`Journal::load`] skips.
    pub fn compact(&mut self, snapshot: &S) -> Result<(), StateError> {
        self.check_poisoned()?;
        let tail = self.current_tail()?;
        let seq = tail.next_seq - 1;

        let body = SnapshotFile {
            format: SNAPSHOT_FORMAT,
            seq,
            state: snapshot,
        };
        let bytes = serde_json::to_vec(&body).map_err(|source| StateError::Serialize {
            what: "snapshot",
            path: self.snapshot_path.clone(),
            source,
        })?;
        self.dir.write_atomic(SNAPSHOT_FILE, &bytes)?;

        self.file = None;
        self.dir.write_atomic(JOURNAL_FILE, FILE_HEADER)?;
        self.tail = Some(Tail {
            next_seq: tail.next_seq,
            valid_len: FILE_HEADER.len() as u64,
            needs_truncate: false,
        });
        tracing::debug!(snapshot = %self.snapshot_path.display(), seq, "compacted journal");
        Ok(())
    }

    fn remember_tail(&mut self, scan: &Scan, last_seq: u64) {
        self.file = None;
        self.tail = Some(Tail {
            next_seq: last_seq + 1,
            valid_len: scan.valid_len,
            needs_truncate: scan.torn_tail.is_some() || scan.missing_header,
        });
    }

    /// Returns the tail, scanning the journal's frames (without parsing records) if this
    /// handle has not seen the journal yet.
    fn current_tail(&mut self) -> Result<Tail, StateError> {
        if let Some(tail) = self.tail {
            return Ok(tail);
        }

        let snapshot_seq = read_snapshot::<IgnoredAny>(&self.snapshot_path)?.map_or(0, |s| s.seq);
        let bytes = read_if_exists(&self.journal_path)?.unwrap_or_default();
        let scan = scan_journal(&bytes, &self.journal_path, snapshot_seq)?;
        self.remember_tail(&scan, scan.last_seq.max(snapshot_seq));
        Ok(self.tail.expect("remember_tail sets the tail"))
    }

    /// Returns the open journal file, creating the journal and cutting off a torn tail
    /// first where needed.
    fn writable_file(&mut self, tail: &mut Tail) -> Result<&mut File, StateError> {
        if tail.valid_len == 0 {
            // No journal file, or an empty one: write the file header atomically.
            self.file = None;
            self.dir.write_atomic(JOURNAL_FILE, FILE_HEADER)?;
            tail.valid_len = FILE_HEADER.len() as u64;
            tail.needs_truncate = false;
        }

        let file = match self.file.take() {
            Some(file) => file,
            None => open_state_file(&self.journal_path, true)?,
        };

        if tail.needs_truncate {
            self.truncate_torn_tail(&file, tail.valid_len)?;
            tail.needs_truncate = false;
        }

        Ok(self.file.insert(file))
    }

    fn truncate_torn_tail(&mut self, file: &File, valid_len: u64) -> Result<(), StateError> {
        let len = file
            .metadata()
            .map_err(StateError::io("reading metadata of", &self.journal_path))?
            .len();
        tracing::warn!(
            journal = %self.journal_path.display(),
            offset = valid_len,
            discarded_bytes = len.saturating_sub(valid_len),
            "truncating the torn last record of the journal before appending"
        );

        file.set_len(valid_len)
            .map_err(StateError::io("truncating", &self.journal_path))?;
        if let Err(err) = file.sync_data() {
            self.poison();
            return Err(StateError::io("fdatasyncing", &self.journal_path)(err));
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), StateError> {
        if self.poisoned {
            return Err(StateError::Poisoned {
                path: self.journal_path.clone(),
            });
        }
        Ok(())
    }

    /// Rejects further writes after a failed fsync, because the kernel may have dropped the dirty
    /// pages, so which bytes reached the disk is unknown until the journal is read again.
    fn poison(&mut self) {
        tracing::error!(journal = %self.journal_path.display(), "fsync failed; rejecting further writes to the journal");
        self.poisoned = true;
        self.file = None;
        self.tail = None;
    }
}

#[derive(Serialize)]
struct SnapshotFile<'a, S> {
    format: u32,
    seq: u64,
    state: &'a S,
}

#[derive(Deserialize)]
struct StoredSnapshot<S> {
    format: u32,
    seq: u64,
    state: S,
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StateError::io("reading", path)(err)),
    }
}

fn read_snapshot<S: DeserializeOwned>(
    path: &Path,
) -> Result<Option<StoredSnapshot<S>>, StateError> {
    let Some(bytes) = read_if_exists(path)? else {
        return Ok(None);
    };

    let snapshot: StoredSnapshot<S> =
        serde_json::from_slice(&bytes).map_err(|err| StateError::CorruptSnapshot {
            path: path.to_path_buf(),
            offset: byte_offset(&bytes, err.line(), err.column()),
            reason: err.to_string(),
        })?;
    if snapshot.format != SNAPSHOT_FORMAT {
        return Err(StateError::CorruptSnapshot {
            path: path.to_path_buf(),
            offset: 0,
            reason: format!(
                "unsupported snapshot format {}, this rb6 reads format {SNAPSHOT_FORMAT}",
                snapshot.format
            ),
        });
    }
    Ok(Some(snapshot))
}

/// Converts serde_json's 1-based line and byte column into a byte offset.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> u64 {
    let line_start: usize = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len()) as u64
}

fn checksum(seq: u64, payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(seq.to_le_bytes());
    hasher.update((payload.len() as u32).to_le_bytes());
    hasher.update(payload);

    let mut sum = [0; CHECKSUM_LEN];
    sum.copy_from_slice(&hasher.finalize()[..CHECKSUM_LEN]);
    sum
}

fn encode_frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&FRAME_MAGIC);
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(seq, payload));
    frame.extend_from_slice(payload);
    frame
}

/// A complete, checksum-verified frame.
#[derive(Debug)]
struct Frame {
    offset: u64,
    seq: u64,
    payload: std::ops::Range<usize>,
}

/// Result of scanning a journal's frames.
#[derive(Debug, Default)]
struct Scan {
    frames: Vec<Frame>,
    /// Sequence number of the last frame, 0 if there is none.
    last_seq: u64,
    /// End of the last complete frame (or of the file header).
    valid_len: u64,
    torn_tail: Option<TornTail>,
    /// The file is missing or empty, so the next append writes the file header.
    missing_header: bool,
}

/// Decodes the frame at `offset`, or returns why it is not a complete valid frame.
fn decode_frame(bytes: &[u8], offset: usize) -> Result<Frame, String> {
    let rest = &bytes[offset..];
    if rest.len() < FRAME_HEADER_LEN {
        return Err(format!(
            "frame header is {} of {FRAME_HEADER_LEN} bytes",
            rest.len()
        ));
    }
    if rest[..4] != FRAME_MAGIC {
        return Err("frame magic is missing".to_string());
    }

    let seq = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(rest[12..16].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD_LEN {
        return Err(format!(
            "record length {len} exceeds the maximum of {MAX_RECORD_LEN}"
        ));
    }
    if rest.len() < FRAME_HEADER_LEN + len {
        return Err(format!(
            "record {seq} needs {len} payload bytes but only {} remain",
            rest.len() - FRAME_HEADER_LEN
        ));
    }

    let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    if rest[16..FRAME_HEADER_LEN] != checksum(seq, payload) {
        return Err(format!("record {seq} fails its checksum"));
    }

    let start = offset + FRAME_HEADER_LEN;
    Ok(Frame {
        offset: offset as u64,
        seq,
        payload: start..start + len,
    })
}

/// Returns the offset of the first valid frame that starts after `offset`.
fn find_valid_frame_after(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len())
        .filter(|&i| bytes[i..].starts_with(&FRAME_MAGIC))
        .find(|&i| decode_frame(bytes, i).is_ok())
}

/// Scans the frames of a journal file, telling a torn tail from corruption.
///
/// `snapshot_seq` is the snapshot's last sequence number: the first frame after it must
/// carry `snapshot_seq + 1`, so that no record between snapshot and journal is missing.
fn scan_journal(bytes: &[u8], path: &Path, snapshot_seq: u64) -> Result<Scan, StateError> {
    let corrupt = |offset: usize, reason: String| StateError::CorruptJournal {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };

    if bytes.is_empty() {
        return Ok(Scan {
            missing_header: true,
            ..Scan::default()
        });
    }
    if !bytes.starts_with(FILE_HEADER) {
        return Err(corrupt(
            0,
            "the file does not start with the rb6 journal header (format 1)".into(),
        ));
    }

    let mut scan = Scan::default();
    let mut offset = FILE_HEADER.len();
    while offset < bytes.len() {
        let frame = match decode_frame(bytes, offset) {
            Ok(frame) => frame,
            Err(fault) => {
                // NOTE: damage spanning every frame from here to the end also looks like a
                // torn tail, although a crash can only tear one frame.
                if let Some(next) = find_valid_frame_after(bytes, offset) {
                    return Err(corrupt(
                        offset,
                        format!("{fault}, and a valid record follows at byte offset {next}"),
                    ));
                }
                tracing::warn!(
                    journal = %path.display(),
                    offset,
                    discarded_bytes = bytes.len() - offset,
                    fault,
                    "ignoring the torn last record of the journal, left by an interrupted append"
                );
                scan.torn_tail = Some(TornTail {
                    offset: offset as u64,
                    len: (bytes.len() - offset) as u64,
                });
                break;
            }
        };

        check_sequence(&scan, &frame, snapshot_seq).map_err(|reason| corrupt(offset, reason))?;
        offset = frame.payload.end;
        scan.last_seq = frame.seq;
        scan.frames.push(frame);
    }

    scan.valid_len = scan.torn_tail.map_or(bytes.len() as u64, |t| t.offset);
    Ok(scan)
}

fn check_sequence(scan: &Scan, frame: &Frame, snapshot_seq: u64) -> Result<(), String> {
    match scan.frames.last() {
        Some(prev) if frame.seq != prev.seq + 1 => Err(format!(
            "record {} follows record {}, expected record {}",
            frame.seq,
            prev.seq,
            prev.seq + 1
        )),
        _ if frame.seq == 0 => Err("record sequence number is 0, but numbering starts at 1".into()),
        None if frame.seq > snapshot_seq + 1 => Err(format!(
            "the first record is {}, but the snapshot covers records up to {snapshot_seq} \
             so records {} to {} are missing",
            frame.seq,
            snapshot_seq + 1,
            frame.seq.saturating_sub(1)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
