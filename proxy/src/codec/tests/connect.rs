//! CONNECT decoding and its rejection rules.

use super::helpers::*;
use crate::codec::*;

/// Build a CONNECT body: name, level, flags, keep alive, [props], then `payload`.
fn connect(name: &str, level: u8, flags: u8, props: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut b = s(name);
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&[0x00, 0x0A]); // keep alive 10
    if let Some(p) = props {
        b.push(p.len() as u8);
        b.extend_from_slice(p);
    }
    b.extend_from_slice(payload);
    pkt(0x10, &b)
}

fn v311(flags: u8, payload: &[u8]) -> Vec<u8> {
    connect("MQTT", 4, flags, None, payload)
}

fn v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    connect("MQTT", 5, flags, Some(props), payload)
}

fn decode_connect(bytes: &[u8]) -> Result<Connect<'static>, CodecError> {
    let f = Box::leak(Box::new(frame(bytes)));
    match f.decode(V5)? {
        Packet::Connect(c) => Ok(c),
        other => panic!("not a connect: {other:?}"),
    }
}

#[test]
fn decodes_spec_style_v5_connect_with_will() {
    // flags 0xEE: username, password, will retain, will QoS 1, will, clean start.
    let mut payload = s("client-1");
    payload.extend_from_slice(&[0x05, 0x18, 0x00, 0x00, 0x00, 0x0A]); // will props: delay 10
    payload.extend(s("will/topic"));
    payload.extend(s("bye"));
    payload.extend(s("user"));
    payload.extend(s("pass"));
    // props: session expiry 60, receive maximum 20
    let props = [0x11, 0x00, 0x00, 0x00, 0x3C, 0x21, 0x00, 0x14];
    let c = decode_connect(&v5(0xEE, &props, &payload)).unwrap();
    assert_eq!(c.version, V5);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(c.client_id, "client-1");
    assert_eq!(c.properties.session_expiry_interval(), Some(60));
    assert_eq!(c.properties.receive_maximum(), Some(20));
    let w = c.will.unwrap();
    assert_eq!(w.topic, "will/topic");
    assert_eq!(w.payload, b"bye");
    assert_eq!(w.qos, QoS::AtLeastOnce);
    assert!(w.retain);
    assert_eq!(w.properties.iter().collect::<Vec<_>>(), vec![Property::WillDelayInterval(10)]);
    assert_eq!(c.username, Some("user"));
    assert_eq!(c.password, Some(&b"pass"[..]));
}

#[test]
fn decodes_v31_connect() {
    let c = decode_connect(&connect("MQIsdp", 3, 0x02, None, &s("abc"))).unwrap();
    assert_eq!(c.version, V31);
    assert_eq!(c.client_id, "abc");
}

#[test]
fn connect_ignores_session_version() {
    let bytes = v311(0x02, &s("x"));
    for v in ALL {
        let f = frame(&bytes);
        let Ok(Packet::Connect(c)) = f.decode(v) else { panic!() };
        assert_eq!(c.version, V311);
    }
}

#[test]
fn rejects_connect_fixed_header_flags() {
    let mut bytes = v311(0x02, &s("x"));
    bytes[0] = 0x11;
    assert!(is_malformed(&decode_err(&bytes, V311)));
}

#[test]
fn rejects_bad_protocol_name() {
    let e = decode_connect(&connect("MQTX", 4, 0x02, None, &s("x"))).unwrap_err();
    assert_eq!(e, CodecError::BadProtocolName);
    assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
}

#[test]
fn rejects_mqisdp_with_level_4() {
    let e = decode_connect(&connect("MQIsdp", 4, 0x02, None, &s("x"))).unwrap_err();
    assert_eq!(e, CodecError::BadProtocolName);
}

#[test]
fn rejects_mqtt_with_level_3() {
    let e = decode_connect(&connect("MQTT", 3, 0x02, None, &s("x"))).unwrap_err();
    assert_eq!(e, CodecError::BadProtocolName);
}

#[test]
fn rejects_unsupported_level() {
    let e = decode_connect(&connect("MQTT", 6, 0x02, None, &s("x"))).unwrap_err();
    assert_eq!(e, CodecError::UnsupportedVersion(6));
    assert_eq!(e.kind(), "version");
    assert_eq!(e.reason_code().connack_v3(), 1);
}

#[test]
fn rejects_bridge_bit_level() {
    // Mosquitto bridges set bit 7 of the level (0x84): not a level we speak.
    let e = decode_connect(&connect("MQTT", 0x84, 0x02, None, &s("x"))).unwrap_err();
    assert_eq!(e, CodecError::UnsupportedVersion(0x84));
}

#[test]
fn rejects_connect_reserved_flag() {
    assert!(is_malformed(&decode_connect(&v311(0x03, &s("x"))).unwrap_err()));
}

#[test]
fn rejects_will_qos_without_will_flag() {
    assert!(is_malformed(&decode_connect(&v311(0x0A, &s("x"))).unwrap_err()));
}

#[test]
fn rejects_will_retain_without_will_flag() {
    assert!(is_malformed(&decode_connect(&v311(0x22, &s("x"))).unwrap_err()));
}

#[test]
fn rejects_will_qos_3() {
    let mut payload = s("x");
    payload.extend(s("t"));
    payload.extend(s("m"));
    assert!(is_malformed(&decode_connect(&v311(0x1E, &payload)).unwrap_err()));
}

#[test]
fn rejects_password_without_username_v311() {
    let mut payload = s("x");
    payload.extend(s("pw"));
    assert!(is_protocol(&decode_connect(&v311(0x42, &payload)).unwrap_err()));
}

#[test]
fn rejects_password_without_username_v31() {
    let mut payload = s("x");
    payload.extend(s("pw"));
    let e = decode_connect(&connect("MQIsdp", 3, 0x42, None, &payload)).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn accepts_password_without_username_v5() {
    let mut payload = s("x");
    payload.extend(s("pw"));
    let c = decode_connect(&v5(0x42, &[], &payload)).unwrap();
    assert_eq!(c.username, None);
    assert_eq!(c.password, Some(&b"pw"[..]));
}

#[test]
fn rejects_v31_client_id_longer_than_23() {
    let id = "a".repeat(24);
    let e = decode_connect(&connect("MQIsdp", 3, 0x02, None, &s(&id))).unwrap_err();
    assert_eq!(e, CodecError::Protocol(CLIENT_ID_REJECTED));
    assert_eq!(e.reason_code().connack_v3(), 2);
    let id = "a".repeat(23);
    assert!(decode_connect(&connect("MQIsdp", 3, 0x02, None, &s(&id))).is_ok());
}

#[test]
fn rejects_v31_empty_client_id() {
    let e = decode_connect(&connect("MQIsdp", 3, 0x02, None, &s(""))).unwrap_err();
    assert_eq!(e.reason_code(), ReasonCode::ClientIdentifierNotValid);
}

#[test]
fn rejects_v311_empty_client_id_without_clean_session() {
    let e = decode_connect(&v311(0x00, &s(""))).unwrap_err();
    assert_eq!(e.reason_code(), ReasonCode::ClientIdentifierNotValid);
    assert!(decode_connect(&v311(0x02, &s(""))).is_ok());
    assert!(decode_connect(&v5(0x00, &[], &s(""))).is_ok());
}

#[test]
fn rejects_connect_trailing_bytes() {
    let mut payload = s("x");
    payload.push(0);
    assert!(is_malformed(&decode_connect(&v311(0x02, &payload)).unwrap_err()));
}

#[test]
fn rejects_connect_missing_username() {
    assert!(is_malformed(&decode_connect(&v311(0x82, &s("x"))).unwrap_err()));
}

#[test]
fn rejects_will_topic_with_wildcard() {
    let mut payload = s("x");
    payload.extend(s("a/#"));
    payload.extend(s("m"));
    assert!(decode_connect(&v311(0x06, &payload)).is_err());
}

#[test]
fn rejects_empty_will_topic() {
    let mut payload = s("x");
    payload.extend(s(""));
    payload.extend(s("m"));
    assert!(decode_connect(&v311(0x06, &payload)).is_err());
}

#[test]
fn rejects_invalid_utf8_client_id() {
    let payload = [0x00, 0x02, 0xC3, 0x28];
    assert!(is_malformed(&decode_connect(&v311(0x02, &payload)).unwrap_err()));
}

#[test]
fn rejects_surrogate_in_string() {
    // U+D800 encoded as ED A0 80 (MQTT-1.5.4-1).
    let payload = [0x00, 0x03, 0xED, 0xA0, 0x80];
    assert!(is_malformed(&decode_connect(&v311(0x02, &payload)).unwrap_err()));
}

#[test]
fn rejects_overlong_utf8() {
    // '/' as the overlong C0 AF.
    let payload = [0x00, 0x02, 0xC0, 0xAF];
    assert!(is_malformed(&decode_connect(&v311(0x02, &payload)).unwrap_err()));
}

#[test]
fn rejects_nul_in_client_id() {
    let payload = [0x00, 0x02, b'a', 0x00];
    assert!(is_malformed(&decode_connect(&v311(0x02, &payload)).unwrap_err()));
}

#[test]
fn accepts_control_and_noncharacters_in_strings() {
    // U+0001 and U+FFFF are only "SHOULD NOT" in the spec: accepted.
    let payload = [0x00, 0x04, 0x01, 0xEF, 0xBF, 0xBF];
    let c = decode_connect(&v311(0x02, &payload)).unwrap();
    assert_eq!(c.client_id, "\u{1}\u{FFFF}");
}

#[test]
fn rejects_will_property_in_connect_properties() {
    // Will Delay Interval (0x18) belongs in the will properties.
    let e = decode_connect(&v5(0x02, &[0x18, 0, 0, 0, 1], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn rejects_connect_property_in_will_properties() {
    let mut payload = s("x");
    payload.extend_from_slice(&[0x05, 0x11, 0, 0, 0, 1]); // session expiry in will props
    payload.extend(s("t"));
    payload.extend(s("m"));
    assert!(is_protocol(&decode_connect(&v5(0x06, &[], &payload)).unwrap_err()));
}

#[test]
fn rejects_receive_maximum_zero() {
    let e = decode_connect(&v5(0x02, &[0x21, 0x00, 0x00], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn rejects_maximum_packet_size_zero() {
    let e = decode_connect(&v5(0x02, &[0x27, 0, 0, 0, 0], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn rejects_request_problem_information_2() {
    let e = decode_connect(&v5(0x02, &[0x17, 0x02], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn rejects_request_response_information_2() {
    let e = decode_connect(&v5(0x02, &[0x19, 0x02], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
}

#[test]
fn rejects_duplicate_session_expiry_property() {
    let props = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    assert!(is_protocol(&decode_connect(&v5(0x02, &props, &s("x"))).unwrap_err()));
}

#[test]
fn accepts_repeated_user_property() {
    let mut props = vec![0x26];
    props.extend(s("k"));
    props.extend(s("v"));
    props.extend(props.clone());
    let c = decode_connect(&v5(0x02, &props, &s("x"))).unwrap();
    assert_eq!(c.properties.user_properties().count(), 2);
}

#[test]
fn rejects_authentication_data_without_method() {
    let e = decode_connect(&v5(0x02, &[0x16, 0x00, 0x01, 0xAA], &s("x"))).unwrap_err();
    assert!(is_protocol(&e));
    let mut props = vec![0x15];
    props.extend(s("SCRAM"));
    props.extend_from_slice(&[0x16, 0x00, 0x01, 0xAA]);
    let c = decode_connect(&v5(0x02, &props, &s("x"))).unwrap();
    assert_eq!(c.properties.authentication_method(), Some("SCRAM"));
}

#[test]
fn rejects_v5_connect_without_property_length() {
    // A v5 CONNECT must carry the property length; here the payload starts right away and
    // the client id length byte 0x00 is read as "no properties", leaving a truncated id.
    let bytes = connect("MQTT", 5, 0x02, None, &s("x"));
    assert!(decode_connect(&bytes).is_err());
}
