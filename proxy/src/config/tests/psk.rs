//! `listeners[].tls_psk` and the `psk` authenticator: file, line and key for every mistake, the
//! identities file's contents never echoed, and the `tls-psk` feature gate.

use super::*;

const KEY: &str = "00112233445566778899aabbccddeeff";
const PSK_AUTH: &str = "authentication:\n  - name: p\n    type: psk\n";

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(identities: &str) -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("psk.txt"), identities).expect("write");
        Dir { dir }
    }

    fn load(&self, listener_extra: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "listeners:\n  - name: p\n    bind: \"127.0.0.1:0\"\n    tls_psk:\n      identities_file: psk.txt\n{listener_extra}{PSK_AUTH}"
        );
        from_str(&text, &self.dir.path().join("moat.yaml"))
    }
}

#[cfg(feature = "tls-psk")]
#[test]
fn psk_listener_loads_identities() {
    let d = Dir::new(&format!("dev-1:{KEY}\n"));
    let c = d.load("").expect("valid");
    let l = &c.listeners[0];
    assert!(l.tls.is_none());
    let psk = l.psk.as_ref().expect("psk");
    assert_eq!(psk.identities.len(), 1);
    assert!(psk.identities.get("dev-1").is_some());
    assert!(matches!(c.authenticators[0].1.as_ref(), crate::policy::authn::Authenticator::Psk { .. }));
}

#[cfg(feature = "tls-psk")]
#[test]
fn identities_file_errors_name_the_file_line_and_key_without_the_key_material() {
    let d = Dir::new(&format!("dev-1:{KEY}\ndev/2:{KEY}\nshort:abcdef0123456789\n"));
    let found = d.load("").expect_err("invalid").issues;
    let file = d.dir.path().join("psk.txt");
    let got: Vec<(u64, &str)> = found.iter().map(|i| (i.line, i.key.as_str())).collect();
    assert_eq!(got, vec![(2, "identity"), (3, "key")], "{found:?}");
    assert!(found.iter().all(|i| i.file == file), "{found:?}");
    let all = ConfigError { issues: found }.to_string();
    assert!(!all.contains("abcdef0123456789") && !all.contains(KEY), "{all}");
}

#[cfg(feature = "tls-psk")]
#[test]
fn missing_identities_file_is_an_error() {
    let d = Dir::new("");
    std::fs::remove_file(d.dir.path().join("psk.txt")).expect("rm");
    let found = d.load("").expect_err("invalid").issues;
    assert_eq!(found[0].key, "file", "{found:?}");
    assert_eq!(found[0].file, d.dir.path().join("psk.txt"));
}

#[test]
fn psk_with_tls_or_plaintext_is_an_error() {
    let d = Dir::new(&format!("dev-1:{KEY}\n"));
    let found = d.load("    plaintext: true\n").expect_err("invalid").issues;
    assert_eq!(found[0].key, "listeners[0].tls_psk", "{found:?}");
    assert_eq!(found[0].line, 5);
    assert!(found[0].message.contains("one of"), "{found:?}");
}

#[test]
fn unknown_keys_in_tls_psk_and_psk_authenticator_are_errors() {
    let d = Dir::new(&format!("dev-1:{KEY}\n"));
    let text = format!(
        "listeners:\n  - name: p\n    bind: \"127.0.0.1:0\"\n    tls_psk:\n      identities_file: psk.txt\n      hint: x\n{PSK_AUTH}"
    );
    let found = from_str(&text, &d.dir.path().join("moat.yaml")).expect_err("invalid").issues;
    assert_eq!((found[0].line, found[0].key.as_str()), (6, "hint"), "{found:?}");
    let text = format!(
        "listeners:\n  - name: p\n    bind: \"127.0.0.1:0\"\n    plaintext: true\n{PSK_AUTH}    username_from: cn\n"
    );
    let found = from_str(&text, &d.dir.path().join("moat.yaml")).expect_err("invalid").issues;
    assert_eq!(found[0].key, "authentication[0].username_from", "{found:?}");
}

/// Built with `--no-default-features`: the config says which key needs which feature.
#[cfg(not(feature = "tls-psk"))]
#[test]
fn psk_without_the_feature_is_a_config_error() {
    let d = Dir::new(&format!("dev-1:{KEY}\n"));
    let found = d.load("").expect_err("invalid").issues;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].line, found[0].key.as_str()), (5, "listeners[0].tls_psk"));
    assert!(found[0].message.contains("tls-psk"), "{found:?}");
    assert_eq!(found[0].file, d.dir.path().join("moat.yaml"));
}
