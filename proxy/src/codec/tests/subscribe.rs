//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.

use super::helpers::*;
use crate::codec::*;

/// SUBSCRIBE with packet id 10, optional v5 props and (filter, options) entries.
fn subscribe(props: Option<&[u8]>, entries: &[(&str, u8)]) -> Vec<u8> {
    let mut b = vec![0x00, 0x0A];
    if let Some(p) = props {
        b.push(p.len() as u8);
        b.extend_from_slice(p);
    }
    for (f, o) in entries {
        b.extend(s(f));
        b.push(*o);
    }
    pkt(0x82, &b)
}

fn unsubscribe(props: Option<&[u8]>, filters: &[&str]) -> Vec<u8> {
    let mut b = vec![0x00, 0x0B];
    if let Some(p) = props {
        b.push(p.len() as u8);
        b.extend_from_slice(p);
    }
    for f in filters {
        b.extend(s(f));
    }
    pkt(0xA2, &b)
}

fn v5_sub(filter: &str, opts: u8) -> Vec<u8> {
    subscribe(Some(&[]), &[(filter, opts)])
}

#[test]
fn decodes_v311_subscribe() {
    // 82 0E | 00 0A | 00 03 a/b 01 | 00 03 c/# 02
    let bytes = subscribe(None, &[("a/b", 1), ("c/#", 2)]);
    let f = frame(&bytes);
    let Packet::Subscribe(sub) = f.decode(V311).unwrap() else { panic!() };
    assert_eq!(sub.packet_id, 10);
    assert_eq!(sub.len(), 2);
    let got: Vec<_> = sub.filters().collect();
    assert_eq!(got[0], ("a/b", SubscriptionOptions::with_qos(QoS::AtLeastOnce)));
    assert_eq!(got[1].1.qos, QoS::ExactlyOnce);
}

#[test]
fn decodes_v5_subscribe_options_and_identifier() {
    // options 0x2D: retain handling 2, RAP, no local, QoS 1.
    let bytes = subscribe(Some(&[0x0B, 0x05]), &[("a/+/c", 0x2D), ("$share/g/x/#", 0x00)]);
    let f = frame(&bytes);
    let Packet::Subscribe(sub) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(sub.properties.subscription_identifiers().next(), Some(5));
    let (filter, o) = sub.filters().next().unwrap();
    assert_eq!(filter, "a/+/c");
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, 2);
    assert_eq!(o.qos, QoS::AtLeastOnce);
    assert_eq!(o.to_byte(), 0x2D);
}

#[test]
fn rejects_subscribe_reserved_flags() {
    let mut bytes = subscribe(None, &[("a", 0)]);
    bytes[0] = 0x80;
    assert!(is_malformed(&decode_err(&bytes, V311)));
}

#[test]
fn rejects_empty_subscribe_payload() {
    assert!(is_protocol(&decode_err(&subscribe(None, &[]), V311)));
    assert!(is_protocol(&decode_err(&subscribe(Some(&[]), &[]), V5)));
}

#[test]
fn rejects_subscribe_packet_id_zero() {
    assert!(is_protocol(&decode_err(&pkt(0x82, &[0x00, 0x00, 0x00, 0x01, b'a', 0x00]), V311)));
}

#[test]
fn rejects_subscribe_missing_options_byte() {
    assert!(is_malformed(&decode_err(&pkt(0x82, &[0x00, 0x01, 0x00, 0x01, b'a']), V311)));
}

#[test]
fn rejects_subscribe_options_reserved_bits_v5() {
    assert!(is_malformed(&decode_err(&v5_sub("a", 0x40), V5)));
    assert!(is_malformed(&decode_err(&v5_sub("a", 0x80), V5)));
}

#[test]
fn rejects_v311_subscribe_options_upper_bits() {
    // No Local is a v5 option: bits 2-7 are reserved in 3.1.1.
    assert!(is_malformed(&decode_err(&subscribe(None, &[("a", 0x04)]), V311)));
    assert!(is_malformed(&decode_err(&subscribe(None, &[("a", 0x10)]), V31)));
}

#[test]
fn rejects_subscribe_qos_3() {
    assert!(is_malformed(&decode_err(&subscribe(None, &[("a", 0x03)]), V311)));
    assert!(is_malformed(&decode_err(&v5_sub("a", 0x03), V5)));
}

#[test]
fn rejects_retain_handling_3() {
    assert!(is_malformed(&decode_err(&v5_sub("a", 0x30), V5)));
}

#[test]
fn rejects_no_local_on_shared_subscription() {
    assert!(is_protocol(&decode_err(&v5_sub("$share/g/a", 0x04), V5)));
}

#[test]
fn rejects_filter_hash_not_last() {
    assert!(is_protocol(&decode_err(&subscribe(None, &[("a/#/b", 0)]), V311)));
}

#[test]
fn rejects_filter_hash_inside_level() {
    assert!(is_protocol(&decode_err(&subscribe(None, &[("a/b#", 0)]), V311)));
}

#[test]
fn rejects_filter_plus_inside_level() {
    assert!(is_protocol(&decode_err(&subscribe(None, &[("a+/b", 0)]), V311)));
}

#[test]
fn rejects_empty_filter() {
    assert!(is_protocol(&decode_err(&subscribe(None, &[("", 0)]), V311)));
}

#[test]
fn rejects_nul_in_filter() {
    assert!(is_malformed(&decode_err(&subscribe(None, &[("a\0", 0)]), V311)));
}

#[test]
fn rejects_shared_subscription_empty_group() {
    assert!(is_protocol(&decode_err(&v5_sub("$share//a", 0), V5)));
}

#[test]
fn rejects_shared_subscription_wildcard_group() {
    assert!(is_protocol(&decode_err(&v5_sub("$share/g+/a", 0), V5)));
    assert!(is_protocol(&decode_err(&v5_sub("$share/#/a", 0), V5)));
}

#[test]
fn rejects_shared_subscription_without_filter() {
    assert!(is_protocol(&decode_err(&v5_sub("$share/g", 0), V5)));
    assert!(is_protocol(&decode_err(&v5_sub("$share/g/", 0), V5)));
}

#[test]
fn rejects_subscription_identifier_zero_in_subscribe() {
    let bytes = subscribe(Some(&[0x0B, 0x00]), &[("a", 0)]);
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_repeated_subscription_identifier_in_subscribe() {
    let bytes = subscribe(Some(&[0x0B, 0x01, 0x0B, 0x02]), &[("a", 0)]);
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn rejects_topic_alias_in_subscribe() {
    let bytes = subscribe(Some(&[0x23, 0x00, 0x01]), &[("a", 0)]);
    assert!(is_protocol(&decode_err(&bytes, V5)));
}

#[test]
fn decodes_unsubscribe() {
    let bytes = unsubscribe(None, &["a/b", "c/+"]);
    let f = frame(&bytes);
    let Packet::Unsubscribe(u) = f.decode(V311).unwrap() else { panic!() };
    assert_eq!(u.packet_id, 11);
    assert_eq!(u.filters().collect::<Vec<_>>(), vec!["a/b", "c/+"]);
    assert_eq!(u.len(), 2);
}

#[test]
fn rejects_unsubscribe_reserved_flags() {
    let mut bytes = unsubscribe(None, &["a"]);
    bytes[0] = 0xA0;
    assert!(is_malformed(&decode_err(&bytes, V311)));
}

#[test]
fn rejects_empty_unsubscribe_payload() {
    assert!(is_protocol(&decode_err(&unsubscribe(None, &[]), V311)));
    assert!(is_protocol(&decode_err(&unsubscribe(Some(&[]), &[]), V5)));
}

#[test]
fn rejects_unsubscribe_invalid_filter() {
    assert!(is_protocol(&decode_err(&unsubscribe(None, &["a/#/b"]), V311)));
}

#[test]
fn rejects_subscription_identifier_in_unsubscribe() {
    assert!(is_protocol(&decode_err(&unsubscribe(Some(&[0x0B, 0x01]), &["a"]), V5)));
}

#[test]
fn decodes_suback() {
    let f = frame(&[0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x80]);
    let Packet::Suback(sa) = f.decode(V311).unwrap() else { panic!() };
    assert_eq!(sa.packet_id, 10);
    assert_eq!(sa.codes, &[0x00, 0x01, 0x80]);
    let f = frame(&[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0xA2]);
    let Packet::Suback(sa) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(sa.codes, &[0x02, 0xA2]);
}

#[test]
fn rejects_v311_suback_invalid_code() {
    assert!(is_protocol(&decode_err(&[0x90, 0x03, 0x00, 0x0A, 0x03], V311)));
    assert!(is_protocol(&decode_err(&[0x90, 0x03, 0x00, 0x0A, 0x87], V311)));
}

#[test]
fn rejects_v5_suback_invalid_code() {
    assert!(is_protocol(&decode_err(&[0x90, 0x04, 0x00, 0x0A, 0x00, 0x11], V5)));
}

#[test]
fn rejects_empty_suback() {
    assert!(is_protocol(&decode_err(&[0x90, 0x02, 0x00, 0x0A], V311)));
}

#[test]
fn rejects_suback_flags() {
    assert!(is_malformed(&decode_err(&[0x92, 0x03, 0x00, 0x0A, 0x00], V311)));
}

#[test]
fn decodes_unsuback() {
    let f = frame(&[0xB0, 0x02, 0x00, 0x0B]);
    let Packet::Unsuback(u) = f.decode(V311).unwrap() else { panic!() };
    assert!(u.codes.is_empty());
    let f = frame(&[0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11]);
    let Packet::Unsuback(u) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(u.codes, &[0x00, 0x11]);
}

#[test]
fn rejects_v311_unsuback_with_payload() {
    assert!(is_malformed(&decode_err(&[0xB0, 0x03, 0x00, 0x0B, 0x00], V311)));
}

#[test]
fn rejects_v5_unsuback_without_codes() {
    assert!(is_protocol(&decode_err(&[0xB0, 0x03, 0x00, 0x0B, 0x00], V5)));
}

#[test]
fn rejects_v5_unsuback_invalid_code() {
    assert!(is_protocol(&decode_err(&[0xB0, 0x04, 0x00, 0x0B, 0x00, 0x01], V5)));
}
