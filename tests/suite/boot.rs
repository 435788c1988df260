//! Reboots told by the kernel's boot id: a start under another boot id than the one
//! recorded in `state_dir` sends one `reboot`; the same one, or none recorded, sends none.
//! And a `state_dir` on tmpfs is warned about, in the log and in `tocsin status`.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn config(dir: &Path, root: &Path, state: &Path, url: &str) -> PathBuf {
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

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "template"
body = '{{"text": "${{content}}"}}'
events = ["agent_start", "reboot"]
retry_interval = "100ms"
"#,
            root = root.display(),
            state = state.display(),
            sock = dir.join("control.sock").display(),
        ),
    )
    .unwrap();
    path
}

fn set_boot_id(root: &Path, id: &str) {
    put(root, "proc/sys/kernel/random/boot_id", &format!("{id}\n"));
}

fn kinds(r: &[Received]) -> Vec<String> {
    r.iter()
        .filter_map(|x| x.header("x-tocsin-event-type").map(str::to_string))
        .collect()
}

/// Starts the agent, waits for `agent_start` at `rcv` and a little more (a `reboot` is
/// sent right after it), stops it; returns the event types received and the log.
fn run_once(cfg: &Path, dir: &Path, rcv: &Receiver) -> (Vec<String>, String) {
    let before = rcv.received().len();
    let mut agent = Agent::start(cfg, dir);
    rcv.wait_for(WAIT, "agent_start", |r| {
        kinds(&r[before..]).iter().any(|k| k == "agent_start")
    });
    std::thread::sleep(Duration::from_millis(700));
    assert!(agent.stop(), "stops on SIGTERM");
    (kinds(&rcv.received()[before..]), agent.log())
}

#[test]
fn a_changed_boot_id_is_one_reboot_the_same_or_none_recorded_is_none() {
    let dir = TempDir::new("boot-id");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(10));
    let state = dir.path().join("state");
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &state, &rcv.url("/e"));
    set_boot_id(&root, "11111111-2222-3333-4444-555555555555");

    // First start: nothing recorded, no event, one log line; the id is recorded 0600.
    let (got, log) = run_once(&cfg, dir.path(), &rcv);
    assert_eq!(got, ["agent_start"], "no reboot on a first start: {log}");
    assert_eq!(
        log.matches("no boot id recorded").count(),
        1,
        "one log line: {log}"
    );
    let boot = state.join("boot");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&boot).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::metadata(&boot).unwrap().modified().unwrap();

    // The same boot: nothing, and the file is not written again.
    let (got, log) = run_once(&cfg, dir.path(), &rcv);
    assert_eq!(
        got,
        ["agent_start"],
        "no reboot under the same boot id: {log}"
    );
    assert_eq!(
        std::fs::metadata(&boot).unwrap().modified().unwrap(),
        written,
        "written once per boot"
    );

    // Another boot: exactly one reboot, naming both ids.
    set_boot_id(&root, "66666666-7777-8888-9999-000000000000");
    let (got, log) = run_once(&cfg, dir.path(), &rcv);
    assert_eq!(got, ["agent_start", "reboot"], "{log}");
    assert!(
        log.contains("boot id 66666666-7777-8888-9999-000000000000 (was 11111111-2222-3333-4444-555555555555)"),
        "{log}"
    );
    let r = rcv.received();
    let reboot = r
        .iter()
        .find(|x| x.header("x-tocsin-event-type") == Some("reboot"))
        .unwrap();
    let body = String::from_utf8_lossy(&reboot.body).into_owned();
    assert!(
        body.contains("11111111-2222-3333-4444-555555555555")
            && body.contains("66666666-7777-8888-9999-000000000000"),
        "the detail names both ids: {body}"
    );

    // And only once for that boot.
    let (got, log) = run_once(&cfg, dir.path(), &rcv);
    assert_eq!(got, ["agent_start"], "{log}");
}

/// Whether this test may mount a tmpfs in a private mount namespace (root, `unshare -m`).
fn can_mount_tmpfs(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg("mount -t tmpfs -o size=64k tocsin-probe \"$0\"")
        .arg(&probe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_state_dir_on_tmpfs_is_warned_about_in_the_log_and_in_status() {
    let dir = TempDir::new("boot-tmpfs");
    if !can_mount_tmpfs(dir.path()) {
        return skip("mounting a tmpfs needs root and `unshare -m` (CAP_SYS_ADMIN)");
    }
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(10));
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let rcv = Receiver::start();
    let cfg = config(dir.path(), &root, &state, &rcv.url("/e"));
    // The agent and `tocsin status` in one mount namespace where `state` is a tmpfs.
    let script = "mount -t tmpfs -o size=256k,mode=0700 tocsin-test \"$1\" || exit 1; \
         \"$0\" run -c \"$2\" 2>\"$3\" & pid=$!; \
         i=0; while [ $i -lt 100 ] && ! \"$0\" status -c \"$2\" >\"$4\" 2>/dev/null; do sleep 0.1; i=$((i+1)); done; \
         kill -TERM $pid; wait $pid";
    let (log, status) = (dir.path().join("agent.log"), dir.path().join("status.out"));
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", script, bin()])
        .args([&state, &cfg, &log, &status])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent in its namespace did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let status = std::fs::read_to_string(&status).unwrap_or_default();
    let warning = "is on tmpfs: nothing tocsin promises survives a reboot";
    assert_eq!(log.matches(warning).count(), 1, "once in the log: {log}");
    assert!(status.contains(warning), "in status: {status}\n{log}");

    // On a persistent filesystem (the test's temp dir is one here), no warning.
    if tocsin_on_volatile(dir.path()) {
        return;
    }
    let (_, log) = run_once(&cfg, dir.path(), &rcv);
    assert!(!log.contains(warning), "{log}");
}

/// Whether `dir` itself is on tmpfs (then the no-warning half has nothing to show).
fn tocsin_on_volatile(dir: &Path) -> bool {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("tmpfs"))
}
