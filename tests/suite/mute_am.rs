//! A rule mute against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by tests/run.sh): the rule's alert is no longer
//! re-sent, so it lapses there when its `endsAt` passes (never resolved by tocsin); at
//! unmute the reconciliation fires it again with the episode's `startsAt`.

use crate::common::am::{self, Cluster};
use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn mem_alert(a: &[Value]) -> Option<&Value> {
    a.iter().find(|x| x["labels"]["alertname"] == "mem-high")
}

fn tocsin(args: &[&str], cfg: &Path) -> String {
    let o = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_rule_mute_lets_its_alert_lapse_and_unmute_fires_it_again_with_the_episode_start() {
    let Some(_) = am::require() else {
        return;
    };
    let dir = TempDir::new("mute-am");
    let cluster = Cluster::start(1);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["am"]

[[webhook]]
name = "am"
format = "alertmanager"
urls = ["{url}"]
resend = "1s"
timeout = "1s"
retries = 0
"#,
            root = root.display(),
            dir = dir.path().display(),
            url = cluster.url(0),
        ),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    let a = cluster.wait_until(0, WAIT, |a| mem_alert(a).is_some());
    let starts = mem_alert(&a).unwrap()["startsAt"].clone();

    let said = tocsin(&["mute", "mem-high", "--for", "1h"], &cfg);
    assert!(said.starts_with("rule mem-high: muted"), "{said}");
    // No longer re-sent: it lapses (its endsAt, 4 × resend, passes) while still breaching.
    if let Err(a) = cluster.poll(0, WAIT, |a| mem_alert(a).is_none()) {
        panic!("the muted alert did not lapse: {a:#?}\n{}", agent.log());
    }

    let said = tocsin(&["unmute", "mem-high"], &cfg);
    assert!(said.starts_with("rule mem-high: unmuted"), "{said}");
    let a = cluster.wait_until(0, WAIT, |a| mem_alert(a).is_some());
    let again = mem_alert(&a).unwrap();
    assert_eq!(
        again["startsAt"], starts,
        "the episode's startsAt: {again:#}"
    );
    assert_eq!(again["status"]["state"], "active");
}
