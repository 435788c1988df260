//! Crash points for tests: with the `crash-points` feature (off by default, never in a
//! release), [`crate::crash_point!`]`("name")` aborts the process when the environment
//! variable `TOCSIN_CRASH_AT` names that point, so a test can stop the agent between
//! any two steps of a state write and check what a restart makes of it. Without the
//! feature the macro expands to nothing.

/// Aborts the process when `TOCSIN_CRASH_AT` is `name` (read once).
#[cfg(feature = "crash-points")]
pub fn at(name: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = AT.get_or_init(|| std::env::var("TOCSIN_CRASH_AT").ok());
    if target.as_deref() == Some(name) {
        eprintln!("tocsin: crash point {name}: aborting");
        std::process::abort();
    }
}

/// Aborts the process when `TOCSIN_CRASH_AT` is `prefix.step`.
#[cfg(feature = "crash-points")]
pub fn at_step(prefix: &str, step: &str) {
    let target = std::env::var("TOCSIN_CRASH_AT").unwrap_or_default();
    if target
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('.'))
        == Some(step)
    {
        eprintln!("tocsin: crash point {prefix}.{step}: aborting");
        std::process::abort();
    }
}

/// A point where a test build may abort the process (see [`crate::util::crash`]).
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "crash-points")]
        $crate::util::crash::at($name);
    };
    ($prefix:literal, $step:expr) => {
        #[cfg(feature = "crash-points")]
        $crate::util::crash::at_step($prefix, $step);
        #[cfg(not(feature = "crash-points"))]
        let _ = $step;
    };
}
