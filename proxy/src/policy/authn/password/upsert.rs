//! `upsert_user`: add or replace one user's hash in a YAML password file *as text*, so that the
//! operator's comments, ordering and formatting survive `moat passwd FILE USER`.
//!
//! The edit is line-based and deliberately narrow (block-style YAML, as the documented format and
//! this function itself write it). Anything it cannot edit safely is an error asking for a manual
//! edit, and every result is re-parsed and checked before it is returned: a password tool that
//! silently drops other users or writes a hash that does not load would lock people out.

use std::collections::BTreeSet;

use super::file::{looks_like_mosquitto, read_yaml, scram_key, RawDoc, RawHash};
use super::hash::PasswordHash;
use crate::policy::authn::scram::ScramCredential;

/// Add or replace a user in a YAML password file text, keeping the other entries (for
/// `moat passwd FILE USER`). `password_hash` must be a supported hash string (normally from
/// [`super::hash_password`]). Errors never quote the hash.
pub fn upsert_user(text: &str, username: &str, password_hash: &str) -> Result<String, String> {
    upsert_user_with_scram(text, username, password_hash, &[])
}

/// [`upsert_user`] that also writes SCRAM credentials (`scram_sha256`, `scram_sha512`). Any SCRAM
/// credential the user had is removed first, always: it would otherwise keep the old password
/// working over SCRAM.
pub fn upsert_user_with_scram(
    text: &str,
    username: &str,
    password_hash: &str,
    scram: &[ScramCredential],
) -> Result<String, String> {
    if username.is_empty() || username.chars().any(char::is_control) {
        return Err("username must be non-empty and free of control characters".into());
    }
    PasswordHash::parse_str(password_hash).map_err(|m| format!("refusing to write this hash: {m}"))?;
    if looks_like_mosquitto(text) {
        return Err("this is a Mosquitto password file; convert it to the YAML format or use \
                    mosquitto_passwd"
            .into());
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let doc = read_yaml(text).map_err(|issues| describe("cannot edit", &issues))?;
    let old_users = usernames(&doc);
    let extra: Vec<String> =
        scram.iter().map(|c| format!("{}: {}", scram_key(c.mechanism()), quote(&c.encode()))).collect();
    let edited = edit(text, &doc, username, password_hash, &extra, eol)?;
    check(&edited, username, password_hash, scram.len(), &old_users)?;
    Ok(edited)
}

fn describe(what: &str, issues: &[super::LoadIssue]) -> String {
    let first = issues.first().map(ToString::to_string).unwrap_or_default();
    format!("{what}: the file is not a valid password file ({first})")
}

fn usernames(doc: &RawDoc) -> BTreeSet<String> {
    doc.users.iter().flat_map(|users| users.value.users.iter().map(|(name, _)| name.value.clone())).collect()
}

/// A YAML double-quoted scalar: safe for any username and any hash character.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn indent_of(line: &str) -> &str {
    let trimmed = line.trim_start_matches([' ', '\t']);
    line.get(..line.len() - trimmed.len()).unwrap_or("")
}

fn is_meaningful(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn line_index(line: u64) -> Result<usize, String> {
    usize::try_from(line).ok().and_then(|l| l.checked_sub(1)).ok_or_else(|| "unknown position".into())
}

fn edit(
    text: &str,
    doc: &RawDoc,
    username: &str,
    hash: &str,
    extra: &[String],
    eol: &str,
) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let Some(users) = &doc.users else {
        // No `users` key (an empty or comment-only file): append a fresh mapping.
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(eol);
        }
        out.push_str(&format!(
            "users:{eol}  {}:{eol}    password_hash: {}{eol}",
            quote(username),
            quote(hash)
        ));
        for line in extra {
            out.push_str(&format!("    {line}{eol}"));
        }
        return Ok(out);
    };
    let hash_line = format!("password_hash: {}", quote(hash));
    let existing = users.value.users.iter().find(|(name, _)| name.value == username);
    if let Some((name, user)) = existing {
        let key_line = user.value.password_hash_key_line;
        let index = line_index(key_line)?;
        let line = lines.get(index).ok_or("password_hash position out of range")?.clone();
        let trimmed = line.trim_start();
        let is_block_key = ["password_hash:", "\"password_hash\":", "'password_hash':"]
            .iter()
            .any(|k| trimmed.starts_with(k));
        if key_line == name.referenced.line() || !is_block_key {
            return Err(format!("the entry for {username:?} is not in block style; edit it by hand"));
        }
        let indent = indent_of(&line).to_string();
        // Drop the old value's continuation lines (an EMQX mapping or a folded scalar).
        let mut end = index + 1;
        while lines.get(end).is_some_and(|l| !l.trim().is_empty() && indent_of(l).len() > indent.len()) {
            end += 1;
        }
        let mut replacement = vec![format!("{indent}{hash_line}")];
        replacement.extend(extra.iter().map(|l| format!("{indent}{l}")));
        // The user's old SCRAM lines go (single-line scalars, as this function writes them).
        let mut old_scram = Vec::new();
        for (_, value) in &user.value.scram {
            let at = line_index(value.referenced.line())?;
            let line = lines.get(at).ok_or("scram position out of range")?;
            if !line.trim_start().starts_with("scram_sha") {
                return Err(format!(
                    "the SCRAM entries of {username:?} are not in block style; edit them by hand"
                ));
            }
            old_scram.push(at);
        }
        let mut edited = Vec::with_capacity(lines.len() + extra.len());
        for (i, line) in lines.iter().enumerate() {
            if i == index {
                edited.extend(replacement.iter().cloned());
            } else if (index + 1..end).contains(&i) || old_scram.contains(&i) {
                continue;
            } else {
                edited.push(line.clone());
            }
        }
        lines = edited;
    } else {
        let users_index = line_index(doc.users_key_line)?;
        let first_user = users.value.users.first();
        match first_user {
            None => {
                // `users:` or `users: {}`: rewrite that line into a block mapping.
                let line = lines.get(users_index).ok_or("users position out of range")?;
                let rest = line.trim().strip_prefix("users:").map(str::trim);
                if !matches!(rest, Some("") | Some("{}")) {
                    return Err("the users mapping is not in block style; edit it by hand".into());
                }
                let mut block =
                    vec!["users:".to_string(), format!("  {}:", quote(username)), format!("    {hash_line}")];
                block.extend(extra.iter().map(|l| format!("    {l}")));
                lines.splice(users_index..=users_index, block);
            }
            Some((first_name, first_entry)) => {
                let first_index = line_index(first_name.referenced.line())?;
                if first_index == users_index {
                    return Err("the users mapping is not in block style; edit it by hand".into());
                }
                let user_indent =
                    indent_of(lines.get(first_index).ok_or("user position out of range")?).to_string();
                let inner = line_index(first_entry.value.password_hash_key_line)
                    .ok()
                    .and_then(|i| lines.get(i))
                    .map(|l| indent_of(l).to_string())
                    .filter(|i| i.len() > user_indent.len())
                    .unwrap_or_else(|| format!("{user_indent}  "));
                // The users block ends before the next top-level line (or at the end).
                let mut last = first_index;
                for (i, l) in lines.iter().enumerate().skip(first_index + 1) {
                    if is_meaningful(l) {
                        if indent_of(l).is_empty() {
                            break;
                        }
                        last = i;
                    }
                }
                let mut block =
                    vec![format!("{user_indent}{}:", quote(username)), format!("{inner}{hash_line}")];
                block.extend(extra.iter().map(|l| format!("{inner}{l}")));
                lines.splice(last + 1..last + 1, block);
            }
        }
    }
    let mut out = lines.join(eol);
    out.push_str(eol);
    Ok(out)
}

/// Re-parses the edited text: the user must carry exactly the new hash and nobody else may have
/// appeared or disappeared.
fn check(
    edited: &str,
    username: &str,
    hash: &str,
    scram_count: usize,
    old_users: &BTreeSet<String>,
) -> Result<(), String> {
    let doc = read_yaml(edited).map_err(|issues| describe("edit produced invalid YAML", &issues))?;
    let mut expected = old_users.clone();
    expected.insert(username.to_string());
    if usernames(&doc) != expected {
        return Err("edit would change other entries; edit the file by hand".into());
    }
    let written = doc
        .users
        .iter()
        .flat_map(|users| users.value.users.iter())
        .find(|(name, _)| name.value == username)
        .is_some_and(|(_, user)| {
            user.value.scram.len() == scram_count
                && user
                    .value
                    .password_hash
                    .as_ref()
                    .is_some_and(|h| matches!(&h.value, RawHash::Text(t) if t == hash))
        });
    if written {
        Ok(())
    } else {
        Err("edit did not produce the expected entry; edit the file by hand".into())
    }
}
