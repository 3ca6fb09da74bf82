//! `listeners[].tls_psk`: a listener whose clients authenticate with a pre-shared key instead of
//! certificates (TLS 1.2 PSK suites over OpenSSL, see `transport/psk.rs`).
//!
//! The identities file has one `identity:hexkey` per line (`#` comments, blank lines), the format
//! Mosquitto's `psk_file` and EMQX's PSK `init_file` use, so existing files carry over. Its
//! contents never appear in an error: messages name the line and what is wrong, not the text.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::error::Issues;
use super::raw::S;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTlsPsk {
    pub identities_file: S<String>,
}

/// Shortest key accepted: 128 bits, the strength of the weakest suite offered.
pub const MIN_KEY_BYTES: usize = 16;
/// Longest key accepted (OpenSSL's own limit is larger; 512 bits is plenty).
pub const MAX_KEY_BYTES: usize = 64;
/// Longest identity: it becomes a username, and OpenSSL caps identities at 128 bytes on the wire.
pub const MAX_IDENTITY_BYTES: usize = 128;
/// Largest identities file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A key, wiped when dropped and never printed.
pub struct PskKey(Box<[u8]>);

impl PskKey {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PskKey {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

/// Identity → key. Identities were checked at load (trap 7), so whatever the handshake finds
/// here is safe to use as a username and in ACL placeholders.
pub struct PskIdentities {
    keys: HashMap<Box<str>, PskKey>,
    /// SHA-256 of the file, so a reload can tell the file changed (and that it needs a restart)
    /// without keeping or comparing the text. Never printed.
    digest: [u8; 32],
}

impl PskIdentities {
    /// The identity as stored (shared, for the session's identity) and its key.
    pub fn get(&self, identity: &str) -> Option<(&str, &PskKey)> {
        self.keys.get_key_value(identity).map(|(k, v)| (&**k, v))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether two loads read the same file contents.
    pub fn same_contents(&self, other: &PskIdentities) -> bool {
        self.digest == other.digest
    }
}

impl fmt::Debug for PskIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PskIdentities").field("count", &self.keys.len()).finish_non_exhaustive()
    }
}

/// A validated `tls_psk` block.
#[derive(Debug, Clone)]
pub struct PskConfig {
    pub identities_file: PathBuf,
    pub identities: Arc<PskIdentities>,
}

/// Validates `listeners[i].tls_psk` (`key` is that path).
pub(crate) fn psk(raw: &RawTlsPsk, key: &str, base: &Path, issues: &mut Issues) -> Option<PskConfig> {
    let line = raw.identities_file.referenced.line();
    if !cfg!(feature = "tls-psk") {
        issues.push(
            line,
            key,
            "this moat was built without the `tls-psk` feature (OpenSSL), so it cannot serve TLS-PSK listeners",
        );
        return None;
    }
    let file = base.join(&raw.identities_file.value);
    issues.depends_on(&file);
    match load_identities(&file) {
        Ok(identities) => Some(PskConfig { identities_file: file, identities: Arc::new(identities) }),
        Err(list) => {
            for (line, k, message) in list {
                issues.push_in(file.clone(), line, k, message);
            }
            None
        }
    }
}

/// One problem in an identities file: line, key (`file`, `entry`, `identity`, `key`), message.
pub type PskFileIssue = (u64, String, String);

pub fn load_identities(path: &Path) -> Result<PskIdentities, Vec<PskFileIssue>> {
    let text = crate::util::read_bounded(path, MAX_FILE_BYTES)
        .map_err(|e| vec![(0, "file".to_string(), e.to_string())])?;
    parse_identities(text.strip_prefix('\u{feff}').unwrap_or(&text))
}

pub fn parse_identities(text: &str) -> Result<PskIdentities, Vec<PskFileIssue>> {
    let mut issues: Vec<PskFileIssue> = Vec::new();
    let mut keys: HashMap<Box<str>, PskKey> = HashMap::new();
    let mut first_line: HashMap<Box<str>, u64> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let mut issue = |k: &str, m: String| issues.push((line, k.to_string(), m));
        // Hex has no `:`, so the last one separates; an identity may contain `:`.
        let Some((identity, hex_key)) = entry.rsplit_once(':') else {
            issue("entry", "expected identity:hexkey".into());
            continue;
        };
        let identity = identity.trim_end();
        if let Err(m) = check_identity(identity) {
            issue("identity", m);
            continue;
        }
        if let Some(first) = first_line.get(identity) {
            issue("identity", format!("identity listed twice (first on line {first})"));
            continue;
        }
        let key = match hex::decode(hex_key.trim()) {
            Ok(k) => PskKey(k.into_boxed_slice()),
            Err(_) => {
                issue("key", "the key is not hexadecimal".into());
                continue;
            }
        };
        if key.0.len() < MIN_KEY_BYTES || key.0.len() > MAX_KEY_BYTES {
            issue(
                "key",
                format!(
                    "the key is {} bytes; it must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes ({} to {} hex digits)",
                    key.0.len(),
                    MIN_KEY_BYTES * 2,
                    MAX_KEY_BYTES * 2
                ),
            );
            continue;
        }
        first_line.insert(identity.into(), line);
        keys.insert(identity.into(), key);
    }
    if keys.is_empty() && issues.is_empty() {
        issues.push((0, "file".into(), "no identities (expected lines of identity:hexkey)".into()));
    }
    if issues.is_empty() {
        use sha2::Digest as _;
        Ok(PskIdentities { keys, digest: sha2::Sha256::digest(text.as_bytes()).into() })
    } else {
        Err(issues)
    }
}

/// The identity becomes a username and fills ACL placeholders (trap 7).
fn check_identity(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty identity".into());
    }
    if id.len() > MAX_IDENTITY_BYTES {
        return Err(format!("identity longer than {MAX_IDENTITY_BYTES} bytes"));
    }
    if id.chars().any(|c| c.is_control() || matches!(c, '+' | '#' | '/' | '\0')) {
        return Err("identity contains `+`, `#`, `/`, NUL or a control character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY16: &str = "00112233445566778899aabbccddeeff";

    fn errs(text: &str) -> Vec<PskFileIssue> {
        match parse_identities(text) {
            Ok(_) => panic!("identities unexpectedly valid"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_identities_comments_and_colons() {
        let ids = parse_identities(&format!("# devices\n\ndevice-1:{KEY16}\nurn:dev:2 : {KEY16}{KEY16}\n"))
            .expect("valid");
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.get("device-1").map(|(_, k)| k.bytes().len()), Some(16));
        assert_eq!(ids.get("urn:dev:2").map(|(_, k)| k.bytes().len()), Some(32));
        assert!(ids.get("device-2").is_none());
        assert_eq!(format!("{ids:?}"), "PskIdentities { count: 2, .. }");
    }

    #[test]
    fn bad_entries_name_line_and_key_and_never_echo_the_key() {
        let secret = "abcdefabcdefabcdefabcdefabcdef";
        let found = errs(&format!(
            "ok:{KEY16}\nno-separator\nshort:{secret}\nnot-hex:zz{KEY16}\nok:{KEY16}\na/b:{KEY16}\n:{KEY16}\n"
        ));
        let summary: Vec<(u64, &str)> = found.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
        assert_eq!(
            summary,
            vec![(2, "entry"), (3, "key"), (4, "key"), (5, "identity"), (6, "identity"), (7, "identity")]
        );
        assert!(found[1].2.contains("15 bytes"), "{found:?}");
        assert!(found[3].2.contains("line 1"), "{found:?}");
        for (_, _, m) in &found {
            assert!(!m.contains(secret) && !m.contains(KEY16), "key echoed: {m}");
        }
    }

    #[test]
    fn placeholder_characters_and_controls_are_refused() {
        for id in ["a+b", "a#", "x/y", "nul\0", "tab\tid", &"x".repeat(129)] {
            let found = errs(&format!("{id}:{KEY16}\n"));
            assert_eq!(found[0].1, "identity", "{id:?}: {found:?}");
        }
    }

    #[test]
    fn a_changed_file_is_told_apart_from_the_same_one() {
        let a = parse_identities(&format!("d:{KEY16}\n")).expect("valid");
        let same = parse_identities(&format!("d:{KEY16}\n")).expect("valid");
        let other = parse_identities(&format!("d:{KEY16}\ne:{KEY16}\n")).expect("valid");
        assert!(a.same_contents(&same));
        assert!(!a.same_contents(&other));
    }

    #[test]
    fn an_empty_file_is_an_error_and_long_keys_are_refused() {
        assert_eq!(errs("# nothing\n")[0].1, "file");
        let long = "00".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(errs(&format!("big:{long}\n"))[0].1, "key");
    }
}
