//! JWT authentication (`type: jwt`): the token comes from the CONNECT password (or username),
//! is verified with an HMAC secret, a public key or a JWKS, and its claims are checked: `exp`
//! (required), `nbf`, `iat` with leeway, required claims with placeholders. The identity can be
//! taken from the token (`username_claim`, `clientid_claim`, trap 5), an `acl` claim can carry
//! the client's rules, and the session can be closed when the token expires.
//!
//! A credential that is not shaped like a JWT is ignored (the next authenticator decides); one
//! that is shaped like a JWT is decided here, so an `alg: none` or forged token is refused, never
//! passed on.

mod claims;
pub mod jwks;
pub mod keys;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use claims::{check_iat, check_required, identity_claim, Presented};
pub use claims::{RequiredClaim, Template};
use jwks::RemoteJwks;
use keys::KeySet;

use super::{Credentials, Outcome};
use crate::codec::ReasonCode;
use crate::policy::acl::parse_rules_json;
use crate::policy::Identity;

/// Longest token accepted; a longer credential is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most rules one `acl` claim may carry (each is compiled per connection).
pub const MAX_CLAIM_RULES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFrom {
    Password,
    Username,
}

/// Where the verification keys come from.
pub enum KeySource {
    /// An HMAC secret or a PEM public key (or a JWKS file), loaded at config time.
    Static(Arc<KeySet>),
    Remote(Arc<RemoteJwks>),
}

pub struct JwtSettings {
    pub token_from: TokenFrom,
    /// The only algorithms accepted, whatever the token header says.
    pub algorithms: Vec<Algorithm>,
    pub keys: KeySource,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: u64,
    pub required: Vec<RequiredClaim>,
    pub username_claim: Option<String>,
    pub clientid_claim: Option<String>,
    pub acl_claim: Option<String>,
    pub disconnect_on_expiry: bool,
}

pub struct JwtAuthenticator {
    s: JwtSettings,
    /// A required claim binds `${username}`: the CONNECT username is then verified.
    binds_username: bool,
}

fn deny(label: &'static str) -> Outcome {
    Outcome::Deny(ReasonCode::BadUserNameOrPassword, label)
}

/// Three dot-separated base64url segments (the last, the signature, may be empty: `alg: none`).
fn looks_like_jwt(t: &[u8]) -> bool {
    let b64 = |s: &[u8]| s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    let mut parts = t.split(|b| *b == b'.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => !h.is_empty() && !p.is_empty() && b64(h) && b64(p) && b64(s),
        _ => false,
    }
}

impl JwtAuthenticator {
    pub fn new(s: JwtSettings) -> Self {
        let binds_username = s.required.iter().any(|r| r.expected.uses_username());
        Self { s, binds_username }
    }

    pub fn carries_rules(&self) -> bool {
        self.s.acl_claim.is_some()
    }

    /// Starts the JWKS refresher, if any (idempotent).
    pub fn start(&self) {
        if let KeySource::Remote(r) = &self.s.keys {
            r.start();
        }
    }

    pub(super) async fn check(&self, creds: &Credentials) -> Outcome {
        let token: &[u8] = match self.s.token_from {
            TokenFrom::Password => creds.password.as_deref().unwrap_or_default(),
            TokenFrom::Username => creds.username.as_deref().unwrap_or_default().as_bytes(),
        };
        if token.is_empty() || (token.len() <= MAX_TOKEN_BYTES && !looks_like_jwt(token)) {
            return Outcome::Ignore;
        }
        if token.len() > MAX_TOKEN_BYTES {
            return deny("token_too_large");
        }
        let Ok(token) = std::str::from_utf8(token) else {
            return deny("token_invalid");
        };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return deny("token_invalid");
        };
        // Pinned: the header may only choose among the configured algorithms.
        if !self.s.algorithms.contains(&header.alg) {
            return deny("alg_not_allowed");
        }
        let kid = header.kid.as_deref();
        // One deadline for all network waits of this CONNECT (`jwks_timeout`).
        let keys = match &self.s.keys {
            KeySource::Static(k) => Some(k.clone()),
            KeySource::Remote(r) => {
                let deadline = r.deadline();
                let mut keys = r.keys(deadline).await;
                if keys.as_ref().is_some_and(|k| k.unknown_kid(kid)) {
                    keys = r.refreshed(deadline).await;
                }
                keys
            }
        };
        let Some(keys) = keys else {
            return Outcome::Deny(ReasonCode::NotAuthorized, "no_keys");
        };
        let claims = match self.verify(token, header.alg, kid, &keys) {
            Ok(c) => c,
            Err(label) => return deny(label),
        };
        self.identity(creds, &claims)
    }

    fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        keys: &KeySet,
    ) -> Result<Map<String, Value>, &'static str> {
        let mut v = Validation::new(alg);
        v.leeway = self.s.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        // `aud` and `iss` are checked as required claims (with placeholders), not here.
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let mut label = "no_matching_key";
        for key in keys.candidates(alg, kid) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    label = match e.kind() {
                        K::InvalidSignature => "bad_signature",
                        K::ExpiredSignature => return Err("token_expired"),
                        K::ImmatureSignature => return Err("token_not_yet_valid"),
                        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => return Err("claim_invalid"),
                        K::InvalidAlgorithm => "alg_not_allowed",
                        _ => "token_invalid",
                    };
                }
            }
        }
        Err(label)
    }

    fn identity(&self, creds: &Credentials, claims: &Map<String, Value>) -> Outcome {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Err(e) = check_iat(claims, now, self.s.leeway) {
            return deny(e.label());
        }
        let cert_cn = creds.cert.as_ref().and_then(|c| c.cn.clone());
        let connect_username = match self.s.token_from {
            TokenFrom::Password => creds.username.as_deref(),
            TokenFrom::Username => None,
        };
        let presented = Presented {
            client_id: &creds.client_id,
            username: connect_username,
            cert_cn: cert_cn.as_deref(),
        };
        if let Err(e) = check_required(claims, &self.s.required, &presented) {
            return deny(e.label());
        }
        // Trap 5: the identity is what the token says, or what a required claim bound; a
        // username the token does not vouch for is not an identity.
        let username = match &self.s.username_claim {
            Some(name) => match identity_claim(claims, name) {
                Ok(u) => Some(u),
                Err(e) => return deny(e.label()),
            },
            None if self.binds_username => connect_username.map(str::to_string),
            None => None,
        };
        let client_id = match &self.s.clientid_claim {
            Some(name) => match identity_claim(claims, name) {
                Ok(c) => c,
                Err(e) => return deny(e.label()),
            },
            None => creds.client_id.clone(),
        };
        let acl_rules = match self.s.acl_claim.as_deref().and_then(|name| claims.get(name)) {
            None => Arc::from(Vec::new()),
            Some(v) => match v.as_array() {
                Some(a) if a.len() > MAX_CLAIM_RULES => {
                    return Outcome::Deny(ReasonCode::NotAuthorized, "acl_claim_invalid")
                }
                _ => match parse_rules_json(v) {
                    Ok(rules) => Arc::from(rules),
                    Err(_) => return Outcome::Deny(ReasonCode::NotAuthorized, "acl_claim_invalid"),
                },
            },
        };
        let expires_at = if self.s.disconnect_on_expiry {
            claims
                .get("exp")
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)))
                .map(|exp| UNIX_EPOCH + Duration::from_secs(exp.saturating_add(self.s.leeway)))
        } else {
            None
        };
        Outcome::Allow(Identity {
            username,
            client_id,
            cert_cn,
            acl_rules,
            expires_at,
            ..Identity::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"unit-test-secret-0123456789abcdefghijkl";

    fn auth(extra: impl FnOnce(&mut JwtSettings)) -> JwtAuthenticator {
        let mut s = JwtSettings {
            token_from: TokenFrom::Password,
            algorithms: vec![Algorithm::HS256],
            keys: KeySource::Static(Arc::new(KeySet::single(jsonwebtoken::DecodingKey::from_secret(SECRET)))),
            leeway: 5,
            required: Vec::new(),
            username_claim: None,
            clientid_claim: None,
            acl_claim: None,
            disconnect_on_expiry: false,
        };
        extra(&mut s);
        JwtAuthenticator::new(s)
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    fn token(alg: Algorithm, claims: Value) -> Vec<u8> {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(SECRET))
            .expect("sign")
            .into_bytes()
    }

    fn creds(username: Option<&str>, password: Option<Vec<u8>>) -> Credentials {
        Credentials {
            client_id: "dev-1".into(),
            username: username.map(str::to_string),
            password,
            cert: None,
            peer: None,
        }
    }

    fn run(a: &JwtAuthenticator, c: &Credentials) -> Outcome {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt").block_on(a.check(c))
    }

    fn label(o: &Outcome) -> &'static str {
        match o {
            Outcome::Allow(_) => "allow",
            Outcome::Ignore => "ignore",
            Outcome::Deny(_, l) => l,
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(b"eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt(b"eyJh.eyJz."), "alg none tokens are decided, not ignored");
        assert!(!looks_like_jwt(b"password"));
        assert!(!looks_like_jwt(b"a.b"));
        assert!(!looks_like_jwt(b"a.b.c.d"));
        assert!(!looks_like_jwt(b".b.c"));
        assert!(!looks_like_jwt(b"a b.c.d"));
    }

    #[test]
    fn credentials_that_are_not_tokens_pass_and_oversized_ones_are_refused() {
        let a = auth(|_| {});
        assert_eq!(label(&run(&a, &creds(Some("u"), None))), "ignore");
        assert_eq!(label(&run(&a, &creds(Some("u"), Some(b"hunter2".to_vec())))), "ignore");
        let mut big = b"eyJh.".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_TOKEN_BYTES));
        big.extend(b".sig");
        assert_eq!(label(&run(&a, &creds(None, Some(big)))), "token_too_large");
    }

    #[test]
    fn only_configured_algorithms_verify() {
        let a = auth(|_| {});
        let exp = now() + 60;
        let hs256 = token(Algorithm::HS256, serde_json::json!({"exp": exp}));
        let hs512 = token(Algorithm::HS512, serde_json::json!({"exp": exp}));
        assert_eq!(label(&run(&a, &creds(None, Some(hs256)))), "allow");
        assert_eq!(label(&run(&a, &creds(None, Some(hs512)))), "alg_not_allowed");
    }

    #[test]
    fn identity_binding_and_expiry_deadline() {
        let a = auth(|s| {
            s.required = vec![RequiredClaim {
                name: "sub".into(),
                expected: Template::parse("${username}").expect("t"),
            }];
            s.disconnect_on_expiry = true;
        });
        let exp = now() + 60;
        let t = token(Algorithm::HS256, serde_json::json!({"sub": "alice", "exp": exp}));
        match run(&a, &creds(Some("alice"), Some(t.clone()))) {
            Outcome::Allow(id) => {
                // The username is verified by the bound claim; the deadline includes the leeway.
                assert_eq!(id.username.as_deref(), Some("alice"));
                assert_eq!(id.expires_at, Some(UNIX_EPOCH + Duration::from_secs(exp + 5)));
            }
            other => panic!("expected allow, got {}", label(&other)),
        }
        assert_eq!(label(&run(&a, &creds(Some("bob"), Some(t)))), "claim_mismatch");
        // Without a binding, a claimed username is not an identity (trap 5).
        let unbound = auth(|_| {});
        let t = token(Algorithm::HS256, serde_json::json!({"exp": exp}));
        match run(&unbound, &creds(Some("mallory"), Some(t))) {
            Outcome::Allow(id) => assert_eq!(id.username, None),
            other => panic!("expected allow, got {}", label(&other)),
        }
    }
}
