//! The one way a test skips when a tool or a privilege it needs is missing: loudly, and
//! never under CI.
//!
//! Self-contained (std only), so that cross/bench/fleet.rs can include it with `#[path]`
//! beside am.rs, which skips through it.

use std::io::Write as _;

/// Whether this runs under CI: the environment variable `CI` is `true`.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

/// Skips the calling test because of `reason` (what is missing, and how to get it).
///
/// Under `CI=true` it panics instead, so the test fails: CI installs every tool, and a
/// test that skipped there would pass without having tested anything. Elsewhere it writes
/// a banner naming the test to the process's stderr — not through `eprintln!`, so the
/// test harness's output capture does not hide it from a passing run — and returns, for
/// the test to return at once: `if !have_it { return skip("…"); }`.
pub fn skip(reason: &str) {
    let current = std::thread::current();
    let test = match current.name() {
        // libtest runs each test on a thread named after it; a bench's `main` is not a test:
        // name the program instead (cargo's `-<hash>` dropped).
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::args()
            .next()
            .and_then(|a| {
                let stem = std::path::Path::new(&a).file_stem()?.to_str()?.to_string();
                Some(match stem.rsplit_once('-') {
                    Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        name.to_string()
                    }
                    _ => stem,
                })
            })
            .unwrap_or_else(|| "this program".to_string()),
    };
    if under_ci() {
        panic!("a test skipped under CI=true fails: {test}: {reason}");
    }
    let bar = "!".repeat(80);
    let banner = format!(
        "\n{bar}\n\
         !!! SKIPPED: {test} did not run: {reason}\n\
         !!! It passes only because there was nothing to run it with (under CI=true it fails).\n\
         {bar}\n"
    );
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
}
