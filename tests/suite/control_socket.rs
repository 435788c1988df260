//! The control socket from outside: what `control_socket` may name, clients that connect
//! and say nothing, and reaching the agent when its config file on disk is broken.

use crate::common::*;
use std::io::Read as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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

/// Clients that connect to the control socket and never send a request, reconnecting
/// whenever the agent closes on them.
struct IdleClients {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    connects: Arc<AtomicUsize>,
}

impl IdleClients {
    fn start(sock: &Path, n: usize) -> IdleClients {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicUsize::new(0));
        let threads = (0..n)
            .map(|_| {
                let (sock, stop, connects) = (sock.to_path_buf(), stop.clone(), connects.clone());
                thread::spawn(move || {
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = UnixStream::connect(&sock) else {
                            thread::sleep(Duration::from_millis(1));
                            continue;
                        };
                        connects.fetch_add(1, Ordering::Relaxed);
                        s.set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        // Say nothing; read until the agent closes (or the test ends).
                        while !stop.load(Ordering::Relaxed) {
                            match s.read(&mut buf) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                    }
                })
            })
            .collect();
        IdleClients {
            stop,
            threads,
            connects,
        }
    }
}

impl Drop for IdleClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What one window of idle clients did to the agent.
#[derive(Debug)]
struct Siege {
    deliveries: usize,
    longest_gap: Duration,
    status_ok: usize,
    status_tries: usize,
    slowest_status: Duration,
    connects: usize,
    /// CPU time the agent used in the window.
    agent_cpu: Duration,
}

/// utime + stime of process `pid` (Linux: /proc/PID/stat, in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Runs an agent (interval 1 s; a rule that fires every cycle: `repeat` = the interval)
/// and, once it delivers, `n` idle clients for `WINDOW`; meanwhile `tocsin status` once
/// a second. Counts the deliveries that reach the receiver in the window and the longest
/// time without one (window edges included).
fn siege(n: usize) -> Siege {
    const WINDOW: Duration = Duration::from_secs(10);
    let dir = TempDir::new(&format!("siege-{n}"));
    let root = dir.path().join("root");
    put(&root, "proc/uptime", "4242.00 100.00\n");
    put(&root, "proc/meminfo", &meminfo(50));
    let rcv = Receiver::start();
    let sock = dir.path().join("control.sock");
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
hostname = "h"
interval = "1s"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{sock}"

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
            dir = dir.path().display(),
            sock = sock.display(),
            url = rcv.url("/alarm"),
        ),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(Duration::from_secs(10), "the first alarm", |r| {
        !r.is_empty()
    });
    let clients = IdleClients::start(&sock, n);
    let t0 = Instant::now();
    let cpu0 = cpu_time(agent.child.id());
    let mut seen = rcv.received().len();
    let mut last = t0;
    let mut longest_gap = Duration::ZERO;
    let mut deliveries = 0;
    let (mut status_ok, mut status_tries, mut slowest_status) = (0, 0, Duration::ZERO);
    let mut next_status = t0 + Duration::from_millis(500);
    while t0.elapsed() < WINDOW {
        let now = rcv.received().len();
        if now > seen {
            let at = Instant::now();
            longest_gap = longest_gap.max(at - last);
            last = at;
            deliveries += now - seen;
            seen = now;
        }
        if Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            let s0 = Instant::now();
            let out = tocsin(&["status"], &cfg);
            status_tries += 1;
            let took = s0.elapsed();
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("up") {
                status_ok += 1;
                slowest_status = slowest_status.max(took);
            } else {
                eprintln!(
                    "status with {n} idle clients failed after {} ms: {}",
                    took.as_millis(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    longest_gap = longest_gap.max(t0.elapsed() - (last - t0));
    let connects = clients.connects.load(Ordering::Relaxed);
    let agent_cpu = cpu_time(agent.child.id()).saturating_sub(cpu0);
    drop(clients);
    drop(agent);
    let s = Siege {
        deliveries,
        longest_gap,
        status_ok,
        status_tries,
        slowest_status,
        connects,
        agent_cpu,
    };
    eprintln!(
        "{n} idle clients for {WINDOW:?} (interval 1 s): {} deliveries, longest gap {} ms; status answered {}/{} (slowest {} ms); {} idle connections made; the agent used {} ms of CPU",
        s.deliveries,
        s.longest_gap.as_millis(),
        s.status_ok,
        s.status_tries,
        s.slowest_status.as_millis(),
        s.connects,
        s.agent_cpu.as_millis()
    );
    s
}

fn assert_unhurt(n: usize, s: &Siege) {
    assert!(s.deliveries >= 9, "{n} idle clients: {s:?}");
    assert!(
        s.longest_gap <= Duration::from_millis(2500),
        "{n} idle clients: {s:?}"
    );
    assert_eq!(s.status_ok, s.status_tries, "{n} idle clients: {s:?}");
}

#[test]
fn five_idle_clients_cut_neither_sampling_nor_status() {
    let s = siege(5);
    assert_unhurt(5, &s);
}

#[test]
fn two_hundred_idle_clients_cut_neither_sampling_nor_status() {
    let s = siege(200);
    assert_unhurt(200, &s);
}

/// `status` and `replay` reach the agent while its config file on disk is broken: with
/// `--socket PATH`, and with only the broken `-c FILE` through the last-known-good
/// copy's `control_socket` (with a warning).
#[test]
fn status_and_replay_reach_the_agent_when_the_config_on_disk_is_broken() {
    let dir = TempDir::new("sock-lkg");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let sock = dir.path().join("control.sock");
    let cfg = dir.path().join("tocsin.toml");
    let agent_keys = format!(
        "interval = \"200ms\"\nroot = \"{}\"\nstate_dir = \"{}/state\"\ncontrol_socket = \"{}\"",
        root.display(),
        dir.path().display(),
        sock.display()
    );
    write_config(&cfg, &agent_keys, &rcv.url("/alarm"));
    let _agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(Duration::from_secs(10), "the alarm", |r| !r.is_empty());
    assert!(dir.path().join("state/lkg.current").exists());

    // A rollout breaks the file; the agent keeps running what it loaded.
    let broken = std::fs::read_to_string(&cfg).unwrap().replace(
        "format = \"cloudmonitor-json\"",
        "format = \"cloudmonitor-jsno\"",
    );
    std::fs::write(&cfg, broken).unwrap();

    let out = tocsin(&["status"], &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status with a broken FILE: {stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("mem-high")),
        "{stdout}"
    );
    assert!(
        stderr.contains("unknown format `cloudmonitor-jsno`"),
        "FILE's errors: {stderr}"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains("last-known-good"))
        .unwrap_or_else(|| panic!("a warning names the copy used: {stderr}"));
    assert!(
        warning.contains("lkg.1") && warning.contains(&sock.display().to_string()),
        "{warning}"
    );

    // --socket needs no config at all.
    let missing = dir.path().join("missing.toml");
    let sock_arg = sock.display().to_string();
    let out = tocsin(&["status", "--socket", &sock_arg], &missing);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("mem-high"));
    let out = Command::new(bin())
        .args([
            "replay",
            "01234567-89ab-7fff-bfff-ffffffffffff",
            "--socket",
            &sock_arg,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "answered: no such event");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no recent or spooled event"),
        "the agent answered: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
