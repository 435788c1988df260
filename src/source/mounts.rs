//! The disk family's I/O: statvfs of each mount in the mounts file, in the tick for a
//! local filesystem and on the probe pool for a network or FUSE one (a dead NFS server
//! must not stall the loop). The mounts file's parser is [`super::disk`].

use super::pool::{Job, Outcome, Poll, StatFsFn, Task};
use super::{disk, push, Full, Sampler};
use crate::limits::{MAX_MOUNTS, STATFS_HANG_MS};
use crate::metric::{DimValue, Metric, Samples};
use crate::util::glob_match;
use std::ffi::CStr;

/// A network or FUSE mount whose statvfs runs in the probe pool.
#[derive(Debug)]
pub(super) struct RemoteMount {
    pub(super) point: DimValue,
    pub(super) task: Task,
    /// Its hang was logged (once per hang).
    pub(super) warned: bool,
    /// Listed in this cycle's mounts file.
    pub(super) seen: bool,
}

impl Sampler {
    /// The mounts file, then statvfs of each mount (network and FUSE ones on the workers).
    pub(super) fn sample_disks(&mut self, now_ms: u64, out: &mut Samples) -> Result<(), Full> {
        let read = self.buf.read_kept(&mut self.mounts_file).is_some()
            || self.buf.read_linked(&self.mounts_fallback).is_ok();
        if read {
            disk::parse_mounts(&self.buf.0, &mut self.mounts);
        } else {
            self.mounts.clear();
        }
        let mount = Some("mount");
        for r in self.remote.iter_mut() {
            r.seen = false;
        }
        for m in &self.mounts {
            let point = &m.point;
            if let Some(globs) = &self.mount_globs {
                if !globs.iter().any(|g| glob_match(g.as_str(), point.as_str())) {
                    continue;
                }
            }
            let stats = if m.remote {
                remote_statvfs(
                    &mut self.remote,
                    &mut self.c_path,
                    &self.root,
                    m,
                    self.statfs,
                    now_ms,
                )
            } else {
                c_path(&mut self.c_path, &self.root, point).and_then(self.statfs)
            };
            let Some(stats) = stats else {
                continue;
            };
            push(out, Metric::DiskUsed, mount, point, stats.used_percent())?;
            let inodes = stats.inodes_used_percent();
            push(out, Metric::DiskInodesUsed, mount, point, inodes)?;
        }
        // Unmounted: its task goes (a run still going finishes on its worker, unheard).
        self.remote.retain(|r| r.seen);
        Ok(())
    }
}

/// The statvfs of a network or FUSE mount, through its task in the probe pool: the result
/// of the run that returned since the previous cycle, else None. The task is made when
/// the mount first appears (that allocates, once). A run in flight for
/// [`STATFS_HANG_MS`] is logged once.
fn remote_statvfs(
    remote: &mut heapless::Vec<RemoteMount, MAX_MOUNTS>,
    c_buf: &mut Vec<u8>,
    root: &[u8],
    mount: &disk::Mount,
    statfs: StatFsFn,
    now_ms: u64,
) -> Option<disk::FsStats> {
    let i = match remote.iter().position(|r| r.point == mount.point) {
        Some(i) => i,
        None => {
            let path = c_path(c_buf, root, &mount.point)?.to_owned();
            let task = Task::new(Job::StatFs { path, statfs });
            let r = RemoteMount {
                point: mount.point.clone(),
                task,
                warned: false,
                seen: false,
            };
            // Full only while an unmounted one is still listed: next cycle.
            remote.push(r).ok()?;
            remote.len() - 1
        }
    };
    let r = &mut remote[i];
    r.seen = true;
    match r.task.poll(now_ms) {
        Poll::Ready(Outcome::Fs(stats)) => {
            r.warned = false;
            stats
        }
        Poll::Busy { for_ms } if for_ms >= STATFS_HANG_MS && !r.warned => {
            r.warned = true;
            crate::warn!(
                "statvfs of {} (a network or FUSE mount) has not returned for {} s: no disk.* sample for it until it does",
                r.point,
                for_ms / 1000
            );
            None
        }
        _ => None,
    }
}

/// `root` joined with `point` as a C string, built in the reused `buf`. None when the
/// path holds a NUL byte.
fn c_path<'a>(buf: &'a mut Vec<u8>, root: &[u8], point: &str) -> Option<&'a CStr> {
    buf.clear();
    buf.extend_from_slice(root);
    buf.extend_from_slice(point.as_bytes());
    buf.push(0);
    CStr::from_bytes_with_nul(buf).ok()
}

/// statvfs of `root` joined with `point`, building the C path in the reused `c_path`.
/// None when the path holds a NUL byte or the call fails.
#[cfg(test)]
pub(super) fn statvfs(c_buf: &mut Vec<u8>, root: &[u8], point: &str) -> Option<disk::FsStats> {
    c_path(c_buf, root, point).and_then(host_statvfs)
}

/// `libc::statvfs` of `path`; None when it fails.
pub(super) fn host_statvfs(path: &CStr) -> Option<disk::FsStats> {
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
