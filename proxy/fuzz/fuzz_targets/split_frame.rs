//! Splitter: arbitrary byte streams, fed in arbitrary chunk sizes, must never panic, never
//! produce a frame larger than the limit, and must split the same frames whatever the chunking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moat::codec::{split_frame, Split};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let max = 2 + usize::from(ctl) * 4;
    let chunk = usize::from(ctl % 7) + 1;

    // Whole input at once.
    let mut whole = BytesMut::from(data);
    let mut frames_whole = Vec::new();
    while let Ok(Split::Frame(f)) = split_frame(&mut whole, max) {
        assert!(f.len() <= max);
        frames_whole.push(f.into_bytes());
    }

    // Same input, trickled in.
    let mut buf = BytesMut::new();
    let mut frames_chunked = Vec::new();
    'outer: for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match split_frame(&mut buf, max) {
                Ok(Split::Frame(f)) => frames_chunked.push(f.into_bytes()),
                Ok(Split::Incomplete) => break,
                Err(_) => break 'outer,
            }
        }
    }
    assert_eq!(frames_whole, frames_chunked);
});
