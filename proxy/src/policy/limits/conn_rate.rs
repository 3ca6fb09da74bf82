//! Connection attempts per second for one listener: one bucket for the listener and one per
//! source IP, checked on accept, before any TLS work (trap 16).
//!
//! Memory is bounded against an attacker with many addresses (any IPv6 /64 holds 2^64): at most
//! `max_ips` per-IP buckets. A bucket that has refilled to its burst is indistinguishable from a
//! new one, so such entries are dropped when the table fills. If every entry is still busy, new
//! addresses share one overflow bucket with the per-IP rate: the flood then throttles only other
//! unseen addresses, never the ones already tracked, and memory stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::bucket::TokenBucket;
use super::rate::RateSpec;

/// Per-IP buckets kept per listener.
const DEFAULT_MAX_IPS: usize = 65_536;
/// After a prune that freed nothing, the table is not scanned again for this long (a flood from
/// new addresses must not make every accept an O(table) scan).
const PRUNE_BACKOFF: Duration = Duration::from_secs(1);

/// Which bucket refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnRateHit {
    Listener,
    PerIp,
}

impl ConnRateHit {
    pub fn label(self) -> &'static str {
        match self {
            ConnRateHit::Listener => "connection_rate",
            ConnRateHit::PerIp => "connection_rate_per_ip",
        }
    }
}

#[derive(Debug)]
pub struct ConnectionRate {
    listener: Option<TokenBucket>,
    per_ip: Option<RateSpec>,
    ips: HashMap<IpAddr, TokenBucket>,
    overflow: Option<TokenBucket>,
    max_ips: usize,
    next_prune: Option<Instant>,
}

impl ConnectionRate {
    pub fn new(listener: Option<RateSpec>, per_ip: Option<RateSpec>) -> Self {
        Self::with_capacity(listener, per_ip, DEFAULT_MAX_IPS)
    }

    pub fn with_capacity(listener: Option<RateSpec>, per_ip: Option<RateSpec>, max_ips: usize) -> Self {
        ConnectionRate {
            listener: listener.map(bucket),
            per_ip,
            ips: HashMap::new(),
            overflow: per_ip.map(bucket),
            max_ips: max_ips.max(1),
            next_prune: None,
        }
    }

    /// Whether any limit is configured (the accept loop skips the lock otherwise).
    pub fn is_active(&self) -> bool {
        self.listener.is_some() || self.per_ip.is_some()
    }

    /// Counts one attempt from `ip`, or says which limit refuses it. The per-IP bucket is checked
    /// first so that one noisy address does not use up the listener's tokens.
    pub fn try_accept(&mut self, ip: IpAddr, now: Instant) -> Result<(), ConnRateHit> {
        let ip = ip.to_canonical();
        if let Some(spec) = self.per_ip {
            let ok = match self.ip_bucket(ip, spec, now) {
                Some(b) => b.try_take(1.0, now).is_ok(),
                None => self.overflow.as_mut().is_none_or(|b| b.try_take(1.0, now).is_ok()),
            };
            if !ok {
                return Err(ConnRateHit::PerIp);
            }
        }
        if let Some(b) = self.listener.as_mut() {
            if b.try_take(1.0, now).is_err() {
                return Err(ConnRateHit::Listener);
            }
        }
        Ok(())
    }

    /// The bucket of `ip`, created if there is room; `None` means "use the overflow bucket".
    fn ip_bucket(&mut self, ip: IpAddr, spec: RateSpec, now: Instant) -> Option<&mut TokenBucket> {
        if !self.ips.contains_key(&ip) && self.ips.len() >= self.max_ips {
            self.prune(now);
            if self.ips.len() >= self.max_ips {
                return None;
            }
        }
        Some(self.ips.entry(ip).or_insert_with(|| bucket(spec)))
    }

    /// Drops every bucket that is full again (it behaves exactly like a new one).
    fn prune(&mut self, now: Instant) {
        if self.next_prune.is_some_and(|next| now < next) {
            return;
        }
        self.ips.retain(|_, b| b.available(now) < b.capacity());
        self.next_prune = (self.ips.len() >= self.max_ips).then(|| now + PRUNE_BACKOFF);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.ips.len()
    }
}

fn bucket(spec: RateSpec) -> TokenBucket {
    TokenBucket::new(spec.rate, spec.burst_or_default())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::policy::limits::parse_rate_spec;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn per_ip_then_listener() {
        let mut r = ConnectionRate::new(parse_rate_spec("3/s").ok(), parse_rate_spec("1/s").ok());
        let t = Instant::now();
        assert_eq!(r.try_accept(ip(1), t), Ok(()));
        assert_eq!(r.try_accept(ip(1), t), Err(ConnRateHit::PerIp));
        assert_eq!(r.try_accept(ip(2), t), Ok(()));
        assert_eq!(r.try_accept(ip(3), t), Ok(()));
        assert_eq!(r.try_accept(ip(4), t), Err(ConnRateHit::Listener));
        let later = t + Duration::from_secs(1);
        assert_eq!(r.try_accept(ip(1), later), Ok(()), "tokens come back");
    }

    #[test]
    fn table_is_bounded_and_busy_newcomers_share_the_overflow_bucket() {
        let mut r = ConnectionRate::with_capacity(None, parse_rate_spec("1/s").ok(), 2);
        let t = Instant::now();
        assert_eq!(r.try_accept(ip(1), t), Ok(()));
        assert_eq!(r.try_accept(ip(2), t), Ok(()));
        assert_eq!(r.try_accept(ip(3), t), Ok(()), "overflow bucket");
        assert_eq!(r.try_accept(ip(4), t), Err(ConnRateHit::PerIp), "overflow bucket is used up");
        assert_eq!(r.tracked(), 2);
        // Once the tracked buckets are full again they are pruned and newcomers get their own.
        let later = t + Duration::from_secs(5);
        assert_eq!(r.try_accept(ip(5), later), Ok(()));
        assert_eq!(r.tracked(), 1);
    }

    #[test]
    fn unlimited_when_unset() {
        let mut r = ConnectionRate::new(None, None);
        assert!(!r.is_active());
        for _ in 0..1000 {
            assert_eq!(r.try_accept(ip(1), Instant::now()), Ok(()));
        }
    }
}
