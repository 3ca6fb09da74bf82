//! Proves the hot path allocates nothing: splitting frames off a pre-sized read buffer and
//! decoding PUBLISH makes zero heap allocations per frame in steady state.
//!
//! `BytesMut::split_to` on a buffer still in its initial "vec" representation promotes it to
//! the shared representation once (one allocation for the shared header). After that every
//! split/freeze/slice is a reference-count bump, and once all frames are dropped `reserve`
//! reclaims the same storage. So the test warms up first and then counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use moat::codec::{encode_publish, split_frame, Packet, Properties, ProtocolVersion, Publish, QoS, Split};

struct Counting;

thread_local! {
    // Per thread, so the test harness's own threads (output capture, timers) are not counted.
    // `const` init: no lazy initialisation, hence no allocation inside the allocator.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn publish_bytes(v: ProtocolVersion, payload: usize) -> Vec<u8> {
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a/b/c",
        packet_id: Some(1),
        properties: Properties::default(),
        payload: bytes::Bytes::from(vec![7u8; payload]),
    };
    let mut out = BytesMut::new();
    // A property block with a user property and a topic alias exercises property validation.
    let props: &[u8] = &[0x23, 0x00, 0x05, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'];
    encode_publish(&mut out, v, &p, props);
    out.to_vec()
}

/// Run `rounds` refill/drain rounds; returns (frames decoded, allocations during the rounds).
fn run(buf: &mut BytesMut, batch: &[u8], v: ProtocolVersion, rounds: usize) -> (usize, usize) {
    let before = allocs();
    let mut frames = 0;
    for _ in 0..rounds {
        buf.reserve(batch.len());
        buf.extend_from_slice(batch);
        loop {
            match split_frame(buf, 1 << 20) {
                Ok(Split::Frame(f)) => {
                    let Ok(Packet::Publish(p)) = f.decode(v) else {
                        panic!("publish did not decode");
                    };
                    assert!(!p.payload.is_empty());
                    assert_eq!(p.topic, "a/b/c");
                    frames += 1;
                }
                Ok(Split::Incomplete) => break,
                Err(e) => panic!("split failed: {e}"),
            }
        }
    }
    (frames, allocs() - before)
}

#[test]
fn counter_sees_allocations() {
    // Guards against a vacuous pass: the counter must see an ordinary allocation.
    let before = allocs();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(16));
    assert!(allocs() > before);
    drop(v);
}

#[test]
fn split_and_publish_decode_do_not_allocate() {
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for payload in [64usize, 4096] {
            let one = publish_bytes(v, payload);
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
            let mut buf = BytesMut::with_capacity(batch.len() * 2);
            // Warm-up: promotes the buffer to the shared representation (one allocation).
            let (_, warm) = run(&mut buf, &batch, v, 2);
            assert!(warm <= 2, "warm-up allocated {warm} times");
            let (frames, allocs) = run(&mut buf, &batch, v, 100);
            assert_eq!(frames, 6400);
            assert_eq!(allocs, 0, "{v:?} {payload}B: {allocs} allocations for {frames} frames");
        }
    }
}

/// PUBACK/PUBREL (v5 with a reason string), PINGREQ, PINGRESP and a 3.1.1 PUBACK: the other
/// per-message packets on the hot path must not allocate either.
#[test]
fn acks_and_pings_do_not_allocate() {
    let v5_ack: &[u8] = &[0x40, 0x08, 0x00, 0x01, 0x87, 0x04, 0x1F, 0x00, 0x01, b'x'];
    let v5_pubrel: &[u8] = &[0x62, 0x03, 0x00, 0x01, 0x92];
    let pings: &[u8] = &[0xC0, 0x00, 0xD0, 0x00];
    let v3_ack: &[u8] = &[0x40, 0x02, 0x00, 0x01];
    for (v, one) in [
        (ProtocolVersion::V5, [v5_ack, v5_pubrel, pings].concat()),
        (ProtocolVersion::V311, [v3_ack, pings].concat()),
    ] {
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
        let mut buf = BytesMut::with_capacity(batch.len() * 2);
        let drain = |buf: &mut BytesMut| {
            let before = allocs();
            buf.reserve(batch.len());
            buf.extend_from_slice(&batch);
            let mut n = 0;
            while let Ok(Split::Frame(f)) = split_frame(buf, 1 << 20) {
                match f.decode(v) {
                    Ok(Packet::Puback(a)) | Ok(Packet::Pubrel(a)) => {
                        n += usize::from(a.packet_id) + a.properties.iter().count();
                    }
                    Ok(Packet::Pingreq) | Ok(Packet::Pingresp) => n += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(n > 0);
            allocs() - before
        };
        drain(&mut buf); // warm-up: promotes the buffer to the shared representation
        let mut total = 0;
        for _ in 0..50 {
            total += drain(&mut buf);
        }
        assert_eq!(total, 0, "{v:?}: {total} allocations");
    }
}
