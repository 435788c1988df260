//! `Retry-After` from a receiver (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate.
//! Input: 8 bytes of `now` (unix ms, little endian), then the header value.
//! Invariants: no allocation; delay-seconds are exact; a date that exists in the calendar
//! reads back as the same date and time, and the delay is its distance from `now`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::deliver::retry::parse_retry_after;
use tocsin::fuzzing::parse_imf_fixdate;
use tocsin::util::civil_from_secs;
use tocsin_fuzz::no_alloc;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn days_in_month(y: i64, m: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let now = u64::from_le_bytes(*now);
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let got = no_alloc("parse_retry_after", || parse_retry_after(value, now));
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(secs) = v.parse::<u64>() {
            assert_eq!(got, Some(secs.saturating_mul(1000)), "{value:?}");
        }
        return;
    }
    let at = no_alloc("parse_imf_fixdate", || parse_imf_fixdate(v));
    assert_eq!(
        got,
        at.map(|a| a.saturating_mul(1000).saturating_sub(now)),
        "{value:?}"
    );
    let Some(at) = at else {
        return;
    };
    // What the text says, read independently.
    let t: Vec<&str> = v.split_ascii_whitespace().collect();
    assert_eq!(t.len(), 6, "accepted {value:?}");
    assert_eq!(t[5], "GMT", "accepted {value:?}");
    let day: u32 = t[1].parse().expect("day");
    let month = MONTHS.iter().position(|m| *m == t[2]).expect("month") as u32 + 1;
    let year: i64 = t[3].parse().expect("year");
    let hms: Vec<u64> = t[4].split(':').map(|x| x.parse().expect("h:m:s")).collect();
    assert_eq!(hms.len(), 3, "accepted {value:?}");
    if hms[2] < 60 && day <= days_in_month(year, month) {
        let ((y, m, d), (h, mi, s)) = civil_from_secs(at);
        assert_eq!(
            (y, m, d, h, mi, s),
            (year, month, day, hms[0], hms[1], hms[2]),
            "{value:?} read as {at}"
        );
    }
});
