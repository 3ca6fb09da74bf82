//! Smoke tests for each packet type (one valid example per type and version).

use super::helpers::*;
use crate::codec::*;

#[test]
fn decodes_v311_connect() {
    let bytes = [
        0x10, 0x16, // CONNECT, remaining 22
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04, // level 4
        0xC2, // username, password, clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x03, b'c', b'i', b'd', // client id
        0x00, 0x01, b'u', // username
        0x00, 0x02, b'p', b'w', // password
    ];
    let f = frame(&bytes);
    let Packet::Connect(c) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(c.version, V311);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.client_id, "cid");
    assert_eq!(c.username, Some("u"));
    assert_eq!(c.password, Some(&b"pw"[..]));
    assert!(c.will.is_none());
}

#[test]
fn decodes_v5_publish_qos1() {
    let bytes = [
        0x32, 0x0C, // PUBLISH qos1, remaining 12
        0x00, 0x03, b'a', b'/', b'b', // topic
        0x00, 0x07, // packet id 7
        0x02, 0x01, 0x01, // props len 2: payload format 1
        b'h', b'i', // payload
    ];
    let f = frame(&bytes);
    let Packet::Publish(p) = f.decode(V5).unwrap() else { panic!() };
    assert_eq!(p.topic, "a/b");
    assert_eq!(p.packet_id, Some(7));
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(&p.payload[..], b"hi");
    assert_eq!(p.properties.payload_format_indicator(), Some(1));
}
