//! EMQX built-in database hash formats, written in the password file as a mapping:
//! `{algorithm: pbkdf2, mac_fun: sha256, iterations: 4096, salt: "s", hash: "<hex>", dk_length: 32}`
//! or `{algorithm: sha256, salt: "s", salt_position: prefix, hash: "<hex>"}`.
//!
//! The salt is used as its raw UTF-8 bytes and the hash is hex, as EMQX exports them. Only the
//! salted SHA-2 and PBKDF2-SHA2 forms are supported: EMQX's unsalted, MD5 and SHA-1 forms are
//! refused at load rather than carried along as weak credentials.

use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::mosquitto::MAX_ITERATIONS;

/// A derived key shorter than this would let random passwords match with non-negligible odds.
const MIN_DK_LEN: u64 = 16;
/// Twice SHA-512's output; PBKDF2 cost grows per output block, so bound it.
const MAX_DK_LEN: u64 = 128;

/// Which key of the mapping a problem belongs to, so the loader can name it with its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum EmqxField {
    Algorithm,
    MacFun,
    Iterations,
    Salt,
    SaltPosition,
    Hash,
    DkLength,
}

impl EmqxField {
    pub(super) fn key(self) -> &'static str {
        match self {
            EmqxField::Algorithm => "algorithm",
            EmqxField::MacFun => "mac_fun",
            EmqxField::Iterations => "iterations",
            EmqxField::Salt => "salt",
            EmqxField::SaltPosition => "salt_position",
            EmqxField::Hash => "hash",
            EmqxField::DkLength => "dk_length",
        }
    }
}

/// The mapping's values as read from the file, before validation.
#[derive(Default)]
pub(super) struct EmqxSpec {
    pub algorithm: Option<String>,
    pub mac_fun: Option<String>,
    pub iterations: Option<u64>,
    pub salt: Option<String>,
    pub salt_position: Option<String>,
    pub hash: Option<String>,
    pub dk_length: Option<u64>,
}

#[derive(Clone, Copy)]
pub(super) enum Sha {
    Sha256,
    Sha512,
}

impl Sha {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Sha::Sha256),
            "sha512" => Some(Sha::Sha512),
            _ => None,
        }
    }

    fn output_len(self) -> usize {
        match self {
            Sha::Sha256 => 32,
            Sha::Sha512 => 64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sha::Sha256 => "sha256",
            Sha::Sha512 => "sha512",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SaltPosition {
    Prefix,
    Suffix,
}

/// No `Debug`: holds the salt and digest.
#[derive(Clone)]
pub(super) enum EmqxHash {
    Pbkdf2 { mac: Sha, iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    Salted { sha: Sha, position: SaltPosition, salt: Vec<u8>, hash: Vec<u8> },
}

type Problems = Vec<(EmqxField, String)>;

impl EmqxHash {
    /// Validates every field and reports all problems, each tied to its key.
    pub(super) fn from_spec(spec: &EmqxSpec) -> Result<Self, Problems> {
        let mut problems = Problems::new();
        let result = match spec.algorithm.as_deref() {
            None => {
                problems.push((EmqxField::Algorithm, "missing (pbkdf2, sha256 or sha512)".into()));
                None
            }
            Some("pbkdf2") => pbkdf2(spec, &mut problems),
            Some(name) => match Sha::parse(name) {
                Some(sha) => salted(sha, spec, &mut problems),
                None => {
                    problems.push((
                        EmqxField::Algorithm,
                        format!("unsupported algorithm {name:?} (pbkdf2, sha256 or sha512)"),
                    ));
                    None
                }
            },
        };
        match result {
            Some(hash) if problems.is_empty() => Ok(hash),
            _ => Err(problems),
        }
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        match self {
            EmqxHash::Pbkdf2 { mac, iterations, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                match mac {
                    Sha::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *iterations, &mut out),
                    Sha::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out),
                }
                bool::from(out.ct_eq(hash))
            }
            EmqxHash::Salted { sha, position, salt, hash } => {
                let (first, second): (&[u8], &[u8]) = match position {
                    SaltPosition::Prefix => (salt, password),
                    SaltPosition::Suffix => (password, salt),
                };
                let out = match sha {
                    Sha::Sha256 => Sha256::new().chain_update(first).chain_update(second).finalize().to_vec(),
                    Sha::Sha512 => Sha512::new().chain_update(first).chain_update(second).finalize().to_vec(),
                };
                bool::from(out.ct_eq(hash))
            }
        }
    }

    pub(super) fn dummy(&self) -> Self {
        match self {
            EmqxHash::Pbkdf2 { mac, iterations, salt, hash } => EmqxHash::Pbkdf2 {
                mac: *mac,
                iterations: *iterations,
                salt: vec![0x5a; salt.len()],
                hash: vec![0; hash.len()],
            },
            EmqxHash::Salted { sha, position, salt, hash } => EmqxHash::Salted {
                sha: *sha,
                position: *position,
                salt: vec![0x5a; salt.len()],
                hash: vec![0; hash.len()],
            },
        }
    }

    pub(super) fn cost_class(&self) -> String {
        match self {
            EmqxHash::Pbkdf2 { mac, iterations, hash, .. } => {
                format!("emqx-pbkdf2:{}:{iterations}:{}", mac.name(), hash.len())
            }
            EmqxHash::Salted { sha, .. } => format!("emqx-salted:{}", sha.name()),
        }
    }

    pub(super) fn algorithm_name(&self) -> &'static str {
        match self {
            EmqxHash::Pbkdf2 { mac: Sha::Sha256, .. } => "emqx-pbkdf2-sha256",
            EmqxHash::Pbkdf2 { mac: Sha::Sha512, .. } => "emqx-pbkdf2-sha512",
            EmqxHash::Salted { sha: Sha::Sha256, .. } => "emqx-sha256",
            EmqxHash::Salted { sha: Sha::Sha512, .. } => "emqx-sha512",
        }
    }
}

fn pbkdf2(spec: &EmqxSpec, problems: &mut Problems) -> Option<EmqxHash> {
    if spec.salt_position.is_some() {
        problems.push((EmqxField::SaltPosition, "not used by algorithm pbkdf2".into()));
    }
    let mac = match spec.mac_fun.as_deref() {
        None => {
            problems.push((EmqxField::MacFun, "missing (sha256 or sha512)".into()));
            None
        }
        Some(name) => {
            let mac = Sha::parse(name);
            if mac.is_none() {
                problems
                    .push((EmqxField::MacFun, format!("unsupported mac_fun {name:?} (sha256 or sha512)")));
            }
            mac
        }
    };
    let iterations = match spec.iterations {
        None => {
            problems.push((EmqxField::Iterations, "missing".into()));
            None
        }
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => Some(n),
            _ => {
                problems.push((EmqxField::Iterations, format!("{n} out of range 1..={MAX_ITERATIONS}")));
                None
            }
        },
    };
    let salt = salt(spec, problems);
    let hash = hex_hash(spec, problems);
    if let Some(dk) = spec.dk_length {
        if !(MIN_DK_LEN..=MAX_DK_LEN).contains(&dk) {
            problems.push((EmqxField::DkLength, format!("{dk} out of range {MIN_DK_LEN}..={MAX_DK_LEN}")));
        }
    }
    let (mac, iterations, salt, hash) = (mac?, iterations?, salt?, hash?);
    // EMQX derives `dk_length` bytes, or the MAC's output length when unset: the hex must match.
    let expected = spec.dk_length.unwrap_or(mac.output_len() as u64);
    if hash.len() as u64 != expected {
        problems
            .push((EmqxField::Hash, format!("decodes to {} bytes but dk_length is {expected}", hash.len())));
        return None;
    }
    Some(EmqxHash::Pbkdf2 { mac, iterations, salt, hash })
}

fn salted(sha: Sha, spec: &EmqxSpec, problems: &mut Problems) -> Option<EmqxHash> {
    for (present, field) in [
        (spec.mac_fun.is_some(), EmqxField::MacFun),
        (spec.iterations.is_some(), EmqxField::Iterations),
        (spec.dk_length.is_some(), EmqxField::DkLength),
    ] {
        if present {
            problems.push((field, format!("not used by algorithm {}", sha.name())));
        }
    }
    let position = match spec.salt_position.as_deref() {
        Some("prefix") => Some(SaltPosition::Prefix),
        Some("suffix") => Some(SaltPosition::Suffix),
        Some(other) => {
            problems.push((
                EmqxField::SaltPosition,
                format!("unsupported salt_position {other:?} (prefix or suffix)"),
            ));
            None
        }
        None => {
            problems.push((EmqxField::SaltPosition, "missing (prefix or suffix)".into()));
            None
        }
    };
    let salt = salt(spec, problems);
    let hash = hex_hash(spec, problems);
    let (position, salt, hash) = (position?, salt?, hash?);
    if hash.len() != sha.output_len() {
        problems
            .push((EmqxField::Hash, format!("must be {} hex bytes for {}", sha.output_len(), sha.name())));
        return None;
    }
    Some(EmqxHash::Salted { sha, position, salt, hash })
}

fn salt(spec: &EmqxSpec, problems: &mut Problems) -> Option<Vec<u8>> {
    match spec.salt.as_deref() {
        None => {
            problems.push((EmqxField::Salt, "missing".into()));
            None
        }
        // An empty salt turns the salted forms into plain SHA-2: refused like unsalted hashes.
        Some("") => {
            problems.push((EmqxField::Salt, "must not be empty".into()));
            None
        }
        Some(salt) => Some(salt.as_bytes().to_vec()),
    }
}

fn hex_hash(spec: &EmqxSpec, problems: &mut Problems) -> Option<Vec<u8>> {
    match spec.hash.as_deref() {
        None => {
            problems.push((EmqxField::Hash, "missing".into()));
            None
        }
        Some(text) => match hex::decode(text) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                problems.push((EmqxField::Hash, "not valid hex".into()));
                None
            }
        },
    }
}
