//! The embedded upstream broker of `moat dev` (rumqttd, MQTT 3.1.1 only), behind the
//! `dev-broker` feature so production builds do not carry it.

use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot find a free loopback port: {0}")]
    Port(std::io::Error),
    #[error("embedded broker unavailable: built without the `dev-broker` feature (use --upstream)")]
    NotBuilt,
}

/// Picks a free loopback port. The tiny race with another process is acceptable for a dev tool.
fn free_port() -> Result<SocketAddr, BrokerError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(BrokerError::Port)?;
    l.local_addr().map_err(BrokerError::Port)
}

/// Starts rumqttd on a free loopback port in background threads; returns its address.
#[cfg(feature = "dev-broker")]
pub fn start() -> Result<SocketAddr, BrokerError> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    let addr = free_port()?;
    let server = ServerSettings {
        name: "dev".to_string(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        v4: Some(HashMap::from([("dev".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("dev-broker".to_string())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Port)?;
    Ok(addr)
}

#[cfg(not(feature = "dev-broker"))]
pub fn start() -> Result<SocketAddr, BrokerError> {
    let _ = free_port;
    let _: Option<HashMap<(), ()>> = None;
    Err(BrokerError::NotBuilt)
}
