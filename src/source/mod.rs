//! Metric sources: `/proc` files and statvfs, turned into [`Sample`]s.
//!
//! Each metric family has a pure parser in its own module; [`Sampler`] does the I/O with
//! buffers allocated once. A source that is missing or unparsable yields no sample — never
//! a zero, never a panic.

mod cpu;
mod disk;
mod load;
mod mem;
mod uptime;

use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::limits::{MAX_DIM_VALUE_LEN, MAX_PROC_FILE_LEN};
use crate::metric::{DimValue, Metric, Sample, Samples};

/// Reads every metric source under a root directory (`/` in production).
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
}

impl Sampler {
    /// Paths are resolved here, once: `root` prefixes /proc and mount points (tests point it at fixture trees).
    pub fn new(root: &Path) -> Sampler {
        let proc = root.join("proc");
        let mut root_bytes = root.as_os_str().as_bytes();
        while let Some(rest) = root_bytes.strip_suffix(b"/") {
            root_bytes = rest;
        }
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
        }
    }

    /// Reads every source and appends its samples to `out` (which the caller clears).
    /// A missing or unparsable source yields no sample for it — never a panic, never a zero.
    pub fn sample(&mut self, out: &mut Samples) {
        // Err only means `out` is full: stop silently.
        let _ = self.fill(out);
    }

    fn fill(&mut self, out: &mut Samples) -> Result<(), Full> {
        let none = DimValue::new();

        if let Some(now) = self.buf.read(&self.stat).and_then(cpu::parse_stat) {
            if let Some(p) = self.cpu.update(now) {
                push(out, Metric::CpuUsage, &none, Some(p.usage))?;
                push(out, Metric::CpuIowait, &none, Some(p.iowait))?;
            }
        }

        if let Some(loads) = self.buf.read(&self.loadavg).and_then(load::parse_loadavg) {
            let metrics = [Metric::Load1, Metric::Load5, Metric::Load15];
            for (metric, value) in metrics.into_iter().zip(loads) {
                push(out, metric, &none, Some(value))?;
            }
        }

        if let Some(info) = self.buf.read(&self.meminfo).map(mem::parse_meminfo) {
            push(out, Metric::MemUsed, &none, info.used_percent())?;
            push(out, Metric::MemAvailable, &none, info.available_bytes())?;
            push(out, Metric::SwapUsed, &none, info.swap_used_percent())?;
        }

        let uptime = self.buf.read(&self.uptime).and_then(uptime::parse_uptime);
        push(out, Metric::Uptime, &none, uptime)?;

        if let Some(text) = self.buf.read_first(&self.mounts_files) {
            disk::parse_mounts(text, &mut self.mounts);
        } else {
            self.mounts.clear();
        }
        for point in &self.mounts {
            let Some(stats) = statvfs(&mut self.c_path, &self.root, point) else {
                continue;
            };
            push(out, Metric::DiskUsed, point, stats.used_percent())?;
            push(
                out,
                Metric::DiskInodesUsed,
                point,
                stats.inodes_used_percent(),
            )?;
        }
        Ok(())
    }
}

/// `out` has no room left.
struct Full;

/// Appends a sample unless `value` is None or not finite.
fn push(out: &mut Samples, metric: Metric, dim: &DimValue, value: Option<f64>) -> Result<(), Full> {
    match value {
        Some(value) if value.is_finite() => {
            let dim = dim.clone();
            out.push(Sample { metric, dim, value }).map_err(|_| Full)
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
                dim: none.clone(),
                value: 1.0,
            })
            .is_ok()
        {}
        let mut sampler = Sampler::new(Path::new("/"));
        sampler.sample(&mut out);
        assert_eq!(out.len(), crate::limits::MAX_SAMPLES);
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut out = Samples::new();
        let none = DimValue::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(push(&mut out, Metric::Uptime, &none, Some(v)).is_ok());
        }
        assert!(push(&mut out, Metric::Uptime, &none, None).is_ok());
        assert!(out.is_empty());
    }

    #[test]
    fn real_host_does_not_panic() {
        let mut sampler = Sampler::new(Path::new("/"));
        let mut out = Samples::new();
        sampler.sample(&mut out);
        out.clear();
        sampler.sample(&mut out);
        assert!(out.iter().all(|s| s.value.is_finite()));
    }
}
