//! Broker-side misbehaviour, with a scripted fake broker upstream: moat parses the
//! broker->client direction too, so broken or oversized packets from the broker must not
//! reach the client, and upstream closes/refusals must be reflected to the client.

use std::time::Duration;

use moat_e2e::fake::{FakeBroker, Script};
use moat_e2e::packets::{self, publish, publish_body, Version};
use moat_e2e::{unique, Moat, MoatOptions, Pki, RawClient};

const BOTH: [Version; 2] = [Version::V311, Version::V5];

fn connack_ok(v: Version) -> Vec<u8> {
    match v {
        Version::V311 => vec![0x20, 0x02, 0x00, 0x00],
        Version::V5 => vec![0x20, 0x03, 0x00, 0x00, 0x00],
    }
}

async fn setup(script: Script, max_packet_size: Option<u32>) -> (Pki, FakeBroker, Moat) {
    let pki = Pki::new();
    let fake = FakeBroker::start(script).await;
    let opts = MoatOptions { upstream: fake.addr(), max_packet_size, ..Default::default() };
    let moat = Moat::start(&pki, &opts).await;
    (pki, fake, moat)
}

/// Connects with `v`, expects a successful CONNACK, then requires the connection to close
/// within 5 s with no packet other than (v5) a single DISCONNECT.
async fn expect_not_forwarded(v: Version, bad: Vec<u8>, max_packet_size: Option<u32>, what: &str) {
    let mut reply = connack_ok(v);
    reply.extend(&bad);
    let (pki, fake, moat) = setup(Script { reply, close_after_reply: false }, max_packet_size).await;
    let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
    c.send(&packets::connect(v, &unique("up"))).await.unwrap();
    let ack = c
        .expect_packet(packets::CONNACK, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{v:?} {what}: {e}\n{}", moat.logs()));
    assert_eq!(ack.connack_code(), Some(0));
    let closed = c
        .read_until_closed(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{v:?} {what}: client connection not closed: {e}\n{}", moat.logs()));
    let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
    let ok = match v {
        Version::V311 => closed.packets.is_empty(),
        Version::V5 => {
            closed.packets.is_empty()
                || (closed.packets.len() == 1 && closed.packets[0].packet_type() == packets::DISCONNECT)
        }
    };
    assert!(ok, "{v:?} {what}: the client received {got:?} (trailing {:02x?})", closed.trailing);
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn upstream_oversize_publish_not_forwarded_to_client() {
    for v in BOTH {
        let bad = publish(v, b"big/down", 0, false, 0, &vec![0x42; 4000]);
        expect_not_forwarded(v, bad, Some(2048), "oversize PUBLISH from broker").await;
    }
}

#[tokio::test]
async fn upstream_qos3_publish_not_forwarded_to_client() {
    for v in BOTH {
        let bad = packets::packet(0x36, &publish_body(v, b"a/b", Some(1), &[], b"x"));
        expect_not_forwarded(v, bad, None, "QoS 3 PUBLISH from broker").await;
    }
}

#[tokio::test]
async fn upstream_wildcard_topic_publish_not_forwarded_to_client() {
    for v in BOTH {
        let bad = publish(v, b"a/#", 0, false, 0, b"x");
        expect_not_forwarded(v, bad, None, "wildcard PUBLISH from broker").await;
    }
}

#[tokio::test]
async fn upstream_client_only_packet_not_forwarded_to_client() {
    for v in BOTH {
        let bad = packets::subscribe(v, 1, b"a/b", 0);
        expect_not_forwarded(v, bad, None, "SUBSCRIBE from broker").await;
    }
}

#[tokio::test]
async fn upstream_close_closes_client() {
    for v in BOTH {
        let (pki, _fake, moat) = setup(Script { reply: connack_ok(v), close_after_reply: true }, None).await;
        let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
        c.send(&packets::connect(v, &unique("upc"))).await.unwrap();
        let ack = c.expect_packet(packets::CONNACK, Duration::from_secs(10)).await.unwrap();
        assert_eq!(ack.connack_code(), Some(0));
        let closed = c.read_until_closed(Duration::from_secs(5)).await.unwrap_or_else(|e| {
            panic!("{v:?}: client not closed after the broker closed: {e}\n{}", moat.logs())
        });
        for p in &closed.packets {
            assert_eq!(p.packet_type(), packets::DISCONNECT, "{v:?}: unexpected {}", p.describe());
            assert_eq!(v, Version::V5, "3.1.1 client got a DISCONNECT");
        }
    }
}

#[tokio::test]
async fn upstream_connack_refusal_passed_to_client() {
    for (v, reply, code) in [
        (Version::V311, vec![0x20, 0x02, 0x00, 0x05], 0x05), // not authorized
        (Version::V5, vec![0x20, 0x03, 0x00, 0x87, 0x00], 0x87), // not authorized
    ] {
        let (pki, _fake, moat) = setup(Script { reply, close_after_reply: true }, None).await;
        let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
        c.send(&packets::connect(v, &unique("refused"))).await.unwrap();
        let closed = c.read_until_closed(Duration::from_secs(5)).await.unwrap();
        let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
        assert_eq!(closed.packets.len(), 1, "{v:?}: expected the broker's CONNACK then close, got {got:?}");
        assert_eq!(closed.packets[0].connack_code(), Some(code), "{v:?}: got {got:?}");
    }
}

/// A broker that accepts the connection but never answers CONNECT: after `timeouts.connect`
/// the client gets CONNACK "server unavailable" (0x03 / v5 0x88) and is closed.
#[tokio::test]
async fn silent_broker_gets_the_client_a_server_unavailable_connack() {
    for (v, code) in [(Version::V311, 0x03), (Version::V5, 0x88)] {
        let pki = Pki::new();
        let fake = FakeBroker::start(Script { reply: Vec::new(), close_after_reply: false }).await;
        let opts =
            MoatOptions { upstream: fake.addr(), connect_timeout: Some("1s".into()), ..Default::default() };
        let moat = Moat::start(&pki, &opts).await;
        let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
        c.send(&packets::connect(v, &unique("silent"))).await.unwrap();
        let started = std::time::Instant::now();
        let closed = c
            .read_until_closed(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{v:?}: not closed after a silent broker: {e}\n{}", moat.logs()));
        assert!(started.elapsed() >= Duration::from_millis(800), "{v:?}: gave up before the deadline");
        let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
        assert_eq!(closed.packets.len(), 1, "{v:?}: {got:?}");
        assert_eq!(closed.packets[0].connack_code(), Some(code), "{v:?}: {got:?}");
    }
}
