//! PUBLISH decoding and its rejection rules.

use super::helpers::*;
use crate::codec::*;

/// PUBLISH with the given flag nibble, topic, optional packet id, optional v5 props, payload.
fn publish(flags: u8, topic: &str, pid: Option<u16>, props: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut b = s(topic);
    if let Some(id) = pid {
        b.extend_from_slice(&id.to_be_bytes());
    }
    if let Some(p) = props {
        b.push(p.len() as u8);
        b.extend_from_slice(p);
    }
    b.extend_from_slice(payload);
    pkt(0x30 | flags, &b)
}

#[test]
fn decodes_v311_qos0_publish() {
    // 30 0A | 00 03 'a' '/' 'b' | "hello"
    let bytes = [0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o'];
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V311).unwrap() else { panic!() };
    assert_eq!(p.topic, "a/b");
    assert_eq!(p.packet_id, None);
    assert!(!p.dup && !p.retain);
    assert_eq!(&p.payload[..], b"hello");
    assert!(p.properties.is_empty());
}

#[test]
fn decodes_dup_retain_qos2() {
    let bytes = publish(0x0D, "t", Some(9), None, b"x");
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V311).unwrap() else { panic!() };
    assert!(p.dup && p.retain);
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert_eq!(p.packet_id, Some(9));
}

#[test]
fn v311_publish_has_no_property_block() {
    // In 3.1.1 the byte after the topic is payload, even if it looks like a property length.
    let bytes = publish(0, "t", None, None, &[0x02, 0x01, 0x01]);
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V311).unwrap() else { panic!() };
    assert_eq!(&p.payload[..], &[0x02, 0x01, 0x01]);
}

#[test]
fn publish_payload_is_a_slice_of_the_frame() {
    let bytes = publish(0, "t", None, Some(&[]), b"payload");
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V5).unwrap() else { panic!() };
    let start = f.bytes().as_ptr() as usize;
    let at = p.payload.as_ptr() as usize;
    assert!(at > start && at + p.payload.len() == start + f.len());
}

#[test]
fn rejects_publish_qos_3() {
    for v in ALL {
        assert!(is_malformed(&decode_err(&publish(0x06, "t", Some(1), None, b""), v)));
    }
}

#[test]
fn rejects_publish_dup_with_qos0() {
    for v in ALL {
        let bytes = publish(0x08, "t", None, v.is_v5().then_some(&[][..]), b"");
        assert!(is_protocol(&decode_err(&bytes, v)));
    }
}

#[test]
fn rejects_publish_topic_with_plus() {
    assert!(is_protocol(&decode_err(&publish(0, "a/+", None, None, b""), V311)));
}

#[test]
fn rejects_publish_topic_with_hash() {
    assert!(is_protocol(&decode_err(&publish(0, "a/#", None, None, b""), V311)));
}

#[test]
fn rejects_nul_in_topic() {
    assert!(is_malformed(&decode_err(&publish(0, "a\0b", None, None, b""), V311)));
}

#[test]
fn rejects_empty_topic_v311() {
    assert!(decode_err(&publish(0, "", None, None, b""), V311).kind() == "protocol");
}

#[test]
fn rejects_empty_topic_v5_without_alias() {
    assert!(is_protocol(&decode_err(&publish(0, "", None, Some(&[]), b""), V5)));
}

#[test]
fn accepts_empty_topic_v5_with_alias() {
    let bytes = publish(0, "", None, Some(&[0x23, 0x00, 0x01]), b"");
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.topic_alias(), Some(1));
}

#[test]
fn rejects_packet_id_zero() {
    assert!(is_protocol(&decode_err(&publish(0x02, "t", Some(0), None, b""), V311)));
}

#[test]
fn rejects_publish_missing_packet_id() {
    assert!(is_malformed(&decode_err(&[0x32, 0x04, 0x00, 0x01, b't', 0x00], V311)));
}

#[test]
fn rejects_topic_alias_zero() {
    let bytes = publish(0, "t", None, Some(&[0x23, 0x00, 0x00]), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_subscription_identifier_zero_in_publish() {
    let bytes = publish(0, "t", None, Some(&[0x0B, 0x00]), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn accepts_repeated_subscription_identifier_in_publish() {
    let bytes = publish(0, "t", None, Some(&[0x0B, 0x01, 0x0B, 0x80, 0x01]), b"");
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(p.properties.subscription_identifiers().collect::<Vec<_>>(), vec![1, 128]);
}

#[test]
fn rejects_non_minimal_subscription_identifier() {
    let bytes = publish(0, "t", None, Some(&[0x0B, 0x81, 0x00]), b"");
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_duplicate_topic_alias() {
    let bytes = publish(0, "t", None, Some(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_session_expiry_in_publish() {
    let bytes = publish(0, "t", None, Some(&[0x11, 0, 0, 0, 1]), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_payload_format_indicator_2() {
    let bytes = publish(0, "t", None, Some(&[0x01, 0x02]), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_response_topic_with_wildcard() {
    let mut props = vec![0x08];
    props.extend(s("reply/+"));
    let bytes = publish(0, "t", None, Some(&props), b"");
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_unknown_property() {
    let bytes = publish(0, "t", None, Some(&[0x7F, 0x00]), b"");
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_property_length_past_end() {
    // Declared property length 5, only 3 bytes follow.
    let bytes = pkt(0x30, &[0x00, 0x01, b't', 0x05, 0x23, 0x00, 0x01]);
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_property_cut_by_declared_length() {
    // Declared length 2 cuts the 3-byte Topic Alias property; the last byte would be payload.
    let bytes = pkt(0x30, &[0x00, 0x01, b't', 0x02, 0x23, 0x00, 0x01]);
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_non_minimal_property_length() {
    let bytes = pkt(0x30, &[0x00, 0x01, b't', 0x80, 0x00]);
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_invalid_utf8_in_user_property() {
    let bytes = publish(0, "t", None, Some(&[0x26, 0x00, 0x01, 0xFF, 0x00, 0x00]), b"");
    assert!(is_malformed(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_truncated_topic() {
    assert!(is_malformed(&decode_err(&[0x30, 0x03, 0x00, 0x05, b'a'], V311)));
}
