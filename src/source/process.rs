//! Processes: `/proc/PID/stat` parsed into name, state, CPU ticks and resident pages, and
//! the per-rule state that turns CPU ticks into a percentage.

use crate::limits::MAX_PIDS_PER_PROCESS_RULE;

/// What tocsin reads from one `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat<'a> {
    /// The comm (at most 15 bytes; the kernel truncates), as in `status`'s `Name:`.
    pub comm: &'a str,
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: u8,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Resident set size in pages (the same count `status` prints as VmRSS, in kB).
    pub rss_pages: u64,
}

impl ProcStat<'_> {
    /// A zombie or dead task is not a running service.
    pub fn alive(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid … utime stime … rss …`. The comm may
/// hold spaces and parentheses, so it runs from the first `(` to the *last* `)`.
/// Fields after it are counted from `state` = field 3: utime 14, stime 15, rss 24.
pub fn parse_stat(text: &[u8]) -> Option<ProcStat<'_>> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = std::str::from_utf8(text.get(open + 1..close)?).ok()?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // `fields` now starts at field 4 (ppid).
    let mut nth = |skip: usize| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    let utime = nth(14 - 4)?;
    let stime = nth(0)?;
    let rss = nth(24 - 16)?;
    Some(ProcStat {
        comm,
        state,
        ticks: utime.checked_add(stime)?,
        rss_pages: rss,
    })
}

/// Parses a pidfile: a positive decimal PID, optionally followed by a newline.
pub fn parse_pidfile(text: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(text).ok()?.trim();
    s.parse().ok().filter(|&p: &u32| p > 0)
}

/// Whether a directory entry name of /proc is a PID.
pub fn is_pid(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(u8::is_ascii_digit)
}

/// The totals of one process rule in one cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Matching live processes.
    pub count: u64,
    /// Their resident pages.
    pub rss_pages: u64,
}

/// CPU ticks of the processes one rule matched, previous and current cycle, in
/// fixed-size tables ([`MAX_PIDS_PER_PROCESS_RULE`]). Only processes present in both
/// cycles contribute, so one that starts or exits never shows up as a jump.
#[derive(Clone, Debug, Default)]
pub struct CpuTracker {
    prev: heapless::Vec<(u32, u64), MAX_PIDS_PER_PROCESS_RULE>,
    cur: heapless::Vec<(u32, u64), MAX_PIDS_PER_PROCESS_RULE>,
    prev_ms: Option<u64>,
    /// Ticks gained this cycle by processes also seen in the previous one.
    delta: u64,
}

impl CpuTracker {
    /// Starts a cycle.
    pub fn begin(&mut self) {
        self.cur.clear();
        self.delta = 0;
    }

    /// Records one matching process.
    pub fn add(&mut self, pid: u32, ticks: u64) {
        if let Some(&(_, before)) = self.prev.iter().find(|(p, _)| *p == pid) {
            // A PID reused by a new process has fewer ticks: count nothing for it.
            self.delta += ticks.saturating_sub(before);
        }
        // Full: the process is counted but its CPU time is not tracked (documented).
        let _ = self.cur.push((pid, ticks));
    }

    /// Ends the cycle at `now_ms` (monotonic) and returns the CPU share since the
    /// previous cycle, in percent of one CPU; `clk_tck` is ticks per second.
    pub fn end(&mut self, now_ms: u64, clk_tck: u64) -> Option<f64> {
        std::mem::swap(&mut self.prev, &mut self.cur);
        let prev_ms = self.prev_ms.replace(now_ms)?;
        if now_ms <= prev_ms || clk_tck == 0 {
            return None;
        }
        let cpu_seconds = self.delta as f64 / clk_tck as f64;
        let seconds = (now_ms - prev_ms) as f64 / 1000.0;
        Some(100.0 * cpu_seconds / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &[u8] = b"1234 (dnsmasq) S 1 1234 1234 0 -1 4194560 1021 0 0 0 \
        150 50 0 0 20 0 1 0 2345 5484544 345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0\n";

    #[test]
    fn parses_stat() {
        let s = parse_stat(STAT).expect("parses");
        assert_eq!(s.comm, "dnsmasq");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ticks, 200);
        assert_eq!(s.rss_pages, 345);
        assert!(s.alive());
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let text = b"77 (my (odd) prog) Z 1 0 0 0 0 0 0 0 0 0 3 4 0 0 0 0 0 0 0 0 9 0\n";
        let s = parse_stat(text).expect("parses");
        assert_eq!(s.comm, "my (odd) prog");
        assert_eq!((s.ticks, s.rss_pages), (7, 9));
        assert!(!s.alive());
    }

    #[test]
    fn short_or_garbage_stat() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat(b"1 x) S"), None);
        assert_eq!(
            parse_stat(b"1 (\xff) S 1 0 0 0 0 0 0 0 0 0 3 4 0 0 0 0 0 0 0 0 9 0"),
            None
        );
    }

    #[test]
    fn pidfiles() {
        assert_eq!(parse_pidfile(b"1234\n"), Some(1234));
        assert_eq!(parse_pidfile(b" 42 "), Some(42));
        assert_eq!(parse_pidfile(b"0\n"), None);
        assert_eq!(parse_pidfile(b"-1\n"), None);
        assert_eq!(parse_pidfile(b""), None);
        assert_eq!(parse_pidfile(b"12ab"), None);
    }

    #[test]
    fn pid_names() {
        assert!(is_pid(b"1"));
        assert!(is_pid(b"4242"));
        assert!(!is_pid(b"self"));
        assert!(!is_pid(b""));
        assert!(!is_pid(b"12a"));
    }

    #[test]
    fn cpu_share_counts_only_surviving_processes() {
        let mut t = CpuTracker::default();
        t.begin();
        t.add(10, 100);
        t.add(11, 500);
        assert_eq!(t.end(1000, 100), None);
        t.begin();
        t.add(10, 150); // +50 ticks = 0.5 s
        t.add(12, 9999); // new: not counted
                         // 11 exited: not counted.
        assert_eq!(t.end(3000, 100), Some(25.0)); // 0.5 s of CPU in 2 s
        t.begin();
        t.add(12, 10); // PID reuse or reset: counts nothing
        assert_eq!(t.end(4000, 100), Some(0.0));
    }
}
