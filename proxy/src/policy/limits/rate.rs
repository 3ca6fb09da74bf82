//! Rate strings as written in configuration: `"100/s"`, `"10MB/m"`, `"1000/h"`, `"infinity"`,
//! optionally with a burst: `"100/s, burst 200"`.
//!
//! The grammar is deliberately strict (no exponents, no `inf`/`NaN`, no zero or negative rates):
//! a typo in a limit must fail at load time rather than silently disable or zero a limit.
//!
//! ```text
//! spec   := rate [ "," "burst" amount ]          (whitespace allowed between tokens)
//! rate   := "infinity" | amount "/" [count] period
//! amount := digits [ "." digits ] [ unit ]
//! unit   := KB | MB | GB (1000-based) | KiB | MiB | GiB (1024-based)   (case-insensitive)
//! period := s | m | h   with an optional positive integer multiple: "100/10s"
//! ```

use thiserror::Error;

/// A refill rate. `PerSecond` is always finite and positive when produced by [`parse_rate`];
/// values built by hand are sanitised by [`super::TokenBucket::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// No limit at all: takes always succeed.
    Infinity,
    /// Tokens (messages or bytes) per second.
    PerSecond(f64),
}

/// A parsed rate plus the optional burst written after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSpec {
    pub rate: Rate,
    /// Bucket capacity if the text named one (`", burst 200"`), in the same unit as the rate.
    pub burst: Option<f64>,
}

impl RateSpec {
    /// The capacity to use: the explicit burst, else one second's worth of the rate (at least one
    /// token, so a slow `"1/h"` rate still lets a single message through), else unbounded.
    pub fn burst_or_default(&self) -> f64 {
        match (self.burst, self.rate) {
            (Some(burst), _) => burst,
            (None, Rate::PerSecond(per_second)) => per_second.max(1.0),
            (None, Rate::Infinity) => f64::INFINITY,
        }
    }
}

/// Why a rate string was refused. The text is echoed so a config error points at the culprit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RateError {
    #[error("empty rate")]
    Empty,
    #[error("rate {0:?}: expected `<amount>/<period>` such as \"100/s\", or \"infinity\"")]
    MissingPeriod(String),
    #[error("rate {0:?}: invalid number (plain decimal digits expected)")]
    BadNumber(String),
    #[error("rate {0:?}: unknown unit (use KB, MB, GB, KiB, MiB or GiB)")]
    BadUnit(String),
    #[error("rate {0:?}: unknown period (use s, m or h, optionally with a count like 10s)")]
    BadPeriod(String),
    #[error("rate {0:?}: must be greater than zero (omit the limit or use \"infinity\" instead)")]
    NotPositive(String),
    #[error("rate {0:?}: too large")]
    TooLarge(String),
    #[error("rate {0:?}: expected `, burst <amount>` after the rate")]
    BadBurst(String),
    #[error("rate {0:?}: an infinite rate takes no burst")]
    BurstOnInfinity(String),
}

/// Parses a rate (the contract's entry point). A burst suffix is accepted and validated; use
/// [`parse_rate_spec`] to obtain it.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    parse_rate_spec(text).map(|spec| spec.rate).map_err(|error| error.to_string())
}

/// Parses a rate with its optional `", burst <amount>"` suffix.
pub fn parse_rate_spec(text: &str) -> Result<RateSpec, RateError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(RateError::Empty);
    }
    let (rate_text, burst_text) = match trimmed.split_once(',') {
        Some((rate, rest)) => (rate.trim(), Some(rest.trim())),
        None => (trimmed, None),
    };
    let rate = parse_bare_rate(rate_text, text)?;
    let burst = match burst_text {
        None => None,
        Some(rest) => {
            if rate == Rate::Infinity {
                return Err(RateError::BurstOnInfinity(text.to_owned()));
            }
            let amount = rest
                .strip_prefix("burst")
                .map(str::trim)
                .filter(|amount| !amount.is_empty())
                .ok_or_else(|| RateError::BadBurst(text.to_owned()))?;
            Some(parse_amount(amount, text)?)
        }
    };
    Ok(RateSpec { rate, burst })
}

fn parse_bare_rate(rate_text: &str, original: &str) -> Result<Rate, RateError> {
    if rate_text.eq_ignore_ascii_case("infinity") {
        return Ok(Rate::Infinity);
    }
    let (amount, period) =
        rate_text.split_once('/').ok_or_else(|| RateError::MissingPeriod(original.to_owned()))?;
    let amount = parse_amount(amount.trim(), original)?;
    let period_secs = parse_period(period.trim(), original)?;
    let per_second = amount / period_secs;
    if !per_second.is_finite() {
        return Err(RateError::TooLarge(original.to_owned()));
    }
    if per_second <= 0.0 {
        return Err(RateError::NotPositive(original.to_owned()));
    }
    Ok(Rate::PerSecond(per_second))
}

/// `digits[.digits][unit]` → a positive finite amount.
fn parse_amount(text: &str, original: &str) -> Result<f64, RateError> {
    let number_len = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let value = parse_decimal(number).ok_or_else(|| RateError::BadNumber(original.to_owned()))?;
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(|| RateError::BadUnit(original.to_owned()))?;
    let amount = value * multiplier;
    if !amount.is_finite() {
        return Err(RateError::TooLarge(original.to_owned()));
    }
    if amount <= 0.0 {
        return Err(RateError::NotPositive(original.to_owned()));
    }
    Ok(amount)
}

/// Only `digits` or `digits.digits`: `f64::from_str` alone would also take `inf`, `NaN`, `1e9`.
fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

fn unit_multiplier(unit: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 7] = [
        ("", 1.0),
        ("kb", 1e3),
        ("mb", 1e6),
        ("gb", 1e9),
        ("kib", 1024.0),
        ("mib", 1024.0 * 1024.0),
        ("gib", 1024.0 * 1024.0 * 1024.0),
    ];
    UNITS.iter().find(|(name, _)| unit.eq_ignore_ascii_case(name)).map(|(_, multiplier)| *multiplier)
}

/// `[count](s|m|h)` → seconds.
fn parse_period(text: &str, original: &str) -> Result<f64, RateError> {
    let bad = || RateError::BadPeriod(original.to_owned());
    let digits_len = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (count, unit) = text.split_at(digits_len);
    let count: u32 = if count.is_empty() { 1 } else { count.parse().map_err(|_| bad())? };
    if count == 0 {
        return Err(bad());
    }
    let unit_secs = match unit.to_ascii_lowercase().as_str() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Ok(f64::from(count) * unit_secs)
}
