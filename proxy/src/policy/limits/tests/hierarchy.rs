use std::time::{Duration, Instant};

use super::super::{ConnBuckets, Limiter, Rate, SharedBucket, TokenBucket, TrafficLimiter};
use super::at;

fn shared(rate: f64, burst: f64) -> SharedBucket {
    SharedBucket::new(Rate::PerSecond(rate), burst)
}

#[test]
fn node_limit_binds_before_connection_limit() {
    let t0 = Instant::now();
    let node = shared(2.0, 2.0);
    let limiter = Limiter::new(None, Some(node.clone()));
    let mut a = TokenBucket::new(Rate::PerSecond(100.0), 100.0);
    let mut b = TokenBucket::new(Rate::PerSecond(100.0), 100.0);
    assert_eq!(limiter.take(&mut a, 1.0, t0), Ok(()));
    assert_eq!(limiter.take(&mut b, 1.0, t0), Ok(()));
    // Both connections have plenty left; the node is empty and needs 500 ms for a token.
    assert_eq!(limiter.take(&mut a, 1.0, t0), Err(Duration::from_millis(500)));
    assert_eq!(a.available(t0), 99.0, "refused take must refund the connection bucket");
    assert_eq!(limiter.take(&mut b, 1.0, at(t0, 500)), Ok(()));
}

#[test]
fn connection_limit_binds_before_node_limit() {
    let t0 = Instant::now();
    let node = shared(1000.0, 1000.0);
    let limiter = Limiter::new(None, Some(node.clone()));
    let mut conn = TokenBucket::new(Rate::PerSecond(1.0), 2.0);
    assert_eq!(limiter.take(&mut conn, 2.0, t0), Ok(()));
    assert_eq!(limiter.take(&mut conn, 1.0, t0), Err(Duration::from_secs(1)));
    // The node was only charged for the granted take.
    assert_eq!(node.available(t0), 998.0);
    // Another connection is unaffected.
    let mut other = TokenBucket::new(Rate::PerSecond(1.0), 2.0);
    assert_eq!(limiter.take(&mut other, 2.0, t0), Ok(()));
}

#[test]
fn listener_limit_binds_and_refunds_connection() {
    let t0 = Instant::now();
    let listener = shared(10.0, 5.0);
    let node = shared(1000.0, 1000.0);
    let limiter = Limiter::new(Some(listener.clone()), Some(node.clone()));
    let mut conn = TokenBucket::new(Rate::PerSecond(100.0), 100.0);
    assert_eq!(limiter.take(&mut conn, 5.0, t0), Ok(()));
    assert_eq!(limiter.take(&mut conn, 1.0, t0), Err(Duration::from_millis(100)));
    assert_eq!(conn.available(t0), 95.0);
    assert_eq!(node.available(t0), 995.0);
}

#[test]
fn node_refusal_refunds_listener_and_connection() {
    let t0 = Instant::now();
    let listener = shared(100.0, 100.0);
    let node = shared(1.0, 3.0);
    let limiter = Limiter::new(Some(listener.clone()), Some(node.clone()));
    let mut conn = TokenBucket::new(Rate::PerSecond(100.0), 100.0);
    assert_eq!(limiter.take(&mut conn, 3.0, t0), Ok(()));
    assert_eq!(limiter.take(&mut conn, 2.0, t0), Err(Duration::from_secs(2)));
    assert_eq!(listener.available(t0), 97.0);
    assert_eq!(conn.available(t0), 97.0);
}

#[test]
fn wait_is_the_longest_refusing_level() {
    let t0 = Instant::now();
    let listener = shared(1.0, 1.0);
    let node = shared(0.25, 1.0);
    let limiter = Limiter::new(Some(listener), Some(node));
    let mut conn = TokenBucket::new(Rate::PerSecond(2.0), 1.0);
    assert_eq!(limiter.take(&mut conn, 1.0, t0), Ok(()));
    // conn needs 500 ms, listener 1 s, node 4 s: report 4 s, not the first refusal's 500 ms.
    assert_eq!(limiter.take(&mut conn, 1.0, t0), Err(Duration::from_secs(4)));
    assert_eq!(limiter.take(&mut conn, 1.0, at(t0, 4000)), Ok(()));
}

#[test]
fn unset_levels_are_unlimited() {
    let t0 = Instant::now();
    let limiter = Limiter::default();
    let mut conn = TokenBucket::unlimited();
    for _ in 0..10_000 {
        assert_eq!(limiter.take(&mut conn, 1e9, t0), Ok(()));
    }
}

#[test]
fn same_bucket_at_two_levels_does_not_deadlock() {
    let t0 = Instant::now();
    let both = shared(1.0, 4.0);
    let limiter = Limiter::new(Some(both.clone()), Some(both.clone()));
    let mut conn = TokenBucket::unlimited();
    assert_eq!(limiter.take(&mut conn, 2.0, t0), Ok(()));
    assert!(limiter.take(&mut conn, 2.0, t0).is_err());
    assert_eq!(both.available(t0), 0.0);
}

#[test]
fn message_and_byte_limits_are_all_or_nothing() {
    let t0 = Instant::now();
    let traffic = TrafficLimiter {
        messages: Limiter::new(None, Some(shared(100.0, 100.0))),
        bytes: Limiter::new(None, Some(shared(1000.0, 1000.0))),
    };
    let mut conn = ConnBuckets {
        messages: TokenBucket::new(Rate::PerSecond(10.0), 10.0),
        bytes: TokenBucket::new(Rate::PerSecond(1e6), 1e6),
    };
    assert_eq!(traffic.take_message(&mut conn, 800.0, t0), Ok(()));
    // Bytes refuse (200 left, 500 wanted → 300 short at 1000/s): the message token is refunded.
    assert_eq!(traffic.take_message(&mut conn, 500.0, t0), Err(Duration::from_millis(300)));
    assert_eq!(conn.messages.available(t0), 9.0);
    assert_eq!(traffic.take_message(&mut conn, 500.0, at(t0, 300)), Ok(()));
    // 9 left + 3 refilled in 300 ms, capped at the burst of 10, minus this message.
    assert_eq!(conn.messages.available(at(t0, 300)), 9.0);
}
