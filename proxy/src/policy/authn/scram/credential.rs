//! Stored SCRAM credentials: `<iterations>:<base64 salt>:<base64 StoredKey>:<base64 ServerKey>`
//! (standard base64, padded), one per mechanism per user in the password file. The password
//! itself is never stored.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::Mechanism;

/// RFC 7677 asks for at least 4096 iterations; fewer is refused when the file is loaded.
pub const MIN_ITERATIONS: u32 = 4096;
/// The client pays this, not moat; the bound only keeps a typo from locking clients out.
const MAX_ITERATIONS: u32 = 10_000_000;
/// `moat passwd` writes 16 random bytes; shorter salts are refused.
const MIN_SALT_LEN: usize = 16;
const MAX_SALT_LEN: usize = 128;

/// One user's credential for one mechanism. No `Debug` output of the keys.
#[derive(Clone)]
pub struct ScramCredential {
    pub(super) mechanism: Mechanism,
    pub(super) iterations: u32,
    pub(super) salt: Vec<u8>,
    pub(super) stored_key: Vec<u8>,
    pub(super) server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScramCredential({}, i={}, <redacted>)", self.mechanism.name(), self.iterations)
    }
}

impl ScramCredential {
    /// Parses the stored form. Errors never quote the input.
    pub fn parse(mechanism: Mechanism, s: &str) -> Result<Self, String> {
        let mut fields = s.split(':');
        let (Some(iterations), Some(salt), Some(stored), Some(server), None) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("malformed SCRAM credential (expected iterations:salt:stored_key:server_key)".into());
        };
        let iterations: u32 =
            iterations.parse().map_err(|_| "malformed SCRAM iteration count".to_string())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "SCRAM iterations {iterations} out of range {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let salt = STANDARD.decode(salt).map_err(|_| "SCRAM salt is not valid base64".to_string())?;
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(format!("SCRAM salt must be {MIN_SALT_LEN} to {MAX_SALT_LEN} bytes"));
        }
        let key = |text: &str, name: &str| {
            let bytes = STANDARD.decode(text).map_err(|_| format!("SCRAM {name} is not valid base64"))?;
            if bytes.len() == mechanism.key_len() {
                Ok(bytes)
            } else {
                Err(format!("SCRAM {name} must be {} bytes for {}", mechanism.key_len(), mechanism.name()))
            }
        };
        Ok(ScramCredential {
            mechanism,
            iterations,
            salt,
            stored_key: key(stored, "stored_key")?,
            server_key: key(server, "server_key")?,
        })
    }

    /// Derives the credential from a password (for `moat passwd` and tests).
    pub fn derive(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        ScramCredential {
            mechanism,
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, &[b"Server Key"]),
        }
    }

    /// Derives with a fresh random 16-byte salt.
    pub fn generate(mechanism: Mechanism, password: &[u8], iterations: u32) -> Result<Self, String> {
        let mut salt = [0u8; MIN_SALT_LEN];
        getrandom::getrandom(&mut salt).map_err(|_| "no random source for the SCRAM salt".to_string())?;
        Ok(Self::derive(mechanism, password, &salt, iterations))
    }

    /// The stored form (inverse of [`parse`](Self::parse)).
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The stand-in for an unknown user: salt and keys are HMACs of the username under a secret
    /// drawn once per process, so repeated attempts see a stable salt (as for a real user) and
    /// the proof check does the same work. It can never verify: the caller ignores its result.
    pub fn fake(mechanism: Mechanism, username: &str, iterations: u32) -> Self {
        let secret = process_secret();
        let derive = |label: &[u8]| {
            mechanism.hmac(secret, &[label, mechanism.name().as_bytes(), b"\0", username.as_bytes()])
        };
        let mut salt = derive(b"salt");
        salt.truncate(MIN_SALT_LEN);
        ScramCredential {
            mechanism,
            iterations,
            salt,
            stored_key: derive(b"stored"),
            server_key: derive(b"server"),
        }
    }
}

/// 32 random bytes for the life of the process. If the OS had no randomness (it does on every
/// supported platform), a time-derived secret still keeps fake salts unguessable in practice.
fn process_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        if getrandom::getrandom(&mut secret).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            secret[..16].copy_from_slice(&nanos.to_le_bytes());
        }
        secret
    })
}
