//! Config of the authenticators that verify tokens or call out: `type: jwt` and `type: http`.
//! Every key is checked here, with file, line and key in each message, and key material is
//! loaded now so that `moat check` proves it usable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::duration::parse_duration;
use super::error::Issues;
use super::raw::{RawAuthenticator, S};
use crate::policy::authn::http::{HttpAuthenticator, HttpSettings, OnFailure};
use crate::policy::authn::jwt::jwks::RemoteJwks;
use crate::policy::authn::jwt::keys::{parse_algorithm, parse_jwks, KeySet, MAX_JWKS_BYTES};
use crate::policy::authn::jwt::{
    JwtAuthenticator, JwtSettings, KeySource, RequiredClaim, Template, TokenFrom,
};
use crate::policy::authn::{http_client, Authenticator};

/// HMAC secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
const DEFAULT_CALLOUT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CACHE_SIZE: u64 = 10_000;

fn line<T>(o: &Option<S<T>>) -> u64 {
    o.as_ref().map_or(0, |v| v.referenced.line())
}

/// Keys that belong to one authenticator type, given to another, are mistakes. Reports the keys
/// of `jwt` and `http` everywhere, and the older types' keys on `jwt` and `http` (the older
/// types check their own keys in policies.rs).
pub(crate) fn keys_for_type(a: &RawAuthenticator, key: &str, issues: &mut Issues) {
    let kind = a.r#type.value.as_str();
    let jwt = [
        ("token_from", line(&a.token_from)),
        ("algorithms", line(&a.algorithms)),
        ("secret_file", line(&a.secret_file)),
        ("secret_base64", line(&a.secret_base64)),
        ("public_key", line(&a.public_key)),
        ("jwks_file", line(&a.jwks_file)),
        ("jwks_url", line(&a.jwks_url)),
        ("jwks_refresh", line(&a.jwks_refresh)),
        ("jwks_timeout", line(&a.jwks_timeout)),
        ("leeway", line(&a.leeway)),
        ("required_claims", line(&a.required_claims)),
        ("username_claim", line(&a.username_claim)),
        ("clientid_claim", line(&a.clientid_claim)),
        ("acl_claim", line(&a.acl_claim)),
        ("disconnect_on_expiry", line(&a.disconnect_on_expiry)),
    ];
    let http = [
        ("url", line(&a.url)),
        ("timeout", line(&a.timeout)),
        ("on_failure", line(&a.on_failure)),
        ("cache_ttl", line(&a.cache_ttl)),
        ("cache_size", line(&a.cache_size)),
    ];
    let older = [
        ("path", line(&a.path)),
        ("username_from", line(&a.username_from)),
        ("clientid_from", line(&a.clientid_from)),
        ("require_clientid_match", line(&a.require_clientid_match)),
    ];
    let mut flag = |list: &[(&str, u64)]| {
        for (name, l) in list {
            if *l > 0 {
                issues.push(*l, format!("{key}.{name}"), format!("does not apply to type `{kind}`"));
            }
        }
    };
    match kind {
        "jwt" => {
            flag(&http);
            flag(&older);
        }
        "http" => {
            flag(&jwt);
            flag(&older);
        }
        _ => {
            flag(&jwt);
            flag(&http);
        }
    }
}

/// A duration that may be zero (leeway).
fn duration_or_zero(v: &Option<S<String>>, key: &str, default: Duration, issues: &mut Issues) -> Duration {
    match v {
        Some(d) => parse_duration(&d.value).unwrap_or_else(|msg| {
            issues.push(d.referenced.line(), key, msg);
            default
        }),
        None => default,
    }
}

fn positive_duration(v: &Option<S<String>>, key: &str, default: Duration, issues: &mut Issues) -> Duration {
    match v {
        Some(d) => match parse_duration(&d.value) {
            Ok(x) if x.is_zero() => {
                issues.push(d.referenced.line(), key, "must be greater than zero");
                default
            }
            Ok(x) => x,
            Err(msg) => {
                issues.push(d.referenced.line(), key, msg);
                default
            }
        },
        None => default,
    }
}

fn claim_name(v: &Option<S<String>>, key: &str, issues: &mut Issues) -> Option<String> {
    let v = v.as_ref()?;
    if v.value.is_empty() {
        issues.push(v.referenced.line(), key, "must not be empty");
        return None;
    }
    Some(v.value.clone())
}

fn read_key_file(path: &S<String>, base: &Path, key: &str, issues: &mut Issues) -> Option<String> {
    let file = base.join(&path.value);
    match crate::util::read_bounded(&file, MAX_KEY_FILE_BYTES) {
        Ok(t) => Some(t),
        Err(e) => {
            issues.push(path.referenced.line(), key, format!("{}: {e}", file.display()));
            None
        }
    }
}

pub(crate) fn jwt(
    a: &RawAuthenticator,
    key: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<Authenticator> {
    let type_line = a.r#type.referenced.line();
    let before = issues.list.len();
    let token_from = match a.token_from.as_ref().map(|t| (t.value.as_str(), t.referenced.line())) {
        None | Some(("password", _)) => TokenFrom::Password,
        Some(("username", _)) => TokenFrom::Username,
        Some((other, l)) => {
            issues.push(l, format!("{key}.token_from"), format!("`{other}` is not password or username"));
            TokenFrom::Password
        }
    };

    // Algorithms are pinned explicitly: the token header only chooses among these.
    let mut algorithms: Vec<Algorithm> = Vec::new();
    match &a.algorithms {
        None => issues.push(
            type_line,
            format!("{key}.algorithms"),
            "jwt needs `algorithms` (e.g. [HS256] or [RS256]): the accepted algorithms are never taken from the token",
        ),
        Some(list) if list.value.is_empty() => {
            issues.push(list.referenced.line(), format!("{key}.algorithms"), "must not be empty")
        }
        Some(list) => {
            for name in &list.value {
                match parse_algorithm(&name.value) {
                    Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                    Some(_) => {}
                    None => issues.push(
                        name.referenced.line(),
                        format!("{key}.algorithms"),
                        format!(
                            "`{}` is not HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
                            name.value
                        ),
                    ),
                }
            }
        }
    }
    let alg_line = line(&a.algorithms).max(type_line);

    let sources = [
        ("secret_file", a.secret_file.as_ref()),
        ("public_key", a.public_key.as_ref()),
        ("jwks_file", a.jwks_file.as_ref()),
        ("jwks_url", a.jwks_url.as_ref()),
    ];
    let given: Vec<(&str, &S<String>)> = sources.iter().filter_map(|(n, v)| v.map(|v| (*n, v))).collect();
    if given.is_empty() {
        issues.push(
            type_line,
            format!("{key}.secret_file"),
            "jwt needs one of secret_file, public_key, jwks_file or jwks_url",
        );
    }
    for (name, v) in given.iter().skip(1) {
        issues.push(
            v.referenced.line(),
            format!("{key}.{name}"),
            format!("only one key source per authenticator (`{}` is already set)", given[0].0),
        );
    }
    if a.secret_base64.is_some() && a.secret_file.is_none() {
        issues.push(line(&a.secret_base64), format!("{key}.secret_base64"), "applies only with secret_file");
    }
    for (name, l) in [("jwks_refresh", line(&a.jwks_refresh)), ("jwks_timeout", line(&a.jwks_timeout))] {
        if l > 0 && a.jwks_url.is_none() {
            issues.push(l, format!("{key}.{name}"), "applies only with jwks_url");
        }
    }
    let hmac = algorithms.iter().filter(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac).count();
    let keys = match given.first() {
        None => None,
        Some(("secret_file", path)) => {
            if hmac != algorithms.len() {
                issues.push(
                    alg_line,
                    format!("{key}.algorithms"),
                    "a secret_file verifies only HS256, HS384 or HS512",
                );
            }
            let k = format!("{key}.secret_file");
            read_key_file(path, base, &k, issues).and_then(|text| {
                let secret = secret_bytes(&text, a.secret_base64.as_ref().is_some_and(|b| b.value));
                match secret {
                    Ok(s) if s.len() >= MIN_SECRET_BYTES => {
                        Some(KeySource::Static(Arc::new(KeySet::single(DecodingKey::from_secret(&s)))))
                    }
                    Ok(s) => {
                        issues.push(
                            path.referenced.line(),
                            k,
                            format!(
                                "the secret is {} bytes; HMAC secrets must be at least {MIN_SECRET_BYTES}",
                                s.len()
                            ),
                        );
                        None
                    }
                    Err(msg) => {
                        issues.push(path.referenced.line(), k, msg);
                        None
                    }
                }
            })
        }
        Some((name, path)) => {
            if hmac > 0 {
                issues.push(
                    alg_line,
                    format!("{key}.algorithms"),
                    format!("HS* algorithms need secret_file, not {name} (an HMAC never uses a public key)"),
                );
            }
            match *name {
                "public_key" => public_key(path, base, key, &algorithms, alg_line, issues),
                "jwks_file" => {
                    let k = format!("{key}.jwks_file");
                    let file = base.join(&path.value);
                    match crate::util::read_bounded(&file, MAX_JWKS_BYTES as u64) {
                        Ok(text) => match parse_jwks(text.as_bytes()) {
                            Ok(set) => Some(KeySource::Static(Arc::new(set))),
                            Err(msg) => {
                                issues.push(path.referenced.line(), k, format!("{}: {msg}", file.display()));
                                None
                            }
                        },
                        Err(e) => {
                            issues.push(path.referenced.line(), k, format!("{}: {e}", file.display()));
                            None
                        }
                    }
                }
                _ => {
                    let k = format!("{key}.jwks_url");
                    let refresh = positive_duration(
                        &a.jwks_refresh,
                        &format!("{key}.jwks_refresh"),
                        DEFAULT_JWKS_REFRESH,
                        issues,
                    );
                    let wait = positive_duration(
                        &a.jwks_timeout,
                        &format!("{key}.jwks_timeout"),
                        DEFAULT_CALLOUT_TIMEOUT,
                        issues,
                    );
                    match http_client::check_url(&path.value)
                        .and_then(|url| RemoteJwks::new(url, refresh, wait))
                    {
                        Ok(r) => Some(KeySource::Remote(r)),
                        Err(msg) => {
                            issues.push(path.referenced.line(), k, msg);
                            None
                        }
                    }
                }
            }
        }
    };
    let leeway = duration_or_zero(&a.leeway, &format!("{key}.leeway"), DEFAULT_LEEWAY, issues).as_secs();
    let mut required = Vec::new();
    if let Some(map) = &a.required_claims {
        for (name, value) in &map.value {
            match Template::parse(&value.value) {
                Ok(expected) => required.push(RequiredClaim { name: name.clone(), expected }),
                Err(msg) => {
                    issues.push(value.referenced.line(), format!("{key}.required_claims.{name}"), msg)
                }
            }
        }
    }
    let username_claim = claim_name(&a.username_claim, &format!("{key}.username_claim"), issues);
    let clientid_claim = claim_name(&a.clientid_claim, &format!("{key}.clientid_claim"), issues);
    let acl_claim = claim_name(&a.acl_claim, &format!("{key}.acl_claim"), issues);
    if issues.list.len() > before {
        return None;
    }
    let settings = JwtSettings {
        token_from,
        algorithms,
        keys: keys?,
        leeway,
        required,
        username_claim,
        clientid_claim,
        acl_claim,
        disconnect_on_expiry: a.disconnect_on_expiry.as_ref().is_some_and(|d| d.value),
    };
    Some(Authenticator::Jwt(Arc::new(JwtAuthenticator::new(settings))))
}

/// The secret file's bytes: one trailing newline is not part of the secret.
fn secret_bytes(text: &str, base64: bool) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    if base64 {
        let t = text.trim();
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
            .map_err(|_| "secret_base64 is set but the file is not base64".to_string())
    } else {
        let t = text.strip_suffix('\n').unwrap_or(text);
        Ok(t.strip_suffix('\r').unwrap_or(t).as_bytes().to_vec())
    }
}

fn public_key(
    path: &S<String>,
    base: &Path,
    key: &str,
    algorithms: &[Algorithm],
    alg_line: u64,
    issues: &mut Issues,
) -> Option<KeySource> {
    use jsonwebtoken::AlgorithmFamily as F;
    let k = format!("{key}.public_key");
    let text = read_key_file(path, base, &k, issues)?;
    let families: Vec<F> = algorithms.iter().map(|a| a.family()).filter(|f| *f != F::Hmac).collect();
    let family = families.first().copied()?;
    if families.iter().any(|f| *f != family) {
        issues.push(
            alg_line,
            format!("{key}.algorithms"),
            "one public key verifies one family: RS*/PS* (RSA), ES* (EC) or EdDSA, not a mix",
        );
        return None;
    }
    let (parsed, what) = match family {
        F::Rsa => (DecodingKey::from_rsa_pem(text.as_bytes()), "an RSA"),
        F::Ec => (DecodingKey::from_ec_pem(text.as_bytes()), "an EC"),
        F::Ed => (DecodingKey::from_ed_pem(text.as_bytes()), "an Ed25519"),
        F::Hmac => return None,
    };
    match parsed {
        Ok(dk) => Some(KeySource::Static(Arc::new(KeySet::single(dk)))),
        Err(_) => {
            issues.push(
                path.referenced.line(),
                k,
                format!("not {what} public key in PEM form (for {:?})", algorithms),
            );
            None
        }
    }
}

pub(crate) fn http(a: &RawAuthenticator, key: &str, issues: &mut Issues) -> Option<Authenticator> {
    let before = issues.list.len();
    let url = match &a.url {
        None => {
            issues.push(a.r#type.referenced.line(), format!("{key}.url"), "http needs `url`");
            None
        }
        Some(u) => match http_client::check_url(&u.value) {
            Ok(url) => Some(url),
            Err(msg) => {
                issues.push(u.referenced.line(), format!("{key}.url"), msg);
                None
            }
        },
    };
    let timeout = positive_duration(&a.timeout, &format!("{key}.timeout"), DEFAULT_CALLOUT_TIMEOUT, issues);
    let on_failure = match a.on_failure.as_ref().map(|v| (v.value.as_str(), v.referenced.line())) {
        None | Some(("deny", _)) => OnFailure::Deny,
        Some(("ignore", _)) => OnFailure::Ignore,
        Some((other, l)) => {
            issues.push(l, format!("{key}.on_failure"), format!("`{other}` is not deny or ignore"));
            OnFailure::Deny
        }
    };
    let cache_ttl = duration_or_zero(&a.cache_ttl, &format!("{key}.cache_ttl"), Duration::ZERO, issues);
    let cache_size = match &a.cache_size {
        Some(v) if v.value == 0 || v.value > 1_000_000 => {
            issues.push(v.referenced.line(), format!("{key}.cache_size"), "must be between 1 and 1000000");
            DEFAULT_CACHE_SIZE
        }
        Some(v) => v.value,
        None => DEFAULT_CACHE_SIZE,
    };
    if a.cache_size.is_some() && a.cache_ttl.is_none() {
        issues.push(line(&a.cache_size), format!("{key}.cache_size"), "applies only with cache_ttl");
    }
    if issues.list.len() > before {
        return None;
    }
    let settings =
        HttpSettings { url: url?, timeout, on_failure, cache_ttl, cache_size: cache_size as usize };
    match HttpAuthenticator::new(settings) {
        Ok(h) => Some(Authenticator::Http(Arc::new(h))),
        Err(msg) => {
            issues.push(line(&a.url), format!("{key}.url"), msg);
            None
        }
    }
}
