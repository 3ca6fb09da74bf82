//! Malformed and protocol-violating packets written on a raw TLS socket.
//!
//! After a valid CONNECT (accepted by the broker through moat), each case must make moat
//! close the connection — for MQTT 5 after a DISCONNECT carrying the expected reason code,
//! for 3.1.1 without any further packet — and moat must not forward the offending bytes:
//! the recording tap between moat and mosquitto may show only CONNECT (and DISCONNECT), and
//! the direct subscriber on `#` must receive nothing.
//!
//! Where the MQTT 5 spec names the error class explicitly (e.g. "it is a Malformed Packet",
//! "is a Protocol Error", 0x95 for oversize) the case expects exactly that reason code;
//! where it does not, either 0x81 or 0x82 is accepted (the contract's two classes).

use std::time::Duration;

use moat_e2e::packets::{self, mqtt_str, packet, props, publish, publish_body, Version};
use moat_e2e::{unique, Env, MoatOptions};

const BOTH: &[Version] = &[Version::V311, Version::V5];
const MALFORMED: &[u8] = &[0x81];
const PROTOCOL: &[u8] = &[0x82];
const EITHER: &[u8] = &[0x81, 0x82];
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Runs one case for each version on its own connection through one moat.
async fn after_connect(
    versions: &[Version],
    v5_reasons: &[u8],
    opts: MoatOptions,
    make: impl Fn(Version) -> Vec<u8>,
) {
    let env = Env::start_with(opts).await;
    for &v in versions {
        let mut c = env.raw_connected(v, &unique("bad")).await;
        let bytes = make(v);
        // The write may fail if moat already closed: that is fine.
        let _ = c.send(&bytes).await;
        let closed = c.read_until_closed(CLOSE_WITHIN).await.unwrap_or_else(|e| {
            panic!(
                "{v:?}: moat did not close after {:02x?}: {e}\n{}",
                &bytes[..bytes.len().min(40)],
                env.moat.logs()
            )
        });
        let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
        match v {
            Version::V311 => assert!(
                closed.packets.is_empty(),
                "3.1.1: expected a bare close, got {got:?} (trailing {:02x?})",
                closed.trailing
            ),
            Version::V5 => {
                assert_eq!(
                    closed.packets.len(),
                    1,
                    "v5: expected exactly one DISCONNECT before close, got {got:?} (stream error: {:?})",
                    closed.error
                );
                let reason = closed.packets[0]
                    .disconnect_reason()
                    .unwrap_or_else(|| panic!("v5: expected DISCONNECT, got {got:?}"));
                assert!(
                    v5_reasons.contains(&reason),
                    "v5: DISCONNECT reason 0x{reason:02x}, expected one of {:02x?}",
                    v5_reasons
                );
            }
        }
    }
    env.assert_upstream_only(&[packets::CONNECT, packets::DISCONNECT], "malformed case").await;
    // Exactly one CONNECT per connection went upstream (and nothing was duplicated).
    let connects = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::CONNECT).count();
    assert_eq!(connects, versions.len(), "upstream: {:?}", env.tap.summary());
}

/// Sends `bytes` as the very first thing on a fresh TLS connection: moat must close and
/// forward nothing at all. `allow_connack_refusal` permits a CONNACK with a failure code
/// (for malformed CONNECTs, where the spec allows one before closing).
async fn as_first_packet(bytes: &[u8], allow_connack_refusal: bool) {
    let env = Env::start().await;
    let mut c = env.raw().await;
    let _ = c.send(bytes).await;
    let closed = c.read_until_closed(CLOSE_WITHIN).await.unwrap_or_else(|e| {
        panic!("moat did not close after first bytes {bytes:02x?}: {e}\n{}", env.moat.logs())
    });
    let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
    let ok = closed.packets.is_empty()
        || (allow_connack_refusal
            && closed.packets.len() == 1
            && closed.packets[0].connack_code().is_some_and(|c| c != 0));
    assert!(ok, "expected a bare close, got {got:?}");
    env.assert_no_upstream_bytes("first packet case").await;
}

// ----- positive control: the same path forwards a valid packet (so the negatives can fail)

#[tokio::test]
async fn control_valid_publish_is_forwarded() {
    let env = Env::start().await;
    for v in BOTH {
        let topic = unique("control");
        let mut c = env.raw_connected(*v, &unique("good")).await;
        c.send(&publish(*v, topic.as_bytes(), 1, false, 1, b"ok")).await.unwrap();
        let ack = c.expect_packet(packets::PUBACK, Duration::from_secs(10)).await.unwrap();
        assert_eq!(&ack.body[..2], &[0, 1]);
        env.sub.wait_for(&topic, b"ok", Duration::from_secs(10)).await.unwrap();
        c.send(&packets::pingreq()).await.unwrap();
        c.expect_packet(packets::PINGRESP, Duration::from_secs(10)).await.unwrap();
        c.send(&packets::disconnect(*v)).await.unwrap();
        let closed = c.read_until_closed(CLOSE_WITHIN).await.unwrap();
        assert!(closed.packets.is_empty(), "{:?}", closed.packets);
    }
    let types: Vec<_> = env.tap.connections().iter().map(|c| c.packet_types()).collect();
    for t in &types {
        assert_eq!(t.first(), Some(&"CONNECT"), "{types:?}");
        assert!(t.contains(&"PUBLISH"), "valid PUBLISH not forwarded: {types:?}");
    }
}

// ----- after a valid CONNECT

#[tokio::test]
async fn publish_topic_with_plus_wildcard() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| publish(v, b"a/+/b", 0, false, 0, b"x")).await;
}

#[tokio::test]
async fn publish_topic_with_hash_wildcard() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| publish(v, b"a/#", 1, false, 5, b"x")).await;
}

#[tokio::test]
async fn publish_topic_with_nul() {
    // [MQTT-1.5.4-2]: U+0000 in a UTF-8 string is a Malformed Packet.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |v| publish(v, b"a\0b", 0, false, 0, b"x")).await;
}

#[tokio::test]
async fn publish_topic_invalid_utf8() {
    // [MQTT-1.5.4-1]: ill-formed UTF-8 is a Malformed Packet.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |v| {
        publish(v, b"a/\xff\xfe/b", 0, false, 0, b"x")
    })
    .await;
}

#[tokio::test]
async fn publish_topic_utf16_surrogate() {
    // [MQTT-1.5.4-1]: encodings of U+D800..U+DFFF are ill-formed.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |v| {
        publish(v, b"a/\xed\xa0\x80", 0, false, 0, b"x")
    })
    .await;
}

#[tokio::test]
async fn publish_qos3() {
    // [MQTT-3.3.1-4]: both QoS bits set is a Malformed Packet.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |v| {
        packet(0x36, &publish_body(v, b"a/b", Some(1), &[], b"x"))
    })
    .await;
}

#[tokio::test]
async fn subscribe_reserved_flag_bits() {
    // [MQTT-3.8.1-1]: SUBSCRIBE fixed-header flags other than 0010 are malformed.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |v| {
        let mut p = packets::subscribe(v, 1, b"a/b", 0);
        p[0] = 0x80;
        p
    })
    .await;
}

#[tokio::test]
async fn publish_qos1_packet_id_zero() {
    // [MQTT-2.2.1-3]: QoS > 0 PUBLISH needs a non-zero packet identifier.
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| publish(v, b"a/b", 1, false, 0, b"x")).await;
}

#[tokio::test]
async fn remaining_length_not_minimal() {
    // [MQTT-1.5.5-1]: remaining length 7 encoded in two bytes (0x87 0x00).
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| {
        let body = publish_body(v, b"a/b", None, &[], b"xx");
        let mut p = vec![0x30, 0x80 | body.len() as u8, 0x00];
        p.extend(body);
        p
    })
    .await;
}

#[tokio::test]
async fn remaining_length_five_bytes() {
    // A Variable Byte Integer has at most four bytes.
    // The first four bytes encode 0 so far, so no size limit can trigger first.
    after_connect(BOTH, MALFORMED, MoatOptions::default(), |_| {
        let mut p = vec![0x30, 0x80, 0x80, 0x80, 0x80, 0x01];
        p.extend(mqtt_str(b"a/b"));
        p
    })
    .await;
}

#[tokio::test]
async fn pingreq_with_trailing_bytes() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |_| vec![0xc0, 0x01, 0x00]).await;
}

#[tokio::test]
async fn connack_from_client() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| match v {
        Version::V311 => vec![0x20, 0x02, 0x00, 0x00],
        Version::V5 => vec![0x20, 0x03, 0x00, 0x00, 0x00],
    })
    .await;
}

#[tokio::test]
async fn suback_from_client() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |v| match v {
        Version::V311 => vec![0x90, 0x03, 0x00, 0x01, 0x00],
        Version::V5 => vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x00],
    })
    .await;
}

#[tokio::test]
async fn reserved_packet_type_zero() {
    after_connect(BOTH, EITHER, MoatOptions::default(), |_| vec![0x00, 0x00]).await;
}

#[tokio::test]
async fn second_connect() {
    // [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error.
    after_connect(BOTH, PROTOCOL, MoatOptions::default(), |v| packets::connect(v, &unique("again"))).await;
}

#[tokio::test]
async fn v5_property_in_v311_subscribe() {
    // A v5 property block (Subscription Identifier = 5) inside a 3.1.1 SUBSCRIBE: read as
    // 3.1.1 the topic-filter length becomes 0x020b, far past the packet end.
    after_connect(&[Version::V311], &[], MoatOptions::default(), |_| {
        let mut body = 1u16.to_be_bytes().to_vec();
        body.extend(props(&[0x0b, 0x05]));
        body.extend(mqtt_str(b"a/b"));
        body.push(0x00);
        packet(0x82, &body)
    })
    .await;
}

#[tokio::test]
async fn v5_property_in_v311_publish_ack() {
    // A v5-style PUBACK (reason code + empty property block) on a 3.1.1 connection:
    // 3.1.1 PUBACK has a remaining length of exactly 2.
    after_connect(&[Version::V311], &[], MoatOptions::default(), |_| {
        vec![0x40, 0x04, 0x00, 0x01, 0x00, 0x00]
    })
    .await;
}

#[tokio::test]
async fn v5_duplicate_property() {
    // Payload Format Indicator twice: "It is a Protocol Error to include [it] more than once".
    after_connect(&[Version::V5], PROTOCOL, MoatOptions::default(), |v| {
        packet(0x30, &publish_body(v, b"a/b", None, &[0x01, 0x01, 0x01, 0x01], b"x"))
    })
    .await;
}

#[tokio::test]
async fn v5_property_not_allowed_in_packet() {
    // Session Expiry Interval (0x11) is not a PUBLISH property.
    after_connect(&[Version::V5], EITHER, MoatOptions::default(), |v| {
        packet(0x30, &publish_body(v, b"a/b", None, &[0x11, 0, 0, 0, 10], b"x"))
    })
    .await;
}

#[tokio::test]
async fn packet_larger_than_max_packet_size() {
    // 0x95 Packet too large ([MQTT-3.1.2-24] and the contract).
    let opts = MoatOptions { max_packet_size: Some(2048), ..Default::default() };
    after_connect(BOTH, &[0x95], opts, |v| publish(v, b"big/topic", 0, false, 0, &vec![0x5a; 4000])).await;
}

#[tokio::test]
async fn packet_larger_than_max_packet_size_header_only() {
    // Only the fixed header announcing 1 MiB + 1 is sent: moat must reject it from the
    // header alone, without waiting for (or buffering) the body.
    let opts = MoatOptions { max_packet_size: Some(2048), ..Default::default() };
    after_connect(BOTH, &[0x95], opts, |_| {
        let mut p = vec![0x30];
        p.extend(packets::varint(1024 * 1024 + 1));
        p
    })
    .await;
}

// ----- as the first packet (no CONNECT yet): close, forward nothing

#[tokio::test]
async fn publish_as_first_packet() {
    as_first_packet(&publish(Version::V311, b"first/publish", 0, false, 0, b"sneaky"), false).await;
}

#[tokio::test]
async fn publish_qos1_as_first_packet_v5_layout() {
    as_first_packet(&publish(Version::V5, b"first/publish", 1, false, 1, b"sneaky"), false).await;
}

#[tokio::test]
async fn subscribe_as_first_packet() {
    as_first_packet(&packets::subscribe(Version::V311, 1, b"#", 0), false).await;
}

#[tokio::test]
async fn connack_as_first_packet() {
    as_first_packet(&[0x20, 0x02, 0x00, 0x00], false).await;
}

#[tokio::test]
async fn pingreq_as_first_packet() {
    as_first_packet(&packets::pingreq(), false).await;
}

#[tokio::test]
async fn http_request_as_first_bytes() {
    as_first_packet(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", false).await;
}

#[tokio::test]
async fn five_byte_remaining_length_as_first_packet() {
    as_first_packet(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x01], false).await;
}

#[tokio::test]
async fn connect_with_reserved_flag_as_first_packet() {
    // [MQTT-3.1.2-3]: the reserved CONNECT flag bit 0 must be 0, else Malformed.
    for v in BOTH {
        let mut p = packets::connect(*v, "reserved-flag");
        p[9] |= 0x01;
        as_first_packet(&p, true).await;
    }
}

#[tokio::test]
async fn connect_with_invalid_utf8_client_id_as_first_packet() {
    for v in BOTH {
        let mut c = packets::Connect::new(*v, "ab").encode();
        let n = c.len();
        c[n - 2] = 0xc3; // "ab" -> 0xc3 0x28: invalid 2-byte sequence
        c[n - 1] = 0x28;
        as_first_packet(&c, true).await;
    }
}

#[tokio::test]
async fn connect_with_wildcard_will_topic_as_first_packet() {
    // [MQTT-3.1.3-11]/[MQTT-3.3.2-2]: the Will Topic is a topic name: no wildcards.
    for v in BOTH {
        let c = packets::Connect::new(*v, "will-wild").will("a/#", b"w", 0, false).encode();
        as_first_packet(&c, true).await;
    }
}

#[tokio::test]
async fn connect_with_unknown_protocol_level_as_first_packet() {
    let mut c = packets::connect(Version::V5, "level-6");
    c[8] = 6;
    as_first_packet(&c, true).await;
}
