//! [`PasswordHash`]: one stored credential in any supported format, parsed and bounded at load so
//! that verification never has to decide what a string means (and never "accepts anything" when it
//! cannot tell).

use std::collections::HashMap;
use std::fmt;

use super::bcrypt_hash::BcryptHash;
use super::emqx::{EmqxField, EmqxHash, EmqxSpec};
use super::mosquitto::MosquittoHash;
use super::phc::Argon2Hash;

/// A stored password hash. `Debug` prints only the algorithm, never salt or digest.
#[derive(Clone)]
pub(crate) enum PasswordHash {
    Argon2(Argon2Hash),
    Bcrypt(BcryptHash),
    Mosquitto(MosquittoHash),
    Emqx(EmqxHash),
}

impl PasswordHash {
    /// Parses a hash written as a string: Argon2 PHC, bcrypt or a Mosquitto `$6$`/`$7$` hash.
    /// The error never quotes the input.
    pub(crate) fn parse_str(s: &str) -> Result<Self, String> {
        if s.starts_with("$argon2") {
            Argon2Hash::parse(s).map(PasswordHash::Argon2)
        } else if s.starts_with("$2") {
            BcryptHash::parse(s).map(PasswordHash::Bcrypt)
        } else if s.starts_with("$6$") || s.starts_with("$7$") {
            MosquittoHash::parse(s).map(PasswordHash::Mosquitto)
        } else if s.is_empty() {
            Err("empty password hash".into())
        } else {
            Err("unknown password hash format (expected $argon2id$…, $2b$…, $7$…, $6$… or an EMQX mapping)"
                .into())
        }
    }

    /// Builds an EMQX-style hash from its mapping fields, reporting every bad field.
    pub(super) fn from_emqx(spec: &EmqxSpec) -> Result<Self, Vec<(EmqxField, String)>> {
        EmqxHash::from_spec(spec).map(PasswordHash::Emqx)
    }

    /// Constant-time in the candidate password: every byte of the recomputed digest is compared.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Argon2(h) => h.verify(password),
            PasswordHash::Bcrypt(h) => h.verify(password),
            PasswordHash::Mosquitto(h) => h.verify(password),
            PasswordHash::Emqx(h) => h.verify(password),
        }
    }

    /// A hash with the same algorithm and cost but unmatchable contents, verified for unknown
    /// users so that they cost as much as a wrong password for a typical entry (trap 6).
    pub(crate) fn dummy(&self) -> Self {
        match self {
            PasswordHash::Argon2(h) => PasswordHash::Argon2(h.dummy()),
            PasswordHash::Bcrypt(h) => PasswordHash::Bcrypt(h.dummy()),
            PasswordHash::Mosquitto(h) => PasswordHash::Mosquitto(h.dummy()),
            PasswordHash::Emqx(h) => PasswordHash::Emqx(h.dummy()),
        }
    }

    /// The dummy for a file with no entries: what `moat passwd` writes (Argon2id, OWASP costs).
    pub(crate) fn default_dummy() -> Self {
        PasswordHash::Argon2(Argon2Hash::default_dummy())
    }

    /// Algorithm plus cost parameters: two hashes with equal classes cost the same to verify.
    pub(crate) fn cost_class(&self) -> String {
        match self {
            PasswordHash::Argon2(h) => h.cost_class(),
            PasswordHash::Bcrypt(h) => h.cost_class(),
            PasswordHash::Mosquitto(h) => h.cost_class(),
            PasswordHash::Emqx(h) => h.cost_class(),
        }
    }

    /// A name safe to log.
    pub(crate) fn algorithm_name(&self) -> &'static str {
        match self {
            PasswordHash::Argon2(h) => h.algorithm_name(),
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::Mosquitto(h) => h.algorithm_name(),
            PasswordHash::Emqx(h) => h.algorithm_name(),
        }
    }

    /// The dummy imitating the most common cost class among `hashes` (ties: the class seen first,
    /// so the choice is deterministic), or the default when there are none.
    pub(crate) fn dummy_for<'a>(hashes: impl IntoIterator<Item = &'a PasswordHash>) -> Self {
        let mut counts: HashMap<String, (usize, usize, &PasswordHash)> = HashMap::new();
        for (index, hash) in hashes.into_iter().enumerate() {
            counts.entry(hash.cost_class()).or_insert((0, index, hash)).0 += 1;
        }
        counts
            .into_values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, _, hash)| hash.dummy())
            .unwrap_or_else(Self::default_dummy)
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({}, <redacted>)", self.algorithm_name())
    }
}
