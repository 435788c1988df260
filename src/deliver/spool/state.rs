//! Files under `state_dir`, which may be a symbolic link (systemd's DynamicUser makes
//! it one): the spool's, the last-known-good copies. They are read only when they are
//! regular files — checked before opening and again on the open file — never through a
//! symbolic link at the last component and without waiting (`O_NONBLOCK`: a FIFO cannot
//! hold the agent), and only up to a bound. Anything else found where such a file
//! belongs is refused; the code that owns the place moves it aside ([`set_aside`]) with
//! one log line.
//!
//! What tocsin writes there is its own only, whatever the umask: files 0600
//! ([`create_private`]), directories 0700 ([`private_dir`]). The directories tocsin
//! owns (`spool/`, `spool/<webhook>/`, `lkg.N/`) are tightened to 0700 when they
//! are real directories of this user with another mode; `state_dir` itself is created
//! 0700 when missing, but an existing one is never changed: it may be a symbolic link,
//! shared, or the operator's choice.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
    PermissionsExt as _,
};
use std::path::Path;

/// What a file that is not a regular one is, for messages.
pub fn kind(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "of an unknown type"
    }
}

fn regular(m: &fs::Metadata) -> io::Result<()> {
    if m.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({})", kind(m.file_type())),
    ))
}

/// Opens the regular file `path` for reading: anything else is refused before it is
/// opened and, should it have been swapped meanwhile, after (fstat). The open never
/// waits; with `follow` false a symbolic link at the last component is refused too.
///
/// # Errors
/// I/O errors; [`io::ErrorKind::InvalidInput`] for what is not a regular file.
pub fn open_regular(path: &Path, follow: bool) -> io::Result<fs::File> {
    let before = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    regular(&before?)?;
    let flags = libc::O_NONBLOCK | if follow { 0 } else { libc::O_NOFOLLOW };
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && !follow => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a symbolic link)",
            ))
        }
        r => r?,
    };
    regular(&f.metadata()?)?;
    Ok(f)
}

/// The regular file `path` (see [`open_regular`]), at most `limit` bytes of it.
///
/// # Errors
/// As [`open_regular`]; [`io::ErrorKind::InvalidData`] for a file longer than `limit`.
pub fn read_regular(path: &Path, limit: u64, follow: bool) -> io::Result<Vec<u8>> {
    let f = open_regular(path, follow)?;
    let hint = f.metadata().map_or(0, |m| m.len()).min(limit).min(1 << 20);
    let mut out = Vec::with_capacity(hint as usize);
    f.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: to the temporary file `tmp` beside it
/// ([`create_private`]), fsynced, renamed over `path`. `tmp` is removed on every
/// failure, so a full disk leaves nothing behind. The directory is not fsynced
/// ([`sync_dir`]): a caller writing several files does it once.
///
/// # Errors
/// Any step failed; `path` is as it was.
pub fn write_atomic(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_steps(path, tmp, bytes, &mut |_| {})
}

/// [`write_atomic`], calling `step` between its steps (`after-temp`: the temporary
/// file is written and fsynced; `after-rename`) — where a test build puts crash points.
///
/// # Errors
/// Any step failed; `path` is as it was.
pub fn write_atomic_steps(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    step: &mut dyn FnMut(&'static str),
) -> io::Result<()> {
    // One a crash left behind would make O_EXCL fail.
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut write = || -> io::Result<()> {
        let mut f = create_private(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        step("after-temp");
        fs::rename(tmp, path)?;
        step("after-rename");
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}

/// Creates the new file `path` for writing: `O_EXCL` (never an existing file),
/// `O_NOFOLLOW` (never through a symbolic link), mode 0600 — set again on the open file,
/// since a umask can only take bits away and a strict one (0277) would leave the owner
/// unable to read it back.
///
/// # Errors
/// It exists, or cannot be created.
pub fn create_private(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Makes `state_dir` exist: created (with any missing parent) with mode 0700 when
/// missing; an existing one, or a symbolic link to one, is left as it is.
///
/// # Errors
/// It cannot be created.
pub fn make_state_dir(state_dir: &Path) -> io::Result<()> {
    if fs::metadata(state_dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)?;
    tighten_dir(state_dir);
    Ok(())
}

/// Makes `dir`, a directory tocsin owns under `state_dir`, exist with mode 0700:
/// created so, or tightened ([`tighten_dir`]).
///
/// # Errors
/// It cannot be created.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => tighten_dir(dir),
    }
    Ok(())
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Sets `dir` to mode 0700 when it is a real directory (not a symbolic link: that is
/// used as it is) owned by this process's user, and its mode is another. Best effort:
/// a directory that cannot be changed still holds 0600 files.
pub fn tighten_dir(dir: &Path) {
    let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let Ok(d) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(dir)
    else {
        return;
    };
    tighten(&d, 0o700);
}

/// Sets the regular file `path` (not through a symbolic link) to mode 0600 when it is
/// this process's user's and its mode is another: a copy an older version left 0644.
pub fn tighten_file(path: &Path) {
    if let Ok(f) = open_regular(path, false) {
        tighten(&f, 0o600);
    }
}

fn tighten(f: &fs::File, mode: u32) {
    if let Ok(m) = f.metadata() {
        if m.uid() == euid() && m.mode() & 0o7777 != mode {
            let _ = f.set_permissions(fs::Permissions::from_mode(mode));
        }
    }
}

/// Fsyncs the directory `dir`, so that the names renamed into it last.
///
/// # Errors
/// It cannot be opened (it is not a directory) or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
        .open(dir)?
        .sync_all()
}

/// Whether `read_regular` refused the file for what it is (not regular, too long), not
/// for an I/O error: such a file is foreign.
pub fn is_foreign(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
    )
}

/// `path` for a log line: control characters escaped, so that a file name holding a
/// newline cannot start a second line.
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Moves `path` aside as `*.bad` (a symbolic link itself, not what it points to), with
/// one log line saying `why`.
pub fn set_aside(path: &Path, why: &str) {
    let bad = path.with_extension("bad");
    match fs::rename(path, &bad) {
        Ok(()) => crate::warn!("{} {why}; moved aside as {}", shown(path), shown(&bad)),
        Err(e) => crate::warn!("{} {why}; cannot move it aside: {e}", shown(path)),
    }
}
