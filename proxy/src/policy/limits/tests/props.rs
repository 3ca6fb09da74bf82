use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::{Limiter, Rate, SharedBucket, TokenBucket};

/// Slack for f64 refill arithmetic (see `TOLERANCE` in bucket.rs).
fn slack(bound: f64) -> f64 {
    1e-6 * bound.max(1.0)
}

/// Checks every interval `[t_i, t_j]` of the granted takes (not only intervals from the start,
/// which an uncapped refill would still satisfy): the sum granted within it is at most
/// `burst + rate × (t_j − t_i)`. Returns the first violating interval.
fn first_violation(grants: &[(Duration, f64)], rate: f64, burst: f64) -> Option<(usize, usize, f64, f64)> {
    for (i, (start, _)) in grants.iter().enumerate() {
        let mut sum = 0.0;
        for (j, (end, n)) in grants.iter().enumerate().skip(i) {
            sum += n;
            let bound = burst + rate * (*end - *start).as_secs_f64();
            if sum > bound + slack(bound) {
                return Some((i, j, sum, bound));
            }
        }
    }
    None
}

proptest! {
    /// For any sequence of takes, tokens granted over any interval never exceed
    /// burst + rate × elapsed.
    #[test]
    fn granted_never_exceeds_burst_plus_rate_times_elapsed(
        rate in 0.01f64..10_000.0,
        burst in 0.0f64..1_000.0,
        ops in prop::collection::vec((0u64..2_000_000_000, 0.0f64..500.0), 1..200),
    ) {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(Rate::PerSecond(rate), burst);
        let mut elapsed = Duration::ZERO;
        let mut grants = Vec::new();
        for (step_nanos, n) in ops {
            elapsed += Duration::from_nanos(step_nanos);
            if bucket.try_take(n, t0 + elapsed).is_ok() {
                grants.push((elapsed, n));
            }
        }
        prop_assert_eq!(first_violation(&grants, rate, burst), None);
    }

    /// The advertised wait is sufficient: a retry after exactly that long succeeds.
    #[test]
    fn retry_after_wait_succeeds(
        rate in 0.01f64..10_000.0,
        burst in 1.0f64..1_000.0,
        first in 0.0f64..1_000.0,
        second_fraction in 0.0f64..1.0,
    ) {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(Rate::PerSecond(rate), burst);
        let _ = bucket.try_take(first, t0);
        let second = burst * second_fraction;
        if let Err(wait) = bucket.try_take(second, t0) {
            prop_assert!(wait < Duration::MAX);
            prop_assert!(bucket.try_take(second, t0 + wait).is_ok());
        }
    }

    /// Across many connections the node level bounds the aggregate over any interval.
    #[test]
    fn node_bounds_the_aggregate_of_connections(
        node_rate in 1.0f64..1_000.0,
        node_burst in 1.0f64..100.0,
        ops in prop::collection::vec((0usize..4, 0u64..100_000_000, 0.0f64..20.0), 1..200),
    ) {
        let t0 = Instant::now();
        let limiter = Limiter::new(None, Some(SharedBucket::new(Rate::PerSecond(node_rate), node_burst)));
        let mut conns: Vec<TokenBucket> =
            (0..4).map(|_| TokenBucket::new(Rate::PerSecond(50.0), 50.0)).collect();
        let mut elapsed = Duration::ZERO;
        let mut grants = Vec::new();
        for (conn, step_nanos, n) in ops {
            elapsed += Duration::from_nanos(step_nanos);
            if let Some(bucket) = conns.get_mut(conn) {
                if limiter.take(bucket, n, t0 + elapsed).is_ok() {
                    grants.push((elapsed, n));
                }
            }
        }
        prop_assert_eq!(first_violation(&grants, node_rate, node_burst), None);
    }
}
