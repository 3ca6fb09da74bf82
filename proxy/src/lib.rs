//! moat: a security sidecar proxy for MQTT brokers.
//!
//! Dependencies point down: `admin` and `transport` → `session` → `policy` → `codec`.
//! `codec` and `policy` know nothing of sockets, HTTP or YAML.

pub mod admin;
pub mod codec;
pub mod commands;
pub mod config;
pub mod dev;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod session;
pub mod state;
pub mod transport;
pub mod util;
pub mod watch;
