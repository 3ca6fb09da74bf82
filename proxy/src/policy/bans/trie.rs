//! A path-compressed binary prefix trie (PATRICIA style) for CIDR bans of one address family.
//!
//! Keys are left-aligned in a `u128` (IPv4 shifted into the top 32 bits), so one implementation
//! serves both families. Compression keeps the node count below twice the number of prefixes,
//! whatever their lengths, and a lookup visits at most one node per distinct prefix length on
//! the path: O(prefix length), independent of the number of bans.

/// Child slot value meaning "no child"; the root (index 0) is never anybody's child.
const NONE: u32 = 0;
/// Value slot meaning "no ban ends at this node".
const NO_VALUE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    /// The prefix, with every bit past `len` zero.
    key: u128,
    len: u8,
    child: [u32; 2],
    value: u32,
}

/// Maps prefixes to `u32` values (indexes of bans).
#[derive(Clone, Debug)]
pub struct PrefixTrie {
    nodes: Vec<Node>,
    /// 32 or 128: the longest valid prefix.
    width: u8,
}

/// `key` with only its first `len` bits kept.
fn mask(key: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        1..=127 => key & !(u128::MAX >> len),
        _ => key,
    }
}

/// Bit `i` counted from the most significant (0-based), as a child slot.
fn bit(key: u128, i: u8) -> usize {
    match 127u8.checked_sub(i) {
        Some(shift) => ((key >> shift) & 1) as usize,
        None => 0,
    }
}

/// Length of the common prefix of two keys, at most `limit`.
fn common_len(a: u128, b: u128, limit: u8) -> u8 {
    let lz = (a ^ b).leading_zeros();
    u8::try_from(lz).unwrap_or(128).min(limit)
}

impl PrefixTrie {
    /// An empty trie for keys of `width` bits (32 for IPv4, 128 for IPv6).
    pub fn new(width: u8) -> PrefixTrie {
        PrefixTrie {
            nodes: vec![Node { key: 0, len: 0, child: [NONE; 2], value: NO_VALUE }],
            width: width.min(128),
        }
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }

    fn push(&mut self, key: u128, len: u8, value: u32) -> Option<u32> {
        let idx = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NO_VALUE)?;
        self.nodes.push(Node { key: mask(key, len), len, child: [NONE; 2], value });
        Some(idx)
    }

    fn set_child(&mut self, parent: u32, slot: usize, child: u32) {
        if let Some(c) = self.nodes.get_mut(parent as usize).and_then(|n| n.child.get_mut(slot)) {
            *c = child;
        }
    }

    /// Inserts `key/len` → `value`. Returns `Ok(Some(old))` when the prefix already held a value
    /// (the caller decides which ban wins and may call again), `Err` when the trie is full or
    /// `len` exceeds the width.
    pub fn insert(&mut self, key: u128, len: u8, value: u32) -> Result<Option<u32>, String> {
        if len > self.width || value == NO_VALUE {
            return Err(format!("prefix length {len} out of range"));
        }
        let key = mask(key, len);
        let full = || "too many CIDR prefixes".to_string();
        let mut cur: u32 = 0;
        loop {
            let node = self.node(cur).ok_or_else(full)?.clone();
            if node.len == len {
                let old = node.value;
                if let Some(n) = self.nodes.get_mut(cur as usize) {
                    n.value = value;
                }
                return Ok((old != NO_VALUE).then_some(old));
            }
            let slot = bit(key, node.len);
            let child = node.child.get(slot).copied().unwrap_or(NONE);
            if child == NONE {
                let leaf = self.push(key, len, value).ok_or_else(full)?;
                self.set_child(cur, slot, leaf);
                return Ok(None);
            }
            let c = self.node(child).ok_or_else(full)?.clone();
            let common = common_len(key, c.key, len.min(c.len));
            if common == c.len {
                cur = child;
                continue;
            }
            if common == len {
                // The new prefix sits between `cur` and `child`.
                let mid = self.push(key, len, value).ok_or_else(full)?;
                self.set_child(mid, bit(c.key, len), child);
                self.set_child(cur, slot, mid);
                return Ok(None);
            }
            // Diverge below `common`: a value-less fork holds both.
            let fork = self.push(key, common, NO_VALUE).ok_or_else(full)?;
            let leaf = self.push(key, len, value).ok_or_else(full)?;
            self.set_child(fork, bit(c.key, common), child);
            self.set_child(fork, bit(key, common), leaf);
            self.set_child(cur, slot, fork);
            return Ok(None);
        }
    }

    /// The value of the longest prefix containing `addr` for which `accept` holds. `accept` lets
    /// the caller skip expired bans without stopping at them: a shorter, still active prefix
    /// further up must still match.
    pub fn longest_match(&self, addr: u128, accept: impl Fn(u32) -> bool) -> Option<u32> {
        let mut best = None;
        let mut cur = self.node(0);
        while let Some(n) = cur {
            if mask(addr, n.len) != n.key {
                break;
            }
            if n.value != NO_VALUE && accept(n.value) {
                best = Some(n.value);
            }
            if n.len >= self.width {
                break;
            }
            let next = n.child.get(bit(addr, n.len)).copied().unwrap_or(NONE);
            cur = if next == NONE { None } else { self.node(next) };
        }
        best
    }
}
