//! Password-file authentication: a YAML file (or a Mosquitto `user:hash` file) of users with
//! Argon2, bcrypt, Mosquitto or EMQX password hashes, loaded and validated once, then verified per
//! CONNECT.
//!
//! Everything here is pure and synchronous: hashing is deliberately slow, so the session runs
//! [`PasswordFile::verify`] on a bounded blocking pool rather than on the async runtime.
//!
//! Design rules (trap 6 of the design notes): an unknown user and a wrong password give the same
//! `None` and cost about the same time, because an unknown user is verified against a dummy hash
//! of the file's most common algorithm and cost; digests are compared in constant time; a hash
//! that cannot be parsed is a load error, never a user who can log in with anything. Secrets
//! (hashes, passwords) never reach errors, logs or `Debug` output.

mod bcrypt_hash;
mod emqx;
mod file;
mod hash;
mod mosquitto;
mod phc;
mod upsert;

#[cfg(test)]
mod tests;
#[cfg(test)]
#[path = "tests/file.rs"]
mod tests_file;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub use file::{load_password_file, parse_mosquitto_passwd, parse_password_file, MAX_FILE_BYTES};
pub use phc::{hash_password, HashPasswordError};
pub use upsert::{upsert_user, upsert_user_with_scram};

use hash::PasswordHash;

use super::scram::{self, ClientFirst, Mechanism, ScramCredential, ScramError, ServerFirst};

/// One problem found while loading a password file. `line` is 1-based (0 when the problem
/// concerns the whole file, e.g. it cannot be read); `key` names the setting, e.g.
/// `users.alice.password_hash`. Never includes a hash or a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadIssue {
    pub line: u64,
    pub key: String,
    pub message: String,
}

impl LoadIssue {
    /// The key is passed through [`shown_key`]: in a malformed file a hash can end up parsed as
    /// a key (a lost colon or quote), and it must not reach the error then either.
    pub(crate) fn new(line: u64, key: impl Into<String>, message: impl Into<String>) -> Self {
        LoadIssue { line, key: shown_key(&key.into()), message: message.into() }
    }
}

/// Longest key segment shown as written; every real setting name is far shorter than any hash.
const MAX_SHOWN_SEGMENT: usize = 40;

/// Redacts the segments of a dotted key that could be (part of) a secret: anything long, or
/// holding the `$`, quote or whitespace characters that appear when a hash line lost its colon.
fn shown_key(key: &str) -> String {
    let segments: Vec<&str> = key
        .split('.')
        .map(|segment| {
            let suspicious = segment.len() > MAX_SHOWN_SEGMENT
                || segment.chars().any(|c| c == '$' || c == '"' || c == '\'' || c.is_control())
                || segment.split_whitespace().any(|word| word.len() > 16);
            if suspicious {
                "<redacted>"
            } else {
                segment
            }
        })
        .collect();
    segments.join(".")
}

impl fmt::Display for LoadIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// A user's authorization facts, returned by a successful [`PasswordFile::verify`].
#[derive(Clone)]
pub struct UserEntry {
    pub superuser: bool,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    hash: PasswordHash,
    /// SCRAM credentials (`scram_sha256`, `scram_sha512`), at most one per mechanism.
    scram: Vec<ScramCredential>,
}

impl UserEntry {
    /// The hash algorithm's name (e.g. `argon2id`, `bcrypt`), safe to log: lets operators find
    /// entries still on weak legacy formats.
    pub fn algorithm(&self) -> &'static str {
        self.hash.algorithm_name()
    }
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("superuser", &self.superuser)
            .field("groups", &self.groups)
            .field("attributes", &self.attributes)
            .field("hash", &self.hash)
            .field("scram", &self.scram)
            .finish()
    }
}

/// A loaded, validated password file.
#[derive(Clone)]
pub struct PasswordFile {
    users: HashMap<String, UserEntry>,
    /// Verified for unknown users so that their cost matches a typical entry (trap 6).
    dummy: PasswordHash,
    /// Iteration count shown to unknown SCRAM users: the most common one in the file, so the
    /// server-first message of an unknown user looks like a real one.
    scram_fake_iterations: u32,
    /// Whether any user has a SCRAM credential (the listener then offers SCRAM).
    has_scram: bool,
}

#[cfg(test)]
thread_local! {
    /// Test-only proof that unknown users really pay for a dummy verification.
    static DUMMY_VERIFICATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl PasswordFile {
    /// Builds the file from validated entries (in file order, which makes the dummy choice
    /// deterministic when two costs are equally common).
    pub(crate) fn from_entries(entries: Vec<(String, UserEntry)>) -> Self {
        let dummy = PasswordHash::dummy_for(entries.iter().map(|(_, entry)| &entry.hash));
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for credential in entries.iter().flat_map(|(_, entry)| &entry.scram) {
            *counts.entry(credential.iterations()).or_default() += 1;
        }
        let scram_fake_iterations = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(scram::MIN_ITERATIONS, |(iterations, _)| *iterations);
        PasswordFile {
            has_scram: !counts.is_empty(),
            users: entries.into_iter().collect(),
            dummy,
            scram_fake_iterations,
        }
    }

    /// Whether any user has SCRAM credentials.
    pub fn has_scram(&self) -> bool {
        self.has_scram
    }

    /// Starts a SCRAM exchange for the user named in `client_first`. Unknown users (and users
    /// without a credential for this mechanism) get the same kind of server-first message built
    /// from a fake credential, and fail at the proof check like a wrong password (trap 6).
    pub fn scram_start(
        &self,
        mechanism: Mechanism,
        client_first: ClientFirst,
    ) -> Result<ServerFirst, ScramError> {
        let credential = self
            .users
            .get(&client_first.username)
            .and_then(|entry| entry.scram.iter().find(|c| c.mechanism() == mechanism));
        ServerFirst::start(mechanism, client_first, credential, self.scram_fake_iterations)
    }

    /// The entry of a user whose SCRAM exchange succeeded (for groups, attributes, superuser).
    pub fn scram_entry(&self, username: &str) -> Option<&UserEntry> {
        self.users.get(username)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `username` has an entry. For admin/CLI use only: the CONNECT path must use
    /// [`verify`](Self::verify), which does not reveal existence.
    pub fn contains_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// Constant-time verification. For an unknown user, verifies against a dummy hash of the same
    /// algorithm family and cost as the file's most common entry (Argon2id OWASP defaults for an
    /// empty file), so unknown user and wrong password take similar time and return the same
    /// `None` (trap 6).
    ///
    /// An empty password is always refused, before any lookup: MQTT clients that send a username
    /// without a password must not match an entry that happens to hash the empty string, and
    /// because the refusal does not depend on the username it reveals nothing about who exists.
    ///
    /// The password is compared as raw bytes: MQTT passwords are binary data, not text.
    pub fn verify(&self, username: &str, password: &[u8]) -> Option<&UserEntry> {
        if password.is_empty() {
            return None;
        }
        match self.users.get(username) {
            Some(entry) => entry.hash.verify(password).then_some(entry),
            None => {
                #[cfg(test)]
                DUMMY_VERIFICATIONS.with(|count| count.set(count.get() + 1));
                // black_box: the result is unused, and the work must not be optimized away.
                std::hint::black_box(self.dummy.verify(std::hint::black_box(password)));
                None
            }
        }
    }

    /// The dummy's algorithm name, for a startup log line ("unknown users verified as …").
    pub fn dummy_algorithm(&self) -> &'static str {
        self.dummy.algorithm_name()
    }
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile").field("users", &self.users.len()).field("dummy", &self.dummy).finish()
    }
}
