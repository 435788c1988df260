//! Metric sources: `/proc` and `/sys` files, statvfs, TCP connects and commands, turned into [`Sample`]s.
//!
//! Each metric family has a pure parser in its own module; [`Sampler`] does the I/O with
//! buffers allocated once. A source that is missing or unparsable yields no sample — never
//! a zero, never a panic. The probes that can block — `tcp.up`, `exec.value` and statvfs of
//! network and FUSE mounts — run on a small pool of worker threads (`pool`), so a tick
//! never waits for them: their result is the sample of the first tick after they return.
//!
//! No file source can block a tick either: every file is opened with `O_NONBLOCK` and read
//! only when it is a regular file (as every /proc and /sys file is), at most one buffer of
//! it. A FIFO, a device or a socket where a source should be gives no sample; a name tocsin
//! chose itself (`/proc/loadavg`, `/sys/class/net/IFACE/operstate`) is not followed when
//! it is a symbolic link, a path from the config (`file.value`, `pidfile`) is.

mod ascii;
mod conntrack;
mod cpu;
mod disk;
pub mod exec;
mod families;
mod load;
mod mem;
mod mounts;
pub mod net;
mod pool;
mod procdir;
pub mod process;
mod read;
mod tcp;
pub mod temp;
mod uptime;

use std::ffi::{CString, OsStr};
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::limits::{DIR_BUF_LEN, MAX_DIM_VALUE_LEN, MAX_MOUNTS};
use crate::metric::{DimValue, Metric, Sample, Samples};
use crate::util::glob_match;
pub use families::Families;
#[cfg(test)]
use mounts::statvfs;
use mounts::{host_statvfs, RemoteMount};
use pool::{Job, Outcome, Poll, StatFsFn, Task};
pub(crate) use read::{open_source, Link, Unread};
use read::{Kept, ReadBuf};
/// The pure parsers of private modules, for the fuzz targets (`crate::fuzzing`).
pub(crate) use {
    cpu::parse_stat as parse_cpu_stat, disk::parse_mounts, load::parse_loadavg, mem::parse_meminfo,
    uptime::parse_uptime,
};

/// What one rule asks the sampler to watch beyond the host-wide families: its family
/// parameters (`match = { name = … }`, `pidfile`, `target`, `path` + `scale`,
/// `command` + `timeout`), validated by the config.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// Processes whose comm matches a glob (`match = { name = "dnsmasq" }`).
    ProcessName(DimValue),
    /// The process whose PID a file holds (`pidfile`, resolved under `root`).
    Pidfile(DimValue),
    /// A TCP connect (`target`, an IP address and port; `timeout`).
    Tcp {
        /// Where to connect.
        target: SocketAddr,
        /// Bound on the connect.
        timeout_ms: u64,
    },
    /// A number read from a file (`path`, resolved under `root`), times `scale`.
    File {
        /// The absolute path, as configured.
        path: DimValue,
        /// The factor applied to the number.
        scale: f64,
    },
    /// The number a command prints (`command`, argv; `timeout`).
    Exec {
        /// argv: the absolute program path, then its arguments.
        command: Vec<String>,
        /// Bound on the whole run.
        timeout_ms: u64,
    },
}

impl Probe {
    /// The dimension key and value this probe's samples carry, which a rule matches.
    /// A command is named by its argv joined with spaces, cut to [`MAX_DIM_VALUE_LEN`]
    /// bytes (the config refuses longer ones).
    pub fn dim(&self) -> (&'static str, DimValue) {
        match self {
            Probe::ProcessName(n) => ("name", n.clone()),
            Probe::Pidfile(p) => ("pidfile", p.clone()),
            Probe::Tcp { target, .. } => {
                let mut d = DimValue::new();
                let _ = std::fmt::Write::write_fmt(&mut d, format_args!("{target}"));
                ("target", d)
            }
            Probe::File { path, .. } => ("path", path.clone()),
            Probe::Exec { command, .. } => {
                let mut d = DimValue::new();
                for (i, a) in command.iter().enumerate() {
                    for ch in (if i > 0 { " " } else { "" }).chars().chain(a.chars()) {
                        if d.push(ch).is_err() {
                            return ("command", d);
                        }
                    }
                }
                ("command", d)
            }
        }
    }
}

/// One process rule's selector, totals and CPU state.
#[derive(Debug)]
struct ProcWatch {
    /// A comm glob, or None for a pidfile.
    glob: Option<DimValue>,
    /// The pidfile under `root`.
    pidfile: Option<PathBuf>,
    key: &'static str,
    dim: DimValue,
    totals: process::Totals,
    cpu: process::CpuTracker,
}

/// A `file.value` series: its file under `root`, the factor, and whether its file was
/// found not to be a regular file (logged once, until it reads again).
#[derive(Debug)]
struct FileWatch {
    path: PathBuf,
    scale: f64,
    dim: DimValue,
    refused: bool,
}

/// Reads every metric source under a root directory (`/` in production).
///
/// Everything it needs is allocated in [`Sampler::with_probes`]: paths are resolved, the
/// thermal and hwmon inputs found, and the per-interface and per-process state sized by
/// [`crate::limits`]. [`Sampler::sample`] then reuses those buffers; the file sources do
/// not touch the heap (see `tests/alloc.rs`), and neither does handing `tcp.up`,
/// `exec.value` and network-mount statvfs runs to the probe workers (a mount that
/// appears allocates its task once).
#[derive(Debug)]
pub struct Sampler {
    buf: ReadBuf,
    stat: Kept,
    loadavg: Kept,
    meminfo: Kept,
    uptime: Kept,
    /// `proc/self/mounts`; `proc/mounts` when that cannot be read.
    mounts_file: Kept,
    mounts_fallback: PathBuf,
    /// `root` without trailing slashes, as bytes; mount points are appended to it.
    root: Vec<u8>,
    /// Reused NUL-terminated path for statvfs.
    c_path: Vec<u8>,
    mounts: disk::Mounts,
    cpu: cpu::CpuDelta,
    temps: Vec<temp::TempInput>,
    net_dev: Kept,
    net: net::NetState,
    /// Reused path for per-interface and per-process files; capacity reserved up front.
    path_buf: Vec<u8>,
    conntrack: [Kept; 2],
    /// `root/proc` as a C string, for getdents64.
    proc_dir: CString,
    dir_buf: Vec<u8>,
    procs: Vec<ProcWatch>,
    clk_tck: u64,
    page_size: u64,
    files: Vec<FileWatch>,
    tcps: Vec<(Task, DimValue)>,
    execs: Vec<(Task, DimValue)>,
    /// Network and FUSE mounts of the mounts file, by mount point.
    remote: heapless::Vec<RemoteMount, MAX_MOUNTS>,
    /// statvfs (the host seam; `libc::statvfs`).
    statfs: StatFsFn,
    /// The host-wide families read each cycle.
    families: Families,
    /// Globs of the mounts the disk rules match (`None`: every mount, for a rule without
    /// `match` or for `once`): no statvfs of a mount no rule can see.
    mount_globs: Option<Vec<DimValue>>,
}

/// Room for `root` plus the longest relative path built per cycle
/// (`/sys/class/net/IFACE/operstate`, `/proc/PID/stat`).
const PATH_ROOM: usize = 64 + MAX_DIM_VALUE_LEN;

impl Sampler {
    /// A sampler of the host-wide families only (no rule parameters).
    pub fn new(root: &Path) -> Sampler {
        Sampler::with_probes(root, &[])
    }

    /// Paths are resolved here, once: `root` prefixes /proc, /sys, mount points, pidfiles
    /// and `file.value` paths (tests point it at fixture trees). Equal probes (two rules
    /// on the same process) are sampled once.
    pub fn with_probes(root: &Path, probes: &[Probe]) -> Sampler {
        let proc = root.join("proc");
        let mut root_bytes = root.as_os_str().as_bytes();
        while let Some(rest) = root_bytes.strip_suffix(b"/") {
            root_bytes = rest;
        }
        let under_root = |abs: &str| root.join(abs.trim_start_matches('/'));
        let mut unique: Vec<&Probe> = Vec::new();
        for p in probes {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        let mut procs = Vec::new();
        let mut files = Vec::new();
        let mut tcps = Vec::new();
        let mut execs = Vec::new();
        for p in unique {
            let (key, dim) = p.dim();
            match p {
                Probe::ProcessName(glob) => procs.push(ProcWatch {
                    glob: Some(glob.clone()),
                    pidfile: None,
                    key,
                    dim,
                    totals: process::Totals::default(),
                    cpu: process::CpuTracker::default(),
                }),
                Probe::Pidfile(path) => procs.push(ProcWatch {
                    glob: None,
                    pidfile: Some(under_root(path)),
                    key,
                    dim,
                    totals: process::Totals::default(),
                    cpu: process::CpuTracker::default(),
                }),
                Probe::File { path, scale } => files.push(FileWatch {
                    path: under_root(path),
                    scale: *scale,
                    dim,
                    refused: false,
                }),
                Probe::Tcp { target, timeout_ms } => {
                    let timeout = Duration::from_millis(*timeout_ms);
                    let job = Job::Tcp {
                        target: *target,
                        timeout,
                    };
                    tcps.push((Task::new(job), dim))
                }
                Probe::Exec {
                    command,
                    timeout_ms,
                } => {
                    let timeout = Duration::from_millis(*timeout_ms);
                    let job = Job::Exec {
                        argv: command.clone(),
                        timeout,
                    };
                    execs.push((Task::new(job), dim))
                }
            }
        }
        let netfilter = proc.join("sys/net/netfilter");
        Sampler {
            buf: ReadBuf::new(),
            stat: Kept::new(proc.join("stat")),
            loadavg: Kept::new(proc.join("loadavg")),
            meminfo: Kept::new(proc.join("meminfo")),
            uptime: Kept::new(proc.join("uptime")),
            mounts_file: Kept::new(proc.join("self/mounts")),
            mounts_fallback: proc.join("mounts"),
            root: root_bytes.to_vec(),
            c_path: Vec::with_capacity(root_bytes.len() + MAX_DIM_VALUE_LEN + 1),
            mounts: disk::Mounts::new(),
            cpu: cpu::CpuDelta::default(),
            temps: temp::discover(root),
            net_dev: Kept::new(proc.join("net/dev")),
            net: net::NetState::default(),
            path_buf: Vec::with_capacity(root_bytes.len() + PATH_ROOM),
            conntrack: [
                Kept::new(netfilter.join("nf_conntrack_count")),
                Kept::new(netfilter.join("nf_conntrack_max")),
            ],
            proc_dir: CString::new(proc.as_os_str().as_bytes()).unwrap_or_default(),
            dir_buf: vec![
                0;
                if procs.iter().any(|p| p.glob.is_some()) {
                    DIR_BUF_LEN
                } else {
                    0
                }
            ],
            procs,
            clk_tck: sysconf(libc::_SC_CLK_TCK).unwrap_or(100),
            page_size: sysconf(libc::_SC_PAGESIZE).unwrap_or(4096),
            files,
            tcps,
            execs,
            remote: heapless::Vec::new(),
            statfs: host_statvfs,
            families: Families::ALL,
            mount_globs: None,
        }
    }

    /// The same sampler reading only `families` of the host-wide files (every family
    /// unless this is called). The per-rule probes are sampled whatever this says.
    pub fn only(mut self, families: Families) -> Sampler {
        self.families = families;
        if !families.contains(Families::TEMP) {
            self.temps = Vec::new();
        }
        self
    }

    /// The same sampler taking statvfs only of the mounts one of `globs` matches (every
    /// mount when `None`). The mounts file is read whatever this says.
    pub fn only_mounts(mut self, globs: Option<Vec<DimValue>>) -> Sampler {
        self.mount_globs = globs;
        self
    }

    /// The same sampler with another statvfs (tests make one mount's block).
    #[cfg(test)]
    fn with_statfs(mut self, statfs: StatFsFn) -> Sampler {
        self.statfs = statfs;
        self
    }

    /// Waits until the probe runs in flight (`tcp.up`, `exec.value`, statvfs of network
    /// and FUSE mounts) have returned or outlived their timeout (a statvfs,
    /// [`STATFS_HANG_MS`]), but not past `deadline`; the next [`Sampler::sample`] then has
    /// their results. For `tocsin once`, whose two samples are only a second apart. True
    /// when none is in flight any more.
    pub fn settle(&self, deadline: Instant) -> bool {
        let tasks: Vec<&Task> = (self.tcps.iter().map(|(t, _)| t))
            .chain(self.execs.iter().map(|(t, _)| t))
            .chain(self.remote.iter().map(|r| &r.task))
            .collect();
        pool::settle(&tasks, deadline)
    }

    /// Reads every source and appends its samples to `out` (which the caller clears).
    /// `now_ms` is a monotonic time in milliseconds, passed in by the caller (rates divide
    /// by the time between two calls; the sampler never reads the clock for values).
    /// A missing or unparsable source yields no sample for it — never a panic, never a zero.
    ///
    /// `tcp.up`, `exec.value` and `disk.*` of network and FUSE mounts come from the probe
    /// workers: each call hands over the runs that returned since the previous call (their
    /// samples) and starts the next run of each series that has none in flight; a series
    /// whose run is still going has no sample in this call.
    pub fn sample(&mut self, now_ms: u64, out: &mut Samples) {
        // Err only means `out` is full: stop silently.
        let _ = self.fill(now_ms, out);
    }

    fn fill(&mut self, now_ms: u64, out: &mut Samples) -> Result<(), Full> {
        let none = DimValue::new();

        let want = self.families;
        if want.contains(Families::CPU) {
            let stat = self.buf.read_kept(&mut self.stat).and_then(cpu::parse_stat);
            if let Some(p) = stat.and_then(|now| self.cpu.update(now)) {
                push(out, Metric::CpuUsage, None, &none, Some(p.usage))?;
                push(out, Metric::CpuIowait, None, &none, Some(p.iowait))?;
            }
        }

        if want.contains(Families::LOAD) {
            let loads = self
                .buf
                .read_kept(&mut self.loadavg)
                .and_then(load::parse_loadavg);
            let metrics = [Metric::Load1, Metric::Load5, Metric::Load15];
            for (metric, value) in metrics.into_iter().zip(loads.into_iter().flatten()) {
                push(out, metric, None, &none, Some(value))?;
            }
        }

        let info = want
            .contains(Families::MEM)
            .then(|| self.buf.read_kept(&mut self.meminfo));
        if let Some(info) = info.flatten().map(mem::parse_meminfo) {
            push(out, Metric::MemUsed, None, &none, info.used_percent())?;
            push(
                out,
                Metric::MemAvailable,
                None,
                &none,
                info.available_bytes(),
            )?;
            push(out, Metric::SwapUsed, None, &none, info.swap_used_percent())?;
        }

        if want.contains(Families::UPTIME) {
            let uptime = self
                .buf
                .read_kept(&mut self.uptime)
                .and_then(uptime::parse_uptime);
            push(out, Metric::Uptime, None, &none, uptime)?;
        }

        if want.contains(Families::DISK) {
            self.sample_disks(now_ms, out)?;
        }

        for t in &self.temps {
            let v = self.buf.read(&t.path).and_then(temp::parse_millidegrees);
            push(out, Metric::TempCelsius, Some(t.key), &t.dim, v)?;
        }

        if want.contains(Families::NET) {
            self.sample_net(now_ms, out)?;
        }

        if want.contains(Families::CONNTRACK) {
            let count = self
                .buf
                .read_kept(&mut self.conntrack[0])
                .and_then(parse_number);
            let max = self
                .buf
                .read_kept(&mut self.conntrack[1])
                .and_then(parse_number);
            let used = conntrack::used_percent(count, max);
            push(out, Metric::ConntrackUsed, None, &none, used)?;
        }

        self.sample_processes(now_ms, out)?;

        for f in &mut self.files {
            let v = match self.buf.read_linked(&f.path) {
                Ok(text) => {
                    f.refused = false;
                    parse_number(text).map(|v| v * f.scale)
                }
                Err(Unread::NotRegular) if !f.refused => {
                    f.refused = true;
                    crate::warn!(
                        "file.value {}: not a regular file (a FIFO, device, socket or directory): no sample; only regular files are read",
                        f.dim
                    );
                    None
                }
                Err(_) => None,
            };
            push(out, Metric::FileValue, Some("path"), &f.dim, v)?;
        }
        for (task, dim) in &self.tcps {
            if let Poll::Ready(Outcome::Value(v)) = task.poll(now_ms) {
                push(out, Metric::TcpUp, Some("target"), dim, v)?;
            }
        }
        for (task, dim) in &self.execs {
            if let Poll::Ready(Outcome::Value(v)) = task.poll(now_ms) {
                push(out, Metric::ExecValue, Some("command"), dim, v)?;
            }
        }
        Ok(())
    }

    /// `/proc/net/dev` for the counters, `/sys/class/net/IFACE/operstate` (and `carrier`)
    /// for the link. An interface that went away reports `net.up` 0 and no rates.
    fn sample_net(&mut self, now_ms: u64, out: &mut Samples) -> Result<(), Full> {
        let Sampler {
            buf,
            net_dev,
            net,
            path_buf,
            root,
            ..
        } = self;
        let Some(text) = buf.read_kept(net_dev) else {
            return Ok(());
        };
        let iface = Some("iface");
        let mut result = Ok(());
        net.begin();
        net::parse_net_dev(text, |name, counters| {
            if result.is_err() {
                return;
            }
            let up = link_state(path_buf, root, name);
            let Ok(dim) = DimValue::try_from(name) else {
                return;
            };
            result = (|| {
                push(out, Metric::NetUp, iface, &dim, up)?;
                if let net::Update::Rates(r) = net.update(name, counters, now_ms) {
                    push(out, Metric::NetRxBps, iface, &dim, Some(r.rx_bps))?;
                    push(out, Metric::NetTxBps, iface, &dim, Some(r.tx_bps))?;
                    push(
                        out,
                        Metric::NetRxErrors,
                        iface,
                        &dim,
                        Some(r.rx_errors_per_s),
                    )?;
                    push(out, Metric::NetDrops, iface, &dim, Some(r.drops_per_s))?;
                }
                Ok(())
            })();
        });
        net.end(|gone| {
            if result.is_ok() {
                result = push(out, Metric::NetUp, iface, gone, Some(0.0));
            }
        });
        result
    }

    /// Lists /proc once for all name rules (no heap: getdents64 into a fixed buffer), then
    /// reads each pidfile rule's process.
    fn sample_processes(&mut self, now_ms: u64, out: &mut Samples) -> Result<(), Full> {
        if self.procs.is_empty() {
            return Ok(());
        }
        let Sampler {
            buf,
            path_buf,
            root,
            proc_dir,
            dir_buf,
            procs,
            clk_tck,
            page_size,
            ..
        } = self;
        for p in procs.iter_mut() {
            p.totals = process::Totals::default();
            p.cpu.begin();
        }
        let mut listed = true;
        if procs.iter().any(|p| p.glob.is_some()) {
            listed = procdir::for_each_entry(proc_dir, dir_buf, |name| {
                if !process::is_pid(name) {
                    return;
                }
                let Some(text) = read_proc_stat(buf, path_buf, root, name) else {
                    return;
                };
                let Some(st) = process::parse_stat(text).filter(|s| s.alive()) else {
                    return;
                };
                let pid = parse_u32(name);
                for p in procs.iter_mut() {
                    if p.glob.as_ref().is_some_and(|g| glob_match(g, st.comm)) {
                        p.totals.count += 1;
                        p.totals.rss_pages += st.rss_pages;
                        p.cpu.add(pid, st.ticks);
                    }
                }
            });
        }
        for p in procs.iter_mut() {
            let Some(pidfile) = &p.pidfile else { continue };
            // A missing or stale pidfile means the service is not running: count 0.
            let pid = buf
                .read_linked(pidfile)
                .ok()
                .and_then(process::parse_pidfile);
            let Some(pid) = pid else {
                continue;
            };
            let mut digits = [0u8; 10];
            let name = fmt_u32(pid, &mut digits);
            let Some(text) = read_proc_stat(buf, path_buf, root, name) else {
                continue;
            };
            if let Some(st) = process::parse_stat(text).filter(|s| s.alive()) {
                p.totals.count = 1;
                p.totals.rss_pages = st.rss_pages;
                p.cpu.add(pid, st.ticks);
            }
        }
        for p in procs.iter_mut() {
            let cpu = p.cpu.end(now_ms, *clk_tck);
            if p.glob.is_some() && !listed {
                continue;
            }
            let key = Some(p.key);
            let t = p.totals;
            push(out, Metric::ProcessCount, key, &p.dim, Some(t.count as f64))?;
            let up = if t.count > 0 { 1.0 } else { 0.0 };
            push(out, Metric::ProcessUp, key, &p.dim, Some(up))?;
            let rss = (t.rss_pages * *page_size) as f64;
            push(out, Metric::ProcessRss, key, &p.dim, Some(rss))?;
            push(out, Metric::ProcessCpu, key, &p.dim, cpu)?;
        }
        Ok(())
    }
}

/// `operstate` (and `carrier` when it is `unknown`) of `iface`, as 1/0; None when the
/// interface has no sysfs directory (not a sample: the counters still are).
fn link_state(path_buf: &mut Vec<u8>, root: &[u8], iface: &str) -> Option<f64> {
    let mut state = [0u8; 32];
    let n = read_small(
        path_buf,
        &[root, b"/sys/class/net/", iface.as_bytes(), b"/operstate"],
        &mut state,
    )?;
    let mut carrier = [0u8; 8];
    let c = if state[..n].trim_ascii() == b"unknown" {
        read_small(
            path_buf,
            &[root, b"/sys/class/net/", iface.as_bytes(), b"/carrier"],
            &mut carrier,
        )
    } else {
        None
    };
    let up = net::link_up(&state[..n], c.map(|c| &carrier[..c]));
    Some(if up { 1.0 } else { 0.0 })
}

/// Reads at most `out.len()` bytes of the file whose path is `parts` concatenated (built
/// in the reused `path_buf`). None when it cannot be opened or read, or is not a regular
/// file.
fn read_small(path_buf: &mut Vec<u8>, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    path_buf.clear();
    for p in parts {
        path_buf.extend_from_slice(p);
    }
    let path = Path::new(OsStr::from_bytes(path_buf));
    let mut f = open_source(path, Link::Refuse).ok()?;
    let mut n = 0;
    while n < out.len() {
        match f.read(&mut out[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    Some(n)
}

/// `root/proc/PID/stat` into `buf`.
fn read_proc_stat<'b>(
    buf: &'b mut ReadBuf,
    path_buf: &mut Vec<u8>,
    root: &[u8],
    pid: &[u8],
) -> Option<&'b [u8]> {
    path_buf.clear();
    for p in [root, b"/proc/", pid, b"/stat"] {
        path_buf.extend_from_slice(p);
    }
    buf.read(Path::new(OsStr::from_bytes(path_buf)))
}

fn parse_u32(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, &d| {
        acc.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
    })
}

fn fmt_u32(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// The first whitespace-separated token of a small file as a finite number.
pub(crate) fn parse_number(text: &[u8]) -> Option<f64> {
    let token = std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .next()?;
    token.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A positive `sysconf` value.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// `out` has no room left.
struct Full;

/// Appends a sample unless `value` is None or not finite.
fn push(
    out: &mut Samples,
    metric: Metric,
    key: Option<&'static str>,
    dim: &DimValue,
    value: Option<f64>,
) -> Result<(), Full> {
    match value {
        Some(value) if value.is_finite() => {
            let dim = copy_dim(dim);
            out.push(Sample {
                metric,
                key,
                dim,
                value,
            })
            .map_err(|_| Full)
        }
        _ => Ok(()),
    }
}

/// A copy of `dim` made with one memcpy: heapless's `clone` copies byte by byte, which
/// was a tenth of a cycle's instructions (one per sample; callgrind).
fn copy_dim(dim: &DimValue) -> DimValue {
    let mut copy = DimValue::new();
    let bytes = dim.as_bytes();
    // SAFETY: `copy` is empty with the same capacity as `dim`, so `bytes.len()` bytes fit
    // its buffer; they are the bytes of a `str`, so the string stays UTF-8, and its length
    // is set only after they are written. The two buffers are distinct values.
    unsafe {
        let vec = copy.as_mut_vec();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), vec.as_mut_ptr(), bytes.len());
        vec.set_len(bytes.len());
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_PROC_FILE_LEN;
    use crate::limits::STATFS_HANG_MS;
    use std::ffi::CStr;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("tocsin-readbuf-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    #[test]
    fn read_buffer_never_reallocates_and_cuts_to_last_line() {
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        let big: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(MAX_PROC_FILE_LEN * 2 + 7)
            .collect();
        let path = temp_file("big", &big);
        let mut buf = ReadBuf::new();
        let start = buf.0.as_ptr();
        let got = buf.read(&path).expect("readable").to_vec();
        std::fs::remove_file(&path).ok();
        assert_eq!(buf.0.capacity(), MAX_PROC_FILE_LEN);
        assert_eq!(buf.0.as_ptr(), start);
        assert!(got.len() <= MAX_PROC_FILE_LEN && got.len() > MAX_PROC_FILE_LEN - line.len());
        assert!(got.ends_with(b"\n"));
        assert_eq!(got[..], big[..got.len()]);
    }

    #[test]
    fn read_buffer_reads_small_and_missing_files() {
        let path = temp_file("small", b"0.42 0.35 0.31 2/413 28841\n");
        let mut buf = ReadBuf::new();
        assert_eq!(buf.read(&path), Some(&b"0.42 0.35 0.31 2/413 28841\n"[..]));
        std::fs::remove_file(&path).ok();
        assert_eq!(buf.read(&path), None);
        assert_eq!(buf.0.capacity(), MAX_PROC_FILE_LEN);
    }

    /// A FIFO at `path` that nobody writes.
    fn fifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).expect("path");
        let _ = std::fs::remove_file(path);
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    /// Runs `read` on another thread; fails if it does not return within 5 s (after
    /// opening `fifo` for writing once, which lets a reader blocked in open or read go).
    fn within_bound<T: Send + 'static>(
        fifo: &Path,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read());
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(v) => v,
            Err(_) => {
                drop(std::fs::OpenOptions::new().write(true).open(fifo));
                panic!("reading {} blocked", fifo.display());
            }
        }
    }

    #[test]
    fn a_fifo_is_not_read_and_does_not_block() {
        let dir = std::env::temp_dir().join(format!("tocsin-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("loadavg");
        fifo(&path);
        let p = path.clone();
        let got = within_bound(&path, move || {
            let mut buf = ReadBuf::new();
            let refused = buf.read(&p).is_none();
            let linked = buf.read_linked(&p).map(<[u8]>::to_vec);
            let mut small = [0u8; 8];
            let raw = p.as_os_str().as_bytes().to_vec();
            let read_small = read_small(&mut Vec::new(), &[&raw], &mut small);
            (refused, linked, read_small)
        });
        assert_eq!(got, (true, Err(Unread::NotRegular), None));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_link_is_followed_only_where_the_config_named_the_path() {
        let dir = std::env::temp_dir().join(format!("tocsin-links-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let target = dir.join("target");
        std::fs::write(&target, "42\n").expect("write");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let mut buf = ReadBuf::new();
        assert_eq!(buf.read(&link), None, "a name tocsin chose: not followed");
        assert_eq!(
            buf.read_linked(&link),
            Ok(&b"42\n"[..]),
            "a config path: followed"
        );
        assert_eq!(
            buf.read_linked(&dir),
            Err(Unread::NotRegular),
            "a directory"
        );
        let gone = dir.join("gone");
        assert_eq!(buf.read_linked(&gone), Err(Unread::Failed));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_file_value_fifo_is_logged_once_and_gives_no_sample() {
        let dir = std::env::temp_dir().join(format!("tocsin-fifo-value-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        fifo(&dir.join("value"));
        let probe = Probe::File {
            path: DimValue::try_from("/value").expect("dim"),
            scale: 1.0,
        };
        let root = dir.clone();
        let (refused, later) = within_bound(&dir.join("value"), move || {
            let mut s = Sampler::with_probes(&root, &[probe]);
            let mut out = Samples::new();
            s.sample(0, &mut out);
            let first = (value(&out, Metric::FileValue), s.files[0].refused);
            out.clear();
            s.sample(1000, &mut out);
            assert!(s.files[0].refused, "still refused: not logged again");
            std::fs::remove_file(root.join("value")).expect("rm");
            std::fs::write(root.join("value"), "7\n").expect("write");
            out.clear();
            s.sample(2000, &mut out);
            (first, (value(&out, Metric::FileValue), s.files[0].refused))
        });
        assert_eq!(refused, (None, true));
        assert_eq!(later, (Some(7.0), false), "a regular file again is read");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn statvfs_failures_give_none() {
        let mut c_path = Vec::new();
        assert!(statvfs(&mut c_path, b"", "/").is_some());
        assert!(statvfs(&mut c_path, b"/nonexistent-tocsin-root", "/").is_none());
        assert!(statvfs(&mut c_path, b"", "/with\0nul").is_none());
    }

    #[test]
    fn full_output_stops_silently() {
        let mut out = Samples::new();
        let none = DimValue::new();
        while out
            .push(Sample {
                metric: Metric::Uptime,
                key: None,
                dim: none.clone(),
                value: 1.0,
            })
            .is_ok()
        {}
        let mut sampler = Sampler::new(Path::new("/"));
        sampler.sample(0, &mut out);
        assert_eq!(out.len(), crate::limits::MAX_SAMPLES);
    }

    #[test]
    fn a_copied_dimension_equals_its_original() {
        let longest = "é".repeat(MAX_DIM_VALUE_LEN / 2);
        for s in ["", "/", "wan", "eth0.2", "/mnt/日本", longest.as_str()] {
            let dim = DimValue::try_from(s).expect("fits");
            let copy = copy_dim(&dim);
            assert_eq!(copy, dim);
            assert_eq!(copy.as_str(), s);
        }
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut out = Samples::new();
        let none = DimValue::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(push(&mut out, Metric::Uptime, None, &none, Some(v)).is_ok());
        }
        assert!(push(&mut out, Metric::Uptime, None, &none, None).is_ok());
        assert!(out.is_empty());
    }

    #[test]
    fn real_host_does_not_panic() {
        let mut sampler = Sampler::new(Path::new("/"));
        let mut out = Samples::new();
        sampler.sample(0, &mut out);
        out.clear();
        sampler.sample(1000, &mut out);
        assert!(out.iter().all(|s| s.value.is_finite()));
    }

    /// A fixture root whose mounts file lists a local `/` and an NFS mount at `/mnt/nfs`.
    #[test]
    fn a_sampler_reads_only_the_families_it_is_given_and_every_probe() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/router");
        let families = |s: &mut Sampler| {
            let mut out = Samples::new();
            s.sample(0, &mut out);
            out.clear();
            s.sample(2000, &mut out);
            let mut got: Vec<&str> = out.iter().map(|x| x.metric.name()).collect();
            got.sort_unstable();
            got.dedup();
            got
        };
        let all = families(&mut Sampler::new(&root));
        // (No cpu.*: the fixture's /proc/stat does not change between the two samples.)
        for m in [
            "load.1",
            "net.rx_bps",
            "conntrack.used_percent",
            "temp.celsius",
        ] {
            assert!(
                all.contains(&m),
                "{m} missing from the fixture's samples: {all:?}"
            );
        }
        let probe = Probe::Pidfile(DimValue::try_from("/var/run/odhcpd.pid").unwrap());
        let mut some = Sampler::with_probes(&root, &[probe])
            .only(Families::of(Metric::MemUsed) | Families::UPTIME);
        let got = families(&mut some);
        let want = [
            "mem.available_bytes",
            "mem.used_percent",
            "swap.used_percent",
            "uptime.seconds",
        ];
        let procs = got.iter().filter(|m| m.starts_with("process."));
        assert!(procs.count() > 0, "the pidfile probe is sampled: {got:?}");
        let host: Vec<&str> = got
            .into_iter()
            .filter(|m| !m.starts_with("process."))
            .collect();
        assert_eq!(host, want);
    }

    fn root_with_nfs(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tocsin-inflight-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("proc/self")).expect("mkdir");
        std::fs::create_dir_all(root.join("mnt/nfs")).expect("mkdir");
        std::fs::write(
            root.join("proc/self/mounts"),
            "/dev/sda1 / ext4 rw 0 0\nsrv:/export /mnt/nfs nfs4 rw,hard 0 0\n",
        )
        .expect("mounts");
        root
    }

    fn disk(out: &Samples, mount: &str) -> Option<f64> {
        out.iter()
            .find(|s| s.metric == Metric::DiskUsed && s.dim.as_str() == mount)
            .map(|s| s.value)
    }

    fn value(out: &Samples, metric: Metric) -> Option<f64> {
        out.iter().find(|s| s.metric == metric).map(|s| s.value)
    }

    /// Polls `cond` every 10 ms for at most `secs` seconds.
    fn eventually(secs: u64, cond: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cond()
    }

    static STATFS_SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    /// statvfs that records each path it is asked for, then reports it a quarter full.
    fn recording_statfs(path: &CStr) -> Option<disk::FsStats> {
        let p = path.to_string_lossy().into_owned();
        STATFS_SEEN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p);
        Some(disk::FsStats {
            blocks: 100,
            bfree: 75,
            bavail: 75,
            files: 10,
            ffree: 5,
        })
    }

    #[test]
    fn only_the_mounts_a_rule_matches_cost_a_statvfs() {
        let root = std::env::temp_dir().join(format!("tocsin-mounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("proc/self")).expect("mkdir");
        std::fs::write(
            root.join("proc/self/mounts"),
            "/dev/sda1 / ext4 rw 0 0\n/dev/sda2 /data ext4 rw 0 0\n/dev/sdb1 /srv/backup ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n",
        )
        .expect("mounts");
        let asked = |globs: Option<Vec<DimValue>>| {
            let mut s = Sampler::new(&root)
                .only(Families::DISK)
                .only_mounts(globs)
                .with_statfs(recording_statfs);
            let mut out = Samples::new();
            s.sample(0, &mut out);
            let root_s = root.to_string_lossy().into_owned();
            let mut seen: Vec<String> = STATFS_SEEN
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .filter_map(|p| p.strip_prefix(&root_s).map(str::to_string))
                .collect();
            seen.sort();
            let mut mounts: Vec<String> = out
                .iter()
                .filter(|s| s.metric == Metric::DiskUsed)
                .map(|s| s.dim.to_string())
                .collect();
            mounts.sort();
            (seen, mounts)
        };
        let dim = |s: &str| DimValue::try_from(s).expect("dim");
        // Every mount without a filter (a disk rule without `match`, or `once`).
        let (seen, mounts) = asked(None);
        assert_eq!(mounts, ["/", "/data", "/srv/backup", "/tmp"]);
        assert_eq!(seen.len(), 4, "{seen:?}");
        // `match = { mount = "/" }` and `"/srv/*"`: only those two are asked.
        let (seen, mounts) = asked(Some(vec![dim("/"), dim("/srv/*")]));
        assert_eq!(mounts, ["/", "/srv/backup"]);
        assert_eq!(seen, ["/", "/srv/backup"], "no statvfs of /data or /tmp");
        let _ = std::fs::remove_dir_all(&root);
    }

    static GATE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    static GATE_OPEN: std::sync::Condvar = std::sync::Condvar::new();
    static NFS_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// statvfs that blocks on `/mnt/nfs` until GATE opens (a dead NFS server), then reports
    /// it half full; the real one elsewhere.
    fn gated_statfs(path: &CStr) -> Option<disk::FsStats> {
        if !path.to_bytes().ends_with(b"/mnt/nfs") {
            return host_statvfs(path);
        }
        NFS_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = GATE.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a test that forgets to open the gate still ends.
        let until = Instant::now() + Duration::from_secs(60);
        while !*open && Instant::now() < until {
            open = GATE_OPEN
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(disk::FsStats {
            blocks: 100,
            bfree: 50,
            bavail: 50,
            files: 10,
            ffree: 5,
        })
    }

    #[test]
    fn hanging_network_mount_one_call_no_sample_then_next_tick() {
        use std::sync::atomic::Ordering::SeqCst;
        let root = root_with_nfs("nfs");
        let mut s = Sampler::new(&root).with_statfs(gated_statfs);
        let mut out = Samples::new();
        s.sample(0, &mut out);
        assert!(disk(&out, "/").is_some(), "a local mount stays synchronous");
        assert_eq!(disk(&out, "/mnt/nfs"), None, "started, not yet back");
        assert!(eventually(5, || NFS_CALLS.load(SeqCst) == 1));
        for now in (1..=6).map(|i| i * 1000) {
            out.clear();
            let t0 = Instant::now();
            s.sample(now, &mut out);
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "the tick does not wait"
            );
            assert!(disk(&out, "/").is_some());
            assert_eq!(disk(&out, "/mnt/nfs"), None, "no sample while it hangs");
            assert_eq!(
                s.remote[0].warned,
                now >= STATFS_HANG_MS,
                "logged once hung"
            );
        }
        assert_eq!(NFS_CALLS.load(SeqCst), 1, "one call in flight per mount");
        // Hung: settle gives up at the deadline and says so.
        let t0 = Instant::now();
        assert!(!s.settle(Instant::now() + Duration::from_millis(300)));
        assert!(t0.elapsed() < Duration::from_secs(2));
        *GATE.lock().unwrap() = true;
        GATE_OPEN.notify_all();
        assert!(s.settle(Instant::now() + Duration::from_secs(5)));
        out.clear();
        s.sample(7000, &mut out);
        assert_eq!(
            disk(&out, "/mnt/nfs"),
            Some(50.0),
            "back: the next tick has it"
        );
        assert!(!s.remote[0].warned);
        assert!(
            eventually(5, || NFS_CALLS.load(SeqCst) == 2),
            "and the next run started"
        );
        assert!(s.settle(Instant::now() + Duration::from_secs(5)));
        out.clear();
        s.sample(8000, &mut out);
        assert_eq!(disk(&out, "/mnt/nfs"), Some(50.0));
        // Unmounted: the task goes.
        std::fs::write(root.join("proc/self/mounts"), "/dev/sda1 / ext4 rw 0 0\n").unwrap();
        out.clear();
        s.sample(9000, &mut out);
        assert!(s.remote.is_empty());
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn fast_probe_started_at_one_tick_is_the_sample_of_the_next() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let probe = Probe::Tcp {
            target: l.local_addr().expect("addr"),
            timeout_ms: 1000,
        };
        let mut s = Sampler::with_probes(Path::new("/nonexistent"), &[probe]);
        let mut out = Samples::new();
        s.sample(0, &mut out);
        assert_eq!(value(&out, Metric::TcpUp), None, "tick N starts it");
        assert!(s.settle(Instant::now() + Duration::from_secs(5)));
        out.clear();
        s.sample(1000, &mut out);
        assert_eq!(value(&out, Metric::TcpUp), Some(1.0), "tick N + 1 has it");
        // The run tick N + 1 started connects before the listener closes, so tick N + 2
        // still says up; the run of N + 2 finds it closed, and N + 3 says so.
        assert!(s.settle(Instant::now() + Duration::from_secs(5)));
        drop(l);
        out.clear();
        s.sample(2000, &mut out);
        assert_eq!(
            value(&out, Metric::TcpUp),
            Some(1.0),
            "the run of tick N + 1"
        );
        assert!(s.settle(Instant::now() + Duration::from_secs(5)));
        out.clear();
        s.sample(3000, &mut out);
        assert_eq!(
            value(&out, Metric::TcpUp),
            Some(0.0),
            "the run of tick N + 2"
        );
    }

    #[test]
    fn slow_command_one_run_and_no_sample_while_it_runs() {
        let dir = std::env::temp_dir().join(format!("tocsin-slowcmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let runs = dir.join("runs");
        let _ = std::fs::remove_file(&runs);
        let script = format!("echo run >> {}; sleep 0.6; echo 7", runs.display());
        let probe = Probe::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            timeout_ms: 5000,
        };
        let mut s = Sampler::with_probes(Path::new("/nonexistent"), &[probe]);
        let count = || {
            std::fs::read_to_string(&runs)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let mut out = Samples::new();
        s.sample(0, &mut out);
        assert!(eventually(5, || count() == 1), "started at the first tick");
        for now in [100, 200, 300] {
            out.clear();
            s.sample(now, &mut out);
            assert_eq!(
                value(&out, Metric::ExecValue),
                None,
                "still running: no sample"
            );
        }
        assert_eq!(count(), 1, "one run per series in flight");
        assert!(s.settle(Instant::now() + Duration::from_secs(10)));
        out.clear();
        s.sample(1000, &mut out);
        assert_eq!(value(&out, Metric::ExecValue), Some(7.0));
        assert!(
            eventually(5, || count() == 2),
            "the next run starts with that tick"
        );
        drop(s);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_dropped_sampler_kills_its_running_command() {
        let dir = std::env::temp_dir().join(format!("tocsin-dropcmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let pidfile = dir.join("pid");
        let _ = std::fs::remove_file(&pidfile);
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let probe = Probe::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            timeout_ms: 30_000,
        };
        let mut s = Sampler::with_probes(Path::new("/nonexistent"), &[probe]);
        let mut out = Samples::new();
        s.sample(0, &mut out);
        let pid = || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
        };
        assert!(eventually(5, || pid().is_some()), "the command started");
        let pid = pid().unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        assert!(proc_dir.exists());
        drop(s);
        assert!(
            eventually(5, || !proc_dir.exists()),
            "killed and reaped when its sampler went"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
