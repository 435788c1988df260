//! `[agent] log_level` and `-q`/`-v`: what a running agent writes at each level.
//!
//! Start-up, for these tests, is everything the agent writes before its first delivery
//! reaches the receiver (the start summary, warnings about the config); the receiver
//! seeing a request is the test's proof that the agent is past it. At `warn` the start
//! summary (an `info` line) is not written either, so for a config that warrants no
//! warning the whole log stays empty.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// An agent config: one rule on memory, one webhook; `agent_extra` goes into `[agent]`.
fn config(dir: &Path, url: &str, agent_extra: &str) -> PathBuf {
    let root = dir.join("root");
    let path = dir.join("tocsin.toml");
    std::fs::write(
        &path,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{state}"
control_socket = "{dir}/control.sock"
{agent_extra}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm", "recovery"]
retries = 1
retry_interval = "100ms"
timeout = "1s"
"#,
            root = root.display(),
            state = dir.join("state").display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    path
}

/// Memory high, then fine, `n` times (each flip after the agent has had time to see it).
fn flap(root: &Path, n: usize, mut seen: impl FnMut(usize) -> bool) {
    for i in 0..n {
        put(
            root,
            "proc/meminfo",
            &meminfo(if i % 2 == 0 { 97 } else { 40 }),
        );
        let t0 = Instant::now();
        while !seen(i + 1) && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs the agent over `n` successful deliveries (alarm, recovery, …): its log at the
/// first delivery and at the end (after SIGTERM).
fn successful_run(agent_extra: &str, args: &[&str], n: usize) -> (String, String) {
    let dir = TempDir::new("log-level");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &rcv.url("/a"), agent_extra);
    let mut agent = Agent::start_args(&cfg, dir.path(), args);
    let mut at_first = None;
    flap(&root, n, |k| {
        let got = rcv.received().len();
        if got >= 1 && at_first.is_none() {
            at_first = Some(agent.log());
        }
        got >= k
    });
    assert_eq!(rcv.received().len(), n, "{}", agent.log());
    assert!(agent.stop());
    (at_first.unwrap_or_default(), agent.log())
}

#[test]
fn at_warn_a_run_of_successful_deliveries_writes_no_line_after_start_up() {
    // The control: at the default level each delivery is a line, and so are start and stop.
    let (_, info) = successful_run("", &[], 6);
    assert_eq!(
        info.lines().filter(|l| l.contains("delivered")).count(),
        6,
        "{info}"
    );
    assert!(info.contains("tocsin info: device gw (h)"), "{info}");
    assert!(info.contains("tocsin info: stopping"), "{info}");

    for (extra, args) in [
        ("log_level = \"warn\"", &[][..]),
        ("log_level = \"error\"", &[][..]),
        // -q on the command line wins over the config's level.
        ("log_level = \"debug\"", &["-q"][..]),
    ] {
        let (start, end) = successful_run(extra, args, 6);
        assert_eq!(start, "", "{extra} {args:?}: nothing at start-up either");
        assert_eq!(end, start, "{extra} {args:?}: no line after start-up");
    }
}

#[test]
fn at_warn_a_failure_is_still_written() {
    let dir = TempDir::new("log-level-fail");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let closed = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    let cfg = config(dir.path(), &url, "log_level = \"warn\"");
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    while !agent.log().contains("giving up") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = agent.log();
    assert!(
        log.contains("tocsin warn: webhook rcv: alarm")
            && log.contains("attempt 1/2 failed: cannot connect"),
        "{log}"
    );
    assert!(
        log.contains("tocsin error: webhook rcv: giving up on alarm"),
        "{log}"
    );
    assert!(!log.contains("tocsin info:"), "no info line at warn: {log}");
}

#[test]
fn at_warn_a_flapping_failure_is_limited() {
    let dir = TempDir::new("log-level-flap");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let closed = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    let cfg = config(dir.path(), &url, "log_level = \"warn\"");
    let mut agent = Agent::start(&cfg, dir.path());
    let spool = dir.path().join("state/spool/rcv");
    let spooled = || {
        std::fs::read_dir(&spool)
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    // Each flip is a new event for a dead receiver: spooled, and a line each time
    // but for the limit.
    let flips = 30;
    flap(&root, flips, |k| spooled() >= k);
    assert!(agent.stop());
    let log = agent.log();
    assert_eq!(spooled(), flips, "every event waits in the spool: {log}");
    let spooled_lines = log.lines().filter(|l| l.contains(" spooled (")).count();
    assert_eq!(
        spooled_lines, 10,
        "{flips} events, 10 lines of the kind in a minute: {log}"
    );
    assert!(
        log.lines().count() <= 40,
        "a few lines a kind, not one per event and attempt: {log}"
    );
    assert!(!log.contains("tocsin info:"), "{log}");
}

#[test]
fn at_debug_a_new_connection_is_written() {
    let dir = TempDir::new("log-level-debug");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &rcv.url("/a"), "");
    let mut agent = Agent::start_args(&cfg, dir.path(), &["-v"]);
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    assert!(agent.stop());
    let log = agent.log();
    let want = format!(
        "tocsin debug: webhook rcv: opened connection 1 to 127.0.0.1:{}",
        rcv.port
    );
    assert!(log.contains(&want), "{log}");
    assert!(
        log.contains("tocsin info: webhook rcv: delivered alarm"),
        "{log}"
    );
}
