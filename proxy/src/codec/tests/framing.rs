//! split_frame: remaining-length grammar, size limit, zero-copy, no reservation.

use bytes::BytesMut;

use super::helpers::*;
use crate::codec::*;

fn split(bytes: &[u8], max: usize) -> Result<Split, CodecError> {
    let mut buf = BytesMut::from(bytes);
    split_frame(&mut buf, max)
}

#[test]
fn empty_buffer_is_incomplete() {
    assert_eq!(split(&[], MAX), Ok(Split::Incomplete));
}

#[test]
fn type_byte_only_is_incomplete() {
    assert_eq!(split(&[0x30], MAX), Ok(Split::Incomplete));
}

#[test]
fn partial_length_is_incomplete() {
    // 0xC1 0x02 = 321: continuation set on the first length byte, second missing.
    assert_eq!(split(&[0x30, 0xC1], MAX), Ok(Split::Incomplete));
}

#[test]
fn missing_body_is_incomplete_and_leaves_buffer() {
    let mut buf = BytesMut::from(&[0x30, 0x05, 0x00, 0x01][..]);
    assert_eq!(split_frame(&mut buf, MAX), Ok(Split::Incomplete));
    assert_eq!(buf.len(), 4);
}

#[test]
fn splits_pingreq() {
    let f = frame(&[0xC0, 0x00]);
    assert_eq!(f.packet_type(), PacketType::Pingreq);
    assert_eq!(f.flags(), 0);
    assert_eq!(f.len(), 2);
    assert!(f.body().is_empty());
}

#[test]
fn splits_two_frames_in_order_and_keeps_rest() {
    let mut buf = BytesMut::from(&[0xC0, 0x00, 0xD0, 0x00, 0xE0][..]);
    let Ok(Split::Frame(a)) = split_frame(&mut buf, MAX) else { panic!() };
    let Ok(Split::Frame(b)) = split_frame(&mut buf, MAX) else { panic!() };
    assert_eq!(a.packet_type(), PacketType::Pingreq);
    assert_eq!(b.packet_type(), PacketType::Pingresp);
    assert_eq!(split_frame(&mut buf, MAX), Ok(Split::Incomplete));
    assert_eq!(&buf[..], &[0xE0]);
}

#[test]
fn decodes_every_length_width() {
    // Boundaries of the 1, 2, 3 byte remaining-length encodings (spec table 1.1 / 2.1).
    for (len, header) in [
        (0usize, vec![0x30, 0x00]),
        (127, vec![0x30, 0x7F]),
        (128, vec![0x30, 0x80, 0x01]),
        (16_383, vec![0x30, 0xFF, 0x7F]),
        (16_384, vec![0x30, 0x80, 0x80, 0x01]),
        (2_097_151, vec![0x30, 0xFF, 0xFF, 0x7F]),
    ] {
        let mut bytes = header.clone();
        bytes.resize(header.len() + len, 0);
        let mut buf = BytesMut::from(&bytes[..]);
        let Ok(Split::Frame(f)) = split_frame(&mut buf, 4 << 20) else { panic!("len {len}") };
        assert_eq!(f.body().len(), len);
        assert_eq!(f.header_len(), header.len());
    }
}

#[test]
fn four_byte_length_is_accepted() {
    // 2_097_152 = 0x80 0x80 0x80 0x01: check the header alone with a high limit.
    assert_eq!(split(&[0x30, 0x80, 0x80, 0x80, 0x01], 1 << 28), Ok(Split::Incomplete));
}

#[test]
fn rejects_non_minimal_remaining_length() {
    // 0x80 0x00 encodes 0 in two bytes.
    assert!(is_malformed(&split(&[0xC0, 0x80, 0x00], MAX).unwrap_err()));
}

#[test]
fn rejects_non_minimal_three_byte_remaining_length() {
    // 0xFF 0x80 0x00 encodes 127 in three bytes.
    assert!(is_malformed(&split(&[0x30, 0xFF, 0x80, 0x00], MAX).unwrap_err()));
}

#[test]
fn rejects_fifth_length_byte() {
    let e = split(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], usize::MAX).unwrap_err();
    assert!(is_malformed(&e));
}

#[test]
fn rejects_fifth_length_byte_before_it_arrives() {
    // Four continuation bytes are already malformed: no fifth byte can make them valid.
    let e = split(&[0x30, 0x80, 0x80, 0x80, 0x80], usize::MAX).unwrap_err();
    assert!(is_malformed(&e));
}

#[test]
fn rejects_packet_type_zero() {
    assert!(is_malformed(&split(&[0x00, 0x00], MAX).unwrap_err()));
}

#[test]
fn rejects_too_large_before_body() {
    // Declares 200 bytes of body with a 100-byte limit; no body byte has arrived.
    let e = split(&[0x30, 0xC8, 0x01], 100).unwrap_err();
    assert_eq!(e, CodecError::TooLarge { size: 203, max: 100 });
    assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);
}

#[test]
fn rejects_too_large_on_partial_length() {
    // 0xFF with continuation: the length is at least 127 + 128 = 255 already.
    let e = split(&[0x30, 0xFF], 100).unwrap_err();
    assert!(matches!(e, CodecError::TooLarge { .. }));
}

#[test]
fn accepts_exactly_max_size() {
    assert!(matches!(split(&[0x30, 0x03, 0x00, 0x01, b'a'], 5), Ok(Split::Frame(_))));
    assert!(matches!(
        split(&[0x30, 0x03, 0x00, 0x01, b'a'], 4),
        Err(CodecError::TooLarge { size: 5, max: 4 })
    ));
}

#[test]
fn never_reserves_capacity() {
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&[0x30, 0xFF, 0x7F]);
    let cap = buf.capacity();
    assert_eq!(split_frame(&mut buf, MAX), Ok(Split::Incomplete));
    assert_eq!(buf.capacity(), cap);
}

#[test]
fn frame_shares_the_read_buffer() {
    let mut buf = BytesMut::from(&[0x30, 0x03, 0x00, 0x01, b'a', 0xC0, 0x00][..]);
    let base = buf.as_ptr();
    let Ok(Split::Frame(f)) = split_frame(&mut buf, MAX) else { panic!() };
    assert_eq!(f.bytes().as_ptr(), base);
    let Ok(Packet::Publish(p)) = f.decode(V311) else { panic!() };
    assert!(p.payload.is_empty());
}

#[test]
fn from_bytes_requires_exactly_one_packet() {
    assert!(Frame::from_bytes(bytes::Bytes::from_static(&[0xC0, 0x00])).is_ok());
    assert!(Frame::from_bytes(bytes::Bytes::from_static(&[0xC0, 0x00, 0x00])).is_err());
    assert!(Frame::from_bytes(bytes::Bytes::from_static(&[0xC0])).is_err());
}
