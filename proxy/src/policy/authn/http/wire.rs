//! The JSON exchanged with the HTTP auth backend.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::policy::acl::{parse_rules_json, Rule};
use crate::policy::authn::Credentials;

/// Most ACL rules one answer may carry (each is compiled per connection).
const MAX_RULES: usize = 256;
const MAX_USERNAME: usize = 65_535;

/// What moat tells the backend. Field names follow EMQX's placeholders.
#[derive(Serialize)]
pub struct Request<'a> {
    pub clientid: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub peerhost: Option<String>,
    pub peerport: Option<u16>,
    pub listener: Option<&'a str>,
    pub cert_common_name: Option<&'a str>,
    /// SHA-256 of the client certificate (DER), lower-case hex.
    pub cert_fingerprint: Option<String>,
}

/// Hand-written so the password can never reach a log through `{:?}`.
impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("clientid", &self.clientid).field("password", &"<redacted>").finish()
    }
}

impl<'a> Request<'a> {
    /// `Err` when the password is not UTF-8.
    pub fn from_credentials(c: &'a Credentials) -> Result<Self, ()> {
        let password = match c.password.as_deref() {
            Some(p) => Some(std::str::from_utf8(p).map_err(|_| ())?),
            None => None,
        };
        let peer = c.peer.as_ref();
        let leaf = peer.and_then(|p| p.client_certs.as_ref()).and_then(|certs| certs.first());
        Ok(Request {
            clientid: &c.client_id,
            username: c.username.as_deref(),
            password,
            peerhost: peer.map(|p| p.peer.ip().to_string()),
            peerport: peer.map(|p| p.peer.port()),
            listener: peer.map(|p| &*p.listener),
            cert_common_name: c.cert.as_ref().and_then(|x| x.cn.as_deref()),
            cert_fingerprint: leaf.map(|der| hex::encode(Sha256::digest(der.as_ref()))),
        })
    }
}

/// The backend's decision, as cached.
#[derive(Clone, Debug)]
pub enum Answer {
    Allow {
        superuser: bool,
        username: Option<String>,
        rules: Arc<[Rule]>,
    },
    Deny,
    Ignore,
    /// `allow` with rules that do not parse: the client is refused (never allowed unrestricted).
    InvalidRules,
}

impl Answer {
    /// Parses a 2xx body; anything but the documented shape is an error (a backend failure).
    pub fn parse(body: &[u8]) -> Result<Answer, String> {
        let v: Value = serde_json::from_slice(body).map_err(|_| "response is not JSON".to_string())?;
        let obj = v.as_object().ok_or("response is not a JSON object")?;
        match obj.get("result").and_then(Value::as_str) {
            Some("deny") => return Ok(Answer::Deny),
            Some("ignore") => return Ok(Answer::Ignore),
            Some("allow") => {}
            _ => return Err("response has no result allow, deny or ignore".into()),
        }
        let superuser = match obj.get("is_superuser") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("is_superuser is not a boolean".into()),
        };
        let username = match obj.get("username") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_USERNAME && !s.contains('\0') => {
                Some(s.clone())
            }
            Some(_) => return Err("username is not a non-empty string".into()),
        };
        let rules: Arc<[Rule]> = match obj.get("acl") {
            None | Some(Value::Null) => Arc::from(Vec::new()),
            Some(v) if v.as_array().is_some_and(|a| a.len() <= MAX_RULES) => match parse_rules_json(v) {
                Ok(r) => Arc::from(r),
                Err(_) => return Ok(Answer::InvalidRules),
            },
            Some(_) => return Ok(Answer::InvalidRules),
        };
        Ok(Answer::Allow { superuser, username, rules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_emqx_shape_and_anything_else_is_a_failure() {
        assert!(matches!(Answer::parse(br#"{"result":"deny"}"#), Ok(Answer::Deny)));
        assert!(matches!(Answer::parse(br#"{"result":"ignore"}"#), Ok(Answer::Ignore)));
        match Answer::parse(br#"{"result":"allow","is_superuser":true,"username":"u","extra":1}"#) {
            Ok(Answer::Allow { superuser: true, username: Some(u), rules }) => {
                assert_eq!(u, "u");
                assert!(rules.is_empty());
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            &b"garbage"[..],
            b"[]",
            br#"{"result":"yes"}"#,
            br#"{}"#,
            br#"{"result":"allow","is_superuser":"true"}"#,
        ] {
            assert!(Answer::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let rules = br#"{"result":"allow","acl":[{"permission":"allow","who":"all","action":"publish","topics":["a/#"]}]}"#;
        assert!(matches!(Answer::parse(rules), Ok(Answer::Allow { ref rules, .. }) if rules.len() == 1));
        assert!(matches!(
            Answer::parse(br#"{"result":"allow","acl":[{"permission":"maybe"}]}"#),
            Ok(Answer::InvalidRules)
        ));
        assert!(matches!(Answer::parse(br#"{"result":"allow","acl":"all"}"#), Ok(Answer::InvalidRules)));
    }
}
