//! The `alertmanager` format against the real thing: two Prometheus Alertmanager processes
//! (Debian's `prometheus-alertmanager`, installed by tests/run.sh) clustered over loopback,
//! checked through Alertmanager's own API (`GET /api/v2/alerts`, which lists alerts that
//! have not ended). Without the binary the tests say so loudly and pass.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const WAIT: Duration = Duration::from_secs(20);

/// The binary, or a loud note that the test is skipped.
fn alertmanager(test: &str) -> Option<&'static str> {
    if Path::new(BINARY).exists() {
        return Some(BINARY);
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {BINARY} is not installed\n\
         !!! (bash tests/run.sh installs Debian's prometheus-alertmanager)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Alertmanager's config: everything to a receiver that notifies nobody, and the inhibit
/// rule README "Fleet" documents.
const AM_CONFIG: &str = r#"
route:
  receiver: "null"
  group_by: [alertname, device_id]
  group_wait: 1s
receivers:
  - name: "null"
inhibit_rules:
  - source_matchers: [alertname="TocsinHeartbeat"]
    target_matchers: [alertname="TocsinDeviceSilent"]
    equal: [device_id]
"#;

struct Peer {
    web: u16,
    gossip: u16,
    storage: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A cluster of Alertmanagers on loopback; every process is killed on drop.
struct Cluster {
    binary: &'static str,
    dir: PathBuf,
    peers: Vec<Peer>,
}

impl Cluster {
    fn start(binary: &'static str, dir: &Path, n: usize) -> Cluster {
        std::fs::write(dir.join("am.yml"), AM_CONFIG).unwrap();
        let peers = (0..n)
            .map(|i| Peer {
                web: free_port(),
                gossip: free_port(),
                storage: dir.join(format!("am{i}")),
                log: dir.join(format!("am{i}.log")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            binary,
            dir: dir.to_path_buf(),
            peers,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let others: Vec<String> = (0..self.peers.len())
            .filter(|&j| j != i)
            .map(|j| format!("--cluster.peer=127.0.0.1:{}", self.peers[j].gossip))
            .collect();
        let p = &mut self.peers[i];
        std::fs::create_dir_all(&p.storage).unwrap();
        let child = Command::new(self.binary)
            .arg(format!(
                "--config.file={}",
                self.dir.join("am.yml").display()
            ))
            .arg(format!("--storage.path={}", p.storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", p.web))
            .arg(format!("--cluster.listen-address=127.0.0.1:{}", p.gossip))
            .arg(format!(
                "--cluster.advertise-address=127.0.0.1:{}",
                p.gossip
            ))
            .args(others)
            .arg("--cluster.settle-timeout=2s")
            .arg("--cluster.gossip-interval=100ms")
            .arg("--cluster.pushpull-interval=1s")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&p.log).unwrap())
            .spawn()
            .unwrap();
        p.child = Some(child);
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.peers[i].web)
    }

    fn wait_ready(&self, i: usize) {
        let t0 = Instant::now();
        while t0.elapsed() < WAIT {
            if get(self.peers[i].web, "/-/ready").is_some_and(|(s, _)| s == 200) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "alertmanager {i} not ready in {WAIT:?}:\n{}",
            std::fs::read_to_string(&self.peers[i].log).unwrap_or_default()
        );
    }

    /// The alerts peer `i` holds that have not ended (`GET /api/v2/alerts`).
    fn alerts(&self, i: usize) -> Vec<Value> {
        let (status, body) =
            get(self.peers[i].web, "/api/v2/alerts").expect("alertmanager answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }

    /// Peer `i`'s alert named `name`, if it has one that has not ended.
    fn alert(&self, i: usize, name: &str) -> Option<Value> {
        self.alerts(i)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == name)
    }

    /// Waits (bounded) until `f` holds for peer `i`'s alerts.
    fn wait_until(&self, i: usize, what: &str, agent: &Agent, f: impl Fn(&[Value]) -> bool) {
        let t0 = Instant::now();
        loop {
            let alerts = self.alerts(i);
            if f(&alerts) {
                return;
            }
            if t0.elapsed() > WAIT {
                panic!(
                    "peer {i}: {what}: not within {WAIT:?}\nalerts: {alerts:#?}\nagent log:\n{}\nalertmanager log:\n{}",
                    agent.log(),
                    std::fs::read_to_string(&self.peers[i].log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.peers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts peer `i` again on the same ports, with its storage wiped: it knows nothing.
    fn restart_empty(&mut self, i: usize) {
        self.kill(i);
        let _ = std::fs::remove_dir_all(&self.peers[i].storage);
        self.spawn(i);
        self.wait_ready(i);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.peers.len() {
            self.kill(i);
        }
    }
}

/// HTTP/1.0 GET on 127.0.0.1 (so the answer is not chunked): status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split(' ').nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn config(dir: &Path, root: &Path, urls: &[String], heartbeat: bool) -> PathBuf {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let text = format!(
        r#"[agent]
device_id = "gw-0042"
hostname = "edge-1"
interval = "100ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"
labels = {{ site = "north-3" }}
{heartbeat}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
warn = "> 85"
notify = ["am"]

[[webhook]]
name = "am"
format = "alertmanager"
urls = [{urls}]
resend = "1s"
timeout = "1s"
retries = 0
generator_url = "http://192.0.2.1/rule?r=${{rule_id}}"
"#,
        root = root.display(),
        dir = dir.display(),
        urls = urls.join(", "),
        heartbeat = if heartbeat { "heartbeat = \"1s\"" } else { "" },
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn has(alerts: &[Value], name: &str, severity: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["labels"]["alertname"] == name && a["labels"]["severity"] == severity)
}

#[test]
fn fires_on_every_peer_keeps_firing_escalates_and_resolves() {
    let Some(binary) = alertmanager("fires_on_every_peer_keeps_firing_escalates_and_resolves")
    else {
        return;
    };
    let dir = TempDir::new("am-fire");
    let cluster = Cluster::start(binary, dir.path(), 2);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(90));
    let cfg = config(dir.path(), &root, &[cluster.url(0), cluster.url(1)], true);
    let mut agent = Agent::start(&cfg, dir.path());

    // WARN fires on both peers, with tocsin's labels and annotations.
    for i in 0..2 {
        cluster.wait_until(i, "mem-high warning fires", &agent, |a| {
            has(a, "mem-high", "warning")
        });
        let a = cluster.alert(i, "mem-high").unwrap();
        let l = &a["labels"];
        assert_eq!(l["instance"], "edge-1");
        assert_eq!(l["device_id"], "gw-0042");
        assert_eq!(l["metric"], "mem.used_percent");
        assert_eq!(l["site"], "north-3");
        assert_eq!(a["annotations"]["value"], "90");
        assert_eq!(a["annotations"]["threshold"], "> 85");
        assert!(a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("mem.used_percent = 90%"));
        assert_eq!(a["generatorURL"], "http://192.0.2.1/rule?r=mem-high");
        assert_eq!(a["status"]["state"], "active");
        // The heartbeat fires, and mutes the device's "silent" alert.
        cluster.wait_until(i, "heartbeat and muted silent alert", &agent, |a| {
            has(a, "TocsinHeartbeat", "none")
                && a.iter().any(|x| {
                    x["labels"]["alertname"] == "TocsinDeviceSilent"
                        && x["status"]["state"] == "suppressed"
                })
        });
    }

    // Keeps firing across resends: its first endsAt (4 × resend) passes, it is still
    // there, with a later endsAt, and the same startsAt.
    let first = cluster.alert(0, "mem-high").unwrap();
    thread::sleep(Duration::from_millis(5000));
    for i in 0..2 {
        let now = cluster
            .alert(i, "mem-high")
            .expect("still firing after 4 × resend");
        assert_eq!(now["startsAt"], first["startsAt"]);
        assert!(now["endsAt"].as_str() > first["endsAt"].as_str(), "{now:#}");
    }

    // Escalation: the warning alert resolves, the critical one fires.
    put(&root, "proc/meminfo", &meminfo(97));
    for i in 0..2 {
        cluster.wait_until(i, "critical replaces warning", &agent, |a| {
            has(a, "mem-high", "critical") && !has(a, "mem-high", "warning")
        });
    }

    // Recovery: gone from both peers (Alertmanager lists only alerts that have not ended).
    put(&root, "proc/meminfo", &meminfo(50));
    for i in 0..2 {
        cluster.wait_until(i, "mem-high resolves", &agent, |a| {
            !a.iter().any(|x| x["labels"]["alertname"] == "mem-high")
        });
    }

    // Dead-man's switch: the agent dies; its heartbeat expires (4 × resend) and the
    // device's silent alert is no longer muted.
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    for i in 0..2 {
        cluster.wait_until(i, "TocsinDeviceSilent becomes active", &agent, |a| {
            !has(a, "TocsinHeartbeat", "none")
                && a.iter().any(|x| {
                    x["labels"]["alertname"] == "TocsinDeviceSilent"
                        && x["status"]["state"] == "active"
                })
        });
    }
}

#[test]
fn a_dead_peer_holds_back_no_other_and_catches_up() {
    let Some(binary) = alertmanager("a_dead_peer_holds_back_no_other_and_catches_up") else {
        return;
    };
    let dir = TempDir::new("am-peer");
    let mut cluster = Cluster::start(binary, dir.path(), 2);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    cluster.kill(1);
    let cfg = config(dir.path(), &root, &[cluster.url(0), cluster.url(1)], false);
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    cluster.wait_until(0, "alert reaches the live peer", &agent, |a| {
        has(a, "mem-high", "critical")
    });
    let reached = t0.elapsed();
    // Peer 1 is refusing connections; peer 0 got it within a couple of cycles anyway.
    assert!(reached < Duration::from_secs(5), "{reached:?}");
    thread::sleep(Duration::from_millis(1500));
    let dead = cluster.url(1).replace("http://", "");
    assert!(
        agent
            .log()
            .lines()
            .any(|l| l.contains("giving up on") && l.contains(&dead)),
        "the dead peer is reported:\n{}",
        agent.log()
    );

    // Peer 1 comes back knowing nothing (no gossip of alerts between peers): tocsin
    // re-sends what fires.
    cluster.restart_empty(1);
    cluster.wait_until(1, "the restarted peer catches up", &agent, |a| {
        has(a, "mem-high", "critical")
    });
    assert!(
        agent.log().contains("accepts alerts again"),
        "{}",
        agent.log()
    );
    // And the live peer kept it all along.
    assert!(cluster.alert(0, "mem-high").is_some());
}

#[test]
fn a_reload_keeps_firing_alerts_firing() {
    let Some(binary) = alertmanager("a_reload_keeps_firing_alerts_firing") else {
        return;
    };
    let dir = TempDir::new("am-reload");
    let cluster = Cluster::start(binary, dir.path(), 1);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let cfg = config(dir.path(), &root, &[cluster.url(0)], false);
    let agent = Agent::start(&cfg, dir.path());
    cluster.wait_until(0, "mem-high fires", &agent, |a| {
        has(a, "mem-high", "critical")
    });
    let before = cluster.alert(0, "mem-high").unwrap();
    // The rule keeps its state over the reload, so no new alarm comes: the table must
    // carry the alert over, or it would stop being re-sent and end at its endsAt.
    unsafe_kill(agent.child.id(), 1);
    let t0 = Instant::now();
    while !agent.log().contains("reloaded") {
        assert!(t0.elapsed() < WAIT, "no reload:\n{}", agent.log());
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(5000));
    let after = cluster
        .alert(0, "mem-high")
        .unwrap_or_else(|| panic!("still firing 5 s after the reload:\n{}", agent.log()));
    assert_eq!(after["startsAt"], before["startsAt"]);
    assert!(after["endsAt"].as_str() > before["endsAt"].as_str());
}

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A router without RTC boots in the past: alerts stamped then would reach Alertmanager
/// already ended. They are held until the clock is set, then sent with plausible times.
/// (A plain receiver stands in for Alertmanager: this needs no Alertmanager binary.)
#[test]
fn alerts_wait_for_the_clock_to_be_set() {
    if !Path::new(FAKETIME).exists() {
        eprintln!("SKIPPED LOUDLY: {FAKETIME} is missing; tests/run.sh installs Debian's faketime");
        return;
    }
    let dir = TempDir::new("am-clock");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let base = rcv.url("/am").trim_end_matches('/').to_string();
    let cfg = config(dir.path(), &root, &[base], false);
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "2001-01-01 00:00:00\n").unwrap();
    let stderr = dir.path().join("agent.stderr");
    let child = Command::new(bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME_TIMESTAMP_FILE", &clock)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut agent = Agent { child, stderr };
    let t0 = Instant::now();
    while !agent.log().contains("clock not set") {
        assert!(t0.elapsed() < WAIT, "{}", agent.log());
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(1000));
    assert!(
        rcv.received().is_empty(),
        "nothing is sent under a 2001 clock"
    );
    // NTP sets the clock.
    let now = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M:%S"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(&clock, &now).unwrap();
    let got = rcv.wait_for(WAIT, "the held alert", |r| !r.is_empty());
    agent.stop();
    assert_eq!(got[0].target, "/am/api/v2/alerts");
    let alerts = got[0].json();
    let a = &alerts[0];
    assert_eq!(a["labels"]["alertname"], "mem-high");
    let year = &now[..4];
    for t in ["startsAt", "endsAt"] {
        assert!(
            a[t].as_str().unwrap().starts_with(year),
            "{t} is a real time, not 2001: {a:#}"
        );
    }
    assert!(a["endsAt"].as_str() > a["startsAt"].as_str(), "{a:#}");
}
