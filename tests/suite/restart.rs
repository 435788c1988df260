//! Alert state across SIGKILL and restart: the firing-state file continues episodes,
//! sends what is owed exactly once and in order, and survives a torn file.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, root: &Path, url: &str, rule_name: &str, repeat: &str) -> PathBuf {
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

[[rule]]
name = "{rule_name}"
metric = "mem.used_percent"
critical = "> 95"
{repeat}
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "template"
body = '{{"type": "${{event_type}}", "state": "${{state}}", "id": "${{event_id}}", "first": ${{first_trigger_ms}}, "times": ${{times}}}}'
events = ["alarm", "recovery"]
retries = 1
retry_interval = "100ms"
timeout = "1s"
"#,
            root = root.display(),
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    path
}

/// The config for an answer that trickles in for about a second: the timeout is well
/// above that, so on a loaded machine the answer is still awaited, never retried (a retry
/// would be a second request, indistinguishable from a resend after the restart).
fn slow_answer_config(dir: &Path, root: &Path, url: &str) -> PathBuf {
    let path = config(dir, root, url, "mem", "");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("timeout = \"1s\""), "{text}");
    std::fs::write(&path, text.replace("timeout = \"1s\"", "timeout = \"4s\"")).unwrap();
    path
}

fn states(r: &[Received]) -> Vec<String> {
    r.iter()
        .map(|x| x.json()["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn kill9(agent: &mut Agent) {
    unsafe_kill(agent.child.id(), 9);
    let _ = agent.child.wait();
}

fn wait_file(p: &Path) {
    let t0 = Instant::now();
    while !p.exists() && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn still_breaching_after_sigkill_no_second_alarm_and_repeat_on_schedule() {
    let dir = TempDir::new("rs-cont");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/a"), "mem", "repeat = \"4s\"");
    let mut agent = Agent::start(&cfg, dir.path());
    let first = rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty())[0].json();
    std::thread::sleep(Duration::from_millis(600));
    kill9(&mut agent);
    let before = rcv.received().len();
    assert_eq!(before, 1);

    let started = Instant::now();
    let _agent = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(rcv.received().len(), 1, "no second alarm after the restart");
    let r = rcv.wait_for(WAIT, "the repeat", |r| r.len() >= 2);
    let at = started.elapsed();
    assert!(
        at >= Duration::from_millis(3500) && at < Duration::from_secs(8),
        "the repeat is due `repeat` after the start: {at:?}"
    );
    let rep = r[1].json();
    assert_eq!(rep["state"], "ALERT");
    assert_eq!(rep["first"], first["first"], "the episode continues");
    assert!(
        rep["times"].as_u64() > first["times"].as_u64(),
        "{rep} {first}"
    );
}

#[test]
fn cleared_while_down_exactly_one_recovery_with_the_episode_start() {
    let dir = TempDir::new("rs-clear");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let probe = Receiver::start();
    let cfg = config(dir.path(), &root, &probe.url("/a"), "mem", "");
    let rcv = probe;
    let mut first = Agent::start(&cfg, dir.path());
    let alarm = rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty())[0].json();
    std::thread::sleep(Duration::from_millis(600));
    kill9(&mut first);
    put(&root, "proc/meminfo", &meminfo(40));
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the recovery", |r| r.len() >= 2);
    std::thread::sleep(Duration::from_millis(1500));
    let r = rcv.received();
    assert_eq!(
        states(&r),
        ["ALERT", "OK"],
        "exactly one recovery: {}",
        agent.log()
    );
    assert_eq!(r[1].json()["first"], alarm["first"]);
}

#[test]
fn a_never_acknowledged_alarm_is_resent_with_its_original_id() {
    let dir = TempDir::new("rs-unacked");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let closed = ClosedPort::new();
    let cfg = config(
        dir.path(),
        &root,
        &format!("http://127.0.0.1:{}/a", closed.port()),
        "mem",
        "",
    );
    let mut agent = Agent::start(&cfg, dir.path());
    wait_file(&dir.path().join("state/firing.state"));
    // The first failed attempt spools it; kill before the retries end.
    let t0 = Instant::now();
    while !agent.log().contains("spooled") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut agent);
    let log = agent.log();
    let id = log
        .split("alarm ")
        .nth(1)
        .map(|s| s[..36].to_string())
        .expect("the alarm's id in the log");
    let rcv = closed.reopen();
    let _agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let r = rcv.received();
    let ids: Vec<_> = r.iter().map(|x| x.json()["id"].clone()).collect();
    assert_eq!(
        ids,
        [serde_json::Value::from(id.as_str())],
        "once, with its id"
    );
    assert_eq!(r[0].header("x-tocsin-event-id"), Some(id.as_str()));
}

#[test]
fn a_rule_removed_while_down_gets_its_recovery() {
    let dir = TempDir::new("rs-removed");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/a"), "mem", "");
    let mut agent = Agent::start(&cfg, dir.path());
    let alarm = rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty())[0].json();
    std::thread::sleep(Duration::from_millis(600));
    kill9(&mut agent);
    // Renamed: a new identity, so the old rule is gone; the new one fires anew.
    let cfg = config(dir.path(), &root, &rcv.url("/a"), "mem2", "");
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "recovery and new alarm", |r| r.len() >= 3);
    std::thread::sleep(Duration::from_millis(1000));
    let r = rcv.received();
    let rec: Vec<_> = r[1..]
        .iter()
        .map(Received::json)
        .filter(|j| j["state"] == "OK")
        .collect();
    assert_eq!(rec.len(), 1, "{:?} {}", states(&r), agent.log());
    assert_eq!(rec[0]["first"], alarm["first"]);
    assert_ne!(rec[0]["id"], alarm["id"], "a new event");
    assert_eq!(r.len(), 3, "{:?}", states(&r));
}

#[test]
fn no_state_write_in_steady_state_and_a_torn_file_is_survived() {
    let dir = TempDir::new("rs-steady");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    // Repeats every cycle: deliveries and their 2xx, but no transition.
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/a"),
        "mem",
        "repeat = \"100ms\"",
    );
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(1000));
    let file = dir.path().join("state/firing.state");
    use std::os::unix::fs::MetadataExt as _;
    let m0 = std::fs::metadata(&file).unwrap();
    let n0 = rcv.received().len();
    std::thread::sleep(Duration::from_secs(10));
    let m1 = std::fs::metadata(&file).unwrap();
    assert!(rcv.received().len() > n0 + 50, "repeats went out");
    assert_eq!(
        (m0.ino(), m0.mtime(), m0.mtime_nsec()),
        (m1.ino(), m1.mtime(), m1.mtime_nsec()),
        "no write in a steady 10 s"
    );
    kill9(&mut agent);

    // A torn file: set aside with a log line, the agent runs (and fires anew).
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let n = rcv.received().len();
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "a new alarm", |r| r.len() > n);
    let log = agent.log();
    assert!(log.contains("firing.state is damaged"), "{log}");
    assert!(dir.path().join("state/firing.bad").exists());
}

/// With the `crash-points` build: an abort at each step of the state write and of the
/// 2xx → state path, then a restart after the condition cleared: the receiver ends OK,
/// and never sees a recovery before an alarm.
#[cfg(feature = "crash-points")]
#[test]
fn a_crash_at_any_step_of_the_state_write_ends_with_the_receiver_ok() {
    for point in [
        "firing.before-write",
        "firing.after-temp",
        "firing.after-rename",
        "firing.after-dirsync",
        "ack.before-send",
        "ack.after-apply",
    ] {
        let dir = TempDir::new("rs-crash");
        let root = dir.path().join("root");
        put(&root, "proc/meminfo", &meminfo(97));
        let rcv = Receiver::start();
        let cfg = config(dir.path(), &root, &rcv.url("/a"), "mem", "");
        let mut agent = Agent::start_env(&cfg, dir.path(), &[("TOCSIN_CRASH_AT", point)]);
        let t0 = Instant::now();
        while agent.child.try_wait().ok().flatten().is_none() && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            agent.log().contains("crash point"),
            "{point}: {}",
            agent.log()
        );
        if point.starts_with("firing.") {
            // The alarm goes out only once the file that records it is on disk: a crash
            // anywhere in that first write leaves the receiver without it (so a restart
            // that finds the condition cleared owes it nothing).
            assert_eq!(
                rcv.received().len(),
                0,
                "{point}: delivered before its state was written"
            );
        }
        put(&root, "proc/meminfo", &meminfo(40));
        let agent = Agent::start(&cfg, dir.path());
        std::thread::sleep(Duration::from_millis(2000));
        let r = rcv.received();
        let s = states(&r);
        if let Some(first) = s.first() {
            assert_eq!(first, "ALERT", "{point}: {s:?} {}", agent.log());
            assert_eq!(s.last().map(String::as_str), Some("OK"), "{point}: {s:?}");
        }
        if point.starts_with("ack.") {
            // Delivered before the crash: the restart owes (and sends) the recovery.
            assert_eq!(s.last().map(String::as_str), Some("OK"), "{point}: {s:?}");
        }
    }
}

/// Against a real Alertmanager: a firing alert survives a SIGKILL and restart with the
/// condition still true — still active, the same `startsAt` (the episode's first trigger) —
/// and one that cleared while the agent was down is resolved after the next restart.
#[test]
fn alertmanager_keeps_the_episode_start_across_sigkill_and_resolves_what_cleared() {
    use crate::common::am::{self, Cluster};
    let Some(_) = am::require() else {
        return;
    };
    let dir = TempDir::new("rs-am");
    let cluster = Cluster::start(1);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{state}"

[[rule]]
name = "mem"
metric = "mem.used_percent"
critical = "> 95"
notify = ["am"]

[[webhook]]
name = "am"
format = "alertmanager"
url = "{url}"
resend = "1s"
timeout = "1s"
retries = 0
"#,
            root = root.display(),
            state = dir.path().join("state").display(),
            url = cluster.url(0),
        ),
    )
    .unwrap();
    let firing = |a: &[serde_json::Value]| {
        a.iter()
            .find(|x| x["labels"]["alertname"] == "mem" && x["status"]["state"] == "active")
            .cloned()
    };
    let mut agent = Agent::start(&cfg, dir.path());
    let alerts = cluster.wait_until(0, WAIT, |a| firing(a).is_some());
    let before = firing(&alerts).unwrap();
    // Its 2xx is in the firing-state file (the next cycle's write).
    std::thread::sleep(Duration::from_millis(1000));
    kill9(&mut agent);

    // Still breaching: the same alert, the same startsAt, kept alive past 4 × resend.
    let mut agent = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_millis(5500));
    let now = cluster.alerts(0);
    let after = firing(&now)
        .unwrap_or_else(|| panic!("still active after the restart: {now:#?}\n{}", agent.log()));
    eprintln!(
        "alertmanager startsAt before the kill {} / after the restart {}",
        before["startsAt"], after["startsAt"]
    );
    assert_eq!(
        after["startsAt"], before["startsAt"],
        "the episode continues"
    );
    assert!(after["endsAt"].as_str() > before["endsAt"].as_str());
    assert_eq!(
        now.iter()
            .filter(|x| x["labels"]["alertname"] == "mem")
            .count(),
        1,
        "{now:#?}"
    );
    kill9(&mut agent);

    // Cleared while down: resolved (gone from the active list) soon after the restart.
    put(&root, "proc/meminfo", &meminfo(40));
    let started = Instant::now();
    let agent = Agent::start(&cfg, dir.path());
    let gone = cluster.poll(0, Duration::from_secs(5), |a| {
        !a.iter().any(|x| x["labels"]["alertname"] == "mem")
    });
    assert!(
        gone.is_ok(),
        "resolved within 5 s of the restart: {gone:#?}\n{}",
        agent.log()
    );
    eprintln!(
        "alertmanager: resolved {:?} after the restart",
        started.elapsed()
    );
}

/// xorshift64*: the kill loop's moments and flips; a failure names its seed and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The UUID-shaped tokens (event ids) in `text`.
fn ids_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 36 <= b.len() {
        let w = &b[i..i + 36];
        let ok = w.iter().enumerate().all(|(k, c)| match k {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
        if ok {
            out.push(text[i..i + 36].to_string());
            i += 36;
        } else {
            i += 1;
        }
    }
    out
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// SIGKILL at random moments while three rules flip and the receiver flaps; at the end,
/// with the receiver healthy and the conditions stable, the receiver's view of every
/// series is the truth, nothing is lost, and a duplicate is only ever the same event again.
///
/// 50 kills by default; a long run: `TOCSIN_KILLS=200 cargo test --test suite
/// restart::random_kills -- --nocapture` (`TOCSIN_SEED=N` replays a seed).
#[test]
fn random_kills_while_conditions_flip_and_the_receiver_flaps() {
    let kills: usize = std::env::var("TOCSIN_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("TOCSIN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("restart::random_kills: seed {seed} (TOCSIN_SEED={seed} replays it), {kills} kills");
    let mut rng = Rng(seed);
    let dir = TempDir::new("rs-kills");
    let root = dir.path().join("root");
    // A kill takes under a second; the end needs at most about 35 s.
    let rcv = Receiver::start_for(Duration::from_secs(60) + Duration::from_secs(kills as u64));
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{state}"

[[rule]]
name = "mem"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[rule]]
name = "a"
metric = "file.value"
path = "/data/a"
critical = "> 1"
notify = ["rcv"]

[[rule]]
name = "b"
metric = "file.value"
path = "/data/b"
critical = "> 1"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "template"
body = '{{"type": "${{event_type}}", "state": "${{state}}", "id": "${{event_id}}", "rule": "${{rule_id}}", "ts": ${{timestamp_ms}}}}'
events = ["alarm", "recovery"]
retries = 1
retry_interval = "100ms"
timeout = "1s"
"#,
            root = root.display(),
            state = dir.path().join("state").display(),
            url = rcv.url("/k"),
        ),
    )
    .unwrap();
    // The truth: whether each rule's condition holds.
    let mut truth = [false; 3];
    let mut refusals = 0;
    let write = |i: usize, on: bool| match i {
        0 => put(&root, "proc/meminfo", &meminfo(if on { 97 } else { 40 })),
        1 => put(&root, "data/a", if on { "2\n" } else { "0\n" }),
        _ => put(&root, "data/b", if on { "2\n" } else { "0\n" }),
    };
    for i in 0..3 {
        write(i, false);
    }
    let mut logs = String::new();
    let t0 = Instant::now();
    for _ in 0..kills {
        // The receiver flaps: a run of 503s now and then (200 once the run is used up).
        if rng.below(3) == 0 {
            let n = 1 + rng.below(6) as usize;
            rcv.script(std::iter::repeat_n(Reply::Status(503, ""), n));
            refusals += n;
        }
        let mut agent = Agent::start(&cfg, dir.path());
        // A few flips while it runs, then a kill at a random moment.
        for _ in 0..rng.below(3) {
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            let i = rng.below(3) as usize;
            truth[i] = !truth[i];
            write(i, truth[i]);
        }
        std::thread::sleep(Duration::from_millis(50 + rng.below(450)));
        kill9(&mut agent);
        logs.push_str(&agent.log());
        // Sometimes a flip while it is down.
        if rng.below(4) == 0 {
            let i = rng.below(3) as usize;
            truth[i] = !truth[i];
            write(i, truth[i]);
        }
    }
    let looped = t0.elapsed();

    // The end: healthy receiver, stable conditions; the spool drains.
    let agent = Agent::start(&cfg, dir.path());
    let spool = dir.path().join("state/spool/rcv");
    let spooled = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "ev"))
                    .count()
            })
            .unwrap_or(0)
    };
    let t1 = Instant::now();
    while spooled(&spool) > 0 && t1.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Owed events and clear_times go out within a few cycles.
    std::thread::sleep(Duration::from_millis(1500));
    let left = spooled(&spool);
    logs.push_str(&agent.log());

    let got = rcv.received();
    let mut by_id: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    let mut dups = 0;
    for r in got.iter().filter(|r| r.target == "/k") {
        let j = r.json();
        let id = j["id"].as_str().unwrap().to_string();
        assert_eq!(r.header("x-tocsin-event-id"), Some(id.as_str()));
        match by_id.get(&id) {
            // A duplicate is the same event again: same rule, same state, same time.
            Some(prev) => {
                assert_eq!(prev, &j, "seed {seed}: id {id} carried two events");
                dups += 1;
            }
            None => {
                by_id.insert(id, j);
            }
        }
    }
    let mut generated: std::collections::BTreeSet<String> = by_id.keys().cloned().collect();
    let logged: std::collections::BTreeSet<String> = ids_in(&logs).into_iter().collect();
    generated.extend(logged.iter().cloned());
    let lost: Vec<_> = logged
        .iter()
        .filter(|id| !by_id.contains_key(*id))
        .collect();
    // Requests answered 503 are attempts, not deliveries: the duplicates that count are
    // the same id taken twice with a 2xx (its 2xx not yet in the firing state at a kill).
    let refused = refusals - rcv.scripted();
    let delivered = got.len().saturating_sub(refused);
    let dups_2xx = delivered.saturating_sub(by_id.len());
    eprintln!(
        "restart::random_kills: kills {kills}, events generated (distinct ids) {}, delivered {delivered} ({} distinct; {} requests, {refused} answered 503), duplicates by id {dups_2xx} ({dups} with the refused attempts), spooled at the end {left}, lost {} ({looped:?} of kills)",
        generated.len(),
        by_id.len(),
        got.len(),
        lost.len()
    );

    let bad: Vec<_> = files_under(&dir.path().join("state"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "bad"))
        .collect();
    assert!(
        bad.is_empty(),
        "seed {seed}: set aside as unreadable: {bad:?}\n{logs}"
    );
    assert_eq!(left, 0, "seed {seed}: the spool drains\n{}", agent.log());
    assert!(
        lost.is_empty(),
        "seed {seed}: never delivered: {lost:?}\n{logs}"
    );

    // The receiver's view: the last event per series by raise order (time, then id).
    let mut last: std::collections::BTreeMap<String, (u64, String, String)> = Default::default();
    for (id, j) in &by_id {
        let key = (
            j["ts"].as_u64().unwrap(),
            id.clone(),
            j["state"].as_str().unwrap().to_string(),
        );
        let rule = j["rule"].as_str().unwrap().to_string();
        if last
            .get(&rule)
            .is_none_or(|l| (l.0, &l.1) < (key.0, &key.1))
        {
            last.insert(rule, key);
        }
    }
    for (i, name) in ["mem", "a", "b"].iter().enumerate() {
        let seen = last.get(*name).map(|l| l.2.as_str()).unwrap_or("OK");
        let want = if truth[i] { "ALERT" } else { "OK" };
        assert_eq!(
            seen,
            want,
            "seed {seed}: the receiver's view of {name}\nlast events: {last:?}\nagent log:\n{}",
            agent.log()
        );
    }
}

/// A config of one rule and two receivers, `rule` notifying `notify`.
fn two_receivers(dir: &Path, root: &Path, urls: [&str; 2], rule: &str, notify: &str) -> String {
    let hook = |name: &str, url: &str| {
        format!(
            r#"
[[webhook]]
name = "{name}"
url = "{url}"
format = "template"
body = '{{"rule": "${{alert_name}}", "state": "${{state}}", "id": "${{event_id}}", "first": ${{first_trigger_ms}}}}'
events = ["alarm", "recovery"]
retries = 1
retry_interval = "100ms"
timeout = "1s"
"#
        )
    };
    format!(
        r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{state}"

{rule}
notify = {notify}
{a}{b}"#,
        root = root.display(),
        state = dir.join("state").display(),
        a = hook("a", urls[0]),
        b = hook("b", urls[1]),
    )
}

fn rule_states(r: &[Received]) -> Vec<String> {
    r.iter()
        .map(|x| {
            let j = x.json();
            format!(
                "{} {}",
                j["rule"].as_str().unwrap_or("?"),
                j["state"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// A SIGHUP reload reconciles like a start: a changed threshold keeps the episode (no
/// second alarm), a webhook added to `notify` is sent the alarm it is owed, and a renamed
/// rule is a removed one (its recovery, to both) plus a new one (its alarm).
#[test]
fn a_reload_keeps_the_episode_tells_an_added_webhook_and_recovers_a_renamed_rule() {
    let dir = TempDir::new("rs-reload");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let (a, b) = (Receiver::start(), Receiver::start());
    let urls = [a.url("/a"), b.url("/b")];
    let urls = [urls[0].as_str(), urls[1].as_str()];
    let cfg = dir.path().join("tocsin.toml");
    let rule = |name: &str, threshold: u32| {
        format!("[[rule]]\nname = \"{name}\"\nmetric = \"mem.used_percent\"\ncritical = \"> {threshold}\"")
    };
    std::fs::write(
        &cfg,
        two_receivers(dir.path(), &root, urls, &rule("mem", 95), r#"["a"]"#),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    let alarm = a.wait_for(WAIT, "the alarm at a", |r| !r.is_empty())[0].json();

    // New threshold, and b added to notify.
    std::fs::write(
        &cfg,
        two_receivers(dir.path(), &root, urls, &rule("mem", 90), r#"["a", "b"]"#),
    )
    .unwrap();
    unsafe_kill(agent.child.id(), 1);
    let got = b.wait_for(WAIT, "the alarm owed to b", |r| !r.is_empty());
    assert_eq!(rule_states(&got), ["mem ALERT"], "{}", agent.log());
    assert_eq!(got[0].json()["first"], alarm["first"], "the same episode");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        rule_states(&a.received()),
        ["mem ALERT"],
        "no second alarm at a: {}",
        agent.log()
    );
    assert_eq!(b.received().len(), 1, "b is told once");

    // The rule renamed: a removed rule and a new one.
    std::fs::write(
        &cfg,
        two_receivers(
            dir.path(),
            &root,
            urls,
            &rule("mem-renamed", 90),
            r#"["a", "b"]"#,
        ),
    )
    .unwrap();
    unsafe_kill(agent.child.id(), 1);
    for (name, rcv) in [("a", &a), ("b", &b)] {
        let got = rcv.wait_for(WAIT, "the recovery and the new alarm", |r| {
            rule_states(r)
                .iter()
                .filter(|s| s.starts_with("mem"))
                .count()
                >= 3
                || r.len() >= 3
        });
        let s = rule_states(&got);
        assert!(
            s.contains(&"mem OK".to_string()),
            "{name}: {s:?} {}",
            agent.log()
        );
        assert!(
            s.contains(&"mem-renamed ALERT".to_string()),
            "{name}: {s:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(a.received().len(), 3, "{:?}", rule_states(&a.received()));
    assert_eq!(b.received().len(), 3, "{:?}", rule_states(&b.received()));
}

/// A 2xx that arrives while SIGTERM drains the outbox is recorded before the agent
/// exits: the restart, with the condition still true, owes that receiver nothing.
#[test]
fn a_2xx_during_the_stop_drain_is_recorded() {
    let dir = TempDir::new("rs-drain");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    // The status line and headers one byte every 25 ms: about a second in flight.
    rcv.script([Reply::SlowHeaders(25)]);
    let cfg = slow_answer_config(dir.path(), &root, &rcv.url("/a"));
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    assert!(agent.stop(), "SIGTERM ends the agent: {}", agent.log());
    assert!(
        !agent.log().contains("spooling what is left"),
        "the answer came within the drain: {}",
        agent.log()
    );
    assert_eq!(
        rcv.received().len(),
        1,
        "the slow answer was awaited, not retried: {}",
        agent.log()
    );
    let again = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rcv.received().len(),
        1,
        "the alarm is not sent again: {}",
        again.log()
    );
}

/// A 2xx answered to the sink of the config before a reload is recorded by the agent
/// after it: a later restart does not send that alarm again.
#[test]
fn a_2xx_to_the_sinks_of_the_previous_config_is_recorded() {
    let dir = TempDir::new("rs-retired");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    rcv.script([Reply::SlowHeaders(25)]);
    let cfg = slow_answer_config(dir.path(), &root, &rcv.url("/a"));
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("> 95", "> 96")).unwrap();
    unsafe_kill(agent.child.id(), 1);
    // The slow answer ends about a second after the request; then a cycle writes it.
    let t0 = Instant::now();
    while !agent.log().contains("delivered alarm") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(agent.log().contains("reloaded"), "{}", agent.log());
    assert_eq!(
        rcv.received().len(),
        1,
        "the slow answer was awaited, not retried: {}",
        agent.log()
    );
    kill9(&mut agent);
    let again = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rcv.received().len(),
        1,
        "the alarm is not sent again: {}",
        again.log()
    );
}
