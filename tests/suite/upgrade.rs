//! An upgrade over the first version's `state_dir` (tests/fixtures/state-v1, written by
//! that version's binary): its last-known-good copy is converted into a generation and
//! used as the fallback; its spooled events are delivered, not set aside.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of the fixture in `dir`: the config it was made with and its `state/`.
fn fixture(dir: &Path) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1"),
        dir,
    );
    put(dir, "root/proc/meminfo", &meminfo(10));
}

/// `tocsin run -c tocsin.toml` in `dir` (the fixture's paths are relative to it).
fn start_in(dir: &Path) -> Agent {
    let stderr = dir.join("agent.stderr");
    let child = Command::new(bin())
        .args(["run", "-c", "tocsin.toml"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Agent { child, stderr }
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

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn the_first_versions_last_known_good_copy_is_converted_and_runs_when_the_config_is_invalid() {
    let dir = TempDir::new("upgrade-lkg");
    fixture(dir.path());
    let cfg = dir.path().join("tocsin.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("cloudmonitor-json", "cloudmonitor-jsno")).unwrap();
    let mut agent = start_in(dir.path());
    let log = wait_log(&agent, "IS INVALID");
    // The included rule came from the converted copy: one rule.
    let log = if log.contains("1 rules") {
        log
    } else {
        wait_log(&agent, "1 rules")
    };
    assert!(agent.stop(), "{log}");
    let state = dir.path().join("state");
    assert!(
        log.contains("converted the last-known-good copy")
            && log.contains("IS INVALID")
            && log.contains("lkg.1/config.toml"),
        "{log}"
    );
    assert!(log.contains("device gw-v1 (gw-v1): 1 rules"), "{log}");
    let names = names(&state);
    assert!(
        names.iter().any(|n| n == "lkg.1")
            && names.iter().any(|n| n == "lkg.current")
            && !names.iter().any(|n| n.starts_with("last-good")),
        "converted once, the old layout removed: {names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("lkg.1/config.toml")).unwrap(),
        good,
        "the copy is the first version's, byte for byte"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("lkg.1/000-10-mem.toml")).unwrap(),
        std::fs::read_to_string(dir.path().join("conf.d/10-mem.toml")).unwrap(),
    );
}

#[test]
fn a_half_written_generation_is_survived_with_a_log_line_and_several_reloads_leave_one() {
    let dir = TempDir::new("upgrade-gens");
    fixture(dir.path());
    let cfg = dir.path().join("tocsin.toml");
    let state = dir.path().join("state");
    // A first run converts the copy; it stops, then a crash while writing lkg.2 (before
    // the pointer switch) is staged.
    let mut agent = start_in(dir.path());
    wait_log(&agent, "converted the last-known-good copy");
    assert!(agent.stop());
    std::fs::create_dir(state.join("lkg.2")).unwrap();
    std::fs::write(state.join("lkg.2/config.toml"), "[agent]\ndevice_id = ").unwrap();
    std::fs::write(state.join("lkg.2/.000-10-mem.toml"), "").unwrap();

    // The given config is invalid: the fallback is lkg.1, never the half-written lkg.2.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("cloudmonitor-json", "cloudmonitor-jsno")).unwrap();
    let mut agent = start_in(dir.path());
    let log = wait_log(&agent, "IS INVALID");
    assert!(agent.stop());
    assert!(
        log.contains("removed the half-written last-known-good generation")
            && log.contains("lkg.2"),
        "{log}"
    );
    assert!(log.contains("lkg.1/config.toml"), "{log}");
    assert_eq!(
        names(&state)
            .iter()
            .filter(|n| n.starts_with("lkg."))
            .count(),
        2
    );

    // A good config, then several reloads each with a change: one generation remains.
    std::fs::write(&cfg, &good).unwrap();
    let agent = start_in(dir.path());
    wait_log(&agent, "1 rules");
    for i in 0..4 {
        let text = good.replace(
            "interval = \"100ms\"",
            &format!("interval = \"{}ms\"", 101 + i),
        );
        std::fs::write(&cfg, text).unwrap();
        let before = agent.log().matches("reloaded").count();
        unsafe_kill(agent.child.id(), 1);
        let t0 = Instant::now();
        while agent.log().matches("reloaded").count() == before && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let log = agent.log();
    drop(agent);
    assert_eq!(log.matches("reloaded tocsin.toml").count(), 4, "{log}");
    let gens: Vec<String> = names(&state)
        .into_iter()
        .filter(|n| n.starts_with("lkg."))
        .collect();
    assert_eq!(gens, ["lkg.5", "lkg.current"], "{log}");
    assert_eq!(
        std::fs::read_to_string(state.join("lkg.current")).unwrap(),
        "tocsin-lkg 1 lkg.5\n"
    );
    assert!(std::fs::read_to_string(state.join("lkg.5/config.toml"))
        .unwrap()
        .contains("interval = \"104ms\""),);
}

#[test]
fn the_first_versions_spooled_events_are_delivered_after_an_upgrade() {
    let dir = TempDir::new("upgrade-spool");
    fixture(dir.path());
    let spool = dir.path().join("state/spool/rcv");
    let ids: Vec<String> = names(&spool)
        .iter()
        .map(|n| {
            let stem = n.strip_suffix(".ev").unwrap();
            stem.split_once('-').unwrap().1.to_string()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    // The upgraded device's config: the same webhook name, now reachable.
    let rcv = Receiver::start();
    let cfg = dir.path().join("tocsin.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("http://127.0.0.1:9/v1", &rcv.url("/v1"));
    std::fs::write(&cfg, text).unwrap();
    let mut agent = start_in(dir.path());
    let r = rcv.wait_for(WAIT, "the three spooled events", |r| {
        ids.iter()
            .all(|id| r.iter().any(|x| x.header("x-tocsin-event-id") == Some(id)))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.stop());
    let log = agent.log();
    for id in &ids {
        assert_eq!(
            r.iter()
                .filter(|x| x.header("x-tocsin-event-id") == Some(id.as_str()))
                .count(),
            1,
            "{id} delivered once: {log}"
        );
    }
    let alarm = r
        .iter()
        .find(|x| x.header("x-tocsin-event-type") == Some("alarm"))
        .unwrap();
    assert_eq!(alarm.json()["alertName"], "mem-high-v1");
    assert!(!log.contains(".bad"), "nothing set aside: {log}");
    assert!(
        names(&spool)
            .iter()
            .all(|n| !n.ends_with(".ev") && !n.ends_with(".bad")),
        "{:?}",
        names(&spool)
    );
}
