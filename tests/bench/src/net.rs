//! Targets (direct / HAProxy / moat) and opening an MQTT session on one of them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::mqtt;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Stream = Box<dyn Io>;

#[derive(Clone)]
pub struct Tls {
    pub connector: TlsConnector,
    /// The same client, but keeping sessions (rustls' in-memory cache, TLS 1.3 tickets and 1.2
    /// session ids): every handshake after a target's first one resumes.
    pub resuming: TlsConnector,
    pub server_name: ServerName<'static>,
}

#[derive(Clone)]
pub struct Target {
    /// "a", "b" or "c".
    pub key: &'static str,
    pub label: &'static str,
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
    /// The process whose RSS / CPU is attributed to this target: the broker for the
    /// direct target, the proxy otherwise.
    pub pid: Option<u32>,
}

/// Client TLS: verifies the server against `ca`, never resumes (every handshake is full).
/// `kx`: "x25519" (default; what HAProxy's OpenSSL 3.0 and rustls have in common) or
/// "default" (rustls' provider default, which prefers the X25519MLKEM768 hybrid).
pub fn client_tls(ca: &Path, server_name: &str, kx: &str) -> Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
        roots.add(c.context("parsing CA PEM")?)?;
    }
    let mut provider = aws_lc_rs::default_provider();
    match kx {
        "x25519" => provider.kx_groups = vec![aws_lc_rs::kx_group::X25519],
        "default" => {}
        other => bail!("unknown --kx {other:?} (x25519 | default)"),
    }
    let resuming = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut cfg = resuming.clone();
    cfg.resumption = Resumption::disabled();
    let server_name =
        ServerName::try_from(server_name.to_string()).map_err(|e| anyhow!("server name: {e}"))?;
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(cfg)),
        resuming: TlsConnector::from(Arc::new(resuming)),
        server_name,
    })
}

/// TCP connect (+ TLS handshake), all within `to`.
pub async fn dial(t: &Target, to: Duration) -> Result<Stream> {
    let tcp = timeout(to, TcpStream::connect(t.addr))
        .await
        .map_err(|_| anyhow!("TCP connect to {} timed out", t.addr))?
        .with_context(|| format!("TCP connect to {}", t.addr))?;
    tcp.set_nodelay(true)?;
    match &t.tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let s = timeout(to, tls.connector.connect(tls.server_name.clone(), tcp))
                .await
                .map_err(|_| anyhow!("TLS handshake with {} timed out", t.addr))?
                .with_context(|| format!("TLS handshake with {}", t.addr))?;
            Ok(Box::new(s))
        }
    }
}

/// Two handshakes with the resuming client: whether the second one resumed (the server keeps
/// sessions or issues tickets).
pub async fn probe_resumption(t: &Target, to: Duration) -> Result<bool> {
    let tls = t.tls.as_ref().ok_or_else(|| anyhow!("not a TLS target"))?;
    let mut kind = None;
    for _ in 0..2 {
        let tcp =
            timeout(to, TcpStream::connect(t.addr)).await.map_err(|_| anyhow!("connect timed out"))??;
        let mut s = timeout(to, tls.resuming.connect(tls.server_name.clone(), tcp))
            .await
            .map_err(|_| anyhow!("TLS handshake timed out"))??;
        kind = s.get_ref().1.handshake_kind();
        // TLS 1.3 tickets arrive after the handshake: read until the server has sent them (a
        // short wait; the server sends nothing else before CONNECT).
        let mut byte = [0u8; 1];
        let _ = timeout(Duration::from_millis(200), tokio::io::AsyncReadExt::read(&mut s, &mut byte)).await;
        let _ = s.shutdown().await;
    }
    Ok(kind == Some(rustls::HandshakeKind::Resumed))
}

/// TLS parameters a fresh connection to `t` negotiates, e.g. "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519".
pub async fn probe_tls(t: &Target, to: Duration) -> Result<String> {
    let tls = t.tls.as_ref().ok_or_else(|| anyhow!("not a TLS target"))?;
    let tcp = timeout(to, TcpStream::connect(t.addr)).await.map_err(|_| anyhow!("connect timed out"))??;
    let s = timeout(to, tls.connector.connect(tls.server_name.clone(), tcp))
        .await
        .map_err(|_| anyhow!("TLS handshake timed out"))??;
    let c = s.get_ref().1;
    Ok(format!(
        "{:?} {:?} {:?}",
        c.protocol_version().ok_or_else(|| anyhow!("no version"))?,
        c.negotiated_cipher_suite().map(|s| s.suite()).ok_or_else(|| anyhow!("no suite"))?,
        c.negotiated_key_exchange_group().map(|g| g.name()).ok_or_else(|| anyhow!("no kx group"))?,
    ))
}

/// Reads one frame within `to`.
pub async fn read_frame(
    s: &mut (impl AsyncRead + Unpin + ?Sized),
    rd: &mut mqtt::Reader,
    to: Duration,
) -> Result<(u8, bytes::BytesMut)> {
    let deadline = tokio::time::Instant::now() + to;
    loop {
        if let Some(f) = rd.next_frame()? {
            return Ok(f);
        }
        let n = tokio::time::timeout_at(deadline, rd.fill(s))
            .await
            .map_err(|_| anyhow!("timed out waiting for a packet"))??;
        if n == 0 {
            bail!("connection closed");
        }
    }
}

pub async fn write_all(s: &mut (impl AsyncWrite + Unpin + ?Sized), buf: &[u8], to: Duration) -> Result<()> {
    timeout(to, async {
        s.write_all(buf).await?;
        s.flush().await
    })
    .await
    .map_err(|_| anyhow!("write timed out"))??;
    Ok(())
}

/// Dial, CONNECT, wait for a successful CONNACK.
pub async fn open(t: &Target, client_id: &str, to: Duration) -> Result<(Stream, mqtt::Reader)> {
    let mut s = dial(t, to).await?;
    let mut buf = Vec::with_capacity(64);
    mqtt::connect(&mut buf, client_id, 600);
    write_all(&mut s, &buf, to).await?;
    let mut rd = mqtt::Reader::default();
    let (h, body) = read_frame(&mut s, &mut rd, to).await.context("waiting for CONNACK")?;
    if h != mqtt::CONNACK || body.len() != 2 {
        bail!("expected CONNACK, got packet type 0x{h:02x}");
    }
    if body[1] != 0 {
        bail!("CONNACK refused with return code {}", body[1]);
    }
    Ok((s, rd))
}

/// Open and subscribe to `filter`; returns once the SUBACK grants it.
pub async fn open_subscriber(
    t: &Target,
    client_id: &str,
    filter: &str,
    qos: u8,
    to: Duration,
) -> Result<(Stream, mqtt::Reader)> {
    let (mut s, mut rd) = open(t, client_id, to).await?;
    let mut buf = Vec::new();
    mqtt::subscribe(&mut buf, 1, filter, qos);
    write_all(&mut s, &buf, to).await?;
    let (h, body) = read_frame(&mut s, &mut rd, to).await.context("waiting for SUBACK")?;
    if h != mqtt::SUBACK || body.len() != 3 {
        bail!("expected SUBACK, got packet type 0x{h:02x}");
    }
    if body[2] & 0x80 != 0 {
        bail!("subscription to {filter} refused");
    }
    Ok((s, rd))
}

/// Best-effort DISCONNECT, then drop.
pub async fn close(mut s: Stream) {
    let _ = write_all(&mut s, &mqtt::DISCONNECT, Duration::from_secs(1)).await;
    let _ = timeout(Duration::from_secs(1), s.shutdown()).await;
}
