//! The standard test environment: PKI, mosquitto, the recording tap, moat, and the direct
//! subscriber on the broker.
//!
//! ```text
//!  client --TLS--> moat --TCP--> tap (records) --TCP--> mosquitto <--TCP-- direct subscriber (#)
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::mqtt::{v311, v5, DirectSubscriber};
use crate::packets::{self, Version};
use crate::pki::Pki;
use crate::procs::{Moat, MoatOptions, Mosquitto};
use crate::tap::Tap;
use crate::tls::RawClient;

/// Fields drop in declaration order: moat first, the PKI dir last.
pub struct Env {
    pub moat: Moat,
    pub sub: DirectSubscriber,
    pub tap: Tap,
    pub broker: Mosquitto,
    pub pki: Pki,
}

impl Env {
    /// Default options (TLS, client_auth none).
    pub async fn start() -> Env {
        Self::start_with(MoatOptions::default()).await
    }

    /// `opts.upstream` is replaced by the tap's address.
    pub async fn start_with(mut opts: MoatOptions) -> Env {
        let pki = Pki::new();
        let broker = Mosquitto::start().await;
        let sub = DirectSubscriber::start(broker.port).await.expect("direct subscriber");
        let tap = Tap::start(broker.port).await;
        opts.upstream = tap.addr();
        let moat = Moat::start(&pki, &opts).await;
        Env { moat, sub, tap, broker, pki }
    }

    /// TLS config trusting the test CA, no client certificate.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.pki.client_config()
    }

    /// TLS config trusting the test CA, with the trusted client certificate.
    pub fn mtls(&self) -> Arc<rustls::ClientConfig> {
        self.pki.mtls_client_config()
    }

    pub fn v311_options(&self, id: &str, tls: Arc<rustls::ClientConfig>) -> v311::MqttOptions {
        v311::options(id, self.moat.port, Some(tls))
    }

    pub fn v5_options(&self, id: &str, tls: Arc<rustls::ClientConfig>) -> v5::MqttOptions {
        v5::options(id, self.moat.port, Some(tls))
    }

    /// Raw TLS socket to moat (no client cert).
    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.moat.port, self.tls()).await.expect("raw TLS connect to moat")
    }

    /// Raw TLS socket that has sent CONNECT and received a successful CONNACK.
    pub async fn raw_connected(&self, version: Version, client_id: &str) -> RawClient {
        let mut c = self.raw().await;
        c.send(&packets::connect(version, client_id)).await.expect("send CONNECT");
        let ack = c
            .expect_packet(packets::CONNACK, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("no CONNACK through moat: {e}\n{}", self.moat.logs()));
        assert_eq!(ack.connack_code(), Some(0), "CONNACK refused: {ack:?}");
        c
    }

    /// Asserts that, after moat closed all upstream connections (bounded wait), moat sent
    /// upstream only packets whose types are in `allowed`, and the broker delivered nothing.
    pub async fn assert_upstream_only(&self, allowed: &[u8], context: &str) {
        let _ = self.tap.wait_all_closed(Duration::from_secs(3)).await;
        for conn in self.tap.connections() {
            let (pkts, rest) = packets::parse_all(&conn.bytes);
            let bad: Vec<_> = pkts.iter().filter(|p| !allowed.contains(&p.packet_type())).collect();
            assert!(
                bad.is_empty() && rest.is_empty(),
                "{context}: moat forwarded to the broker {:?} (allowed only {:?}); upstream: {:?}",
                bad.iter().map(|p| p.describe()).collect::<Vec<_>>(),
                allowed.iter().map(|t| packets::type_name(*t)).collect::<Vec<_>>(),
                self.tap.summary()
            );
        }
        self.sub.assert_nothing(context).await;
    }

    /// Asserts moat never sent a single byte upstream (and the broker delivered nothing).
    pub async fn assert_no_upstream_bytes(&self, context: &str) {
        let _ = self.tap.wait_all_closed(Duration::from_secs(3)).await;
        let total: usize = self.tap.connections().iter().map(|c| c.bytes.len()).sum();
        assert_eq!(total, 0, "{context}: moat sent bytes upstream: {:?}", self.tap.summary());
        self.sub.assert_nothing(context).await;
    }
}
