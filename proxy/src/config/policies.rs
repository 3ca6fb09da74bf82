//! The policy part of the main config: authenticators (and the files they load), the ACL file,
//! each listener's authentication chain, and the identity shown to the broker. Policy files are
//! parsed by their own policy modules; their problems are reported against their own file.

use std::path::Path;
use std::sync::Arc;

use super::error::Issues;
use super::model::{BansConfig, BrokerIdentity};
use super::raw::{RawAuthenticator, RawBans, RawBrokerIdentity, S};
use crate::policy::acl::{self, RuleSet};
use crate::policy::authn::{password, Authenticator, CertField, X509Settings};
use crate::policy::bans::{load_ban_file, BanSet, BanStore};

pub(crate) fn authenticators(
    list: Vec<RawAuthenticator>,
    base: &Path,
    issues: &mut Issues,
) -> Vec<(String, Arc<Authenticator>)> {
    let mut out: Vec<(String, Arc<Authenticator>)> = Vec::new();
    for (i, a) in list.into_iter().enumerate() {
        let key = format!("authentication[{i}]");
        if out.iter().any(|(n, _)| *n == a.name.value) {
            issues.push(
                a.name.referenced.line(),
                format!("{key}.name"),
                format!("duplicate name `{}`", a.name.value),
            );
            continue;
        }
        if let Some(auth) = authenticator(&a, &key, base, issues) {
            out.push((a.name.value.clone(), Arc::new(auth)));
        }
    }
    out
}

fn authenticator(a: &RawAuthenticator, key: &str, base: &Path, issues: &mut Issues) -> Option<Authenticator> {
    let kind = a.r#type.value.as_str();
    super::authn::keys_for_type(a, key, issues);
    // Keys that belong to another type are mistakes, not silently ignored settings.
    let mut not_for = |present: bool, name: &str, line: u64| {
        if present {
            issues.push(line, format!("{key}.{name}"), format!("does not apply to type `{kind}`"));
        }
    };
    let line_of = |o: &Option<S<String>>| o.as_ref().map_or(0, |v| v.referenced.line());
    match kind {
        "jwt" => super::authn::jwt(a, key, base, issues),
        "http" => super::authn::http(a, key, issues),
        "password_file" => {
            not_for(a.username_from.is_some(), "username_from", line_of(&a.username_from));
            not_for(a.clientid_from.is_some(), "clientid_from", line_of(&a.clientid_from));
            not_for(
                a.require_clientid_match.is_some(),
                "require_clientid_match",
                a.require_clientid_match.as_ref().map_or(0, |v| v.referenced.line()),
            );
            let Some(path) = a.path.as_ref() else {
                issues.push(a.r#type.referenced.line(), format!("{key}.path"), "password_file needs `path`");
                return None;
            };
            let file = base.join(&path.value);
            issues.depends_on(&file);
            match password::load_password_file(&file) {
                Ok(f) => Some(Authenticator::PasswordFile(Arc::new(f))),
                Err(list) => {
                    report_file_issues(issues, &file, list.into_iter().map(|i| (i.line, i.key, i.message)));
                    None
                }
            }
        }
        "x509" => {
            not_for(a.path.is_some(), "path", line_of(&a.path));
            let mut field = |v: &Option<S<String>>, name: &str| -> Option<CertField> {
                let v = v.as_ref()?;
                let f = CertField::parse(&v.value);
                if f.is_none() {
                    issues.push(
                        v.referenced.line(),
                        format!("{key}.{name}"),
                        format!("`{}` is not cn, dn, san_dns, san_uri, san_email or ou", v.value),
                    );
                }
                f
            };
            let username_from = field(&a.username_from, "username_from");
            let clientid_from = field(&a.clientid_from, "clientid_from");
            Some(Authenticator::X509(X509Settings {
                username_from,
                clientid_from,
                require_clientid_match: a.require_clientid_match.as_ref().is_some_and(|v| v.value),
            }))
        }
        "psk" => {
            not_for(a.path.is_some(), "path", line_of(&a.path));
            not_for(a.username_from.is_some(), "username_from", line_of(&a.username_from));
            not_for(a.clientid_from.is_some(), "clientid_from", line_of(&a.clientid_from));
            Some(Authenticator::Psk {
                require_clientid_match: a.require_clientid_match.as_ref().is_some_and(|v| v.value),
            })
        }
        "anonymous" => {
            not_for(a.path.is_some(), "path", line_of(&a.path));
            not_for(a.username_from.is_some(), "username_from", line_of(&a.username_from));
            not_for(a.clientid_from.is_some(), "clientid_from", line_of(&a.clientid_from));
            Some(Authenticator::Anonymous)
        }
        other => {
            issues.push(
                a.r#type.referenced.line(),
                format!("{key}.type"),
                format!("`{other}` is not password_file, x509, psk, anonymous, jwt or http"),
            );
            None
        }
    }
}

pub(crate) fn acl(path: &S<String>, base: &Path, issues: &mut Issues) -> Option<Arc<RuleSet>> {
    let file = base.join(&path.value);
    issues.depends_on(&file);
    if !file.exists() {
        issues.push(
            path.referenced.line(),
            "authorization.acl",
            format!("{} does not exist", file.display()),
        );
        return None;
    }
    match acl::load_rule_file(&file) {
        Ok(rules) => Some(Arc::new(rules)),
        Err(list) => {
            report_file_issues(issues, &file, list.into_iter().map(|i| (i.line, i.key, i.message)));
            None
        }
    }
}

fn report_file_issues(issues: &mut Issues, file: &Path, list: impl Iterator<Item = (u64, String, String)>) {
    for (line, key, message) in list {
        issues.push_in(file.to_path_buf(), line, key, message);
    }
}

/// A listener's chain: the named authenticators in the order given, or all of them by default.
pub(crate) fn listener_chain(
    names: Option<S<Vec<S<String>>>>,
    key: &str,
    authenticators: &[(String, Arc<Authenticator>)],
    issues: &mut Issues,
) -> Vec<usize> {
    let Some(names) = names else {
        return (0..authenticators.len()).collect();
    };
    let mut chain = Vec::new();
    for name in names.value {
        match authenticators.iter().position(|(n, _)| *n == name.value) {
            Some(i) => chain.push(i),
            None => issues.push(
                name.referenced.line(),
                format!("{key}.authentication"),
                format!("no authenticator named `{}`", name.value),
            ),
        }
    }
    chain
}

pub(crate) fn broker_identity(raw: Option<RawBrokerIdentity>, issues: &mut Issues) -> BrokerIdentity {
    let mut out = BrokerIdentity::default();
    let Some(raw) = raw else {
        return out;
    };
    if let Some(u) = raw.username {
        match u.value.as_str() {
            "verified" => out.verified_username = true,
            "client" => out.verified_username = false,
            other => issues.push(
                u.referenced.line(),
                "broker_identity.username",
                format!("`{other}` is not verified or client"),
            ),
        }
    }
    if let Some(p) = raw.password {
        match p.value.as_str() {
            "drop" => out.keep_password = false,
            "keep" => out.keep_password = true,
            other => issues.push(
                p.referenced.line(),
                "broker_identity.password",
                format!("`{other}` is not drop or keep"),
            ),
        }
    }
    out
}

/// The ban file and the runtime store. Both are loaded and indexed together here so that a list
/// the proxy could not use is a config error, not a surprise at startup or reload.
pub(crate) fn bans(raw: RawBans, base: &Path, issues: &mut Issues) -> Option<BansConfig> {
    if raw.file.is_none() && raw.store.is_none() {
        return None;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut file_bans = Vec::new();
    let file = raw.file.as_ref().map(|f| base.join(&f.value));
    if let Some(path) = &file {
        issues.depends_on(path);
        match load_ban_file(path, now) {
            Ok(list) => file_bans = list,
            Err(list) => {
                report_file_issues(issues, path, list.into_iter().map(|i| (i.line, i.key, i.message)))
            }
        }
    }
    let mut all = file_bans.clone();
    let store = raw.store.as_ref().map(|s| base.join(&s.value));
    if let (Some(path), Some(raw_store)) = (&store, &raw.store) {
        match BanStore::open(path) {
            Ok(s) => all.extend(s.bans().iter().cloned()),
            Err(e) => issues.push(raw_store.referenced.line(), "bans.store", e.to_string()),
        }
    }
    if let Err(e) = BanSet::build(all) {
        issues.push(0, "bans", e);
    }
    Some(BansConfig { file, file_bans, store })
}

/// The admin API's bearer tokens (`admin.tokens_file`).
pub(crate) fn admin_tokens(
    path: &S<String>,
    base: &Path,
    issues: &mut Issues,
) -> (Option<std::path::PathBuf>, Vec<crate::admin::tokens::AdminToken>) {
    let file = base.join(&path.value);
    if !file.exists() {
        issues.push(
            path.referenced.line(),
            "admin.tokens_file",
            format!("{} does not exist", file.display()),
        );
        return (Some(file), Vec::new());
    }
    match crate::admin::tokens::load_token_file(&file) {
        Ok(tokens) => (Some(file), tokens),
        Err(list) => {
            report_file_issues(issues, &file, list.into_iter().map(|i| (i.line, i.key, i.message)));
            (Some(file), Vec::new())
        }
    }
}
