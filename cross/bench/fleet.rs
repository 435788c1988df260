//! A fleet of N devices feeding one Prometheus Alertmanager, simulated in one process.
//!
//! `cargo bench --bench fleet [-- DEVICES SECONDS]` (default 1000 devices, 60 s) starts
//! Debian's `prometheus-alertmanager` on 127.0.0.1, then runs N complete agents
//! (`tocsin::service::Agent`: sampler, rules, alert table, one HTTP connection each) on
//! one current-thread runtime, each with its own `device_id`, over a fixture root where
//! memory is 97 % used: every device fires `mem-high` (critical) and, with its heartbeat,
//! `TocsinHeartbeat` and `TocsinDeviceSilent`, re-sent every `resend` (10 s).
//!
//! It reports what Alertmanager accepted (its own `alertmanager_alerts_received_total`)
//! per second, in the start-up burst (until it holds all 3 × N alerts) and in the steady
//! state, and the agent-side cost per device: CPU time per minute and RSS. Under `cargo
//! test --all-targets` (no `--bench`) it runs 5 devices for 3 s as a smoke test, and
//! skips when Alertmanager is not installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin::deliver::Mode;
use tocsin::event::EventType;
use tocsin::service::{now_ms, Agent};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";
/// Alerts each device keeps firing.
const PER_DEVICE: u64 = 3;

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One agent per device needs one socket each: raise the open-files limit to its maximum.
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to read into and then pass back.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    r.rlim_cur
}

/// HTTP/1.0 GET on 127.0.0.1: the body.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    raw.contains(" 200 ")
        .then(|| raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))?
}

/// Alertmanager's count of alerts it accepted since it started (firing and resolved).
fn received(port: u16) -> u64 {
    get(port, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("alertmanager_alerts_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Alerts Alertmanager holds that have not ended.
fn held(port: u16) -> u64 {
    get(port, "/api/v2/alerts").map_or(0, |b| b.matches("\"fingerprint\"").count() as u64)
}

struct Alertmanager(Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_alertmanager(dir: &Path) -> (Alertmanager, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        dir.join("am.yml"),
        "route:\n  receiver: \"null\"\n  group_by: [alertname, device_id]\nreceivers:\n  - name: \"null\"\n\
         inhibit_rules:\n  - source_matchers: [alertname=\"TocsinHeartbeat\"]\n    \
         target_matchers: [alertname=\"TocsinDeviceSilent\"]\n    equal: [device_id]\n",
    )
    .expect("write am.yml");
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let am = Alertmanager(child);
    let t0 = Instant::now();
    while get(port, "/-/ready").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "alertmanager not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (am, port)
}

fn config(i: usize, root: &Path, state: &Path, port: u16) -> tocsin::config::Config {
    let text = format!(
        r#"[agent]
device_id = "dev-{i:04}"
hostname = "dev-{i:04}"
interval = "1s"
heartbeat = "10s"
root = "{root}"
state_dir = "{state}"
control_socket = "{state}/control.sock"
labels = {{ site = "site-{site}" }}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["am"]

[[webhook]]
name = "am"
format = "alertmanager"
url = "http://127.0.0.1:{port}"
resend = "10s"
timeout = "5s"
"#,
        root = root.display(),
        state = state.display(),
        site = i % 10,
    );
    tocsin::config::parse(&text, "fleet.toml").unwrap_or_else(|d| panic!("{d}"))
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let nums: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let (devices, seconds) = if bench {
        (
            nums.first().copied().unwrap_or(1000) as usize,
            nums.get(1).copied().unwrap_or(60),
        )
    } else {
        (5, 3)
    };
    if !Path::new(BINARY).exists() {
        println!(
            "fleet: SKIPPED: {BINARY} is not installed (apt-get install prometheus-alertmanager)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("tocsin-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root/proc")).expect("fixture root");
    let total = 1_048_576u64;
    let avail = total * 3 / 100;
    std::fs::write(
        dir.join("root/proc/meminfo"),
        format!("MemTotal: {total} kB\nMemFree: {avail} kB\nMemAvailable: {avail} kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"),
    )
    .expect("meminfo");
    let nofile = raise_nofile();
    let (am, port) = start_alertmanager(&dir);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async {
        let rss0 = rss_kb();
        let mut agents: Vec<Agent> = (0..devices)
            .map(|i| {
                let cfg = config(i, &dir.join("root"), &dir.join("state"), port);
                Agent::new(Arc::new(cfg), Mode::Send).expect("agent")
            })
            .collect();
        let rss_agents = rss_kb();
        let received0 = received(port);
        let cpu0 = cpu_ns();
        let start = Instant::now();
        for a in &mut agents {
            a.broadcast(EventType::AgentStart, "");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut burst = None;
        let mut steady_from = None;
        while start.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            let now = now_ms();
            for a in &mut agents {
                a.tick(now);
            }
            if burst.is_none() {
                // Let the lanes run before asking Alertmanager.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if held(port) >= devices as u64 * PER_DEVICE {
                    let t = start.elapsed();
                    burst = Some((t, received(port) - received0));
                    steady_from = Some((Instant::now(), received(port), cpu_ns()));
                }
            }
        }
        let cpu = cpu_ns() - cpu0;
        let elapsed = start.elapsed();
        let rss = rss_kb();
        let holding = held(port);
        let (steady_t, steady_rx, steady_cpu) = steady_from.unwrap_or((start, received0, cpu0));
        let steady_secs = steady_t.elapsed().as_secs_f64();
        let steady_alerts = received(port) - steady_rx;
        let steady_cpu = cpu_ns() - steady_cpu;
        for a in agents {
            a.shutdown(Duration::from_secs(2)).await;
        }
        let per_dev = devices as f64;
        let mut r = String::new();
        r.push_str(&format!(
            "fleet: {devices} devices (one process, one Alertmanager 0.25 on 127.0.0.1), {:.0} s, \
             open-files limit {nofile}\n\n| figure | value |\n|---|---|\n",
            elapsed.as_secs_f64()
        ));
        match burst {
            Some((t, n)) => r.push_str(&format!(
                "| start-up burst: all {} alerts held by Alertmanager after | {:.2} s ({:.0} alerts/s accepted) |\n",
                devices as u64 * PER_DEVICE,
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            )),
            None => r.push_str(&format!(
                "| start-up burst | NOT all alerts arrived: Alertmanager holds {holding} |\n"
            )),
        }
        r.push_str(&format!(
            "| steady state: alerts accepted | {steady_alerts} in {steady_secs:.1} s = {:.0} alerts/s (re-sends every 10 s) |\n",
            steady_alerts as f64 / steady_secs.max(0.001)
        ));
        r.push_str(&format!(
            "| alerts Alertmanager holds at the end | {holding} (expected {}) |\n",
            devices as u64 * PER_DEVICE
        ));
        r.push_str(&format!(
            "| agent CPU per device, steady state | {:.2} ms per minute |\n",
            steady_cpu as f64 / 1e6 / per_dev / steady_secs.max(0.001) * 60.0
        ));
        r.push_str(&format!(
            "| agent CPU per device, whole run incl. burst | {:.2} ms per minute |\n",
            cpu as f64 / 1e6 / per_dev / elapsed.as_secs_f64() * 60.0
        ));
        r.push_str(&format!(
            "| RSS per device | {:.1} KiB at start, {:.1} KiB at the end (process {} → {} KiB) |\n",
            (rss_agents.saturating_sub(rss0)) as f64 / per_dev,
            (rss.saturating_sub(rss0)) as f64 / per_dev,
            rss0,
            rss
        ));
        (r, holding)
    });
    drop(am);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", report.0);
    assert_eq!(
        report.1,
        devices as u64 * PER_DEVICE,
        "Alertmanager must hold every device's alerts"
    );
}
