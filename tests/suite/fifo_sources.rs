//! A source file whose open or read would block — a FIFO where `/proc/loadavg`,
//! `/proc/meminfo`, a `file.value` path, a thermal zone's `type` or an interface's
//! `operstate` should be — gives no sample and never holds up the agent: `once` returns,
//! `run` samples every other family, logs the `file.value` path once and stops on SIGTERM.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long `once` may take: two samples one second apart, and a margin for a busy machine.
const ONCE_WITHIN: Duration = Duration::from_secs(10);

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A fixture root whose loadavg, meminfo, `data/value` (the `file.value` path), thermal
/// zone 0's `type` and eth0's `operstate` are FIFOs nobody writes; uptime, net/dev and
/// thermal zone 1 are ordinary files.
fn fifo_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    put(&root, "proc/uptime", "4242.00 100.00\n");
    put(
        &root,
        "proc/net/dev",
        "Inter-|   Receive                            |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
    );
    put(&root, "sys/class/thermal/thermal_zone0/temp", "50000\n");
    put(
        &root,
        "sys/class/thermal/thermal_zone1/type",
        "cpu-thermal\n",
    );
    put(&root, "sys/class/thermal/thermal_zone1/temp", "41000\n");
    for fifo in [
        "proc/loadavg",
        "proc/meminfo",
        "data/value",
        "sys/class/thermal/thermal_zone0/type",
        "sys/class/net/eth0/operstate",
    ] {
        mkfifo(&root.join(fifo));
    }
    root
}

fn config(dir: &Path, root: &Path, url: &str) -> PathBuf {
    let cfg = dir.join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
hostname = "h"
interval = "1s"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "value"
metric = "file.value"
path = "/data/value"
critical = "> 1"
notify = ["rcv"]

[[rule]]
name = "up"
metric = "uptime.seconds"
critical = "> 1"
repeat = "1s"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm"]
"#,
            root = root.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn once_returns_and_lists_the_other_families() {
    let dir = TempDir::new("fifo-once");
    let root = fifo_root(dir.path());
    let cfg = config(dir.path(), &root, "http://127.0.0.1:9/");
    let t0 = Instant::now();
    let mut child = Command::new(bin())
        .args(["once", "--metrics", "-c"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > ONCE_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`tocsin once` did not return within {ONCE_WITHIN:?} on a root with FIFOs");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "once on a root with 5 FIFOs returned in {} ms",
        took.as_millis()
    );
    let has = |metric: &str, dim: &str| {
        text.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(metric) && f.next() == Some(dim)
        })
    };
    // (No cpu.* here: the root has no /proc/stat.)
    for (metric, dim) in [
        ("uptime.seconds", "-"),
        ("temp.celsius", "type=cpu-thermal"),
        ("net.rx_bps", "iface=eth0"),
    ] {
        assert!(has(metric, dim), "{metric} {dim} is sampled: {text}");
    }
    for metric in ["load.1", "mem.used_percent", "file.value", "net.up"] {
        assert!(
            !text.lines().any(|l| l.starts_with(metric)),
            "a FIFO gives no {metric} sample: {text}"
        );
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("temp.celsius"))
            .count(),
        1,
        "the zone whose type is a FIFO is skipped: {text}"
    );
}

#[test]
fn the_agent_samples_around_fifos_logs_once_and_stops_on_sigterm() {
    let dir = TempDir::new("fifo-run");
    let root = fifo_root(dir.path());
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/alarm"));
    let mut agent = Agent::start(&cfg, dir.path());
    // The uptime rule fires, then repeats every second: several cycles went by.
    let r = rcv.wait_for(Duration::from_secs(15), "four uptime alarms", |r| {
        r.len() >= 4
    });
    assert!(r.iter().all(|q| q.json()["alertName"] == "up"), "{r:#?}");
    let log = agent.log();
    let about_fifo: Vec<&str> = log.lines().filter(|l| l.contains("/data/value")).collect();
    assert_eq!(
        about_fifo.len(),
        1,
        "one line for the file.value FIFO, not one per cycle: {log}"
    );
    assert!(
        about_fifo[0].contains("not a regular file"),
        "{}",
        about_fifo[0]
    );
    let t0 = Instant::now();
    assert!(agent.stop(), "SIGTERM stops the agent: {}", agent.log());
    eprintln!(
        "SIGTERM stopped the agent in {} ms",
        t0.elapsed().as_millis()
    );
    use std::os::unix::fs::FileTypeExt as _;
    let kind = std::fs::symlink_metadata(root.join("data/value"))
        .unwrap()
        .file_type();
    assert!(kind.is_fifo(), "the FIFO is left as it was");
}

/// The device's identity under `root` (`hostname` and `device_id` = `auto`) is read the
/// same way: a FIFO there is no identity, and `check` returns.
#[test]
fn check_returns_when_the_identity_files_are_fifos() {
    let dir = TempDir::new("fifo-identity");
    let root = dir.path().join("root");
    for fifo in [
        "proc/sys/kernel/hostname",
        "etc/machine-id",
        "sys/class/net/eth0/address",
    ] {
        mkfifo(&root.join(fifo));
    }
    put(&root, "sys/class/net/eth1/address", "02:00:00:00:00:01\n");
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ndevice_id = \"auto\"\nroot = \"{}\"\n\n[[rule]]\nname = \"r\"\nmetric = \"uptime.seconds\"\ncritical = \"> 1\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\nbody = '{{\"d\": \"${{device_id}}\", \"h\": \"${{hostname}}\"}}'\n",
            root.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(bin())
        .args(["render", "w", "-c"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > ONCE_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loading a config whose identity files are FIFOs did not return");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(r#""d": "02:00:00:00:00:01""#) && text.contains(r#""h": "localhost""#),
        "the first readable MAC, and localhost for the FIFO hostname: {text}"
    );
}
