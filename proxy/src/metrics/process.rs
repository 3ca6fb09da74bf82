//! Process metrics, read at scrape time: CPU time, open file descriptors, start time. (Resident
//! memory is `moat_resident_memory_bytes`, refreshed here too.) Linux `/proc` and getrusage(2);
//! elsewhere the values simply stay at zero.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub struct ProcessMetrics {
    cpu_seconds: Counter<f64, AtomicU64>,
    /// CPU time already added to the counter, in microseconds.
    cpu_seen_us: AtomicU64,
    open_fds: Gauge,
    start_time: Gauge,
}

impl ProcessMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let cpu_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time of the moat process",
            cpu_seconds.clone(),
        );
        let open_fds = Gauge::default();
        registry.register("process_open_fds", "Open file descriptors (sockets included)", open_fds.clone());
        let start_time = Gauge::default();
        registry.register(
            "process_start_time_seconds",
            "When the process started, unix seconds",
            start_time.clone(),
        );
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        start_time.set(i64::try_from(now).unwrap_or(i64::MAX));
        Self { cpu_seconds, cpu_seen_us: AtomicU64::new(0), open_fds, start_time }
    }

    /// Brings the values up to date (called before every scrape).
    pub fn refresh(&self) {
        if let Some(us) = cpu_micros() {
            let before = self.cpu_seen_us.swap(us, Ordering::AcqRel);
            if us > before {
                self.cpu_seconds.inc_by((us - before) as f64 / 1e6);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
        let _ = &self.start_time;
    }
}

fn cpu_micros() -> Option<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a plain struct we own; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above (and zeroed before it).
    let u = unsafe { usage.assume_init() };
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).ok()?.checked_mul(1_000_000)?.checked_add(u64::try_from(t.tv_usec).ok()?)
    };
    micros(u.ru_utime)?.checked_add(micros(u.ru_stime)?)
}
