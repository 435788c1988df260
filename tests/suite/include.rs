//! `[agent] include`: one fleet-wide file plus a per-device conf.d, end to end with the
//! real binary: `check` names both files of a conflict, SIGHUP picks up a file dropped
//! into conf.d, and the last-known-good copy keeps the included files it was made with.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn fleet(dir: &Path, root: &Path, url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[agent]
hostname = "edge"
interval = "100ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"
include = "conf.d/*.toml"

[[webhook]]
name = "ops"
url = "{url}"
format = "template"
body = '{{"device": "${{device_id}}", "rule": "${{rule_id}}", "type": "${{event_type}}"}}'
events = ["alarm"]
"#,
        root = root.display(),
        dir = dir.display(),
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const DEVICE: &str = r#"[agent]
device_id = "gw-7"
labels = { customer = "acme" }

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["ops"]
"#;

fn wait_log(agent: &Agent, what: &str) {
    let t0 = Instant::now();
    while !agent.log().contains(what) {
        assert!(t0.elapsed() < WAIT, "no `{what}` in:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_names_both_files_of_a_conflict() {
    let dir = TempDir::new("inc-check");
    let cfg = fleet(dir.path(), dir.path(), "http://127.0.0.1:9/");
    put(dir.path(), "conf.d/10-device.toml", DEVICE);
    put(
        dir.path(),
        "conf.d/20-copy.toml",
        "[agent]\ndevice_id = \"gw-8\"\n\n[[rule]]\nname = \"mem-high\"\nmetric = \"load.1\"\nwarn = \"> 1\"\nnotify = [\"ops\"]\n",
    );
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let dev = dir.path().join("conf.d/10-device.toml");
    let copy = dir.path().join("conf.d/20-copy.toml");
    for want in [
        format!(
            "{}:2:1: `device_id` is already set at {}:2:1",
            copy.display(),
            dev.display()
        ),
        format!(
            "{}:5:8: duplicate rule name `mem-high` (first defined at {}:6:8)",
            copy.display(),
            dev.display()
        ),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    std::fs::remove_file(&copy).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("included {}", dev.display())),
        "{stdout}"
    );
}

/// `check -c tocsin.toml` in the config's own directory with `include = "*.toml"`: the
/// pattern reads the current directory (it used to read nothing and pass), and the main
/// file, which the pattern matches too, is not merged with itself.
#[test]
fn a_pattern_beside_a_bare_config_name_reads_the_current_directory_but_not_the_main_file() {
    let dir = TempDir::new("inc-bare");
    put(
        dir.path(),
        "tocsin.toml",
        "[agent]\nhostname = \"edge\"\ninclude = \"*.toml\"\n",
    );
    put(
        dir.path(),
        "dev.toml",
        "[agent]\nhostname = \"again\"\n\n[[rule]]\nname = \"m\"\nmetric = \"mem.used_percent\"\nwarn = \"> 1\"\nnotify = [\"nowhere\"]\n",
    );
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["check", "-c", "tocsin.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "dev.toml:2:1: `hostname` is already set at tocsin.toml:2:1\n\
         dev.toml:8:11: `notify` names webhook `nowhere`, which is not defined by any [[webhook]]\n"
    );
}

#[test]
fn reload_reads_conf_d_again_and_the_fallback_keeps_its_own_copies() {
    let dir = TempDir::new("inc-reload");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let cfg = fleet(dir.path(), &root, &rcv.url("/a"));
    // Without the device file there is no rule: nothing fires.
    let mut agent = Agent::start(&cfg, dir.path());
    wait_log(&agent, "0 rules");
    std::thread::sleep(Duration::from_millis(500));
    assert!(rcv.received().is_empty());

    // The device file arrives; a reload picks it up.
    put(dir.path(), "conf.d/10-device.toml", DEVICE);
    unsafe_kill(agent.child.id(), 1);
    let r = rcv.wait_for(WAIT, "an alarm from the included rule", |r| !r.is_empty());
    let v = r[0].json();
    assert_eq!(
        (&v["device"], &v["rule"]),
        (&"gw-7".into(), &"mem-high".into())
    );
    assert!(agent.stop());
    let main = tocsin::service::last_good_path(&dir.path().join("state")).unwrap();
    let mut copies: Vec<_> = std::fs::read_dir(main.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    copies.sort();
    assert_eq!(copies, ["000-10-device.toml", "config.toml"]);

    // A rollout breaks the device file; the device restarts on the fallback, which uses
    // the copy it kept, not the broken file.
    put(
        dir.path(),
        "conf.d/10-device.toml",
        &DEVICE.replace("critical", "critcal"),
    );
    let n = rcv.received().len();
    let agent = Agent::start(&cfg, dir.path());
    // The episode goes on under the fallback (no second alarm, the kept rule is the same
    // rule); once it clears, a new episode is alarmed by the fallback.
    wait_log(&agent, "IS INVALID");
    put(&root, "proc/meminfo", &meminfo(40));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(rcv.received().len(), n, "no second alarm: {}", agent.log());
    put(&root, "proc/meminfo", &meminfo(97));
    rcv.wait_for(WAIT, "a new alarm from the fallback", |r| r.len() > n);
    let log = agent.log();
    assert!(!log.contains("gone from the config"), "{log}");
    assert!(
        log.contains("10-device.toml:8:1: unknown key `critcal`"),
        "{log}"
    );
}

/// The fallback keeps an included file whatever its name: `include = "conf.d/*"` may bring
/// in `10-device.conf`, and the copy of it must be read back.
#[test]
fn the_fallback_reads_back_included_files_not_named_toml() {
    let dir = TempDir::new("inc-lkg-name");
    let cfg = fleet(dir.path(), dir.path(), "http://127.0.0.1:9/");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("conf.d/*.toml", "conf.d/*")).unwrap();
    put(dir.path(), "conf.d/10-device.conf", DEVICE);
    let loaded = tocsin::config::load(&cfg).unwrap();
    assert_eq!(loaded.rules.len(), 1);
    let state = dir.path().join("state");
    tocsin::service::save_last_good(&cfg, &loaded.includes, &state);
    let lkg =
        tocsin::config::load_last_good(&tocsin::service::last_good_path(&state).unwrap()).unwrap();
    assert_eq!(lkg.agent.device_id, "gw-7");
    assert_eq!(lkg.rules.len(), 1);
    assert_eq!(lkg.includes.len(), 1);
}
