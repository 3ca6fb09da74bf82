use std::path::PathBuf;

use super::super::{BanKind, BanStore, BanStoreError};
use super::{ban, ban_until};

fn dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tmpdir");
    let p = d.path().join("bans.json");
    (d, p)
}

#[test]
fn missing_file_is_an_empty_store() {
    let (_d, p) = dir();
    let s = BanStore::open(&p).expect("open");
    assert!(s.bans().is_empty());
    assert!(!p.exists(), "opening does not create the file");
}

#[test]
fn store_survives_reopen() {
    let (_d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban(BanKind::ClientId, "a")).expect("add");
    s.add(ban_until(BanKind::Cidr, "10.0.0.0/8", 99)).expect("add");
    s.add(ban(BanKind::IpAddress, "::ffff:10.0.0.1")).expect("add");
    let again = BanStore::open(&p).expect("reopen");
    assert_eq!(again.bans(), s.bans());
    assert_eq!(again.bans()[2].who, "10.0.0.1");
}

#[test]
fn add_replaces_same_kind_and_who() {
    let (_d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban(BanKind::ClientId, "a")).expect("add");
    s.add(ban_until(BanKind::ClientId, "a", 500)).expect("add");
    s.add(ban(BanKind::Username, "a")).expect("add");
    assert_eq!(s.bans().len(), 2);
    assert_eq!(s.bans()[0].expires_at, Some(500));
}

#[test]
fn add_rejects_invalid_bans() {
    let (_d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    assert!(matches!(s.add(ban(BanKind::Cidr, "bogus")), Err(BanStoreError::InvalidBan(_))));
    assert!(matches!(s.add(ban(BanKind::ClientIdRe, "(")), Err(BanStoreError::InvalidBan(_))));
    assert!(s.bans().is_empty());
}

#[test]
fn remove_compares_canonical_forms() {
    let (_d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban(BanKind::IpAddress, "10.0.0.1")).expect("add");
    assert!(!s.remove(BanKind::ClientId, "10.0.0.1").expect("remove"));
    assert!(s.remove(BanKind::IpAddress, "::ffff:10.0.0.1").expect("remove"));
    assert!(BanStore::open(&p).expect("reopen").bans().is_empty());
}

#[test]
fn purge_expired_drops_and_persists() {
    let (_d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban_until(BanKind::ClientId, "a", 10)).expect("add");
    s.add(ban_until(BanKind::ClientId, "b", 20)).expect("add");
    s.add(ban(BanKind::ClientId, "c")).expect("add");
    assert_eq!(s.purge_expired(5).expect("purge"), 0);
    assert_eq!(s.purge_expired(10).expect("purge"), 1);
    assert_eq!(BanStore::open(&p).expect("reopen").bans().len(), 2);
    assert_eq!(s.purge_expired(1000).expect("purge"), 1);
    assert_eq!(BanStore::open(&p).expect("reopen").bans().len(), 1);
}

#[test]
fn corrupt_store_is_an_error() {
    let (_d, p) = dir();
    for bad in [
        "",
        "{",
        "not json",
        r#"{"version":1}"#,
        r#"{"version":2,"bans":[]}"#,
        r#"{"version":1,"bans":[],"extra":1}"#,
        r#"{"version":1,"bans":[{"kind":"ipaddr","who":"nope","reason":"","by":"","created_at":0,"expires_at":null}]}"#,
        r#"{"version":1,"bans":[{"kind":"clientid","who":"a","reason":"","by":"","created_at":0,"expires_at":null},{"kind":"clientid","who":"a","reason":"","by":"","created_at":0,"expires_at":null}]}"#,
    ] {
        std::fs::write(&p, bad).expect("write");
        assert!(matches!(BanStore::open(&p), Err(BanStoreError::Corrupt { .. })), "{bad:?} must be corrupt");
    }
}

#[test]
fn failed_write_leaves_old_file_and_memory_intact() {
    let (d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban(BanKind::ClientId, "a")).expect("add");
    let before = std::fs::read(&p).expect("read");
    let err = s.commit_with(Vec::new(), |_| Err(std::io::Error::other("injected")));
    assert!(matches!(err, Err(BanStoreError::Io { .. })));
    assert_eq!(std::fs::read(&p).expect("read"), before);
    assert_eq!(s.bans().len(), 1);
    let leftovers = std::fs::read_dir(d.path()).expect("ls").count();
    assert_eq!(leftovers, 1, "temp file cleaned up");
}

#[cfg(unix)]
#[test]
fn read_only_dir_write_fails_and_old_file_stays() {
    use std::os::unix::fs::PermissionsExt as _;
    let (d, p) = dir();
    let mut s = BanStore::open(&p).expect("open");
    s.add(ban(BanKind::ClientId, "a")).expect("add");
    let before = std::fs::read(&p).expect("read");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root ignores directory permissions; then this test can only show that nothing breaks.
    let privileged = std::fs::write(d.path().join("probe"), b"").is_ok();
    let r = s.add(ban(BanKind::ClientId, "b"));
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if privileged {
        assert!(r.is_ok());
        return;
    }
    assert!(matches!(r, Err(BanStoreError::Io { .. })), "{r:?}");
    assert_eq!(std::fs::read(&p).expect("read"), before);
    assert_eq!(s.bans().len(), 1);
    assert_eq!(BanStore::open(&p).expect("reopen").bans().len(), 1);
}
