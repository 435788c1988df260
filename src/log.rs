//! Logging: one line per event to stderr, never a secret.
//!
//! Under systemd (`$JOURNAL_STREAM` set) lines carry sd-daemon priority prefixes (`<3>`),
//! so journald records the level; elsewhere the level is written as a word.
//!
//! A line is always one line: control characters in the message (a value it echoes — a
//! path, an interface name, a config value) are written escaped ([`Escaped`]): `\n`, `\r`
//! and `\t` as such, any other control character as `\u{HEX}` (`\u{0}`, `\u{1b}`,
//! `\u{7f}`). Config diagnostics are escaped the same way.
//!
//! Which lines are written is the agent's `log_level` ([`set_config_level`]), unless the
//! command line chose one (`-q`, `-v`: [`set_override`]): `error` writes failures that lose
//! or hold back an event, `warn` adds failures that are retried or spooled and anything
//! needing attention, `info` (the default) adds routine successes (each delivery, start,
//! reload, stop), `debug` adds detail for diagnosis. A line below the level costs a
//! comparison: it is neither formatted nor counted by the repeat limit.
//!
//! A line that repeats is limited ([`Limiter`]): of one kind (the macro's format string)
//! and one subject (the text before the line's first `: `, such as `webhook ops`), at
//! most [`REPEAT_LIMIT`] are written per [`REPEAT_WINDOW_MS`]; the rest are counted, and
//! when the window ends one line says how many were suppressed (with the last of them).
//! A receiver that is down for an hour thus costs a few lines a minute, not one per event
//! and attempt, and the lines of another webhook are never held back by it. The table is
//! fixed ([`REPEAT_SLOTS`] kinds at once; a new kind takes the place of the one seen
//! longest ago).

use crate::clock::Clock;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 3,
    /// Something may need attention.
    Warn = 4,
    /// Normal operation.
    Info = 6,
    /// Detail for diagnosis.
    Debug = 7,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level named `s` in the config (`"error"`, `"warn"`, `"info"`, `"debug"`).
    pub fn from_config(s: &str) -> Option<Level> {
        [Level::Error, Level::Warn, Level::Info, Level::Debug]
            .into_iter()
            .find(|l| l.word() == s)
    }

    fn from_u8(n: u8) -> Option<Level> {
        [Level::Error, Level::Warn, Level::Info, Level::Debug]
            .into_iter()
            .find(|l| *l as u8 == n)
    }
}

/// The config's level (a [`Level`] as u8); `info` until a config says otherwise.
static CONFIG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// The command line's level (`-q`, `-v`), 0 when it chose none; it wins over the config's.
static OVERRIDE_LEVEL: AtomicU8 = AtomicU8::new(0);

/// The config's `log_level` (at start and at each reload); the command line's wins.
pub fn set_config_level(level: Level) {
    CONFIG_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The command line's level (`-q` = warn, `-v` = debug): the config's no longer counts.
pub fn set_override(level: Level) {
    OVERRIDE_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The most verbose level written now.
pub fn max_level() -> Level {
    let o = OVERRIDE_LEVEL.load(Ordering::Relaxed);
    Level::from_u8(o)
        .or_else(|| Level::from_u8(CONFIG_LEVEL.load(Ordering::Relaxed)))
        .unwrap_or(Level::Info)
}

/// Whether a line at `level` is written now.
pub fn enabled(level: Level) -> bool {
    level <= max_level()
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
    render_into(&mut line, args);
    line
}

/// [`render`] into `line`, after what it holds.
fn render_into(line: &mut String, args: fmt::Arguments<'_>) {
    // Err only means the line was cut.
    let _ = Escaped(Capped(line)).write_fmt(args);
}

/// `message` as the line written at `level`: a journald priority prefix, else the word.
#[cfg(test)]
fn framed(level: Level, journald: bool, message: &str) -> String {
    let mut line = String::new();
    frame_into(&mut line, level, journald, message);
    line
}

/// [`framed`] into `line`, which is cleared first.
fn frame_into(line: &mut String, level: Level, journald: bool, message: &str) {
    use fmt::Write as _;
    line.clear();
    let _ = if journald {
        writeln!(line, "<{}>{message}", level as u8)
    } else {
        writeln!(line, "tocsin {}: {message}", level.word())
    };
}

/// Lines of one kind and subject written per window; the rest are counted.
pub const REPEAT_LIMIT: u32 = 10;
/// The window of [`REPEAT_LIMIT`], in milliseconds (monotonic).
pub const REPEAT_WINDOW_MS: u64 = 60_000;
/// Kinds and subjects tracked at once.
pub const REPEAT_SLOTS: usize = 32;
/// Longest subject told apart, in bytes (a longer head is no subject).
const SUBJECT_LEN: usize = 64;
/// Bytes of the last suppressed line kept for the summary.
const LAST_LEN: usize = 160;

/// One kind and subject within its window.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// 0: free.
    key: u64,
    start_ms: u64,
    written: u32,
    suppressed: u32,
    /// The most severe level suppressed.
    level: Level,
    subject: [u8; SUBJECT_LEN],
    subject_len: usize,
    last: [u8; LAST_LEN],
    last_len: usize,
}

const FREE: Slot = Slot {
    key: 0,
    start_ms: 0,
    written: 0,
    suppressed: 0,
    level: Level::Info,
    subject: [0; SUBJECT_LEN],
    subject_len: 0,
    last: [0; LAST_LEN],
    last_len: 0,
};

/// Copies the head of `s` that fits `buf` (cut at a character); returns its length.
fn keep(buf: &mut [u8], s: &str) -> usize {
    let mut n = s.len().min(buf.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    n
}

impl Slot {
    fn text(buf: &[u8], len: usize) -> &str {
        std::str::from_utf8(&buf[..len]).unwrap_or("")
    }

    /// "N similar lines suppressed" for this slot.
    fn summary(&self, now_ms: u64) -> String {
        let subject = Slot::text(&self.subject, self.subject_len);
        let secs = now_ms.saturating_sub(self.start_ms).div_ceil(1000);
        let last = Slot::text(&self.last, self.last_len);
        let n = self.suppressed;
        let what = if n == 1 { "line" } else { "lines" };
        let head = if subject.is_empty() {
            String::new()
        } else {
            format!("{subject}: ")
        };
        format!("{head}{n} similar {what} suppressed in {secs} s; the last: {last}")
    }
}

/// The repeat limit's table: fixed, [`REPEAT_SLOTS`] entries. Pure: time is passed in.
#[derive(Debug)]
pub struct Limiter {
    slots: [Slot; REPEAT_SLOTS],
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

/// The subject of a message: its text before the first `: ` (`webhook ops`,
/// `spool`, `FILE:LINE:COL`), if that is short; else none.
fn subject_of(message: &str) -> &str {
    match message.find(": ") {
        Some(i) if i <= SUBJECT_LEN => &message[..i],
        _ => "",
    }
}

/// FNV-1a of `kind`, a separator and `subject`; never 0 (a free slot).
fn key_of(kind: &str, subject: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0xff]).chain(subject.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

impl Limiter {
    /// An empty table.
    pub const fn new() -> Limiter {
        Limiter {
            slots: [FREE; REPEAT_SLOTS],
        }
    }

    /// Whether a line of `kind` (its format string) with `message` may be written at
    /// `now_ms`. The summaries of windows that ended (or of a slot a new kind takes) go
    /// to `emit` first.
    pub fn admit(
        &mut self,
        level: Level,
        kind: &str,
        message: &str,
        now_ms: u64,
        emit: &mut dyn FnMut(Level, &str),
    ) -> bool {
        self.flush(now_ms, emit);
        let subject = subject_of(message);
        let key = key_of(kind, subject);
        let i = match self.slots.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                // A free slot, else the one whose window began longest ago.
                let i = (0..REPEAT_SLOTS)
                    .min_by_key(|&i| (self.slots[i].key != 0, self.slots[i].start_ms))
                    .unwrap_or(0);
                if self.slots[i].key != 0 && self.slots[i].suppressed > 0 {
                    emit(self.slots[i].level, &self.slots[i].summary(now_ms));
                }
                let mut s = FREE;
                s.key = key;
                s.start_ms = now_ms;
                s.subject_len = keep(&mut s.subject, subject);
                self.slots[i] = s;
                i
            }
        };
        let s = &mut self.slots[i];
        if s.written < REPEAT_LIMIT {
            s.written += 1;
            return true;
        }
        s.level = if s.suppressed == 0 {
            level
        } else {
            s.level.min(level)
        };
        s.suppressed += 1;
        s.last_len = keep(&mut s.last, message);
        false
    }

    /// Ends the windows that are over at `now_ms`, a summary to `emit` for each that
    /// held lines back.
    pub fn flush(&mut self, now_ms: u64, emit: &mut dyn FnMut(Level, &str)) {
        for s in self.slots.iter_mut() {
            if s.key != 0 && now_ms >= s.start_ms.saturating_add(REPEAT_WINDOW_MS) {
                if s.suppressed > 0 {
                    emit(s.level, &s.summary(now_ms));
                }
                *s = FREE;
            }
        }
    }

    /// When the first window holding lines back ends; None when none does.
    pub fn next_end(&self) -> Option<u64> {
        (self.slots.iter())
            .filter(|s| s.key != 0 && s.suppressed > 0)
            .map(|s| s.start_ms.saturating_add(REPEAT_WINDOW_MS))
            .min()
    }
}

/// Writes log lines through a [`Limiter`] at its clock's monotonic time.
#[derive(Debug)]
pub struct Logger {
    clock: Clock,
    limiter: Limiter,
    journald: bool,
    /// A thread waits to write the summaries when their windows end.
    flusher: bool,
    /// The framed line being written, kept between lines: no allocation per line.
    frame: String,
}

impl Logger {
    /// Lines framed for journald (`<N>`) or with the level as a word.
    pub fn new(clock: Clock, journald: bool) -> Logger {
        Logger {
            clock,
            limiter: Limiter::new(),
            journald,
            flusher: false,
            frame: String::new(),
        }
    }

    /// Writes `message` (rendered: see [`render`]) at `level` to `out`, unless the repeat
    /// limit holds it back (then false); summaries of ended windows come first.
    pub fn log(
        &mut self,
        level: Level,
        kind: &str,
        message: &str,
        out: &mut dyn std::io::Write,
    ) -> bool {
        let journald = self.journald;
        let frame = &mut self.frame;
        let mut emit = |l: Level, text: &str| {
            frame_into(frame, l, journald, text);
            drop(out.write_all(frame.as_bytes()));
        };
        let now = self.clock.mono_ms();
        let admitted = self.limiter.admit(level, kind, message, now, &mut emit);
        if admitted {
            emit(level, message);
        }
        admitted
    }

    /// Writes the summaries of the windows that ended by now.
    pub fn flush(&mut self, out: &mut dyn std::io::Write) {
        let journald = self.journald;
        let now = self.clock.mono_ms();
        let frame = &mut self.frame;
        self.limiter.flush(now, &mut |l, text| {
            frame_into(frame, l, journald, text);
            drop(out.write_all(frame.as_bytes()));
        });
    }
}

fn journald() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

fn logger() -> std::sync::MutexGuard<'static, Box<Logger>> {
    // Boxed: an unset OnceLock is not all zeros (its state word says "incomplete"), so
    // the static goes to .data with every byte of its value in the file: 8 KB of the
    // repeat limiter's table on every target. On the heap it costs no file bytes.
    static LOGGER: OnceLock<Mutex<Box<Logger>>> = OnceLock::new();
    LOGGER
        .get_or_init(|| Mutex::new(Box::new(Logger::new(Clock::system(), journald()))))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Writes one log line of `kind` (the format string), if `level` is enabled (see the
/// module doc). Use the [`error!`](crate::error), [`warn!`](crate::warn),
/// [`info!`](crate::info) and [`debug!`](crate::debug) macros.
pub fn write(level: Level, kind: &'static str, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    // Rendered before the lock: a value's Display may not log, but if it did it would
    // not deadlock here. Into this thread's line, kept between lines (no allocation per
    // line); a Display that logs finds it taken and renders into a fresh one.
    thread_local! {
        static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            render_into(&mut line, args);
            emit(level, kind, &line);
        }
        Err(_) => emit(level, kind, &render(args)),
    });
}

fn emit(level: Level, kind: &'static str, message: &str) {
    let mut l = logger();
    let held = !l.log(level, kind, message, &mut std::io::stderr().lock());
    if held && !l.flusher {
        l.flusher = std::thread::Builder::new()
            .name("tocsin-log".into())
            .stack_size(64 * 1024)
            .spawn(flush_when_windows_end)
            .is_ok();
    }
}

/// The summaries at the end of their windows, even when no other line comes: sleeps
/// until the first window holding lines back ends, writes, and ends when none is left.
fn flush_when_windows_end() {
    block_signals();
    loop {
        let wait = {
            let mut l = logger();
            l.flush(&mut std::io::stderr().lock());
            let now = l.clock.mono_ms();
            match l.limiter.next_end() {
                Some(end) => end.saturating_sub(now),
                None => {
                    l.flusher = false;
                    return;
                }
            }
        };
        std::thread::sleep(Duration::from_millis(wait.max(1)));
    }
}

/// Signals are for the main thread (SIGHUP, SIGTERM).
fn block_signals() {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initializes `set` before pthread_sigmask reads it; both only
    // touch this thread's signal mask and the local set.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($fmt:literal $($t:tt)*) => {
        $crate::log::write($crate::log::Level::Error, $fmt, format_args!($fmt $($t)*))
    };
}

/// Logs at warning level.
#[macro_export]
macro_rules! warn {
    ($fmt:literal $($t:tt)*) => {
        $crate::log::write($crate::log::Level::Warn, $fmt, format_args!($fmt $($t)*))
    };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($fmt:literal $($t:tt)*) => {
        $crate::log::write($crate::log::Level::Info, $fmt, format_args!($fmt $($t)*))
    };
}

/// Logs at debug level (written with `log_level = "debug"` or `-v` only).
#[macro_export]
macro_rules! debug {
    ($fmt:literal $($t:tt)*) => {
        $crate::log::write($crate::log::Level::Debug, $fmt, format_args!($fmt $($t)*))
    };
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

    const FAILED: &str = "webhook {name}: {what} attempt {a} failed: {error}";

    /// A logger on a fake clock writing into a buffer; `at(ms)` moves the clock to `ms`.
    struct Bench {
        clock: Clock,
        logger: Logger,
        out: Vec<u8>,
    }

    impl Bench {
        fn new() -> Bench {
            let clock = Clock::fake(1_700_000_000_000);
            Bench {
                logger: Logger::new(clock.clone(), false),
                clock,
                out: Vec::new(),
            }
        }

        fn at(&mut self, ms: u64) -> &mut Bench {
            let now = self.clock.mono_ms();
            self.clock.set(self.clock.now_ms(), ms - now);
            self
        }

        fn flush(&mut self) {
            self.logger.flush(&mut self.out);
        }

        fn log(&mut self, level: Level, kind: &str, message: &str) -> bool {
            self.logger.log(level, kind, message, &mut self.out)
        }

        /// The lines written since the last call.
        fn take(&mut self) -> Vec<String> {
            let text = String::from_utf8(std::mem::take(&mut self.out)).expect("utf8");
            text.lines().map(String::from).collect()
        }
    }

    #[test]
    fn ten_a_minute_then_one_summary_at_the_next_line_after_the_window() {
        let mut b = Bench::new();
        for i in 0..25 {
            let m = format!("webhook ops: alarm {i} attempt 1 failed: refused");
            let written = b.at(i * 1000).log(Level::Warn, FAILED, &m);
            assert_eq!(written, i < 10, "line {i}");
        }
        assert_eq!(b.take().len(), 10);
        // Still in the window (it began at 0): held back.
        assert!(!b
            .at(59_999)
            .log(Level::Error, FAILED, "webhook ops: x failed: refused"));
        assert!(b.take().is_empty());
        // The window is over: first the summary, then the line, which opens a new window.
        assert!(b
            .at(60_000)
            .log(Level::Warn, FAILED, "webhook ops: y failed: refused"));
        assert_eq!(
            b.take(),
            [
                "tocsin error: webhook ops: 16 similar lines suppressed in 60 s; the last: webhook ops: x failed: refused",
                "tocsin warn: webhook ops: y failed: refused",
            ],
            "the summary carries the most severe level held back"
        );
        for i in 1..10 {
            assert!(b
                .at(60_000 + i)
                .log(Level::Warn, FAILED, "webhook ops: z failed: e"));
        }
        assert!(
            !b.log(Level::Warn, FAILED, "webhook ops: z failed: e"),
            "11th of the new window"
        );
    }

    #[test]
    fn the_summary_comes_when_the_window_ends_without_another_line() {
        let mut b = Bench::new();
        for _ in 0..12 {
            b.at(5_000)
                .log(Level::Warn, FAILED, "webhook ops: a failed: e");
        }
        b.take();
        assert_eq!(b.logger.limiter.next_end(), Some(65_000));
        b.at(64_999).flush();
        assert!(b.take().is_empty(), "not yet");
        b.at(65_000).flush();
        assert_eq!(
            b.take(),
            ["tocsin warn: webhook ops: 2 similar lines suppressed in 60 s; the last: webhook ops: a failed: e"]
        );
        assert_eq!(b.logger.limiter.next_end(), None, "nothing left to say");
        b.at(66_000).flush();
        assert!(b.take().is_empty(), "said once");
    }

    #[test]
    fn another_webhook_or_another_kind_is_not_held_back() {
        let mut b = Bench::new();
        for _ in 0..30 {
            b.at(1).log(Level::Warn, FAILED, "webhook ops: a failed: e");
        }
        assert!(
            b.log(Level::Warn, FAILED, "webhook wecom: a failed: e"),
            "another subject"
        );
        let spooled = "webhook {name}: {} {} spooled ({waiting} waiting)";
        assert!(
            b.log(
                Level::Warn,
                spooled,
                "webhook ops: alarm X spooled (3 waiting)"
            ),
            "another kind"
        );
        // Diagnostics of one reload share their kind (`{d}`) but not their place.
        for i in 0..20 {
            let d = format!("/etc/tocsin/tocsin.toml:{i}:1: unknown key `x{i}`");
            assert!(b.log(Level::Error, "{d}", &d), "diagnostic {i}");
        }
        // A line with no subject is limited by its kind alone.
        let kinds: Vec<bool> = (0..11)
            .map(|i| b.log(Level::Info, "replaying {id}", &format!("replaying {i}")))
            .collect();
        assert_eq!(kinds.iter().filter(|w| **w).count(), 10);
    }

    #[test]
    fn the_table_is_fixed_a_new_kind_takes_the_oldest_place() {
        let mut b = Bench::new();
        for _ in 0..11 {
            b.at(0).log(Level::Warn, FAILED, "webhook ops: a failed: e");
        }
        b.take();
        // REPEAT_SLOTS more subjects: the oldest (ops, holding one back) gives its place
        // up and says what it held back then.
        for i in 0..REPEAT_SLOTS {
            assert!(b.at(1 + i as u64).log(
                Level::Warn,
                FAILED,
                &format!("webhook w{i}: a failed: e")
            ));
        }
        let lines = b.take();
        assert_eq!(lines.len(), REPEAT_SLOTS + 1);
        assert!(
            lines[REPEAT_SLOTS - 1]
                .starts_with("tocsin warn: webhook ops: 1 similar line suppressed in 1 s"),
            "{lines:?}"
        );
        assert_eq!(b.logger.limiter.slots.len(), REPEAT_SLOTS);
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
