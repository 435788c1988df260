//! The agent's cycle timer: a `timerfd` on `CLOCK_MONOTONIC` in the runtime's epoll set,
//! so one cycle is one wake-up.
//!
//! tokio's own timers live in a hierarchical wheel: a sleep of more than 64 ms is filed in
//! a coarser level and the runtime wakes at the start of its slot to move it down, then
//! again at the deadline — two wake-ups per cycle where one does, and on a router a
//! wake-up costs more than the cycle's reading and evaluating. The kernel keeps a
//! timerfd's period itself, on the grid of the first tick (a late cycle does not move
//! the next one; missed ones are skipped). Where no timerfd can be made (a seccomp
//! filter without it) the ticker falls back to tokio's interval.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// Ticks every period, the first at once (as `tokio::time::interval`).
pub(super) enum Ticker {
    Timerfd(AsyncFd<OwnedFd>),
    Tokio(tokio::time::Interval),
}

impl Ticker {
    pub(super) fn new(interval_ms: u64) -> Ticker {
        let period = Duration::from_millis(interval_ms.max(1));
        match timerfd(period) {
            Ok(fd) => Ticker::Timerfd(fd),
            Err(e) => {
                crate::warn!(
                    "no timerfd ({e}): the cycle timer is tokio's (one more wake-up per cycle)"
                );
                let mut t = tokio::time::interval(period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Ticker::Tokio(t)
            }
        }
    }

    /// The next tick.
    pub(super) async fn tick(&mut self) {
        match self {
            Ticker::Tokio(t) => {
                t.tick().await;
            }
            Ticker::Timerfd(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    // The reactor is gone (the runtime shuts down): never tick again.
                    return std::future::pending().await;
                };
                let mut expirations = [0u8; 8];
                // SAFETY: reads at most 8 bytes into the 8-byte buffer from a descriptor
                // this ticker owns; a timerfd read is exactly its 8-byte expiration count.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                // Either way the readiness is spent: after a read of the count the next
                // expiry is a new edge (tokio keeps one that came in between), after
                // EAGAIN it was stale. Clearing it now saves a read that would fail.
                ready.clear_ready();
                if n == 8 {
                    return;
                }
            },
        }
    }
}

/// A non-blocking periodic timerfd whose first expiry is now.
fn timerfd(period: Duration) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain system call; the result is checked before use.
    let raw = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just returned to us and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // `as _`: time_t's alias is deprecated on musl targets (its width changes there).
    let spec = |d: Duration| libc::timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    };
    let its = libc::itimerspec {
        it_interval: spec(period),
        // 1 ns: the first tick at once (zero would disarm the timer).
        it_value: spec(Duration::from_nanos(1)),
    };
    // SAFETY: `fd` is a timerfd, `its` a valid itimerspec; the old value is not asked for.
    if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &its, std::ptr::null_mut()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the descriptor stays open and
    // the same for as long as it is registered.
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn ticks_at_once_then_every_period_from_a_timerfd() {
        let mut t = Ticker::new(50);
        assert!(matches!(t, Ticker::Timerfd(_)), "a timerfd on Linux");
        let t0 = Instant::now();
        for _ in 0..5 {
            t.tick().await;
        }
        // The first at once, then four periods of 50 ms: never before 200 ms (a kernel
        // timer does not fire early; how late it fires depends on the machine's load).
        assert!(
            t0.elapsed() >= Duration::from_millis(199),
            "{:?}",
            t0.elapsed()
        );
    }
}
