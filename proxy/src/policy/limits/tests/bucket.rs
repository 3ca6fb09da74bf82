use std::time::{Duration, Instant};

use super::super::{Rate, TokenBucket};
use super::at;

#[test]
fn starts_full_and_allows_a_burst() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(10.0), 5.0);
    for _ in 0..5 {
        assert_eq!(bucket.try_take(1.0, t0), Ok(()));
    }
    assert!(bucket.try_take(1.0, t0).is_err());
}

#[test]
fn wait_is_exact_for_one_token() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(10.0), 10.0);
    assert_eq!(bucket.try_take(10.0, t0), Ok(()));
    assert_eq!(bucket.try_take(1.0, t0), Err(Duration::from_millis(100)));
}

#[test]
fn wait_is_exact_for_several_tokens_and_partial_refill() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(4.0), 8.0);
    assert_eq!(bucket.try_take(8.0, t0), Ok(()));
    // 250 ms later one token has accrued; 3 more need 750 ms.
    assert_eq!(bucket.try_take(4.0, at(t0, 250)), Err(Duration::from_millis(750)));
    // A refusal consumes nothing: after exactly the advertised wait the take succeeds.
    assert_eq!(bucket.try_take(4.0, at(t0, 1000)), Ok(()));
    assert_eq!(bucket.try_take(0.5, at(t0, 1000)), Err(Duration::from_millis(125)));
}

#[test]
fn retry_after_advertised_wait_succeeds_with_awkward_rate() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(3.0), 7.0);
    assert_eq!(bucket.try_take(7.0, t0), Ok(()));
    let wait = bucket.try_take(5.0, t0).unwrap_err();
    // 5/3 s rounded up to the nanosecond.
    assert_eq!(wait, Duration::from_nanos(1_666_666_667));
    assert_eq!(bucket.try_take(5.0, t0 + wait), Ok(()));
}

#[test]
fn refill_is_capped_at_burst() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(100.0), 10.0);
    assert_eq!(bucket.try_take(10.0, t0), Ok(()));
    // An hour idle still only refills to the burst.
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(bucket.available(later), 10.0);
    assert_eq!(bucket.try_take(10.0, later), Ok(()));
    assert!(bucket.try_take(1.0, later).is_err());
}

#[test]
fn request_above_burst_never_fits() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(100.0), 10.0);
    assert_eq!(bucket.try_take(11.0, t0), Err(Duration::MAX));
    assert_eq!(bucket.capacity(), 10.0);
}

#[test]
fn infinity_never_refuses() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::Infinity, 0.0);
    assert!(bucket.is_unlimited());
    for _ in 0..1000 {
        assert_eq!(bucket.try_take(1e12, t0), Ok(()));
    }
    assert_eq!(TokenBucket::unlimited().try_take(f64::MAX, t0), Ok(()));
}

#[test]
fn degenerate_inputs_do_not_panic_or_grant() {
    let t0 = Instant::now();
    let mut zero_rate = TokenBucket::new(Rate::PerSecond(0.0), 1.0);
    assert_eq!(zero_rate.try_take(1.0, t0), Ok(()));
    assert_eq!(zero_rate.try_take(1.0, at(t0, 10_000)), Err(Duration::MAX));

    let mut nan = TokenBucket::new(Rate::PerSecond(f64::NAN), f64::NAN);
    assert_eq!(nan.try_take(1.0, t0), Err(Duration::MAX));

    let mut negative = TokenBucket::new(Rate::PerSecond(-5.0), -5.0);
    assert_eq!(negative.try_take(1.0, t0), Err(Duration::MAX));

    let mut bucket = TokenBucket::new(Rate::PerSecond(1.0), 1.0);
    assert_eq!(bucket.try_take(-100.0, t0), Ok(()));
    assert_eq!(bucket.try_take(f64::NAN, t0), Ok(()));
    assert_eq!(bucket.available(t0), 1.0, "negative/NaN takes must not add tokens");
    assert_eq!(bucket.try_take(f64::INFINITY, t0), Err(Duration::MAX));

    let mut tiny = TokenBucket::new(Rate::PerSecond(1e-300), 1.0);
    assert_eq!(tiny.try_take(1.0, t0), Ok(()));
    assert_eq!(tiny.try_take(1.0, t0), Err(Duration::MAX));
}

#[test]
fn time_going_backwards_is_no_time() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(10);
    let mut bucket = TokenBucket::new(Rate::PerSecond(1.0), 1.0);
    assert_eq!(bucket.try_take(1.0, later), Ok(()));
    assert_eq!(bucket.try_take(1.0, t0), Err(Duration::from_secs(1)));
    assert_eq!(bucket.try_take(1.0, later + Duration::from_secs(1)), Ok(()));
}

#[test]
fn byte_rate_with_large_values() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate::PerSecond(10e6), 20e6);
    assert_eq!(bucket.try_take(20e6, t0), Ok(()));
    assert_eq!(bucket.try_take(1e6, t0), Err(Duration::from_millis(100)));
    assert_eq!(bucket.try_take(1e6, at(t0, 100)), Ok(()));
}
