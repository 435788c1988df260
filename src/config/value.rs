//! Parsers for the small languages inside config strings: durations and conditions (URLs:
//! [`crate::deliver::url`]).
//! Pure functions: text in, value or message out.

use crate::limits::{MAX_DURATION_MS, MIN_DURATION_MS};
use crate::rule::{Condition, Op};

/// Parses `"100ms"`, `"5s"`, `"2m"`, `"1h"`, `"1m30s"` into milliseconds, within
/// [`MIN_DURATION_MS`]..=[`MAX_DURATION_MS`].
///
/// # Errors
/// A message naming what is wrong, for a diagnostic.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid duration `{s}`: expected a number with a unit (ms, s, m, h), like \"5s\" or \"1m30s\"")
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if total < MIN_DURATION_MS {
        return Err(format!("duration `{s}` is too short: the minimum is 100ms"));
    }
    if total > MAX_DURATION_MS {
        return Err(format!("duration `{s}` is too long: the maximum is 168h"));
    }
    Ok(total)
}

/// Parses a condition such as `"> 95"`, `">=0.5"`, `"== 1"`.
///
/// # Errors
/// A message naming what is wrong, for a diagnostic.
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let t = s.trim();
    let (op, rest) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ]
    .into_iter()
    .find_map(|(p, op)| t.strip_prefix(p).map(|r| (op, r)))
    .ok_or_else(|| {
        format!("invalid condition `{s}`: expected an operator (> >= < <= == !=) and a number, like \"> 90\"")
    })?;
    let num = rest.trim();
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| {
            v.is_finite() && !num.is_empty() && !num.starts_with(['+', 'i', 'I', 'n', 'N'])
        })
        .ok_or_else(|| format!("invalid condition `{s}`: `{num}` is not a finite number"))?;
    Ok(Condition { op, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ms) in [
            ("100ms", 100),
            ("5s", 5000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            (" 10s ", 10_000),
        ] {
            assert_eq!(parse_duration(s), Ok(ms), "{s}");
        }
        for s in [
            "",
            "5",
            "s",
            "5 s",
            "5sec",
            "-5s",
            "99ms",
            "1.5s",
            "200h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn conditions() {
        let c = parse_condition("> 95").unwrap();
        assert_eq!((c.op, c.value), (Op::Gt, 95.0));
        assert_eq!(parse_condition(">=0.5").unwrap().op, Op::Ge);
        assert_eq!(parse_condition("<= -3").unwrap().value, -3.0);
        assert_eq!(parse_condition("== 1").unwrap().op, Op::Eq);
        assert_eq!(parse_condition("!=0").unwrap().op, Op::Ne);
        assert_eq!(parse_condition("< 1e3").unwrap().value, 1000.0);
        for s in [
            "95", "=> 3", "> ", "> abc", "> inf", "> NaN", "~ 3", ">> 3", "> +5",
        ] {
            assert!(parse_condition(s).is_err(), "{s} should be rejected");
        }
    }
}
