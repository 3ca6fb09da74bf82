//! Config loading: every problem is reported with file, line and key; defaults are safe.

use std::path::Path;

use super::*;

mod authn;
mod psk;
mod upstream;

/// Appended to test configs that are about something else: an explicit anonymous authenticator.
const ANON: &str = "authentication:\n  - name: anon\n    type: anonymous\n";

fn load_text(text: &str) -> Result<Config, ConfigError> {
    from_str(text, Path::new("/nonexistent/moat.yaml"))
}

fn with_anon(text: &str) -> String {
    format!("{text}{ANON}")
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match load_text(text) {
        Ok(_) => panic!("config unexpectedly valid"),
        Err(e) => e.issues,
    }
}

#[test]
fn plaintext_loopback_listener_with_defaults() {
    let c = load_text(&with_anon(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n",
    ))
    .expect("valid");
    assert_eq!(c.listeners.len(), 1);
    assert!(c.listeners[0].tls.is_none());
    assert_eq!(c.upstream.address, "127.0.0.1:1883");
    assert_eq!(c.timeouts.connect, std::time::Duration::from_secs(10));
    assert_eq!(c.limits.max_packet_size, 1024 * 1024);
    assert_eq!(c.admin.bind, "127.0.0.1:9090".parse().expect("addr"));
}

#[test]
fn unknown_key_is_an_error_with_line_and_key() {
    let found = issues(&with_anon(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n    colour: red\n",
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "colour");
    assert_eq!(found[0].line, 5);
}

#[test]
fn plaintext_must_be_explicit() {
    let found = issues(&with_anon("listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n"));
    assert_eq!(found[0].key, "listeners[0].tls");
}

#[test]
fn plaintext_on_public_address_needs_allow_insecure() {
    let found =
        issues(&with_anon("listeners:\n  - name: x\n    bind: \"0.0.0.0:1884\"\n    plaintext: true\n"));
    assert_eq!(found[0].key, "listeners[0].bind");
    assert_eq!(found[0].line, 3);
    let ok = load_text(&with_anon(
        "listeners:\n  - name: x\n    bind: \"0.0.0.0:1884\"\n    plaintext: true\n    allow_insecure: true\n",
    ));
    assert!(ok.is_ok());
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let text = "listeners:\n  - name: \"bad name\"\n    bind: \"nowhere\"\n    tls:\n      cert: missing.crt\n      key: missing.key\n      client_auth: sometimes\n\
                upstream:\n  connect_timeout: 10\ntimeouts:\n  connect: 0s\nlimits:\n  max_packet_size: 1\nlog_format: xml\n";
    let found = issues(text);
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    for expected in [
        "listeners[0].name",
        "listeners[0].bind",
        "listeners[0].tls.client_auth",
        "listeners[0].tls.cert",
        "listeners[0].tls.key",
        "upstream.connect_timeout",
        "timeouts.connect",
        "limits.max_packet_size",
        "log_format",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    let cert = found.iter().find(|i| i.key == "listeners[0].tls.cert").expect("cert issue");
    assert_eq!(cert.line, 5);
    assert!(cert.to_string().starts_with("/nonexistent/moat.yaml:5: listeners[0].tls.cert: "));
}

#[test]
fn duplicate_keys_are_rejected() {
    let found = issues("listeners: []\nlisteners: []\n");
    assert_eq!(found.len(), 1);
}

#[test]
fn empty_listener_list_is_an_error() {
    let found = issues("listeners: []\n");
    assert_eq!(found[0].key, "listeners");
}

#[test]
fn key_errors_never_echo_file_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("c.crt"), "not a cert").expect("write");
    std::fs::write(dir.path().join("k.key"), "SECRET-KEY-MATERIAL").expect("write");
    let path = dir.path().join("moat.yaml");
    let text =
        "listeners:\n  - name: t\n    bind: \"127.0.0.1:0\"\n    tls:\n      cert: c.crt\n      key: k.key\n";
    let found = from_str(text, &path).expect_err("invalid");
    let all = found.to_string();
    assert!(!all.contains("SECRET"), "{all}");
    assert!(all.contains("tls.key"), "{all}");
}

#[test]
fn listener_without_authenticator_is_refused() {
    let found = issues("listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "listeners[0].authentication");
}

#[test]
fn listener_chain_names_must_exist_and_keys_must_fit_the_type() {
    let text = "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n    authentication: [anon, nope]\n\
                authentication:\n  - name: anon\n    type: anonymous\n    path: users.yaml\n  - name: certs\n    type: x509\n    username_from: serial\n";
    let found = issues(text);
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"listeners[0].authentication"), "{keys:?}");
    assert!(keys.contains(&"authentication[0].path"), "{keys:?}");
    assert!(keys.contains(&"authentication[1].username_from"), "{keys:?}");
}

#[test]
fn missing_policy_files_are_reported() {
    let text = "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n\
                authentication:\n  - name: users\n    type: password_file\n    path: nope.yaml\nauthorization:\n  acl: nope-acl.yaml\n";
    let found = issues(text);
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"authorization.acl"), "{keys:?}");
    assert!(found.iter().any(|i| i.file.ends_with("nope.yaml")), "{found:?}");
}

#[test]
fn unknown_keys_do_not_hide_other_errors() {
    let text = "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    colour: red\n    tls:\n      cert: missing.crt\n      key: missing.key\n\
                upstream:\n  bogus:\n    nested: 1\n  address: \"127.0.0.1:1883\"\n";
    let found = issues(text);
    let summary: Vec<(u64, &str)> = found.iter().map(|i| (i.line, i.key.as_str())).collect();
    assert!(summary.contains(&(4, "colour")), "{summary:?}");
    assert!(summary.contains(&(9, "bogus")), "{summary:?}");
    assert!(summary.contains(&(6, "listeners[0].tls.cert")), "{summary:?}");
}

#[test]
fn old_tls_versions_are_refused_at_config_check() {
    let text = "listeners:\n  - name: t\n    bind: \"127.0.0.1:0\"\n    tls:\n      cert: c.crt\n      key: k.key\n      versions: [\"1.1\", \"1.3\"]\n";
    let found = issues(&with_anon(text));
    let v = found.iter().find(|i| i.key == "listeners[0].tls.versions").expect("versions issue");
    assert_eq!(v.line, 7);
    assert!(v.message.contains("never offered"), "{}", v.message);
}

#[test]
fn quotas_default_and_listener_overrides() {
    let c = load_text(&with_anon(&format!(
        "{PLAIN}    limits:\n      max_topic_levels: 4\n      shared_subscriptions: false\n\
         limits:\n  max_topic_levels: 8\n  max_inflight: 10\n  keepalive_max: 300s\n"
    )))
    .expect("valid");
    assert_eq!(c.limits.quotas.max_topic_levels, 8);
    assert_eq!(c.limits.quotas.max_topic_length, DEFAULT_MAX_TOPIC_LENGTH);
    let q = c.listeners[0].quotas;
    assert_eq!(q.max_topic_levels, 4, "listener override");
    assert_eq!(q.max_inflight, Some(10), "inherited from the global block");
    assert_eq!(q.keepalive_max, Some(300));
    assert!(!q.shared_subscriptions);
}

#[test]
fn quota_errors_name_line_and_key() {
    let found = issues(&with_anon(&format!(
        "{PLAIN}    limits:\n      max_inflight: 70000\n      keepalive_min: 1500ms\n\
         limits:\n  max_topic_levels: 0\n  keepalive_min: 60s\n  keepalive_max: 30s\n"
    )));
    let keys: Vec<(&str, u64)> = found.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert!(keys.contains(&("listeners[0].limits.max_inflight", 6)), "{found:?}");
    assert!(keys.contains(&("listeners[0].limits.keepalive_min", 7)), "{found:?}");
    assert!(keys.contains(&("limits.max_topic_levels", 9)), "{found:?}");
    assert!(keys.contains(&("limits.keepalive_min", 10)), "{found:?}");
}

#[test]
fn node_keys_are_not_listener_keys() {
    let found = issues(&with_anon(&format!("{PLAIN}    limits:\n      max_connections_per_ip: 3\n")));
    assert_eq!(found[0].key, "max_connections_per_ip", "{found:?}");
}

#[test]
fn rates_default_and_listener_overrides() {
    let c = load_text(&with_anon(&format!(
        "{PLAIN}    limits:\n      publish_rate: infinity\n      connection_rate: \"10/s, burst 20\"\n\
         limits:\n  publish_rate: 100/s\n  publish_bytes_rate: 10MB/m\n  node_publish_rate: 1000/s\n"
    )))
    .expect("valid");
    let r = c.listeners[0].rates;
    assert_eq!(r.publish_rate.map(|s| s.rate), Some(crate::policy::limits::Rate::Infinity));
    assert_eq!(
        r.publish_bytes_rate.map(|s| s.rate),
        Some(crate::policy::limits::Rate::PerSecond(1e7 / 60.0))
    );
    assert_eq!(r.connection_rate.and_then(|s| s.burst), Some(20.0));
    assert!(c.limits.node_publish_rate.is_some());
}

#[test]
fn rate_errors_name_line_and_key() {
    let found = issues(&with_anon(&format!(
        "{PLAIN}    limits:\n      connection_rate_per_ip: 5/fortnight\nlimits:\n  node_publish_bytes_rate: 0/s\n"
    )));
    let keys: Vec<(&str, u64)> = found.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert!(keys.contains(&("listeners[0].limits.connection_rate_per_ip", 6)), "{found:?}");
    assert!(keys.contains(&("limits.node_publish_bytes_rate", 8)), "{found:?}");
}

#[test]
fn overload_block() {
    let c = load_text(&with_anon(&format!(
        "{PLAIN}overload:\n  max_connections: 1000\n  max_memory: 512MiB\n  upstream_unhealthy: true\n\
         limits:\n  slow_consumer_timeout: 5s\n"
    )))
    .expect("valid");
    let o = c.overload.expect("overload");
    assert_eq!(o.max_memory, Some(512 << 20));
    assert_eq!(o.max_connections, Some(1000));
    assert!(o.upstream_unhealthy);
    assert_eq!(c.limits.slow_consumer_timeout, Some(std::time::Duration::from_secs(5)));
    let found = issues(&with_anon(&format!("{PLAIN}overload:\n  max_memory: lots\n  check_interval: 0s\n")));
    let keys: Vec<(&str, u64)> = found.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert!(keys.contains(&("overload.max_memory", 6)), "{found:?}");
    assert!(keys.contains(&("overload.check_interval", 7)), "{found:?}");
}

#[test]
fn flapping_counts_must_be_positive_and_admin_token_files_must_exist() {
    let list = issues(&with_anon(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n\
         admin:\n  tokens_file: missing-tokens.yaml\n\
         flapping:\n  max_count: 3\n  window: 1m\n  ban_time: 5m\n  auth_failure_max_count: 0\n",
    ));
    let keys: Vec<(&str, u64)> = list.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert!(keys.contains(&("flapping.auth_failure_max_count", 11)), "{list:?}");
    assert!(keys.contains(&("admin.tokens_file", 6)), "{list:?}");
}

#[test]
fn every_referenced_file_is_recorded_for_watching() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("acl.yaml"), "rules: []\n").expect("acl");
    std::fs::write(dir.path().join("bans.yaml"), "bans: []\n").expect("bans");
    let text = with_anon(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n\
         authorization:\n  acl: acl.yaml\nbans:\n  file: bans.yaml\n",
    );
    let c = from_str(&text, &dir.path().join("moat.yaml")).expect("valid");
    for f in ["moat.yaml", "acl.yaml", "bans.yaml"] {
        assert!(c.files.contains(&dir.path().join(f)), "{f} not recorded: {:?}", c.files);
    }
}

const PLAIN: &str = "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n";

#[test]
fn audit_stream_to_stdout_or_a_file() {
    let c = load_text(&with_anon(&format!("{PLAIN}audit:\n  output: stdout\n"))).expect("valid");
    assert_eq!(c.audit, Some(AuditOutput::Stdout));
    let c = load_text(&with_anon(PLAIN)).expect("valid");
    assert_eq!(c.audit, None, "no `audit`: the events stay in the main log");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.yaml");
    let c = from_str(&with_anon(&format!("{PLAIN}audit:\n  output: file\n  path: audit.jsonl\n")), &config)
        .expect("valid");
    assert_eq!(c.audit, Some(AuditOutput::File(dir.path().join("audit.jsonl"))), "relative to the config");
}

#[test]
fn audit_stream_errors_name_line_and_key() {
    let cases: [(&str, u64, &str, &str); 5] = [
        ("audit:\n  output: syslog\n", 6, "audit.output", "is not stdout or file"),
        ("audit:\n  output: file\n", 6, "audit.path", "needs a `path`"),
        ("audit:\n  output: stdout\n  path: a.log\n", 7, "audit.path", "only used with `output: file`"),
        ("audit:\n  output: file\n  path: /nonexistent-dir/a.log\n", 7, "audit.path", "does not exist"),
        ("audit:\n  output: file\n  path: /tmp\n", 7, "audit.path", "is a directory"),
    ];
    for (yaml, line, key, message) in cases {
        let found = issues(&with_anon(&format!("{PLAIN}{yaml}")));
        assert_eq!(found.len(), 1, "{yaml}: {found:?}");
        assert_eq!((found[0].line, found[0].key.as_str()), (line, key), "{yaml}: {found:?}");
        assert!(found[0].message.contains(message), "{yaml}: {}", found[0].message);
    }
    let found = issues(&with_anon(&format!("{PLAIN}audit:\n  output: stdout\n  format: cef\n")));
    assert_eq!(found[0].key, "format", "unknown keys under audit are errors: {found:?}");
}

/// A TLS listener with `extra` lines inside its `tls:` block (line 7 onwards).
fn tls_issues(extra: &str) -> Vec<ConfigIssue> {
    let text = format!(
        "listeners:\n  - name: t\n    bind: \"127.0.0.1:0\"\n    tls:\n      cert: c.crt\n      key: k.key\n{extra}"
    );
    issues(&with_anon(&text))
}

fn issue_for<'a>(found: &'a [ConfigIssue], key: &str) -> &'a ConfigIssue {
    found.iter().find(|i| i.key == key).unwrap_or_else(|| panic!("no issue for {key}: {found:?}"))
}

#[test]
fn weak_cipher_suites_are_refused_with_line_and_key() {
    let found = tls_issues(
        "      cipher_suites:\n        - TLS13_AES_128_GCM_SHA256\n        - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256\n",
    );
    let c = issue_for(&found, "listeners[0].tls.cipher_suites");
    assert_eq!(c.line, 9);
    assert!(c.message.contains("not an AEAD suite"), "{}", c.message);
    assert!(c.to_string().starts_with("/nonexistent/moat.yaml:9: listeners[0].tls.cipher_suites: "), "{c}");
}

#[test]
fn unknown_and_duplicate_cipher_suites_are_refused() {
    let found = tls_issues(
        "      cipher_suites: [\"TLS13_AES_128_GCM_SHA256\", \"tls_aes_128_gcm_sha256\", \"AES9\"]\n",
    );
    let all: Vec<&str> =
        found.iter().filter(|i| i.key.ends_with("cipher_suites")).map(|i| i.message.as_str()).collect();
    assert!(all.iter().any(|m| m.contains("listed twice")), "{all:?}");
    assert!(
        all.iter()
            .any(|m| m.contains("unknown cipher suite `AES9`") && m.contains("TLS13_AES_256_GCM_SHA384")),
        "{all:?}"
    );
}

#[test]
fn cipher_suites_must_cover_every_enabled_version() {
    let found = tls_issues("      cipher_suites: [\"TLS13_AES_128_GCM_SHA256\"]\n");
    let c = issue_for(&found, "listeners[0].tls.cipher_suites");
    assert!(c.message.contains("TLS 1.2 is enabled"), "{}", c.message);
    let ok = tls_issues("      versions: [\"1.3\"]\n      cipher_suites: [\"TLS13_AES_128_GCM_SHA256\"]\n");
    assert!(!ok.iter().any(|i| i.key.ends_with("cipher_suites")), "{ok:?}");
    let empty = tls_issues("      cipher_suites: []\n");
    assert!(issue_for(&empty, "listeners[0].tls.cipher_suites").message.contains("at least one"));
}

#[test]
fn max_chain_depth_is_bounded_and_needs_client_auth() {
    let found =
        tls_issues("      client_auth: required\n      client_ca: ca.crt\n      max_chain_depth: 0\n");
    let d = issue_for(&found, "listeners[0].tls.max_chain_depth");
    assert_eq!(d.line, 9);
    assert!(d.message.contains("between 1 and 7"), "{}", d.message);
    let found = tls_issues("      max_chain_depth: 3\n");
    assert!(issue_for(&found, "listeners[0].tls.max_chain_depth").message.contains("needs client_auth"));
}

#[test]
fn session_tickets_need_resumption() {
    let found = tls_issues("      session_resumption: false\n      session_tickets: true\n");
    let t = issue_for(&found, "listeners[0].tls.session_tickets");
    assert_eq!(t.line, 8);
    assert!(t.message.contains("need `session_resumption: true`"), "{}", t.message);
}

#[test]
fn tls_options_have_safe_defaults() {
    let o = TlsOptions::default();
    assert_eq!(o.max_chain_depth, 4);
    assert!(o.cipher_suites.is_none() && o.session_resumption && !o.session_tickets && o.watch);
}

#[test]
fn crl_fetch_urls_must_be_http_and_durations_sane() {
    let found = tls_issues(
        "      client_auth: required\n      client_ca: ca.crt\n      crl_fetch:\n        interval: 10ms\n        urls: [\"https://x/ca.crl\", \"http://ok/ca.crl\"]\n",
    );
    let i = issue_for(&found, "listeners[0].tls.crl_fetch.interval");
    assert_eq!(i.line, 10);
    assert!(i.message.contains("at least 100ms"), "{}", i.message);
    let u = issue_for(&found, "listeners[0].tls.crl_fetch.urls");
    assert_eq!(u.line, 11);
    assert!(u.message.contains("`https://x/ca.crl` is not an http:// URL"), "{}", u.message);
    let none = tls_issues("      crl_fetch: {}\n");
    assert!(issue_for(&none, "listeners[0].tls.crl_fetch").message.contains("needs client_auth"));
}

#[test]
fn revoked_sessions_is_disconnect_or_keep() {
    let found = tls_issues("      revoked_sessions: maybe\n");
    let i = issue_for(&found, "listeners[0].tls.revoked_sessions");
    assert_eq!(i.line, 7);
    assert!(i.message.contains("`maybe` is not disconnect or keep"), "{}", i.message);
}

#[test]
fn ocsp_stapling_keys_are_checked() {
    let found = tls_issues(
        "      ocsp_stapling:\n        responder_url: \"https://ocsp.example/\"\n        refresh: 10ms\n        min_interval: nope\n        timeout: 1ms\n",
    );
    let u = issue_for(&found, "listeners[0].tls.ocsp_stapling.responder_url");
    assert_eq!(u.line, 8);
    assert!(u.message.contains("is not an http:// URL"), "{}", u.message);
    let r = issue_for(&found, "listeners[0].tls.ocsp_stapling.refresh");
    assert_eq!(r.line, 9);
    assert!(r.message.contains("at least 100ms"), "{}", r.message);
    assert_eq!(issue_for(&found, "listeners[0].tls.ocsp_stapling.min_interval").line, 10);
    assert_eq!(issue_for(&found, "listeners[0].tls.ocsp_stapling.timeout").line, 11);
    let order = tls_issues("      ocsp_stapling:\n        refresh: 1s\n        min_interval: 2s\n");
    let m = issue_for(&order, "listeners[0].tls.ocsp_stapling.min_interval");
    assert!(m.message.contains("not be longer than `refresh`"), "{}", m.message);
    let unknown = tls_issues("      ocsp_stapling:\n        nonce: true\n");
    assert!(unknown.iter().any(|i| i.message.contains("nonce")), "{unknown:?}");
}

#[test]
fn client_ocsp_keys_are_checked() {
    let found = tls_issues(
        "      client_auth: required\n      client_ca: ca.crt\n      client_ocsp:\n        mode: maybe\n        cache_size: 0\n        cache_ttl: 5x\n        responder_url: \"ftp://x/\"\n",
    );
    let m = issue_for(&found, "listeners[0].tls.client_ocsp.mode");
    assert_eq!(m.line, 10);
    assert!(m.message.contains("`maybe` is not off, soft_fail or hard_fail"), "{}", m.message);
    let c = issue_for(&found, "listeners[0].tls.client_ocsp.cache_size");
    assert_eq!(c.line, 11);
    assert!(c.message.contains("between 1 and"), "{}", c.message);
    assert_eq!(issue_for(&found, "listeners[0].tls.client_ocsp.cache_ttl").line, 12);
    assert_eq!(issue_for(&found, "listeners[0].tls.client_ocsp.responder_url").line, 13);
    let none = tls_issues("      client_ocsp:\n        mode: hard_fail\n");
    let n = issue_for(&none, "listeners[0].tls.client_ocsp");
    assert!(n.message.contains("needs client_auth"), "{}", n.message);
    assert_eq!(n.line, 8);
}

#[test]
fn ocsp_stapling_needs_the_issuer_and_a_responder() {
    use crate::transport::tls::ocsp::aia_ocsp_url;
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["x".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let chain = vec![leaf.der().clone()];
    assert!(aia_ocsp_url(&chain[0]).is_none());
    let s = crate::config::OcspStapling {
        responder_url: None,
        refresh: std::time::Duration::from_secs(60),
        min_interval: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(1),
        must_staple: false,
    };
    let mut issues = crate::config::error::Issues::new("/nonexistent/moat.yaml".into());
    crate::config::ocsp::stapling_chain(&chain, &s, 5, "listeners[0].tls", &mut issues);
    let found = issues.list;
    let c = issue_for(&found, "listeners[0].tls.cert");
    assert!(c.message.contains("needs the issuer certificate"), "{}", c.message);
    assert_eq!(c.line, 5);
    let r = issue_for(&found, "listeners[0].tls.ocsp_stapling.responder_url");
    assert!(r.message.contains("no http:// OCSP URL"), "{}", r.message);
}
