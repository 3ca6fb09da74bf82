//! Closing must not lose data: a client that writes a burst of QoS 1 PUBLISHes and DISCONNECT
//! and then closes expects every message delivered. If moat closed its broker connection with
//! unread PUBACKs pending, the kernel would reset it and the broker would drop unread PUBLISHes.

use std::time::Duration;

use moat_e2e::Env;

#[tokio::test]
async fn qos1_burst_then_disconnect_loses_nothing() {
    let env = Env::start().await;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/qos1_burst_close.py"))
        .arg(env.broker.port.to_string())
        .arg(env.moat.port.to_string())
        .arg(env.pki.ca_cert())
        .arg("2000")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("script finished in time")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "script failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "received 2000", "messages lost on close");
}
