//! Every decoder under every version: arbitrary bytes must never panic; every packet that
//! decodes must re-encode (with `encode_packet`) to a packet that decodes to the same fields,
//! which catches any field the decoder accepts but the encoder would write differently.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moat::codec::{encode_packet, split_frame, Frame, Packet, ProtocolVersion, Split};

fuzz_target!(|data: &[u8]| {
    for v in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Split::Frame(f)) = split_frame(&mut buf, 1 << 20) {
            let Ok(p) = f.decode(v) else {
                continue;
            };
            // Walk every lazy iterator: they must not panic either.
            match &p {
                Packet::Subscribe(s) => assert_eq!(s.filters().count(), s.len()),
                Packet::Unsubscribe(u) => assert_eq!(u.filters().count(), u.len()),
                Packet::Publish(p) => {
                    let _ = p.properties.iter().count();
                    assert!(p.payload.len() <= f.len());
                }
                Packet::Connect(c) => {
                    let _ = c.properties.iter().count();
                    if let Some(w) = &c.will {
                        let _ = w.properties.iter().count();
                    }
                }
                _ => {}
            }
            let mut out = BytesMut::new();
            encode_packet(&mut out, v, &p);
            let again = Frame::from_bytes(out.freeze()).expect("re-encoded packet frames");
            let q = again.decode(v).expect("re-encoded packet decodes");
            assert_eq!(p, q, "re-encoding changed the packet");
        }
    }
});
