//! Banned clients, after EMQX's "banned clients": exact bans on client id, username and IP
//! address, and rule bans by client-id/username regex and by CIDR range, each with a reason and
//! an optional expiry.
//!
//! Two sources feed one [`BanSet`]: the static YAML file ([`load_ban_file`]) and the durable
//! runtime list ([`BanStore`], written by the admin API); [`LiveBans`] keeps the set in force. The set is immutable and indexed so
//! the connection path pays a hash lookup or a short trie walk, however many bans there are:
//! [`BanSet::check_ip`] before TLS (the cheapest rejection), [`BanSet::check_client`] once
//! CONNECT is parsed. Pure: no I/O except in the loader and the store, no async.

mod file;
mod kind;
mod live;
mod set;
mod shared;
mod store;
mod trie;
mod who;

#[cfg(test)]
mod tests;

pub use file::{load_ban_file, parse_ban_file, DEFAULT_BY, MAX_BAN_FILE_BYTES};
pub use kind::{Ban, BanKind};
pub use live::{BanSource, LiveBanError, LiveBans};
pub use set::{BanSet, REGEX_SET_SIZE_LIMIT};
pub use shared::{BoxFuture, SharedBanError, SharedBanStore};
pub use store::{BanStore, BanStoreError, MAX_STORE_BYTES};
pub use who::canonical_ip;

/// One problem in a ban file. `line` is 1-based (0 = whole file); `key` is the path to the
/// offending value (`bans[3].who`), so errors can be reported all at once and fixed in one go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadIssue {
    pub line: u64,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for LoadIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}
