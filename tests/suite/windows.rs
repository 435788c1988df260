//! Rules over a window (`aggregate`, `window`), end to end: the real binary samples a
//! fixture root whose /proc/meminfo the test rewrites every interval, and delivers to real
//! receivers on 127.0.0.1 in CloudMonitor's JSON and form formats.
//!
//! Nothing here asserts how fast anything happened: the agent's cycles and the test's
//! writes are not in step, so every scenario holds a value for several intervals and
//! reads what the receivers got.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
/// The agent's interval in every scenario.
const TICK: Duration = Duration::from_millis(200);

/// An agent config at a 200 ms interval over `root`: `rules` (whole `[[rule]]` tables,
/// each notifying both webhooks), one cloudmonitor-json webhook to `json` and one
/// cloudmonitor-form webhook to `form`.
fn config(dir: &Path, root: &Path, rules: &str, json: &str, form: &str) -> PathBuf {
    let text = format!(
        r#"[agent]
device_id = "gw-0042"
hostname = "edge"
interval = "200ms"
root = "{root}"
state_dir = "{root}/.state"

{rules}

[[webhook]]
name = "json"
url = "{json}"
format = "cloudmonitor-json"
events = ["alarm", "recovery", "no_data"]
retry_interval = "100ms"

[[webhook]]
name = "form"
url = "{form}"
format = "cloudmonitor-form"
events = ["alarm", "recovery", "no_data"]
retry_interval = "100ms"
"#,
        root = root.display(),
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `[[rule]]` on mem.used_percent notifying both webhooks.
fn rule(name: &str, extra: &str) -> String {
    format!(
        "[[rule]]\nname = \"{name}\"\nmetric = \"mem.used_percent\"\nnotify = [\"json\", \"form\"]\n{extra}\n"
    )
}

/// Holds /proc/meminfo at each of `values` for one interval, in turn.
fn play(root: &Path, values: &[u64]) {
    for &v in values {
        put(root, "proc/meminfo", &meminfo(v));
        sleep(TICK);
    }
}

/// The JSON bodies of `rule`'s events, in order of arrival.
fn json_of(r: &[Received], rule: &str) -> Vec<serde_json::Value> {
    r.iter()
        .map(Received::json)
        .filter(|j| j["alertName"] == rule)
        .collect()
}

/// The decoded form fields of `rule`'s events, in order of arrival.
fn form_of(r: &[Received], rule: &str) -> Vec<Vec<(String, String)>> {
    r.iter()
        .map(|r| form_pairs(std::str::from_utf8(&r.body).unwrap()))
        .filter(|f| f.iter().any(|(k, v)| k == "alertName" && v == rule))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The one `expression` of a cloudmonitor-json body (a JSON array inside a string).
fn expression(j: &serde_json::Value) -> String {
    let inner: serde_json::Value =
        serde_json::from_str(j["expression"].as_str().expect("a string")).expect("JSON inside");
    inner[0]["expression"].as_str().unwrap_or("").to_string()
}

fn cur_value(j: &serde_json::Value) -> f64 {
    j["curValue"].as_str().unwrap().parse().unwrap()
}

#[test]
fn an_average_ignores_a_spike_that_the_sample_itself_fires_on_and_fires_when_sustained() {
    let dir = TempDir::new("win-avg");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(20));
    let (json, form) = (Receiver::start(), Receiver::start());
    let rules = [
        rule(
            "mem-avg",
            "aggregate = \"avg\"\nwindow = \"2s\"\ncritical = \"> 90\"",
        ),
        rule("mem-last", "aggregate = \"last\"\ncritical = \"> 90\""),
    ]
    .concat();
    let cfg = config(dir.path(), &root, &rules, &json.url("/"), &form.url("/"));
    let _agent = Agent::start(&cfg, dir.path());

    // Twenty 20s (the window's warm-up is over after ten), one 100, twenty 20s: the
    // window of 2 s always averages under 90 (at most two samples of 100 among ten).
    play(&root, &[20; 20]);
    play(&root, &[100]);
    play(&root, &[20; 20]);
    let r = json.wait_for(WAIT, "the spike's alarm of mem-last", |r| {
        json_of(r, "mem-last").len() >= 2
    });
    let last = json_of(&r, "mem-last");
    assert_eq!(last[0]["alertState"], "ALERT", "{last:#?}");
    assert_eq!(cur_value(&last[0]), 100.0);
    assert_eq!(expression(&last[0]), "$value>90");
    assert_eq!(last[1]["alertState"], "OK");
    assert!(
        json_of(&r, "mem-avg").is_empty(),
        "the average fired on one spike: {r:#?}"
    );

    // A sustained 91–95: the average passes 90 and the rule fires, on it.
    let t0 = Instant::now();
    while json_of(&json.received(), "mem-avg").is_empty() && t0.elapsed() < WAIT {
        play(&root, &[91, 93, 95, 92, 94]);
    }
    let r = json.wait_for(WAIT, "mem-avg's alarm", |r| {
        !json_of(r, "mem-avg").is_empty()
    });
    let avg = json_of(&r, "mem-avg");
    assert_eq!(avg.len(), 1, "{avg:#?}");
    assert_eq!(avg[0]["alertState"], "ALERT");
    assert_eq!(expression(&avg[0]), "$Average>90");
    let v = cur_value(&avg[0]);
    assert!(v > 90.0 && v <= 95.0, "curValue {v} is an average of 91–95");

    // The form body names it the same way, with the same value.
    let f = form.wait_for(WAIT, "the form alarm", |r| {
        !form_of(r, "mem-avg").is_empty()
    });
    let f = form_of(&f, "mem-avg");
    assert_eq!(field(&f[0], "expression"), "$Average>90");
    assert_eq!(field(&f[0], "alertState"), "ALERT");
    assert_eq!(
        field(&f[0], "curValue"),
        avg[0]["curValue"].as_str().unwrap()
    );
    let l = form_of(&form.received(), "mem-last");
    assert_eq!(field(&l[0], "expression"), "$value>90");
}

#[test]
fn max_fires_on_a_spike_min_and_sum_only_on_a_whole_window() {
    let dir = TempDir::new("win-mms");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(20));
    let (json, form) = (Receiver::start(), Receiver::start());
    // A window of 1 s at 200 ms holds the last five samples.
    let rules = [
        rule(
            "mem-max",
            "aggregate = \"max\"\nwindow = \"1s\"\ncritical = \"> 90\"",
        ),
        rule(
            "mem-min",
            "aggregate = \"min\"\nwindow = \"1s\"\ncritical = \"> 50\"",
        ),
        rule(
            "mem-sum",
            "aggregate = \"sum\"\nwindow = \"1s\"\ncritical = \"> 280\"",
        ),
    ]
    .concat();
    let cfg = config(dir.path(), &root, &rules, &json.url("/"), &form.url("/"));
    let _agent = Agent::start(&cfg, dir.path());

    play(&root, &[20; 10]);
    play(&root, &[100]);
    play(&root, &[20; 10]);
    let r = json.wait_for(WAIT, "mem-max's alarm", |r| {
        !json_of(r, "mem-max").is_empty()
    });
    let max = json_of(&r, "mem-max");
    assert_eq!(max[0]["alertState"], "ALERT");
    assert_eq!(cur_value(&max[0]), 100.0);
    assert_eq!(expression(&max[0]), "$Maximum>90");
    // Neither the smallest sample (20) nor the sum (at most 2 × 100 + 3 × 20 = 260)
    // passed its threshold.
    let before = json.received();
    assert!(json_of(&before, "mem-min").is_empty(), "{before:#?}");
    assert!(json_of(&before, "mem-sum").is_empty(), "{before:#?}");

    // A sustained 60: the smallest of a whole window passes 50, and five samples of 60
    // sum to 300.
    let t0 = Instant::now();
    let both =
        |r: &[Received]| !json_of(r, "mem-min").is_empty() && !json_of(r, "mem-sum").is_empty();
    while !both(&json.received()) && t0.elapsed() < WAIT {
        play(&root, &[60; 5]);
    }
    let r = json.wait_for(WAIT, "mem-min's and mem-sum's alarms", both);
    let min = json_of(&r, "mem-min");
    assert_eq!(min[0]["alertState"], "ALERT");
    assert_eq!(expression(&min[0]), "$Minimum>50");
    assert_eq!(cur_value(&min[0]), 60.0);
    let sum = json_of(&r, "mem-sum");
    assert_eq!(sum[0]["alertState"], "ALERT");
    assert_eq!(expression(&sum[0]), "$Sum>280");
    assert_eq!(cur_value(&sum[0]), 300.0);
    let f = form.wait_for(WAIT, "mem-sum in the form body", |r| {
        !form_of(r, "mem-sum").is_empty()
    });
    assert_eq!(field(&form_of(&f, "mem-sum")[0], "expression"), "$Sum>280");
}

#[test]
fn a_window_warms_up_before_it_counts_and_a_vanished_series_reaches_no_data() {
    let dir = TempDir::new("win-warm");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let (json, form) = (Receiver::start(), Receiver::start());
    let rules = rule(
        "mem-avg",
        "aggregate = \"avg\"\nwindow = \"2s\"\ncritical = \"> 90\"\nno_data = \"alert\"\nno_data_after = 3",
    );
    let cfg = config(dir.path(), &root, &rules, &json.url("/"), &form.url("/"));
    let t0 = Instant::now();
    let _agent = Agent::start(&cfg, dir.path());
    let r = json.wait_for(WAIT, "the alarm", |r| !json_of(r, "mem-avg").is_empty());
    // Breaching from the first sample, but nothing counts before that sample is
    // window − interval (1.8 s) old: a lower bound, which no slowness can break.
    assert!(
        t0.elapsed() >= Duration::from_millis(1800),
        "fired {:?} after the start, inside the warm-up",
        t0.elapsed()
    );
    let a = json_of(&r, "mem-avg");
    assert_eq!(a[0]["alertState"], "ALERT");
    assert_eq!(cur_value(&a[0]), 97.0);

    // The series vanishes: three cycles without a sample, then INSUFFICIENT_DATA.
    std::fs::remove_file(root.join("proc/meminfo")).unwrap();
    let r = json.wait_for(WAIT, "INSUFFICIENT_DATA", |r| {
        json_of(r, "mem-avg").len() >= 2
    });
    let a = json_of(&r, "mem-avg");
    assert_eq!(a[1]["alertState"], "INSUFFICIENT_DATA", "{a:#?}");
    assert_eq!(a[1]["curValue"], "");
    // Data back after more than a window: the warm-up was once, so the first sample is
    // evaluated at once; the 97s have left the window, which holds only the new sample.
    sleep(Duration::from_millis(2500));
    put(&root, "proc/meminfo", &meminfo(98));
    let r = json.wait_for(WAIT, "data back", |r| json_of(r, "mem-avg").len() >= 3);
    let a = json_of(&r, "mem-avg");
    assert_eq!(a[2]["alertState"], "ALERT", "{a:#?}");
    assert_eq!(cur_value(&a[2]), 98.0);
}

#[test]
fn a_reload_that_changes_the_window_recovers_the_old_alarm_then_fires_on_the_new_window() {
    let dir = TempDir::new("win-reload");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let (json, form) = (Receiver::start(), Receiver::start());
    let with_window = |w: &str| {
        rule(
            "mem-avg",
            &format!("aggregate = \"avg\"\nwindow = \"{w}\"\ncritical = \"> 90\""),
        )
    };
    let cfg = config(
        dir.path(),
        &root,
        &with_window("1s"),
        &json.url("/"),
        &form.url("/"),
    );
    let agent = Agent::start(&cfg, dir.path());
    json.wait_for(WAIT, "the alarm", |r| json_of(r, "mem-avg").len() == 1);

    // The same window under another threshold: the episode goes on, nothing is sent.
    let rules = rule(
        "mem-avg",
        "aggregate = \"avg\"\nwindow = \"1s\"\ncritical = \"> 91\"",
    );
    config(dir.path(), &root, &rules, &json.url("/"), &form.url("/"));
    unsafe_kill(agent.child.id(), 1);
    let log_has = |s: &str| {
        let t0 = Instant::now();
        while !agent.log().contains(s) && t0.elapsed() < WAIT {
            sleep(Duration::from_millis(20));
        }
        agent.log().contains(s)
    };
    assert!(log_has("reloaded"), "{}", agent.log());
    sleep(TICK * 10);
    assert_eq!(json_of(&json.received(), "mem-avg").len(), 1);

    // A longer window: the rule's windows start over; the alarm about the old one
    // recovers (not dropped silently), and the new window fires once it warmed up.
    config(
        dir.path(),
        &root,
        &with_window("2s"),
        &json.url("/"),
        &form.url("/"),
    );
    unsafe_kill(agent.child.id(), 1);
    let r = json.wait_for(WAIT, "recovery, then a new alarm", |r| {
        json_of(r, "mem-avg").len() >= 3
    });
    let a = json_of(&r, "mem-avg");
    let states: Vec<_> = a
        .iter()
        .map(|j| j["alertState"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ALERT", "OK", "ALERT"], "{a:#?}");
    assert_eq!(expression(&a[2]), "$Average>90");
    assert!(
        agent.log().contains("starts a new window and recovers"),
        "{}",
        agent.log()
    );
    let f = form.wait_for(WAIT, "the same in the form body", |r| {
        form_of(r, "mem-avg").len() >= 3
    });
    let states: Vec<String> = form_of(&f, "mem-avg")
        .iter()
        .map(|f| field(f, "alertState").to_string())
        .collect();
    assert_eq!(states, ["ALERT", "OK", "ALERT"]);
}
