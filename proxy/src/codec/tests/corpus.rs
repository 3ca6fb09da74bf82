//! A hand-annotated corpus of valid packets (one or more per type and version), used for the
//! truncation loop: every strict prefix of every valid packet must split as `Incomplete`,
//! never as an error, whatever the size limit allows.

use bytes::BytesMut;

use super::helpers::*;
use crate::codec::*;

pub fn corpus() -> Vec<(ProtocolVersion, Vec<u8>)> {
    let mut c: Vec<(ProtocolVersion, Vec<u8>)> = vec![
        // CONNECT 3.1.1: MQTT/4, flags C2 (user, pass, clean), keep alive 60, "cid", "u", "pw"
        (
            V311,
            vec![
                0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x03, b'c',
                b'i', b'd', 0x00, 0x01, b'u', 0x00, 0x02, b'p', b'w',
            ],
        ),
        // CONNECT 3.1: MQIsdp/3, clean, keep alive 10, "abc"
        (
            V31,
            vec![
                0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x0A, 0x00,
                0x03, b'a', b'b', b'c',
            ],
        ),
        // CONNACK 3.1.1 accepted, session present
        (V311, vec![0x20, 0x02, 0x01, 0x00]),
        // CONNACK 5 success with Receive Maximum 10
        (V5, vec![0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x0A]),
        // PUBLISH 3.1.1 QoS 0 "a/b" "hello"
        (V311, vec![0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o']),
        // PUBLISH 5 QoS 1 id 7, payload format 1, "hi"
        (V5, vec![0x32, 0x0C, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x07, 0x02, 0x01, 0x01, b'h', b'i']),
        // PUBLISH 5 with topic alias and empty topic
        (V5, vec![0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01]),
        // Acks 3.1.1 and 5
        (V311, vec![0x40, 0x02, 0x00, 0x01]),
        (V311, vec![0x50, 0x02, 0x00, 0x01]),
        (V311, vec![0x62, 0x02, 0x00, 0x01]),
        (V311, vec![0x70, 0x02, 0x00, 0x01]),
        (V5, vec![0x40, 0x03, 0x00, 0x01, 0x10]),
        (V5, vec![0x62, 0x04, 0x00, 0x01, 0x92, 0x00]),
        // SUBSCRIBE 3.1.1: id 10, "a/b" QoS 1
        (V311, vec![0x82, 0x08, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01]),
        // SUBSCRIBE 5: id 10, sub id 5, "a/+" options 0x2D
        (V5, vec![0x82, 0x0B, 0x00, 0x0A, 0x02, 0x0B, 0x05, 0x00, 0x03, b'a', b'/', b'+', 0x2D]),
        // SUBACK 3.1.1 / 5
        (V311, vec![0x90, 0x04, 0x00, 0x0A, 0x01, 0x80]),
        (V5, vec![0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0xA2]),
        // UNSUBSCRIBE 3.1.1 / 5
        (V311, vec![0xA2, 0x05, 0x00, 0x0B, 0x00, 0x01, b'#']),
        (V5, vec![0xA2, 0x06, 0x00, 0x0B, 0x00, 0x00, 0x01, b'+']),
        // UNSUBACK 3.1.1 / 5
        (V311, vec![0xB0, 0x02, 0x00, 0x0B]),
        (V5, vec![0xB0, 0x04, 0x00, 0x0B, 0x00, 0x11]),
        // PING
        (V311, vec![0xC0, 0x00]),
        (V311, vec![0xD0, 0x00]),
        // DISCONNECT 3.1.1 / 5 (server shutting down + session expiry 0)
        (V311, vec![0xE0, 0x00]),
        (V5, vec![0xE0, 0x07, 0x8B, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]),
        // AUTH 5: continue, method "m"
        (V5, vec![0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, b'm']),
        (V5, vec![0xF0, 0x00]),
    ];
    // A PUBLISH large enough for a 2-byte remaining length (topic "t", 300-byte payload).
    let mut big = vec![0x00, 0x01, b't'];
    big.extend(std::iter::repeat_n(0x5A, 300));
    c.push((V311, pkt(0x30, &big)));
    c
}

#[test]
fn corpus_decodes() {
    for (v, bytes) in corpus() {
        decodes(&bytes, v);
    }
}

#[test]
fn every_strict_prefix_of_corpus_is_incomplete() {
    for (_, bytes) in corpus() {
        for n in 0..bytes.len() {
            for max in [bytes.len(), MAX] {
                let mut buf = BytesMut::from(&bytes[..n]);
                assert_eq!(split_frame(&mut buf, max), Ok(Split::Incomplete), "prefix {n} of {bytes:02x?}");
                assert_eq!(buf.len(), n, "Incomplete must not consume");
            }
        }
    }
}

#[test]
fn corpus_concatenated_splits_back() {
    let all = corpus();
    let stream: Vec<u8> = all.iter().flat_map(|(_, b)| b.clone()).collect();
    let mut buf = BytesMut::from(&stream[..]);
    for (v, bytes) in &all {
        let Ok(Split::Frame(f)) = split_frame(&mut buf, MAX) else { panic!() };
        assert_eq!(&f.bytes()[..], &bytes[..]);
        assert!(f.decode(*v).is_ok());
    }
    assert!(buf.is_empty());
}

#[test]
fn corpus_decodes_only_in_the_right_versions() {
    // v5-only shapes are refused in 3.1.1 and vice versa (a 3.1.1 CONNACK lacks the v5
    // property length).
    assert!(frame(&[0xF0, 0x00]).decode(V311).is_err());
    assert!(frame(&[0x20, 0x02, 0x01, 0x00]).decode(V5).is_err());
    assert!(frame(&[0x40, 0x03, 0x00, 0x01, 0x10]).decode(V311).is_err());
    assert!(frame(&[0xE0, 0x01, 0x00]).decode(V311).is_err());
}
