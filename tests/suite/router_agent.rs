//! End to end on a router fixture: the real binary watches `net.up` for `wan*`, the link
//! goes down, and a receiver on 127.0.0.1 gets the alarm; uptime going backwards sends a
//! `reboot` event; `tocsin once --metrics` lists the router families.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

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

fn router(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/router"),
        &root,
    );
    root
}

fn config(dir: &Path, root: &Path, url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[agent]
device_id = "rt-7"
hostname = "rt-7"
interval = "100ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "wan-down"
metric = "net.up"
match = {{ iface = "wan*" }}
critical = "== 0"
times = 2
notify = ["rcv"]

[[rule]]
name = "dnsmasq"
metric = "process.up"
pidfile = "/var/run/dnsmasq/dnsmasq.cfg01411c.pid"
critical = "== 0"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm", "recovery", "reboot"]
retry_interval = "100ms"
"#,
        root = root.display(),
        dir = dir.display()
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn wan_link_down_reaches_the_receiver_and_a_reboot_is_reported() {
    let dir = TempDir::new("router-e2e");
    let root = router(dir.path());
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &rcv.url("/alarm"));
    let mut agent = Agent::start(&cfg, dir.path());

    std::thread::sleep(Duration::from_millis(500));
    assert!(rcv.received().is_empty(), "the link is up, dnsmasq runs");

    put(&root, "sys/class/net/wan/operstate", "down\n");
    let r = rcv.wait_for(WAIT, "the wan alarm", |r| !r.is_empty());
    let j = r[0].json();
    assert_eq!(j["alertName"], "wan-down");
    assert_eq!(j["alertState"], "ALERT");
    assert_eq!(j["metricName"], "net.up");
    assert_eq!(j["curValue"], "0");
    let dims: serde_json::Value = serde_json::from_str(j["dimensions"].as_str().unwrap()).unwrap();
    assert_eq!(dims[0]["iface"], "wan", "{dims}");

    put(&root, "proc/uptime", "12.50 40.00\n");
    let r = rcv.wait_for(WAIT, "the reboot event", |r| {
        r.iter()
            .any(|x| x.header("x-tocsin-event-type") == Some("reboot"))
    });
    assert_eq!(
        r.iter()
            .filter(|x| x.header("x-tocsin-event-type") == Some("reboot"))
            .count(),
        1,
        "one reboot, not one per cycle"
    );
    assert!(agent.stop(), "stops on SIGTERM");
    assert!(agent.log().contains("reboot detected"), "{}", agent.log());
}

#[test]
fn once_metrics_lists_the_router_families() {
    let dir = TempDir::new("router-once");
    let root = router(dir.path());
    let cfg = config(dir.path(), &root, "http://127.0.0.1:9/");
    let out = Command::new(bin())
        .args(["once", "--metrics", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "temp.celsius",
        "sensor=mt7915_phy0/temp1",
        "net.up",
        "iface=pppoe-wan",
        "net.rx_bps",
        "net.drops_per_s",
        "conntrack.used_percent",
        "process.up",
        "pidfile=/var/run/dnsmasq/dnsmasq.cfg01411c.pid",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}
