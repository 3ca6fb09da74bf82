//! Mosquitto's `mosquitto_passwd` hashes: `$7$iterations$salt$hash` (PBKDF2-HMAC-SHA512, 64-byte
//! key) and the legacy `$6$salt$hash` (one SHA-512 over password then salt). Salt and hash are
//! standard base64 as OpenSSL writes it (padded; unpadded is accepted too).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Same bound as the EMQX PBKDF2 form: the contract's 1..=10_000_000.
pub(super) const MAX_ITERATIONS: u32 = 10_000_000;
const DIGEST_LEN: usize = 64;
const MAX_SALT_LEN: usize = 1024;

const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// No `Debug`: holds the salt and digest.
#[derive(Clone)]
pub(super) enum MosquittoHash {
    /// `$6$`: a single salted SHA-512. Weak (no stretching) but still found in old files.
    Sha512 { salt: Vec<u8>, hash: [u8; DIGEST_LEN] },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 { iterations: u32, salt: Vec<u8>, hash: [u8; DIGEST_LEN] },
}

impl MosquittoHash {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("$6$") {
            let (salt, hash) = rest.split_once('$').ok_or_else(|| "malformed $6$ hash".to_string())?;
            return Ok(MosquittoHash::Sha512 { salt: decode_salt(salt)?, hash: decode_digest(hash)? });
        }
        if let Some(rest) = s.strip_prefix("$7$") {
            let mut fields = rest.split('$');
            let (Some(iterations), Some(salt), Some(hash), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err("malformed $7$ hash (expected $7$iterations$salt$hash)".into());
            };
            let iterations: u32 =
                iterations.parse().map_err(|_| "malformed $7$ iteration count".to_string())?;
            if !(1..=MAX_ITERATIONS).contains(&iterations) {
                return Err(format!("$7$ iterations {iterations} out of range 1..={MAX_ITERATIONS}"));
            }
            return Ok(MosquittoHash::Pbkdf2Sha512 {
                iterations,
                salt: decode_salt(salt)?,
                hash: decode_digest(hash)?,
            });
        }
        Err("unsupported Mosquitto hash (expected $6$ or $7$)".into())
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut out = [0u8; DIGEST_LEN];
        let expected = match self {
            MosquittoHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                out.copy_from_slice(&digest.finalize());
                hash
            }
            MosquittoHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                hash
            }
        };
        bool::from(out.ct_eq(expected))
    }

    pub(super) fn dummy(&self) -> Self {
        match self {
            MosquittoHash::Sha512 { salt, .. } => {
                MosquittoHash::Sha512 { salt: vec![0x5a; salt.len()], hash: [0; DIGEST_LEN] }
            }
            MosquittoHash::Pbkdf2Sha512 { iterations, salt, .. } => MosquittoHash::Pbkdf2Sha512 {
                iterations: *iterations,
                salt: vec![0x5a; salt.len()],
                hash: [0; DIGEST_LEN],
            },
        }
    }

    pub(super) fn cost_class(&self) -> String {
        match self {
            MosquittoHash::Sha512 { .. } => "mosquitto-sha512".into(),
            MosquittoHash::Pbkdf2Sha512 { iterations, .. } => format!("mosquitto-pbkdf2:{iterations}"),
        }
    }

    pub(super) fn algorithm_name(&self) -> &'static str {
        match self {
            MosquittoHash::Sha512 { .. } => "mosquitto-sha512",
            MosquittoHash::Pbkdf2Sha512 { .. } => "mosquitto-pbkdf2-sha512",
        }
    }
}

fn decode_salt(text: &str) -> Result<Vec<u8>, String> {
    let salt = B64.decode(text).map_err(|_| "Mosquitto salt is not valid base64".to_string())?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(format!("Mosquitto salt must be 1..={MAX_SALT_LEN} bytes"));
    }
    Ok(salt)
}

fn decode_digest(text: &str) -> Result<[u8; DIGEST_LEN], String> {
    B64.decode(text)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| "Mosquitto hash is not 64 bytes of valid base64".to_string())
}
