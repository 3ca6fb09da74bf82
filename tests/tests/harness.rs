//! Self-tests of the harness against mosquitto alone (no moat): if these fail, the other
//! suites' verdicts mean nothing. They also pin down the clients' behaviour the moat tests
//! rely on (PKI accepted by OpenSSL, mosquitto_pub/sub flags, the paho script).

use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::procs::run_with_timeout;
use moat_e2e::{payload, unique, v311, v5, DirectSubscriber, Mosquitto, Pki, QoS, RawClient, Tap};

/// mosquitto with an extra TLS listener using the test PKI; returns (broker, tls_port).
async fn tls_mosquitto(pki: &Pki, require_cert: bool) -> (Mosquitto, u16) {
    let tls_port = moat_e2e::net::free_port();
    let (ca, cert, key) = (pki.ca_cert().to_owned(), pki.server.cert.clone(), pki.server.key.clone());
    let broker = Mosquitto::start_with(move |_| {
        format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
            ca.display(),
            cert.display(),
            key.display(),
            require_cert
        )
    })
    .await;
    assert!(moat_e2e::net::can_connect(tls_port).await, "TLS listener not up\n{}", broker.proc.logs());
    (broker, tls_port)
}

#[tokio::test]
async fn direct_subscriber_sees_plain_publishes_v311_and_v5() {
    let broker = Mosquitto::start().await;
    let sub = DirectSubscriber::start(broker.port).await.unwrap();
    let p3 = v311::Client::connect(v311::options(&unique("p3"), broker.port, None)).await.unwrap();
    let p5 = v5::Client::connect(v5::options(&unique("p5"), broker.port, None)).await.unwrap();
    let data = payload(3000, 1);
    p3.publish("self/v311", QoS::ExactlyOnce, false, data.clone()).await.unwrap();
    p5.publish("self/v5", QoS::AtLeastOnce, false, data.clone()).await.unwrap();
    let got = sub.wait_for("self/v311", &data, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.qos, QoS::ExactlyOnce);
    sub.wait_for("self/v5", &data, Duration::from_secs(5)).await.unwrap();
    sub.barrier().await.unwrap();
    assert_eq!(sub.messages().len(), 2, "{:?}", sub.summary());
}

#[tokio::test]
async fn assert_nothing_fails_when_something_arrived() {
    let broker = Mosquitto::start().await;
    let sub = DirectSubscriber::start(broker.port).await.unwrap();
    let p = v311::Client::connect(v311::options(&unique("p"), broker.port, None)).await.unwrap();
    p.publish("self/leak", QoS::AtLeastOnce, false, b"x".to_vec()).await.unwrap();
    let r = tokio::spawn(async move { sub.assert_nothing("self-test").await }).await;
    assert!(r.is_err(), "assert_nothing must panic when the broker received something");
}

#[tokio::test]
async fn tap_records_what_goes_upstream() {
    let broker = Mosquitto::start().await;
    let sub = DirectSubscriber::start(broker.port).await.unwrap();
    let tap = Tap::start(broker.port).await;
    let c = v311::Client::connect(v311::options(&unique("t"), tap.port, None)).await.unwrap();
    c.publish("self/tap", QoS::AtLeastOnce, false, b"via tap".to_vec()).await.unwrap();
    sub.wait_for("self/tap", b"via tap", Duration::from_secs(5)).await.unwrap();
    c.disconnect().await;
    assert!(tap.wait_all_closed(Duration::from_secs(3)).await);
    let types = tap.connections()[0].packet_types();
    assert_eq!(types.first(), Some(&"CONNECT"), "{types:?}");
    assert!(types.contains(&"PUBLISH"), "{types:?}");
    assert_eq!(types.last(), Some(&"DISCONNECT"), "{types:?}");
}

#[tokio::test]
async fn pki_and_client_configs_work_against_mosquitto_tls() {
    let pki = Pki::new();
    let (broker, tls_port) = tls_mosquitto(&pki, true).await;
    let sub = DirectSubscriber::start(broker.port).await.unwrap();

    // rumqttc v3.1.1 and v5 with a client certificate.
    let c3 = v311::Client::connect(v311::options(&unique("m3"), tls_port, Some(pki.mtls_client_config())))
        .await
        .unwrap();
    c3.publish("self/tls3", QoS::AtLeastOnce, false, b"tls3".to_vec()).await.unwrap();
    let c5 = v5::Client::connect(v5::options(&unique("m5"), tls_port, Some(pki.mtls_client_config())))
        .await
        .unwrap();
    c5.publish("self/tls5", QoS::ExactlyOnce, false, b"tls5".to_vec()).await.unwrap();
    sub.wait_for("self/tls3", b"tls3", Duration::from_secs(5)).await.unwrap();
    sub.wait_for("self/tls5", b"tls5", Duration::from_secs(5)).await.unwrap();

    // Raw socket speaks MQTT through TLS.
    let mut raw = RawClient::connect(tls_port, pki.mtls_client_config()).await.unwrap();
    raw.send(&packets::connect(Version::V5, &unique("raw"))).await.unwrap();
    let ack = raw.expect_packet(packets::CONNACK, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ack.connack_code(), Some(0));
    raw.send(&packets::publish(Version::V5, b"self/raw", 0, false, 0, b"raw")).await.unwrap();
    sub.wait_for("self/raw", b"raw", Duration::from_secs(5)).await.unwrap();
    // A malformed packet makes mosquitto close: the raw reader sees it.
    raw.send(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]).await.unwrap();
    raw.read_until_closed(Duration::from_secs(5)).await.unwrap();

    // Without a client certificate the handshake (or the first read) fails.
    let failed = match RawClient::connect(tls_port, pki.client_config()).await {
        Err(_) => true,
        Ok(mut c) => {
            let _ = c.send(&packets::connect(Version::V311, "nocert")).await;
            matches!(c.read_packet(Duration::from_secs(5)).await, Ok(None) | Err(_))
        }
    };
    assert!(failed, "mosquitto accepted a client without certificate?");
}

#[tokio::test]
async fn mosquitto_clients_and_paho_work_against_mosquitto_tls() {
    let pki = Pki::new();
    let (broker, tls_port) = tls_mosquitto(&pki, false).await;
    let sub = DirectSubscriber::start(broker.port).await.unwrap();
    let mut cmd = tokio::process::Command::new("mosquitto_pub");
    cmd.args(["-h", "localhost", "-p", &tls_port.to_string(), "--cafile"]).arg(pki.ca_cert()).args([
        "-t",
        "self/mp",
        "-m",
        "hello-cli",
        "-q",
        "1",
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(10)).await.unwrap();
    assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
    sub.wait_for("self/mp", b"hello-cli", Duration::from_secs(5)).await.unwrap();

    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/paho_roundtrip.py"))
        .args(["--port", &tls_port.to_string(), "--cafile"])
        .arg(pki.ca_cert())
        .args(["--topic", "self/paho", "--payload", "hello-paho", "--client-id", &unique("paho")]);
    let out = run_with_timeout(cmd, Duration::from_secs(20)).await.unwrap();
    assert!(
        out.status.success(),
        "paho: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sub.wait_for("self/paho", b"hello-paho", Duration::from_secs(5)).await.unwrap();
}
