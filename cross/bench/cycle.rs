//! CPU time of one sampling + evaluation cycle with 30 rules over the router fixture.
//!
//! `cargo bench --bench cycle` runs 20 000 cycles after a warm-up and prints the process
//! CPU time (user + system, `CLOCK_PROCESS_CPUTIME_ID`) and the wall time per cycle, and
//! the share of sampling and of evaluation. Under `cargo test --all-targets` (no `--bench`
//! argument) it runs a few cycles as a smoke test only.
//!
//! The rules are `tests/fixtures/cycle-30-rules.toml`: every /proc and /sys file family
//! (no process-list scan, TCP connect or command, which cost what the kernel and the
//! command cost).

use std::path::Path;
use std::time::Instant;

use tocsin::config;
use tocsin::metric::Samples;
use tocsin::rule::{Evaluator, RuleSpec};
use tocsin::source::{Probe, Sampler};

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The 30 rules, each over a window of a minute when `aggregated` (rings of 61 samples at
/// the fixture's 1 s interval), taking turns at avg, max, min and sum.
fn thirty_rules(dir: &Path, root: &Path, aggregated: bool) -> config::Config {
    let mut text = std::fs::read_to_string(dir.join("tests/fixtures/cycle-30-rules.toml"))
        .expect("config")
        .replace("@ROOT@", root.to_str().expect("utf8"));
    if aggregated {
        let aggregates = ["avg", "max", "min", "sum"];
        let mut i = 0;
        text = text
            .lines()
            .map(|l| {
                if l.trim() == "[[rule]]" {
                    i += 1;
                    format!(
                        "{l}\naggregate = \"{}\"\nwindow = \"1m\"\n",
                        aggregates[i % 4]
                    )
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    }
    config::parse(&text, "cycle-30-rules.toml").expect("valid config")
}

/// CPU ns per cycle (the headline figure) and of its evaluation, of `n` cycles of `cfg`
/// after `warm`; prints them with the wall time and the share of sampling.
fn cycles(label: &str, cfg: &config::Config, warm: u64, n: u64) -> (u64, u64) {
    let probes: Vec<Probe> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
    let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
    let mut sampler = Sampler::with_probes(&cfg.agent.root, &probes);
    let mut evaluator = Evaluator::new(&specs);
    let mut samples: Box<Samples> = Box::default();
    let mut transitions = 0u64;

    let mut now = 0u64;
    let mut sample_ns = 0u64;
    let mut eval_ns = 0u64;
    for i in 0..warm + n {
        if i == warm {
            sample_ns = 0;
            eval_ns = 0;
        }
        now += 1000;
        let t0 = cpu_ns();
        samples.clear();
        sampler.sample(now, &mut samples);
        let t1 = cpu_ns();
        evaluator.evaluate(&specs, &samples, now, now, &mut |_| transitions += 1);
        let t2 = cpu_ns();
        sample_ns += t1 - t0;
        eval_ns += t2 - t1;
    }
    // The whole loop again without the per-phase clock reads, for the headline figure.
    let cpu0 = cpu_ns();
    let wall0 = Instant::now();
    for _ in 0..n {
        now += 1000;
        samples.clear();
        sampler.sample(now, &mut samples);
        evaluator.evaluate(&specs, &samples, now, now, &mut |_| transitions += 1);
    }
    let cpu = cpu_ns() - cpu0;
    let wall = wall0.elapsed().as_nanos() as u64;
    println!(
        "cycle (30 rules{label}, {} samples, {} cycles): {} ns CPU/cycle, {} ns wall/cycle; \
         sampling {} ns, evaluation {} ns CPU/cycle",
        samples.len(),
        n,
        cpu / n,
        wall / n,
        sample_ns / n,
        eval_ns / n
    );
    assert!(samples.len() > 40);
    (cpu / n, eval_ns / n)
}

/// `--count N`: only N plain cycles and nothing else, for an instruction count under
/// callgrind (cross/bench/instructions runs it at two N: the difference over the
/// difference of N is the count of one cycle, start-up excluded).
fn count_only(cfg: &config::Config, n: u64) {
    let probes: Vec<Probe> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
    let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
    let mut sampler = Sampler::with_probes(&cfg.agent.root, &probes);
    let mut evaluator = Evaluator::new(&specs);
    let mut samples: Box<Samples> = Box::default();
    let mut transitions = 0u64;
    for i in 1..=n {
        samples.clear();
        sampler.sample(i * 1000, &mut samples);
        evaluator.evaluate(&specs, &samples, i * 1000, i * 1000, &mut |_| {
            transitions += 1
        });
    }
    println!(
        "{n} cycles, {} samples, {transitions} transitions",
        samples.len()
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = dir.join("tests/fixtures/router");
    let cfg = thirty_rules(dir, &root, false);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--count") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--count N");
        return count_only(&cfg, n);
    }
    // The warm-up covers a window's (59 cycles of a minute at 1 s).
    let (warm, n) = if bench { (200, 20_000) } else { (2, 5) };
    let plain = cycles("", &cfg, warm, n);
    let windows = thirty_rules(dir, &root, true);
    let aggregated = cycles(" over windows of 1 m", &windows, warm, n);
    let aggregated_again = cycles(" over windows of 1 m", &windows, warm, n);
    let plain_again = cycles("", &cfg, warm, n);
    // Interleaved (plain, windows, windows, plain), so a drift of the machine's load
    // weighs on both alike.
    let (p, a) = (plain.0 + plain_again.0, aggregated.0 + aggregated_again.0);
    let (pe, ae) = (plain.1 + plain_again.1, aggregated.1 + aggregated_again.1);
    println!(
        "windows: {:+.1} % CPU per cycle with every rule over a window ({} ns vs {} ns, the mean of two runs each); \
         evaluation {:+} ns, {:+.1} % of the cycle without windows",
        (a as f64 / p.max(1) as f64 - 1.0) * 100.0,
        a / 2,
        p / 2,
        (ae as i64 - pe as i64) / 2,
        (ae as f64 - pe as f64) / p.max(1) as f64 * 100.0
    );

    // The sources whose cost is the kernel's or another program's, one rule each, timed
    // apart: listing /proc (the fixture's 7 processes, then this host's), a TCP connect
    // to a listener on 127.0.0.1, spawning /bin/echo.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr");
    // Accept and drop, as a service does; a listener that never accepts fills its backlog
    // and every further connect then waits out the whole timeout.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let name = |s: &str| tocsin::metric::DimValue::try_from(s).expect("fits");
    let extra: [(&str, &Path, Probe, u64); 4] = [
        (
            "process name over the fixture's /proc",
            &root,
            Probe::ProcessName(name("hostapd")),
            n,
        ),
        (
            "process name over this host's /proc",
            Path::new("/"),
            Probe::ProcessName(name("hostapd")),
            n / 10,
        ),
        (
            "tcp.up to 127.0.0.1",
            Path::new("/nonexistent"),
            Probe::Tcp {
                target,
                timeout_ms: 1000,
            },
            n / 10,
        ),
        (
            "exec.value /bin/echo",
            Path::new("/nonexistent"),
            Probe::Exec {
                command: vec!["/bin/echo".into(), "1".into()],
                timeout_ms: 2000,
            },
            n / 100,
        ),
    ];
    for (what, at, probe, runs) in extra {
        let runs = runs.max(2);
        let mut s = Sampler::with_probes(at, std::slice::from_ref(&probe));
        let mut alone = Sampler::new(at);
        let mut out: Box<Samples> = Box::default();
        let mut time = |s: &mut Sampler| {
            let t0 = cpu_ns();
            let w0 = Instant::now();
            for i in 0..runs {
                out.clear();
                s.sample(i * 1000, &mut out);
            }
            (
                (cpu_ns() - t0) / runs,
                w0.elapsed().as_nanos() as u64 / runs,
            )
        };
        let (base_cpu, base_wall) = time(&mut alone);
        let (cpu, wall) = time(&mut s);
        let procs = count_pids(at);
        println!(
            "+ {what}{}: {} ns CPU, {} ns wall per cycle on top of the host-wide sources",
            if matches!(probe, Probe::ProcessName(_)) {
                format!(" ({procs} processes)")
            } else {
                String::new()
            },
            cpu.saturating_sub(base_cpu),
            wall.saturating_sub(base_wall)
        );
    }
}

/// Processes under `root/proc`, for the report.
fn count_pids(root: &Path) -> usize {
    std::fs::read_dir(root.join("proc")).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count()
    })
}
