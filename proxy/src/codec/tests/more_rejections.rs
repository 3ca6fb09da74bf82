//! Further one-rule-per-test rejections: trailing bytes and truncations in every packet type,
//! packet identifier 0 in every packet that carries one.

use super::helpers::*;

#[test]
fn rejects_v5_connack_trailing_bytes() {
    assert!(is_malformed(&decode_err(&[0x20, 0x04, 0x00, 0x00, 0x00, 0xFF], V5)));
}

#[test]
fn rejects_v5_disconnect_trailing_bytes() {
    assert!(is_malformed(&decode_err(&[0xE0, 0x03, 0x00, 0x00, 0xFF], V5)));
}

#[test]
fn rejects_auth_trailing_bytes() {
    // reason 0x18 | property length 4: method "m" | one stray byte
    let body = [0x18, 0x04, 0x15, 0x00, 0x01, b'm', 0xFF];
    assert!(is_malformed(&decode_err(&pkt(0xF0, &body), V5)));
}

#[test]
fn rejects_suback_property_length_past_end() {
    assert!(is_malformed(&decode_err(&[0x90, 0x04, 0x00, 0x01, 0x05, 0x00], V5)));
}

#[test]
fn rejects_unsubscribe_packet_id_zero() {
    let mut body = vec![0x00, 0x00];
    body.extend(s("a"));
    assert!(is_protocol(&decode_err(&pkt(0xA2, &body), V311)));
}

#[test]
fn rejects_suback_packet_id_zero() {
    assert!(is_protocol(&decode_err(&[0x90, 0x03, 0x00, 0x00, 0x00], V311)));
}

#[test]
fn rejects_unsuback_packet_id_zero() {
    assert!(is_protocol(&decode_err(&[0xB0, 0x02, 0x00, 0x00], V311)));
}

#[test]
fn rejects_pubrel_packet_id_zero() {
    assert!(is_protocol(&decode_err(&[0x62, 0x02, 0x00, 0x00], V5)));
}

#[test]
fn rejects_connect_truncated_keep_alive() {
    let mut body = s("MQTT");
    body.extend_from_slice(&[0x04, 0x02, 0x00]);
    assert!(is_malformed(&decode_err(&pkt(0x10, &body), V311)));
}

#[test]
fn rejects_connect_missing_password() {
    let mut body = s("MQTT");
    body.extend_from_slice(&[0x04, 0xC2, 0x00, 0x00]);
    body.extend(s("c"));
    body.extend(s("u"));
    assert!(is_malformed(&decode_err(&pkt(0x10, &body), V311)));
}

#[test]
fn rejects_will_payload_past_end() {
    let mut body = s("MQTT");
    body.extend_from_slice(&[0x04, 0x06, 0x00, 0x00]);
    body.extend(s("c"));
    body.extend(s("t"));
    body.extend_from_slice(&[0x00, 0x09, b'x']);
    assert!(is_malformed(&decode_err(&pkt(0x10, &body), V311)));
}

#[test]
fn rejects_multibyte_property_identifier() {
    // 0x81 0x00 is a non-minimal varint; 0x80 0x01 (=128) is an unknown identifier.
    let bytes = pkt(0x30, &[0x00, 0x01, b't', 0x03, 0x80, 0x01, 0x00]);
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_property_value_truncated_by_packet_end() {
    // Message Expiry Interval needs 4 bytes; the packet ends after 2.
    let bytes = pkt(0x30, &[0x00, 0x01, b't', 0x03, 0x02, 0x00, 0x00]);
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_publish_retain_with_reserved_type_bits_in_ack() {
    // A PUBACK with any flag bit set (e.g. a PUBLISH-style retain bit) is malformed.
    assert!(is_malformed(&decode_err(&[0x41, 0x02, 0x00, 0x01], V5)));
}

#[test]
fn rejects_unsuback_flags() {
    assert!(is_malformed(&decode_err(&[0xB2, 0x02, 0x00, 0x01], V311)));
}

#[test]
fn rejects_connack_flags() {
    assert!(is_malformed(&decode_err(&[0x21, 0x02, 0x00, 0x00], V311)));
}

#[test]
fn rejects_pubcomp_flags() {
    assert!(is_malformed(&decode_err(&[0x72, 0x02, 0x00, 0x01], V311)));
}

#[test]
fn rejects_pubrec_flags() {
    assert!(is_malformed(&decode_err(&[0x52, 0x02, 0x00, 0x01], V311)));
}
