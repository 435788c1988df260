//! What parsing asks of the host: files, directory listings and the environment. Parsing
//! itself is pure over the config text and a [`Host`]; [`RealHost`] is the machine it runs
//! on, and the unit tests put a fake one in its place.

use crate::deliver::spool::state::{is_foreign, open_regular, read_regular, shown};
use crate::limits::MAX_CONFIG_LEN;
use std::ffi::OsString;
use std::io;
use std::path::Path;

/// Every piece of host I/O done while a config is parsed: included files and their
/// directory, `*_file` and `*_env` secrets, `$CREDENTIALS_DIRECTORY`, the device's identity
/// under `[agent] root` (`/etc/machine-id`, `/sys/class/net/*/address`,
/// `/proc/sys/kernel/hostname`) and the TLS files a webhook names.
pub trait Host {
    /// The whole file at `path`.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A small file of the device's identity under `[agent] root` (the host name, the
    /// machine id, a MAC address), read as the sampler reads its sources: one that is not
    /// a regular file (a FIFO would block) is an error, and at most [`SOURCE_FILE_LEN`]
    /// bytes are read.
    fn read_source(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_file(path)
    }
    /// The names of the entries of directory `dir`, in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Device and inode of `path` (symbolic links followed): two names of one file have
    /// the same. `None` when it does not exist.
    fn file_id(&self, path: &Path) -> Option<(u64, u64)>;
    /// Whether `path` is a directory (symbolic links followed).
    fn is_dir(&self, path: &Path) -> bool;
    /// Opens `path` for reading and closes it again: whether it can be read, without
    /// reading it.
    fn open(&self, path: &Path) -> io::Result<()>;
    /// The environment variable `key`.
    fn env(&self, key: &str) -> Option<OsString>;
    /// What is at `path` itself (a symbolic link there is not followed).
    fn node(&self, path: &Path) -> Node;

    /// Whether `path` exists (symbolic links followed).
    fn exists(&self, path: &Path) -> bool {
        self.file_id(path).is_some()
    }
}

/// Most bytes [`Host::read_source`] reads.
pub const SOURCE_FILE_LEN: u64 = 4096;

/// What a path names, a symbolic link there not followed ([`Host::node`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// Nothing (or nothing that can be looked at).
    Missing,
    /// A Unix socket.
    Socket,
    /// Anything else: a file, a directory, a symbolic link, a FIFO, a device.
    Other,
}

/// The machine tocsin runs on: `std::fs` and `std::env`. Only regular files are read or
/// opened (symbolic links followed): a FIFO or a device named as a config, an included file
/// or a secret is an error, never an open that waits for a writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_regular(path, u64::MAX, true)
    }

    fn read_source(&self, path: &Path) -> io::Result<Vec<u8>> {
        use crate::source::{open_source, Link, Unread};
        use std::io::Read as _;
        let file = open_source(path, Link::Follow).map_err(|e| match e {
            Unread::NotRegular => io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            Unread::Failed => io::Error::from(io::ErrorKind::NotFound),
        })?;
        let mut out = Vec::new();
        file.take(SOURCE_FILE_LEN).read_to_end(&mut out)?;
        Ok(out)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(|e| Some(e.ok()?.file_name()))
            .collect())
    }

    fn file_id(&self, path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn open(&self, path: &Path) -> io::Result<()> {
        open_regular(path, true).map(drop)
    }

    fn env(&self, key: &str) -> Option<OsString> {
        std::env::var_os(key)
    }

    fn node(&self, path: &Path) -> Node {
        use std::os::unix::fs::FileTypeExt as _;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => Node::Socket,
            Ok(_) => Node::Other,
            Err(_) => Node::Missing,
        }
    }
}

/// The host a last-known-good copy is read through. The copy and the included copies
/// beside it are state files: regular files only, never through a symbolic link at the
/// last component, at most [`MAX_CONFIG_LEN`] bytes, and one log line for one refused.
/// Everything else the copy names (secrets, identity) is read as [`RealHost`] reads it.
pub(super) struct LastGood<'a> {
    /// `state_dir/lkg.N/config.toml`.
    pub main: &'a Path,
    /// The directory of the included copies, `state_dir/lkg.N` (the main file's).
    pub copies: &'a Path,
}

impl Host for LastGood<'_> {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        if path != self.main && path.parent() != Some(self.copies) {
            return RealHost.read_file(path);
        }
        read_regular(path, MAX_CONFIG_LEN as u64, false).inspect_err(|e| {
            if is_foreign(e) {
                crate::warn!("last-known-good copy {} not used: {e}", shown(path));
            }
        })
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        RealHost.read_dir(dir)
    }

    fn file_id(&self, path: &Path) -> Option<(u64, u64)> {
        RealHost.file_id(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        RealHost.is_dir(path)
    }

    fn open(&self, path: &Path) -> io::Result<()> {
        RealHost.open(path)
    }

    fn env(&self, key: &str) -> Option<OsString> {
        RealHost.env(key)
    }

    fn read_source(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealHost.read_source(path)
    }

    fn node(&self, path: &Path) -> Node {
        RealHost.node(path)
    }
}

/// The file at `path` as text; not UTF-8 is an error, as [`std::fs::read_to_string`] has it.
pub(super) fn read_to_string(host: &dyn Host, path: &Path) -> io::Result<String> {
    text(host.read_file(path)?)
}

/// [`Host::read_source`] as text.
pub(super) fn read_source_text(host: &dyn Host, path: &Path) -> io::Result<String> {
    text(host.read_source(path)?)
}

fn text(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}
