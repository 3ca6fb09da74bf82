//! PUBACK/PUBREC/PUBREL/PUBCOMP.

use super::helpers::*;
use crate::codec::*;

fn ack(bytes: &[u8], v: ProtocolVersion) -> Ack<'static> {
    let f = Box::leak(Box::new(frame(bytes)));
    match f.decode(v).unwrap() {
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => a,
        other => panic!("not an ack: {other:?}"),
    }
}

#[test]
fn decodes_v311_acks() {
    for byte0 in [0x40, 0x50, 0x62, 0x70] {
        let a = ack(&[byte0, 0x02, 0x12, 0x34], V311);
        assert_eq!(a.packet_id, 0x1234);
        assert_eq!(a.reason, 0);
    }
}

#[test]
fn decodes_v5_ack_forms() {
    // 2 bytes: success implied.
    assert_eq!(ack(&[0x40, 0x02, 0x00, 0x01], V5).reason, 0);
    // 3 bytes: reason, no properties.
    assert_eq!(ack(&[0x40, 0x03, 0x00, 0x01, 0x10], V5).reason, 0x10);
    // 4 bytes: reason + empty properties.
    assert_eq!(ack(&[0x50, 0x04, 0x00, 0x01, 0x80, 0x00], V5).reason, 0x80);
    // Reason string property.
    let a = ack(&[0x40, 0x08, 0x00, 0x01, 0x87, 0x04, 0x1F, 0x00, 0x01, b'x'], V5);
    assert_eq!(a.properties.reason_string(), Some("x"));
}

#[test]
fn rejects_pubrel_reserved_flags() {
    assert!(is_malformed(&decode_err(&[0x60, 0x02, 0x00, 0x01], V311)));
}

#[test]
fn rejects_puback_flags() {
    assert!(is_malformed(&decode_err(&[0x42, 0x02, 0x00, 0x01], V311)));
}

#[test]
fn rejects_v5_property_in_v311_ack() {
    assert!(is_malformed(&decode_err(&[0x40, 0x04, 0x00, 0x01, 0x00, 0x00], V311)));
}

#[test]
fn rejects_reason_code_in_v311_ack() {
    assert!(is_malformed(&decode_err(&[0x70, 0x03, 0x00, 0x01, 0x00], V31)));
}

#[test]
fn rejects_ack_packet_id_zero() {
    for v in ALL {
        assert!(is_protocol(&decode_err(&[0x40, 0x02, 0x00, 0x00], v)));
    }
}

#[test]
fn rejects_truncated_ack() {
    assert!(is_malformed(&decode_err(&[0x40, 0x01, 0x00], V5)));
}

#[test]
fn rejects_puback_invalid_reason() {
    // 0x92 (packet identifier not found) is only valid in PUBREL/PUBCOMP.
    assert!(is_protocol(&decode_err(&[0x40, 0x03, 0x00, 0x01, 0x92], V5)));
}

#[test]
fn rejects_pubrel_invalid_reason() {
    assert!(is_protocol(&decode_err(&[0x62, 0x03, 0x00, 0x01, 0x10], V5)));
    assert_eq!(ack(&[0x62, 0x03, 0x00, 0x01, 0x92], V5).reason, 0x92);
}

#[test]
fn rejects_undefined_reason_code() {
    assert!(is_protocol(&decode_err(&[0x50, 0x03, 0x00, 0x01, 0x05], V5)));
}

#[test]
fn rejects_topic_alias_in_ack() {
    let e = decode_err(&[0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01], V5);
    assert!(is_protocol(&e));
}

#[test]
fn rejects_trailing_bytes() {
    // Empty property block followed by one stray byte.
    assert!(is_malformed(&decode_err(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF], V5)));
}
