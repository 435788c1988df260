//! The /proc and /sys parsers, one target: the first byte picks the file, the rest is its
//! text (a kernel's, or a fixture tree's under `[agent] root`). 0 /proc/stat, 1 meminfo,
//! 2 loadavg, 3 uptime, 4 mounts, 5 net/dev, 6 a thermal or hwmon input, 7 conntrack
//! count or max, 8 /proc/PID/stat, 9 a pidfile, 10 an exec probe's output.
//! (tocsin reads no /proc/PID/status: the process stat line carries what it needs.)
//! Invariants: none allocates (they run every cycle, and a cycle makes no heap
//! allocation); what each returns is what the text says, within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::fuzzing as f;
use tocsin::limits::{MAX_DIM_VALUE_LEN, MAX_MOUNTS};
use tocsin::source::{exec, net, process, temp};
use tocsin_fuzz::no_alloc;

fn first_token(text: &[u8]) -> Option<&str> {
    std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .next()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => {
            if no_alloc("cpu stat", || f::parse_cpu_stat(text)) {
                // Counters are ASCII digits; bytes after them are not looked at.
                let line = text.split(|&b| b == b'\n').next().unwrap_or(b"");
                let mut t = line
                    .split(u8::is_ascii_whitespace)
                    .filter(|t| !t.is_empty());
                assert_eq!(t.next(), Some(&b"cpu"[..]));
                let digits = |x: &[u8]| {
                    std::str::from_utf8(x)
                        .is_ok_and(|x| !x.starts_with('+') && x.parse::<u64>().is_ok())
                };
                assert!(t.take(4).all(digits), "{line:?}");
            }
        }
        1 => {
            let m = no_alloc("meminfo", || f::parse_meminfo(text));
            let keys = [
                "MemTotal",
                "MemFree",
                "MemAvailable",
                "Buffers",
                "Cached",
                "SwapTotal",
                "SwapFree",
            ];
            for (key, v) in keys.iter().zip(m) {
                if let Some(v) = v {
                    // The value is on a line of that key.
                    // (Bytes: what follows the value need not be UTF-8.)
                    let digits = v.to_string();
                    let found = text.split(|&b| b == b'\n').any(|l| {
                        l.iter().position(|&b| b == b':').is_some_and(|c| {
                            &l[..c] == key.as_bytes()
                                && l[c + 1..]
                                    .windows(digits.len())
                                    .any(|w| w == digits.as_bytes())
                        })
                    });
                    assert!(found, "{key} = {v} not in the text");
                }
            }
        }
        2 => {
            if let Some(l) = no_alloc("loadavg", || f::parse_loadavg(text)) {
                assert!(l.iter().all(|v| v.is_finite() && *v >= 0.0), "{l:?}");
            }
        }
        3 => {
            if let Some(v) = no_alloc("uptime", || f::parse_uptime(text)) {
                assert!(v.is_finite() && v >= 0.0, "{v}");
            }
        }
        4 => {
            let mounts = no_alloc("mounts", || f::parse_mounts(text));
            assert!(mounts.len() <= MAX_MOUNTS);
            for (i, (point, _)) in mounts.iter().enumerate() {
                assert!(point.starts_with('/'), "{point:?}");
                assert!(point.len() <= MAX_DIM_VALUE_LEN);
                assert!(
                    mounts[..i].iter().all(|(p, _)| p != point),
                    "{point:?} twice"
                );
            }
        }
        5 => {
            let mut seen = 0usize;
            no_alloc("net/dev", || {
                net::parse_net_dev(text, |name, c| {
                    seen += 1;
                    assert!(!name.is_empty() && name.len() <= MAX_DIM_VALUE_LEN);
                    assert!(!name.contains(':') && name == name.trim(), "{name:?}");
                    let _ = c;
                })
            });
            assert!(seen <= text.split(|&b| b == b'\n').count());
        }
        6 => {
            if let Some(v) = no_alloc("millidegrees", || temp::parse_millidegrees(text)) {
                let milli: i64 = std::str::from_utf8(text).unwrap().trim().parse().unwrap();
                assert_eq!(v, milli as f64 / 1000.0);
            }
        }
        7 => {
            if let Some(v) = no_alloc("conntrack", || f::parse_number(text)) {
                assert!(v.is_finite());
                assert_eq!(first_token(text).and_then(|t| t.parse().ok()), Some(v));
            }
        }
        8 => {
            if let Some(s) = no_alloc("process stat", || process::parse_stat(text)) {
                let open = text.iter().position(|&b| b == b'(').unwrap();
                let close = text.iter().rposition(|&b| b == b')').unwrap();
                assert_eq!(s.comm.as_bytes(), &text[open + 1..close]);
                assert!(text[close + 1..].contains(&s.state));
            }
        }
        9 => {
            if let Some(pid) = no_alloc("pidfile", || process::parse_pidfile(text)) {
                assert!(pid > 0);
                let digits = std::str::from_utf8(text).unwrap().trim();
                let digits = digits.trim_start_matches('+').trim_start_matches('0');
                assert_eq!(digits, pid.to_string());
            }
        }
        _ => {
            if let Some(v) = no_alloc("exec output", || exec::parse_output(text)) {
                assert!(v.is_finite());
            }
        }
    }
});
