//! The main YAML configuration: read all, validate all, then hand out one immutable [`Config`].

mod duration;
mod error;
mod model;
mod policies;
mod raw;
mod validate;

use std::path::Path;

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigIssue};
pub use model::*;

use error::Issues;

/// Largest config file accepted: a config is small; a huge file is a mistake or an attack.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Loads and validates the config at `path`. Every problem found is reported, not only the first.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let mut issues = Issues::new(path.to_path_buf());
    let text = match read_bounded(path) {
        Ok(t) => t,
        Err(msg) => {
            issues.push(0, "(file)", msg);
            return Err(ConfigError { issues: issues.list });
        }
    };
    from_str(&text, path)
}

/// Validates config text as if it had been read from `path` (relative paths resolve against it).
pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut issues = Issues::new(path.to_path_buf());
    let raw: raw::RawConfig = match serde_saphyr::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            issues.push(line, parse_error_key(&e), first_line(&e.to_string()));
            return Err(ConfigError { issues: issues.list });
        }
    };
    let compiled = validate::compile(raw, path, &mut issues);
    match compiled {
        Some(c) => issues.into_result(c),
        None => Err(ConfigError { issues: issues.list }),
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!("file is larger than {MAX_CONFIG_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

/// serde reports the offending key inside its message (`unknown field `x``); surface it as the key.
fn parse_error_key(e: &serde_saphyr::Error) -> String {
    let msg = e.to_string();
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = msg.split(marker).nth(1) {
            if let Some(name) = rest.split('`').next() {
                return name.to_string();
            }
        }
    }
    "(document)".to_string()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests;
