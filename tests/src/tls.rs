//! rustls client configurations and a raw TLS socket for hand-made MQTT bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::packets::{self, RawPacket};
use crate::pki::CertFiles;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client config trusting the PEM CA files `cas`, optionally presenting `client`.
pub fn client_config(cas: &[&Path], client: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in CertificateDer::pem_file_iter(ca).expect("open CA pem") {
            roots.add(cert.expect("parse CA pem")).expect("add CA to root store");
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(files) => {
            builder.with_client_auth_cert(files.chain(), files.private_key()).expect("client cert config")
        }
    };
    Arc::new(config)
}

/// How a raw connection ended.
#[derive(Debug)]
pub struct Closed {
    /// Complete packets received before the close.
    pub packets: Vec<RawPacket>,
    /// Bytes received that did not form a complete packet.
    pub trailing: Vec<u8>,
    /// The read error that ended the stream, if it was not a clean EOF (e.g. a TLS alert).
    pub error: Option<String>,
}

impl Closed {
    /// The reason code of the DISCONNECT received before the close, if any.
    pub fn disconnect_reason(&self) -> Option<u8> {
        self.packets
            .iter()
            .find(|p| p.packet_type() == packets::DISCONNECT)
            .and_then(|p| p.disconnect_reason())
    }
}

/// A raw MQTT-over-TLS socket: write arbitrary bytes, read whole packets.
pub struct RawClient {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
    eof: Option<Option<String>>,
}

pub const LOCALHOST: &str = "localhost";

impl RawClient {
    /// TCP connect to 127.0.0.1:`port` and complete a TLS handshake for `localhost`.
    pub async fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Result<RawClient> {
        Self::connect_as(port, config, LOCALHOST).await
    }

    /// Like [`RawClient::connect`], verifying the server certificate for `server_name`
    /// (a DNS name or an IP address literal).
    pub async fn connect_as(
        port: u16,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<RawClient> {
        let name = ServerName::try_from(server_name.to_string()).context("server name")?;
        tokio::time::timeout(Duration::from_secs(10), async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.context("tcp connect")?;
            tcp.set_nodelay(true)?;
            let stream = TlsConnector::from(config).connect(name, tcp).await.context("tls handshake")?;
            Ok(RawClient { stream, buf: Vec::new(), eof: None })
        })
        .await
        .map_err(|_| anyhow!("connect + TLS handshake timed out"))?
    }

    /// Like [`RawClient::connect`], from the loopback source address `source` (127.0.0.0/8 is
    /// all local on Linux, so tests can play several hosts).
    pub async fn connect_from(
        port: u16,
        config: Arc<rustls::ClientConfig>,
        source: std::net::IpAddr,
    ) -> Result<RawClient> {
        let name = ServerName::try_from(LOCALHOST.to_string()).context("server name")?;
        tokio::time::timeout(Duration::from_secs(10), async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(source, 0)).context("bind source address")?;
            let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.context("tcp connect")?;
            tcp.set_nodelay(true)?;
            let stream = TlsConnector::from(config).connect(name, tcp).await.context("tls handshake")?;
            Ok(RawClient { stream, buf: Vec::new(), eof: None })
        })
        .await
        .map_err(|_| anyhow!("connect + TLS handshake timed out"))?
    }

    /// Like [`RawClient::connect`], writing `preamble` on the TCP connection before the TLS
    /// handshake (a PROXY protocol header, as a load balancer would).
    pub async fn connect_with_preamble(
        port: u16,
        config: Arc<rustls::ClientConfig>,
        preamble: &[u8],
    ) -> Result<RawClient> {
        let name = ServerName::try_from(LOCALHOST.to_string()).context("server name")?;
        tokio::time::timeout(Duration::from_secs(10), async move {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.context("tcp connect")?;
            tcp.set_nodelay(true)?;
            tcp.write_all(preamble).await.context("preamble")?;
            let stream = TlsConnector::from(config).connect(name, tcp).await.context("tls handshake")?;
            Ok(RawClient { stream, buf: Vec::new(), eof: None })
        })
        .await
        .map_err(|_| anyhow!("connect + TLS handshake timed out"))?
    }

    /// Writes `bytes` and flushes. Errors are returned (the peer may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(10), async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| anyhow!("write timed out"))??;
        Ok(())
    }

    /// Reads one complete packet. `Ok(None)` when the peer closed first.
    pub async fn read_packet(&mut self, timeout: Duration) -> Result<Option<RawPacket>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((pkt, used)) = packets::parse_one(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(pkt));
            }
            if self.eof.is_some() {
                return Ok(None);
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => bail!(
                    "no complete packet within {timeout:?} (have {} bytes: {:02x?})",
                    self.buf.len(),
                    &self.buf[..self.buf.len().min(32)]
                ),
                Ok(Ok(0)) => self.eof = Some(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => self.eof = Some(Some(e.to_string())),
            }
        }
    }

    /// Reads a packet and requires it to be of `packet_type` (upper nibble of byte 1).
    pub async fn expect_packet(&mut self, packet_type: u8, timeout: Duration) -> Result<RawPacket> {
        match self.read_packet(timeout).await? {
            Some(p) if p.packet_type() == packet_type => Ok(p),
            Some(p) => bail!(
                "expected packet type {packet_type} ({}), got {} ({}): {:02x?}",
                packets::type_name(packet_type),
                p.packet_type(),
                packets::type_name(p.packet_type()),
                p.to_bytes()
            ),
            None => bail!(
                "connection closed while waiting for packet type {packet_type} ({}); error: {:?}",
                packets::type_name(packet_type),
                self.eof
            ),
        }
    }

    /// Reads until the peer closes, collecting everything received.
    /// Errors if the connection is still open after `timeout`.
    pub async fn read_until_closed(&mut self, timeout: Duration) -> Result<Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut packets = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_packet(left).await {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => {
                    return Ok(Closed {
                        packets,
                        trailing: std::mem::take(&mut self.buf),
                        error: self.eof.clone().flatten(),
                    })
                }
                Err(e) => bail!(
                    "connection still open after {timeout:?} (received so far: {:?}): {e}",
                    packets.iter().map(|p| p.describe()).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Sends a best-effort TLS close_notify and shuts the socket down.
    pub async fn shutdown(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }

    pub fn into_inner(self) -> TlsStream<TcpStream> {
        self.stream
    }
}
