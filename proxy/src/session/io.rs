//! Reading whole frames with a bounded buffer, and small write helpers.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{READ_CHUNK, READ_CHUNK_MAX};
use crate::codec::{split_frame, CodecError, Frame, Split};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("first packet is not CONNECT")]
    NotConnect,
}

/// The first byte of every valid CONNECT: packet type 1, no flags.
const CONNECT_BYTE: u8 = 0x10;

/// Makes room for one more read. Callers only read while the splitter says a frame is incomplete,
/// and the splitter has already bounded that frame's size, so the buffer stays bounded.
///
/// The buffer starts small and grows with what the peer sends (each top-up asks for as much as
/// the buffer already holds, up to [`READ_CHUNK_MAX`]): busy connections read in large chunks,
/// the many quiet ones of a device fleet stay small.
pub(crate) fn reserve_read(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(buf.capacity().clamp(READ_CHUNK, READ_CHUNK_MAX));
    }
}

/// Reads until `buf` holds one complete CONNECT frame. The declared length is checked against `max`
/// by the splitter before the body is read, so the buffer never holds more than
/// `max + READ_CHUNK_MAX` bytes.
///
/// This reads a connection's first packet, which must be a CONNECT: it gives up as soon as the
/// first byte says otherwise, so a peer speaking another protocol (an HTTP request, a scanner) is
/// closed at once instead of being waited on for a body it declared by accident.
pub(crate) async fn read_connect_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Frame, ReadError> {
    loop {
        if buf.first().is_some_and(|&b| b != CONNECT_BYTE) {
            return Err(ReadError::NotConnect);
        }
        if let Split::Frame(f) = split_frame(buf, max)? {
            return Ok(f);
        }
        reserve_read(buf);
        if r.read_buf(buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

/// Writes `bytes` and flushes, giving up after `limit` (a peer that does not read cannot hold us).
pub(crate) async fn write_within<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await;
}
