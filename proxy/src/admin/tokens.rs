//! Bearer tokens for the admin API, from a YAML file (a Kubernetes Secret, typically):
//!
//! ```yaml
//! tokens:
//!   - name: prometheus        # shown in logs, never the token itself
//!     scope: read             # read: GET endpoints and /metrics; admin: everything
//!     sha256: 9f86d08...      # hex SHA-256 of the token (preferred: the file holds no secret)
//!   - name: ops
//!     scope: admin
//!     token: "a-long-random-string"   # or the token itself, at least 16 characters
//! ```
//!
//! Only SHA-256 digests are kept in memory; a presented token is hashed and compared in constant
//! time against every digest (no early exit), so neither the token nor which entry almost matched
//! leaks through timing or errors.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest token file read.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;
/// Shortest plaintext token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Admin,
}

#[derive(Clone)]
pub struct AdminToken {
    pub name: String,
    pub scope: Scope,
    digest: [u8; 32],
}

/// Hand-written so the digest never reaches a log.
impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken").field("name", &self.name).field("scope", &self.scope).finish()
    }
}

/// One problem in the token file: 1-based line (0: whole file), key path, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIssue {
    pub line: u64,
    pub key: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tokens: Spanned<Vec<RawToken>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    scope: Spanned<String>,
    #[serde(default)]
    token: Option<Spanned<String>>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
}

pub fn load_token_file(path: &Path) -> Result<Vec<AdminToken>, Vec<TokenIssue>> {
    let text = crate::util::read_bounded(path, MAX_TOKEN_FILE_BYTES)
        .map_err(|e| vec![issue(0, "file", e.to_string())])?;
    parse_token_file(&text)
}

fn issue(line: u64, key: impl Into<String>, message: impl Into<String>) -> TokenIssue {
    TokenIssue { line, key: key.into(), message: message.into() }
}

pub fn parse_token_file(text: &str) -> Result<Vec<AdminToken>, Vec<TokenIssue>> {
    // The parser's own message could quote a token: replace it with ours.
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|_| {
        vec![issue(
            0,
            "tokens",
            "not a token file: expected `tokens:` with a list of {name, scope, token or sha256}",
        )]
    })?;
    let mut issues = Vec::new();
    let mut out: Vec<AdminToken> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, t) in raw.tokens.value.into_iter().enumerate() {
        let key = format!("tokens[{i}]");
        let line = t.name.referenced.line();
        if t.name.value.is_empty() || t.name.value.chars().any(char::is_control) {
            issues.push(issue(line, format!("{key}.name"), "must be non-empty printable text"));
        }
        if !names.insert(t.name.value.clone()) {
            issues.push(issue(line, format!("{key}.name"), format!("duplicate name `{}`", t.name.value)));
        }
        let scope = match t.scope.value.as_str() {
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            other => {
                issues.push(issue(
                    t.scope.referenced.line(),
                    format!("{key}.scope"),
                    format!("`{other}` is not read or admin"),
                ));
                None
            }
        };
        let digest = match (&t.token, &t.sha256) {
            (Some(tok), None) => {
                if tok.value.chars().count() < MIN_TOKEN_LEN {
                    issues.push(issue(
                        tok.referenced.line(),
                        format!("{key}.token"),
                        format!("shorter than {MIN_TOKEN_LEN} characters"),
                    ));
                    None
                } else {
                    Some(digest_of(tok.value.as_bytes()))
                }
            }
            (None, Some(h)) => match hex::decode(h.value.trim()) {
                Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                    Ok(d) => Some(d),
                    Err(_) => {
                        issues.push(issue(
                            h.referenced.line(),
                            format!("{key}.sha256"),
                            "must be 64 hex digits",
                        ));
                        None
                    }
                },
                Err(_) => {
                    issues.push(issue(h.referenced.line(), format!("{key}.sha256"), "must be 64 hex digits"));
                    None
                }
            },
            _ => {
                issues.push(issue(line, key.clone(), "needs exactly one of `token` or `sha256`"));
                None
            }
        };
        if let (Some(scope), Some(digest)) = (scope, digest) {
            out.push(AdminToken { name: t.name.value, scope, digest });
        }
    }
    if out.is_empty() && issues.is_empty() {
        issues.push(issue(raw.tokens.referenced.line(), "tokens", "lists no token"));
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

fn digest_of(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// The token `presented` matches, if any. Every entry is compared, in constant time each.
pub fn verify<'a>(tokens: &'a [AdminToken], presented: &[u8]) -> Option<&'a AdminToken> {
    let d = digest_of(presented);
    let mut found = None;
    for t in tokens {
        if bool::from(t.digest.ct_eq(&d)) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_and_digest_tokens_verify() {
        let hash = hex::encode(Sha256::digest(b"reader-token-0123456789"));
        let file = format!(
            "tokens:\n  - name: ops\n    scope: admin\n    token: \"admin-token-0123456789\"\n  - name: prom\n    scope: read\n    sha256: {hash}\n"
        );
        let tokens = parse_token_file(&file).expect("valid");
        assert_eq!(verify(&tokens, b"admin-token-0123456789").map(|t| t.scope), Some(Scope::Admin));
        assert_eq!(verify(&tokens, b"reader-token-0123456789").map(|t| t.name.as_str()), Some("prom"));
        assert!(verify(&tokens, b"admin-token-012345678").is_none());
        assert!(verify(&tokens, b"").is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_no_secret() {
        let file = "tokens:\n  - name: a\n    scope: root\n    token: tiny-tok\n  - name: a\n    scope: read\n    sha256: xyz\n  - name: b\n    scope: read\n";
        let issues = parse_token_file(file).expect_err("invalid");
        let keys: Vec<_> = issues.iter().map(|i| (i.line, i.key.as_str())).collect();
        assert!(keys.contains(&(3, "tokens[0].scope")), "{issues:?}");
        assert!(keys.contains(&(4, "tokens[0].token")), "{issues:?}");
        assert!(keys.contains(&(5, "tokens[1].name")), "{issues:?}");
        assert!(keys.contains(&(7, "tokens[1].sha256")), "{issues:?}");
        assert!(keys.contains(&(8, "tokens[2]")), "{issues:?}");
        assert!(issues.iter().all(|i| !i.message.contains("tiny-tok")), "{issues:?}");
    }

    #[test]
    fn parser_errors_do_not_quote_the_file() {
        let issues =
            parse_token_file("tokens:\n  - name: x\n    secret: hunter2-hunter2-hunter2\n").expect_err("bad");
        assert!(issues.iter().all(|i| !i.message.contains("hunter2")), "{issues:?}");
    }
}
