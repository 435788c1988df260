//! The retry policy, pure: what an outcome means, and how long to wait before the next try.

/// What a response status means for delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// Worth another attempt: 408, 429, 5xx except 501.
    Retry,
    /// Anything else: the receiver will not take it, retrying would not help.
    Final,
}

/// Classifies an HTTP status.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 => Verdict::Retry,
        501 => Verdict::Final,
        500..=599 => Verdict::Retry,
        _ => Verdict::Final,
    }
}

/// Settings of one webhook's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// Minimum wait between attempts.
    pub interval_ms: u64,
    /// Cap on an honoured `Retry-After`.
    pub retry_after_max_ms: u64,
}

impl RetryPolicy {
    /// The wait before the next attempt. `jitter` (0..=u32::MAX) adds 0-25 % to the interval
    /// so that a fleet never retries in lockstep; a `Retry-After` (already in ms) longer than
    /// that is honoured up to `retry_after_max_ms`.
    pub fn delay_ms(&self, retry_after_ms: Option<u64>, jitter: u32) -> u64 {
        let extra = self.interval_ms / 4 * u64::from(jitter) / u64::from(u32::MAX);
        let base = self.interval_ms + extra;
        match retry_after_ms {
            Some(ra) => base.max(ra.min(self.retry_after_max_ms)),
            None => base,
        }
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now_ms`. Returns milliseconds.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(|s| s.saturating_mul(1000));
    }
    let at = parse_imf_fixdate(v)?;
    Some(at.saturating_mul(1000).saturating_sub(now_ms))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → unix seconds.
pub(crate) fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let mut it = s.split_ascii_whitespace();
    let _weekday = it.next()?.strip_suffix(',')?;
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    // The year is four digits (RFC 9110 §5.6.7): a longer one would overflow the day count.
    if hms.next().is_some()
        || !(0..=9999).contains(&year)
        || it.next()? != "GMT"
        || it.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    let days = crate::util::days_from_civil(year, month, day);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision for every status code 100-599, written out by range.
    #[test]
    fn every_status_code() {
        for code in 100..=599u16 {
            let want = match code {
                200..=299 => Verdict::Delivered,
                408 | 429 => Verdict::Retry,
                500 | 502..=599 => Verdict::Retry,
                _ => Verdict::Final,
            };
            assert_eq!(classify(code), want, "status {code}");
        }
        assert_eq!(classify(501), Verdict::Final);
        assert_eq!(classify(404), Verdict::Final);
        assert_eq!(classify(301), Verdict::Final);
        assert_eq!(classify(503), Verdict::Retry);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let p = RetryPolicy {
            retries: 2,
            interval_ms: 2000,
            retry_after_max_ms: 300_000,
        };
        assert_eq!(p.delay_ms(None, 0), 2000);
        assert_eq!(p.delay_ms(None, u32::MAX), 2500);
        let mid = p.delay_ms(None, u32::MAX / 2);
        assert!((2249..=2251).contains(&mid), "{mid}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy {
            retries: 2,
            interval_ms: 2000,
            retry_after_max_ms: 60_000,
        };
        assert_eq!(p.delay_ms(Some(10_000), 0), 10_000);
        assert_eq!(p.delay_ms(Some(3_600_000), 0), 60_000);
        assert_eq!(
            p.delay_ms(Some(500), 0),
            2000,
            "never shorter than the interval"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(0));
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_767_000),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800_000),
            Some(0),
            "a date in the past means now"
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
    }

    /// Found by fuzzing (retry_after): a time of more than three fields was read as its
    /// first three (`08:49:23:59:6060` as 08:49:23).
    #[test]
    fn an_imf_fixdate_with_more_than_three_time_fields_is_refused() {
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Jan 1994 08:49:23:59:6060 GMT"),
            None
        );
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37: GMT"), None);
    }

    /// Found by fuzzing (retry_after): a year of many digits overflowed the day count and
    /// gave a wrong time (or, with overflow checks, a panic).
    #[test]
    fn an_imf_fixdate_year_beyond_four_digits_is_refused() {
        assert_eq!(
            parse_imf_fixdate(", 06 Nov 1994666669959451994 0:49:6 GMT"),
            None
        );
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 9223372036854775807 08:49:37 GMT"),
            None
        );
        assert_eq!(
            parse_imf_fixdate("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }
}
