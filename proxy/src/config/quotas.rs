//! Validation of the per-client quota keys, shared by the global `limits:` block (which sets the
//! defaults) and a listener's `limits:` block (which overrides them key by key).

use super::duration::parse_duration;
use super::error::Issues;
use super::model::Quotas;
use super::raw::{RawLimits, RawListenerLimits, S};

/// MQTT's ceiling for any string (topic, client id): a two-byte length prefix.
const MQTT_MAX_STRING: u64 = 65_535;

/// The quota keys of either block, borrowed.
pub(crate) struct QuotaKeys<'a> {
    max_topic_levels: Option<&'a S<u64>>,
    max_topic_length: Option<&'a S<u64>>,
    max_clientid_length: Option<&'a S<u64>>,
    max_subscriptions: Option<&'a S<u64>>,
    max_inflight: Option<&'a S<u64>>,
    keepalive_min: Option<&'a S<String>>,
    keepalive_max: Option<&'a S<String>>,
    shared_subscriptions: Option<&'a S<bool>>,
}

impl<'a> From<&'a RawLimits> for QuotaKeys<'a> {
    fn from(l: &'a RawLimits) -> Self {
        QuotaKeys {
            max_topic_levels: l.max_topic_levels.as_ref(),
            max_topic_length: l.max_topic_length.as_ref(),
            max_clientid_length: l.max_clientid_length.as_ref(),
            max_subscriptions: l.max_subscriptions.as_ref(),
            max_inflight: l.max_inflight.as_ref(),
            keepalive_min: l.keepalive_min.as_ref(),
            keepalive_max: l.keepalive_max.as_ref(),
            shared_subscriptions: l.shared_subscriptions.as_ref(),
        }
    }
}

impl<'a> From<&'a RawListenerLimits> for QuotaKeys<'a> {
    fn from(l: &'a RawListenerLimits) -> Self {
        QuotaKeys {
            max_topic_levels: l.max_topic_levels.as_ref(),
            max_topic_length: l.max_topic_length.as_ref(),
            max_clientid_length: l.max_clientid_length.as_ref(),
            max_subscriptions: l.max_subscriptions.as_ref(),
            max_inflight: l.max_inflight.as_ref(),
            keepalive_min: l.keepalive_min.as_ref(),
            keepalive_max: l.keepalive_max.as_ref(),
            shared_subscriptions: l.shared_subscriptions.as_ref(),
        }
    }
}

/// `base` with every key present in `keys` replaced; `prefix` is `limits` or `listeners[i].limits`.
pub(crate) fn quotas(keys: QuotaKeys<'_>, base: Quotas, prefix: &str, issues: &mut Issues) -> Quotas {
    let mut q = base;
    if let Some(v) = bounded(keys.max_topic_levels, 1, MQTT_MAX_STRING, prefix, "max_topic_levels", issues) {
        q.max_topic_levels = v as usize;
    }
    if let Some(v) = bounded(keys.max_topic_length, 1, MQTT_MAX_STRING, prefix, "max_topic_length", issues) {
        q.max_topic_length = v as usize;
    }
    if let Some(v) =
        bounded(keys.max_clientid_length, 1, MQTT_MAX_STRING, prefix, "max_clientid_length", issues)
    {
        q.max_clientid_length = v as usize;
    }
    // A subscription count is bounded by memory, not by the protocol; a million is already absurd.
    if let Some(v) = bounded(keys.max_subscriptions, 1, 1_000_000, prefix, "max_subscriptions", issues) {
        q.max_subscriptions = Some(v as usize);
    }
    // Receive Maximum is a two-byte field: 65535 is the protocol's own ceiling.
    if let Some(v) = bounded(keys.max_inflight, 1, MQTT_MAX_STRING, prefix, "max_inflight", issues) {
        q.max_inflight = u16::try_from(v).ok();
    }
    if let Some(v) = keepalive(keys.keepalive_min, prefix, "keepalive_min", issues) {
        q.keepalive_min = Some(v);
    }
    if let Some(v) = keepalive(keys.keepalive_max, prefix, "keepalive_max", issues) {
        q.keepalive_max = Some(v);
    }
    if let (Some(min), Some(max)) = (q.keepalive_min, q.keepalive_max) {
        if min > max {
            let line = keys.keepalive_min.or(keys.keepalive_max).map_or(0, |k| k.referenced.line());
            issues.push(line, format!("{prefix}.keepalive_min"), "must not be greater than keepalive_max");
        }
    }
    if let Some(v) = keys.shared_subscriptions {
        q.shared_subscriptions = v.value;
    }
    q
}

/// A number within `min..=max`, or an issue naming the key.
fn bounded(
    v: Option<&S<u64>>,
    min: u64,
    max: u64,
    prefix: &str,
    key: &str,
    issues: &mut Issues,
) -> Option<u64> {
    let v = v?;
    if v.value < min || v.value > max {
        issues.push(
            v.referenced.line(),
            format!("{prefix}.{key}"),
            format!("must be between {min} and {max}"),
        );
        return None;
    }
    Some(v.value)
}

/// A keep-alive bound: a duration in whole seconds, 1 s to 65535 s (MQTT's two-byte field).
fn keepalive(v: Option<&S<String>>, prefix: &str, key: &str, issues: &mut Issues) -> Option<u16> {
    let v = v?;
    let line = v.referenced.line();
    let key = format!("{prefix}.{key}");
    match parse_duration(&v.value) {
        Ok(d) if d.subsec_nanos() != 0 => {
            issues.push(line, key, "must be whole seconds (MQTT keep-alive has a 1 s resolution)");
            None
        }
        Ok(d) => match u16::try_from(d.as_secs()) {
            Ok(s) if s > 0 => Some(s),
            _ => {
                issues.push(line, key, "must be between 1s and 65535s");
                None
            }
        },
        Err(msg) => {
            issues.push(line, key, msg);
            None
        }
    }
}
