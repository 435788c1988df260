//! The Alertmanager harness (tests/suite/common/am.rs) against the real thing, and the
//! behaviour of Alertmanager 0.25's v2 API that the `alertmanager` format relies on, each
//! shown with hand-written alerts (no tocsin involved):
//!
//! - alerts are per peer: a cluster gossips silences and the notification log, never
//!   alerts, so a sender must post to every peer;
//! - `GET /api/v2/alerts` lists only alerts that have not ended: posting an alert with
//!   `endsAt` in the past resolves it and it disappears at once;
//! - a re-post merges: the earliest `startsAt` and the latest `endsAt` win, so a firing
//!   re-post cannot shorten an alert, only an `endsAt` in the past ends it; without
//!   `endsAt` an alert ends `resolve_timeout` (5 m) after it arrived;
//! - one invalid alert makes the whole request 400, yet the valid ones are kept;
//! - alerts live in memory only: a restarted peer has none (silences come back);
//! - inhibition is evaluated at query time: a muted alert reads `suppressed` the moment
//!   its source arrives, and `active` as soon as the source's `endsAt` has passed.
//!
//! Without the binary each test says so loudly and passes.

use crate::common::am::{self, Cluster};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn names(alerts: &[Value]) -> Vec<&str> {
    let mut n: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    n.sort_unstable();
    n
}

fn find<'a>(alerts: &'a [Value], name: &str, device: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["device_id"] == device)
}

/// An alert as tocsin's `alertmanager` format sends it, firing since `start` until `end`
/// (milliseconds from now).
fn alert(name: &str, device: &str, start: i64, end: i64) -> Value {
    json!({
        "labels": {
            "alertname": name,
            "severity": "critical",
            "instance": "edge-1",
            "device_id": device,
            "metric": "disk.used_percent",
            "mount": "/",
            "site": "lab",
        },
        "annotations": {
            "summary": format!("{name} on {device}"),
            "description": "disk.used_percent{mount=\"/\"} = 97% (> 90)",
            "value": "97",
            "threshold": "> 90",
        },
        "startsAt": am::at(start),
        "endsAt": am::at(end),
    })
}

fn post(c: &Cluster, i: usize, alerts: &Value) -> (u16, String) {
    c.post_alerts(i, &alerts.to_string())
        .unwrap_or_else(|e| panic!("POST to alertmanager {i}: {e}\n{}", c.log(i)))
}

fn silences(c: &Cluster, i: usize) -> Vec<Value> {
    let (_, b) = c.get(i, "/api/v2/silences").unwrap();
    serde_json::from_str(&b).unwrap()
}

fn ms(v: &Value) -> i64 {
    am::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
}

#[test]
fn rfc3339_round_trips() {
    for t in [0i64, 951_782_400_123, 1_767_225_599_999, 4_102_444_800_000] {
        let s = am::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(t as u64));
        assert_eq!(am::parse_rfc3339(&s), Some(t), "{s}");
    }
    assert_eq!(
        am::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
        "2000-02-29T00:00:00.123Z"
    );
    assert_eq!(
        am::parse_rfc3339("2000-02-29T01:00:00+01:00"),
        Some(951_782_400_000)
    );
    assert_eq!(
        am::parse_rfc3339("2000-02-29T00:00:00.5Z"),
        Some(951_782_400_500)
    );
}

#[test]
fn a_cluster_lists_what_each_peer_was_sent_and_gossips_no_alerts() {
    let Some(_) = am::require() else {
        return;
    };
    let mut c = Cluster::start(2);
    // They did form a cluster, so what follows is not a broken one.
    let t0 = Instant::now();
    while (0..2).any(|i| c.members(i) < 2) {
        assert!(
            t0.elapsed() < WAIT,
            "no cluster:\n{}\n{}",
            c.log(0),
            c.log(1)
        );
        thread::sleep(Duration::from_millis(100));
    }

    let sent = alert("disk-full", "dev-0001", -1000, 3_600_000);
    assert_eq!(post(&c, 0, &json!([sent])), (200, String::new()));
    let alerts = c.wait_until(0, WAIT, |a| find(a, "disk-full", "dev-0001").is_some());
    let got = find(&alerts, "disk-full", "dev-0001").unwrap();
    assert_eq!(got["labels"], sent["labels"], "labels as sent, no more");
    assert_eq!(got["annotations"], sent["annotations"]);
    assert_eq!(got["startsAt"], sent["startsAt"]);
    assert_eq!(got["endsAt"], sent["endsAt"]);
    // Listed at once as active, not "unprocessed".
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(got["receivers"][0]["name"], "null");

    // Peer 1 never hears of it: 2 s is 20 gossip and 2 push-pull intervals.
    let other = c.poll(1, Duration::from_secs(2), |a| !a.is_empty());
    assert_eq!(
        other.map_err(|a| a.len()),
        Err(0),
        "alerts are not gossiped"
    );

    // Silences are: one made on peer 0 shows on peer 1.
    let silence = json!({
        "matchers": [{"name": "device_id", "value": "dev-0002", "isRegex": false, "isEqual": true}],
        "startsAt": am::at(0),
        "endsAt": am::at(3_600_000),
        "createdBy": "harness",
        "comment": "gossip check",
    });
    let (status, body) = am::request(
        c.port(0),
        "POST",
        "/api/v2/silences",
        Some(&silence.to_string()),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let t0 = Instant::now();
    while silences(&c, 1).is_empty() {
        assert!(t0.elapsed() < WAIT, "silence not gossiped:\n{}", c.log(1));
        thread::sleep(Duration::from_millis(100));
    }

    // Restart (SIGKILL, same ports, same storage): alerts are gone (memory only), the
    // silence is back, and the cluster re-forms.
    c.restart(0);
    assert!(c.running(0));
    assert_eq!(
        names(&c.alerts(0)),
        Vec::<&str>::new(),
        "alerts do not survive"
    );
    let t0 = Instant::now();
    while silences(&c, 0).is_empty() || c.members(0) < 2 {
        assert!(t0.elapsed() < WAIT, "restarted peer:\n{}", c.log(0));
        thread::sleep(Duration::from_millis(100));
    }

    // A killed peer refuses connections; the other is unaffected.
    c.kill(0);
    assert!(!c.running(0));
    assert!(c.get(0, "/-/ready").is_err());
    assert!(c.get(1, "/-/ready").is_ok_and(|(s, _)| s == 200));
}

#[test]
fn resolved_alerts_are_not_listed_and_re_posts_merge() {
    let Some(_) = am::require() else {
        return;
    };
    let c = Cluster::start(1);

    // One invalid alert (no labels) fails the request, but the valid ones are kept.
    let batch = json!([
        alert("B", "d", -1000, 3_600_000),
        {"labels": {}, "startsAt": am::at(0)},
        alert("C", "d", -1000, 3_600_000),
    ]);
    let (status, body) = post(&c, 0, &batch);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at least one label pair required"), "{body}");
    assert_eq!(names(&c.alerts(0)), ["B", "C"]);

    // An endsAt in the past resolves: gone from the list at once.
    assert_eq!(post(&c, 0, &json!([alert("B", "d", -1000, -100)])).0, 200);
    assert_eq!(names(&c.alerts(0)), ["C"]);
    // An alert that arrives already ended is accepted and never listed.
    assert_eq!(post(&c, 0, &json!([alert("D", "d", -2000, -100)])).0, 200);
    assert_eq!(names(&c.alerts(0)), ["C"]);

    // A re-post merges: earliest startsAt, latest endsAt. A firing alert cannot be
    // shortened, only ended.
    let first = alert("M", "d", -60_000, 3_600_000);
    post(&c, 0, &json!([first]));
    post(&c, 0, &json!([alert("M", "d", -1000, 2000)]));
    let m = c.alert(0, "M").unwrap();
    assert_eq!(m["startsAt"], first["startsAt"]);
    assert_eq!(m["endsAt"], first["endsAt"]);
    // Re-fired after it ended: a new startsAt.
    post(&c, 0, &json!([alert("M", "d", -1000, -100)]));
    assert!(c.alert(0, "M").is_none());
    let again = alert("M", "d", 0, 60_000);
    post(&c, 0, &json!([again]));
    assert_eq!(c.alert(0, "M").unwrap()["startsAt"], again["startsAt"]);

    // No endsAt: it ends resolve_timeout (5 m) after it arrived.
    let before = am::now_ms();
    post(
        &c,
        0,
        &json!([{"labels": {"alertname": "N"}, "startsAt": am::at(-1000)}]),
    );
    let n = c.alert(0, "N").unwrap();
    let ends = ms(&n["endsAt"]) - before;
    assert!(
        (299_000..=302_000).contains(&ends),
        "endsAt now + {ends} ms"
    );
}

#[test]
fn the_heartbeat_mutes_the_silent_alert_until_its_end() {
    let Some(_) = am::require() else {
        return;
    };
    let c = Cluster::start(1);
    let heartbeat = alert("TocsinHeartbeat", "x", -1000, 2000);
    let beat_ends = ms(&heartbeat["endsAt"]);
    let batch = json!([
        heartbeat,
        alert("TocsinDeviceSilent", "x", -1000, 3_600_000),
        // Another device's silent alert: `equal: [device_id]` keeps it active.
        alert("TocsinDeviceSilent", "y", -1000, 3_600_000),
    ]);
    assert_eq!(post(&c, 0, &batch).0, 200);

    // Muted at once, by the heartbeat's fingerprint.
    let alerts = c.alerts(0);
    let beat = find(&alerts, "TocsinHeartbeat", "x").expect("heartbeat listed");
    let silent = find(&alerts, "TocsinDeviceSilent", "x").unwrap();
    assert_eq!(silent["status"]["state"], "suppressed", "{silent:#}");
    assert_eq!(
        silent["status"]["inhibitedBy"],
        json!([beat["fingerprint"]])
    );
    let other = find(&alerts, "TocsinDeviceSilent", "y").unwrap();
    assert_eq!(other["status"]["state"], "active", "{other:#}");
    assert_eq!(beat["status"]["state"], "active");

    // Still muted shortly before the heartbeat ends.
    let wait = (beat_ends - 500 - am::now_ms()).max(0) as u64;
    thread::sleep(Duration::from_millis(wait));
    let alerts = c.alerts(0);
    let silent = find(&alerts, "TocsinDeviceSilent", "x").unwrap();
    assert_eq!(silent["status"]["state"], "suppressed", "{silent:#}");

    // Unmuted once it has ended: inhibition is evaluated when the alerts are read, so no
    // later than the next GET.
    let alerts = c.wait_until(0, WAIT, |a| {
        find(a, "TocsinDeviceSilent", "x").is_some_and(|s| s["status"]["state"] == "active")
    });
    let lag = am::now_ms() - beat_ends;
    eprintln!(
        "TocsinDeviceSilent active {lag} ms after the heartbeat's endsAt (polled every 100 ms)"
    );
    assert!(lag >= 0, "unmuted {} ms before the heartbeat ended", -lag);
    assert!(lag < 3000, "unmuted {lag} ms after the heartbeat ended");
    assert!(
        find(&alerts, "TocsinHeartbeat", "x").is_none(),
        "an ended heartbeat is not listed"
    );
    let silent = find(&alerts, "TocsinDeviceSilent", "x").unwrap();
    assert_eq!(silent["status"]["inhibitedBy"], json!([]));
}

#[test]
fn a_cluster_dies_after_its_lifetime() {
    let Some(_) = am::require() else {
        return;
    };
    let c = Cluster::start_for(1, Duration::from_secs(1));
    let t0 = Instant::now();
    while c.running(0) {
        assert!(t0.elapsed() < WAIT, "outlived its lifetime");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
