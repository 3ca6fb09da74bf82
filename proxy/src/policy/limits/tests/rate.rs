use super::super::{parse_rate, parse_rate_spec, Rate, RateError, RateSpec};

fn per_second(text: &str) -> f64 {
    match parse_rate(text) {
        Ok(Rate::PerSecond(value)) => value,
        other => panic!("{text:?} parsed as {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn parses_messages_per_second() {
    assert_eq!(parse_rate("100/s"), Ok(Rate::PerSecond(100.0)));
}

#[test]
fn parses_per_minute_and_per_hour() {
    assert!(close(per_second("60/m"), 1.0));
    assert!(close(per_second("1000/h"), 1000.0 / 3600.0));
}

#[test]
fn parses_decimal_amounts() {
    assert!(close(per_second("0.5/s"), 0.5));
}

#[test]
fn parses_period_multiples() {
    assert!(close(per_second("100/10s"), 10.0));
    assert!(close(per_second("30/2m"), 0.25));
}

#[test]
fn parses_decimal_byte_units() {
    assert!(close(per_second("10MB/m"), 10e6 / 60.0));
    assert!(close(per_second("1KB/s"), 1000.0));
    assert!(close(per_second("2GB/h"), 2e9 / 3600.0));
}

#[test]
fn parses_binary_byte_units() {
    assert!(close(per_second("1KiB/s"), 1024.0));
    assert!(close(per_second("1MiB/s"), 1_048_576.0));
    assert!(close(per_second("1GiB/s"), 1_073_741_824.0));
}

#[test]
fn units_and_keywords_are_case_insensitive_and_whitespace_tolerant() {
    assert!(close(per_second("  10 mb / S "), 10e6));
    assert_eq!(parse_rate("Infinity"), Ok(Rate::Infinity));
    assert_eq!(parse_rate(" infinity "), Ok(Rate::Infinity));
}

#[test]
fn parses_burst_suffix() {
    assert_eq!(
        parse_rate_spec("100/s, burst 200"),
        Ok(RateSpec { rate: Rate::PerSecond(100.0), burst: Some(200.0) })
    );
    assert_eq!(parse_rate("100/s, burst 200"), Ok(Rate::PerSecond(100.0)));
    let bytes = parse_rate_spec("1MB/s,burst 4MiB").unwrap();
    assert_eq!(bytes.burst, Some(4.0 * 1_048_576.0));
}

#[test]
fn default_burst_is_one_second_of_rate_but_at_least_one() {
    assert_eq!(parse_rate_spec("100/s").unwrap().burst_or_default(), 100.0);
    assert_eq!(parse_rate_spec("1/h").unwrap().burst_or_default(), 1.0);
    assert_eq!(parse_rate_spec("100/s, burst 5").unwrap().burst_or_default(), 5.0);
    assert_eq!(parse_rate_spec("infinity").unwrap().burst_or_default(), f64::INFINITY);
}

#[test]
fn rejects_empty() {
    assert_eq!(parse_rate_spec(""), Err(RateError::Empty));
    assert_eq!(parse_rate_spec("   "), Err(RateError::Empty));
}

#[test]
fn rejects_missing_period() {
    assert!(matches!(parse_rate_spec("100"), Err(RateError::MissingPeriod(_))));
}

#[test]
fn rejects_bad_period() {
    for text in ["100/", "100/x", "100/0s", "100/d", "100/s/s", "100//s", "100/-1s", "100/99999999999s"] {
        assert!(matches!(parse_rate_spec(text), Err(RateError::BadPeriod(_))), "{text:?}");
    }
}

#[test]
fn rejects_bad_numbers() {
    // An exponent is not a number here (it reads as the unit "e3").
    assert!(parse_rate_spec("1e3/s").is_err());
    for text in ["/s", "abc/s", "-5/s", "NaN/s", "inf/s", "1.5.2/s", ".5/s", "5./s", "+5/s"] {
        assert!(matches!(parse_rate_spec(text), Err(RateError::BadNumber(_))), "{text:?}");
    }
}

#[test]
fn rejects_unknown_units() {
    for text in ["10XB/s", "10 bytes/s", "10TB/s", "10K/s"] {
        assert!(matches!(parse_rate_spec(text), Err(RateError::BadUnit(_))), "{text:?}");
    }
}

#[test]
fn rejects_zero_rates() {
    assert!(matches!(parse_rate_spec("0/s"), Err(RateError::NotPositive(_))));
    assert!(matches!(parse_rate_spec("0.000/s"), Err(RateError::NotPositive(_))));
}

#[test]
fn rejects_overflowing_rates() {
    let huge = format!("{}GiB/s", "9".repeat(400));
    assert!(matches!(parse_rate_spec(&huge), Err(RateError::BadNumber(_) | RateError::TooLarge(_))));
    let big = format!("{}GiB/s", "9".repeat(300));
    assert!(matches!(parse_rate_spec(&big), Err(RateError::TooLarge(_))));
}

#[test]
fn rejects_malformed_burst() {
    for text in
        ["100/s,", "100/s, burst", "100/s, burst 0", "100/s, bust 10", "100/s, burst -1", "100/s, 200"]
    {
        assert!(parse_rate_spec(text).is_err(), "{text:?}");
    }
    assert!(parse_rate("100/s burst 200").is_err());
}

#[test]
fn rejects_burst_on_infinity() {
    assert!(matches!(parse_rate_spec("infinity, burst 10"), Err(RateError::BurstOnInfinity(_))));
}

#[test]
fn error_message_names_the_input() {
    let message = parse_rate("10XB/s").unwrap_err();
    assert!(message.contains("10XB/s"), "{message}");
}
