use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use super::super::{ConnectionGuard, ConnectionLimits, LimitHit};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
}

#[test]
fn total_cap() {
    let limits = ConnectionLimits::new(Some(2), None);
    let a = limits.try_acquire("tls", None, ip(1)).unwrap();
    let _b = limits.try_acquire("tls", None, ip(2)).unwrap();
    assert_eq!(limits.try_acquire("other", None, ip(3)).unwrap_err(), LimitHit::Total);
    assert_eq!(limits.total(), 2);
    drop(a);
    assert_eq!(limits.total(), 1);
    assert!(limits.try_acquire("other", None, ip(3)).is_ok());
}

#[test]
fn per_listener_cap() {
    let limits = ConnectionLimits::new(None, None);
    let _a = limits.try_acquire("tls", Some(1), ip(1)).unwrap();
    assert_eq!(limits.try_acquire("tls", Some(1), ip(2)).unwrap_err(), LimitHit::Listener);
    // Another listener has its own count.
    let _b = limits.try_acquire("wss", Some(1), ip(2)).unwrap();
    assert_eq!(limits.listener_count("tls"), 1);
    assert_eq!(limits.listener_count("wss"), 1);
    assert_eq!(limits.try_acquire("zero", Some(0), ip(3)).unwrap_err(), LimitHit::Listener);
    // Refusals roll back the total.
    assert_eq!(limits.total(), 2);
}

#[test]
fn per_ip_cap() {
    let limits = ConnectionLimits::new(None, Some(2));
    let _a = limits.try_acquire("tls", None, ip(1)).unwrap();
    let _b = limits.try_acquire("wss", None, ip(1)).unwrap();
    assert_eq!(limits.try_acquire("tls", None, ip(1)).unwrap_err(), LimitHit::PerIp);
    // The IPv4-mapped form is the same client.
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped());
    assert_eq!(limits.try_acquire("tls", None, mapped).unwrap_err(), LimitHit::PerIp);
    assert!(limits.try_acquire("tls", None, ip(2)).is_ok());
    // Refusals roll back total and listener counts.
    assert_eq!(limits.total(), 2);
    assert_eq!(limits.listener_count("tls"), 1);
    assert_eq!(limits.ip_count(ip(1)), 2);
}

#[test]
fn zero_per_ip_cap_refuses_and_keeps_no_entry() {
    let limits = ConnectionLimits::new(None, Some(0));
    assert_eq!(limits.try_acquire("tls", None, ip(1)).unwrap_err(), LimitHit::PerIp);
    assert_eq!(limits.ip_count(ip(1)), 0);
    assert_eq!(limits.total(), 0);
}

#[test]
fn guard_decrements_every_level_on_drop() {
    let limits = ConnectionLimits::new(Some(10), Some(10));
    let guard = limits.try_acquire("tls", Some(10), ip(9)).unwrap();
    assert_eq!(guard.listener(), "tls");
    assert_eq!(guard.ip(), ip(9));
    assert_eq!((limits.total(), limits.listener_count("tls"), limits.ip_count(ip(9))), (1, 1, 1));
    drop(guard);
    assert_eq!((limits.total(), limits.listener_count("tls"), limits.ip_count(ip(9))), (0, 0, 0));
}

#[test]
fn guard_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ConnectionGuard>();
    assert_send_sync::<ConnectionLimits>();
}

#[test]
fn concurrent_acquire_never_exceeds_caps() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 500;
    let limits = ConnectionLimits::new(Some(5), Some(3));
    let live = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let per_ip_live = Arc::new(Mutex::new([0usize; 2]));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            let (limits, live, max_seen, per_ip_live, barrier) =
                (limits.clone(), live.clone(), max_seen.clone(), per_ip_live.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let slot = thread_index % 2;
                let address = ip(slot as u8);
                for _ in 0..ROUNDS {
                    if let Ok(guard) = limits.try_acquire("tls", Some(4), address) {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        {
                            let mut counts = per_ip_live.lock().unwrap();
                            counts[slot] += 1;
                            assert!(counts[slot] <= 3, "per-IP cap exceeded");
                        }
                        // The total may briefly include attempts being rolled back, never above its cap.
                        assert!(limits.total() <= 5, "total cap exceeded");
                        thread::yield_now();
                        per_ip_live.lock().unwrap()[slot] -= 1;
                        live.fetch_sub(1, Ordering::SeqCst);
                        drop(guard);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert!(max_seen.load(Ordering::SeqCst) <= 4);
    assert!(max_seen.load(Ordering::SeqCst) >= 1);
    assert_eq!(limits.total(), 0);
    assert_eq!(limits.listener_count("tls"), 0);
    assert_eq!(limits.ip_count(ip(0)), 0);
    assert_eq!(limits.ip_count(ip(1)), 0);
}

#[test]
fn concurrent_total_cap_holds_under_contention() {
    const THREADS: usize = 8;
    let limits = ConnectionLimits::new(Some(3), None);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let (limits, barrier) = (limits.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                limits.try_acquire("tls", None, ip(n as u8)).ok()
            })
        })
        .collect();
    let guards: Vec<_> = handles.into_iter().filter_map(|handle| handle.join().unwrap()).collect();
    assert_eq!(guards.len(), 3);
    assert_eq!(limits.total(), 3);
    drop(guards);
    assert_eq!(limits.total(), 0);
}
