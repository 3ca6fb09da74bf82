//! Harness for moat's end-to-end tests: throwaway PKI, a real mosquitto, the moat binary,
//! rumqttc / raw-TLS clients, a recording tap between moat and the broker, and a direct
//! subscriber on the broker that shows what the broker actually received.
//!
//! Every wait is bounded; every child process is killed on drop.

pub mod callout;
pub mod catalogue;
pub mod env;
pub mod fake;
pub mod fleet;
pub mod http;
pub mod k8s;
pub mod mqtt;
pub mod net;
pub mod packets;
pub mod pki;
pub mod policy;
pub mod procs;
pub mod redis;
pub mod scram;
pub mod tap;
pub mod tls;

pub use env::Env;
pub use mqtt::{v311, v5, DirectSubscriber, QoS};
pub use packets::Version;
pub use pki::Pki;
pub use procs::{moat_bin, moat_command, ClientAuth, Moat, MoatOptions, Mosquitto, Proc, ANONYMOUS_AUTH};
pub use tap::Tap;
pub use tls::RawClient;

use std::sync::atomic::{AtomicU32, Ordering};

/// A name unique within this test process (topics, client ids).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Deterministic binary payload covering every byte value.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}
