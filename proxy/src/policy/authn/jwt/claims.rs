//! Claim checks beyond what `jsonwebtoken` validates: `iat` not in the future, required claims
//! with `${clientid}` / `${username}` / `${cert_cn}` placeholders, and the identity taken from
//! the token (`username_claim`, `clientid_claim`). Pure functions over the decoded claims, so they
//! are unit-tested without keys or sockets.

use serde_json::{Map, Value};

/// Longest claim value moat takes as a username or client id (MQTT strings are at most 65535).
const MAX_IDENTITY_CLAIM: usize = 65_535;

/// One piece of a required-claim template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    ClientId,
    Username,
    CertCn,
}

/// An expected claim value, such as `devices-${clientid}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; unknown or unterminated placeholders are an error (for the config message).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("unterminated placeholder in `{text}`"));
            };
            parts.push(match &after[..end] {
                "clientid" => Part::ClientId,
                "username" => Part::Username,
                "cert_cn" => Part::CertCn,
                other => {
                    return Err(format!(
                        "unknown placeholder `${{{other}}}` (use clientid, username or cert_cn)"
                    ))
                }
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn uses_username(&self) -> bool {
        self.parts.contains(&Part::Username)
    }

    /// The expected value for this client; `None` when a placeholder has no value (no username,
    /// no certificate), which never matches.
    fn expand(&self, who: &Presented<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::ClientId => out.push_str(who.client_id),
                Part::Username => out.push_str(who.username?),
                Part::CertCn => out.push_str(who.cert_cn?),
            }
        }
        Some(out)
    }
}

/// A claim that must be present and equal its template (for an array claim such as `aud`: one
/// element equal).
#[derive(Clone, Debug)]
pub struct RequiredClaim {
    pub name: String,
    pub expected: Template,
}

/// What the client presented in CONNECT (and its certificate), for placeholder expansion.
pub struct Presented<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub cert_cn: Option<&'a str>,
}

/// Why a token's claims are refused (metric and audit label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    IssuedInFuture,
    Mismatch,
    IdentityClaim,
}

impl ClaimError {
    pub fn label(self) -> &'static str {
        match self {
            ClaimError::IssuedInFuture => "token_iat_future",
            ClaimError::Mismatch => "claim_mismatch",
            ClaimError::IdentityClaim => "identity_claim_invalid",
        }
    }
}

/// `iat` (when present) must not lie further in the future than `leeway`; a non-numeric `iat`
/// is refused.
pub fn check_iat(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<(), ClaimError> {
    match claims.get("iat") {
        None => Ok(()),
        Some(v) => match v.as_f64() {
            Some(iat) if iat.is_finite() && iat <= now.saturating_add(leeway) as f64 => Ok(()),
            _ => Err(ClaimError::IssuedInFuture),
        },
    }
}

pub fn check_required(
    claims: &Map<String, Value>,
    required: &[RequiredClaim],
    who: &Presented<'_>,
) -> Result<(), ClaimError> {
    for r in required {
        let Some(expected) = r.expected.expand(who) else {
            return Err(ClaimError::Mismatch);
        };
        let ok = match claims.get(&r.name) {
            Some(Value::String(s)) => *s == expected,
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(expected.as_str())),
            Some(Value::Number(n)) => n.to_string() == expected,
            Some(Value::Bool(b)) => b.to_string() == expected,
            _ => false,
        };
        if !ok {
            return Err(ClaimError::Mismatch);
        }
    }
    Ok(())
}

/// The string value of an identity claim: present, a non-empty string of sane length.
pub fn identity_claim(claims: &Map<String, Value>, name: &str) -> Result<String, ClaimError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_IDENTITY_CLAIM && !s.contains('\0') => {
            Ok(s.clone())
        }
        _ => Err(ClaimError::IdentityClaim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    fn who<'a>(client_id: &'a str, username: Option<&'a str>) -> Presented<'a> {
        Presented { client_id, username, cert_cn: None }
    }

    fn req(name: &str, t: &str) -> RequiredClaim {
        RequiredClaim { name: name.into(), expected: Template::parse(t).expect("template") }
    }

    #[test]
    fn templates_parse_and_reject_unknown_placeholders() {
        assert!(Template::parse("${clientid}").is_ok());
        assert!(Template::parse("dev-${username}-x").expect("ok").uses_username());
        assert!(!Template::parse("plain").expect("ok").uses_username());
        assert!(Template::parse("${password}").unwrap_err().contains("unknown placeholder"));
        assert!(Template::parse("${clientid").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn placeholder_claims_must_match_the_connect() {
        let c = claims(serde_json::json!({"sub": "dev-1", "aud": ["a", "mqtt"], "tenant": 7}));
        let r = [req("sub", "${clientid}"), req("aud", "mqtt"), req("tenant", "7")];
        assert_eq!(check_required(&c, &r, &who("dev-1", None)), Ok(()));
        assert_eq!(check_required(&c, &r, &who("dev-2", None)), Err(ClaimError::Mismatch));
        // Missing claim, and a placeholder without a value (no username), never match.
        assert_eq!(check_required(&c, &[req("iss", "x")], &who("dev-1", None)), Err(ClaimError::Mismatch));
        assert_eq!(
            check_required(&c, &[req("sub", "${username}")], &who("dev-1", None)),
            Err(ClaimError::Mismatch)
        );
        assert_eq!(check_required(&c, &[req("sub", "${username}")], &who("x", Some("dev-1"))), Ok(()));
        // Mixed literal text, and an object claim never equals a string.
        let c2 = claims(serde_json::json!({"sub": "devices/dev-1", "obj": {"a": 1}}));
        assert_eq!(check_required(&c2, &[req("sub", "devices/${clientid}")], &who("dev-1", None)), Ok(()));
        assert_eq!(
            check_required(&c2, &[req("obj", "{\"a\":1}")], &who("dev-1", None)),
            Err(ClaimError::Mismatch)
        );
    }

    #[test]
    fn iat_in_the_future_beyond_leeway_is_refused() {
        assert_eq!(check_iat(&claims(serde_json::json!({})), 1000, 0), Ok(()));
        assert_eq!(check_iat(&claims(serde_json::json!({"iat": 1000})), 1000, 0), Ok(()));
        assert_eq!(check_iat(&claims(serde_json::json!({"iat": 1010})), 1000, 10), Ok(()));
        assert_eq!(
            check_iat(&claims(serde_json::json!({"iat": 1011})), 1000, 10),
            Err(ClaimError::IssuedInFuture)
        );
        assert_eq!(
            check_iat(&claims(serde_json::json!({"iat": "soon"})), 1000, 10),
            Err(ClaimError::IssuedInFuture)
        );
    }

    #[test]
    fn identity_claims_are_non_empty_strings() {
        let c = claims(serde_json::json!({"u": "alice", "e": "", "n": 5, "z": "a\u{0}b"}));
        assert_eq!(identity_claim(&c, "u"), Ok("alice".into()));
        for bad in ["e", "n", "z", "missing"] {
            assert_eq!(identity_claim(&c, bad), Err(ClaimError::IdentityClaim), "{bad}");
        }
    }
}
