//! `upstream:`: plaintext only to this host unless asked for, TLS material checked at load,
//! PROXY protocol values.

use super::*;

const PLAIN: &str = "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n";

fn with_upstream(upstream: &str) -> String {
    with_anon(&format!("{PLAIN}upstream:\n{upstream}"))
}

fn keys(found: &[ConfigIssue]) -> Vec<(u64, &str)> {
    found.iter().map(|i| (i.line, i.key.as_str())).collect()
}

#[test]
fn a_remote_broker_in_clear_needs_tls_or_allow_insecure() {
    let found = issues(&with_upstream("  address: \"10.0.0.5:1883\"\n"));
    assert_eq!(keys(&found), vec![(6, "upstream.address")], "{found:?}");
    assert!(found[0].message.contains("upstream.tls"), "{}", found[0].message);
    let found = issues(&with_upstream("  address: \"broker.internal:1883\"\n"));
    assert_eq!(keys(&found), vec![(6, "upstream.address")]);

    let ok =
        load_text(&with_upstream("  address: \"10.0.0.5:1883\"\n  allow_insecure: true\n")).expect("valid");
    assert!(ok.upstream.tls.is_none());
    load_text(&with_upstream("  address: \"localhost:1883\"\n")).expect("localhost is local");
    load_text(&with_upstream("  address: \"[::1]:1883\"\n")).expect("::1 is local");
    // A malformed address is one error, not two.
    let found = issues(&with_upstream("  address: \"broker\"\n"));
    assert_eq!(keys(&found), vec![(6, "upstream.address")], "{found:?}");
    assert!(found[0].message.contains("HOST:PORT"));
}

#[test]
fn tls_needs_a_readable_ca_and_a_matching_pair() {
    let found = issues(&with_upstream("  address: \"10.0.0.5:8883\"\n  tls:\n    server_name: broker\n"));
    // The line of the `tls` block (its first key).
    assert_eq!(keys(&found), vec![(8, "upstream.tls.ca")], "{found:?}");

    let found = issues(&with_upstream("  address: \"10.0.0.5:8883\"\n  tls:\n    ca: missing-ca.crt\n"));
    assert_eq!(keys(&found), vec![(8, "upstream.tls.ca")], "{found:?}");
    assert!(found[0].message.contains("missing-ca.crt"));

    let found = issues(&with_upstream(
        "  address: \"10.0.0.5:8883\"\n  tls:\n    ca: ca.crt\n    cert: client.crt\n",
    ));
    // The CA cannot be read either (no such dir): both problems are reported.
    assert!(keys(&found).contains(&(8, "upstream.tls.ca")), "{found:?}");
}

#[test]
fn tls_from_real_files_builds_a_client_config() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = rcgen::generate_simple_self_signed(vec!["broker.internal".to_string()]).expect("cert");
    std::fs::write(dir.path().join("ca.crt"), ca.cert.pem()).expect("write");
    std::fs::write(dir.path().join("client.crt"), ca.cert.pem()).expect("write");
    std::fs::write(dir.path().join("client.key"), ca.signing_key.serialize_pem()).expect("write");
    let config = |extra: &str| {
        with_upstream(&format!(
            "  address: \"10.0.0.5:8883\"\n  proxy_protocol: v2\n  tls:\n    ca: ca.crt\n{extra}"
        ))
    };
    let source = dir.path().join("moat.yaml");
    let c = from_str(&config(""), &source).expect("valid");
    let before = format!("{:?}", c.upstream);
    // A reload with another CA in the same file must show as a change (restart_required), and
    // the Debug form never carries PEM contents.
    let other = rcgen::generate_simple_self_signed(vec!["broker.internal".to_string()]).expect("cert");
    std::fs::write(dir.path().join("ca.crt"), other.cert.pem()).expect("write");
    let after = format!("{:?}", from_str(&config(""), &source).expect("valid").upstream);
    assert_ne!(before, after);
    assert!(!after.contains("BEGIN"), "{after}");
    let tls = c.upstream.tls.expect("tls");
    assert_eq!(
        format!("{:?}", tls.server_name),
        format!("{:?}", rustls_pki_types::ServerName::try_from("10.0.0.5").expect("ip"))
    );
    assert!(c.upstream.proxy_protocol);

    let c = from_str(
        &config("    server_name: broker.internal\n    cert: client.crt\n    key: client.key\n"),
        &source,
    )
    .expect("valid with a client certificate");
    assert!(c.upstream.tls.expect("tls").config.client_auth_cert_resolver.has_certs());

    // Only one of the pair.
    let found = match from_str(&config("    key: client.key\n"), &source) {
        Ok(_) => panic!("key without cert accepted"),
        Err(e) => e.issues,
    };
    assert_eq!(keys(&found), vec![(10, "upstream.tls.cert")], "{found:?}");
    // A key that does not belong to the certificate.
    let other = rcgen::KeyPair::generate().expect("key");
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).expect("write");
    let found = match from_str(&config("    cert: client.crt\n    key: other.key\n"), &source) {
        Ok(_) => panic!("mismatched key accepted"),
        Err(e) => e.issues,
    };
    assert_eq!(keys(&found), vec![(11, "upstream.tls.key")], "{found:?}");
    // The key file's contents never appear in an error.
    assert!(!found[0].message.contains("PRIVATE KEY"));
}

#[test]
fn proxy_protocol_is_off_or_v2() {
    let found = issues(&with_upstream("  address: \"127.0.0.1:1883\"\n  proxy_protocol: v1\n"));
    assert_eq!(keys(&found), vec![(7, "upstream.proxy_protocol")], "{found:?}");
    let c = load_text(&with_upstream("  address: \"127.0.0.1:1883\"\n  proxy_protocol: \"off\"\n"))
        .expect("valid");
    assert!(!c.upstream.proxy_protocol);
}
