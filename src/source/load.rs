//! `/proc/loadavg`: the 1-, 5- and 15-minute load averages.

/// Parses the first three fields of `/proc/loadavg` (`0.42 0.35 0.31 2/413 28841`).
/// All three must be finite, non-negative numbers, or there is no result at all.
pub fn parse_loadavg(text: &[u8]) -> Option<[f64; 3]> {
    let mut fields = std::str::from_utf8(text).ok()?.split_ascii_whitespace();
    let mut loads = [0.0; 3];
    for slot in &mut loads {
        let v: f64 = fields.next()?.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        *slot = v;
    }
    Some(loads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal() {
        assert_eq!(
            parse_loadavg(b"0.42 0.35 0.31 2/413 28841\n"),
            Some([0.42, 0.35, 0.31])
        );
        assert_eq!(parse_loadavg(b"12.00 7.50 3.25"), Some([12.0, 7.5, 3.25]));
    }

    #[test]
    fn fewer_fields() {
        assert_eq!(parse_loadavg(b"0.42 0.35\n"), None);
        assert_eq!(parse_loadavg(b"0.42"), None);
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(parse_loadavg(b""), None);
        assert_eq!(parse_loadavg(b"\n"), None);
        assert_eq!(parse_loadavg(b"not a loadavg"), None);
        assert_eq!(parse_loadavg(b"0.42 x 0.31"), None);
        assert_eq!(parse_loadavg(b"0.42 -1 0.31"), None);
        assert_eq!(parse_loadavg(b"NaN inf 0.31"), None);
        assert_eq!(parse_loadavg(b"0.42 0.35 \xff"), None);
    }

    #[test]
    fn huge_numbers() {
        assert_eq!(parse_loadavg(b"1e300 0 0"), Some([1e300, 0.0, 0.0]));
        assert_eq!(parse_loadavg(b"1e999 0 0"), None);
    }
}
