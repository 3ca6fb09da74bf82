//! Every decoder under every version: arbitrary bytes must never panic, and every packet that
//! decodes must re-split to the same frame (the views' offsets stay inside the frame).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moat::codec::{split_frame, Packet, ProtocolVersion, Split};

fuzz_target!(|data: &[u8]| {
    for v in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Split::Frame(f)) = split_frame(&mut buf, 1 << 20) {
            if let Ok(p) = f.decode(v) {
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
            }
        }
    }
});
