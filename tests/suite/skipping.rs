//! A test that skips for want of a tool passes loudly, and fails under `CI=true`: the
//! suite runs one of its own skipping tests again in a child process, with Alertmanager
//! made to look missing (`$TOCSIN_ALERTMANAGER` naming no file).

use std::process::{Command, Output};

const TEST: &str = "alertmanager_harness::a_cluster_dies_after_its_lifetime";

/// This binary running only [`TEST`], without Alertmanager, with `CI` set to `ci`.
fn run_without_alertmanager(ci: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", TEST, "--test-threads=1"])
        .env(
            "TOCSIN_ALERTMANAGER",
            "/nonexistent/prometheus-alertmanager",
        )
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn a_skipped_test_passes_loudly_and_fails_under_ci() {
    for ci in [None, Some("false"), Some("1")] {
        let (out, text) = run_without_alertmanager(ci);
        assert!(out.status.success(), "CI={ci:?}: {text}");
        assert!(text.contains("1 passed"), "CI={ci:?}: it ran: {text}");
        assert!(
            text.contains(&format!(
                "SKIPPED: {TEST} did not run: prometheus-alertmanager is not installed"
            )),
            "CI={ci:?}: the banner names the test and the reason: {text}"
        );
    }
    let (out, text) = run_without_alertmanager(Some("true"));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "a test skipped under CI=true fails: {TEST}: prometheus-alertmanager is not installed"
        )),
        "{text}"
    );
    assert!(!text.contains("SKIPPED:"), "no banner, a failure: {text}");
}
