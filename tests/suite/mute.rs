//! `tocsin mute` / `unmute` against a running agent and a real receiver: a rule mute
//! silences the rule, holds across a restart, expires and reconciles exactly once; a
//! webhook mute keeps the heartbeat going; `status` shows the mute and what it
//! suppressed; requests from another uid are refused by SO_PEERCRED and logged; bounds
//! and unknown names are errors.

use crate::common::*;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// One memory rule `mem` and one webhook `rcv` taking `events`; `extra` goes into
/// `[agent]`, `more` at the end.
fn config(dir: &Path, root: &Path, url: &str, events: &str, extra: &str, more: &str) -> PathBuf {
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
control_socket = "{sock}"
{extra}

[[rule]]
name = "mem"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "template"
body = '{{"type": "${{event_type}}", "state": "${{state}}", "id": "${{event_id}}", "first": ${{first_trigger_ms}}}}'
events = [{events}]
retries = 1
retry_interval = "100ms"
timeout = "1s"
{more}
"#,
            root = root.display(),
            state = dir.join("state").display(),
            sock = dir.join("control.sock").display(),
        ),
    )
    .unwrap();
    path
}

fn tocsin(args: &[&str], config: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_socket(p: &Path) {
    let t0 = Instant::now();
    while !p.exists() && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.exists(), "no control socket at {}", p.display());
}

fn types(r: &[Received]) -> Vec<String> {
    r.iter()
        .map(|x| x.json()["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The suppressed count `status` gives for `webhook`.
fn suppressed(status: &str, webhook: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("suppressed while muted:"))?;
    line.split([':', ','])
        .map(str::trim)
        .find_map(|p| p.strip_prefix(webhook)?.trim().parse().ok())
}

#[test]
fn a_rule_mute_silences_survives_a_restart_expires_and_reconciles_exactly_once() {
    let dir = TempDir::new("mute-rule");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/a"),
        r#""alarm", "recovery""#,
        "",
        "",
    );
    let mut agent = Agent::start(&cfg, dir.path());
    wait_socket(&dir.path().join("control.sock"));
    let m = tocsin(&["mute", "mem", "--for", "6s"], &cfg);
    assert!(m.status.success(), "{}", out(&m));
    assert!(
        String::from_utf8_lossy(&m.stdout).starts_with("rule mem: muted for 6s"),
        "{}",
        out(&m)
    );
    let file = dir.path().join("state/mute.state");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the mute file is owner-only");

    // Alarm, recovery, alarm again while muted: none goes out.
    put(&root, "proc/meminfo", &meminfo(97));
    std::thread::sleep(Duration::from_millis(700));
    put(&root, "proc/meminfo", &meminfo(40));
    std::thread::sleep(Duration::from_millis(700));
    put(&root, "proc/meminfo", &meminfo(97));
    std::thread::sleep(Duration::from_millis(700));
    let st = tocsin(&["status"], &cfg);
    let text = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(st.status.success(), "{}", out(&st));
    let row = text
        .lines()
        .find(|l| l.starts_with("rule mem"))
        .unwrap_or_else(|| panic!("status shows the mute: {text}"));
    assert!(!row.contains("(not in config)"), "{row}");
    assert_eq!(suppressed(&text, "rcv"), Some(3), "{text}");
    assert!(
        rcv.received().is_empty(),
        "muted: {:?}",
        types(&rcv.received())
    );

    // A restart: the mute holds (the series continues its episode, still unannounced).
    assert!(agent.stop());
    let mut agent = Agent::start(&cfg, dir.path());
    wait_socket(&dir.path().join("control.sock"));
    let st = tocsin(&["status"], &cfg);
    let text = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(text.lines().any(|l| l.starts_with("rule mem")), "{text}");
    assert!(
        agent.log().contains("mute of rule mem restored"),
        "{}",
        agent.log()
    );
    assert!(rcv.received().is_empty(), "still muted after the restart");

    // It expires: one alarm, the state now — not the alarm/recovery/alarm of meanwhile.
    let r = rcv.wait_for(WAIT, "the reconciled alarm", |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let r2 = rcv.received();
    assert_eq!(types(&r2), ["alarm"], "exactly one event: {}", agent.log());
    assert_eq!(r[0].json()["state"], "ALERT");
    assert!(
        agent.log().contains("mute of rule mem expired"),
        "{}",
        agent.log()
    );
    let st = tocsin(&["status"], &cfg);
    let text = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(!text.lines().any(|l| l.starts_with("rule mem")), "{text}");
    // The mute file says so too: a third start finds no mute.
    assert!(agent.stop());
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(3).any(|w| w == b"mem"),
        "the expired mute is gone from the file"
    );

    // And unmuted the rule speaks as before: its recovery goes out at once.
    let agent = Agent::start(&cfg, dir.path());
    put(&root, "proc/meminfo", &meminfo(40));
    rcv.wait_for(WAIT, "the recovery", |r| r.len() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        types(&rcv.received()),
        ["alarm", "recovery"],
        "{}",
        agent.log()
    );
}

#[test]
fn a_webhook_mute_keeps_the_heartbeat_going_and_unmute_reconciles_once() {
    let dir = TempDir::new("mute-hook");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(
        dir.path(),
        &root,
        &rcv.url("/a"),
        r#""alarm", "recovery", "heartbeat", "config_reload""#,
        "heartbeat = \"500ms\"",
        "",
    );
    let agent = Agent::start(&cfg, dir.path());
    wait_socket(&dir.path().join("control.sock"));
    let m = tocsin(&["mute", "--webhook", "rcv"], &cfg);
    assert!(m.status.success(), "{}", out(&m));
    assert!(
        String::from_utf8_lossy(&m.stdout).starts_with("webhook rcv: muted for 1h 0m 0s"),
        "the default is 1h: {}",
        out(&m)
    );
    let at_mute = rcv.received().len();
    put(&root, "proc/meminfo", &meminfo(97));
    // A reload's config_reload is muted as well.
    unsafe_kill(agent.child.id(), 1);
    rcv.wait_for(WAIT, "two heartbeats while muted", |r| {
        types(&r[at_mute.min(r.len())..])
            .iter()
            .filter(|t| *t == "heartbeat")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let during: Vec<String> = types(&rcv.received()[at_mute..]);
    assert!(
        during.iter().all(|t| t == "heartbeat"),
        "only heartbeats while muted: {during:?}"
    );
    let st = tocsin(&["status"], &cfg);
    let text = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(
        text.lines().any(|l| l.starts_with("webhook rcv ")),
        "{text}"
    );
    assert_eq!(
        suppressed(&text, "rcv"),
        Some(2),
        "the alarm and config_reload: {text}"
    );

    let u = tocsin(&["unmute", "--webhook", "rcv"], &cfg);
    assert!(u.status.success(), "{}", out(&u));
    assert!(
        String::from_utf8_lossy(&u.stdout).starts_with("webhook rcv: unmuted; 1 events owed"),
        "{}",
        out(&u)
    );
    rcv.wait_for(WAIT, "the reconciled alarm", |r| {
        types(&r[at_mute.min(r.len())..])
            .iter()
            .any(|t| t == "alarm")
    });
    std::thread::sleep(Duration::from_millis(1200));
    let after: Vec<String> = types(&rcv.received()[at_mute..])
        .into_iter()
        .filter(|t| t != "heartbeat")
        .collect();
    assert_eq!(
        after,
        ["alarm"],
        "one alarm, no config_reload replayed: {}",
        agent.log()
    );
    let again = tocsin(&["unmute", "--webhook", "rcv"], &cfg);
    assert_eq!(again.status.code(), Some(2), "{}", out(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("webhook rcv is not muted"),
        "{}",
        out(&again)
    );
}

#[test]
fn a_request_from_another_uid_is_refused_by_peer_credentials_and_logged() {
    if !Path::new("/usr/bin/setpriv").exists() {
        skip("setpriv (util-linux) is missing");
        return;
    }
    let dir = TempDir::new("mute-uid");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/a"), r#""alarm""#, "", "");
    let agent = Agent::start(&cfg, dir.path());
    let sock = dir.path().join("control.sock");
    wait_socket(&sock);
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                bin(),
            ])
            .args(args)
            .arg("--socket")
            .arg(&sock)
            .output()
            .unwrap()
    };
    // The socket's mode is the first fence: uid 65534 cannot even connect.
    let o = as_nobody(&["mute", "mem"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("permission denied: only"),
        "{}",
        out(&o)
    );
    // With the socket opened up (a mistaken chmod), the peer credentials still refuse.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [
        &["mute", "mem"][..],
        &["status"],
        &["replay", "x"],
        &["unmute", "--all"],
    ] {
        let o = as_nobody(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout)
                .starts_with("error: permission denied: only the agent's user and root"),
            "{args:?}: {}",
            out(&o)
        );
    }
    let log = agent.log();
    assert_eq!(
        log.matches("control socket: refused a request from uid 65534 (pid ")
            .count(),
        4,
        "{log}"
    );
    // Nothing was muted; root's own request goes through.
    let st = tocsin(&["status"], &cfg);
    assert!(
        !String::from_utf8_lossy(&st.stdout).contains("MUTED"),
        "{}",
        out(&st)
    );
    assert!(!dir.path().join("state/mute.state").exists());
    let o = tocsin(&["mute", "mem", "--for", "1m"], &cfg);
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn bounds_unknown_names_and_alertmanager_webhooks_are_errors() {
    let dir = TempDir::new("mute-bad");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let am = format!(
        "[[webhook]]\nname = \"am\"\nformat = \"alertmanager\"\nurls = [\"{}\"]\nretries = 0\ntimeout = \"1s\"\n",
        rcv.url("/api/v2/alerts")
    );
    let cfg = config(dir.path(), &root, &rcv.url("/a"), r#""alarm""#, "", &am);
    // Usage errors need no agent: exit 1.
    for (args, says) in [
        (&["mute", "mem", "--for", "169h"][..], "--for"),
        (&["mute", "mem", "--for", "8d"], "--for"),
        (&["mute", "mem", "--for", "0s"], "--for"),
        (&["mute"], "one of RULE"),
        (&["mute", "mem", "--webhook", "rcv"], "one of RULE"),
        (&["unmute", "mem", "--for", "1h"], "unknown option"),
    ] {
        let o = tocsin(args, &cfg);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            out(&o)
        );
    }
    let _agent = Agent::start(&cfg, dir.path());
    wait_socket(&dir.path().join("control.sock"));
    for (args, says) in [
        (
            &["mute", "nosuch"][..],
            "error: no rule named `nosuch` in the running config",
        ),
        (
            &["mute", "--webhook", "nosuch"],
            "error: no webhook named `nosuch`",
        ),
        (&["unmute", "mem"], "error: rule mem is not muted"),
        (
            &["mute", "--webhook", "am"],
            "error: webhook am sends to Alertmanager: use an Alertmanager silence",
        ),
    ] {
        let o = tocsin(args, &cfg);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(says),
            "{args:?}: {}",
            out(&o)
        );
    }
    assert!(
        !dir.path().join("state/mute.state").exists(),
        "nothing was muted"
    );
    // `--all` leaves the Alertmanager webhook out, and says so.
    let o = tocsin(&["mute", "--all", "--for", "168h"], &cfg);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("not the Alertmanager webhooks am"),
        "{}",
        out(&o)
    );
    // A mute whose rule a reload removes stays, shown "(not in config)".
    let o = tocsin(&["mute", "mem", "--for", "2h"], &cfg);
    assert!(o.status.success(), "{}", out(&o));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("name = \"mem\"", "name = \"memory\"")).unwrap();
    unsafe_kill(_agent.child.id(), 1);
    let t0 = std::time::Instant::now();
    let status = loop {
        let st = tocsin(&["status"], &cfg);
        let text = String::from_utf8_lossy(&st.stdout).into_owned();
        if text.contains("memory") || t0.elapsed() > WAIT {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let row = status
        .lines()
        .find(|l| l.starts_with("rule mem "))
        .unwrap_or_else(|| panic!("the mute stays after the reload: {status}"));
    assert!(row.contains("(not in config)"), "{row}");
    assert!(
        row.contains("1h 59m") || row.contains("2h 0m 0s"),
        "time left: {row}"
    );
    assert!(status.lines().any(|l| l.starts_with("all ")), "{status}");
    // Unmuting it is allowed; muting an unknown rule is not.
    let o = tocsin(&["unmute", "mem"], &cfg);
    assert!(o.status.success(), "{}", out(&o));
    let o = tocsin(&["mute", "mem"], &cfg);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
}

#[test]
fn a_mute_set_while_the_clock_was_implausible_runs_its_whole_duration_from_the_next_start() {
    let dir = TempDir::new("mute-clock");
    let Some(clock) = FakeClock::new(dir.path(), "1999-06-01 00:00:00") else {
        return;
    };
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/a"), r#""alarm""#, "", "");
    let mut agent = Agent::start_with_clock(&cfg, dir.path(), &clock);
    wait_socket(&dir.path().join("control.sock"));
    let o = tocsin(&["mute", "mem", "--for", "1h"], &cfg);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("until 1999-06-01T01:00:00Z"),
        "{}",
        out(&o)
    );
    assert!(agent.stop());
    // NTP set the clock: the stored expiry (1999) is long past, but it was set under an
    // implausible clock, so the hour counts again from this start.
    let agent = Agent::start(&cfg, dir.path());
    wait_socket(&dir.path().join("control.sock"));
    let st = tocsin(&["status"], &cfg);
    let text = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(
        text.lines().any(|l| l.starts_with("rule mem ")),
        "{text}\n{}",
        agent.log()
    );
    assert!(
        agent
            .log()
            .contains("mute of rule mem restored: 1h 0m 0s left"),
        "{}",
        agent.log()
    );
}
