//! Argon2 PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! The PHC string is parsed once at load into its parts so that a malformed entry is a load error
//! (never a silent "no user can log in"), and so that the parameters can be bounded: a file entry
//! with `m=4194304` would otherwise let one CONNECT allocate 4 GiB.

use argon2::password_hash::PasswordHash as Phc;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Upper bound on Argon2 memory (KiB). 256 MiB per verification is far above OWASP's 19 MiB
/// recommendation yet keeps a handful of concurrent CONNECTs from exhausting the host.
pub(super) const MAX_MEMORY_KIB: u32 = 262_144;
/// Upper bound on passes; above this one verification takes seconds and becomes a DoS lever.
pub(super) const MAX_TIME_COST: u32 = 16;
/// Upper bound on lanes (this build hashes lanes sequentially, so lanes cost time linearly).
pub(super) const MAX_LANES: u32 = 16;
/// Shorter outputs make a random password match more likely; 16 bytes is the floor for "never".
const MIN_OUTPUT_LEN: usize = 16;
const MAX_OUTPUT_LEN: usize = 64;
const MIN_SALT_LEN: usize = 8;
const MAX_SALT_LEN: usize = 64;

/// OWASP (2023) Argon2id parameters used for new hashes and for the default dummy.
pub(super) const DEFAULT_M: u32 = 19_456;
pub(super) const DEFAULT_T: u32 = 2;
pub(super) const DEFAULT_P: u32 = 1;
const NEW_SALT_LEN: usize = 16;
const NEW_OUTPUT_LEN: usize = 32;

/// A parsed Argon2 hash. No `Debug`: it holds the salt and digest; [`super::hash::PasswordHash`]
/// prints only the algorithm name.
#[derive(Clone)]
pub(super) struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Argon2Hash {
    /// Parses a PHC string. Error messages describe the problem, never the string itself.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let phc = Phc::new(s).map_err(|_| "malformed Argon2 PHC string".to_string())?;
        let algorithm = match phc.algorithm.as_str() {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => Algorithm::Argon2d,
            _ => return Err("unsupported PHC algorithm (expected argon2id, argon2i or argon2d)".into()),
        };
        // A missing `v=` means 0x10 to libargon2 but 0x13 to the RustCrypto crate; requiring it
        // removes the ambiguity instead of guessing.
        let version = match phc.version {
            Some(0x13) => Version::V0x13,
            Some(0x10) => Version::V0x10,
            Some(_) => return Err("unsupported Argon2 version (expected v=19 or v=16)".into()),
            None => return Err("Argon2 PHC string lacks its version (v=19)".into()),
        };
        let (mut m, mut t, mut p) = (None, None, None);
        for (name, value) in phc.params.iter() {
            let number = value.decimal().map_err(|_| format!("Argon2 parameter {name} is not a number"))?;
            match name.as_str() {
                "m" => m = Some(number),
                "t" => t = Some(number),
                "p" => p = Some(number),
                _ => return Err(format!("unsupported Argon2 parameter {name} (only m, t, p)")),
            }
        }
        let (Some(m), Some(t), Some(p)) = (m, t, p) else {
            return Err("Argon2 PHC string must set m, t and p".into());
        };
        if !(1..=MAX_TIME_COST).contains(&t) {
            return Err(format!("Argon2 t={t} out of range 1..={MAX_TIME_COST}"));
        }
        if !(1..=MAX_LANES).contains(&p) {
            return Err(format!("Argon2 p={p} out of range 1..={MAX_LANES}"));
        }
        if m < 8 * p || m > MAX_MEMORY_KIB {
            return Err(format!("Argon2 m={m} out of range {}..={MAX_MEMORY_KIB}", 8 * p));
        }
        let salt = phc.salt.ok_or_else(|| "Argon2 PHC string lacks a salt".to_string())?;
        let salt = STANDARD_NO_PAD
            .decode(salt.as_str())
            .map_err(|_| "Argon2 salt is not valid base64".to_string())?;
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(format!("Argon2 salt must be {MIN_SALT_LEN}..={MAX_SALT_LEN} bytes"));
        }
        let hash = phc.hash.ok_or_else(|| "Argon2 PHC string lacks a hash".to_string())?;
        let hash = hash.as_bytes().to_vec();
        if !(MIN_OUTPUT_LEN..=MAX_OUTPUT_LEN).contains(&hash.len()) {
            return Err(format!("Argon2 hash must be {MIN_OUTPUT_LEN}..={MAX_OUTPUT_LEN} bytes"));
        }
        let params =
            Params::new(m, t, p, Some(hash.len())).map_err(|_| "Argon2 parameters rejected".to_string())?;
        Ok(Argon2Hash { algorithm, version, params, salt, hash })
    }

    /// Recomputes the hash and compares in constant time.
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        let argon = Argon2::new(self.algorithm, self.version, self.params.clone());
        let computed = argon.hash_password_into(password, &self.salt, &mut out).is_ok();
        computed & bool::from(out.ct_eq(&self.hash))
    }

    /// Same cost, fixed salt and an all-zero digest: costs what a real entry costs and can never
    /// be matched in practice (and its result is ignored anyway).
    pub(super) fn dummy(&self) -> Self {
        Argon2Hash {
            algorithm: self.algorithm,
            version: self.version,
            params: self.params.clone(),
            salt: vec![0x5a; self.salt.len()],
            hash: vec![0; self.hash.len()],
        }
    }

    /// The dummy used when the file has no Argon2 entry to imitate: the parameters of
    /// [`hash_password`], which is what `moat passwd` writes.
    pub(super) fn default_dummy() -> Self {
        Argon2Hash {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: default_params(),
            salt: vec![0x5a; NEW_SALT_LEN],
            hash: vec![0; NEW_OUTPUT_LEN],
        }
    }

    /// Identifies what a verification costs, for picking the most common cost as the dummy.
    pub(super) fn cost_class(&self) -> String {
        format!(
            "{}:m={},t={},p={},len={}",
            self.algorithm.as_str(),
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost(),
            self.hash.len()
        )
    }

    pub(super) fn algorithm_name(&self) -> &'static str {
        self.algorithm.as_str()
    }
}

fn default_params() -> Params {
    // These constants are valid Argon2 parameters; the fallback only exists to avoid a panic path.
    Params::new(DEFAULT_M, DEFAULT_T, DEFAULT_P, Some(NEW_OUTPUT_LEN)).unwrap_or_default()
}

/// A fresh Argon2id PHC string with OWASP parameters (m=19456 KiB, t=2, p=1) and a random
/// 16-byte salt, for `moat passwd`. Fails only if the operating system's random number generator
/// fails: a salt that is not random would silently weaken the hash, so there is no fallback.
pub fn hash_password(password: &[u8]) -> Result<String, HashPasswordError> {
    let mut salt = [0u8; NEW_SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(|_| HashPasswordError::Random)?;
    let mut out = [0u8; NEW_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, default_params());
    argon.hash_password_into(password, &salt, &mut out).map_err(|_| HashPasswordError::Argon2)?;
    Ok(format!(
        "$argon2id$v=19$m={DEFAULT_M},t={DEFAULT_T},p={DEFAULT_P}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Why a new hash could not be made (never carries the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashPasswordError {
    #[error("the operating system's random number generator failed; cannot salt a hash")]
    Random,
    #[error("argon2 refused its parameters")]
    Argon2,
}
