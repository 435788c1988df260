//! Civil dates in UTC, both ways (Howard Hinnant's `days_from_civil` and
//! `civil_from_days`, proleptic Gregorian calendar).

use core::fmt::Write as _;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds → ((year, month, day), (hour, minute, second)), UTC.
pub fn civil_from_secs(secs: u64) -> ((i64, u32, u32), (u64, u64, u64)) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    ((y, m, d), (rem / 3600, rem % 3600 / 60, rem % 60))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for unix milliseconds.
pub fn iso8601(ms: u64) -> heapless::String<24> {
    let mut s = heapless::String::new();
    let (date, time) = civil_from_secs(ms / 1000);
    let _ = write!(
        s,
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.0, date.1, date.2, time.0, time.1, time.2
    );
    s
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC without a zone designator: the shape of Apache
/// HertzBeat's `gmtCreate` (a `LocalDateTime`; tocsin fills it with UTC, the device has
/// no reliable zone).
pub fn utc_naive(ms: u64) -> heapless::String<24> {
    let mut s = iso8601(ms);
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400_000).as_str(), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_339_813_999).as_str(), "2026-11-22T09:30:13Z");
        assert_eq!(utc_naive(1_645_795_933_000).as_str(), "2022-02-25T13:32:13");
    }

    #[test]
    fn civil_days_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 22), 20_779);
        for days in [0i64, 59, 60, 11_016, 11_017, 20_779, 2_932_896] {
            let ((y, m, d), _) = civil_from_secs(days as u64 * 86_400);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
