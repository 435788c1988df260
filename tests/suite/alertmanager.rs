//! The `alertmanager` format against the real thing: two Prometheus Alertmanager processes
//! (Debian's `prometheus-alertmanager`, installed by tests/run.sh) clustered over loopback,
//! checked through Alertmanager's own API (`GET /api/v2/alerts`, which lists alerts that
//! have not ended). Without the binary the tests say so loudly and pass.

use crate::common::am::{self, Cluster};
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Waits (bounded) until `f` holds for peer `i`'s alerts; on timeout shows the alerts,
/// the agent's log and the peer's.
fn wait_until(c: &Cluster, i: usize, what: &str, agent: &Agent, f: impl Fn(&[Value]) -> bool) {
    if let Err(alerts) = c.poll(i, WAIT, f) {
        panic!(
            "peer {i}: {what}: not within {WAIT:?}\nalerts: {alerts:#?}\nagent log:\n{}\nalertmanager log:\n{}",
            agent.log(),
            c.log(i)
        );
    }
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
    let Some(_) = am::require() else {
        return;
    };
    let dir = TempDir::new("am-fire");
    let cluster = Cluster::start(2);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(90));
    let cfg = config(dir.path(), &root, &[cluster.url(0), cluster.url(1)], true);
    let mut agent = Agent::start(&cfg, dir.path());

    // WARN fires on both peers, with tocsin's labels and annotations.
    for i in 0..2 {
        wait_until(&cluster, i, "mem-high warning fires", &agent, |a| {
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
        wait_until(
            &cluster,
            i,
            "heartbeat and muted silent alert",
            &agent,
            |a| {
                has(a, "TocsinHeartbeat", "none")
                    && a.iter().any(|x| {
                        x["labels"]["alertname"] == "TocsinDeviceSilent"
                            && x["status"]["state"] == "suppressed"
                    })
            },
        );
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
        wait_until(&cluster, i, "critical replaces warning", &agent, |a| {
            has(a, "mem-high", "critical") && !has(a, "mem-high", "warning")
        });
    }

    // Recovery: gone from both peers (Alertmanager lists only alerts that have not ended).
    put(&root, "proc/meminfo", &meminfo(50));
    for i in 0..2 {
        wait_until(&cluster, i, "mem-high resolves", &agent, |a| {
            !a.iter().any(|x| x["labels"]["alertname"] == "mem-high")
        });
    }

    // Dead-man's switch: the agent dies; its heartbeat expires (4 × resend) and the
    // device's silent alert is no longer muted.
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    for i in 0..2 {
        wait_until(
            &cluster,
            i,
            "TocsinDeviceSilent becomes active",
            &agent,
            |a| {
                !has(a, "TocsinHeartbeat", "none")
                    && a.iter().any(|x| {
                        x["labels"]["alertname"] == "TocsinDeviceSilent"
                            && x["status"]["state"] == "active"
                    })
            },
        );
    }
}

#[test]
fn a_dead_peer_holds_back_no_other_and_catches_up() {
    let Some(_) = am::require() else {
        return;
    };
    let dir = TempDir::new("am-peer");
    let mut cluster = Cluster::start(2);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    cluster.kill(1);
    let cfg = config(dir.path(), &root, &[cluster.url(0), cluster.url(1)], false);
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    wait_until(&cluster, 0, "alert reaches the live peer", &agent, |a| {
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
    wait_until(&cluster, 1, "the restarted peer catches up", &agent, |a| {
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
    let Some(_) = am::require() else {
        return;
    };
    let dir = TempDir::new("am-reload");
    let cluster = Cluster::start(1);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let cfg = config(dir.path(), &root, &[cluster.url(0)], false);
    let agent = Agent::start(&cfg, dir.path());
    wait_until(&cluster, 0, "mem-high fires", &agent, |a| {
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

/// A router without RTC boots in the past: alerts stamped then would reach Alertmanager
/// already ended. They are held until the clock is set, then sent with plausible times.
/// (A plain receiver stands in for Alertmanager: this needs no Alertmanager binary.)
#[test]
fn alerts_wait_for_the_clock_to_be_set() {
    let dir = TempDir::new("am-clock");
    let Some(clock) = FakeClock::new(dir.path(), "2001-01-01 00:00:00") else {
        return;
    };
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let base = rcv.url("/am").trim_end_matches('/').to_string();
    let cfg = config(dir.path(), &root, &[base], false);
    let mut agent = Agent::start_with_clock(&cfg, dir.path(), &clock);
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
    let now = clock.set_now();
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
