//! `moat passwd FILE USER`: add or replace a user in a YAML password file with an argon2id hash.
//! The password is read without echo from a terminal (or as one line from a pipe), never from the
//! command line, where it would land in shell history and `ps`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::policy::authn::password::{hash_password, upsert_user_with_scram};
use crate::policy::authn::scram::{Mechanism, ScramCredential, MIN_ITERATIONS};

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
    set_password_with_scram(file, user, password, None)
}

/// [`set_password`], plus SCRAM-SHA-256 and SCRAM-SHA-512 credentials (random 16-byte salts)
/// with `scram_iterations` when given. Without it, any SCRAM credential of the user is removed,
/// so the old password stops working over SCRAM too.
pub fn set_password_with_scram(
    file: &Path,
    user: &str,
    password: &[u8],
    scram_iterations: Option<u32>,
) -> Result<(), PasswdError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "users: {}\n".to_string(),
        Err(source) => return Err(PasswdError::Read { path: file.display().to_string(), source }),
    };
    let hash = hash_password(password).map_err(|e| PasswdError::Edit(e.to_string()))?;
    let mut scram = Vec::new();
    if let Some(iterations) = scram_iterations {
        if iterations < MIN_ITERATIONS {
            return Err(PasswdError::Edit(format!("--scram-iterations must be at least {MIN_ITERATIONS}")));
        }
        for mechanism in [Mechanism::Sha256, Mechanism::Sha512] {
            scram
                .push(ScramCredential::generate(mechanism, password, iterations).map_err(PasswdError::Edit)?);
        }
    }
    let updated = upsert_user_with_scram(&text, user, &hash, &scram).map_err(PasswdError::Edit)?;
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

    #[test]
    fn scram_credentials_are_written_and_removed_with_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users.yaml");
        set_password(&file, "bob", b"bob's").expect("add");
        set_password_with_scram(&file, "alice", b"first secret", Some(4096)).expect("create");
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(text.matches("scram_sha256: \"4096:").count(), 1, "{text}");
        assert_eq!(text.matches("scram_sha512: \"4096:").count(), 1, "{text}");
        let users = load_password_file(&file).expect("loads");
        assert!(users.has_scram());
        // Replacing the password replaces the SCRAM credentials; without --scram they go.
        set_password_with_scram(&file, "alice", b"second", Some(5000)).expect("replace");
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(text.matches("scram_sha").count(), 2, "{text}");
        assert!(text.contains("\"5000:"));
        set_password(&file, "alice", b"third").expect("replace without scram");
        let users = load_password_file(&file).expect("loads");
        assert!(!users.has_scram());
        assert!(users.verify("bob", b"bob's").is_some());
        assert!(set_password_with_scram(&file, "alice", b"x", Some(1000)).is_err());
    }
}
