//! The broker connection: plain TCP (the sidecar case) or TLS. An enum rather than a boxed trait
//! object so the plaintext relay keeps TCP's lock-free split halves and no dynamic dispatch.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub enum UpstreamRead {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<Box<TlsStream<TcpStream>>>),
}

pub enum UpstreamWrite {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<Box<TlsStream<TcpStream>>>),
}

impl Upstream {
    pub fn into_split(self) -> (UpstreamRead, UpstreamWrite) {
        match self {
            Upstream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (UpstreamRead::Plain(r), UpstreamWrite::Plain(w))
            }
            Upstream::Tls(tls) => {
                let (r, w) = tokio::io::split(tls);
                (UpstreamRead::Tls(r), UpstreamWrite::Tls(w))
            }
        }
    }
}

impl AsyncRead for UpstreamRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamRead::Plain(r) => Pin::new(r).poll_read(cx, buf),
            UpstreamRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamWrite::Plain(w) => Pin::new(w).poll_write(cx, buf),
            UpstreamWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWrite::Plain(w) => Pin::new(w).poll_flush(cx),
            UpstreamWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWrite::Plain(w) => Pin::new(w).poll_shutdown(cx),
            UpstreamWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
