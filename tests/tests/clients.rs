//! Third-party clients through moat (mosquitto_pub/sub, paho-mqtt) and the mTLS gate.

use std::process::Stdio;
use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::procs::run_with_timeout;
use moat_e2e::{unique, v311, v5, ClientAuth, Env, MoatOptions, RawClient};
use tokio::io::{AsyncBufReadExt, BufReader};

/// TLS arguments for mosquitto_pub/sub.
fn tls_args(env: &Env, with_cert: bool) -> Vec<String> {
    let mut a = vec!["--cafile".to_string(), env.pki.ca_cert().display().to_string()];
    if with_cert {
        a.extend([
            "--cert".into(),
            env.pki.client.cert.display().to_string(),
            "--key".into(),
            env.pki.client.key.display().to_string(),
        ]);
    }
    a
}

/// mosquitto_sub (MQTT v5, -d to see its SUBACK) then mosquitto_pub (3.1.1) through moat.
async fn mosquitto_cli_roundtrip(env: &Env, with_cert: bool) {
    let port = env.moat.port.to_string();
    let topic = unique("cli");
    let message = format!("hello from mosquitto_pub {}", unique("m"));
    // stdout is a pipe: line-buffer it so the -d SUBACK line arrives before exit.
    let mut sub = tokio::process::Command::new("stdbuf");
    sub.args([
        "-oL",
        "mosquitto_sub",
        "-h",
        "localhost",
        "-p",
        &port,
        "-V",
        "mqttv5",
        "-d",
        "-v",
        "-C",
        "1",
        "-W",
        "20",
        "-q",
        "1",
    ])
    .args(["-t", &topic, "-i", &unique("msub")])
    .args(tls_args(env, with_cert))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = sub.spawn().expect("spawn mosquitto_sub");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait for the SUBACK (mosquitto_sub -d prints "Client ... received SUBACK").
    let suback = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l.clone());
            if l.contains("SUBACK") {
                return true;
            }
        }
        false
    })
    .await;
    if suback != Ok(true) {
        let _ = child.kill().await;
        let err = child.wait_with_output().await.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        panic!(
            "mosquitto_sub got no SUBACK through moat: stdout {seen:?}, stderr {err:?}\n{}",
            env.moat.logs()
        );
    }

    let mut publ = tokio::process::Command::new("mosquitto_pub");
    publ.args(["-h", "localhost", "-p", &port, "-V", "mqttv311", "-q", "1", "-t", &topic, "-m", &message])
        .args(["-i", &unique("mpub")])
        .args(tls_args(env, with_cert));
    let out = run_with_timeout(publ, Duration::from_secs(15)).await.unwrap();
    assert!(out.status.success(), "mosquitto_pub failed: {}", String::from_utf8_lossy(&out.stderr));

    let expected = format!("{topic} {message}");
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l.clone());
            if l == expected {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "mosquitto_sub did not print {expected:?}; stdout: {seen:?}");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "mosquitto_sub exit {status}");
    env.sub.wait_for(&topic, message.as_bytes(), Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn mosquitto_pub_sub_over_tls() {
    let env = Env::start().await;
    mosquitto_cli_roundtrip(&env, false).await;
}

#[tokio::test]
async fn mosquitto_pub_sub_over_mtls() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Required, ..Default::default() }).await;
    mosquitto_cli_roundtrip(&env, true).await;
}

#[tokio::test]
async fn mosquitto_pub_without_cert_rejected_by_mtls() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Required, ..Default::default() }).await;
    let topic = unique("nocert-cli");
    let mut publ = tokio::process::Command::new("mosquitto_pub");
    publ.args(["-h", "localhost", "-p", &env.moat.port.to_string(), "-q", "1", "-t", &topic, "-m", "x"])
        .args(tls_args(&env, false));
    let out = run_with_timeout(publ, Duration::from_secs(15)).await.unwrap();
    assert!(
        !out.status.success(),
        "mosquitto_pub without a client cert succeeded against client_auth: required"
    );
    env.assert_no_upstream_bytes("mosquitto_pub without cert").await;
}

async fn paho(env: &Env, with_cert: bool) {
    let topic = unique("paho");
    let message = unique("hello-paho");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/paho_roundtrip.py"))
        .args(["--host", "localhost", "--port", &env.moat.port.to_string()])
        .arg("--cafile")
        .arg(env.pki.ca_cert())
        .args(["--topic", &topic, "--payload", &message, "--qos", "1", "--client-id", &unique("paho")]);
    if with_cert {
        cmd.arg("--cert").arg(&env.pki.client.cert).arg("--key").arg(&env.pki.client.key);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(30)).await.unwrap();
    assert!(
        out.status.success(),
        "paho v5 round trip through moat failed:\nstdout: {}\nstderr: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.moat.logs()
    );
    env.sub.wait_for(&topic, message.as_bytes(), Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn paho_v5_over_tls() {
    let env = Env::start().await;
    paho(&env, false).await;
}

#[tokio::test]
async fn paho_v5_over_mtls() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Required, ..Default::default() }).await;
    paho(&env, true).await;
}

// ----- 7. mTLS required: no certificate / untrusted CA fail the handshake

/// TLS 1.3 client auth fails after the client's Finished: the error shows up either in the
/// handshake or on the first read. Either way no CONNACK may ever arrive.
async fn assert_rejected(env: &Env, cfg: std::sync::Arc<rustls::ClientConfig>, what: &str) {
    match RawClient::connect(env.moat.port, cfg.clone()).await {
        Err(_) => {}
        Ok(mut c) => {
            let _ = c.send(&packets::connect(Version::V311, &unique("rej"))).await;
            match c.read_packet(Duration::from_secs(5)).await {
                Ok(None) => {}
                Err(e) if !e.to_string().contains("no complete packet within") => {}
                other => panic!("{what}: TLS session was not rejected: {other:?}\n{}", env.moat.logs()),
            }
        }
    }
    // rumqttc cannot connect either.
    let r = v5::Client::connect(env.v5_options(&unique("rej5"), cfg)).await;
    assert!(r.is_err(), "{what}: rumqttc v5 connected through client_auth: required");
    env.assert_no_upstream_bytes(what).await;
    assert!(
        env.tap.connections().is_empty(),
        "{what}: moat opened an upstream connection: {:?}",
        env.tap.summary()
    );
}

#[tokio::test]
async fn mtls_required_rejects_client_without_certificate() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Required, ..Default::default() }).await;
    assert_rejected(&env, env.tls(), "no client certificate").await;
    // Control: the trusted certificate is accepted on the same listener.
    let c = v311::Client::connect(env.v311_options(&unique("ok"), env.mtls())).await;
    assert!(c.is_ok(), "trusted client cert rejected: {:?}\n{}", c.err(), env.moat.logs());
}

#[tokio::test]
async fn mtls_required_rejects_certificate_from_untrusted_ca() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Required, ..Default::default() }).await;
    assert_rejected(&env, env.pki.untrusted_client_config(), "untrusted client CA").await;
}

#[tokio::test]
async fn mtls_optional_accepts_no_cert_and_rejects_untrusted_cert() {
    let env = Env::start_with(MoatOptions { client_auth: ClientAuth::Optional, ..Default::default() }).await;
    let c = v311::Client::connect(env.v311_options(&unique("nocert"), env.tls())).await;
    assert!(c.is_ok(), "optional client auth rejected a client without cert: {:?}", c.err());
    let c = v311::Client::connect(env.v311_options(&unique("cert"), env.mtls())).await;
    assert!(c.is_ok(), "optional client auth rejected a trusted cert: {:?}", c.err());
    let bad =
        v311::Client::connect(env.v311_options(&unique("bad"), env.pki.untrusted_client_config())).await;
    assert!(bad.is_err(), "optional client auth accepted a cert from an untrusted CA");
}

#[tokio::test]
async fn tls_client_not_trusting_server_ca_fails() {
    // Sanity of the server side: a client trusting only the untrusted CA must refuse moat.
    let env = Env::start().await;
    let cfg = moat_e2e::tls::client_config(&[env.pki.untrusted_ca_cert()], None);
    assert!(RawClient::connect(env.moat.port, cfg).await.is_err());
    env.assert_no_upstream_bytes("client distrusting server").await;
}
