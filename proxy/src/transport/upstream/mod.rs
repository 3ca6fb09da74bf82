//! Dialing the upstream broker: TCP, then (when configured) a PROXY v2 header and a verified TLS
//! handshake, all under one deadline.

mod proxy_header;
mod stream;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;

pub use proxy_header::ProxiedClient;
pub use stream::{Upstream, UpstreamRead, UpstreamWrite};

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("upstream {addr} unreachable: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("upstream {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("upstream {addr}: TLS handshake failed: {source}")]
    Tls { addr: String, source: std::io::Error },
}

/// Connects to the broker with a deadline; returns the stream and how long the dial took.
/// A bare TCP connection: what the readiness and overload probes need.
pub async fn dial(addr: &str, timeout: Duration) -> Result<(TcpStream, Duration), DialError> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Small MQTT packets must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            Ok((stream, started.elapsed()))
        }
        Ok(Err(source)) => Err(DialError::Io { addr: addr.to_string(), source }),
        Err(_) => Err(DialError::Timeout { addr: addr.to_string(), timeout }),
    }
}

/// Opens a session's broker connection as `upstream:` says: the PROXY v2 header (if enabled)
/// goes first, in clear as the protocol requires, then the TLS handshake (if enabled). The
/// deadline covers all of it, so a broker that accepts TCP but never finishes TLS cannot hold
/// the client's connect phase.
pub async fn connect(
    cfg: &UpstreamConfig,
    client: &ProxiedClient<'_>,
) -> Result<(Upstream, Duration), DialError> {
    let started = Instant::now();
    let timeout = cfg.connect_timeout;
    let addr = cfg.address.as_str();
    let attempt = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| DialError::Io { addr: addr.to_string(), source })?;
        let _ = tcp.set_nodelay(true);
        if cfg.proxy_protocol {
            let header = proxy_header::encode(client);
            tcp.write_all(&header)
                .await
                .map_err(|source| DialError::Io { addr: addr.to_string(), source })?;
        }
        match &cfg.tls {
            None => Ok(Upstream::Plain(tcp)),
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let stream = connector
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|source| DialError::Tls { addr: addr.to_string(), source })?;
                Ok(Upstream::Tls(Box::new(stream)))
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => Ok((stream, started.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DialError::Timeout { addr: addr.to_string(), timeout }),
    }
}
