//! `/proc/stat`: busy and I/O-wait share of CPU time between two samples.

/// Index of `idle` among the counters.
const IDLE: usize = 3;
/// Index of `iowait` among the counters.
const IOWAIT: usize = 4;
/// Counters read: user nice system idle iowait irq softirq steal. `guest` and `guest_nice`
/// follow but are already included in user and nice, so they are not read.
const FIELDS: usize = 8;

/// The aggregate `cpu` line's counters, in USER_HZ ticks; counters an old kernel
/// does not print are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes([u64; FIELDS]);

/// Parses the first line of `/proc/stat` (`cpu  user nice system idle [iowait …]`).
/// At least the first four counters must be present.
pub fn parse_stat(text: &[u8]) -> Option<CpuTimes> {
    let line = text.split(|&b| b == b'\n').next()?;
    let mut fields = super::ascii::tokens(line);
    if fields.next()? != b"cpu" {
        return None;
    }
    let mut counters = [0u64; FIELDS];
    let mut n = 0;
    for (slot, field) in counters.iter_mut().zip(fields) {
        *slot = super::ascii::parse_u64(field)?;
        n += 1;
    }
    (n >= 4).then_some(CpuTimes(counters))
}

/// CPU shares between two samples, in percent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuPercent {
    /// 100 × (Δtotal − Δ(idle + iowait)) / Δtotal.
    pub usage: f64,
    /// 100 × Δiowait / Δtotal.
    pub iowait: f64,
}

/// Remembers the previous counters so consecutive samples can be turned into shares.
#[derive(Debug, Default)]
pub struct CpuDelta {
    prev: Option<CpuTimes>,
}

impl CpuDelta {
    /// Stores `now` and returns the shares since the previous counters. None on the first
    /// call, when no tick elapsed, or when any counter went backwards (a reset).
    pub fn update(&mut self, now: CpuTimes) -> Option<CpuPercent> {
        let prev = self.prev.replace(now)?;
        let mut delta = [0u64; FIELDS];
        for ((d, &n), &p) in delta.iter_mut().zip(&now.0).zip(&prev.0) {
            *d = n.checked_sub(p)?;
        }
        // u128: eight u64 deltas cannot overflow it.
        let total: u128 = delta.iter().map(|&d| u128::from(d)).sum();
        if total == 0 {
            return None;
        }
        let idle_all = u128::from(delta[IDLE]) + u128::from(delta[IOWAIT]);
        let total_f = total as f64;
        Some(CpuPercent {
            usage: 100.0 * (total - idle_all) as f64 / total_f,
            iowait: 100.0 * delta[IOWAIT] as f64 / total_f,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(line: &str) -> CpuTimes {
        parse_stat(line.as_bytes()).expect("parses")
    }

    #[test]
    fn parses_full_line_and_ignores_guest() {
        let t = times("cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 2 3 4\n");
        assert_eq!(t, CpuTimes([10, 20, 30, 40, 50, 60, 70, 80]));
    }

    #[test]
    fn fewer_fields_are_zero() {
        assert_eq!(times("cpu 1 2 3 4"), CpuTimes([1, 2, 3, 4, 0, 0, 0, 0]));
        assert_eq!(
            times("cpu 1 2 3 4 5 6 7"),
            CpuTimes([1, 2, 3, 4, 5, 6, 7, 0])
        );
        assert_eq!(parse_stat(b"cpu 1 2 3"), None);
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"\n"), None);
        assert_eq!(parse_stat(b"cpu0 1 2 3 4"), None);
        assert_eq!(parse_stat(b"intr 1 2 3 4\ncpu 1 2 3 4"), None);
        assert_eq!(parse_stat(b"cpu 1 2 x 4"), None);
        assert_eq!(parse_stat(b"cpu 1 2 -3 4"), None);
        assert_eq!(parse_stat(b"cpu 1 2 \xff 4"), None);
        assert_eq!(parse_stat(b"\xff\xfe\x00garbage"), None);
    }

    #[test]
    fn huge_numbers() {
        let max = u64::MAX;
        assert_eq!(
            times(&format!(
                "cpu {max} {max} {max} {max} {max} {max} {max} {max}"
            )),
            CpuTimes([max; FIELDS])
        );
        assert_eq!(parse_stat(b"cpu 1 2 3 18446744073709551616"), None);

        // Near-maximal counters must not overflow the total.
        let mut d = CpuDelta::default();
        assert_eq!(d.update(CpuTimes([0; FIELDS])), None);
        let p = d.update(CpuTimes([max; FIELDS])).expect("shares");
        assert_eq!(p.usage, 75.0);
        assert_eq!(p.iowait, 12.5);
    }

    #[test]
    fn shares_between_samples() {
        let mut d = CpuDelta::default();
        assert_eq!(d.update(times("cpu 100 0 100 800 0 0 0 0")), None);
        // Δ: user 30, nice 0, system 20, idle 40, iowait 10 → total 100, idle_all 50.
        let p = d
            .update(times("cpu 130 0 120 840 10 0 0 0"))
            .expect("shares");
        assert_eq!(
            p,
            CpuPercent {
                usage: 50.0,
                iowait: 10.0
            }
        );
    }

    #[test]
    fn no_ticks_no_sample() {
        let mut d = CpuDelta::default();
        d.update(times("cpu 1 2 3 4"));
        assert_eq!(d.update(times("cpu 1 2 3 4")), None);
    }

    #[test]
    fn counter_going_backwards_resets() {
        let mut d = CpuDelta::default();
        d.update(times("cpu 100 0 100 800 10"));
        assert_eq!(d.update(times("cpu 5 0 5 50 1")), None);
        // The new counters were stored: the next delta is against them.
        let p = d.update(times("cpu 10 0 5 55 1")).expect("shares");
        assert_eq!(
            p,
            CpuPercent {
                usage: 50.0,
                iowait: 0.0
            }
        );
        // A single counter going backwards also counts as a reset.
        assert_eq!(d.update(times("cpu 20 0 5 60 0")), None);
    }
}
