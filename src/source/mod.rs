//! Metric sources: `/proc` and `/sys` files, statvfs, TCP connects and commands, turned into [`Sample`]s.
//!
//! Each metric family has a pure parser in its own module; [`Sampler`] does the I/O with
//! buffers allocated once. A source that is missing or unparsable yields no sample — never
//! a zero, never a panic.

mod conntrack;
mod cpu;
mod disk;
pub mod exec;
mod load;
mod mem;
pub mod net;
mod procdir;
pub mod process;
mod tcp;
pub mod temp;
mod uptime;

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::limits::{DIR_BUF_LEN, MAX_DIM_VALUE_LEN, MAX_EXEC_OUTPUT, MAX_PROC_FILE_LEN};
use crate::metric::{DimValue, Metric, Sample, Samples};
use crate::util::glob_match;

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

/// Reads every metric source under a root directory (`/` in production).
///
/// Everything it needs is allocated in [`Sampler::with_probes`]: paths are resolved, the
/// thermal and hwmon inputs found, and the per-interface and per-process state sized by
/// [`crate::limits`]. [`Sampler::sample`] then reuses those buffers; the file sources do
/// not touch the heap (see `tests/alloc.rs`).
#[derive(Debug)]
pub struct Sampler {
    buf: ReadBuf,
    stat: PathBuf,
    loadavg: PathBuf,
    meminfo: PathBuf,
    uptime: PathBuf,
    /// `proc/self/mounts`, then `proc/mounts`.
    mounts_files: [PathBuf; 2],
    /// `root` without trailing slashes, as bytes; mount points are appended to it.
    root: Vec<u8>,
    /// Reused NUL-terminated path for statvfs.
    c_path: Vec<u8>,
    mounts: disk::Mounts,
    cpu: cpu::CpuDelta,
    temps: Vec<temp::TempInput>,
    net_dev: PathBuf,
    net: net::NetState,
    /// Reused path for per-interface and per-process files; capacity reserved up front.
    path_buf: Vec<u8>,
    conntrack: [PathBuf; 2],
    /// `root/proc` as a C string, for getdents64.
    proc_dir: CString,
    dir_buf: Vec<u8>,
    procs: Vec<ProcWatch>,
    clk_tck: u64,
    page_size: u64,
    files: Vec<(PathBuf, f64, DimValue)>,
    tcps: Vec<(SocketAddr, Duration, DimValue)>,
    execs: Vec<(Vec<String>, Duration, DimValue)>,
    exec_buf: Vec<u8>,
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
                Probe::File { path, scale } => files.push((under_root(path), *scale, dim)),
                Probe::Tcp { target, timeout_ms } => {
                    tcps.push((*target, Duration::from_millis(*timeout_ms), dim))
                }
                Probe::Exec {
                    command,
                    timeout_ms,
                } => execs.push((command.clone(), Duration::from_millis(*timeout_ms), dim)),
            }
        }
        let netfilter = proc.join("sys/net/netfilter");
        Sampler {
            buf: ReadBuf::new(),
            stat: proc.join("stat"),
            loadavg: proc.join("loadavg"),
            meminfo: proc.join("meminfo"),
            uptime: proc.join("uptime"),
            mounts_files: [proc.join("self/mounts"), proc.join("mounts")],
            root: root_bytes.to_vec(),
            c_path: Vec::with_capacity(root_bytes.len() + MAX_DIM_VALUE_LEN + 1),
            mounts: disk::Mounts::new(),
            cpu: cpu::CpuDelta::default(),
            temps: temp::discover(root),
            net_dev: proc.join("net/dev"),
            net: net::NetState::default(),
            path_buf: Vec::with_capacity(root_bytes.len() + PATH_ROOM),
            conntrack: [
                netfilter.join("nf_conntrack_count"),
                netfilter.join("nf_conntrack_max"),
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
            exec_buf: vec![0; MAX_EXEC_OUTPUT],
        }
    }

    /// Reads every source and appends its samples to `out` (which the caller clears).
    /// `now_ms` is a monotonic time in milliseconds, passed in by the caller (rates divide
    /// by the time between two calls; the sampler never reads the clock for values).
    /// A missing or unparsable source yields no sample for it — never a panic, never a zero.
    pub fn sample(&mut self, now_ms: u64, out: &mut Samples) {
        // Err only means `out` is full: stop silently.
        let _ = self.fill(now_ms, out);
    }

    fn fill(&mut self, now_ms: u64, out: &mut Samples) -> Result<(), Full> {
        let none = DimValue::new();

        if let Some(now) = self.buf.read(&self.stat).and_then(cpu::parse_stat) {
            if let Some(p) = self.cpu.update(now) {
                push(out, Metric::CpuUsage, None, &none, Some(p.usage))?;
                push(out, Metric::CpuIowait, None, &none, Some(p.iowait))?;
            }
        }

        if let Some(loads) = self.buf.read(&self.loadavg).and_then(load::parse_loadavg) {
            let metrics = [Metric::Load1, Metric::Load5, Metric::Load15];
            for (metric, value) in metrics.into_iter().zip(loads) {
                push(out, metric, None, &none, Some(value))?;
            }
        }

        if let Some(info) = self.buf.read(&self.meminfo).map(mem::parse_meminfo) {
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

        let uptime = self.buf.read(&self.uptime).and_then(uptime::parse_uptime);
        push(out, Metric::Uptime, None, &none, uptime)?;

        if let Some(text) = self.buf.read_first(&self.mounts_files) {
            disk::parse_mounts(text, &mut self.mounts);
        } else {
            self.mounts.clear();
        }
        let mount = Some("mount");
        for point in &self.mounts {
            let Some(stats) = statvfs(&mut self.c_path, &self.root, point) else {
                continue;
            };
            push(out, Metric::DiskUsed, mount, point, stats.used_percent())?;
            let inodes = stats.inodes_used_percent();
            push(out, Metric::DiskInodesUsed, mount, point, inodes)?;
        }

        for t in &self.temps {
            let v = self.buf.read(&t.path).and_then(temp::parse_millidegrees);
            push(out, Metric::TempCelsius, Some(t.key), &t.dim, v)?;
        }

        self.sample_net(now_ms, out)?;

        let count = self.buf.read(&self.conntrack[0]).and_then(parse_number);
        let max = self.buf.read(&self.conntrack[1]).and_then(parse_number);
        let used = conntrack::used_percent(count, max);
        push(out, Metric::ConntrackUsed, None, &none, used)?;

        self.sample_processes(now_ms, out)?;

        for (path, scale, dim) in &self.files {
            let v = self
                .buf
                .read(path)
                .and_then(parse_number)
                .map(|v| v * scale);
            push(out, Metric::FileValue, Some("path"), dim, v)?;
        }
        for (target, timeout, dim) in &self.tcps {
            let v = tcp::probe(target, *timeout);
            push(out, Metric::TcpUp, Some("target"), dim, Some(v))?;
        }
        for (argv, timeout, dim) in &self.execs {
            let v = exec::run(argv, *timeout, &mut self.exec_buf).ok();
            push(out, Metric::ExecValue, Some("command"), dim, v)?;
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
        let Some(text) = buf.read(net_dev) else {
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
            let Some(pid) = buf.read(pidfile).and_then(process::parse_pidfile) else {
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
/// in the reused `path_buf`). None when it cannot be opened or read.
fn read_small(path_buf: &mut Vec<u8>, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    path_buf.clear();
    for p in parts {
        path_buf.extend_from_slice(p);
    }
    let mut f = File::open(Path::new(OsStr::from_bytes(path_buf))).ok()?;
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
fn parse_number(text: &[u8]) -> Option<f64> {
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
            let dim = dim.clone();
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

/// One buffer, allocated once with capacity [`MAX_PROC_FILE_LEN`], that every file is read into.
#[derive(Debug)]
struct ReadBuf(Vec<u8>);

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf(Vec::with_capacity(MAX_PROC_FILE_LEN))
    }

    /// The contents of `path`, at most [`MAX_PROC_FILE_LEN`] bytes. A file that fills the
    /// buffer is cut back to its last complete line, so parsers never see half a line.
    fn read(&mut self, path: &Path) -> Option<&[u8]> {
        self.load(path).then_some(&self.0[..])
    }

    /// The contents of the first of `paths` that can be read.
    fn read_first(&mut self, paths: &[PathBuf]) -> Option<&[u8]> {
        paths.iter().any(|p| self.load(p)).then_some(&self.0[..])
    }

    fn load(&mut self, path: &Path) -> bool {
        self.0.clear();
        let Ok(file) = File::open(path) else {
            return false;
        };
        // The buffer has MAX_PROC_FILE_LEN spare bytes and the reader stops there, so
        // read_to_end never reallocates.
        if file
            .take(MAX_PROC_FILE_LEN as u64)
            .read_to_end(&mut self.0)
            .is_err()
        {
            return false;
        }
        if self.0.len() == MAX_PROC_FILE_LEN {
            let complete = self
                .0
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            self.0.truncate(complete);
        }
        true
    }
}

/// statvfs of `root` joined with `point`, building the C path in the reused `c_path`.
/// None when the path holds a NUL byte or the call fails.
fn statvfs(c_path: &mut Vec<u8>, root: &[u8], point: &str) -> Option<disk::FsStats> {
    c_path.clear();
    c_path.extend_from_slice(root);
    c_path.extend_from_slice(point.as_bytes());
    c_path.push(0);
    let path = CStr::from_bytes_with_nul(c_path).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated C string that outlives the call, and `st`
    // points to writable memory sized and aligned for `libc::statvfs`. On success (0) the
    // kernel has filled the whole struct, so it is initialized; on failure we return
    // before reading it.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    // `as u64`: the counter types are u32 or u64 depending on the target.
    Some(disk::FsStats {
        blocks: st.f_blocks as u64,
        bfree: st.f_bfree as u64,
        bavail: st.f_bavail as u64,
        files: st.f_files as u64,
        ffree: st.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
