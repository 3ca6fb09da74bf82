//! sslyze (PyPI, installed by tests/run.sh) scans a certificate TLS listener (rustls) and must
//! find only TLS 1.2/1.3, only AEAD suites, no insecure renegotiation and no compression. A
//! machine without sslyze fails this test: the scan is the evidence, not an optional extra.

use std::time::Duration;

use serde_json::Value;

use moat_e2e::procs::run_with_timeout;
use moat_e2e::Env;

/// Only the scan commands needed, so the scan stays well under a minute.
const COMMANDS: [&str; 8] =
    ["--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--reneg", "--compression"];

fn is_aead(name: &str) -> bool {
    name.contains("_GCM_") || name.ends_with("_GCM") || name.contains("CHACHA20_POLY1305")
}

fn accepted(scan: &Value, key: &str) -> (Option<bool>, Vec<String>) {
    let r = &scan[key];
    assert_eq!(r["status"], "COMPLETED", "{key}: {r}");
    let supported = r["result"]["is_tls_version_supported"].as_bool();
    let suites = r["result"]["accepted_cipher_suites"]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: no accepted_cipher_suites list: {r}"))
        .iter()
        .map(|s| s["cipher_suite"]["name"].as_str().unwrap_or("?").to_string())
        .collect();
    (supported, suites)
}

#[tokio::test]
async fn sslyze_finds_only_tls12_tls13_aead_no_renegotiation_no_compression() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sslyze.json");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-m", "sslyze", "--quiet"])
        .arg(format!("--json_out={}", out.display()))
        .args(COMMANDS)
        .arg(format!("127.0.0.1:{}", env.moat.port));
    let started = std::time::Instant::now();
    let run = run_with_timeout(cmd, Duration::from_secs(90)).await.expect("sslyze did not finish within 90s");
    assert!(
        run.status.success(),
        "sslyze failed (tests/run.sh installs it: pip install sslyze):\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("sslyze scan took {:.1}s", started.elapsed().as_secs_f64());
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).expect("sslyze JSON")).expect("JSON");
    let server = &doc["server_scan_results"][0];
    assert_eq!(server["connectivity_status"], "COMPLETED", "{server}");
    assert_eq!(server["scan_status"], "COMPLETED", "{server}");
    let scan = &server["scan_result"];

    for old in
        ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"]
    {
        let (supported, suites) = accepted(scan, old);
        assert!(suites.is_empty(), "{old} accepted {suites:?}");
        assert_ne!(supported, Some(true), "{old} reported as supported");
    }
    let mut all = Vec::new();
    for current in ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"] {
        let (supported, suites) = accepted(scan, current);
        assert!(!suites.is_empty() && supported != Some(false), "{current}: nothing accepted");
        all.extend(suites);
    }
    let weak: Vec<&String> = all.iter().filter(|s| !is_aead(s)).collect();
    assert!(weak.is_empty(), "non-AEAD suites accepted: {weak:?} (all: {all:?})");

    let reneg = &scan["session_renegotiation"];
    assert_eq!(reneg["status"], "COMPLETED", "{reneg}");
    assert_eq!(reneg["result"]["is_vulnerable_to_client_renegotiation_dos"], false, "{reneg}");
    // sslyze calls a server without RFC 5746 secure renegotiation "vulnerable to insecure
    // renegotiation"; rustls sends the extension and refuses every renegotiation attempt.
    assert_eq!(reneg["result"]["supports_secure_renegotiation"], true, "{reneg}");
    assert_eq!(reneg["result"]["client_renegotiations_success_count"], 0, "{reneg}");
    let compression = &scan["tls_compression"];
    assert_eq!(compression["status"], "COMPLETED", "{compression}");
    assert_eq!(compression["result"]["supports_compression"], false, "{compression}");
}
