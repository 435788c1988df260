//! End to end: the real binary samples a fixture root whose /proc/meminfo the test rewrites,
//! evaluates rules and delivers to a real receiver on 127.0.0.1.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(15);

/// A config: one mem rule (`rule_extra` appended to it), one webhook to `url`.
fn config(
    dir: &Path,
    root: &Path,
    url: &str,
    rule_extra: &str,
    webhook_extra: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"[agent]
device_id = "gw-0042"
hostname = "edge \"7\" & <co>"
interval = "100ms"
root = "{root}"
state_dir = "{root}/.state"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
warn = "> 85"
notify = ["rcv"]
{rule_extra}

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
{events}retry_interval = "100ms"
{webhook_extra}
"#,
        root = root.display(),
        // A test that chooses its own event types says so in `webhook_extra`.
        events = if webhook_extra.contains("events =") {
            ""
        } else {
            "events = [\"alarm\", \"recovery\", \"no_data\"]\n"
        },
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn fixture(dir: &Path, used: u64) -> std::path::PathBuf {
    let root = dir.join("root");
    put(&root, "proc/meminfo", &meminfo(used));
    root
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn states(r: &[Received]) -> Vec<String> {
    r.iter()
        .map(|r| r.json()["alertState"].as_str().unwrap().to_string())
        .collect()
}

/// Lets the agent run `cycles` more intervals, so that a wrong extra event would show up.
fn settle(cycles: u64) {
    std::thread::sleep(Duration::from_millis(100 * cycles));
}

#[test]
fn one_alert_after_times_breaches_then_one_ok_after_recovery() {
    let dir = TempDir::new("e2e");
    let root = fixture(dir.path(), 50);
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/alarm"), "times = 3", "");
    let mut agent = Agent::start(&cfg, dir.path());

    settle(5);
    assert!(
        rcv.received().is_empty(),
        "nothing is sent while memory is fine"
    );

    let before = now_s();
    let t0 = Instant::now();
    put(&root, "proc/meminfo", &meminfo(97));
    let r = rcv.wait_for(WAIT, "the ALERT", |r| !r.is_empty());
    // Three breaches at 100 ms intervals: not before the third sample.
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "fired after {:?}, before 3 breaches",
        t0.elapsed()
    );
    settle(8);
    let r2 = rcv.received();
    assert_eq!(
        r2.len(),
        1,
        "exactly one ALERT while it stays high: {:#?}",
        states(&r2)
    );

    let a = &r[0];
    assert_eq!(a.method, "POST");
    assert_eq!(a.target, "/alarm");
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.header("host"),
        Some(format!("127.0.0.1:{}", rcv.port).as_str())
    );
    assert_eq!(a.header("x-tocsin-event-type"), Some("alarm"));
    assert_eq!(a.header("x-tocsin-event-id").map(str::len), Some(36));
    let j = a.json();
    // CloudMonitor's JSON callback fields, then those of its form callback, all strings.
    assert_eq!(j["userId"], "gw-0042");
    assert_eq!(j["alertName"], "mem-high");
    assert_eq!(j["alertState"], "ALERT");
    assert_eq!(j["curValue"], "97");
    assert_eq!(j["metricName"], "mem.used_percent");
    assert_eq!(j["metricProject"], "tocsin");
    assert_eq!(j["namespace"], "tocsin");
    assert_eq!(j["instanceName"], "edge \"7\" & <co>");
    assert_eq!(j["triggerLevel"], "CRITICAL");
    assert_eq!(j["preTriggerLevel"], "CRITICAL");
    assert_eq!(j["ruleId"], "mem-high");
    assert_eq!(
        j["expression"],
        r#"[{"expression":"$value>95","level":2,"times":3}]"#
    );
    let dims: serde_json::Value = serde_json::from_str(j["dimensions"].as_str().unwrap()).unwrap();
    assert_eq!(
        dims,
        serde_json::json!([{"userId": "gw-0042", "instanceId": "edge \"7\" & <co>"}])
    );
    let ts: u64 = j["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        ts >= before && ts <= now_s(),
        "timestamp {ts} is the time of the alert"
    );
    assert_eq!(
        j.as_object().unwrap().len(),
        14,
        "exactly the seed fields: {j}"
    );

    put(&root, "proc/meminfo", &meminfo(40));
    rcv.wait_for(WAIT, "the OK", |r| r.len() >= 2);
    settle(8);
    let r = rcv.received();
    assert_eq!(states(&r), ["ALERT", "OK"], "exactly one OK after recovery");
    let ok = r[1].json();
    assert_eq!(ok["curValue"], "40");
    assert_eq!(ok["triggerLevel"], "CRITICAL", "the level that recovered");
    assert_ne!(
        r[0].header("x-tocsin-event-id"),
        r[1].header("x-tocsin-event-id")
    );
    assert!(agent.stop(), "SIGTERM stops the agent");
    let log = agent.log();
    assert!(log.contains("delivered alarm"), "{log}");
}

#[test]
fn repeat_renotifies_while_firing() {
    let dir = TempDir::new("repeat");
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/"), "repeat = \"300ms\"", "");
    let _agent = Agent::start(&cfg, dir.path());
    let r = rcv.wait_for(WAIT, "three notifications", |r| r.len() >= 3);
    for x in &r[..3] {
        let j = x.json();
        assert_eq!(
            (j["alertState"].as_str(), j["triggerLevel"].as_str()),
            (Some("ALERT"), Some("CRITICAL"))
        );
        assert_eq!(j["preTriggerLevel"], "CRITICAL", "a repeat keeps the level");
    }
    let ids: std::collections::HashSet<_> = r
        .iter()
        .map(|x| x.header("x-tocsin-event-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), r.len(), "each repeat is its own event");
}

#[test]
fn missing_data_becomes_insufficient_data() {
    let dir = TempDir::new("nodata");
    let root = fixture(dir.path(), 50);
    let rcv = Receiver::start();
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/"),
        "no_data = \"alert\"\nno_data_after = 3",
        "",
    );
    let _agent = Agent::start(&cfg, dir.path());
    settle(4);
    std::fs::remove_file(root.join("proc/meminfo")).unwrap();
    let r = rcv.wait_for(WAIT, "INSUFFICIENT_DATA", |r| !r.is_empty());
    settle(6);
    assert_eq!(
        states(&rcv.received()),
        ["INSUFFICIENT_DATA"],
        "once per outage"
    );
    assert_eq!(r[0].header("x-tocsin-event-type"), Some("no_data"));
    assert_eq!(r[0].json()["curValue"], "", "no value without data");
}

#[test]
fn warn_escalates_to_critical_with_prev_level() {
    let dir = TempDir::new("escalate");
    let root = fixture(dir.path(), 90);
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/"), "times = 2", "");
    let _agent = Agent::start(&cfg, dir.path());
    let r = rcv.wait_for(WAIT, "the WARN", |r| !r.is_empty());
    assert_eq!(r[0].json()["triggerLevel"], "WARN");
    put(&root, "proc/meminfo", &meminfo(98));
    let r = rcv.wait_for(WAIT, "the escalation", |r| r.len() >= 2);
    let j = r[1].json();
    assert_eq!(
        (
            j["alertState"].as_str(),
            j["triggerLevel"].as_str(),
            j["preTriggerLevel"].as_str()
        ),
        (Some("ALERT"), Some("CRITICAL"), Some("WARN"))
    );
    assert_eq!(
        j["expression"],
        r#"[{"expression":"$value>95","level":2,"times":2}]"#
    );
    settle(6);
    assert_eq!(
        rcv.received().len(),
        2,
        "no further events while it stays critical"
    );
}

#[test]
fn a_receiver_failing_twice_gets_exactly_three_attempts_of_one_event() {
    let dir = TempDir::new("retry");
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start();
    rcv.script([Reply::Status(500, ""), Reply::Status(503, "")]);
    let cfg = config(dir.path(), &root, &rcv.url("/"), "", "retries = 3");
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "three attempts", |r| r.len() >= 3);
    settle(10);
    let r = rcv.received();
    assert_eq!(r.len(), 3, "500, 503, then 200: three attempts and no more");
    let id = r[0].header("x-tocsin-event-id").unwrap();
    assert!(
        r.iter().all(|x| x.header("x-tocsin-event-id") == Some(id)),
        "every attempt carries the same event id"
    );
    assert!(
        r.iter().all(|x| x.body == r[0].body),
        "every attempt carries the same body"
    );
    assert_eq!(rcv.connections(), 1, "the kept-alive connection is reused");
    let log = agent.log();
    assert!(log.contains("attempt 1/4 failed: HTTP 500"), "{log}");
    assert!(log.contains("attempt 2/4 failed: HTTP 503"), "{log}");
    assert!(log.contains("(attempt 3)"), "{log}");
}

#[test]
fn a_receiver_that_never_answers_is_given_up_after_retries() {
    let dir = TempDir::new("silent");
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start();
    rcv.script([
        Reply::Silence,
        Reply::Silence,
        Reply::Silence,
        Reply::Silence,
    ]);
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/"),
        "",
        "timeout = \"300ms\"\nretries = 2",
    );
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    let log = loop {
        let log = agent.log();
        if log.contains("giving up") || t0.elapsed() > WAIT {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.contains("giving up on alarm") && log.contains("after 3 attempts: timed out"),
        "{log}"
    );
    assert_eq!(rcv.received().len(), 3, "1 attempt + 2 retries");
    assert_eq!(rcv.connections(), 3, "a timed-out connection is not reused");
}

#[test]
fn a_refused_connection_is_retried_then_given_up() {
    let dir = TempDir::new("refused");
    let root = fixture(dir.path(), 97);
    // A port nobody listens on, held so that no other test's receiver is given it.
    let closed = ClosedPort::new();
    let port = closed.port();
    let cfg = config(
        dir.path(),
        &root,
        &format!("http://127.0.0.1:{port}/"),
        "",
        "retries = 1",
    );
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    while !agent.log().contains("giving up") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = agent.log();
    assert!(log.contains("attempt 1/2 failed: cannot connect"), "{log}");
    assert!(log.contains("after 2 attempts: cannot connect"), "{log}");
}

#[test]
fn a_final_status_is_not_retried() {
    let dir = TempDir::new("final");
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start();
    rcv.script([Reply::Status(404, "")]);
    let cfg = config(dir.path(), &root, &rcv.url("/"), "", "");
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the attempt", |r| !r.is_empty());
    settle(8);
    assert_eq!(rcv.received().len(), 1);
    assert!(
        agent.log().contains("rejected: HTTP 404; not retried"),
        "{}",
        agent.log()
    );
}

#[cfg(feature = "tls")]
#[test]
fn https_with_a_private_ca() {
    let dir = TempDir::new("tls");
    let tls = make_tls(dir.path());
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start_tls(tls.server.clone());
    let extra = format!("tls = {{ ca_file = \"{}\" }}", tls.ca_pem.display());
    for host in ["127.0.0.1", "localhost"] {
        // A state directory each: the second run would otherwise continue the first
        // run's episode and owe nothing.
        let run = dir.path().join(host);
        let run_root = fixture(&run, 97);
        let cfg = config(
            &run,
            &run_root,
            &format!("https://{host}:{}/secure", rcv.port),
            "",
            &extra,
        );
        let mut agent = Agent::start(&cfg, &run);
        let n = rcv.received().len();
        let r = rcv.wait_for(WAIT, "a delivery over TLS", |r| r.len() > n);
        assert_eq!(r[n].target, "/secure");
        assert_eq!(r[n].json()["alertState"], "ALERT");
        agent.stop();
    }
    // Without the private CA the same receiver is refused, and nothing arrives.
    let n = rcv.received().len();
    let cfg = config(
        dir.path(),
        &root,
        &format!("https://127.0.0.1:{}/secure", rcv.port),
        "",
        "retries = 0",
    );
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    while !agent.log().contains("giving up") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        agent.log().contains("TLS handshake failed"),
        "{}",
        agent.log()
    );
    assert_eq!(rcv.received().len(), n);
}

#[test]
fn dry_run_prints_requests_with_secrets_redacted() {
    let dir = TempDir::new("dry");
    let root = fixture(dir.path(), 97);
    let cfg = config(
        dir.path(),
        &root,
        "http://127.0.0.1:9/never",
        "",
        "auth = { type = \"bearer\", token = \"t0ps3cret\" }",
    );
    let out = dir.path().join("stdout");
    let child = Command::new(bin())
        .args(["run", "--dry-run", "-c"])
        .arg(&cfg)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stopped on drop, so a failing assertion never leaves an agent running.
    let mut agent = Agent {
        child,
        stderr: dir.path().join("unused"),
    };
    let t0 = Instant::now();
    while !std::fs::read_to_string(&out)
        .unwrap()
        .contains("alertState")
        && t0.elapsed() < WAIT
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.stop();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("POST /never HTTP/1.1"), "{text}");
    assert!(text.contains("Authorization: Bearer <redacted>"), "{text}");
    assert!(
        !text.contains("t0ps3cret"),
        "the secret never appears: {text}"
    );
    assert!(text.contains("\"alertState\":\"ALERT\""), "{text}");
}

#[test]
fn send_test_reports_status_and_fails_with_exit_2() {
    let dir = TempDir::new("sendtest");
    let root = fixture(dir.path(), 50);
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/t"), "", "");
    let out = Command::new(bin())
        .args(["test", "rcv", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("rcv: HTTP 200 in "), "{stdout}");
    let r = rcv.received();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("x-tocsin-event-type"), Some("test"));

    rcv.script([Reply::Status(503, "")]);
    let out = Command::new(bin())
        .args(["test", "rcv", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(bin())
        .args([
            "check",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/tocsin.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_dead_kept_alive_connection_is_reopened_without_counting_an_attempt() {
    let dir = TempDir::new("stale");
    let root = fixture(dir.path(), 97);
    let rcv = Receiver::start();
    // agent_start is answered on connection 0; the alarm, sent on that reused connection,
    // finds it dead and goes out again on a fresh one.
    rcv.script([Reply::Status(200, ""), Reply::Drop]);
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/"),
        "",
        "retries = 0\nevents = [\"agent_start\", \"alarm\"]",
    );
    let agent = Agent::start(&cfg, dir.path());
    let r = rcv.wait_for(WAIT, "the alarm on a new connection", |r| r.len() >= 3);
    assert_eq!(r[0].header("x-tocsin-event-type"), Some("agent_start"));
    assert_eq!(
        (r[1].connection, r[2].connection),
        (0, 1),
        "the alarm went out again on a new connection"
    );
    assert_eq!(
        r[1].header("x-tocsin-event-id"),
        r[2].header("x-tocsin-event-id")
    );
    settle(5);
    let log = agent.log();
    assert!(
        log.contains("delivered alarm") && log.contains("(attempt 1)"),
        "not counted as an attempt, although retries = 0: {log}"
    );
    assert!(!log.contains("giving up"), "{log}");
}

#[test]
fn a_dead_webhook_never_delays_another() {
    let dir = TempDir::new("isolation");
    let root = fixture(dir.path(), 97);
    let dead = Receiver::start();
    dead.script(std::iter::repeat_n(Reply::Silence, 8));
    let live = Receiver::start();
    let cfg = config(
        dir.path(),
        &root,
        &dead.url("/dead"),
        "notify = [\"rcv\", \"live\"]\nrepeat = \"200ms\"",
        &format!("timeout = \"30s\"\n\n[[webhook]]\nname = \"live\"\nurl = \"{}\"\nformat = \"cloudmonitor-json\"\nevents = [\"alarm\"]", live.url("/live")),
    );
    // The rule's own `notify` line comes after the one the helper writes; drop that one.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen("notify = [\"rcv\"]\n", "", 1);
    std::fs::write(&cfg, text).unwrap();
    let _agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    live.wait_for(WAIT, "five alarms at the live webhook", |r| r.len() >= 5);
    // 5 notifications 200 ms apart: about 1 s, while the dead webhook's first attempt
    // is still waiting out its 30 s timeout.
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the live webhook was held back: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        dead.received().len(),
        1,
        "the dead one is still on its first attempt"
    );
}

/// Under systemd: READY=1 once running, WATCHDOG=1 every half WatchdogSec,
/// RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM — each one
/// datagram on `$NOTIFY_SOCKET`, read here by a real socket standing in for systemd.
#[test]
fn systemd_notifications_over_notify_socket() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("sdnotify");
    let root = fixture(dir.path(), 50);
    let cfg = config(dir.path(), &root, "http://127.0.0.1:9/never", "", "");
    let sock_path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&sock_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let child = Command::new(bin())
        .args(["run", "--dry-run", "-c"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stopped on drop, so a failing assertion never leaves an agent running.
    let mut agent = Agent {
        child,
        stderr: std::path::PathBuf::from("/dev/null"),
    };
    let mut got: Vec<String> = Vec::new();
    let read_until = |want: &str, got: &mut Vec<String>| {
        let t0 = Instant::now();
        let mut buf = [0u8; 256];
        while t0.elapsed() < WAIT {
            if let Ok(n) = manager.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.starts_with(want);
                got.push(msg);
                if hit {
                    return;
                }
            }
        }
        panic!("no {want} within {WAIT:?}; got {got:?}");
    };
    read_until("READY=1", &mut got);
    assert!(got[0].contains("\nSTATUS=1 rules, 1 webhooks"), "{got:?}");
    read_until("WATCHDOG=1", &mut got);
    read_until("WATCHDOG=1", &mut got);
    unsafe_kill(agent.child.id(), 1);
    read_until("RELOADING=1", &mut got);
    assert!(got.last().unwrap().contains("\nMONOTONIC_USEC="));
    read_until("READY=1", &mut got);
    unsafe_kill(agent.child.id(), 15);
    read_until("STOPPING=1", &mut got);
    let t0 = Instant::now();
    while agent.child.try_wait().unwrap().is_none() && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = agent.child.try_wait().unwrap();
    if status.is_none() {
        let _ = agent.child.kill();
        let _ = agent.child.wait();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 after STOPPING=1"
    );
}
