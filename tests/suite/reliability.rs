//! Nothing lost: the spool across a dead receiver, SIGKILL and restart; SIGTERM with
//! deliveries in flight; torn spool files; no writes while deliveries succeed.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, root: &Path, url: &str, webhook_extra: &str) -> PathBuf {
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
{webhook_extra}
"#,
            root = root.display(),
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    path
}

fn spooled(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("state/spool/rcv"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn wait_log(agent: &Agent, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = agent.log();
        if log.contains(what) || t0.elapsed() > WAIT {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn spooled_events_arrive_exactly_once_after_sigkill_and_restart() {
    let dir = TempDir::new("restart");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    // Nobody listens on the port (yet), and no other test's receiver is given it.
    let closed = ClosedPort::new();
    let port = closed.port();
    let cfg = config(dir.path(), &root, &format!("http://127.0.0.1:{port}/a"), "");

    // Receiver down: the alarm is spooled at its first failed attempt, the retries run
    // out; then the agent is killed.
    let mut agent = Agent::start(&cfg, dir.path());
    let log = wait_log(&agent, "giving up on alarm");
    assert!(
        log.contains("giving up on alarm") && log.contains("spooled"),
        "{log}"
    );
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    let files = spooled(dir.path());
    assert_eq!(files.len(), 1, "one event on disk: {files:?}");
    let id = files[0].file_name().unwrap().to_str().unwrap()[21..57].to_string();

    // Memory is fine now, the receiver is back, the agent restarts.
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = closed.reopen();
    let agent = Agent::start(&cfg, dir.path());
    // The firing state continues the episode: the spooled alarm, then (memory is fine)
    // its recovery, after it.
    let r = rcv.wait_for(WAIT, "the spooled alarm and its recovery", |r| r.len() >= 2);
    std::thread::sleep(Duration::from_millis(1500));
    let r2 = rcv.received();
    assert_eq!(r2[1].json()["alertState"], "OK");
    assert_eq!(
        r2.len(),
        2,
        "the alarm exactly once, then its recovery: {:?}",
        r2.iter()
            .map(|x| x.header("x-tocsin-event-id"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r[0].header("x-tocsin-event-id"),
        Some(id.as_str()),
        "the same event id as before the restart"
    );
    assert_eq!(r[0].json()["alertState"], "ALERT");
    assert!(
        spooled(dir.path()).is_empty(),
        "the spool is empty once delivered"
    );
    assert!(
        agent.log().contains("spooled events wait"),
        "{}",
        agent.log()
    );
}

#[test]
fn sigterm_spools_what_is_still_in_flight() {
    let dir = TempDir::new("sigterm");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    rcv.script(std::iter::repeat_n(Reply::Silence, 5));
    let cfg = config(dir.path(), &root, &rcv.url("/t"), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("timeout = \"1s\"", "timeout = \"60s\"");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm in flight", |r| !r.is_empty());
    let t0 = Instant::now();
    assert!(agent.stop(), "SIGTERM ends the agent within its drain time");
    let took = t0.elapsed();
    let log = agent.log();
    assert!(log.contains("spooling what is left"), "{log}");
    assert!(took < Duration::from_secs(10), "bounded: {took:?}");
    let files = spooled(dir.path());
    assert_eq!(files.len(), 1, "the alarm in flight was spooled: {log}");
}

#[test]
fn a_torn_spool_file_is_skipped_never_a_crash() {
    let dir = TempDir::new("torn");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/t"), "");
    let spool = dir.path().join("state/spool/rcv");
    std::fs::create_dir_all(&spool).unwrap();
    // A power cut in the middle of a write, and a file that is not a spool file at all.
    std::fs::write(
        spool.join("00000001795339813000-01a20223-ea88-782d-a88d-b30e8234d6be.ev"),
        b"TCSN\x01\x00\x01",
    )
    .unwrap();
    std::fs::write(spool.join("00000001795339813001-nonsense.ev"), b"hello").unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    let log = wait_log(&agent, "moved aside");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(log.contains("is damaged"), "{log}");
    let bad = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "bad"))
        .count();
    assert_eq!(bad, 2, "both moved aside");
    assert!(rcv.received().is_empty(), "nothing sent from damaged files");
    assert!(matches!(agent.child.try_wait(), Ok(None)), "still running");
    assert!(!agent.log().contains("panicked"));
}

#[test]
fn nothing_is_written_while_deliveries_succeed() {
    let dir = TempDir::new("nowrite");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    // An alarm repeated every cycle: 50 deliveries in 5 s of 100 ms cycles.
    let cfg = config(dir.path(), &root, &rcv.url("/ok"), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "critical = \"> 95\"",
        "critical = \"> 95\"\nrepeat = \"100ms\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "40 deliveries", |r| r.len() >= 40);
    assert!(agent.stop());
    // The files: the last-known-good config, written at start because it was new, and the
    // firing state (the alarm, then its 2xx) — repeats and their 2xx write nothing.
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["firing.state", "lkg.1", "lkg.current"],
        "no spool, no temp files: zero bytes written by deliveries"
    );
    let written = std::fs::metadata(dir.path().join("state/lkg.1/config.toml"))
        .unwrap()
        .modified()
        .unwrap();
    // A restart with the same config writes nothing at all.
    let mut again = Agent::start(&cfg, dir.path());
    let n = rcv.received().len();
    rcv.wait_for(WAIT, "more deliveries", |r| r.len() >= n + 10);
    assert!(again.stop());
    assert_eq!(
        std::fs::metadata(dir.path().join("state/lkg.1/config.toml"))
            .unwrap()
            .modified()
            .unwrap(),
        written
    );
}

#[test]
fn sighup_rejects_a_bad_config_and_keeps_rule_state_over_a_good_one() {
    let dir = TempDir::new("reload");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/r"), "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| r.len() == 1);

    // A broken rollout: rejected with its errors, the running config stays.
    std::fs::write(
        &cfg,
        good.replace("critical = \"> 95\"", "critical = \"=> 95\""),
    )
    .unwrap();
    unsafe_kill(agent.child.id(), 1);
    let log = wait_log(&agent, "rejected");
    assert!(
        log.contains("invalid condition") && log.contains("keeping the running config"),
        "{log}"
    );

    // A good reload that only adds a rule: the firing rule keeps its state, no re-fire.
    let added = "[[rule]]\nname = \"load\"\nmetric = \"load.1\"\nwarn = \"> 1000\"\n\n[[webhook]]";
    std::fs::write(&cfg, good.replace("[[webhook]]", added)).unwrap();
    unsafe_kill(agent.child.id(), 1);
    let log = wait_log(&agent, "kept their state");
    assert!(
        log.contains("(1 unchanged rules kept their state)"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        rcv.received().len(),
        1,
        "the unchanged rule did not fire again"
    );
    // It recovers normally afterwards.
    put(&root, "proc/meminfo", &meminfo(40));
    let r = rcv.wait_for(WAIT, "the recovery", |r| r.len() == 2);
    assert_eq!(r[1].json()["alertState"], "OK");
}

#[test]
fn an_invalid_config_at_start_falls_back_to_the_last_known_good_copy() {
    let dir = TempDir::new("lkg");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/l"), "");
    // A first run records the good config.
    let mut first = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the first alarm", |r| !r.is_empty());
    assert!(first.stop());
    // A rollout breaks the file; the device reboots.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace(
            "format = \"cloudmonitor-json\"",
            "format = \"cloudmonitor-jsno\"",
        ),
    )
    .unwrap();
    let n = rcv.received().len();
    let agent = Agent::start(&cfg, dir.path());
    // The episode goes on under the fallback config (no second alarm); the condition
    // clears and the fallback, which has the rule, sends the recovery.
    wait_log(&agent, "IS INVALID");
    put(&root, "proc/meminfo", &meminfo(40));
    let r = rcv.wait_for(WAIT, "the recovery from the fallback config", |r| {
        r.len() > n
    });
    assert_eq!(r[n].json()["alertState"], "OK");
    let log = agent.log();
    assert!(!log.contains("gone from the config"), "{log}");
    assert!(
        log.contains("unknown format `cloudmonitor-jsno`"),
        "the errors are logged: {log}"
    );
    assert!(
        log.contains("IS INVALID") && log.contains("lkg.1/config.toml"),
        "loudly: {log}"
    );
}

#[test]
fn status_and_replay_over_the_control_socket() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;
    let dir = TempDir::new("control");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let sock = dir.path().join("control.sock");
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{root}\"\nstate_dir = \"{state}\"\ncontrol_socket = \"{sock}\"\n\n[[rule]]\nname = \"mem-high\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"{url}\"\nformat = \"template\"\nbody = '{{\"id\": \"${{event_id}}\", \"replay_of\": \"${{replay_of}}\"}}'\nevents = [\"alarm\"]\n",
            root = root.display(),
            state = dir.path().join("state").display(),
            sock = sock.display(),
            url = rcv.url("/c"),
        ),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    let r = rcv.wait_for(WAIT, "the alarm", |r| r.len() == 1);
    let id = r[0].json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "owner-only"
    );

    let out = Command::new(bin())
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("mem-high") && l.contains("CRITICAL") && l.ends_with("ALERT")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(4).collect::<Vec<_>>() == ["w", "0", "0", "1"]),
        "queue 0, spooled 0, delivered 1: {text}"
    );
    assert!(
        text.contains(&id),
        "recent deliveries list the event: {text}"
    );

    let out = Command::new(bin())
        .args(["replay", &id, "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = rcv.wait_for(WAIT, "the replay", |r| r.len() == 2);
    let j = r[1].json();
    assert_eq!(j["replay_of"], id.as_str(), "replay_of = the old id");
    assert_ne!(j["id"], id.as_str(), "a new event id");

    let out = Command::new(bin())
        .args(["replay", "01234567-89ab-7fff-bfff-ffffffffffff", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no recent or spooled event"));
    drop(agent);
    // With no agent running, status says so and exits 2.
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(bin())
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
