//! [`BanSet`]: the immutable, indexed form of a ban list that the connection path consults.
//!
//! Every ban lives once in `bans`; the indexes hold `u32` positions into it. That keeps a
//! million-entry set to one `Ban` per entry plus a few bytes of index, instead of a second copy
//! of every key.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;

use regex::{RegexSet, RegexSetBuilder};

use super::trie::PrefixTrie;
use super::who::{anchored, canonical_ip, parse_cidr, parse_ip, MAX_WHO_BYTES, REGEX_SIZE_LIMIT};
use super::{Ban, BanKind};

/// Compiled size cap of all regexes of one kind together. EMQX warns that pattern bans are
/// checked one by one for every client; a set is one pass, but still bounded.
pub const REGEX_SET_SIZE_LIMIT: usize = 64 << 20;

/// Passes through a `u64` that is already a keyed hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Exact string index. Keys are randomly keyed SipHash values of the string (client ids are
/// attacker-chosen, so the hash must not be predictable); the string itself is only in `bans`.
/// The rare 64-bit collision goes to `overflow`, so correctness never rests on the hash.
#[derive(Clone, Debug, Default)]
struct StrIndex {
    hasher: RandomState,
    map: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    overflow: HashMap<u64, Vec<u32>, BuildHasherDefault<PassThrough>>,
}

impl StrIndex {
    fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s)
    }

    fn get(&self, bans: &[Ban], who: &str) -> Option<u32> {
        let h = self.hash(who);
        let is = |i: &u32| bans.get(*i as usize).is_some_and(|b| b.who == who);
        if let Some(i) = self.map.get(&h).filter(|i| is(i)) {
            return Some(*i);
        }
        self.overflow.get(&h)?.iter().find(|i| is(i)).copied()
    }

    fn insert(&mut self, who: &str, idx: u32) {
        let h = self.hash(who);
        match self.map.entry(h) {
            Entry::Vacant(v) => {
                v.insert(idx);
            }
            Entry::Occupied(_) => self.overflow.entry(h).or_default().push(idx),
        }
    }
}

/// All regex bans of one kind compiled into one `RegexSet`; `ids[i]` is the ban of pattern `i`.
#[derive(Clone, Debug)]
struct RegexIndex {
    set: RegexSet,
    ids: Vec<u32>,
}

impl RegexIndex {
    fn build(bans: &[Ban], ids: Vec<u32>) -> Result<RegexIndex, String> {
        let patterns = ids.iter().filter_map(|i| bans.get(*i as usize)).map(|b| anchored(&b.who));
        let set = RegexSetBuilder::new(patterns)
            .size_limit(REGEX_SET_SIZE_LIMIT.max(REGEX_SIZE_LIMIT))
            .dfa_size_limit(REGEX_SET_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("regex bans: {}", e.to_string().lines().last().unwrap_or("")))?;
        Ok(RegexIndex { set, ids })
    }

    fn check<'a>(&self, bans: &'a [Ban], value: &str, now: u64) -> Option<&'a Ban> {
        // `is_match` allocates nothing, and most clients match no pattern.
        if self.ids.is_empty() || !self.set.is_match(value) {
            return None;
        }
        self.set
            .matches(value)
            .into_iter()
            .filter_map(|p| self.ids.get(p))
            .filter_map(|i| bans.get(*i as usize))
            .find(|b| b.is_active(now))
    }
}

/// Immutable, indexed set for lookups: exact kinds in hash maps (O(1)), CIDRs in a prefix trie per
/// address family (O(prefix length)), regexes compiled into one `RegexSet` per kind (size-limited).
/// Build a new set and swap it in to change bans; lookups never lock.
#[derive(Clone, Debug)]
pub struct BanSet {
    bans: Vec<Ban>,
    client_ids: StrIndex,
    usernames: StrIndex,
    ip4: HashMap<u32, u32>,
    ip6: HashMap<u128, u32>,
    cidr4: PrefixTrie,
    cidr6: PrefixTrie,
    client_id_re: RegexIndex,
    username_re: RegexIndex,
}

/// Of two bans on the same target, the one that lasts longer wins: any source that still bans
/// a client keeps it banned.
fn later(a: &Ban, b: &Ban) -> bool {
    match (a.expires_at, b.expires_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(x), Some(y)) => y > x,
    }
}

/// IPv4 keys are left-aligned in the trie's `u128`.
fn v4_key(v4: std::net::Ipv4Addr) -> u128 {
    u128::from(u32::from(v4)) << 96
}

/// Rewrites `who` to the canonical spelling of what it parsed to, so a returned ban (and the
/// merge of duplicates) shows `10.0.0.1` whether it was written that way or as `::ffff:10.0.0.1`.
fn canonicalize(who: &mut String, parsed: impl std::fmt::Display) {
    let canon = parsed.to_string();
    if *who != canon {
        *who = canon;
    }
}

impl BanSet {
    /// Indexes `bans`. Bans with the same `(kind, who)` (IPs and CIDRs compared in canonical
    /// form) are merged, keeping the longer-lasting one. Fails on an invalid IP/CIDR/regex, an
    /// empty or oversized `who`, more than `u32::MAX` bans, or regexes over the size limit.
    pub fn build(bans: impl IntoIterator<Item = Ban>) -> Result<BanSet, String> {
        let mut all: Vec<Ban> = Vec::new();
        let mut client_ids = StrIndex::default();
        let mut usernames = StrIndex::default();
        let mut ip4 = HashMap::new();
        let mut ip6 = HashMap::new();
        let mut cidr4 = PrefixTrie::new(32);
        let mut cidr6 = PrefixTrie::new(128);
        let mut cid_seen: HashMap<String, u32> = HashMap::new();
        let mut user_seen: HashMap<String, u32> = HashMap::new();

        for mut ban in bans {
            if ban.who.is_empty() || ban.who.len() > MAX_WHO_BYTES {
                return Err(format!("{} ban: who must be 1 to {MAX_WHO_BYTES} bytes", ban.kind));
            }
            let next = u32::try_from(all.len()).ok().filter(|&n| n != u32::MAX).ok_or("too many bans")?;
            let existing = match ban.kind {
                BanKind::ClientId => client_ids.get(&all, &ban.who),
                BanKind::Username => usernames.get(&all, &ban.who),
                BanKind::IpAddress => {
                    let ip = parse_ip(&ban.who)?;
                    canonicalize(&mut ban.who, ip);
                    match ip {
                        IpAddr::V4(v4) => Some(*ip4.entry(u32::from(v4)).or_insert(next)),
                        IpAddr::V6(v6) => Some(*ip6.entry(u128::from(v6)).or_insert(next)),
                    }
                    .filter(|&i| i != next)
                }
                BanKind::Cidr => {
                    let net = parse_cidr(&ban.who).map_err(|e| format!("cidr ban: {e}"))?;
                    canonicalize(&mut ban.who, net);
                    let (trie, key) = match net.network() {
                        IpAddr::V4(v4) => (&mut cidr4, v4_key(v4)),
                        IpAddr::V6(v6) => (&mut cidr6, u128::from(v6)),
                    };
                    match trie.insert(key, net.prefix_len(), next)? {
                        // Put the previous owner back; the merge below decides who wins.
                        Some(old) => {
                            trie.insert(key, net.prefix_len(), old)?;
                            Some(old)
                        }
                        None => None,
                    }
                }
                BanKind::ClientIdRe | BanKind::UsernameRe => {
                    let seen = if ban.kind == BanKind::UsernameRe { &mut user_seen } else { &mut cid_seen };
                    match seen.entry(ban.who.clone()) {
                        Entry::Occupied(o) => Some(*o.get()),
                        Entry::Vacant(v) => {
                            v.insert(next);
                            None
                        }
                    }
                }
            };
            match existing.and_then(|i| all.get_mut(i as usize)) {
                Some(old) => {
                    if later(old, &ban) {
                        *old = ban;
                    }
                }
                None => {
                    match ban.kind {
                        BanKind::ClientId => client_ids.insert(&ban.who, next),
                        BanKind::Username => usernames.insert(&ban.who, next),
                        _ => {}
                    }
                    all.push(ban);
                }
            }
        }
        let sorted = |m: HashMap<String, u32>| {
            let mut ids: Vec<u32> = m.into_values().collect();
            ids.sort_unstable();
            ids
        };
        let (cid_re, user_re) = (sorted(cid_seen), sorted(user_seen));
        let client_id_re = RegexIndex::build(&all, cid_re)?;
        let username_re = RegexIndex::build(&all, user_re)?;
        all.shrink_to_fit();
        Ok(BanSet { bans: all, client_ids, usernames, ip4, ip6, cidr4, cidr6, client_id_re, username_re })
    }

    /// Number of distinct bans (after merging duplicates), expired ones included.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// Every ban in the set, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.bans.iter()
    }

    fn active(&self, idx: u32, now: u64) -> Option<&Ban> {
        self.bans.get(idx as usize).filter(|b| b.is_active(now))
    }

    /// Before TLS: exact IP and CIDR bans. IPv4-mapped IPv6 is treated as IPv4. An exact ban wins
    /// over a range; among ranges the longest active prefix wins (the most specific reason).
    pub fn check_ip(&self, ip: IpAddr, now: u64) -> Option<&Ban> {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => self.ip4.get(&u32::from(v4)).and_then(|i| self.active(*i, now)).or_else(|| {
                let i = self.cidr4.longest_match(v4_key(v4), |i| self.active(i, now).is_some())?;
                self.active(i, now)
            }),
            IpAddr::V6(v6) => {
                self.ip6.get(&u128::from(v6)).and_then(|i| self.active(*i, now)).or_else(|| {
                    let i = self.cidr6.longest_match(u128::from(v6), |i| self.active(i, now).is_some())?;
                    self.active(i, now)
                })
            }
        }
    }

    /// After CONNECT is parsed: client id (exact, then regex) and username (exact, then regex).
    /// Exact bans are checked first since they cost one hash lookup.
    pub fn check_client(&self, client_id: &str, username: Option<&str>, now: u64) -> Option<&Ban> {
        let bans = self.bans.as_slice();
        self.client_ids
            .get(bans, client_id)
            .and_then(|i| self.active(i, now))
            .or_else(|| username.and_then(|u| self.usernames.get(bans, u)).and_then(|i| self.active(i, now)))
            .or_else(|| self.client_id_re.check(bans, client_id, now))
            .or_else(|| username.and_then(|u| self.username_re.check(bans, u, now)))
    }

    /// Expired bans are ignored by the checks; this returns a compacted copy without them. If
    /// rebuilding should fail (it cannot for a subset of a valid set), the copy keeps every ban,
    /// which is still correct because the checks skip expired ones.
    pub fn without_expired(&self, now: u64) -> BanSet {
        BanSet::build(self.bans.iter().filter(|b| b.is_active(now)).cloned()).unwrap_or_else(|_| self.clone())
    }
}
