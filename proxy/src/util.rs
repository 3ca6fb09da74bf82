//! Small helpers shared across modules.

use std::fmt;

/// Longest client-supplied string written to a log line, in characters.
const MAX_LOGGED_CHARS: usize = 256;

/// Displays a client-supplied string (client id, username, topic) safely in logs: control
/// characters are escaped so a peer cannot forge log lines, and the length is capped (trap 20).
pub struct Escaped<'a>(&'a str);

pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_LOGGED_CHARS {
                return f.write_str("…");
            }
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Why a bounded file read failed (never quotes the file's contents: it may be a secret).
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// Reads a text file of at most `max` bytes. It reads one byte past the limit rather than
/// trusting the file's size beforehand, so a file that grows meanwhile is still refused, never
/// read into memory whole.
pub fn read_bounded(path: &std::path::Path, max: u64) -> Result<String, BoundedReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(BoundedReadError::Open)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(BoundedReadError::Read)?;
    if bytes.len() as u64 > max {
        return Err(BoundedReadError::TooLarge(max));
    }
    String::from_utf8(bytes).map_err(|_| BoundedReadError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::{escape, read_bounded, BoundedReadError};

    #[test]
    fn bounded_read_refuses_large_and_binary_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "x".repeat(11)).expect("write");
        assert!(matches!(read_bounded(&path, 10), Err(BoundedReadError::TooLarge(10))));
        assert_eq!(read_bounded(&path, 11).expect("fits"), "x".repeat(11));
        std::fs::write(&path, b"\xff\xfe").expect("write");
        assert!(matches!(read_bounded(&path, 10), Err(BoundedReadError::NotUtf8)));
        assert!(matches!(read_bounded(&dir.path().join("missing"), 10), Err(BoundedReadError::Open(_))));
    }

    #[test]
    fn escapes_control_characters_and_caps_length() {
        assert_eq!(escape("dev\n2026-01-01 ERROR fake").to_string(), "dev\\n2026-01-01 ERROR fake");
        assert_eq!(escape("a\u{1b}[31m").to_string(), "a\\u{1b}[31m");
        assert_eq!(escape("back\\slash").to_string(), "back\\\\slash");
        let long = "x".repeat(1000);
        assert_eq!(escape(&long).to_string().chars().count(), 257);
    }
}
