//! Unit tests of the bans module, one file per component.

mod file;
mod kind;
mod prop;
mod set;
mod shared;
mod store;
mod trie;

use super::{Ban, BanKind};

pub(super) fn ban(kind: BanKind, who: &str) -> Ban {
    Ban {
        kind,
        who: who.to_string(),
        reason: "test".into(),
        by: "tests".into(),
        created_at: 0,
        expires_at: None,
    }
}

pub(super) fn ban_until(kind: BanKind, who: &str, expires_at: u64) -> Ban {
    Ban { expires_at: Some(expires_at), ..ban(kind, who) }
}
