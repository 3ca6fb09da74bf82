//! Throughput of the hot path: split PUBLISH frames off the read buffer and decode them.
//!
//! A batch of identical frames is appended to a reused, pre-sized `BytesMut` and drained frame
//! by frame, as the proxy's read loop does. Two measurements:
//! - `split_decode_*`: only split + decode is timed (the refill copy, which stands in for the
//!   socket read, is excluded with `iter_custom`);
//! - `refill_split_decode_*`: the refill copy is included.
//!
//! Throughput is reported in frames (elements) per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moat::codec::{encode_publish, split_frame, Packet, Properties, ProtocolVersion, Publish, QoS, Split};

const BATCH: usize = 256;
const MAX_PACKET: usize = 1 << 20;

fn publish_bytes(v: ProtocolVersion, payload: usize) -> Vec<u8> {
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/building-1/floor-2/temperature",
        packet_id: Some(42),
        properties: Properties::default(),
        payload: Bytes::from(vec![0xA5u8; payload]),
    };
    let mut out = BytesMut::new();
    // v5: Payload Format Indicator = 1 (ignored for 3.1.1).
    encode_publish(&mut out, v, &p, &[0x01, 0x01]);
    out.to_vec()
}

/// Split and decode every frame in `buf`; returns a checksum so nothing is optimised away.
#[inline]
fn drain(buf: &mut BytesMut, v: ProtocolVersion) -> usize {
    let mut n = 0usize;
    while let Ok(Split::Frame(f)) = split_frame(buf, MAX_PACKET) {
        if let Ok(Packet::Publish(p)) = f.decode(v) {
            n = n.wrapping_add(p.payload.len() + p.topic.len());
        }
    }
    n
}

fn bench_split_decode(c: &mut Criterion) {
    for (name, payload) in [("64B", 64usize), ("4KiB", 4096)] {
        for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let one = publish_bytes(v, payload);
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * BATCH).collect();
            let mut buf = BytesMut::with_capacity(batch.len() * 2);

            let mut group = c.benchmark_group(format!("split_decode_publish_{name}"));
            group.throughput(Throughput::Elements(BATCH as u64));
            group.bench_function(format!("{v:?}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        buf.reserve(batch.len());
                        buf.extend_from_slice(&batch);
                        let start = Instant::now();
                        black_box(drain(&mut buf, v));
                        total += start.elapsed();
                    }
                    total
                })
            });
            group.finish();

            let mut group = c.benchmark_group(format!("refill_split_decode_publish_{name}"));
            group.throughput(Throughput::Elements(BATCH as u64));
            group.bench_function(format!("{v:?}"), |b| {
                b.iter(|| {
                    buf.reserve(batch.len());
                    buf.extend_from_slice(&batch);
                    black_box(drain(&mut buf, v))
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_split_decode);
criterion_main!(benches);
