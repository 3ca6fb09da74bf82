//! Validation of the `overload:` block.

use super::duration::parse_duration;
use super::error::Issues;
use super::model::OverloadConfig;
use super::raw::RawOverload;

/// Sampling interval when none is given: fast enough to react within a second, rare enough
/// that reading `/proc/self/status` costs nothing measurable.
const DEFAULT_CHECK_INTERVAL_MS: u64 = 1000;

pub(crate) fn overload(raw: RawOverload, issues: &mut Issues) -> OverloadConfig {
    let max_connections = raw.max_connections.and_then(|m| match usize::try_from(m.value) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            issues.push(m.referenced.line(), "overload.max_connections", "must be a positive number");
            None
        }
    });
    let max_memory = raw.max_memory.and_then(|m| match parse_size(&m.value) {
        Some(bytes) if bytes > 0 => Some(bytes),
        _ => {
            issues.push(
                m.referenced.line(),
                "overload.max_memory",
                format!("`{}` is not a size (e.g. 512MiB, 2GB, or bytes)", m.value),
            );
            None
        }
    });
    let check_interval = match raw.check_interval {
        Some(d) => match parse_duration(&d.value) {
            Ok(x) if !x.is_zero() => x,
            Ok(_) => {
                issues.push(d.referenced.line(), "overload.check_interval", "must be greater than zero");
                std::time::Duration::from_millis(DEFAULT_CHECK_INTERVAL_MS)
            }
            Err(msg) => {
                issues.push(d.referenced.line(), "overload.check_interval", msg);
                std::time::Duration::from_millis(DEFAULT_CHECK_INTERVAL_MS)
            }
        },
        None => std::time::Duration::from_millis(DEFAULT_CHECK_INTERVAL_MS),
    };
    OverloadConfig {
        max_connections,
        max_memory,
        upstream_unhealthy: raw.upstream_unhealthy.is_some_and(|u| u.value),
        check_interval,
    }
}

/// `digits[unit]` with KB/MB/GB (1000-based) or KiB/MiB/GiB (1024-based), case-insensitive.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1.5GB"), None);
        assert_eq!(parse_size("99999999999GiB"), None);
        assert_eq!(parse_size("lots"), None);
    }
}
