//! The server side of one exchange: client-first → server-first (kept as [`ServerFirst`]) →
//! client-final → server-final or failure.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::message::{ClientFinal, ClientFirst};
use super::{Mechanism, ScramCredential};

/// Random bytes in moat's part of the nonce (RFC 7677 needs the combined nonce unpredictable;
/// the task floor is 18).
const SERVER_NONCE_BYTES: usize = 24;

/// Why an exchange failed. The text is safe to log (no secrets, no client input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("nonce does not match")]
    NonceMismatch,
    /// Unknown user and wrong password: one variant, so they cannot be told apart.
    #[error("bad credentials")]
    BadCredentials,
    #[error("no random source")]
    Random,
}

impl ScramError {
    /// Metric/audit label.
    pub fn label(self) -> &'static str {
        match self {
            ScramError::Malformed(_) => "scram_malformed",
            ScramError::ChannelBinding => "scram_channel_binding",
            ScramError::NonceMismatch => "scram_nonce_mismatch",
            ScramError::BadCredentials => "bad_credentials",
            ScramError::Random => "scram_internal",
        }
    }
}

/// State between server-first and client-final. Holds keys: no `Debug`.
pub struct ServerFirst {
    credential: ScramCredential,
    /// Whether `credential` is the user's real one (false: the fake of an unknown user).
    known: bool,
    username: String,
    nonce: String,
    client_first_bare: String,
    message: String,
}

impl ServerFirst {
    /// Starts an exchange. `credential` is the user's, or `None` for an unknown user (or one
    /// without credentials for this mechanism), who gets a fake one with `fake_iterations`.
    pub fn start(
        mechanism: Mechanism,
        client_first: ClientFirst,
        credential: Option<&ScramCredential>,
        fake_iterations: u32,
    ) -> Result<Self, ScramError> {
        let mut random = [0u8; SERVER_NONCE_BYTES];
        getrandom::getrandom(&mut random).map_err(|_| ScramError::Random)?;
        let server_nonce = STANDARD.encode(random);
        Ok(Self::start_with_nonce(mechanism, client_first, credential, fake_iterations, &server_nonce))
    }

    pub(super) fn start_with_nonce(
        mechanism: Mechanism,
        client_first: ClientFirst,
        credential: Option<&ScramCredential>,
        fake_iterations: u32,
        server_nonce: &str,
    ) -> Self {
        let (credential, known) = match credential.filter(|c| c.mechanism == mechanism) {
            Some(c) => (c.clone(), true),
            None => (ScramCredential::fake(mechanism, &client_first.username, fake_iterations), false),
        };
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let message =
            format!("r={nonce},s={},i={}", STANDARD.encode(&credential.salt), credential.iterations);
        ServerFirst {
            credential,
            known,
            username: client_first.username,
            nonce,
            client_first_bare: client_first.bare,
            message,
        }
    }

    /// The server-first message to send as Authentication Data.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The username the client named.
    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn mechanism(&self) -> Mechanism {
        self.credential.mechanism
    }

    /// Checks the proof; on success returns the server-final message (`v=<signature>`).
    /// Known and unknown users run the same HMACs and comparisons.
    pub fn finish(self, client_final: &ClientFinal) -> Result<String, ScramError> {
        if client_final.nonce.as_bytes().ct_eq(self.nonce.as_bytes()).unwrap_u8() != 1 {
            return Err(ScramError::NonceMismatch);
        }
        let mechanism = self.credential.mechanism;
        if client_final.proof.len() != mechanism.key_len() {
            return Err(ScramError::Malformed("proof has the wrong length"));
        }
        let auth_message =
            format!("{},{},{}", self.client_first_bare, self.message, client_final.without_proof);
        let signature = mechanism.hmac(&self.credential.stored_key, &[auth_message.as_bytes()]);
        let client_key: Vec<u8> = client_final.proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches = mechanism.hash(&client_key).ct_eq(&self.credential.stored_key);
        let server_signature = mechanism.hmac(&self.credential.server_key, &[auth_message.as_bytes()]);
        if (matches & subtle::Choice::from(u8::from(self.known))).unwrap_u8() == 1 {
            Ok(format!("v={}", STANDARD.encode(server_signature)))
        } else {
            Err(ScramError::BadCredentials)
        }
    }
}
