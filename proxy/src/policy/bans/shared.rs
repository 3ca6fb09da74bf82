//! [`SharedBanStore`]: runtime bans kept outside this process and shared by every replica (the
//! Redis backend implements it; see `crate::state`). [`super::LiveBans`] writes through it and
//! keeps a local mirror that the backend's sync task replaces whole
//! ([`super::LiveBans::replace_shared`]), so lookups stay lock-free and local, and the last known
//! list keeps being enforced while the backend is unreachable.
//!
//! A trait (not a Redis type) so the policy layer stays free of network clients.

use std::future::Future;
use std::pin::Pin;

use super::{Ban, BanKind};

/// A boxed `Send` future, so the trait stays object-safe without an extra crate.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a shared store could not do what was asked. The text is safe to show (no credentials).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SharedBanError(pub String);

pub trait SharedBanStore: Send + Sync + 'static {
    /// Adds or replaces the ban on `(ban.kind, ban.who)` and tells the other replicas.
    fn put(&self, ban: Ban) -> BoxFuture<Result<(), SharedBanError>>;
    /// Removes the ban on `(kind, who)` (canonical `who`); `Ok(false)` if there was none.
    fn delete(&self, kind: BanKind, who: String) -> BoxFuture<Result<bool, SharedBanError>>;
    /// Removes every shared ban; returns how many there were.
    fn clear(&self) -> BoxFuture<Result<usize, SharedBanError>>;
}
