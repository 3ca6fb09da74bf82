//! MQTT over WebSocket (wss): paho-mqtt v5 over wss round-trips through moat to Mosquitto; an
//! upgrade on another path gets 404 and one without the `mqtt` subprotocol gets 400, and neither
//! reaches the broker.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient};

async fn wss_env() -> Env {
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        websocket_path: Some("/mqtt".to_string()),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn paho_v5_over_wss_round_trips() {
    let env = wss_env().await;
    let topic = unique("wss");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/paho_roundtrip.py"))
        .args(["--host", "localhost", "--port", &env.moat.port.to_string(), "--websocket", "/mqtt"])
        .arg("--cafile")
        .arg(env.pki.ca_cert())
        .args(["--topic", &topic, "--payload", "over-websocket", "--client-id", &unique("paho-ws")])
        .kill_on_drop(true);
    let out =
        tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("in time").expect("python3");
    assert!(
        out.status.success(),
        "paho over wss failed:\nstdout: {}\nstderr: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.moat.logs()
    );
    env.sub
        .wait_for(&topic, b"over-websocket", Duration::from_secs(10))
        .await
        .expect("broker saw the message");
}

/// Sends an HTTP upgrade request over TLS and returns the status line of the answer.
async fn upgrade_status(env: &Env, path: &str, protocol: Option<&str>) -> String {
    let raw = RawClient::connect(env.moat.port, env.tls()).await.expect("tls");
    let mut tls = raw.into_inner();
    let proto = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
    );
    tls.write_all(req.as_bytes()).await.expect("send request");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn wrong_path_and_missing_subprotocol_are_refused() {
    let env = wss_env().await;
    assert!(upgrade_status(&env, "/mqtt", Some("mqtt")).await.contains("101"), "the real endpoint refused");
    assert!(upgrade_status(&env, "/other", Some("mqtt")).await.contains("404"));
    assert!(upgrade_status(&env, "/mqtt", None).await.contains("400"));
    assert!(upgrade_status(&env, "/mqtt", Some("chat")).await.contains("400"));
    assert!(env.tap.all_packets().is_empty(), "refused upgrades reached the broker: {:?}", env.tap.summary());
}
