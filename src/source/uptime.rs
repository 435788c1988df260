//! `/proc/uptime`: seconds since boot.

/// Parses the first field of `/proc/uptime` (`183204.52 701932.11`): a finite,
/// non-negative number of seconds.
pub fn parse_uptime(text: &[u8]) -> Option<f64> {
    let first = std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .next()?;
    let v: f64 = first.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal() {
        assert_eq!(parse_uptime(b"183204.52 701932.11\n"), Some(183204.52));
    }

    #[test]
    fn fewer_fields() {
        assert_eq!(parse_uptime(b"35.5"), Some(35.5));
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(parse_uptime(b""), None);
        assert_eq!(parse_uptime(b"  \n"), None);
        assert_eq!(parse_uptime(b"up 3 days"), None);
        assert_eq!(parse_uptime(b"-1.0 2.0"), None);
        assert_eq!(parse_uptime(b"nan 2.0"), None);
        assert_eq!(parse_uptime(b"\xff\xfe"), None);
    }

    #[test]
    fn huge_numbers() {
        assert_eq!(
            parse_uptime(b"18446744073709551616.99 0"),
            Some(1.8446744073709552e19)
        );
        assert_eq!(parse_uptime(b"1e400 0"), None);
    }
}
