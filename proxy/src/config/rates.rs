//! Validation of the rate keys, shared by the global `limits:` block (defaults) and a listener's
//! `limits:` block (overrides). Grammar: `policy::limits::parse_rate_spec` (`100/s`, `10MB/m`,
//! `infinity`, `, burst N`).

use super::error::Issues;
use super::model::Rates;
use super::raw::{RawLimits, RawListenerLimits, S};
use crate::policy::limits::{parse_rate_spec, RateSpec};

/// The rate keys of either block, borrowed.
pub(crate) struct RateKeys<'a> {
    publish_rate: Option<&'a S<String>>,
    publish_bytes_rate: Option<&'a S<String>>,
    listener_publish_rate: Option<&'a S<String>>,
    listener_publish_bytes_rate: Option<&'a S<String>>,
    connection_rate: Option<&'a S<String>>,
    connection_rate_per_ip: Option<&'a S<String>>,
}

impl<'a> From<&'a RawLimits> for RateKeys<'a> {
    fn from(l: &'a RawLimits) -> Self {
        RateKeys {
            publish_rate: l.publish_rate.as_ref(),
            publish_bytes_rate: l.publish_bytes_rate.as_ref(),
            listener_publish_rate: l.listener_publish_rate.as_ref(),
            listener_publish_bytes_rate: l.listener_publish_bytes_rate.as_ref(),
            connection_rate: l.connection_rate.as_ref(),
            connection_rate_per_ip: l.connection_rate_per_ip.as_ref(),
        }
    }
}

impl<'a> From<&'a RawListenerLimits> for RateKeys<'a> {
    fn from(l: &'a RawListenerLimits) -> Self {
        RateKeys {
            publish_rate: l.publish_rate.as_ref(),
            publish_bytes_rate: l.publish_bytes_rate.as_ref(),
            listener_publish_rate: l.listener_publish_rate.as_ref(),
            listener_publish_bytes_rate: l.listener_publish_bytes_rate.as_ref(),
            connection_rate: l.connection_rate.as_ref(),
            connection_rate_per_ip: l.connection_rate_per_ip.as_ref(),
        }
    }
}

/// `base` with every key present in `keys` replaced (`infinity` lifts a global limit for one
/// listener); `prefix` is `limits` or `listeners[i].limits`.
pub(crate) fn rates(keys: RateKeys<'_>, base: Rates, prefix: &str, issues: &mut Issues) -> Rates {
    let mut r = base;
    let mut set = |slot: &mut Option<RateSpec>, v: Option<&S<String>>, key: &str| {
        if let Some(v) = v {
            if let Some(spec) = rate(Some(v), &format!("{prefix}.{key}"), issues) {
                *slot = Some(spec);
            }
        }
    };
    set(&mut r.publish_rate, keys.publish_rate, "publish_rate");
    set(&mut r.publish_bytes_rate, keys.publish_bytes_rate, "publish_bytes_rate");
    set(&mut r.listener_publish_rate, keys.listener_publish_rate, "listener_publish_rate");
    set(&mut r.listener_publish_bytes_rate, keys.listener_publish_bytes_rate, "listener_publish_bytes_rate");
    set(&mut r.connection_rate, keys.connection_rate, "connection_rate");
    set(&mut r.connection_rate_per_ip, keys.connection_rate_per_ip, "connection_rate_per_ip");
    r
}

/// One rate string, or an issue naming the key and line.
pub(crate) fn rate(v: Option<&S<String>>, key: &str, issues: &mut Issues) -> Option<RateSpec> {
    let v = v?;
    match parse_rate_spec(&v.value) {
        Ok(spec) => Some(spec),
        Err(e) => {
            issues.push(v.referenced.line(), key, e.to_string());
            None
        }
    }
}
