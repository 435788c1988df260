//! Diagnostics and log lines stay one line each: control characters in the values they
//! echo (a rule name with `\n` or `\u0000` in the config, a `file.value` path with a
//! newline) are written escaped, never as a real line break or a NUL.

use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_diagnostic_echoing_a_newline_and_a_nul_is_one_line() {
    let dir = TempDir::new("diag-controls");
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        r#"[agent]
hostname = "h"

[[rule]]
name = "cpu\nhigh\u0000x"
metric = "cpu.usage_percent"
critical = "> 95"
notify = ["w"]

[[webhook]]
name = "w"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"
"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !out.stderr.contains(&0),
        "no NUL on stderr: {:?}",
        out.stderr
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one diagnostic, one line: {stderr:?}");
    let want = format!(
        "{}:5:8: rule name `cpu\\nhigh\\u{{0}}x` may contain only",
        cfg.display()
    );
    assert!(lines[0].starts_with(&want), "{want}\n{}", lines[0]);
}

#[test]
fn a_log_line_echoing_a_path_with_a_newline_is_one_line() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = TempDir::new("log-controls");
    let root = dir.path().join("root");
    put(&root, "proc/uptime", "4242.00 100.00\n");
    // A FIFO named with a newline: the agent logs its path once.
    let fifo = root.join("data/bad\nvalue");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
hostname = "h"
interval = "200ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "value"
metric = "file.value"
path = "/data/bad\nvalue"
critical = "> 1"
notify = ["w"]

[[webhook]]
name = "w"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"
"#,
            root = root.display(),
            dir = dir.path().display(),
        ),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    while !agent.log().contains("not a regular file") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no line about the FIFO: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("not a regular file"))
        .unwrap();
    assert!(
        line.contains("file.value /data/bad\\nvalue: not a regular file"),
        "the path is escaped on the same line: {log}"
    );
    assert!(
        log.lines().all(|l| l.starts_with("tocsin ")),
        "every line is a log line of its own: {log}"
    );
}

/// A webhook whose receiver refuses every connection, fed by a rule that fires every
/// 100 ms cycle: its failure and spooling lines repeat (same kind, same webhook) and are
/// limited to 10 of each kind a minute; the rest is counted for a summary line.
#[test]
fn repeating_delivery_failures_are_limited_to_ten_a_minute() {
    let dir = TempDir::new("log-flood");
    let root = dir.path().join("root");
    put(&root, "proc/uptime", "4242.00 100.00\n");
    let closed = ClosedPort::new();
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "up"
metric = "uptime.seconds"
critical = "> 1"
repeat = "100ms"
notify = ["w"]

[[webhook]]
name = "w"
url = "http://127.0.0.1:{port}/"
format = "cloudmonitor-json"
events = ["alarm"]
retries = 0
"#,
            root = root.display(),
            dir = dir.path().display(),
            port = closed.port(),
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    std::thread::sleep(Duration::from_secs(4));
    assert!(agent.stop());
    let log = agent.log();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let (gave_up, spooled) = (count("giving up on alarm"), count(" spooled ("));
    eprintln!(
        "4 s of a refused webhook: {gave_up} `giving up` and {spooled} `spooled` lines logged"
    );
    assert!(
        gave_up >= 1 && spooled >= 1,
        "the failures are logged: {log}"
    );
    assert!(gave_up <= 10, "{gave_up} `giving up` lines: {log}");
    assert!(spooled <= 10, "{spooled} `spooled` lines: {log}");
}
