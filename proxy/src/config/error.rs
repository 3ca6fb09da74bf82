//! Config errors that name the file, the line and the key, so an operator can fix every problem
//! in one pass instead of one per restart.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is not tied to a line (unreadable file).
    pub line: u64,
    /// Dotted key path, e.g. `listeners[0].tls.cert`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.key, self.message)
    }
}

/// Every problem found while loading a configuration; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Collects issues for one file during validation.
pub(crate) struct Issues {
    file: PathBuf,
    pub(crate) list: Vec<ConfigIssue>,
    /// Every file the config made us read, so a watcher can reload when one changes.
    pub(crate) files: Vec<PathBuf>,
}

impl Issues {
    pub(crate) fn new(file: PathBuf) -> Self {
        Self { files: vec![file.clone()], file, list: Vec::new() }
    }

    /// Notes that the configuration depends on `path`.
    pub(crate) fn depends_on(&mut self, path: &std::path::Path) {
        if !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_path_buf());
        }
    }

    pub(crate) fn push(&mut self, line: u64, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigIssue {
            file: self.file.clone(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// An issue found in another file the config references (a policy file).
    pub(crate) fn push_in(
        &mut self,
        file: PathBuf,
        line: u64,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.list.push(ConfigIssue { file, line, key: key.into(), message: message.into() });
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError { issues: self.list })
        }
    }
}
