//! Heap allocations per sampling + evaluation cycle, counted by a global allocator.
//!
//! The steady state of 30 rules over the /proc and /sys file sources must not allocate at
//! all (asserted). The sources that cannot promise that — listing /proc for process names,
//! a TCP connect, spawning a command — are measured and printed separately. (The connect
//! and the command run on the sampler's probe workers, whose allocations are not counted:
//! the figures are the sampling thread's, handing runs over and taking results.)
//!
//! Run with `cargo test --test alloc -- --nocapture` to see the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use tocsin::config;
use tocsin::metric::Samples;
use tocsin::rule::{Evaluator, RuleSpec};
use tocsin::source::{Probe, Sampler};

struct Counting;

thread_local! {
    /// Counting is per thread, so the test harness's own threads do not disturb it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread locals are being torn down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only
// touches const-initialized thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn count(f: impl FnOnce()) -> u64 {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

fn router_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/router")
}

/// The 30-rule config of `tests/fixtures/cycle-30-rules.toml`, rooted at `root`.
fn thirty_rules_at(root: &Path) -> config::Config {
    parse_thirty(root, false)
}

/// The same 30 rules, each over a window of a minute (at the fixture's 1 s interval: rings
/// of 61 samples), taking turns at avg, max, min and sum.
fn thirty_aggregated_rules_at(root: &Path) -> config::Config {
    parse_thirty(root, true)
}

fn parse_thirty(root: &Path, aggregated: bool) -> config::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cycle-30-rules.toml");
    let mut text = std::fs::read_to_string(&path).expect("config");
    if aggregated {
        let mut i = 0;
        let aggregates = ["avg", "max", "min", "sum"];
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
    let text = text.replace("@ROOT@", root.to_str().expect("utf8"));
    let cfg = config::parse(&text, "cycle-30-rules.toml").expect("valid config");
    assert_eq!(cfg.rules.len(), 30);
    if aggregated {
        assert!(cfg
            .rules
            .iter()
            .all(|r| r.spec.aggregate != tocsin::rule::Aggregate::Last));
    }
    cfg
}

fn thirty_rules() -> config::Config {
    thirty_rules_at(&router_root())
}

/// A copy of the router fixture whose CPU and interface counters move between cycles.
struct Moving(std::path::PathBuf, u64);

impl Moving {
    fn new() -> Moving {
        // One tree per test: the tests of this file run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tocsin-alloc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&router_root(), &dir);
        Moving(dir, 0)
    }

    /// Advances the counters (outside the counted region: writing files allocates).
    fn tick(&mut self) {
        self.1 += 1;
        let k = self.1;
        let stat = format!(
            "cpu  {} 0 {} {} {} 0 0 0 0 0\n",
            1000 + 30 * k,
            1000 + 20 * k,
            8000 + 45 * k,
            100 + 5 * k
        );
        std::fs::write(self.0.join("proc/stat"), stat).expect("stat");
        let dev = std::fs::read_to_string(router_root().join("proc/net/dev")).expect("dev");
        let moved: String = dev
            .lines()
            .map(|l| match l.split_once(':') {
                Some((n, _)) if n.trim() == "wan" || n.trim() == "pppoe-wan" => format!(
                    "{n}: {} 10 0 {k} 0 0 0 0 {} 10 0 0 0 0 0 0\n",
                    1_000_000 * k,
                    300_000 * k
                ),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(self.0.join("proc/net/dev"), moved).expect("dev");
    }
}

impl Drop for Moving {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

struct Cycle {
    sampler: Sampler,
    evaluator: Evaluator,
    specs: Vec<RuleSpec>,
    samples: Box<Samples>,
    now: u64,
    transitions: u64,
    /// Transitions that carry a value (not no-data).
    valued: u64,
}

impl Cycle {
    fn new(cfg: &config::Config, extra: &[Probe]) -> Cycle {
        let mut probes: Vec<Probe> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
        probes.extend_from_slice(extra);
        let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
        Cycle {
            sampler: Sampler::with_probes(&cfg.agent.root, &probes),
            evaluator: Evaluator::new(&specs),
            specs,
            samples: Box::default(),
            now: 0,
            transitions: 0,
            valued: 0,
        }
    }

    fn run(&mut self) {
        self.now += 1000;
        self.samples.clear();
        self.sampler.sample(self.now, &mut self.samples);
        let t = &mut self.transitions;
        let v = &mut self.valued;
        self.evaluator
            .evaluate(&self.specs, &self.samples, self.now, self.now, &mut |tr| {
                *t += 1;
                *v += u64::from(tr.value.is_some());
            });
    }
}

const CYCLES: u64 = 50;

#[test]
fn steady_state_of_30_file_rules_does_not_allocate() {
    let mut tree = Moving::new();
    let cfg = thirty_rules_at(&tree.0);
    let mut c = Cycle::new(&cfg, &[]);
    // Warm up: the first cycles create series and may fire rules.
    for _ in 0..2 {
        tree.tick();
        c.run();
    }
    let mut n = 0;
    for _ in 0..CYCLES {
        tree.tick();
        n += count(|| c.run());
    }
    println!(
        "allocations: {n} in {CYCLES} cycles of 30 rules over /proc and /sys files ({} samples per cycle)",
        c.samples.len()
    );
    use tocsin::metric::Metric::*;
    for m in [
        CpuUsage,
        Load1,
        MemUsed,
        Uptime,
        TempCelsius,
        NetUp,
        NetRxBps,
        NetDrops,
        ConntrackUsed,
        ProcessUp,
        ProcessCpu,
        ProcessRss,
        FileValue,
    ] {
        assert!(
            c.samples.iter().any(|s| s.metric == m),
            "no {} sample",
            m.name()
        );
    }
    assert_eq!(n, 0, "a steady-state cycle allocated");
}

#[test]
fn thirty_rules_over_windows_do_not_allocate_after_their_first_cycle() {
    let mut tree = Moving::new();
    let cfg = thirty_aggregated_rules_at(&tree.0);
    let mut c = Cycle::new(&cfg, &[]);
    // The first two cycles make the series and their rings (rates have their first sample
    // in the second); nothing after that allocates: not the warm-up (59 cycles), not its
    // end, not the rings wrapping (61 slots) nor their time offsets moving to a new base
    // (every ~131 s at the 2 ms unit of 1 m).
    for _ in 0..2 {
        tree.tick();
        c.run();
    }
    let mut n = 0;
    const LONG: u64 = 300;
    for _ in 0..LONG {
        tree.tick();
        n += count(|| c.run());
    }
    println!(
        "allocations: {n} in {LONG} cycles of 30 rules over windows of 1 m ({} samples per cycle, {} transitions, {} on an aggregate)",
        c.samples.len(),
        c.transitions,
        c.valued
    );
    assert_eq!(n, 0, "a cycle of rules over windows allocated");
    // The windows were evaluated: some rule fired on an aggregate after its warm-up.
    assert!(c.valued > 0, "no rule over a window ever fired");
}

#[test]
fn directory_scan_tcp_and_exec_are_measured_apart() {
    let cfg = thirty_rules();
    let name = |s: &str| tocsin::metric::DimValue::try_from(s).expect("fits");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let cases: [(&str, Probe); 3] = [
        (
            "process name (lists /proc with getdents64)",
            Probe::ProcessName(name("hostapd")),
        ),
        (
            "tcp.up (connect to 127.0.0.1)",
            Probe::Tcp {
                target: listener.local_addr().expect("addr"),
                timeout_ms: 1000,
            },
        ),
        (
            "exec.value (spawn /bin/echo)",
            Probe::Exec {
                command: vec!["/bin/echo".into(), "1".into()],
                timeout_ms: 2000,
            },
        ),
    ];
    const N: u64 = 10;
    for (what, probe) in cases {
        let mut c = Cycle::new(&cfg, &[probe]);
        c.run();
        c.run();
        let n = count(|| {
            for _ in 0..N {
                c.run();
            }
        });
        println!(
            "allocations: {:.1} per cycle with one {what} rule added ({n} in {N} cycles)",
            n as f64 / N as f64
        );
        if what.starts_with("process") {
            // getdents64 into a fixed buffer: the process scan is allocation-free too.
            assert_eq!(n, 0, "{what}");
        }
    }
    // The same scan over this host's real /proc, for scale (printed, not asserted: the
    // host's processes are not a fixture).
    let mut sampler = Sampler::with_probes(Path::new("/"), &[Probe::ProcessName(name("*"))]);
    let mut samples: Box<Samples> = Box::default();
    let mut now = 0;
    let mut run = || {
        now += 1000;
        samples.clear();
        sampler.sample(now, &mut samples);
    };
    run();
    run();
    let n = count(|| {
        for _ in 0..N {
            run();
        }
    });
    println!(
        "allocations: {n} in {N} cycles listing this host's /proc for `process.* name = \"*\"`"
    );
}

#[test]
fn a_log_line_does_not_allocate_once_the_buffers_have_grown() {
    // Rendered into the thread's own line and framed into the logger's, both kept between
    // lines: a delivery logged every cycle costs no allocation (and no allocator call that
    // maps and unmaps a page, as musl's does for a fresh group).
    tocsin::log::set_config_level(tocsin::log::Level::Info);
    let line = |i: u32| {
        tocsin::info!(
            "webhook alloc-test: delivered alarm 01a233ad-ec81-7fbb-9235-{i:012}: HTTP 200 in 0 ms (attempt 1)"
        )
    };
    line(0);
    line(1);
    let n = count(|| (2..7).for_each(line));
    assert_eq!(n, 0, "5 info lines allocated {n} times");
}

/// Webhooks without a `ca_file` share the one trust store parsed at start (the system
/// bundle, or the built-in roots) instead of each copying it: about 80 KB of heap per
/// HTTPS webhook with Debian's bundle. A webhook with a `ca_file` copies it to add its CA.
#[cfg(feature = "builtin-roots")]
#[test]
fn webhooks_without_a_ca_file_share_the_trust_store() {
    use tocsin::deliver::endpoint::TlsOptions;
    use tocsin::deliver::tls::client_config;
    let dir = std::env::temp_dir().join(format!("tocsin-alloc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let shared = TlsOptions::default();
    let private = TlsOptions {
        ca_file: Some(ca),
        ..TlsOptions::default()
    };
    client_config(&shared).unwrap(); // parses the store once
    let without = count(|| drop(client_config(&shared).unwrap()));
    let with = count(|| drop(client_config(&private).unwrap()));
    println!("TLS settings of a webhook: {without} allocations without a ca_file, {with} with one");
    // A copy of the store allocates for every anchor it holds (more than 100 in Debian's
    // bundle and in the built-in roots); the shared one does not.
    assert!(with > 100, "with a ca_file: {with}");
    assert!(without < with / 4, "without {without}, with {with}");
    std::fs::remove_dir_all(&dir).unwrap();
}
