//! Dialing the upstream broker.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("upstream {addr} unreachable: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("upstream {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// Connects to the broker with a deadline; returns the stream and how long the dial took.
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
