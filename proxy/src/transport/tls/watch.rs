//! Reloads a listener's TLS material when its files change.
//!
//! The *directories* holding the files are watched, not the files: Kubernetes updates a mounted
//! Secret by writing a new timestamped directory and renaming the `..data` symlink over the old
//! one, and editors write a temp file and rename it. Neither modifies the watched inode, so a
//! file watch would miss both. Events are debounced: a burst (several files, write + rename)
//! gives one reload once the directory has been quiet for [`DEBOUNCE`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::state::TlsState;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a constantly changing directory can postpone a reload.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// The directories to watch: each file's parent, and the parent of what it resolves to (a
/// symlink into another directory is updated there).
fn dirs(state: &TlsState) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for p in state.paths().all() {
        if let Some(parent) = p.parent() {
            out.insert(parent_or_dot(parent));
        }
        if let Ok(real) = std::fs::canonicalize(p) {
            if let Some(parent) = real.parent() {
                out.insert(parent.to_path_buf());
            }
        }
    }
    out
}

fn parent_or_dot(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}

/// The OS watches of one listener, set up at bind time so that no change made after the
/// listener accepts connections can be missed; [`Watch::run`] does the reloads.
pub struct Watch {
    state: Arc<TlsState>,
    _watcher: RecommendedWatcher,
    changed: Arc<Notify>,
}

/// Starts watching. Returns `None` (after logging) when no watch could be set up: the listener
/// keeps serving and reload stays available by call.
pub fn start(state: Arc<TlsState>) -> Option<Watch> {
    let changed = Arc::new(Notify::new());
    let signal = changed.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        // Our own reads show up as access events: ignoring them avoids a reload loop.
        Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
        Ok(_) => signal.notify_one(),
        // Overflow and the like: reload to be safe (an unchanged reload is a no-op).
        Err(_) => signal.notify_one(),
    });
    let mut watcher: RecommendedWatcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            warn!(listener = state.listener(), error = %e, "cannot watch TLS files; reload only on request");
            return None;
        }
    };
    let mut watching = 0;
    for dir in dirs(&state) {
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => watching += 1,
            Err(e) => {
                warn!(listener = state.listener(), dir = %dir.display(), error = %e, "cannot watch directory")
            }
        }
    }
    if watching == 0 {
        return None;
    }
    debug!(listener = state.listener(), dirs = watching, "watching TLS files");
    Some(Watch { state, _watcher: watcher, changed })
}

impl Watch {
    /// Reloads after each debounced burst of changes until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.changed.notified() => {}
            }
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while tokio::time::Instant::now() < deadline {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = tokio::time::timeout(DEBOUNCE, self.changed.notified()) => if r.is_err() { break },
                }
            }
            let s = self.state.clone();
            // Outcome and errors are logged and counted inside reload().
            let _ = tokio::task::spawn_blocking(move || s.reload()).await;
        }
    }
}
