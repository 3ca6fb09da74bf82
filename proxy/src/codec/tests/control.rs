//! CONNACK, PINGREQ/PINGRESP, DISCONNECT, AUTH.

use super::helpers::*;
use crate::codec::*;

fn connack(bytes: &[u8], v: ProtocolVersion) -> Connack<'static> {
    let f = Box::leak(Box::new(frame(bytes)));
    match f.decode(v).unwrap() {
        Packet::Connack(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn decodes_v311_connack() {
    let c = connack(&[0x20, 0x02, 0x01, 0x00], V311);
    assert!(c.session_present);
    assert_eq!(c.code, 0);
    assert_eq!(connack(&[0x20, 0x02, 0x00, 0x05], V31).code, 5);
}

#[test]
fn decodes_v5_connack_with_properties() {
    // props: topic alias maximum 10, maximum QoS 1, assigned client id "id"
    let bytes = [0x20, 0x0D, 0x00, 0x00, 0x0A, 0x22, 0x00, 0x0A, 0x24, 0x01, 0x12, 0x00, 0x02, b'i', b'd'];
    let c = connack(&bytes[..], V5);
    assert_eq!(c.properties.topic_alias_maximum(), Some(10));
    assert_eq!(c.properties.maximum_qos(), Some(1));
    assert_eq!(c.properties.assigned_client_identifier(), Some("id"));
}

#[test]
fn rejects_connack_reserved_ack_flags() {
    assert!(is_malformed(&decode_err(&[0x20, 0x02, 0x02, 0x00], V311)));
}

#[test]
fn rejects_v311_connack_return_code_6() {
    assert!(is_protocol(&decode_err(&[0x20, 0x02, 0x00, 0x06], V311)));
}

#[test]
fn rejects_connack_session_present_with_error() {
    assert!(is_protocol(&decode_err(&[0x20, 0x02, 0x01, 0x05], V311)));
    assert!(is_protocol(&decode_err(&[0x20, 0x03, 0x01, 0x87, 0x00], V5)));
}

#[test]
fn rejects_v5_connack_invalid_reason() {
    // 0x8E (session taken over) is a DISCONNECT code.
    assert!(is_protocol(&decode_err(&[0x20, 0x03, 0x00, 0x8E, 0x00], V5)));
}

#[test]
fn rejects_v5_connack_without_properties() {
    assert!(is_malformed(&decode_err(&[0x20, 0x02, 0x00, 0x00], V5)));
}

#[test]
fn rejects_v311_connack_trailing_bytes() {
    assert!(is_malformed(&decode_err(&[0x20, 0x03, 0x00, 0x00, 0x00], V311)));
}

#[test]
fn rejects_maximum_qos_2() {
    assert!(is_protocol(&decode_err(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02], V5)));
}

#[test]
fn rejects_retain_available_2() {
    assert!(is_protocol(&decode_err(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x02], V5)));
}

#[test]
fn rejects_wildcard_subscription_available_2() {
    assert!(is_protocol(&decode_err(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x28, 0x02], V5)));
}

#[test]
fn rejects_will_delay_in_connack() {
    let e = decode_err(&[0x20, 0x08, 0x00, 0x00, 0x05, 0x18, 0, 0, 0, 1], V5);
    assert!(is_protocol(&e));
}

#[test]
fn decodes_ping() {
    for v in ALL {
        assert_eq!(frame(&[0xC0, 0x00]).decode(v).unwrap(), Packet::Pingreq);
        assert_eq!(frame(&[0xD0, 0x00]).decode(v).unwrap(), Packet::Pingresp);
    }
}

#[test]
fn rejects_pingreq_with_body() {
    assert!(is_malformed(&decode_err(&[0xC0, 0x01, 0x00], V311)));
}

#[test]
fn rejects_pingresp_flags() {
    assert!(is_malformed(&decode_err(&[0xD1, 0x00], V311)));
}

#[test]
fn decodes_disconnect_forms() {
    let d = |b: &[u8], v| match frame(b).decode(v).unwrap() {
        Packet::Disconnect(d) => (d.reason, d.properties.raw().to_vec()),
        other => panic!("{other:?}"),
    };
    assert_eq!(d(&[0xE0, 0x00], V311), (0, vec![]));
    assert_eq!(d(&[0xE0, 0x00], V5), (0, vec![]));
    assert_eq!(d(&[0xE0, 0x01, 0x04], V5), (4, vec![]));
    assert_eq!(d(&[0xE0, 0x07, 0x8B, 0x05, 0x11, 0, 0, 0, 0], V5), (0x8B, vec![0x11, 0, 0, 0, 0]));
}

#[test]
fn rejects_v311_disconnect_with_body() {
    assert!(is_malformed(&decode_err(&[0xE0, 0x01, 0x00], V311)));
}

#[test]
fn rejects_disconnect_flags() {
    assert!(is_malformed(&decode_err(&[0xE2, 0x00], V5)));
}

#[test]
fn rejects_v5_disconnect_invalid_reason() {
    // 0x01 (granted QoS 1) is a SUBACK code.
    assert!(is_protocol(&decode_err(&[0xE0, 0x01, 0x01], V5)));
}

#[test]
fn rejects_duplicate_reason_string_in_disconnect() {
    let e = decode_err(&[0xE0, 0x0A, 0x00, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'b'], V5);
    assert!(is_protocol(&e));
}

#[test]
fn rejects_auth_in_v311() {
    assert!(is_malformed(&decode_err(&[0xF0, 0x00], V311)));
    assert!(is_malformed(&decode_err(&[0xF0, 0x00], V31)));
}

#[test]
fn decodes_v5_auth() {
    let empty = frame(&[0xF0, 0x00]);
    let Packet::Auth(a) = empty.decode(V5).unwrap() else { panic!() };
    assert_eq!(a.reason, 0);
    let mut body = vec![0x18, 0x08, 0x15];
    body.extend(s("SCRAM"));
    let bytes = pkt(0xF0, &body);
    let f = frame(&bytes);
    let Packet::Auth(a) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(a.reason, 0x18);
    assert_eq!(a.properties.authentication_method(), Some("SCRAM"));
}

#[test]
fn rejects_auth_reason_without_property_length() {
    assert!(is_malformed(&decode_err(&[0xF0, 0x01, 0x18], V5)));
}

#[test]
fn rejects_auth_without_method() {
    assert!(is_protocol(&decode_err(&[0xF0, 0x02, 0x18, 0x00], V5)));
}

#[test]
fn rejects_auth_invalid_reason() {
    let mut body = vec![0x01, 0x08, 0x15];
    body.extend(s("SCRAM"));
    assert!(is_protocol(&decode_err(&pkt(0xF0, &body), V5)));
}

#[test]
fn rejects_auth_flags() {
    assert!(is_malformed(&decode_err(&[0xF1, 0x00], V5)));
}
