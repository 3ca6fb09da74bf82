//! Encoders: exact bytes per version (annotated), and the 3.1.x restrictions.

use bytes::{Bytes, BytesMut};

use super::helpers::*;
use crate::codec::*;

fn enc(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut out = BytesMut::new();
    f(&mut out);
    out.to_vec()
}

#[test]
fn connack_v311_uses_return_codes() {
    // 20 02 | session present 1 | accepted
    assert_eq!(enc(|o| encode_connack(o, V311, true, ReasonCode::Success, &[])), [0x20, 0x02, 0x01, 0x00]);
    // Not authorized -> return code 5; properties are never emitted in 3.1.x.
    assert_eq!(
        enc(|o| encode_connack(o, V311, false, ReasonCode::NotAuthorized, &[0x1F, 0, 0])),
        [0x20, 0x02, 0x00, 0x05]
    );
    // Banned -> 5, ServerBusy -> 3, bad version -> 1.
    assert_eq!(enc(|o| encode_connack(o, V31, false, ReasonCode::Banned, &[]))[3], 5);
    assert_eq!(enc(|o| encode_connack(o, V31, false, ReasonCode::ServerBusy, &[]))[3], 3);
    assert_eq!(enc(|o| encode_connack(o, V311, false, ReasonCode::UnsupportedProtocolVersion, &[]))[3], 1);
}

#[test]
fn connack_refusal_never_has_session_present() {
    assert_eq!(
        enc(|o| encode_connack(o, V311, true, ReasonCode::NotAuthorized, &[])),
        [0x20, 0x02, 0x00, 0x05]
    );
    assert_eq!(
        enc(|o| encode_connack(o, V5, true, ReasonCode::NotAuthorized, &[])),
        [0x20, 0x03, 0x00, 0x87, 0x00]
    );
}

#[test]
fn connack_v5_with_properties() {
    let mut props = PropertiesBuilder::new();
    props.push(Property::TopicAliasMaximum(10));
    // 20 06 | flags 0 | success | props len 3 | 22 00 0A
    assert_eq!(
        enc(|o| encode_connack(o, V5, false, ReasonCode::Success, props.as_bytes())),
        [0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x0A]
    );
}

#[test]
fn acks_v311_are_two_bytes() {
    for (kind, b0) in [
        (PacketType::Puback, 0x40),
        (PacketType::Pubrec, 0x50),
        (PacketType::Pubrel, 0x62),
        (PacketType::Pubcomp, 0x70),
    ] {
        assert_eq!(
            enc(|o| encode_ack(o, V311, kind, 7, ReasonCode::NotAuthorized, &[0x1F, 0, 0])),
            [b0, 0x02, 0x00, 0x07]
        );
    }
}

#[test]
fn acks_v5_use_shortest_form() {
    assert_eq!(
        enc(|o| encode_ack(o, V5, PacketType::Puback, 7, ReasonCode::Success, &[])),
        [0x40, 0x02, 0x00, 0x07]
    );
    assert_eq!(
        enc(|o| encode_ack(o, V5, PacketType::Puback, 7, ReasonCode::NotAuthorized, &[])),
        [0x40, 0x03, 0x00, 0x07, 0x87]
    );
    assert_eq!(
        enc(|o| encode_ack(o, V5, PacketType::Pubrec, 7, ReasonCode::Success, &[0x1F, 0x00, 0x01, b'x'])),
        [0x50, 0x08, 0x00, 0x07, 0x00, 0x04, 0x1F, 0x00, 0x01, b'x']
    );
}

#[test]
fn ack_with_wrong_kind_writes_nothing() {
    assert!(enc(|o| encode_ack(o, V5, PacketType::Publish, 1, ReasonCode::Success, &[])).is_empty());
    assert!(enc(|o| encode_suback(o, V5, PacketType::Puback, 1, &[0], &[])).is_empty());
}

#[test]
fn suback_v311_maps_v5_failures_to_0x80() {
    // 90 05 | id 1 | granted 1 | 0x87 -> 0x80 | 0x9E -> 0x80
    assert_eq!(
        enc(|o| encode_suback(o, V311, PacketType::Suback, 1, &[0x01, 0x87, 0x9E], &[0x1F, 0, 0])),
        [0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x80]
    );
}

#[test]
fn unsuback_v311_has_no_payload() {
    assert_eq!(
        enc(|o| encode_suback(o, V311, PacketType::Unsuback, 3, &[0x11], &[])),
        [0xB0, 0x02, 0x00, 0x03]
    );
    assert_eq!(
        enc(|o| encode_suback(o, V5, PacketType::Unsuback, 3, &[0x11], &[])),
        [0xB0, 0x04, 0x00, 0x03, 0x00, 0x11]
    );
}

#[test]
fn ping_and_disconnect() {
    assert_eq!(enc(encode_pingreq), [0xC0, 0x00]);
    assert_eq!(enc(encode_pingresp), [0xD0, 0x00]);
    assert_eq!(
        enc(|o| encode_disconnect(o, V311, ReasonCode::ServerShuttingDown, &[0x1F, 0, 0])),
        [0xE0, 0x00]
    );
    assert_eq!(enc(|o| encode_disconnect(o, V5, ReasonCode::Success, &[])), [0xE0, 0x00]);
    assert_eq!(enc(|o| encode_disconnect(o, V5, ReasonCode::ServerShuttingDown, &[])), [0xE0, 0x01, 0x8B]);
    assert_eq!(
        enc(|o| encode_disconnect(o, V5, ReasonCode::Success, &[0x1F, 0x00, 0x00])),
        [0xE0, 0x05, 0x00, 0x03, 0x1F, 0x00, 0x00]
    );
}

#[test]
fn auth_forms() {
    assert_eq!(enc(|o| encode_auth(o, ReasonCode::Success, &[])), [0xF0, 0x00]);
    let p = [0x15, 0x00, 0x01, b'm'];
    assert_eq!(
        enc(|o| encode_auth(o, ReasonCode::ContinueAuthentication, &p)),
        [0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, b'm']
    );
}

#[test]
fn publish_v311_drops_properties_and_dup_on_qos0() {
    let p = Publish {
        dup: true,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "a",
        packet_id: Some(5),
        properties: Properties::default(),
        payload: Bytes::from_static(b"x"),
    };
    // 31 04 | 00 01 'a' | 'x'  (DUP cleared for QoS 0, no packet id, no properties)
    assert_eq!(enc(|o| encode_publish(o, V311, &p, &[0x01, 0x01])), [0x31, 0x04, 0x00, 0x01, b'a', b'x']);
    // v5: property block present.
    assert_eq!(
        enc(|o| encode_publish(o, V5, &p, &[0x01, 0x01])),
        [0x31, 0x07, 0x00, 0x01, b'a', 0x02, 0x01, 0x01, b'x']
    );
}

#[test]
fn publish_qos1_without_packet_id_writes_nothing() {
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a",
        packet_id: None,
        properties: Properties::default(),
        payload: Bytes::new(),
    };
    assert!(enc(|o| encode_publish(o, V311, &p, &[])).is_empty());
}

#[test]
fn oversized_string_writes_nothing() {
    let long = "a".repeat(70_000);
    let out = enc(|o| {
        o.extend_from_slice(b"keep");
        encode_unsubscribe(o, V311, 1, &[], &[&long]);
    });
    assert_eq!(out, b"keep");
}

#[test]
fn subscribe_v311_keeps_only_qos_bits() {
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: 2,
    };
    // 82 06 | id 9 | 00 01 'a' | 01
    assert_eq!(
        enc(|o| encode_subscribe(o, V311, 9, &[0x0B, 0x01], &[("a", opts)])),
        [0x82, 0x06, 0x00, 0x09, 0x00, 0x01, b'a', 0x01]
    );
    // v5: 82 09 | id 9 | props 02 0B 01 | 00 01 'a' | 2D
    assert_eq!(
        enc(|o| encode_subscribe(o, V5, 9, &[0x0B, 0x01], &[("a", opts)])),
        [0x82, 0x09, 0x00, 0x09, 0x02, 0x0B, 0x01, 0x00, 0x01, b'a', 0x2D]
    );
}

#[test]
fn connect_round_trips_a_modified_view() {
    let bytes = {
        let mut b = s("MQTT");
        b.extend_from_slice(&[0x05, 0xC2, 0x00, 0x3C, 0x00]);
        b.extend(s("orig"));
        b.extend(s("user"));
        b.extend(s("secret"));
        pkt(0x10, &b)
    };
    let f = frame(&bytes);
    let Packet::Connect(c) = f.decode(V5).unwrap() else { panic!() };
    // The proxy strips the password and rewrites the client id.
    let modified = Connect { client_id: "rewritten", password: None, ..c.clone() };
    let out = enc(|o| encode_connect(o, &modified));
    let f2 = frame(&out);
    let Packet::Connect(c2) = f2.decode(V5).unwrap() else { panic!() };
    assert_eq!(c2.client_id, "rewritten");
    assert_eq!(c2.password, None);
    assert_eq!(c2.username, Some("user"));
    // Unmodified view re-encodes to the original bytes.
    assert_eq!(enc(|o| encode_connect(o, &c)), bytes);
}

#[test]
fn connect_v311_never_emits_properties() {
    let props = PropertiesBuilder::new().push(Property::SessionExpiryInterval(5)).clone();
    let c = Connect {
        version: V311,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::from_raw(props.as_bytes()).unwrap(),
        client_id: "c",
        will: None,
        username: None,
        password: None,
    };
    // 10 0D | 00 04 MQTT | 04 | 02 | 00 00 | 00 01 'c'
    assert_eq!(
        enc(|o| encode_connect(o, &c)),
        [0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, b'c']
    );
}

#[test]
fn properties_builder_encodes_every_kind() {
    let mut b = PropertiesBuilder::new();
    b.push(Property::PayloadFormatIndicator(1))
        .push(Property::MessageExpiryInterval(0x01020304))
        .push(Property::SubscriptionIdentifier(200))
        .push(Property::UserProperty("k", "v"))
        .push(Property::CorrelationData(&[9, 9]));
    assert_eq!(
        b.as_bytes(),
        [
            0x01, 0x01, // payload format
            0x02, 0x01, 0x02, 0x03, 0x04, // message expiry
            0x0B, 0xC8, 0x01, // subscription id 200 (varint)
            0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
            0x09, 0x00, 0x02, 0x09, 0x09, // correlation data
        ]
    );
    assert!(b.is_valid());
    let p = Properties::from_raw(b.as_bytes()).unwrap();
    assert_eq!(p.iter().count(), 5);
}

#[test]
fn properties_builder_skips_unencodable_values() {
    let long = "x".repeat(70_000);
    let mut b = PropertiesBuilder::new();
    b.push(Property::ReasonString(&long)).push(Property::SubscriptionIdentifier(VARINT_MAX + 1));
    assert!(b.is_empty());
    assert!(!b.is_valid());
}

#[test]
fn large_publish_uses_multi_byte_length() {
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        properties: Properties::default(),
        payload: Bytes::from(vec![0u8; 200]),
    };
    let out = enc(|o| encode_publish(o, V311, &p, &[]));
    // 3 + 200 = 203 = 0xCB 0x01
    assert_eq!(&out[..3], &[0x30, 0xCB, 0x01]);
    assert_eq!(out.len(), 206);
}

#[test]
fn v5_codes_not_allowed_in_the_packet_are_replaced() {
    // Banned is a CONNACK code: in a PUBACK it becomes Unspecified error.
    assert_eq!(
        enc(|o| encode_ack(o, V5, PacketType::Puback, 1, ReasonCode::Banned, &[])),
        [0x40, 0x03, 0x00, 0x01, 0x80]
    );
    // PUBREL has no generic error: Packet Identifier not found.
    assert_eq!(
        enc(|o| encode_ack(o, V5, PacketType::Pubrel, 1, ReasonCode::NotAuthorized, &[])),
        [0x62, 0x03, 0x00, 0x01, 0x92]
    );
    // Session taken over is a DISCONNECT code, not a CONNACK one.
    assert_eq!(
        enc(|o| encode_connack(o, V5, true, ReasonCode::SessionTakenOver, &[])),
        [0x20, 0x03, 0x00, 0x80, 0x00]
    );
    // Granted QoS 1 is not a DISCONNECT code: normal disconnection.
    assert_eq!(enc(|o| encode_disconnect(o, V5, ReasonCode::GrantedQos1, &[])), [0xE0, 0x00]);
}
