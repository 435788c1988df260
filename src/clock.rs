//! Time, as one handle passed to everything that needs it.
//!
//! A [`Clock`] gives the wall clock (unix ms: payload times, signatures, stored times), a
//! process-wide monotonic clock (rates, timers, windows: it is never set back and not
//! reset by a reload) and the kernel's word on whether the wall clock is synchronised. The
//! core reads no clock of its own: the agent holds one [`Clock::system`], and tests pass
//! a [`Clock::fake`] whose hands they move.
//!
//! Routers often boot with a wrong clock (no RTC: 1970, or the firmware's build date) until
//! NTP sets it. A wall clock before 2020, or one the kernel calls unsynchronised
//! (adjtimex: `TIME_ERROR` or `STA_UNSYNC`), is [`Clock::suspect`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// 2020-01-01T00:00:00Z in unix milliseconds: any earlier wall clock is wrong.
pub const PLAUSIBLE_SINCE_MS: u64 = 1_577_836_800_000;

/// Where a [`Clock`] reads.
#[derive(Debug)]
enum Hands {
    /// The system's clocks; the monotonic one counts from `origin`.
    System { origin: Instant },
    /// Hands a test sets (a mutex, not atomics: 32-bit MIPS has no 64-bit atomics).
    Fake(Mutex<FakeHands>),
}

#[derive(Debug, Default)]
struct FakeHands {
    wall_ms: u64,
    mono_ms: u64,
    unsynchronised: bool,
}

/// Wall and monotonic time; cheap to clone (all clones read the same hands).
#[derive(Clone, Debug)]
pub struct Clock(Arc<Hands>);

impl Clock {
    /// The system's clocks; the monotonic clock starts at 0 now.
    pub fn system() -> Clock {
        Clock(Arc::new(Hands::System {
            origin: Instant::now(),
        }))
    }

    /// A clock that stands where a test puts it: wall `wall_ms`, monotonic 0, the kernel
    /// synchronised.
    pub fn fake(wall_ms: u64) -> Clock {
        Clock(Arc::new(Hands::Fake(Mutex::new(FakeHands {
            wall_ms,
            ..FakeHands::default()
        }))))
    }

    /// Wall-clock milliseconds since the Unix epoch (0 before 1970).
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Hands::System { .. } => wall_now_ms(),
            Hands::Fake(h) => h.lock().map_or(0, |h| h.wall_ms),
        }
    }

    /// Monotonic milliseconds since this clock was made.
    pub fn mono_ms(&self) -> u64 {
        match &*self.0 {
            Hands::System { origin } => origin.elapsed().as_millis() as u64,
            Hands::Fake(h) => h.lock().map_or(0, |h| h.mono_ms),
        }
    }

    /// Whether the kernel says the wall clock is not synchronised.
    pub fn kernel_unsynchronised(&self) -> bool {
        match &*self.0 {
            Hands::System { .. } => kernel_unsynchronised(),
            Hands::Fake(h) => h.lock().is_ok_and(|h| h.unsynchronised),
        }
    }

    /// Whether the wall clock may be wrong: before 2020, or unsynchronised.
    pub fn suspect(&self) -> bool {
        self.now_ms() < PLAUSIBLE_SINCE_MS || self.kernel_unsynchronised()
    }

    /// A fake clock's hands moved: wall to `wall_ms`, monotonic forward by `advance_ms`.
    /// No effect on the system clock.
    pub fn set(&self, wall_ms: u64, advance_ms: u64) {
        if let Hands::Fake(h) = &*self.0 {
            if let Ok(mut h) = h.lock() {
                h.wall_ms = wall_ms;
                h.mono_ms += advance_ms;
            }
        }
    }

    /// A fake clock's kernel says it is (not) synchronised. No effect on the system clock.
    pub fn set_unsynchronised(&self, yes: bool) {
        if let Hands::Fake(h) = &*self.0 {
            if let Ok(mut h) = h.lock() {
                h.unsynchronised = yes;
            }
        }
    }
}

/// The system's wall clock in unix milliseconds (0 before 1970). Only [`Clock::system`]
/// and the log edge read it.
pub fn wall_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the kernel says the clock is not synchronised (adjtimex, read only).
fn kernel_unsynchronised() -> bool {
    // SAFETY: an all-zero timex is valid; with `modes == 0` adjtimex only reads into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable timex for the call's duration.
    let state = unsafe { libc::adjtimex(&mut t) };
    state == libc::TIME_ERROR || (t.status & libc::STA_UNSYNC) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_before_2020_is_suspect() {
        let c = Clock::fake(0);
        assert!(c.suspect());
        c.set(PLAUSIBLE_SINCE_MS - 1, 0);
        assert!(c.suspect());
        c.set(PLAUSIBLE_SINCE_MS, 5);
        assert!(!c.suspect());
        c.set_unsynchronised(true);
        assert!(c.suspect());
        assert_eq!(c.mono_ms(), 5);
        // The system clock must at least answer.
        let s = Clock::system();
        let _ = s.suspect();
        assert!(s.now_ms() > PLAUSIBLE_SINCE_MS);
    }

    #[test]
    fn clones_share_hands() {
        let a = Clock::fake(1);
        let b = a.clone();
        a.set(2, 10);
        assert_eq!((b.now_ms(), b.mono_ms()), (2, 10));
    }
}
