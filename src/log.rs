//! Logging: one line per event to stderr, never a secret.
//!
//! Under systemd (`$JOURNAL_STREAM` set) lines carry sd-daemon priority prefixes (`<3>`),
//! so journald records the level; elsewhere the level is written as a word.
//!
//! A line is always one line: control characters in the message (a value it echoes — a
//! path, an interface name, a config value) are written escaped ([`Escaped`]): `\n`, `\r`
//! and `\t` as such, any other control character as `\u{HEX}` (`\u{0}`, `\u{1b}`,
//! `\u{7f}`). Config diagnostics are escaped the same way.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

/// Log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 3,
    /// Something may need attention.
    Warn = 4,
    /// Normal operation.
    Info = 6,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// Longest message written, in bytes; a longer one is cut (at a character) and ends `…`.
pub const MAX_LINE_LEN: usize = 4096;

/// A [`fmt::Write`] that writes control characters escaped (see the module doc).
pub struct Escaped<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(char::is_control) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Text displayed with its control characters escaped (see the module doc).
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(f).write_str(self.0)
    }
}

/// A [`fmt::Write`] into a String that stops at [`MAX_LINE_LEN`] bytes.
struct Capped<'a>(&'a mut String);

impl fmt::Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_LINE_LEN.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.0.push_str(&s[..cut]);
        self.0.push('…');
        Err(fmt::Error)
    }
}

/// The message of `args` as one line: escaped, at most [`MAX_LINE_LEN`] bytes (and `…`).
pub fn render(args: fmt::Arguments<'_>) -> String {
    let mut line = String::with_capacity(128);
    // Err only means the line was cut.
    let _ = Escaped(Capped(&mut line)).write_fmt(args);
    line
}

/// `message` as the line written at `level`: a journald priority prefix, else the word.
fn framed(level: Level, journald: bool, message: &str) -> String {
    if journald {
        format!("<{}>{message}\n", level as u8)
    } else {
        format!("tocsin {}: {message}\n", level.word())
    }
}

fn journald() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// Writes one log line. Use the [`error!`](crate::error), [`warn!`](crate::warn) and
/// [`info!`](crate::info) macros.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let line = framed(level, journald(), &render(args));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) };
}

/// Logs at warning level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_a_line_stays_one_line() {
        let iface = "wan\nerror: forged";
        let line = framed(
            Level::Warn,
            false,
            &render(format_args!("iface {iface}: down")),
        );
        assert_eq!(line, "tocsin warn: iface wan\\nerror: forged: down\n");
        let all = render(format_args!(
            "{}",
            "a\0b\rc\td\u{1b}[31me\u{7f}f\u{85}g é中"
        ));
        assert_eq!(all, "a\\u{0}b\\rc\\td\\u{1b}[31me\\u{7f}f\\u{85}g é中");
        let j = framed(Level::Error, true, &render(format_args!("x\n<0>y")));
        assert_eq!(j, "<3>x\\n<0>y\n");
        assert_eq!(Esc("a\nb").to_string(), "a\\nb");
    }

    #[test]
    fn a_long_line_is_cut_at_a_character() {
        let long = "é".repeat(MAX_LINE_LEN);
        let line = render(format_args!("{long}"));
        assert!(line.ends_with('…'));
        assert!(line.len() <= MAX_LINE_LEN + '…'.len_utf8());
        assert!(!line.contains('\n'));
    }
}
