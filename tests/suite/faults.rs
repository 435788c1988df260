//! Fault injection against receivers on 127.0.0.1: for each fault, the attempts made, the
//! time taken and the final outcome — delivered, spooled, or rejected — so that no event
//! is unaccounted for. Printed as a table (`cargo test --test suite faults:: -- --nocapture`).

use crate::common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Delivered,
    Spooled,
    Rejected,
}

struct Run {
    attempts: usize,
    took: Duration,
    outcome: Outcome,
    log: String,
}

/// Runs the agent until its one alarm is accounted for.
fn run(dir: &Path, url: &str, script: Vec<Reply>, rcv: Option<&Receiver>) -> Run {
    let root = dir.join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    if let Some(r) = rcv {
        r.script(script);
    }
    let cfg = dir.join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{root}\"\nstate_dir = \"{state}\"\n\n[[rule]]\nname = \"m\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"{url}\"\nformat = \"cloudmonitor-json\"\nevents = [\"alarm\"]\nretries = 2\nretry_interval = \"100ms\"\nretry_after_max = \"2s\"\ntimeout = \"500ms\"\n",
            root = root.display(),
            state = dir.join("state").display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&cfg, dir);
    let t0 = Instant::now();
    let outcome = loop {
        let log = agent.log();
        if log.contains("delivered alarm") {
            break Outcome::Delivered;
        }
        // Spooled at the first failed attempt; the outcome is known when retries end.
        if log.contains("giving up on alarm") {
            break Outcome::Spooled;
        }
        if log.contains("rejected:") {
            break Outcome::Rejected;
        }
        assert!(t0.elapsed() < WAIT, "no outcome for {url}: {log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    agent.stop();
    let log = agent.log();
    let attempts = rcv.map_or_else(
        || log.matches("attempt ").count() + 1,
        |r| r.received().len(),
    );
    // Accounted for: a spooled event is on disk, a delivered one is not.
    let on_disk = std::fs::read_dir(dir.join("state/spool/w"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        on_disk,
        usize::from(outcome == Outcome::Spooled),
        "{url}: spool holds {on_disk}: {log}"
    );
    Run {
        attempts,
        took,
        outcome,
        log,
    }
}

#[test]
fn every_fault_ends_delivered_spooled_or_rejected() {
    let mut table = vec![
        "| fault | attempts | time | outcome |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    let mut check = |name: &str, r: &Run, attempts: usize, outcome: Outcome| {
        table.push(format!(
            "| {name} | {} | {} ms | {:?} |",
            r.attempts,
            r.took.as_millis(),
            r.outcome
        ));
        assert_eq!(
            (r.attempts, r.outcome),
            (attempts, outcome),
            "{name}: {}",
            r.log
        );
    };

    let closed = ClosedPort::new();
    let port = closed.port();
    let d = TempDir::new("f-refused");
    let r = run(d.path(), &format!("http://127.0.0.1:{port}/"), vec![], None);
    check("connection refused", &r, 3, Outcome::Spooled);

    let cases: Vec<(&str, Vec<Reply>, usize, Outcome)> = vec![
        (
            "accept, then silence",
            vec![Reply::Silence; 3],
            3,
            Outcome::Spooled,
        ),
        (
            "slow headers (1 byte / 100 ms)",
            vec![Reply::SlowHeaders(100); 3],
            3,
            Outcome::Spooled,
        ),
        (
            "slow body (1 byte / 100 ms)",
            vec![Reply::SlowBody(100); 3],
            3,
            Outcome::Spooled,
        ),
        (
            "reset (RST) mid-response",
            vec![Reply::Reset, Reply::Reset, Reply::Reset],
            3,
            Outcome::Spooled,
        ),
        (
            "500, 502, then 200",
            vec![Reply::Status(500, ""), Reply::Status(502, "")],
            3,
            Outcome::Delivered,
        ),
        (
            "503 three times",
            vec![Reply::Status(503, ""); 3],
            3,
            Outcome::Spooled,
        ),
        (
            "429 Retry-After: 1, then 200",
            vec![Reply::Status(429, "retry-after: 1\r\n")],
            2,
            Outcome::Delivered,
        ),
        ("404", vec![Reply::Status(404, "")], 1, Outcome::Rejected),
        (
            "410 Gone",
            vec![Reply::Status(410, "")],
            1,
            Outcome::Rejected,
        ),
        (
            "302 redirect (not followed)",
            vec![Reply::Status(302, "location: http://127.0.0.1:9/\r\n")],
            1,
            Outcome::Rejected,
        ),
        (
            "501 Not Implemented",
            vec![Reply::Status(501, "")],
            1,
            Outcome::Rejected,
        ),
    ];
    for (name, script, attempts, outcome) in cases {
        let d = TempDir::new("fault");
        let rcv = Receiver::start();
        let r = run(d.path(), &rcv.url("/f"), script, Some(&rcv));
        if name.starts_with("429") {
            assert!(
                r.took >= Duration::from_secs(1),
                "Retry-After honoured: {:?}",
                r.took
            );
        }
        if name.starts_with("reset") {
            assert!(
                r.log.contains("reset by peer"),
                "a real RST reached the agent: {}",
                r.log
            );
        }
        if name.starts_with("410") {
            assert!(
                r.log.contains("disabled until the config is reloaded"),
                "{}",
                r.log
            );
        }
        check(name, &r, attempts, outcome);
    }
    println!("{}", table.join("\n"));
}

/// A host name that does not resolve, inside a network namespace the test creates: only
/// loopback exists there, so no query leaves the machine.
#[test]
fn an_unresolvable_host_in_a_private_network_namespace() {
    let probe = std::process::Command::new("unshare")
        .args(["--net", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return skip(
            "cannot create a network namespace here (unshare --net needs root, or \
             CAP_SYS_ADMIN in a container)",
        );
    }
    let dir = TempDir::new("dns");
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\nroot = \"{0}\"\nstate_dir = \"{0}/state\"\n\n[[webhook]]\nname = \"w\"\nurl = \"http://tocsin-test.invalid/\"\nformat = \"cloudmonitor-json\"\ntimeout = \"3s\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let out = std::process::Command::new("unshare")
        .args(["--net", bin(), "test", "w", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot resolve host"), "{stderr}");
    println!(
        "| unresolvable host (netns) | 1 | {} ms | failed: cannot resolve host |",
        t0.elapsed().as_millis()
    );
}
