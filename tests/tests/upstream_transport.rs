//! How moat reaches the broker: `upstream.tls` (a broker that is not on this host, verified
//! against a CA, optionally with a client certificate) and `upstream.proxy_protocol: v2` (the
//! broker learns the device's address and certificate CN).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::{unique, ClientAuth, DirectSubscriber, Moat, MoatOptions, Mosquitto, Pki, RawClient};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// A Mosquitto whose only listener is TLS with the test server certificate and which requires a
/// client certificate from the test CA: a plaintext or unauthenticated moat cannot talk to it.
async fn tls_broker(pki: &Pki) -> Mosquitto {
    let (ca, cert, key) = (pki.ca_cert().to_owned(), pki.server.cert.clone(), pki.server.key.clone());
    Mosquitto::start_with(move |_| {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            ca.display(),
            cert.display(),
            key.display()
        )
    })
    .await
}

fn upstream_tls(ca: &std::path::Path, extra: &str) -> String {
    format!("  tls:\n    ca: \"{}\"\n{extra}", ca.display())
}

async fn connected(moat: &Moat, pki: &Pki, v: Version, id: &str) -> RawClient {
    let mut c = RawClient::connect(moat.port, pki.client_config()).await.expect("connect to moat");
    c.send(&packets::connect(v, id)).await.expect("CONNECT");
    let ack =
        c.expect_packet(packets::CONNACK, WAIT).await.unwrap_or_else(|e| panic!("{e}\n{}", moat.logs()));
    assert_eq!(ack.connack_code(), Some(0), "{}", moat.logs());
    c
}

#[tokio::test]
async fn messages_cross_a_verified_tls_connection_to_the_broker() {
    let pki = Pki::new();
    let broker = tls_broker(&pki).await;
    let client =
        format!("    cert: \"{}\"\n    key: \"{}\"\n", pki.client.cert.display(), pki.client.key.display());
    let opts = MoatOptions {
        upstream: broker.addr(),
        upstream_extra: Some(upstream_tls(pki.ca_cert(), &client)),
        ..Default::default()
    };
    let moat = Moat::start(&pki, &opts).await;

    let topic = format!("up/{}", unique("tls"));
    let mut sub = connected(&moat, &pki, Version::V5, &unique("sub")).await;
    sub.send(&packets::subscribe(Version::V5, 1, topic.as_bytes(), 1)).await.expect("SUBSCRIBE");
    sub.expect_packet(packets::SUBACK, WAIT).await.expect("SUBACK");
    let mut publisher = connected(&moat, &pki, Version::V311, &unique("pub")).await;
    publisher
        .send(&packets::publish(Version::V311, topic.as_bytes(), 1, false, 7, b"over-tls"))
        .await
        .expect("PUBLISH");
    publisher.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK from the broker");
    let got = sub.expect_packet(packets::PUBLISH, WAIT).await.expect("delivered through the TLS broker");
    assert!(got.body.windows(8).any(|w| w == b"over-tls"), "{got:?}");
}

/// Starts moat in front of the TLS broker with `tls_extra` and expects every CONNECT to be
/// refused as "server unavailable" without the broker accepting a session.
async fn refused_with(pki: &Pki, broker: &Mosquitto, ca: &std::path::Path, extra: &str, why: &str) {
    let client =
        format!("    cert: \"{}\"\n    key: \"{}\"\n", pki.client.cert.display(), pki.client.key.display());
    let opts = MoatOptions {
        upstream: broker.addr(),
        upstream_extra: Some(upstream_tls(ca, &format!("{client}{extra}"))),
        ..Default::default()
    };
    let moat = Moat::start(pki, &opts).await;
    for (v, code) in [(Version::V5, 0x88), (Version::V311, 0x03)] {
        let mut c = RawClient::connect(moat.port, pki.client_config()).await.expect("connect");
        c.send(&packets::connect(v, &unique("refused"))).await.expect("CONNECT");
        let ack = c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
        assert_eq!(ack.connack_code(), Some(code), "{why}: {v:?}\n{}", moat.logs());
    }
    assert!(moat.logs().contains("TLS handshake failed"), "{why}: {}", moat.logs());
    assert!(!broker.proc.logs().contains("New client connected"), "{why}: the broker accepted a session");
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_or_for_another_name_is_refused() {
    let pki = Pki::new();
    let broker = tls_broker(&pki).await;
    refused_with(&pki, &broker, pki.untrusted_ca_cert(), "", "untrusted CA").await;
    refused_with(&pki, &broker, pki.ca_cert(), "    server_name: broker.example.com\n", "wrong name").await;
}

/// What a broker with PROXY protocol support would read: the parsed header of each connection.
#[derive(Debug, Clone)]
struct Header {
    family: u8,
    source: SocketAddr,
    destination: SocketAddr,
    /// The SSL TLV: client flags, verify result, CN sub-TLV.
    ssl: Option<(u8, u32, Option<String>)>,
}

/// Reads one v2 header (an implementation of the spec independent of moat's) and relays the rest
/// of the connection to the broker. Connections that close before a header (readiness probes)
/// are ignored.
async fn proxy_aware_front(broker_port: u16) -> (SocketAddr, Arc<Mutex<Vec<Header>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                if tcp.read_exact(&mut head).await.is_err() {
                    return;
                }
                assert_eq!(&head[..12], b"\r\n\r\n\0\r\nQUIT\n", "v2 signature");
                assert_eq!(head[12], 0x21, "version 2, PROXY command");
                let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[14], head[15]]))];
                tcp.read_exact(&mut body).await.expect("header body");
                record.lock().unwrap().push(parse(head[13], &body));
                let mut broker = TcpStream::connect(("127.0.0.1", broker_port)).await.expect("broker");
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut broker).await;
            });
        }
    });
    (addr, seen)
}

fn parse(family: u8, body: &[u8]) -> Header {
    assert_eq!(family, 0x11, "TCP over IPv4 on a v4 loopback");
    let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let source = SocketAddr::new(ip(&body[0..4]), port(&body[8..10]));
    let destination = SocketAddr::new(ip(&body[4..8]), port(&body[10..12]));
    let mut ssl = None;
    let mut rest = &body[12..];
    while rest.len() >= 3 {
        let (kind, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        let value = &rest[3..3 + len];
        if kind == 0x20 {
            let client = value[0];
            let verify = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
            let mut cn = None;
            let mut sub = &value[5..];
            while sub.len() >= 3 {
                let (k, l) = (sub[0], usize::from(u16::from_be_bytes([sub[1], sub[2]])));
                if k == 0x22 {
                    cn = Some(String::from_utf8(sub[3..3 + l].to_vec()).expect("utf-8 CN"));
                }
                sub = &sub[3 + l..];
            }
            ssl = Some((client, verify, cn));
        }
        rest = &rest[3 + len..];
    }
    Header { family, source, destination, ssl }
}

#[tokio::test]
async fn proxy_v2_tells_the_broker_the_device_address_and_certificate_cn() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let sub = DirectSubscriber::start(broker.port).await.expect("direct subscriber");
    let (front, seen) = proxy_aware_front(broker.port).await;
    let opts = MoatOptions {
        client_auth: ClientAuth::Optional,
        upstream: front.to_string(),
        upstream_extra: Some("  proxy_protocol: v2\n".to_string()),
        ..Default::default()
    };
    let moat = Moat::start(&pki, &opts).await;

    // A device with a certificate, from 127.0.0.2; one without, from 127.0.0.3.
    for (source, tls, cn) in [
        ("127.0.0.2", pki.mtls_client_config(), Some("e2e-client")),
        ("127.0.0.3", pki.client_config(), None),
    ] {
        let source: IpAddr = source.parse().expect("ip");
        let mut c = RawClient::connect_from(moat.port, tls, source).await.expect("connect");
        c.send(&packets::connect(Version::V5, &unique("pp2"))).await.expect("CONNECT");
        let ack =
            c.expect_packet(packets::CONNACK, WAIT).await.unwrap_or_else(|e| panic!("{e}\n{}", moat.logs()));
        assert_eq!(ack.connack_code(), Some(0));
        let topic = format!("pp2/{}", unique("t"));
        c.send(&packets::publish(Version::V5, topic.as_bytes(), 1, false, 1, b"via-pp2"))
            .await
            .expect("PUBLISH");
        c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
        sub.wait_for(&topic, b"via-pp2", WAIT).await.expect("the broker got the message after the header");

        let headers = seen.lock().unwrap().clone();
        let h = headers.iter().find(|h| h.source.ip() == source).unwrap_or_else(|| panic!("{headers:?}"));
        assert_eq!(h.family, 0x11);
        assert_eq!(h.destination, SocketAddr::from(([127, 0, 0, 1], moat.port)), "{h:?}");
        assert_ne!(h.source.port(), 0);
        let (client, verify, got_cn) = h.ssl.clone().expect("SSL TLV on a TLS listener");
        assert_eq!(verify, 0, "verified");
        assert_eq!(got_cn.as_deref(), cn, "{h:?}");
        assert_eq!(client, if cn.is_some() { 0x03 } else { 0x01 }, "{h:?}");
    }
}
