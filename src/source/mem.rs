//! `/proc/meminfo`: memory and swap usage.

/// The `/proc/meminfo` fields tocsin uses, in kB; None when absent or unparsable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub mem_total: Option<u64>,
    /// `MemFree`.
    pub mem_free: Option<u64>,
    /// `MemAvailable` (kernels ≥ 3.14).
    pub mem_available: Option<u64>,
    /// `Buffers`.
    pub buffers: Option<u64>,
    /// `Cached`.
    pub cached: Option<u64>,
    /// `SwapTotal`.
    pub swap_total: Option<u64>,
    /// `SwapFree`.
    pub swap_free: Option<u64>,
}

/// Parses `/proc/meminfo` (`MemTotal:        8038048 kB` lines). Never fails: fields that
/// are missing or unparsable stay None. The first occurrence of a key wins.
pub fn parse_meminfo(text: &[u8]) -> MemInfo {
    let mut info = MemInfo::default();
    // The seven keys come in the first 20 or so of its 50-odd lines: stop at the last.
    let mut left = 7;
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let slot = match &line[..colon] {
            b"MemTotal" => &mut info.mem_total,
            b"MemFree" => &mut info.mem_free,
            b"MemAvailable" => &mut info.mem_available,
            b"Buffers" => &mut info.buffers,
            b"Cached" => &mut info.cached,
            b"SwapTotal" => &mut info.swap_total,
            b"SwapFree" => &mut info.swap_free,
            _ => continue,
        };
        if slot.is_none() {
            let value = super::ascii::tokens(&line[colon + 1..]).next();
            *slot = value.and_then(super::ascii::parse_u64);
            if slot.is_some() {
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
    }
    info
}

impl MemInfo {
    /// `MemAvailable` in kB. Kernels before 3.14 lack it; there it is estimated as
    /// MemFree + Buffers + Cached, the "free + buffers/cache" that `free` showed then.
    pub fn available_kb(&self) -> Option<u64> {
        self.mem_available.or_else(|| {
            self.mem_free?
                .checked_add(self.buffers?)?
                .checked_add(self.cached?)
        })
    }

    /// `mem.used_percent` = 100 × (MemTotal − available) / MemTotal; None when MemTotal is 0.
    pub fn used_percent(&self) -> Option<f64> {
        let total = self.mem_total.filter(|&t| t > 0)?;
        let used = total.saturating_sub(self.available_kb()?);
        Some(100.0 * used as f64 / total as f64)
    }

    /// `mem.available_bytes` = available × 1024.
    pub fn available_bytes(&self) -> Option<f64> {
        Some(self.available_kb()? as f64 * 1024.0)
    }

    /// `swap.used_percent` = 100 × (SwapTotal − SwapFree) / SwapTotal; None without swap.
    pub fn swap_used_percent(&self) -> Option<f64> {
        let total = self.swap_total.filter(|&t| t > 0)?;
        let used = total.saturating_sub(self.swap_free?);
        Some(100.0 * used as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODERN: &str = "MemTotal:        8000000 kB\n\
                          MemFree:          900000 kB\n\
                          MemAvailable:    6000000 kB\n\
                          Buffers:          300000 kB\n\
                          Cached:          4000000 kB\n\
                          SwapCached:         1024 kB\n\
                          SwapTotal:       2000000 kB\n\
                          SwapFree:        1500000 kB\n\
                          HugePages_Total:       0\n";

    #[test]
    fn normal() {
        let m = parse_meminfo(MODERN.as_bytes());
        assert_eq!(m.mem_total, Some(8_000_000));
        assert_eq!(m.used_percent(), Some(25.0));
        assert_eq!(m.available_bytes(), Some(6_000_000.0 * 1024.0));
        assert_eq!(m.swap_used_percent(), Some(25.0));
    }

    #[test]
    fn without_mem_available_estimates_it() {
        // A 3.10 kernel: no MemAvailable line.
        let m = parse_meminfo(
            b"MemTotal:        1000000 kB\nMemFree:          100000 kB\n\
              Buffers:           50000 kB\nCached:           250000 kB\n\
              SwapCached:            0 kB\n",
        );
        assert_eq!(m.mem_available, None);
        assert_eq!(m.available_kb(), Some(400_000));
        assert_eq!(m.used_percent(), Some(60.0));
        assert_eq!(m.available_bytes(), Some(400_000.0 * 1024.0));
    }

    #[test]
    fn fewer_fields() {
        let m = parse_meminfo(b"MemTotal: 1000 kB\nMemFree: 100 kB\n");
        assert_eq!(m.available_kb(), None);
        assert_eq!(m.used_percent(), None);
        assert_eq!(m.available_bytes(), None);
        assert_eq!(m.swap_used_percent(), None);

        let m = parse_meminfo(b"MemAvailable: 100 kB\n");
        assert_eq!(m.used_percent(), None);
        assert_eq!(m.available_bytes(), Some(102_400.0));
    }

    #[test]
    fn no_swap_no_sample() {
        let m = parse_meminfo(b"SwapTotal: 0 kB\nSwapFree: 0 kB\n");
        assert_eq!(m.swap_used_percent(), None);
        let m = parse_meminfo(b"SwapTotal: 100 kB\n");
        assert_eq!(m.swap_used_percent(), None);
    }

    #[test]
    fn zero_total_no_sample() {
        let m = parse_meminfo(b"MemTotal: 0 kB\nMemAvailable: 0 kB\n");
        assert_eq!(m.used_percent(), None);
        assert_eq!(m.available_bytes(), Some(0.0));
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(parse_meminfo(b""), MemInfo::default());
        assert_eq!(
            parse_meminfo(b"\xff\xfe\n::\n: 5 kB\nMemTotal:\n"),
            MemInfo::default()
        );
        let m = parse_meminfo(b"MemTotal: lots kB\nMemAvailable: -5 kB\n");
        assert_eq!(m, MemInfo::default());
        // A bad line does not spoil the others.
        let m = parse_meminfo(b"\xffjunk\nMemTotal: 100 kB\nMemAvailable: 50 kB\n");
        assert_eq!(m.used_percent(), Some(50.0));
    }

    #[test]
    fn huge_numbers() {
        let m = parse_meminfo(b"MemTotal: 18446744073709551615 kB\nMemAvailable: 0 kB\n");
        assert_eq!(m.used_percent(), Some(100.0));
        let m = parse_meminfo(b"MemTotal: 18446744073709551616 kB\nMemAvailable: 0 kB\n");
        assert_eq!(m.used_percent(), None);
        // The fallback sum overflowing u64 gives no estimate rather than a wrong one.
        let m = parse_meminfo(b"MemFree: 18446744073709551615 kB\nBuffers: 1 kB\nCached: 0 kB\n");
        assert_eq!(m.available_kb(), None);
    }

    #[test]
    fn available_above_total_is_zero_used() {
        let m = parse_meminfo(b"MemTotal: 100 kB\nMemAvailable: 150 kB\n");
        assert_eq!(m.used_percent(), Some(0.0));
        let m = parse_meminfo(b"SwapTotal: 100 kB\nSwapFree: 150 kB\n");
        assert_eq!(m.swap_used_percent(), Some(0.0));
    }

    #[test]
    fn first_occurrence_wins() {
        let m = parse_meminfo(b"MemTotal: 100 kB\nMemTotal: 200 kB\n");
        assert_eq!(m.mem_total, Some(100));
    }
}
