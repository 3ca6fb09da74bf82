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

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_control_characters_and_caps_length() {
        assert_eq!(escape("dev\n2026-01-01 ERROR fake").to_string(), "dev\\n2026-01-01 ERROR fake");
        assert_eq!(escape("a\u{1b}[31m").to_string(), "a\\u{1b}[31m");
        assert_eq!(escape("back\\slash").to_string(), "back\\\\slash");
        let long = "x".repeat(1000);
        assert_eq!(escape(&long).to_string().chars().count(), 257);
    }
}
