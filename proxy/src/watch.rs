//! Reloads the configuration when the config file or a policy file it references changes.
//!
//! The *directories* holding the files are watched, not the files: Kubernetes updates a mounted
//! ConfigMap by writing a new timestamped directory and renaming the `..data` symlink over the
//! old one, and editors write a temp file and rename it; neither touches the watched inode. A
//! burst of events gives one reload once the directories have been quiet for [`DEBOUNCE`], and
//! only if the files' contents changed (the ban store or an editor's swap file in the same
//! directory must not cause reloads, which make every live session re-check itself).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::runtime::Runtime;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a constantly changing directory can postpone a reload.
const MAX_DELAY: Duration = Duration::from_secs(3);
/// Files above this are fingerprinted by size and mtime only.
const MAX_HASHED: u64 = 64 * 1024 * 1024;

/// Each file's directory, and the directory it resolves to (a symlink into another directory is
/// updated there).
fn dirs(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for p in files {
        if let Some(parent) = p.parent() {
            out.insert(if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() });
        }
        if let Ok(real) = std::fs::canonicalize(p) {
            if let Some(parent) = real.parent() {
                out.insert(parent.to_path_buf());
            }
        }
    }
    out
}

/// A digest of every file's contents (missing files count as such).
fn fingerprint(files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in files {
        h.update(p.as_os_str().as_encoded_bytes());
        match std::fs::metadata(p) {
            Ok(m) if m.len() <= MAX_HASHED => match std::fs::read(p) {
                Ok(bytes) => h.update(&bytes),
                Err(_) => h.update(b"\0unreadable"),
            },
            Ok(m) => {
                h.update(m.len().to_be_bytes());
                if let Ok(t) = m.modified() {
                    h.update(format!("{t:?}").as_bytes());
                }
            }
            Err(_) => h.update(b"\0missing"),
        }
    }
    h.finalize().into()
}

fn watch_all(watcher: &mut RecommendedWatcher, files: &[PathBuf], watched: &mut BTreeSet<PathBuf>) {
    for dir in dirs(files) {
        if watched.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(dir);
            }
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot watch a policy directory"),
        }
    }
}

async fn hash_off_thread(files: Vec<PathBuf>) -> Option<[u8; 32]> {
    tokio::task::spawn_blocking(move || fingerprint(&files)).await.ok()
}

/// Watches until the task is aborted. Without any watch (no inotify), reload stays available
/// through SIGHUP and the admin API.
pub fn spawn(rt: Arc<Runtime>) -> Option<tokio::task::JoinHandle<()>> {
    let changed = Arc::new(Notify::new());
    let signal = changed.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        // Reading the files (ours included) shows up as access events: not a change.
        Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
        Ok(_) | Err(_) => signal.notify_one(),
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot watch policy files; reload with SIGHUP or the admin API");
            return None;
        }
    };
    let mut watched = BTreeSet::new();
    let files = rt.config.load().files.clone();
    watch_all(&mut watcher, &files, &mut watched);
    if watched.is_empty() {
        return None;
    }
    debug!(dirs = watched.len(), files = files.len(), "watching policy files");
    Some(tokio::spawn(async move {
        let mut last = hash_off_thread(files).await;
        loop {
            changed.notified().await;
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while tokio::time::Instant::now() < deadline {
                if tokio::time::timeout(DEBOUNCE, changed.notified()).await.is_err() {
                    break;
                }
            }
            let files = rt.config.load().files.clone();
            let now = hash_off_thread(files).await;
            if now.is_some() && now == last {
                continue;
            }
            info!("policy files changed, reloading");
            // Outcome and errors are logged, counted and shown by /api/v1/status inside reload().
            let _ = rt.reload().await;
            // The new config may reference new files; remember what we reloaded from.
            let files = rt.config.load().files.clone();
            watch_all(&mut watcher, &files, &mut watched);
            last = hash_off_thread(files).await;
        }
    }))
}
