//! bcrypt (`$2a$`, `$2b$`, `$2y$`).
//!
//! Parsed strictly at load (the `bcrypt` crate's own parser skips empty `$` fields and would accept
//! odd strings); verification recomputes with the stored salt and compares the 23 digest bytes in
//! constant time. Like every bcrypt implementation, only the first 72 bytes of a password count.

use base64::alphabet::BCRYPT;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// bcrypt's own minimum.
const MIN_COST: u32 = 4;
/// 2^16 rounds already take seconds; anything above turns each CONNECT into a DoS lever.
pub(super) const MAX_COST: u32 = 16;
const SALT_CHARS: usize = 22;
const HASH_CHARS: usize = 31;
const HASH_BYTES: usize = 23;

/// bcrypt's base64 alphabet, no padding. Trailing bits are tolerated because some generators leave
/// non-zero bits in the last salt character and bcrypt itself ignores them.
const B64: GeneralPurpose = GeneralPurpose::new(
    &BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// No `Debug`: holds the salt and digest.
#[derive(Clone)]
pub(super) struct BcryptHash {
    cost: u32,
    salt: [u8; 16],
    hash: [u8; HASH_BYTES],
}

impl BcryptHash {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        // `$2x$` marks hashes made by the sign-extension bug of crypt_blowfish: refuse, not guess.
        let rest = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .find_map(|prefix| s.strip_prefix(prefix))
            .ok_or_else(|| "unsupported bcrypt variant (expected $2a$, $2b$ or $2y$)".to_string())?;
        let (cost, body) = rest.split_once('$').ok_or_else(|| "malformed bcrypt hash".to_string())?;
        if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
            return Err("malformed bcrypt cost (expected two digits)".into());
        }
        let cost: u32 = cost.parse().map_err(|_| "malformed bcrypt cost".to_string())?;
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            return Err(format!("bcrypt cost {cost} out of range {MIN_COST}..={MAX_COST}"));
        }
        if body.len() != SALT_CHARS + HASH_CHARS || !body.is_ascii() {
            return Err("malformed bcrypt hash (wrong length)".into());
        }
        let (salt_text, hash_text) = body.split_at(SALT_CHARS);
        let salt: [u8; 16] = B64
            .decode(salt_text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| "bcrypt salt is not valid bcrypt-base64".to_string())?;
        let hash: [u8; HASH_BYTES] = B64
            .decode(hash_text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| "bcrypt hash is not valid bcrypt-base64".to_string())?;
        Ok(BcryptHash { cost, salt, hash })
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let Ok(parts) = bcrypt::hash_with_salt(password, self.cost, self.salt) else {
            return false;
        };
        let formatted = parts.format_for_version(bcrypt::Version::TwoB);
        // The formatted string ends with the 31-character digest.
        let digest = formatted
            .len()
            .checked_sub(HASH_CHARS)
            .and_then(|start| formatted.get(start..))
            .and_then(|text| B64.decode(text).ok());
        match digest {
            Some(digest) => bool::from(digest.as_slice().ct_eq(&self.hash)),
            None => false,
        }
    }

    pub(super) fn dummy(&self) -> Self {
        BcryptHash { cost: self.cost, salt: [0x5a; 16], hash: [0; HASH_BYTES] }
    }

    pub(super) fn cost_class(&self) -> String {
        format!("bcrypt:{}", self.cost)
    }
}
