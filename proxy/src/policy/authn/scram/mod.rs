//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) for MQTT 5 enhanced authentication, server
//! side, without channel binding (only the `n,,` GS2 header is accepted).
//!
//! Why the server side is cheap: moat stores StoredKey and ServerKey (never the password), so
//! checking a proof is two HMACs and one hash. The expensive PBKDF2 runs on the client. That is
//! why the exchange can run inline (connect phase and relay) without the blocking pool.
//!
//! Unknown users (trap 6): they get a salt derived from the username with a per-process secret
//! (HMAC), so asking twice gives the same salt as for a real user, and the same proof check runs
//! against a fake StoredKey; the result is discarded. Code path and work are the same as for a
//! wrong password.

mod credential;
mod exchange;
mod message;

#[cfg(test)]
mod tests;

pub use credential::{ScramCredential, MIN_ITERATIONS};
pub use exchange::{ScramError, ServerFirst};
pub use message::{parse_client_final, parse_client_first, ClientFinal, ClientFirst};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Upper bound on a client-first or client-final message: real ones are about 100–200 bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// A SCRAM mechanism moat offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// The mechanism named by an MQTT Authentication Method (case-sensitive, as registered).
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// The registered SASL name, used as the MQTT Authentication Method.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Output size of the hash: StoredKey, ServerKey and proofs have exactly this length.
    pub fn key_len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC accepts keys of any length: new_from_slice cannot fail.
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this HMAC, one block.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len()];
        match self {
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Mechanism::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }
}
