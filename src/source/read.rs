//! Reading source files so that nothing blocks: regular files only, opened non-blocking,
//! into one buffer allocated once.

use crate::limits::MAX_PROC_FILE_LEN;
use std::fs::{File, OpenOptions};
use std::io::Read;
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

    /// The contents of the first of `paths` that can be read (links followed: the
    /// mounts files).
    pub(super) fn read_first(&mut self, paths: &[PathBuf]) -> Option<&[u8]> {
        (paths.iter().any(|p| self.load(p, Link::Follow).is_ok())).then_some(&self.0[..])
    }

    pub(super) fn load(&mut self, path: &Path, link: Link) -> Result<(), Unread> {
        self.0.clear();
        let file = open_source(path, link)?;
        // The buffer has MAX_PROC_FILE_LEN spare bytes and the reader stops there, so
        // read_to_end never reallocates.
        if file
            .take(MAX_PROC_FILE_LEN as u64)
            .read_to_end(&mut self.0)
            .is_err()
        {
            return Err(Unread::Failed);
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
