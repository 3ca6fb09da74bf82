//! Property tests: encode -> split -> decode round trips for every packet type and version,
//! canonical re-encoding, and no panic on arbitrary or mutated input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::gen::{self, Gen};
use super::helpers::*;
use crate::codec::*;

fn reencode(p: &Packet<'_>, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_packet(&mut out, v, p);
    out.to_vec()
}

/// `MOAT_PROPTEST_SCALE=N` multiplies the case counts: the long run CI does when it has no
/// nightly toolchain for the fuzzers (tests/run.sh).
fn scaled_cases(base: u32) -> u32 {
    let scale = std::env::var("MOAT_PROPTEST_SCALE").ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
    base.saturating_mul(scale.max(1))
}

fn versioned() -> impl Strategy<Value = (ProtocolVersion, Gen)> {
    gen::version().prop_flat_map(|v| (Just(v), gen::packet(v)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled_cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip((v, g) in versioned()) {
        let bytes = gen::encode(&g, v);
        prop_assert!(!bytes.is_empty(), "encoder wrote nothing for {g:?}");
        let f = frame(&bytes);
        let p = match f.decode(v) {
            Ok(p) => p,
            Err(e) => panic!("{v:?} {g:?} -> {bytes:02x?} failed: {e}"),
        };
        gen::check(&g, v, &p);
        // Encoding is canonical: re-encoding the decoded view gives the same bytes.
        prop_assert_eq!(reencode(&p, v), bytes);
    }

    #[test]
    fn every_strict_prefix_is_incomplete((v, g) in versioned()) {
        let bytes = gen::encode(&g, v);
        for n in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..n]);
            prop_assert_eq!(split_frame(&mut buf, MAX), Ok(Split::Incomplete));
            prop_assert_eq!(buf.len(), n);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        for v in ALL {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Split::Frame(f)) = split_frame(&mut buf, 1 << 16) {
                if let Ok(p) = f.decode(v) {
                    exercise(&p);
                }
            }
        }
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        (v, g) in versioned(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = gen::encode(&g, v);
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        for dv in ALL {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Split::Frame(f)) = split_frame(&mut buf, MAX) {
                if let Ok(p) = f.decode(dv) {
                    exercise(&p);
                }
            }
        }
    }

    #[test]
    fn too_large_rejected_before_body(max in 2usize..100_000, extra in 1usize..1_000_000) {
        // Declare a body that makes the packet exceed `max`; send only the header.
        let rem = (max + extra).min(VARINT_MAX as usize);
        let mut header = vec![0x30u8];
        let mut n = rem;
        loop {
            let mut b = (n & 0x7F) as u8;
            n >>= 7;
            if n > 0 { b |= 0x80; }
            header.push(b);
            if n == 0 { break; }
        }
        let mut buf = BytesMut::from(&header[..]);
        let cap = buf.capacity();
        let e = split_frame(&mut buf, max).unwrap_err();
        prop_assert!(matches!(e, CodecError::TooLarge { .. }), "{:?}", e);
        prop_assert_eq!(buf.capacity(), cap);
        // And every prefix of the header either waits or is already refused.
        for k in 1..header.len() {
            let mut b = BytesMut::from(&header[..k]);
            let r = split_frame(&mut b, max);
            let ok = matches!(r, Ok(Split::Incomplete) | Err(CodecError::TooLarge { .. }));
            prop_assert!(ok);
        }
    }

    #[test]
    fn chunked_feed_matches_whole_feed(
        packets in prop::collection::vec(versioned_v311(), 1..6),
        chunk in 1usize..16,
    ) {
        let stream: Vec<u8> = packets.iter().flat_map(|g| gen::encode(g, V311)).collect();
        let mut whole = BytesMut::from(&stream[..]);
        let mut a = Vec::new();
        while let Ok(Split::Frame(f)) = split_frame(&mut whole, MAX) {
            a.push(f.into_bytes());
        }
        let mut buf = BytesMut::new();
        let mut b: Vec<Bytes> = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Ok(Split::Frame(f)) = split_frame(&mut buf, MAX) {
                b.push(f.into_bytes());
            }
        }
        prop_assert_eq!(a.len(), packets.len());
        prop_assert_eq!(a, b);
    }
}

fn versioned_v311() -> impl Strategy<Value = Gen> {
    gen::packet(V311)
}

/// Walk every lazy accessor of a decoded packet.
fn exercise(p: &Packet<'_>) {
    let props = |pr: &Properties<'_>| {
        let n = pr.iter().count();
        let _ = (pr.topic_alias(), pr.reason_string(), pr.user_properties().count());
        n
    };
    match p {
        Packet::Connect(c) => {
            props(&c.properties);
            if let Some(w) = &c.will {
                props(&w.properties);
                validate_topic_name(w.topic).unwrap();
            }
        }
        Packet::Connack(c) => {
            props(&c.properties);
        }
        Packet::Publish(pb) => {
            props(&pb.properties);
        }
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
            props(&a.properties);
        }
        Packet::Subscribe(s) => {
            assert_eq!(s.filters().count(), s.len());
            for (f, _) in s.filters() {
                validate_topic_filter(f).unwrap();
            }
        }
        Packet::Unsubscribe(u) => {
            assert_eq!(u.filters().count(), u.len());
        }
        Packet::Suback(s) | Packet::Unsuback(s) => {
            props(&s.properties);
        }
        Packet::Disconnect(d) => {
            props(&d.properties);
        }
        Packet::Auth(a) => {
            props(&a.properties);
        }
        Packet::Pingreq | Packet::Pingresp => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled_cases(3000), ..ProptestConfig::default() })]

    /// Same property as the `decode_all` fuzz target, on stable: whatever decodes (here,
    /// mutations of valid packets) re-encodes to a packet with identical fields.
    #[test]
    fn accepted_packets_reencode_to_the_same_fields(
        (v, g) in versioned(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut bytes = gen::encode(&g, v);
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Split::Frame(f)) = split_frame(&mut buf, MAX) {
            let Ok(p) = f.decode(v) else { continue };
            let again = Frame::from_bytes(Bytes::from(reencode(&p, v))).unwrap();
            let q = again.decode(v).unwrap();
            prop_assert_eq!(p, q);
        }
    }
}
