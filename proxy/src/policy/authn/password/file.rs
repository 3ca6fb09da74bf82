//! Reading password files: the YAML format (with line numbers for every problem) and Mosquitto's
//! `user:hash` format, plus detection between the two.
//!
//! The YAML is read through hand-written visitors rather than derived structs so that unknown
//! keys, duplicate users and bad hashes are all collected with their lines in one pass, instead of
//! stopping at the first problem. Only YAML syntax and value-type errors stop early, and their
//! text from the parser is replaced by our own, because parser messages can quote the offending
//! value, which may be a hash.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::options::DuplicateKeyPolicy;
use serde_saphyr::{Budget, Options, Spanned};

use super::emqx::{EmqxField, EmqxSpec};
use super::hash::PasswordHash;
use super::{LoadIssue, PasswordFile, UserEntry};
use crate::policy::authn::scram::{Mechanism, ScramCredential};

/// Files above this are refused before parsing: a password file is small, and an unbounded read
/// of a wrong path (a device, a log) must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` (at most [`MAX_FILE_BYTES`]) and parses it as YAML or as a Mosquitto password
/// file, whichever it looks like. File-level problems are reported on line 0 with key `file`.
pub fn load_password_file(path: &Path) -> Result<PasswordFile, Vec<LoadIssue>> {
    let text = crate::util::read_bounded(path, MAX_FILE_BYTES)
        .map_err(|e| vec![LoadIssue::new(0, "file", e.to_string())])?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if looks_like_mosquitto(text) {
        parse_mosquitto_passwd(text)
    } else {
        parse_password_file(text)
    }
}

/// A Mosquitto file's first meaningful line is `user:$…`; a YAML password file's is `users:`
/// (or `---`). A user literally named `users` is still recognised by the `$` after the colon.
pub(crate) fn looks_like_mosquitto(text: &str) -> bool {
    let first = text.lines().map(str::trim).find(|line| !line.is_empty() && !line.starts_with('#'));
    match first.and_then(|line| line.split_once(':')) {
        Some((user, hash)) => {
            !user.is_empty() && !user.contains(char::is_whitespace) && hash.starts_with('$')
        }
        None => false,
    }
}

/// Parses Mosquitto's password file format: one `user:hash` per line, `#` comments and blank
/// lines ignored. `$7$` and `$6$` hashes (and, as Mosquitto 2.1 writes them, Argon2 PHC strings)
/// are accepted.
pub fn parse_mosquitto_passwd(text: &str) -> Result<PasswordFile, Vec<LoadIssue>> {
    let mut issues = Vec::new();
    let mut entries = Vec::new();
    let mut first_line: HashMap<&str, u64> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let entry = raw.trim_end();
        if entry.trim_start().is_empty() || entry.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, hash)) = entry.split_once(':') else {
            issues.push(LoadIssue::new(line, "entry", "expected user:hash"));
            continue;
        };
        if let Err(message) = check_username(user) {
            issues.push(LoadIssue::new(line, "username", message));
            continue;
        }
        if let Some(first) = first_line.get(user) {
            issues.push(LoadIssue::new(
                line,
                user,
                format!("duplicate user (first defined on line {first})"),
            ));
            continue;
        }
        first_line.insert(user, line);
        match PasswordHash::parse_str(hash) {
            Ok(hash) => entries.push((
                user.to_string(),
                UserEntry {
                    superuser: false,
                    groups: Vec::new(),
                    attributes: BTreeMap::new(),
                    hash,
                    scram: Vec::new(),
                },
            )),
            Err(message) => issues.push(LoadIssue::new(line, user, message)),
        }
    }
    if issues.is_empty() {
        Ok(PasswordFile::from_entries(entries))
    } else {
        Err(issues)
    }
}

/// Parses the YAML password file format (`users:` → name → `password_hash`, `superuser`,
/// `groups`, `attributes`). Every problem is
/// reported with its line and its dotted key (`users.alice.password_hash.iterations`).
pub fn parse_password_file(text: &str) -> Result<PasswordFile, Vec<LoadIssue>> {
    let doc = read_yaml(text)?;
    let mut issues = doc.issues;
    let mut entries = Vec::new();
    let Some(users) = doc.users else {
        issues.push(LoadIssue::new(1, "users", "missing: the file must have a top-level `users` mapping"));
        return Err(issues);
    };
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (name, user) in users.value.users {
        let line = name.referenced.line();
        let path = format!("users.{}", name.value);
        if let Err(message) = check_username(&name.value) {
            issues.push(LoadIssue::new(line, path, message));
            continue;
        }
        if let Some(first) = first_line.get(&name.value) {
            issues.push(LoadIssue::new(
                line,
                path,
                format!("duplicate user (first defined on line {first})"),
            ));
            continue;
        }
        first_line.insert(name.value.clone(), line);
        let user = user.value;
        for (line, key, message) in user.issues {
            issues.push(LoadIssue::new(line, format!("{path}.{key}"), message));
        }
        let hash = match user.password_hash {
            None => {
                issues.push(LoadIssue::new(line, format!("{path}.password_hash"), "missing"));
                None
            }
            Some(hash) => build_hash(hash, &path, &mut issues),
        };
        if let Some(hash) = hash {
            let entry = UserEntry {
                superuser: user.superuser.unwrap_or(false),
                groups: user.groups.unwrap_or_default(),
                attributes: user.attributes.unwrap_or_default(),
                hash,
                scram: build_scram(&user.scram, &path, &mut issues),
            };
            entries.push((name.value, entry));
        }
    }
    if issues.is_empty() {
        Ok(PasswordFile::from_entries(entries))
    } else {
        Err(issues)
    }
}

fn build_hash(hash: Spanned<RawHash>, path: &str, issues: &mut Vec<LoadIssue>) -> Option<PasswordHash> {
    let line = hash.referenced.line();
    let key = format!("{path}.password_hash");
    match hash.value {
        RawHash::Text(text) => match PasswordHash::parse_str(&text) {
            Ok(hash) => Some(hash),
            Err(message) => {
                issues.push(LoadIssue::new(line, key, message));
                None
            }
        },
        RawHash::Emqx(emqx) => {
            for (line, field, message) in emqx.issues {
                issues.push(LoadIssue::new(line, format!("{key}.{field}"), message));
            }
            match PasswordHash::from_emqx(&emqx.spec) {
                Ok(hash) => Some(hash),
                Err(problems) => {
                    for (field, message) in problems {
                        let line = emqx.lines.get(&field).copied().unwrap_or(line);
                        issues.push(LoadIssue::new(line, format!("{key}.{}", field.key()), message));
                    }
                    None
                }
            }
        }
    }
}

/// The `scram_sha256` / `scram_sha512` fields, each parsed and checked (iterations ≥ 4096, salt
/// ≥ 16 bytes, key lengths); problems are reported with their line and key, never their value.
fn build_scram(
    raw: &[(Mechanism, Spanned<String>)],
    path: &str,
    issues: &mut Vec<LoadIssue>,
) -> Vec<ScramCredential> {
    let mut out = Vec::new();
    for (mechanism, text) in raw {
        match ScramCredential::parse(*mechanism, &text.value) {
            Ok(c) => out.push(c),
            Err(message) => issues.push(LoadIssue::new(
                text.referenced.line(),
                format!("{path}.{}", scram_key(*mechanism)),
                message,
            )),
        }
    }
    out
}

/// The password-file key holding a mechanism's credential.
pub(crate) fn scram_key(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Sha256 => "scram_sha256",
        Mechanism::Sha512 => "scram_sha512",
    }
}

/// Usernames become map keys, log fields and ACL placeholders: refuse the ones that cannot be
/// typed or would corrupt a log line.
fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty username".into());
    }
    if name.chars().any(char::is_control) {
        return Err("username contains control characters".into());
    }
    Ok(())
}

pub(super) fn read_yaml(text: &str) -> Result<RawDoc, Vec<LoadIssue>> {
    let mut options = Options::default();
    // Duplicates reach our visitors, which report each with its line (the parser would stop at
    // the first one).
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // The parser's default budget (250k nodes) stops at about 60k users; a file is already
    // bounded to MAX_FILE_BYTES, so allow roughly a million users while keeping alias and depth
    // limits at their defaults.
    let mut budget = Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = MAX_YAML_NODES + MAX_YAML_NODES / 2;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<RawDoc>(text, options).map_err(|error| {
        let line = error.location().map(|l| l.line()).unwrap_or(0);
        let message = if is_budget_error(&error) {
            "the file exceeds the YAML parser's limits (too many entries, aliases or nesting levels)"
        } else {
            "invalid YAML or a value of the wrong type (expected a string, boolean, number, list or \
             mapping as documented)"
        };
        vec![LoadIssue::new(line, key_on_line(text, line), message)]
    })
}

/// YAML nodes allowed in one file: about ten per user for a million users.
const MAX_YAML_NODES: usize = 10_000_000;

fn is_budget_error(mut error: &serde_saphyr::Error) -> bool {
    loop {
        match error {
            serde_saphyr::Error::WithSnippet { error: inner, .. }
            | serde_saphyr::Error::AliasError { error: inner, .. } => error = inner,
            serde_saphyr::Error::Budget { .. } => return true,
            _ => return false,
        }
    }
}

/// The mapping key written on `line`, to name the setting of a parser error without quoting the
/// parser's message (which may contain a hash). Returns `yaml` when the line has no plain key.
fn key_on_line(text: &str, line: u64) -> String {
    let key = usize::try_from(line)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|n| text.lines().nth(n))
        .and_then(|l| l.trim_start().trim_start_matches("- ").split_once(':'))
        .map(|(key, _)| key.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
    match key {
        Some(key) if !key.is_empty() && key.len() <= 64 && !key.contains('$') && !key.contains(' ') => key,
        _ => "yaml".into(),
    }
}

// ---- raw YAML model ------------------------------------------------------------------------

type Issues = Vec<(u64, String, String)>;

/// The whole document; `issues` hold unknown and duplicate top-level keys.
pub(super) struct RawDoc {
    pub(super) users: Option<Spanned<RawUsers>>,
    /// Line of the `users:` key itself (the value may start on a later line).
    pub(super) users_key_line: u64,
    issues: Vec<LoadIssue>,
}

pub(super) struct RawUsers {
    pub(super) users: Vec<(Spanned<String>, Spanned<RawUser>)>,
}

#[derive(Default)]
pub(super) struct RawUser {
    pub(super) password_hash: Option<Spanned<RawHash>>,
    /// Line of the `password_hash:` key (an EMQX mapping value starts on a later line).
    pub(super) password_hash_key_line: u64,
    superuser: Option<bool>,
    groups: Option<Vec<String>>,
    attributes: Option<BTreeMap<String, String>>,
    /// `scram_sha256` / `scram_sha512` as written.
    pub(super) scram: Vec<(Mechanism, Spanned<String>)>,
    /// (line, key relative to the user, message).
    issues: Issues,
}

pub(super) enum RawHash {
    Text(String),
    Emqx(RawEmqx),
}

#[derive(Default)]
pub(super) struct RawEmqx {
    spec: EmqxSpec,
    lines: HashMap<EmqxField, u64>,
    issues: Issues,
}

/// Records a key seen twice in one mapping (possible because of `DuplicateKeyPolicy::PassThrough`).
fn seen_twice(issues: &mut Issues, line: u64, key: &str) {
    issues.push((line, key.to_string(), "duplicate key".into()));
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = RawDoc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with a `users` key")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawDoc, E> {
        Ok(RawDoc { users: None, users_key_line: 0, issues: Vec::new() })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDoc, A::Error> {
        let mut doc = RawDoc { users: None, users_key_line: 0, issues: Vec::new() };
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let line = key.referenced.line();
            match key.value.as_str() {
                "users" if doc.users.is_none() => {
                    doc.users_key_line = line;
                    doc.users = Some(map.next_value()?);
                }
                "users" => {
                    doc.issues.push(LoadIssue::new(line, "users", "duplicate key"));
                    map.next_value::<IgnoredAny>()?;
                }
                other => {
                    doc.issues.push(LoadIssue::new(line, other, "unknown key (expected `users`)"));
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(doc)
    }
}

impl<'de> Deserialize<'de> for RawDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct UsersVisitor;

impl<'de> Visitor<'de> for UsersVisitor {
    type Value = RawUsers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of usernames to user entries")
    }

    /// `users:` with nothing under it: a file with no users (everyone is refused).
    fn visit_unit<E: de::Error>(self) -> Result<RawUsers, E> {
        Ok(RawUsers { users: Vec::new() })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawUsers, A::Error> {
        let mut users = Vec::new();
        while let Some(name) = map.next_key::<Spanned<String>>()? {
            users.push((name, map.next_value()?));
        }
        Ok(RawUsers { users })
    }
}

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UsersVisitor)
    }
}

struct UserVisitor;

impl<'de> Visitor<'de> for UserVisitor {
    type Value = RawUser;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user entry mapping with password_hash")
    }

    /// `alice:` with nothing under it: reported as a missing password_hash.
    fn visit_unit<E: de::Error>(self) -> Result<RawUser, E> {
        Ok(RawUser::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawUser, A::Error> {
        let mut user = RawUser::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let line = key.referenced.line();
            let name = key.value.as_str();
            let duplicate = match name {
                "password_hash" => user.password_hash.is_some(),
                "superuser" => user.superuser.is_some(),
                "groups" => user.groups.is_some(),
                "attributes" => user.attributes.is_some(),
                "scram_sha256" => user.scram.iter().any(|(m, _)| *m == Mechanism::Sha256),
                "scram_sha512" => user.scram.iter().any(|(m, _)| *m == Mechanism::Sha512),
                _ => false,
            };
            if duplicate {
                seen_twice(&mut user.issues, line, name);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match name {
                "password_hash" => {
                    user.password_hash_key_line = line;
                    user.password_hash = Some(map.next_value()?);
                }
                "superuser" => user.superuser = Some(map.next_value()?),
                "groups" => user.groups = Some(map.next_value()?),
                "attributes" => user.attributes = Some(map.next_value()?),
                "scram_sha256" => user.scram.push((Mechanism::Sha256, map.next_value()?)),
                "scram_sha512" => user.scram.push((Mechanism::Sha512, map.next_value()?)),
                other => {
                    user.issues.push((
                        line,
                        other.to_string(),
                        "unknown key (expected password_hash, scram_sha256, scram_sha512, superuser, groups, attributes)".into(),
                    ));
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(user)
    }
}

impl<'de> Deserialize<'de> for RawUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UserVisitor)
    }
}

struct HashVisitor;

impl<'de> Visitor<'de> for HashVisitor {
    type Value = RawHash;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hash string or an EMQX hash mapping")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawHash, E> {
        Ok(RawHash::Text(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHash, A::Error> {
        let mut raw = RawEmqx::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let line = key.referenced.line();
            let field = match key.value.as_str() {
                "algorithm" => EmqxField::Algorithm,
                "mac_fun" => EmqxField::MacFun,
                "iterations" => EmqxField::Iterations,
                "salt" => EmqxField::Salt,
                "salt_position" => EmqxField::SaltPosition,
                "hash" => EmqxField::Hash,
                "dk_length" => EmqxField::DkLength,
                other => {
                    raw.issues.push((
                        line,
                        other.to_string(),
                        "unknown key (expected algorithm, mac_fun, iterations, salt, salt_position, hash, \
                         dk_length)"
                            .into(),
                    ));
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if raw.lines.contains_key(&field) {
                seen_twice(&mut raw.issues, line, field.key());
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            raw.lines.insert(field, line);
            let spec = &mut raw.spec;
            match field {
                EmqxField::Algorithm => spec.algorithm = Some(map.next_value()?),
                EmqxField::MacFun => spec.mac_fun = Some(map.next_value()?),
                EmqxField::Iterations => spec.iterations = Some(map.next_value()?),
                EmqxField::Salt => spec.salt = Some(map.next_value()?),
                EmqxField::SaltPosition => spec.salt_position = Some(map.next_value()?),
                EmqxField::Hash => spec.hash = Some(map.next_value()?),
                EmqxField::DkLength => spec.dk_length = Some(map.next_value()?),
            }
        }
        Ok(RawHash::Emqx(raw))
    }
}

impl<'de> Deserialize<'de> for RawHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HashVisitor)
    }
}
