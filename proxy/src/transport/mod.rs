//! Listeners, TLS and the upstream dial.

mod listener;
pub mod overload;
pub mod proxy_protocol;
pub mod psk;
pub mod tls;
pub mod upstream;
pub mod ws;

pub use listener::{bind, ListenError, Listener};

use crate::config::{Config, ConfigError, ConfigIssue};

/// Builds every listener's TLS config, so `moat check` catches what rustls would refuse at start
/// (a key that does not match its certificate, an unusable CA bundle).
pub fn check_tls(config: &Config) -> Result<(), ConfigError> {
    let issues: Vec<ConfigIssue> = config
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let tls = l.tls.as_ref()?;
            let e = tls::server_config(tls).err()?;
            Some(ConfigIssue {
                file: config.source.clone(),
                line: 0,
                key: format!("listeners[{i}].tls"),
                message: e.to_string(),
            })
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { issues })
    }
}
