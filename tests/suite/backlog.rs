//! An outage and its backlog: fresh alarms go first, a healthy receiver empties the spool,
//! per series the receiver sees events in the order they were raised, and announcements
//! of failed deliveries never feed each other.

use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// `rules` rules on `mem.used_percent`, each firing every 100 ms cycle (`repeat`), to
/// webhook `w` at `url` (its body says which series and when, in ms); `extra` is
/// appended (more webhooks).
fn config(dir: &Path, rules: usize, url: &str, webhook: &str, extra: &str) -> std::path::PathBuf {
    let root = dir.join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let mut text = format!(
        "[agent]\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{root}\"\nstate_dir = \"{dir}/state\"\ncontrol_socket = \"{dir}/control.sock\"\n",
        root = root.display(),
        dir = dir.display()
    );
    for i in 0..rules {
        text.push_str(&format!(
            "\n[[rule]]\nname = \"r{i}\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nrepeat = \"100ms\"\nnotify = [\"w\"]\n"
        ));
    }
    text.push_str(&format!(
        "\n[[webhook]]\nname = \"w\"\nurl = \"{url}\"\nformat = \"template\"\nbody = '{{\"rule\": \"${{alert_name}}\", \"ms\": ${{timestamp_ms}}}}'\n{webhook}\n{extra}"
    ));
    let path = dir.join("t.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The spooled events of webhook `w`.
fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/spool/w"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ev"))
                .count()
        })
        .unwrap_or(0)
}

/// Receiver down 30 s while two rules raise 20 alarms a second, then healthy: no drop
/// while it is healthy, the backlog drains, and per series the timestamps it sees only
/// go up. The drain time and the latency of fresh alarms during the drain are printed as
/// figures, not asserted (a loaded machine moves them).
#[test]
fn a_backlog_drains_behind_fresh_alarms_in_order() {
    let dir = TempDir::new("backlog");
    let down = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/c", down.port());
    let cfg = config(
        dir.path(),
        2,
        &url,
        "retries = 0\ntimeout = \"1s\"\nevents = [\"alarm\"]",
        "",
    );
    let mut agent = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_secs(30));
    let log_at_reopen = agent.log().len();
    let rcv = down.reopen();
    let up = Instant::now();
    // Drained: the spool is empty and stays empty while alarms keep coming.
    let mut drained = None;
    while up.elapsed() < Duration::from_secs(60) {
        if spooled(dir.path()) == 0 {
            drained.get_or_insert(up.elapsed());
            if up.elapsed() > drained.unwrap() + Duration::from_secs(2) {
                break;
            }
        } else {
            drained = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.stop();
    let log = agent.log();
    let since_reopen = &log[log_at_reopen.min(log.len())..];
    let received = rcv.received();
    let drained = drained.unwrap_or_else(|| {
        panic!(
            "the spool never emptied ({} left, {} received)",
            spooled(dir.path()),
            received.len()
        )
    });
    let dropped: Vec<&str> = since_reopen
        .lines()
        .filter(|l| l.contains("dropped") || l.contains("lost"))
        .collect();
    assert!(dropped.is_empty(), "drops while healthy: {dropped:#?}");
    // Per series, in the order raised.
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut fresh_latency = Vec::new();
    let unix_up = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - up.elapsed().as_millis() as u64;
    for r in &received {
        let j = r.json();
        let series = j["rule"].as_str().unwrap().to_string();
        let ts = j["ms"].as_u64().unwrap();
        if let Some(prev) = last.insert(series.clone(), ts) {
            assert!(ts > prev, "series {series}: {ts} after {prev}");
        }
        let received_unix = unix_up + r.at.duration_since(up).as_millis() as u64;
        if ts >= unix_up && r.at < up + drained {
            fresh_latency.push(received_unix.saturating_sub(ts));
        }
    }
    fresh_latency.sort_unstable();
    let median = fresh_latency.get(fresh_latency.len() / 2).copied();
    let max = fresh_latency.last().copied();
    eprintln!(
        "backlog: {} requests after the outage; drained in {:.1} s; fresh alarms during the drain: {} (latency median {median:?} ms, max {max:?} ms)",
        received.len(),
        drained.as_secs_f64(),
        fresh_latency.len()
    );
}

/// A dead webhook (three rules, 30 alarms a second, every one answered 400) has its
/// failures announced to a slow webhook that takes only `delivery_failed`: the slow one
/// cannot keep up and drops them. Those drops, like its own failures and evictions, are
/// never announced: the dead webhook, which also takes `delivery_failed`, is never told
/// about a lost notice, so notices cannot feed each other.
#[test]
fn delivery_failed_notices_never_announce_each_other() {
    let dir = TempDir::new("notice-loop");
    let dead = Receiver::start();
    dead.script(std::iter::repeat_n(Reply::Status(400, ""), 100_000));
    let slow = Receiver::start();
    slow.script(std::iter::repeat_n(Reply::Silence, 10_000));
    let cfg = config(
        dir.path(),
        3,
        &dead.url("/dead"),
        "retries = 0\ntimeout = \"1s\"\nevents = [\"alarm\", \"delivery_failed\"]",
        &format!(
            "\n[[webhook]]\nname = \"notices\"\nurl = \"{}\"\nformat = \"template\"\nbody = '{{\"type\": \"${{event_type}}\", \"text\": \"${{content}}\"}}'\nevents = [\"delivery_failed\"]\ntimeout = \"1s\"\nretries = 0\n",
            slow.url("/n")
        ),
    );
    let mut agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    agent.stop();
    let seconds = t0.elapsed().as_secs_f64();
    let log = agent.log();
    let lines = log.lines().count();
    let told = dead
        .received()
        .iter()
        .filter(|r| r.header("x-tocsin-event-type") == Some("delivery_failed"))
        .count();
    eprintln!(
        "notice loop: {lines} log lines in {seconds:.1} s; {} notices reached the slow webhook; the dead one was told of {told} lost notices",
        slow.received().len()
    );
    assert_eq!(told, 0, "a lost notice was announced");
}
