//! The main YAML configuration: read all, validate all, then hand out one immutable [`Config`].

mod audit;
mod authn;
mod duration;
mod error;
mod model;
mod ocsp;
mod overload;
mod policies;
mod psk;
mod quotas;
mod rates;
mod raw;
mod state;
pub mod tls;
mod upstream;
mod validate;

use std::path::Path;

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigIssue};
pub use model::*;
pub use psk::{PskConfig, PskIdentities, PskKey};
pub use state::{FailMode, FleetMessageRate, RedisConfig, RedisTopology, Secret, StateBackend};

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
    let mut text = std::borrow::Cow::Borrowed(text);
    // serde stops at the first unknown key; drop that key's block and read on, so one run of
    // `moat check` lists every problem. Bounded: a file with more unknown keys is rare.
    let mut attempts = 0;
    let raw: raw::RawConfig = loop {
        match serde_saphyr::from_str(&text) {
            Ok(r) => break r,
            Err(e) => {
                let line = e.location().map_or(0, |l| l.line());
                let key = parse_error_key(&e);
                let message = first_line(&e.to_string());
                let unknown = message.contains("unknown field");
                issues.push(line, key, message);
                attempts += 1;
                match without_block(&text, line) {
                    Some(next) if unknown && attempts < 32 => text = std::borrow::Cow::Owned(next),
                    _ => return Err(ConfigError { issues: issues.list }),
                }
            }
        }
    };
    let compiled = validate::compile(raw, path, &mut issues);
    match compiled {
        Some(mut c) => {
            c.files = issues.files.clone();
            issues.into_result(c)
        }
        None => Err(ConfigError { issues: issues.list }),
    }
}

/// The text without the mapping entry that starts on 1-based `line` (and its more-indented
/// children). Line numbers of what remains are kept by leaving empty lines in place. `None` when
/// the line is not a plain `key: …` entry (a list item start, say): recovery stops there.
fn without_block(text: &str, line: u64) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let target = lines.get(index)?;
    let indent = target.len() - target.trim_start().len();
    if target.trim_start().starts_with('-') || !target.contains(':') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for (i, l) in lines.iter().enumerate() {
        let this_indent = l.len() - l.trim_start().len();
        if i == index {
            skipping = true;
        } else if skipping && (l.trim().is_empty() || this_indent > indent) {
            // child of the removed entry
        } else {
            skipping = false;
        }
        if !skipping {
            out.push_str(l);
        }
        out.push('\n');
    }
    Some(out)
}

fn read_bounded(path: &Path) -> Result<String, String> {
    crate::util::read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| e.to_string())
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
