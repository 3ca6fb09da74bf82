//! Verification keys and which algorithm each may verify. The algorithm is never taken from the
//! token alone: it must be configured (`algorithms`), belong to the key's family (an HS token is
//! never checked against an RSA public key used as an HMAC secret) and, for a JWK that names one,
//! equal the key's own `alg`.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Most keys taken from one JWKS: a token without `kid` is tried against each matching key.
pub const MAX_JWKS_KEYS: usize = 64;
/// Largest JWKS document accepted, from a file or over HTTP.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One usable key.
pub struct Key {
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it names one.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// A set of keys (one for a secret or PEM, several for a JWKS).
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    pub fn single(key: DecodingKey) -> KeySet {
        KeySet { keys: vec![Key { kid: None, alg: None, key }] }
    }

    /// Keys that may verify a token with this header: by `kid` when the token names one (and the
    /// set has kids), else every key of the right family.
    pub fn candidates<'a>(&'a self, alg: Algorithm, kid: Option<&'a str>) -> impl Iterator<Item = &'a Key> {
        self.keys.iter().filter(move |k| {
            let kid_ok = match (kid, k.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                // A token without kid, or a key without one: family and alg decide.
                _ => true,
            };
            kid_ok && k.accepts(alg)
        })
    }

    /// True when the token names a kid that no key has (a rotation moat has not seen yet).
    pub fn unknown_kid(&self, kid: Option<&str>) -> bool {
        kid.is_some_and(|want| self.keys.iter().all(|k| k.kid.as_deref().is_some_and(|h| h != want)))
    }
}

/// Parses a JWKS document. Symmetric (`oct`) keys, encryption keys and unsupported key types are
/// skipped; a document without one usable signature key is an error.
pub fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in set.keys.iter().take(MAX_JWKS_KEYS) {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_)) {
            continue;
        }
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            Some(ka) => match Algorithm::from_str(&ka.to_string()) {
                Ok(a) => Some(a),
                Err(_) => continue,
            },
            None => None,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let k = Key { kid: jwk.common.key_id.clone(), alg, key };
        if let Some(a) = k.alg {
            if !k.accepts(a) {
                continue;
            }
        }
        keys.push(k);
    }
    if keys.is_empty() {
        return Err("JWKS has no usable signature key (RSA, EC or OKP)".into());
    }
    Ok(KeySet { keys })
}

/// Parses an algorithm name as written in the config.
pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    Algorithm::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn jwks_skips_symmetric_keys_and_needs_one_usable_key() {
        let only_oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(parse_jwks(only_oct).is_err());
        let doc = format!(r#"{{"keys":[{{"kty":"oct","k":"c2VjcmV0","kid":"h"}},{EC_JWK}]}}"#);
        let set = parse_jwks(doc.as_bytes()).expect("jwks");
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.candidates(Algorithm::ES256, Some("ec1")).count(), 1);
        // alg pinned by the JWK, family by the key type, kid by the token.
        assert_eq!(set.candidates(Algorithm::ES384, Some("ec1")).count(), 0);
        assert_eq!(set.candidates(Algorithm::HS256, None).count(), 0);
        assert_eq!(set.candidates(Algorithm::ES256, Some("other")).count(), 0);
        assert!(set.unknown_kid(Some("other")));
        assert!(!set.unknown_kid(Some("ec1")));
        assert!(!set.unknown_kid(None));
        assert!(parse_jwks(b"not json").is_err());
    }
}
