//! The sampler against fixture trees shaped like a real Linux host.

use std::fs;
use std::path::{Path, PathBuf};

use tocsin::metric::{Metric, Samples};
use tocsin::source::Sampler;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/basic")
}

fn sample(sampler: &mut Sampler) -> Samples {
    let mut out = Samples::new();
    sampler.sample(0, &mut out);
    assert!(out.iter().all(|s| s.value.is_finite()));
    out
}

fn value(out: &Samples, metric: Metric) -> Option<f64> {
    let mut found = out.iter().filter(|s| s.metric == metric);
    let s = found.next()?;
    assert!(found.next().is_none(), "{} sampled twice", metric.name());
    assert!(s.dim.is_empty(), "{} has a dimension", metric.name());
    Some(s.value)
}

fn dims(out: &Samples, metric: Metric) -> Vec<&str> {
    out.iter()
        .filter(|s| s.metric == metric)
        .map(|s| s.dim.as_str())
        .collect()
}

fn assert_close(got: Option<f64>, expected: f64) {
    let got = got.expect("a sample");
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

/// A copy of the fixture tree in the temp dir, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(name: &str) -> TempTree {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("tocsin-{name}-{}-{nanos}", std::process::id()));
        copy_dir(&fixture(), &dir);
        TempTree(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn first_sample_of_the_fixture() {
    let mut sampler = Sampler::new(&fixture());
    let out = sample(&mut sampler);

    // CPU needs two samples.
    assert_eq!(value(&out, Metric::CpuUsage), None);
    assert_eq!(value(&out, Metric::CpuIowait), None);

    assert_eq!(value(&out, Metric::Load1), Some(0.42));
    assert_eq!(value(&out, Metric::Load5), Some(0.35));
    assert_eq!(value(&out, Metric::Load15), Some(0.31));

    // MemTotal 8038048 kB, MemAvailable 5129412 kB.
    assert_close(
        value(&out, Metric::MemUsed),
        100.0 * (8038048.0 - 5129412.0) / 8038048.0,
    );
    assert_eq!(value(&out, Metric::MemAvailable), Some(5129412.0 * 1024.0));
    // SwapTotal 2097148 kB, SwapFree 1835004 kB.
    assert_close(
        value(&out, Metric::SwapUsed),
        100.0 * (2097148.0 - 1835004.0) / 2097148.0,
    );
    assert_eq!(value(&out, Metric::Uptime), Some(183204.52));

    // ext4 / and vfat /boot exist in the tree. Pseudo filesystems (even /proc, which
    // exists) and the squashfs /rom (which exists) are skipped; the tmpfs /run,
    // /dev/shm and /run/user/1000 are kept but do not exist, so statvfs fails.
    assert_eq!(dims(&out, Metric::DiskUsed), ["/", "/boot"]);
    for s in out.iter().filter(|s| s.metric == Metric::DiskUsed) {
        assert!((0.0..=100.0).contains(&s.value), "{s:?}");
    }
    for s in out.iter().filter(|s| s.metric == Metric::DiskInodesUsed) {
        assert!(s.dim == "/" || s.dim == "/boot", "{s:?}");
        assert!((0.0..=100.0).contains(&s.value), "{s:?}");
    }
}

#[test]
fn changing_sources() {
    let tree = TempTree::new("sampler");
    let mut sampler = Sampler::new(&tree.0);
    let out = sample(&mut sampler);
    assert_eq!(value(&out, Metric::CpuUsage), None);

    // Δ user 600, nice 0, system 200, idle 1000, iowait 100, irq 0, softirq 50, steal 50
    // (guest +300 is already in user): Δtotal 2000, Δ(idle + iowait) 1100.
    fs::write(
        tree.path("proc/stat"),
        "cpu  1524080 3421 413070 48214570 28510 0 10592 1254 300 0\n\
         cpu0 381353 812 103594 12053141 7148 0 5833 313 75 0\n\
         ctxt 183931920\n",
    )
    .expect("rewrite stat");
    let out = sample(&mut sampler);
    assert_eq!(value(&out, Metric::CpuUsage), Some(45.0)); // 100 × 900 / 2000
    assert_eq!(value(&out, Metric::CpuIowait), Some(5.0)); // 100 × 100 / 2000

    // No tick since: no CPU sample, everything else still there.
    let out = sample(&mut sampler);
    assert_eq!(value(&out, Metric::CpuUsage), None);
    assert!(value(&out, Metric::Load1).is_some());

    // Counters reset (e.g. a checkpoint/restore): no sample, then deltas from the new base.
    fs::write(tree.path("proc/stat"), "cpu  100 0 100 800 0 0 0 0 0 0\n").expect("write");
    assert_eq!(value(&sample(&mut sampler), Metric::CpuUsage), None);
    fs::write(tree.path("proc/stat"), "cpu  150 0 150 900 0 0 0 0 0 0\n").expect("write");
    assert_eq!(value(&sample(&mut sampler), Metric::CpuUsage), Some(50.0));

    // meminfo gone: no mem or swap samples, no panic, the rest unaffected.
    fs::remove_file(tree.path("proc/meminfo")).expect("remove meminfo");
    let out = sample(&mut sampler);
    assert_eq!(value(&out, Metric::MemUsed), None);
    assert_eq!(value(&out, Metric::MemAvailable), None);
    assert_eq!(value(&out, Metric::SwapUsed), None);
    assert_eq!(value(&out, Metric::Load1), Some(0.42));
    assert_eq!(value(&out, Metric::Uptime), Some(183204.52));

    // Garbage loadavg: no load samples.
    fs::write(tree.path("proc/loadavg"), b"\xff\x00 not a load average\n").expect("write");
    let out = sample(&mut sampler);
    assert_eq!(value(&out, Metric::Load1), None);
    assert_eq!(value(&out, Metric::Load5), None);
    assert_eq!(value(&out, Metric::Load15), None);
    assert_eq!(value(&out, Metric::Uptime), Some(183204.52));

    // No proc/self/mounts: falls back to proc/mounts.
    fs::rename(tree.path("proc/self/mounts"), tree.path("proc/mounts")).expect("rename");
    let out = sample(&mut sampler);
    assert_eq!(dims(&out, Metric::DiskUsed), ["/", "/boot"]);

    // No mounts file at all: no disk samples.
    fs::remove_file(tree.path("proc/mounts")).expect("remove mounts");
    let out = sample(&mut sampler);
    assert!(dims(&out, Metric::DiskUsed).is_empty());
    assert!(dims(&out, Metric::DiskInodesUsed).is_empty());
}

#[test]
fn meminfo_without_mem_available_uses_the_fallback() {
    let tree = TempTree::new("oldmem");
    // A 3.10 kernel's meminfo: no MemAvailable, no swap.
    fs::write(
        tree.path("proc/meminfo"),
        "MemTotal:         125252 kB\n\
         MemFree:           62104 kB\n\
         Buffers:            4012 kB\n\
         Cached:            21780 kB\n\
         SwapCached:            0 kB\n\
         Active:            19340 kB\n\
         Inactive:          15048 kB\n\
         SwapTotal:             0 kB\n\
         SwapFree:              0 kB\n",
    )
    .expect("write meminfo");
    let out = sample(&mut Sampler::new(&tree.0));
    let available = 62104.0 + 4012.0 + 21780.0;
    assert_close(
        value(&out, Metric::MemUsed),
        100.0 * (125252.0 - available) / 125252.0,
    );
    assert_eq!(value(&out, Metric::MemAvailable), Some(available * 1024.0));
    assert_eq!(value(&out, Metric::SwapUsed), None);
}

#[test]
fn missing_root_gives_nothing() {
    let mut sampler = Sampler::new(Path::new("/nonexistent/tocsin/root"));
    assert!(sample(&mut sampler).is_empty());
    assert!(sample(&mut sampler).is_empty());
}
