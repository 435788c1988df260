//! Reading source files so that nothing blocks: regular files only, opened non-blocking,
//! into one buffer allocated once.

use crate::limits::MAX_PROC_FILE_LEN;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Why a source file gave no text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unread {
    /// Missing, or it could not be opened or read.
    Failed,
    /// Not a regular file: a FIFO, a device, a socket, a directory, or a symbolic link
    /// where tocsin chose the name. Never read, so it cannot block.
    NotRegular,
}

/// What the last component of a source path may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// A name tocsin chose (`/proc/loadavg`): a symbolic link there is not followed.
    Refuse,
    /// A path from the config, or `/proc/mounts` (a link to `self/mounts`): followed.
    Follow,
}

/// Opens a source file so that neither the open nor a read can block: the path is looked
/// at first (opening a device may act: a watchdog arms itself), then opened with
/// `O_NONBLOCK` (a FIFO with no writer would block the open otherwise) and `O_NOCTTY`, and
/// checked again on the descriptor (fstat), so a file swapped in between is caught too.
/// /proc and /sys files are regular files.
pub(crate) fn open_source(path: &Path, link: Link) -> Result<File, Unread> {
    // A path from the config (`file.value`) is looked at before it is opened: opening some
    // devices has effects of its own (a watchdog starts counting). The paths tocsin builds
    // (/proc, /sys) are opened straight away, without following a link at the end, which
    // saves a system call per file and cycle; the descriptor is checked either way.
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    match link {
        Link::Follow => match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(Unread::NotRegular),
            Err(_) => return Err(Unread::Failed),
        },
        Link::Refuse => flags |= libc::O_NOFOLLOW,
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Unread::NotRegular,
            _ => Unread::Failed,
        })?;
    if is_regular(&file) {
        Ok(file)
    } else {
        Err(Unread::NotRegular)
    }
}

/// Whether the open file is a regular file (fstat: one system call, no path walk).
fn is_regular(file: &File) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open for the call's duration and `st` points to writable
    // memory sized and aligned for `libc::stat`; it is read only when fstat returned 0.
    unsafe {
        libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) == 0
            && (st.assume_init().st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}

/// A /proc file read every cycle (`/proc/stat`, `meminfo`, `net/dev`, …). On procfs its
/// descriptor is kept open after the first read and read again with pread from offset 0,
/// where procfs makes the text anew: two system calls a cycle instead of open, fstat,
/// read, read and close. Anywhere else (a fixture tree under `root`, whose files a test
/// may replace) it is opened afresh each time. A read that fails drops the descriptor;
/// the next read opens the path again.
#[derive(Debug)]
pub(super) struct Kept {
    path: PathBuf,
    file: Option<File>,
}

impl Kept {
    pub(super) fn new(path: PathBuf) -> Kept {
        Kept { path, file: None }
    }

    #[cfg(test)]
    pub(super) fn is_open(&self) -> bool {
        self.file.is_some()
    }
}

/// Whether the open file is on procfs (fstatfs: `PROC_SUPER_MAGIC`).
// `f_type` is i64 here, u32 or i32 on the 32-bit targets: the cast is not the same
// everywhere.
#[allow(clippy::unnecessary_cast)]
fn on_procfs(file: &File) -> bool {
    use std::os::fd::AsRawFd as _;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is open for the call's duration and `st` points to writable
    // memory sized and aligned for `libc::statfs`; it is read only when fstatfs returned 0.
    unsafe {
        libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) == 0
            && st.assume_init().f_type as i64 == PROC_SUPER_MAGIC
    }
}

/// One buffer, allocated once with capacity [`MAX_PROC_FILE_LEN`], that every file is read into.
#[derive(Debug)]
pub(super) struct ReadBuf(pub(super) Vec<u8>);

impl ReadBuf {
    pub(super) fn new() -> ReadBuf {
        ReadBuf(Vec::with_capacity(MAX_PROC_FILE_LEN))
    }

    /// The contents of `path`, a name tocsin chose ([`Link::Refuse`]), at most
    /// [`MAX_PROC_FILE_LEN`] bytes. A file that fills the buffer is cut back to its last
    /// complete line, so parsers never see half a line.
    pub(super) fn read(&mut self, path: &Path) -> Option<&[u8]> {
        self.load(path, Link::Refuse).ok().map(|()| &self.0[..])
    }

    /// [`ReadBuf::read`] of a path from the config ([`Link::Follow`]), saying why not.
    pub(super) fn read_linked(&mut self, path: &Path) -> Result<&[u8], Unread> {
        self.load(path, Link::Follow).map(|()| &self.0[..])
    }

    pub(super) fn load(&mut self, path: &Path, link: Link) -> Result<(), Unread> {
        self.0.clear();
        let file = open_source(path, link)?;
        self.fill(&file)
    }

    /// The contents of a file read every cycle ([`Kept`]): through its kept descriptor
    /// when it has one, else opened as [`ReadBuf::read`] does (and kept when on procfs).
    pub(super) fn read_kept(&mut self, kept: &mut Kept) -> Option<&[u8]> {
        if let Some(file) = &kept.file {
            if self.fill(file).is_ok() {
                return Some(&self.0[..]);
            }
            kept.file = None;
        }
        self.0.clear();
        let file = open_source(&kept.path, Link::Refuse).ok()?;
        self.fill(&file).ok()?;
        if on_procfs(&file) {
            kept.file = Some(file);
        }
        Some(&self.0[..])
    }

    /// Reads `file` from offset 0 (pread: a kept descriptor's offset is never moved), at
    /// most [`MAX_PROC_FILE_LEN`] bytes, into the buffer, which never reallocates.
    fn fill(&mut self, file: &File) -> Result<(), Unread> {
        use std::os::fd::AsRawFd as _;
        self.0.clear();
        loop {
            let len = self.0.len();
            let room = MAX_PROC_FILE_LEN - len;
            if room == 0 {
                break;
            }
            let spare = self.0.spare_capacity_mut();
            // SAFETY: `spare` is the vector's unused capacity, at least `room` bytes (the
            // buffer was allocated with MAX_PROC_FILE_LEN and `len` are in use); pread
            // writes at most `room` bytes there and returns how many it wrote.
            let n = unsafe {
                libc::pread(
                    file.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    room,
                    len as libc::off_t,
                )
            };
            match n {
                0 => break,
                // SAFETY: pread initialised the first `n` bytes of the spare capacity.
                n if n > 0 => unsafe { self.0.set_len(len + n as usize) },
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => return Err(Unread::Failed),
            }
        }
        if self.0.len() == MAX_PROC_FILE_LEN {
            let complete = self
                .0
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            self.0.truncate(complete);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procfs_file_is_kept_open_and_read_anew_each_time() {
        // `rchar` in /proc/self/io counts the bytes this process has read, these reads too:
        // every read of the kept descriptor must show a larger count than the one before.
        let rchar = |text: &[u8]| -> u64 {
            let text = std::str::from_utf8(text).expect("utf8");
            let line = text
                .lines()
                .find(|l| l.starts_with("rchar:"))
                .expect("rchar");
            line[6..].trim().parse().expect("number")
        };
        let mut buf = ReadBuf::new();
        let mut kept = Kept::new(PathBuf::from("/proc/self/io"));
        let mut last = rchar(buf.read_kept(&mut kept).expect("/proc/self/io"));
        assert!(kept.is_open(), "kept after the first read");
        for _ in 0..3 {
            let now = rchar(buf.read_kept(&mut kept).expect("read again"));
            assert!(
                now > last,
                "the current text from offset 0: {now} after {last}"
            );
            last = now;
        }
        assert!(kept.is_open());
    }

    #[test]
    fn a_file_outside_procfs_is_opened_afresh_and_a_replaced_one_is_seen() {
        let dir = std::env::temp_dir().join(format!("tocsin-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("uptime");
        std::fs::write(&path, "10.0 1.0\n").expect("write");
        let mut buf = ReadBuf::new();
        let mut kept = Kept::new(path.clone());
        assert_eq!(buf.read_kept(&mut kept), Some(&b"10.0 1.0\n"[..]));
        assert!(!kept.is_open(), "a fixture file is not kept");
        // Replaced by a rename, as a test updates a fixture tree.
        std::fs::write(dir.join("new"), "20.0 2.0\n").expect("write");
        std::fs::rename(dir.join("new"), &path).expect("rename");
        assert_eq!(buf.read_kept(&mut kept), Some(&b"20.0 2.0\n"[..]));
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(buf.read_kept(&mut kept), None, "gone: no text");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
