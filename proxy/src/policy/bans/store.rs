//! [`BanStore`]: durable runtime bans (added via the admin API), surviving restart and crash.
//!
//! The whole list is rewritten on every change: serialized to a temp file in the same
//! directory, fsynced, renamed over the old file, then the directory fsynced. A crash at any
//! point leaves either the old or the new list, never a torn one; a failed write leaves the old
//! file and the in-memory list untouched. Rewriting is O(n) per change, which is fine for the
//! admin-driven rate of changes this serves.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Ban, BanKind};

/// Largest store file read back; a bigger file is reported, not loaded.
pub const MAX_STORE_BYTES: u64 = 256 * 1024 * 1024;

/// On-disk format version; bumped when the layout changes incompatibly.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BanStoreError {
    #[error("ban store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but cannot be trusted. Never treated as empty: that would silently lift
    /// every ban.
    #[error("ban store {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("invalid ban: {0}")]
    InvalidBan(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    bans: Vec<Ban>,
}

/// Durable list of bans, unique by `(kind, who)`.
#[derive(Debug)]
pub struct BanStore {
    path: PathBuf,
    bans: Vec<Ban>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BanStoreError + '_ {
    move |source| BanStoreError::Io { path: path.to_path_buf(), source }
}

/// The directory holding `path` ("." for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically. `before_rename` runs on the synced temp file just before
/// the rename; tests use it to inject a failure at the worst moment.
pub(crate) fn replace_file(
    path: &Path,
    bytes: &[u8],
    before_rename: impl FnOnce(&File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    // Same directory, so the rename never crosses a filesystem. Dropped (and deleted) on error.
    let mut tmp = tempfile::Builder::new().prefix(".bans-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    before_rename(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable only once the directory entry is.
    File::open(dir)?.sync_all()
}

impl BanStore {
    /// Opens the store at `path`. A missing file is an empty store; an unreadable, oversized,
    /// unparsable or invalid file is an error, never an empty store.
    pub fn open(path: &Path) -> Result<BanStore, BanStoreError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BanStore { path: path.to_path_buf(), bans: Vec::new() })
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let corrupt = |message: String| BanStoreError::Corrupt { path: path.to_path_buf(), message };
        let mut buf = Vec::new();
        file.take(MAX_STORE_BYTES.saturating_add(1)).read_to_end(&mut buf).map_err(io_err(path))?;
        if buf.len() as u64 > MAX_STORE_BYTES {
            return Err(corrupt(format!("larger than {MAX_STORE_BYTES} bytes")));
        }
        let disk: OnDisk = serde_json::from_slice(&buf).map_err(|e| corrupt(e.to_string()))?;
        if disk.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} (this moat reads {FORMAT_VERSION})",
                disk.version
            )));
        }
        let mut keys = HashSet::new();
        let mut bans = Vec::with_capacity(disk.bans.len());
        for (i, ban) in disk.bans.into_iter().enumerate() {
            let ban = ban.normalized().map_err(|m| corrupt(format!("bans[{i}]: {m}")))?;
            if !keys.insert((ban.kind, ban.who.clone())) {
                return Err(corrupt(format!("bans[{i}]: duplicate {} ban on {:?}", ban.kind, ban.who)));
            }
            bans.push(ban);
        }
        Ok(BanStore { path: path.to_path_buf(), bans })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bans(&self) -> &[Ban] {
        &self.bans
    }

    /// Writes `next` and adopts it only once it is durable.
    fn commit(&mut self, next: Vec<Ban>) -> Result<(), BanStoreError> {
        self.commit_with(next, |_| Ok(()))
    }

    pub(crate) fn commit_with(
        &mut self,
        next: Vec<Ban>,
        before_rename: impl FnOnce(&File) -> std::io::Result<()>,
    ) -> Result<(), BanStoreError> {
        let disk = OnDisk { version: FORMAT_VERSION, bans: next };
        let bytes = serde_json::to_vec_pretty(&disk)
            .map_err(|e| BanStoreError::Io { path: self.path.clone(), source: std::io::Error::other(e) })?;
        replace_file(&self.path, &bytes, before_rename).map_err(io_err(&self.path))?;
        self.bans = disk.bans;
        Ok(())
    }

    /// Adds `ban` (validated and normalized), replacing a ban with the same `(kind, who)`.
    pub fn add(&mut self, ban: Ban) -> Result<(), BanStoreError> {
        let ban = ban.normalized().map_err(BanStoreError::InvalidBan)?;
        let mut next = self.bans.clone();
        match next.iter_mut().find(|b| b.kind == ban.kind && b.who == ban.who) {
            Some(old) => *old = ban,
            None => next.push(ban),
        }
        self.commit(next)
    }

    /// Removes the ban on `(kind, who)`; `who` is compared in canonical form, so
    /// `::ffff:10.0.0.1` removes the `10.0.0.1` ban. `Ok(false)` (and no write) if absent.
    pub fn remove(&mut self, kind: BanKind, who: &str) -> Result<bool, BanStoreError> {
        let who = super::who::normalize_who(kind, who).unwrap_or_else(|_| who.to_string());
        let mut next = self.bans.clone();
        let before = next.len();
        next.retain(|b| !(b.kind == kind && b.who == who));
        if next.len() == before {
            return Ok(false);
        }
        self.commit(next)?;
        Ok(true)
    }

    /// Drops bans expired at `now`; returns how many. Writes only if something was dropped.
    pub fn purge_expired(&mut self, now: u64) -> Result<usize, BanStoreError> {
        let mut next = self.bans.clone();
        next.retain(|b| b.is_active(now));
        let dropped = self.bans.len().saturating_sub(next.len());
        if dropped > 0 {
            self.commit(next)?;
        }
        Ok(dropped)
    }
}
