//! A fleet of N devices feeding one Prometheus Alertmanager, simulated in one process.
//!
//! `cargo bench --bench fleet [-- DEVICES SECONDS]` (default 1000 devices, 60 s) starts
//! Debian's `prometheus-alertmanager` on 127.0.0.1, then runs N complete agents
//! (`tocsin::service::Agent`: sampler, rules, alert table, one HTTP connection each) on
//! one current-thread runtime, each with its own `device_id`, over a fixture root where
//! memory is 97 % used: every device fires `mem-high` (critical) and, with its heartbeat,
//! `TocsinHeartbeat` and `TocsinDeviceSilent`, re-sent every `resend` (10 s).
//!
//! It reports what Alertmanager accepted (its own `alertmanager_alerts_received_total`
//! less the invalid ones, cross-checked with the agents' count of alerts in 2xx answers
//! and with what `GET /api/v2/alerts` lists) per second, in the start-up burst (until it holds all 3 × N alerts) and in the steady
//! state, and the agent-side cost per device: CPU time per minute and RSS. Under `cargo
//! test --all-targets` (no `--bench`) it runs 5 devices for 3 s as a smoke test, and
//! skips when Alertmanager is not installed (loudly, through tests/suite/common/skip.rs;
//! under `CI=true` that fails). Alertmanager is started through the test harness,
//! tests/suite/common/am.rs, so it dies with this process. A device config the library
//! rejects is printed, and fails the run under `--bench` only.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin::clock::Clock;
use tocsin::deliver::Mode;
use tocsin::event::EventType;
use tocsin::service::Agent;

#[path = "../../tests/suite/common/am.rs"]
#[allow(dead_code, reason = "the bench uses part of the test harness")]
mod am;
#[path = "../../tests/suite/common/skip.rs"]
mod skip;
use am::Cluster;

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

/// Alertmanager's count of alerts it accepted since it started (firing and resolved):
/// `alertmanager_alerts_received_total` less `alertmanager_alerts_invalid_total` (an
/// invalid alert fails its request with 400, but the valid ones in it are kept).
fn accepted(am: &Cluster) -> u64 {
    let metrics = am.get(0, "/metrics").map(|(_, b)| b).unwrap_or_default();
    let sum = |name: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    sum("alertmanager_alerts_received_total")
        .saturating_sub(sum("alertmanager_alerts_invalid_total"))
}

/// Alerts Alertmanager holds that have not ended (counted without parsing the JSON, to
/// keep the bench's own CPU out of the agents' figure).
fn held(am: &Cluster) -> u64 {
    am.get(0, "/api/v2/alerts")
        .map_or(0, |(_, b)| b.matches("\"fingerprint\"").count() as u64)
}

/// Alerts the agents saw accepted (2xx) and not, summed from their status pages.
fn delivered(agents: &[Agent], started: Instant) -> (u64, u64) {
    let mut sum = (0, 0);
    for a in agents {
        for l in a.status(started).lines().filter(|l| l.starts_with("am@")) {
            let f: Vec<&str> = l.split_whitespace().collect();
            sum.0 += f.get(3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            sum.1 += f.get(5).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    sum
}

fn config(
    i: usize,
    root: &Path,
    state: &Path,
    url: &str,
) -> Result<tocsin::config::Config, String> {
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
url = "{url}"
resend = "10s"
timeout = "5s"
"#,
        root = root.display(),
        state = state.display(),
        site = i % 10,
    );
    tocsin::config::parse(&text, "fleet.toml").map_err(|d| d.to_string())
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
    // Under `cargo test` as under `--bench`: skipped loudly, and a failure under CI=true.
    let Some(_) = am::require() else {
        return;
    };
    let wall = Instant::now();
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
    let (root, state) = (dir.join("root"), dir.join("state"));
    // A config the library rejects is reported before anything starts: a failure of the
    // bench, not of `cargo test`.
    if let Err(d) = config(0, &root, &state, "http://127.0.0.1:9") {
        let _ = std::fs::remove_dir_all(&dir);
        println!("fleet: the device config does not parse:\n{d}");
        std::process::exit(i32::from(bench));
    }
    let nofile = raise_nofile();
    // One Alertmanager, killed with this process at the latest.
    let am = Cluster::start_for(1, Duration::from_secs(seconds + 600));
    let expected = devices as u64 * PER_DEVICE;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (report, holding) = rt.block_on(async {
        let rss0 = rss_kb();
        let clock = Clock::system();
        let mut agents: Vec<Agent> = (0..devices)
            .map(|i| {
                // A state directory per device, as on real devices.
                let cfg = config(i, &root, &state.join(format!("dev-{i}")), &am.url(0))
                    .expect("parsed once already");
                Agent::new(Arc::new(cfg), Mode::Send, clock.clone()).expect("agent")
            })
            .collect();
        let rss_agents = rss_kb();
        let accepted0 = accepted(&am);
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
            for a in &mut agents {
                a.tick();
            }
            if burst.is_none() {
                // Let the lanes run before asking Alertmanager.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if held(&am) >= expected {
                    let t = start.elapsed();
                    let n = accepted(&am);
                    burst = Some((t, n - accepted0));
                    steady_from = Some((Instant::now(), n, cpu_ns()));
                }
            }
        }
        let cpu = cpu_ns() - cpu0;
        let elapsed = start.elapsed();
        let rss = rss_kb();
        let (steady_t, steady_rx, steady_cpu) = steady_from.unwrap_or((start, accepted0, cpu0));
        let steady_secs = steady_t.elapsed().as_secs_f64();
        let steady_cpu = cpu_ns() - steady_cpu;
        let accepted_total = accepted(&am) - accepted0;
        let steady_alerts = accepted(&am) - steady_rx;
        let holding = held(&am);
        let (ok, failed) = delivered(&agents, start);
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
                "| start-up burst: all {expected} alerts held by Alertmanager after | {:.2} s ({:.0} alerts/s accepted) |\n",
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
            "| alerts accepted, whole run: Alertmanager's count / the agents' 2xx count | {accepted_total} / {ok} ({failed} not accepted) |\n"
        ));
        r.push_str(&format!(
            "| alerts Alertmanager holds at the end (GET /api/v2/alerts) | {holding} (expected {devices} × {PER_DEVICE} = {expected}) |\n"
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
    println!(
        "{report}| wall time, whole bench (fixture, Alertmanager, agents, shutdown) | {:.1} s |",
        wall.elapsed().as_secs_f64()
    );
    assert_eq!(
        holding, expected,
        "Alertmanager must hold every device's alerts"
    );
}
