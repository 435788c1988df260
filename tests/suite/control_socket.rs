//! The control socket from outside: what `control_socket` may name, clients that connect
//! and say nothing, and reaching the agent when its config file on disk is broken.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn tocsin(args: &[&str], config: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

/// A config of one memory rule and one webhook; `agent` goes into `[agent]`.
fn write_config(path: &Path, agent: &str, url: &str) {
    std::fs::write(
        path,
        format!(
            r#"[agent]
hostname = "h"
{agent}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["w"]

[[webhook]]
name = "w"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm"]
"#
        ),
    )
    .unwrap();
}

/// `control_socket` naming the agent's own config: `check` refuses it at the key's
/// line:col, `run` refuses to start on it (there is no last-known-good copy), and the
/// file is still there, unchanged.
#[test]
fn a_control_socket_that_names_an_existing_file_is_refused_and_left_alone() {
    let dir = TempDir::new("sock-file");
    let cfg = dir.path().join("tocsin.toml");
    let agent = format!(
        "state_dir = \"{}/state\"\ncontrol_socket = \"{}\"",
        dir.path().display(),
        cfg.display()
    );
    write_config(&cfg, &agent, "http://127.0.0.1:9/");
    let before = std::fs::read(&cfg).unwrap();

    let out = tocsin(&["check"], &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "check refuses it: {stderr}");
    let want = format!(
        "{}:4:18: `control_socket` `{}` exists and is not a socket",
        cfg.display(),
        cfg.display()
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(&want)),
        "{want}\n{stderr}"
    );
    assert_eq!(std::fs::read(&cfg).unwrap(), before, "check left it alone");

    let mut run = Command::new(bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = run.kill();
            let _ = run.wait();
            panic!("run started on a config whose control_socket is its own file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    assert_eq!(std::fs::read(&cfg).unwrap(), before, "run left it alone");
}
