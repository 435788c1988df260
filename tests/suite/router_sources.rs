//! Router and gateway sources against fixture trees shaped like real devices
//! (`tests/fixtures/arm-board`, `tests/fixtures/router`), driving the sampler directly
//! with scripted monotonic time.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::ClosedPort;
use tocsin::metric::{DimValue, Metric, Sample, Samples};
use tocsin::rule::{Condition, Evaluator, NoData, Op, RuleSpec, TransitionKind};
use tocsin::source::{Probe, Sampler};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of a fixture tree in the temp dir, removed on drop, for tests that change it.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("tocsin-{name}-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        copy_dir(&fixture(name), &dir);
        Tree(dir)
    }

    fn put(&self, rel: &str, contents: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, contents).expect("write");
    }

    /// Rewrites one interface's line of proc/net/dev.
    fn set_counters(&self, iface: &str, rx: u64, rx_err: u64, rx_drop: u64, tx: u64, tx_drop: u64) {
        let path = self.0.join("proc/net/dev");
        let text = fs::read_to_string(&path).expect("net/dev");
        let out: Vec<String> = text
            .lines()
            .map(|l| match l.split_once(':') {
                Some((name, _)) if name.trim() == iface => format!(
                    "{name}: {rx} 100 {rx_err} {rx_drop} 0 0 0 0 {tx} 100 0 {tx_drop} 0 0 0 0"
                ),
                _ => l.to_string(),
            })
            .collect();
        fs::write(&path, out.join("\n") + "\n").expect("write");
    }

    fn remove_iface(&self, iface: &str) {
        let path = self.0.join("proc/net/dev");
        let text = fs::read_to_string(&path).expect("net/dev");
        let out: Vec<&str> = text
            .lines()
            .filter(|l| l.split_once(':').is_none_or(|(n, _)| n.trim() != iface))
            .collect();
        fs::write(&path, out.join("\n") + "\n").expect("write");
        let _ = fs::remove_dir_all(self.0.join("sys/class/net").join(iface));
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).expect("copy");
        }
    }
}

fn sample(s: &mut Sampler, now_ms: u64) -> Samples {
    let mut out = Samples::new();
    s.sample(now_ms, &mut out);
    assert!(out.iter().all(|s| s.value.is_finite()));
    out
}

fn get(out: &Samples, metric: Metric, dim: &str) -> Option<f64> {
    let mut it = out.iter().filter(|s| s.metric == metric && s.dim == dim);
    let v = it.next().map(|s| s.value);
    assert!(it.next().is_none(), "{} {dim} twice", metric.name());
    v
}

fn series(out: &Samples, metric: Metric) -> Vec<(Option<&'static str>, String, f64)> {
    out.iter()
        .filter(|s| s.metric == metric)
        .map(|s| (s.key, s.dim.to_string(), s.value))
        .collect()
}

fn dim(s: &str) -> DimValue {
    DimValue::try_from(s).expect("fits")
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn page_size() -> f64 {
    // SAFETY: as above.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }) as f64
}

#[test]
fn arm_board_thermal_zones_and_hwmon_sensors() {
    let mut s = Sampler::new(&fixture("arm-board"));
    let out = sample(&mut s, 0);
    let temps = series(&out, Metric::TempCelsius);
    let t = Some("type");
    let h = Some("sensor");
    assert_eq!(
        temps,
        vec![
            (t, "soc-thermal".into(), 48.125),
            (t, "gpu-thermal".into(), 46.25),
            // thermal_zone2 (battery) has no readable temperature: no sample, no zero.
            (t, "soc-thermal/thermal_zone10".into(), -2.0),
            (h, "rockchip_thermal/temp1".into(), 48.125),
            (h, "rockchip_thermal/temp2".into(), 46.25),
            (h, "Composite".into(), 38.85),
            (h, "Sensor 1".into(), 41.85),
        ]
    );
}

fn rule(
    name: &str,
    metric: Metric,
    key: Option<&'static str>,
    glob: Option<&str>,
    crit: Condition,
) -> RuleSpec {
    RuleSpec {
        name: heapless::String::try_from(name).expect("name"),
        metric,
        match_key: key,
        match_dim: glob.map(dim),
        thresholds: [None, None, Some(crit)],
        times: 1,
        within: None,
        clear: None,
        clear_times: 1,
        repeat_ms: None,
        no_data: NoData::Keep,
        no_data_after: 3,
        aggregate: Default::default(),
        window_ms: 0,
        interval_ms: 0,
    }
}

#[test]
fn temp_rules_pick_zones_or_sensors_by_key() {
    let mut s = Sampler::new(&fixture("arm-board"));
    let out = sample(&mut s, 0);
    let hot = Condition {
        op: Op::Gt,
        value: 40.0,
    };
    let rules = vec![
        rule("zones", Metric::TempCelsius, Some("type"), Some("*"), hot),
        rule(
            "nvme",
            Metric::TempCelsius,
            Some("sensor"),
            Some("Sensor*"),
            hot,
        ),
        rule("all", Metric::TempCelsius, None, None, hot),
    ];
    let mut ev = Evaluator::new(&rules);
    let mut fired: Vec<(usize, Option<&'static str>, String)> = Vec::new();
    ev.evaluate(&rules, &out, 0, 0, &mut |t| {
        fired.push((t.rule, t.key, t.dim.to_string()))
    });
    let of = |r: usize| -> Vec<(Option<&'static str>, String)> {
        fired
            .iter()
            .filter(|f| f.0 == r)
            .map(|f| (f.1, f.2.clone()))
            .collect()
    };
    assert_eq!(
        of(0),
        [
            (Some("type"), "soc-thermal".into()),
            (Some("type"), "gpu-thermal".into())
        ]
    );
    assert_eq!(of(1), [(Some("sensor"), "Sensor 1".into())]);
    // Without `match`, zones and sensors are separate series, each with its own key:
    // soc, gpu, rockchip ×2, Sensor 1 (Composite is 38.85, soc/thermal_zone10 −2).
    assert_eq!(of(2).len(), 5);
    assert!(of(2).contains(&(Some("sensor"), "Sensor 1".into())));
}

#[test]
fn router_links_conntrack_and_first_sample_has_no_rates() {
    let mut s = Sampler::new(&fixture("router"));
    let out = sample(&mut s, 1_000);
    let up: Vec<(String, f64)> = series(&out, Metric::NetUp)
        .into_iter()
        .map(|(k, d, v)| {
            assert_eq!(k, Some("iface"));
            (d, v)
        })
        .collect();
    let expect = [
        ("lo", 1.0),
        ("eth0", 1.0),
        ("lan1", 0.0),
        ("lan2", 1.0),
        ("wan", 1.0),
        ("br-lan", 1.0),
        ("wlan0", 1.0),
        ("wlan1", 0.0),     // dormant: associated to nothing
        ("pppoe-wan", 1.0), // operstate unknown, carrier 1
    ];
    let expect: Vec<(String, f64)> = expect.iter().map(|(d, v)| (d.to_string(), *v)).collect();
    assert_eq!(up, expect);
    assert!(
        series(&out, Metric::NetRxBps).is_empty(),
        "rates need two samples"
    );
    let ct = get(&out, Metric::ConntrackUsed, "").expect("conntrack");
    assert!((ct - 100.0 * 15565.0 / 16384.0).abs() < 1e-9);
}

#[test]
fn rates_over_scripted_time_with_a_32_bit_wrap() {
    let tree = Tree::new("router", "rates");
    let mut s = Sampler::new(&tree.0);
    tree.set_counters("eth0", 1_000_000, 0, 0, 2_000_000, 0);
    tree.set_counters("wlan0", 0, 10, 1, 0, 2);
    // wlan1's rx is 4294967000 in the fixture: 32-bit counters about to wrap.
    sample(&mut s, 10_000);
    tree.set_counters("eth0", 1_250_000, 0, 0, 2_500_000, 0);
    tree.set_counters("wlan0", 0, 30, 5, 0, 8);
    tree.set_counters("wlan1", 200, 0, 0, 12345678, 0);
    // 2.5 s later.
    let out = sample(&mut s, 12_500);
    assert_eq!(
        get(&out, Metric::NetRxBps, "eth0"),
        Some(250_000.0 * 8.0 / 2.5)
    );
    assert_eq!(
        get(&out, Metric::NetTxBps, "eth0"),
        Some(500_000.0 * 8.0 / 2.5)
    );
    assert_eq!(get(&out, Metric::NetRxErrors, "wlan0"), Some(20.0 / 2.5));
    assert_eq!(
        get(&out, Metric::NetDrops, "wlan0"),
        Some((4.0 + 6.0) / 2.5)
    );
    // 4294967000 → 200 across 2³²: 496 bytes.
    assert_eq!(
        get(&out, Metric::NetRxBps, "wlan1"),
        Some(496.0 * 8.0 / 2.5)
    );
    // Unchanged counters: zero rates, not missing ones.
    assert_eq!(get(&out, Metric::NetRxBps, "lan1"), Some(0.0));

    // A counter dropping to near zero is a reset (interface re-created): no rate once.
    tree.set_counters("eth0", 5, 0, 0, 5, 0);
    let out = sample(&mut s, 15_000);
    assert_eq!(get(&out, Metric::NetRxBps, "eth0"), None);
    assert_eq!(get(&out, Metric::NetUp, "eth0"), Some(1.0));
    tree.set_counters("eth0", 1005, 0, 0, 5, 0);
    let out = sample(&mut s, 16_000);
    assert_eq!(get(&out, Metric::NetRxBps, "eth0"), Some(8000.0));

    // The same `now` twice (a caller bug or a stalled clock): no division by zero.
    let out = sample(&mut s, 16_000);
    assert_eq!(get(&out, Metric::NetRxBps, "eth0"), None);
}

#[test]
fn a_vanished_interface_is_down_and_restarts_its_rates() {
    let tree = Tree::new("router", "vanish");
    let mut s = Sampler::new(&tree.0);
    sample(&mut s, 0);
    sample(&mut s, 1000);
    tree.remove_iface("pppoe-wan");
    let out = sample(&mut s, 2000);
    assert_eq!(get(&out, Metric::NetUp, "pppoe-wan"), Some(0.0));
    assert_eq!(get(&out, Metric::NetRxBps, "pppoe-wan"), None);
    let out = sample(&mut s, 3000);
    assert_eq!(get(&out, Metric::NetUp, "pppoe-wan"), Some(0.0));
    // Back, with counters restarted at 0: up again, but no rate across the gap.
    tree.put("sys/class/net/pppoe-wan/operstate", "unknown\n");
    tree.put("sys/class/net/pppoe-wan/carrier", "1\n");
    let dev = fs::read_to_string(tree.0.join("proc/net/dev")).expect("dev");
    tree.put(
        "proc/net/dev",
        &format!("{dev}pppoe-wan: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n"),
    );
    let out = sample(&mut s, 4000);
    assert_eq!(get(&out, Metric::NetUp, "pppoe-wan"), Some(1.0));
    assert_eq!(get(&out, Metric::NetRxBps, "pppoe-wan"), None);
    tree.set_counters("pppoe-wan", 1100, 0, 0, 50, 0);
    let out = sample(&mut s, 5000);
    assert_eq!(get(&out, Metric::NetRxBps, "pppoe-wan"), Some(8000.0));
}

#[test]
fn iface_globs_select_series() {
    let mut s = Sampler::new(&fixture("router"));
    let out = sample(&mut s, 0);
    let down = Condition {
        op: Op::Eq,
        value: 0.0,
    };
    let rules = vec![
        rule("wan", Metric::NetUp, Some("iface"), Some("wan*"), down),
        rule("lan", Metric::NetUp, Some("iface"), Some("lan?"), down),
        rule("wifi", Metric::NetUp, Some("iface"), Some("wlan*"), down),
    ];
    let mut ev = Evaluator::new(&rules);
    let mut fired = Vec::new();
    ev.evaluate(&rules, &out, 0, 0, &mut |t| {
        assert_eq!(t.kind, TransitionKind::Alarm);
        fired.push((t.rule, t.dim.to_string()))
    });
    assert_eq!(fired, [(1, "lan1".to_string()), (2, "wlan1".to_string())]);
    let mut n = [0usize; 3];
    ev.view(&rules, &mut |v| n[v.rule] += 1);
    // `wan*` matches `wan` only, not `pppoe-wan`; `lan?` lan1 and lan2; `wlan*` two.
    assert_eq!(n, [1, 2, 2]);
}

#[test]
fn missing_files_yield_no_samples() {
    let tree = Tree::new("router", "missing");
    fs::remove_file(tree.0.join("proc/sys/net/netfilter/nf_conntrack_max")).expect("rm");
    fs::remove_dir_all(tree.0.join("sys/class/net/wan")).expect("rm");
    fs::write(tree.0.join("proc/net/dev"), "garbage\n").expect("w");
    let probes = [
        Probe::File {
            path: dim("/sys/class/gpio/gpio99/value"),
            scale: 1.0,
        },
        Probe::ProcessName(dim("dnsmasq")),
    ];
    let mut s = Sampler::with_probes(&tree.0, &probes);
    fs::remove_dir_all(tree.0.join("proc/1432")).expect("rm");
    let out = sample(&mut s, 0);
    assert_eq!(get(&out, Metric::ConntrackUsed, ""), None);
    assert!(series(&out, Metric::NetUp).is_empty());
    assert_eq!(
        get(&out, Metric::FileValue, "/sys/class/gpio/gpio99/value"),
        None
    );
    // The process list could be read and dnsmasq is not in it: that is a 0, not a gap.
    assert_eq!(get(&out, Metric::ProcessUp, "dnsmasq"), Some(0.0));

    let mut s = Sampler::with_probes(Path::new("/nonexistent/tocsin/root"), &probes);
    let out = sample(&mut s, 0);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn processes_by_name_glob_and_pidfile() {
    let tree = Tree::new("router", "procs");
    let probes = [
        Probe::ProcessName(dim("dnsmasq")),
        Probe::ProcessName(dim("hostapd")),
        Probe::ProcessName(dim("uhttpd")),
        Probe::ProcessName(dim("*d")),
        Probe::ProcessName(dim("ntpd")),
        Probe::Pidfile(dim("/var/run/dnsmasq/dnsmasq.cfg01411c.pid")),
        Probe::Pidfile(dim("/var/run/odhcpd.pid")),
        Probe::Pidfile(dim("/var/run/absent.pid")),
        // Two rules on the same process share one probe.
        Probe::ProcessName(dim("dnsmasq")),
    ];
    let mut s = Sampler::with_probes(&tree.0, &probes);
    let out = sample(&mut s, 1000);
    let count = |d: &str| get(&out, Metric::ProcessCount, d);
    assert_eq!(count("dnsmasq"), Some(1.0));
    assert_eq!(count("hostapd"), Some(2.0));
    assert_eq!(count("uhttpd"), Some(1.0), "the zombie does not count");
    // procd, odhcpd, hostapd ×2, uhttpd (not the zombie); not dnsmasq.
    assert_eq!(count("*d"), Some(5.0));
    assert_eq!(count("ntpd"), Some(0.0));
    assert_eq!(get(&out, Metric::ProcessUp, "ntpd"), Some(0.0));
    assert_eq!(
        get(&out, Metric::ProcessRss, "hostapd"),
        Some((820.0 + 790.0) * page_size())
    );
    let pid = "/var/run/dnsmasq/dnsmasq.cfg01411c.pid";
    assert_eq!(get(&out, Metric::ProcessUp, pid), Some(1.0));
    assert!(out.iter().any(|s| s.dim == pid && s.key == Some("pidfile")));
    assert_eq!(
        get(&out, Metric::ProcessUp, "/var/run/odhcpd.pid"),
        Some(0.0),
        "stale"
    );
    assert_eq!(
        get(&out, Metric::ProcessUp, "/var/run/absent.pid"),
        Some(0.0)
    );
    assert_eq!(
        get(&out, Metric::ProcessCpu, "dnsmasq"),
        None,
        "needs two samples"
    );

    // dnsmasq: +50 ticks in 2 s; one hostapd exits, the other gains 20 ticks.
    let stat = |pid: u32, comm: &str, ticks: u32| {
        format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 1021 0 0 0 {ticks} 0 0 0 20 0 1 0 2345 5484544 345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0\n")
    };
    tree.put("proc/1432/stat", &stat(1432, "dnsmasq", 2050));
    tree.put("proc/1711/stat", &stat(1711, "hostapd", 1020));
    fs::remove_dir_all(tree.0.join("proc/1710")).expect("rm");
    let out = sample(&mut s, 3000);
    let pct = |ticks: f64| 100.0 * ticks / clk_tck() / 2.0;
    let close = |got: Option<f64>, want: f64| {
        let got = got.expect("a sample");
        assert!((got - want).abs() < 1e-9, "{got} != {want}");
    };
    close(get(&out, Metric::ProcessCpu, "dnsmasq"), pct(50.0));
    close(get(&out, Metric::ProcessCpu, pid), pct(50.0));
    close(get(&out, Metric::ProcessCpu, "hostapd"), pct(20.0));
    assert_eq!(get(&out, Metric::ProcessCount, "hostapd"), Some(1.0));
}

#[test]
fn file_values_with_scale() {
    let tree = Tree::new("router", "files");
    let probes = [
        Probe::File {
            path: dim("/sys/class/gpio/gpio17/value"),
            scale: 1.0,
        },
        Probe::File {
            path: dim("/sys/bus/iio/devices/iio:device0/in_voltage0_raw"),
            scale: 0.000805,
        },
    ];
    let mut s = Sampler::with_probes(&tree.0, &probes);
    let out = sample(&mut s, 0);
    assert_eq!(
        get(&out, Metric::FileValue, "/sys/class/gpio/gpio17/value"),
        Some(1.0)
    );
    let v = get(
        &out,
        Metric::FileValue,
        "/sys/bus/iio/devices/iio:device0/in_voltage0_raw",
    );
    assert!((v.expect("value") - 2048.0 * 0.000805).abs() < 1e-12);
    tree.put("sys/class/gpio/gpio17/value", "not a number\n");
    let out = sample(&mut s, 1000);
    assert_eq!(
        get(&out, Metric::FileValue, "/sys/class/gpio/gpio17/value"),
        None
    );
}

#[test]
fn tcp_and_exec_on_the_host() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = l.local_addr().expect("addr");
    // Held for the whole test, so no other test's receiver is given the port.
    let refusing = ClosedPort::new();
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], refusing.port()));
    let probes = [
        Probe::Tcp {
            target: open,
            timeout_ms: 1000,
        },
        Probe::Tcp {
            target: closed,
            timeout_ms: 1000,
        },
        Probe::Exec {
            command: vec!["/bin/echo".into(), "41.5".into()],
            timeout_ms: 2000,
        },
        Probe::Exec {
            command: vec!["/bin/sleep".into(), "5".into()],
            timeout_ms: 300,
        },
    ];
    let mut s = Sampler::with_probes(&fixture("router"), &probes);
    let t0 = std::time::Instant::now();
    // The probes run on workers: the tick that starts them has none of their samples, the
    // first tick after they return has them all.
    let first = sample(&mut s, 0);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "the tick does not wait"
    );
    assert!(!first
        .iter()
        .any(|s| matches!(s.metric, Metric::TcpUp | Metric::ExecValue)));
    assert!(s.settle(std::time::Instant::now() + std::time::Duration::from_secs(5)));
    let out = sample(&mut s, 1000);
    assert!(t0.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(get(&out, Metric::TcpUp, &open.to_string()), Some(1.0));
    assert_eq!(get(&out, Metric::TcpUp, &closed.to_string()), Some(0.0));
    assert_eq!(get(&out, Metric::ExecValue, "/bin/echo 41.5"), Some(41.5));
    assert_eq!(
        get(&out, Metric::ExecValue, "/bin/sleep 5"),
        None,
        "killed at 300 ms"
    );
    assert!(out.iter().any(|s: &Sample| s.key == Some("command")));
}
