//! Overload protection: when the process holds too many connections, uses too much memory, or
//! its upstream is down, new connections are refused and existing sessions keep flowing.
//!
//! - Connections and memory are checked on accept, before TLS: an overloaded proxy must not spend
//!   a handshake on a client it will refuse, so the client sees a plain close.
//! - A down upstream is learnt from failed dials and checked after CONNECT: the client gets a
//!   reason (v5 CONNACK 0x89 server busy, 3.1.1 return code 3) without a dial that would only
//!   time out, and no TLS work is saved by closing earlier since the process is not overloaded.
//!
//! Recovery is automatic: memory is sampled every `check_interval`; connection counts are live;
//! while the upstream is marked down, a monitor probes it with a plain TCP connect each interval
//! and a successful probe (or a successful session dial) clears the mark.
//!
//! Memory is the resident set size from `/proc/self/status` (`VmRSS`, in kB). `/proc/self/statm`
//! has the same figure in pages, which needs the page size (4 KiB, 16 KiB or 64 KiB depending on
//! the kernel) from `sysconf`, i.e. a libc dependency for nothing more than a unit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::OverloadConfig;
use crate::metrics::Metrics;
use crate::policy::limits::ConnectionLimits;

/// Why a new connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverloadReason {
    Connections,
    Memory,
    Upstream,
}

impl OverloadReason {
    pub fn label(self) -> &'static str {
        match self {
            OverloadReason::Connections => "connections",
            OverloadReason::Memory => "memory",
            OverloadReason::Upstream => "upstream",
        }
    }
}

pub struct Overload {
    config: OverloadConfig,
    connections: Arc<ConnectionLimits>,
    memory_high: AtomicBool,
    upstream_down: AtomicBool,
    /// Set once the RSS could not be read (warned once, not every interval).
    rss_unavailable: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Overload {
    pub fn new(
        config: OverloadConfig,
        connections: Arc<ConnectionLimits>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let o = Arc::new(Overload {
            config,
            connections,
            memory_high: AtomicBool::new(false),
            upstream_down: AtomicBool::new(false),
            rss_unavailable: AtomicBool::new(false),
            metrics,
        });
        // Sample once now so a process that starts above its limit refuses from the first accept.
        o.sample_memory();
        o
    }

    /// The accept-time check (before TLS): connections and memory. Counts the refusal.
    pub fn admit(&self) -> Result<(), OverloadReason> {
        let reason = if self.config.max_connections.is_some_and(|max| self.connections.total() >= max) {
            OverloadReason::Connections
        } else if self.memory_high.load(Ordering::Relaxed) {
            OverloadReason::Memory
        } else {
            return Ok(());
        };
        self.metrics.overload_refusal(reason.label());
        Err(reason)
    }

    /// The CONNECT-time check: refuse without dialing while the upstream is marked down.
    pub fn admit_session(&self) -> Result<(), OverloadReason> {
        if self.config.upstream_unhealthy && self.upstream_down.load(Ordering::Relaxed) {
            self.metrics.overload_refusal(OverloadReason::Upstream.label());
            return Err(OverloadReason::Upstream);
        }
        Ok(())
    }

    /// A session's dial result.
    pub fn upstream_result(&self, ok: bool) {
        if !self.config.upstream_unhealthy {
            return;
        }
        let was_down = self.upstream_down.swap(!ok, Ordering::Relaxed);
        // It changed when it was down and is now fine, or was fine and is now down.
        if was_down == ok {
            info!(target: "moat::audit", healthy = ok, "upstream health changed");
        }
    }

    /// Samples memory every interval and probes a down upstream, until shutdown.
    pub async fn monitor(
        self: Arc<Self>,
        upstream: String,
        dial_timeout: std::time::Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.config.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.sample_memory();
            if self.config.upstream_unhealthy && self.upstream_down.load(Ordering::Relaxed) {
                let ok = crate::transport::upstream::dial(&upstream, dial_timeout).await.is_ok();
                if ok {
                    self.upstream_result(true);
                }
            }
        }
    }

    fn sample_memory(&self) {
        let Some(max) = self.config.max_memory else { return };
        let Some(rss) = resident_bytes() else {
            if !self.rss_unavailable.swap(true, Ordering::Relaxed) {
                warn!("overload.max_memory: resident memory is unavailable on this system, not enforced");
            }
            return;
        };
        self.metrics.set_resident_memory(rss);
        let high = rss > max;
        if self.memory_high.swap(high, Ordering::Relaxed) != high {
            info!(target: "moat::audit", rss, max, overloaded = high, "memory overload state changed");
        }
    }
}

/// The process's resident set size in bytes, from `VmRSS` in `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    // The file is a few KiB; bounded anyway.
    let text = crate::util::read_bounded(std::path::Path::new("/proc/self/status"), 64 * 1024).ok()?;
    parse_vm_rss(&text)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OverloadConfig {
        OverloadConfig {
            max_connections: Some(2),
            max_memory: None,
            upstream_unhealthy: true,
            check_interval: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        assert_eq!(parse_vm_rss("Name:\tmoat\nVmRSS:\t   12345 kB\nVmSwap: 0 kB\n"), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn connection_threshold_refuses_and_recovers() {
        let limits = ConnectionLimits::new(None, None);
        let o = Overload::new(config(), limits.clone(), Metrics::new());
        let ip = "127.0.0.1".parse().expect("ip");
        let a = limits.try_acquire("l", None, ip).expect("slot");
        assert_eq!(o.admit(), Ok(()));
        let _b = limits.try_acquire("l", None, ip).expect("slot");
        assert_eq!(o.admit(), Err(OverloadReason::Connections));
        drop(a);
        assert_eq!(o.admit(), Ok(()), "recovers by itself");
    }

    #[test]
    fn upstream_down_refuses_sessions_until_a_dial_succeeds() {
        let o = Overload::new(config(), ConnectionLimits::new(None, None), Metrics::new());
        assert_eq!(o.admit_session(), Ok(()));
        o.upstream_result(false);
        assert_eq!(o.admit_session(), Err(OverloadReason::Upstream));
        o.upstream_result(true);
        assert_eq!(o.admit_session(), Ok(()));
    }

    #[test]
    fn memory_over_the_limit_refuses() {
        let cfg = OverloadConfig { max_memory: Some(1), max_connections: None, ..config() };
        let o = Overload::new(cfg, ConnectionLimits::new(None, None), Metrics::new());
        if resident_bytes().is_some() {
            assert_eq!(o.admit(), Err(OverloadReason::Memory));
        }
    }
}
