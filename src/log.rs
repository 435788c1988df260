//! Logging: one line per event to stderr, never a secret.
//!
//! Under systemd (`$JOURNAL_STREAM` set) lines carry sd-daemon priority prefixes (`<3>`),
//! so journald records the level; elsewhere the level is written as a word.

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

fn journald() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// Writes one log line. Use the [`error!`](crate::error), [`warn!`](crate::warn) and
/// [`info!`](crate::info) macros.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = if journald() {
        writeln!(err, "<{}>{args}", level as u8)
    } else {
        let word = match level {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        };
        writeln!(err, "tocsin {word}: {args}")
    };
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
