//! Byte-level helpers for the kernel's text files: tokens and decimal counters, without
//! a UTF-8 check of text whose every byte that matters is ASCII.

/// The tokens of `line` between runs of ASCII whitespace.
pub(super) fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
}

/// A decimal counter as the kernel prints it: one or more ASCII digits, no sign, at most
/// `u64::MAX`. Anything else is None.
pub(super) fn parse_u64(token: &[u8]) -> Option<u64> {
    if token.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &b in token {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_digits_only_and_fit_u64() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        for bad in [&b""[..], b"+1", b"-1", b"1a", b" 1", b"1.0", b"\xff"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_split_on_runs_of_ascii_whitespace() {
        let got: Vec<&[u8]> = tokens(b"  cpu  1\t2 \x0c3\n").collect();
        assert_eq!(got, [&b"cpu"[..], b"1", b"2", b"3"]);
        assert_eq!(tokens(b" \t ").count(), 0);
    }
}
