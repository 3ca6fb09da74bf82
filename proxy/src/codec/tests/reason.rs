//! Reason-code table, error mapping, topic helpers.

use crate::codec::*;

#[test]
fn reason_codes_round_trip_through_u8() {
    let mut n = 0;
    for b in 0u8..=255 {
        if let Some(c) = ReasonCode::from_u8(b) {
            assert_eq!(c.as_u8(), b);
            assert_eq!(c.is_error(), b >= 0x80);
            n += 1;
        }
    }
    // Spec table 2-6 has 43 distinct values.
    assert_eq!(n, 43);
}

#[test]
fn connack_v3_mapping() {
    use ReasonCode::*;
    for (c, v3) in [
        (Success, 0),
        (UnsupportedProtocolVersion, 1),
        (ClientIdentifierNotValid, 2),
        (ServerUnavailable, 3),
        (ServerBusy, 3),
        (QuotaExceeded, 3),
        (BadUserNameOrPassword, 4),
        (BadAuthenticationMethod, 4),
        (NotAuthorized, 5),
        (Banned, 5),
        (MalformedPacket, 3),
    ] {
        assert_eq!(c.connack_v3(), v3, "{c:?}");
    }
    for code in 0u8..=5 {
        assert_eq!(ReasonCode::from_connack_v3(code).unwrap().connack_v3(), code);
    }
    assert_eq!(ReasonCode::from_connack_v3(6), None);
}

#[test]
fn allowed_sets_match_the_spec() {
    use ReasonCode::*;
    assert!(Success.allowed_in(PacketType::Auth));
    assert!(ContinueAuthentication.allowed_in(PacketType::Auth));
    assert!(!NotAuthorized.allowed_in(PacketType::Auth));
    assert!(PacketIdentifierNotFound.allowed_in(PacketType::Pubrel));
    assert!(!PacketIdentifierNotFound.allowed_in(PacketType::Puback));
    assert!(NoMatchingSubscribers.allowed_in(PacketType::Puback));
    assert!(!NoMatchingSubscribers.allowed_in(PacketType::Pubcomp));
    assert!(GrantedQos2.allowed_in(PacketType::Suback));
    assert!(!GrantedQos2.allowed_in(PacketType::Unsuback));
    assert!(SessionTakenOver.allowed_in(PacketType::Disconnect));
    assert!(!SessionTakenOver.allowed_in(PacketType::Connack));
    assert!(Banned.allowed_in(PacketType::Connack));
    assert!(!Success.allowed_in(PacketType::Publish));
}

#[test]
fn error_kinds_and_reason_codes() {
    let cases = [
        (CodecError::Malformed("x"), "malformed", 0x81),
        (CodecError::Protocol("x"), "protocol", 0x82),
        (CodecError::TooLarge { size: 2, max: 1 }, "too_large", 0x95),
        (CodecError::UnsupportedVersion(9), "version", 0x84),
        (CodecError::BadProtocolName, "protocol_name", 0x84),
        (CodecError::Protocol(CLIENT_ID_REJECTED), "protocol", 0x85),
    ];
    for (e, kind, code) in cases {
        assert_eq!(e.kind(), kind);
        assert_eq!(e.reason_code().as_u8(), code);
    }
    assert_eq!(CodecError::TooLarge { size: 2, max: 1 }.to_string(), "packet too large: 2 bytes exceeds 1");
}

#[test]
fn packet_type_labels_and_versions() {
    assert_eq!(PacketType::Publish.as_str(), "publish");
    assert_eq!(PacketType::from_nibble(15), Some(PacketType::Auth));
    assert_eq!(PacketType::from_nibble(0), None);
    for v in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        assert_eq!(ProtocolVersion::from_level(v.level()), Some(v));
    }
    assert_eq!(ProtocolVersion::from_level(6), None);
    assert!(ProtocolVersion::V5.is_v5() && !ProtocolVersion::V311.is_v5());
}

#[test]
fn topic_name_grammar() {
    assert!(validate_topic_name("a/b/c").is_ok());
    assert!(validate_topic_name("/").is_ok());
    assert!(validate_topic_name("$SYS/x").is_ok());
    assert!(validate_topic_name("").is_err());
    assert!(validate_topic_name("a/+").is_err());
    assert!(validate_topic_name("#").is_err());
    assert!(validate_topic_name("a\0").is_err());
}

#[test]
fn topic_filter_grammar() {
    for ok in [
        "#",
        "+",
        "a/#",
        "+/+",
        "/+",
        "a//b",
        "sport/tennis/+",
        "+/tennis/#",
        "$share/g/a/#",
        "$share/g/+",
        "$share/g//",
    ] {
        assert!(validate_topic_filter(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a#",
        "a/#/b",
        "a+",
        "+a/b",
        "#/",
        "$share/g",
        "$share//a",
        "$share/g/",
        "$share/+/a",
        "$share/g#/a",
        "a\0",
    ] {
        assert!(validate_topic_filter(bad).is_err(), "{bad}");
    }
}

#[test]
fn split_shared_subscription() {
    assert_eq!(split_shared("$share/g/a/b"), Some(("g", "a/b")));
    assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
    assert_eq!(split_shared("a/b"), None);
    assert_eq!(split_shared("$share/g"), None);
    assert_eq!(split_shared("$sharex/g/a"), None);
}

#[test]
fn subscription_options_byte() {
    let o = SubscriptionOptions::from_byte(0x2E, ProtocolVersion::V5).unwrap();
    assert_eq!(o.qos, QoS::ExactlyOnce);
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, 2);
    assert_eq!(o.to_byte(), 0x2E);
    assert!(SubscriptionOptions::from_byte(0x04, ProtocolVersion::V311).is_err());
}

#[test]
fn topic_special_bytes_found_at_every_position() {
    // Exercises both the 8-byte SWAR path and the remainder path.
    for len in 1..40 {
        for pos in 0..len {
            for (c, malformed) in [(b'+', false), (b'#', false), (0u8, true)] {
                let mut t = vec![b'a'; len];
                t[pos] = c;
                let s = std::str::from_utf8(&t).unwrap();
                let e = validate_topic_name(s).unwrap_err();
                assert_eq!(matches!(e, CodecError::Malformed(_)), malformed, "{len} {pos}");
            }
        }
        let ok = "é".repeat(len);
        assert!(validate_topic_name(&ok).is_ok());
        // Bytes that differ from '+'/'#' by one bit must not trip the SWAR test.
        let near: String =
            std::iter::repeat_n(['*', ',', '"', '$', '\u{1}', '\u{7f}'], len).flatten().collect();
        assert!(validate_topic_name(&near).is_ok());
    }
}
