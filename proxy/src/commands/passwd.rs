//! `moat passwd FILE USER`: add or replace a user in a YAML password file with an argon2id hash.
//! The password is read without echo from a terminal (or as one line from a pipe), never from the
//! command line, where it would land in shell history and `ps`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::policy::authn::password::{hash_password, upsert_user};

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read the password: {0}")]
    Input(std::io::Error),
    #[error("the password is empty")]
    Empty,
    #[error("the passwords do not match")]
    Mismatch,
    #[error("{0}")]
    Edit(String),
}

/// Reads the password: twice with echo off on a terminal, once from a pipe.
pub fn read_password() -> Result<Vec<u8>, PasswdError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(PasswdError::Input)?;
        let password = line.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
        return if password.is_empty() { Err(PasswdError::Empty) } else { Ok(password) };
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first.is_empty() {
        return Err(PasswdError::Empty);
    }
    if first != second {
        return Err(PasswdError::Mismatch);
    }
    Ok(first)
}

fn prompt(label: &str) -> Result<Vec<u8>, PasswdError> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    set_echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    set_echo(true);
    eprintln!();
    read.map_err(PasswdError::Input)?;
    Ok(line.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
}

/// Terminal echo via `stty`, which every Unix has; no extra dependency for one prompt.
fn set_echo(on: bool) {
    let _ = Command::new("stty").arg(if on { "echo" } else { "-echo" }).stdin(Stdio::inherit()).status();
}

/// Adds or replaces `user` in `file` (created when missing), written atomically with mode 0600.
pub fn set_password(file: &Path, user: &str, password: &[u8]) -> Result<(), PasswdError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "users: {}\n".to_string(),
        Err(source) => return Err(PasswdError::Read { path: file.display().to_string(), source }),
    };
    let hash = hash_password(password).map_err(|e| PasswdError::Edit(e.to_string()))?;
    let updated = upsert_user(&text, user, &hash).map_err(PasswdError::Edit)?;
    let write_err = |source| PasswdError::Write { path: file.display().to_string(), source };
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    tmp.write_all(updated.as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600)).map_err(write_err)?;
    }
    tmp.persist(file).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::authn::password::load_password_file;

    #[test]
    fn creates_then_updates_a_password_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users.yaml");
        set_password(&file, "alice", b"first secret").expect("create");
        set_password(&file, "bob", b"bob's").expect("add");
        set_password(&file, "alice", b"second secret").expect("replace");
        let users = load_password_file(&file).expect("loads");
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", b"second secret").is_some());
        assert!(users.verify("alice", b"first secret").is_none());
        assert!(users.verify("bob", b"bob's").is_some());
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(!text.contains("secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
