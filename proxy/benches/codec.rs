//! Throughput of the hot path: split a PUBLISH frame off the read buffer and decode it.
//!
//! The buffer is refilled with a batch of identical frames and drained frame by frame, as the
//! proxy's read loop does. Throughput is reported in frames (elements) per second.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moat::codec::{encode_publish, split_frame, Packet, Properties, ProtocolVersion, Publish, QoS, Split};

const BATCH: usize = 256;

fn publish_bytes(v: ProtocolVersion, payload: usize) -> Vec<u8> {
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/building-1/floor-2/temperature",
        packet_id: Some(42),
        properties: Properties::default(),
        payload: bytes::Bytes::from(vec![0xA5u8; payload]),
    };
    let mut out = BytesMut::new();
    encode_publish(&mut out, v, &p, &[0x01, 0x01]);
    out.to_vec()
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
                b.iter(|| {
                    buf.reserve(batch.len());
                    buf.extend_from_slice(&batch);
                    let mut n = 0usize;
                    while let Ok(Split::Frame(f)) = split_frame(&mut buf, 1 << 20) {
                        if let Ok(Packet::Publish(p)) = f.decode(v) {
                            n += p.payload.len() + p.topic.len();
                        }
                    }
                    black_box(n)
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_split_decode);
criterion_main!(benches);
