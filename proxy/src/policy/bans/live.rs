//! [`LiveBans`]: the ban list in force, changed at runtime by the admin API (durable store) and
//! by reloads of the ban file. Every change rebuilds the indexed [`BanSet`] and swaps it in whole,
//! so lookups never lock; then the generation is bumped so live sessions that now match a ban
//! disconnect themselves (issue: "a new ban disconnects live sessions that match it").
//!
//! A store change is made durable first and adopted in memory only after the write succeeded, so
//! a ban the API reported as added survives a crash, and a failed write changes nothing.

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, Guard};

use super::{Ban, BanKind, BanSet, BanStore, BanStoreError, SharedBanError, SharedBanStore};
use crate::policy::live::Generation;

/// Where a ban in the list comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanSource {
    /// The YAML ban file (`bans.file`): changed by editing the file and reloading.
    File,
    /// The runtime store (`bans.store`): changed through the admin API.
    Runtime,
}

impl BanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BanSource::File => "file",
            BanSource::Runtime => "runtime",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveBanError {
    #[error("no ban store is configured (set bans.store to add bans at runtime)")]
    NoStore,
    #[error(transparent)]
    Store(#[from] BanStoreError),
    #[error("ban list: {0}")]
    Build(String),
    /// The shared store (Redis) refused or could not be reached; nothing was changed.
    #[error("shared ban store: {0}")]
    Shared(#[from] SharedBanError),
}

struct Sources {
    file: Vec<Ban>,
    store: Option<BanStore>,
    /// Runtime bans kept in a store shared by replicas, and the local mirror of its list (sorted
    /// by kind and target, so a resync that brings nothing new is recognised and ignored).
    shared: Option<(Arc<dyn SharedBanStore>, Vec<Ban>)>,
}

pub struct LiveBans {
    set: ArcSwap<BanSet>,
    /// Serializes changes; lookups never take it.
    sources: Mutex<Sources>,
    generation: Generation,
}

impl LiveBans {
    /// Builds the list from the ban file's bans and the store (if any).
    pub fn new(
        file: Vec<Ban>,
        store: Option<BanStore>,
        generation: Generation,
    ) -> Result<Self, LiveBanError> {
        let sources = Sources { file, store, shared: None };
        let set = build(&sources)?;
        Ok(Self { set: ArcSwap::from_pointee(set), sources: Mutex::new(sources), generation })
    }

    /// Builds the list from the ban file's bans and a store shared by replicas, whose bans arrive
    /// through [`LiveBans::replace_shared`].
    pub fn new_shared(
        file: Vec<Ban>,
        backend: Arc<dyn SharedBanStore>,
        generation: Generation,
    ) -> Result<Self, LiveBanError> {
        let sources = Sources { file, store: None, shared: Some((backend, Vec::new())) };
        let set = build(&sources)?;
        Ok(Self { set: ArcSwap::from_pointee(set), sources: Mutex::new(sources), generation })
    }

    /// The set in force now (no lock).
    pub fn current(&self) -> Guard<Arc<BanSet>> {
        self.set.load()
    }

    fn lock(&self) -> MutexGuard<'_, Sources> {
        // A panic while holding the lock left the sources as they were before the change
        // (changes are adopted only after they succeed): keep using them.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether runtime bans can be added (a store is configured).
    pub fn has_store(&self) -> bool {
        let s = self.lock();
        s.store.is_some() || s.shared.is_some()
    }

    /// Whether runtime bans live in a store shared by replicas.
    pub fn is_shared(&self) -> bool {
        self.lock().shared.is_some()
    }

    /// Every ban with its source, file bans first.
    pub fn list(&self) -> Vec<(Ban, BanSource)> {
        let s = self.lock();
        let file = s.file.iter().map(|b| (b.clone(), BanSource::File));
        let runtime = s.store.iter().flat_map(|st| st.bans().iter().map(|b| (b.clone(), BanSource::Runtime)));
        let shared =
            s.shared.iter().flat_map(|(_, bans)| bans.iter().map(|b| (b.clone(), BanSource::Runtime)));
        file.chain(runtime).chain(shared).collect()
    }

    /// Adds a runtime ban wherever runtime bans live (the local store, or the shared store and
    /// then the local mirror, so this replica applies it before the call returns).
    pub async fn add_any(&self, ban: Ban) -> Result<Ban, LiveBanError> {
        let Some(backend) = self.shared_backend() else {
            return self.add(ban);
        };
        let ban = ban.normalized().map_err(|m| LiveBanError::Store(BanStoreError::InvalidBan(m)))?;
        {
            // Refuse what the set cannot index before writing it anywhere.
            let s = self.lock();
            let mut next = shared_without(&s, ban.kind, &ban.who);
            next.push(ban.clone());
            BanSet::build(s.file.iter().cloned().chain(next)).map_err(LiveBanError::Build)?;
        }
        backend.put(ban.clone()).await?;
        let mut s = self.lock();
        let mut next = shared_without(&s, ban.kind, &ban.who);
        next.push(ban.clone());
        self.adopt_shared(&mut s, next)?;
        Ok(ban)
    }

    /// Removes a runtime ban wherever runtime bans live; `Ok(false)` if there was none.
    pub async fn remove_any(&self, kind: BanKind, who: &str) -> Result<bool, LiveBanError> {
        let Some(backend) = self.shared_backend() else {
            return self.remove(kind, who);
        };
        let who = super::who::normalize_who(kind, who).unwrap_or_else(|_| who.to_string());
        let removed = backend.delete(kind, who.clone()).await?;
        let mut s = self.lock();
        let next = shared_without(&s, kind, &who);
        self.adopt_shared(&mut s, next)?;
        Ok(removed)
    }

    /// Removes every runtime ban wherever runtime bans live; returns how many there were.
    pub async fn clear_any(&self) -> Result<usize, LiveBanError> {
        let Some(backend) = self.shared_backend() else {
            return self.clear_runtime();
        };
        let n = backend.clear().await?;
        let mut s = self.lock();
        self.adopt_shared(&mut s, Vec::new())?;
        Ok(n)
    }

    /// Adopts the shared store's whole list (the sync task calls this on every change message and
    /// periodic resync). Returns whether anything changed; only a change rebuilds the set and
    /// makes live sessions re-check themselves. On error the last known list stays in force.
    pub fn replace_shared(&self, bans: Vec<Ban>) -> Result<bool, LiveBanError> {
        let mut s = self.lock();
        self.adopt_shared(&mut s, bans)
    }

    fn shared_backend(&self) -> Option<Arc<dyn SharedBanStore>> {
        self.lock().shared.as_ref().map(|(b, _)| b.clone())
    }

    fn adopt_shared(&self, s: &mut Sources, mut next: Vec<Ban>) -> Result<bool, LiveBanError> {
        next.sort_by(|a, b| (a.kind.as_str(), &a.who).cmp(&(b.kind.as_str(), &b.who)));
        next.dedup_by(|a, b| a.kind == b.kind && a.who == b.who);
        let Some((_, mirror)) = s.shared.as_mut() else {
            return Err(LiveBanError::NoStore);
        };
        if *mirror == next {
            return Ok(false);
        }
        let old = std::mem::replace(mirror, next);
        if let Err(e) = self.rebuild(s) {
            if let Some((_, mirror)) = s.shared.as_mut() {
                *mirror = old;
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Adds (or replaces) a runtime ban, durably, then applies it to live sessions.
    pub fn add(&self, ban: Ban) -> Result<Ban, LiveBanError> {
        let ban = ban.normalized().map_err(|m| LiveBanError::Store(BanStoreError::InvalidBan(m)))?;
        let mut s = self.lock();
        let Some(current) = s.store.as_ref() else {
            return Err(LiveBanError::NoStore);
        };
        // Index first: a ban the set cannot take (regex set too large) is refused before it is
        // written, so the store never holds a ban that does not apply.
        let mut runtime: Vec<Ban> =
            current.bans().iter().filter(|b| !(b.kind == ban.kind && b.who == ban.who)).cloned().collect();
        runtime.push(ban.clone());
        let set = BanSet::build(s.file.iter().cloned().chain(runtime)).map_err(LiveBanError::Build)?;
        if let Some(store) = s.store.as_mut() {
            store.add(ban.clone())?;
        }
        self.set.store(Arc::new(set));
        self.generation.bump();
        Ok(ban)
    }

    /// Removes a runtime ban; `Ok(false)` if there was none. File bans are removed by editing
    /// the file.
    pub fn remove(&self, kind: BanKind, who: &str) -> Result<bool, LiveBanError> {
        let mut s = self.lock();
        let store = s.store.as_mut().ok_or(LiveBanError::NoStore)?;
        let removed = store.remove(kind, who)?;
        if removed {
            self.rebuild(&s)?;
        }
        Ok(removed)
    }

    /// Removes every runtime ban; returns how many there were.
    pub fn clear_runtime(&self) -> Result<usize, LiveBanError> {
        let mut s = self.lock();
        let store = s.store.as_mut().ok_or(LiveBanError::NoStore)?;
        let all: Vec<(BanKind, String)> = store.bans().iter().map(|b| (b.kind, b.who.clone())).collect();
        for (kind, who) in &all {
            store.remove(*kind, who)?;
        }
        self.rebuild(&s)?;
        Ok(all.len())
    }

    /// Replaces the ban file's bans (a reload validated the new file).
    pub fn replace_file_bans(&self, file: Vec<Ban>) -> Result<(), LiveBanError> {
        let mut s = self.lock();
        let old = std::mem::replace(&mut s.file, file);
        if let Err(e) = self.rebuild(&s) {
            s.file = old;
            return Err(e);
        }
        Ok(())
    }

    /// Drops expired runtime bans from the store (they already stopped applying at their
    /// expiry; this keeps the store from growing). Returns how many were dropped.
    pub fn purge_expired(&self, now: u64) -> Result<usize, LiveBanError> {
        let mut s = self.lock();
        let Some(store) = s.store.as_mut() else {
            return Ok(0);
        };
        let n = store.purge_expired(now)?;
        if n > 0 {
            self.rebuild(&s)?;
        }
        Ok(n)
    }

    fn rebuild(&self, s: &Sources) -> Result<(), LiveBanError> {
        self.set.store(Arc::new(build(s)?));
        self.generation.bump();
        Ok(())
    }
}

fn build(s: &Sources) -> Result<BanSet, LiveBanError> {
    let runtime = s.store.iter().flat_map(|st| st.bans().iter().cloned());
    let shared = s.shared.iter().flat_map(|(_, bans)| bans.iter().cloned());
    BanSet::build(s.file.iter().cloned().chain(runtime).chain(shared)).map_err(LiveBanError::Build)
}

/// The shared mirror without the ban on `(kind, who)`.
fn shared_without(s: &Sources, kind: BanKind, who: &str) -> Vec<Ban> {
    s.shared
        .iter()
        .flat_map(|(_, bans)| bans.iter())
        .filter(|b| !(b.kind == kind && b.who == who))
        .cloned()
        .collect()
}
