//! Reboots told by the kernel's boot id, and a `state_dir` that a reboot wipes.
//!
//! The kernel draws a new random boot id (`/proc/sys/kernel/random/boot_id`, read under
//! `[agent] root`) at every boot. tocsin records the one it ran under in `state_dir/boot`;
//! a start that finds another one recorded sends one `reboot` event. Nothing recorded
//! (a first start, or state lost) is no event, one log line. The file is written once per
//! boot (flash wear): when the id it holds differs, or when a reboot is announced for the
//! id it holds, so that the uptime-went-back trigger never sends a second `reboot` for a
//! boot id already announced.
//!
//! The file is versioned text, three lines:
//!
//! ```text
//! tocsin-boot 1
//! id 5f0c2a9e-8d1b-4c3f-9a7e-1b2c3d4e5f60
//! announced 1700000000000
//! ```
//!
//! `announced` is the wall-clock ms at which a `reboot` was sent for that id, `0` when
//! none was (the id was first seen). [`decode`] is pure and bounded.

use crate::deliver::spool::state;
use std::io;
use std::path::{Path, PathBuf};

/// The file under `state_dir`.
pub const BOOT_FILE: &str = "boot";
/// The first line: the format and its version.
const FORMAT: &str = "tocsin-boot 1";
/// Longest boot file read: anything longer is foreign.
const MAX_FILE_LEN: u64 = 256;
/// Longest boot id taken (the kernel's is a 36-character UUID).
const MAX_ID_LEN: usize = 64;

/// What `state_dir/boot` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The boot id.
    pub id: String,
    /// When a `reboot` was announced for it (wall-clock ms); 0: not announced.
    pub announced_ms: u64,
}

/// Whether `s` looks like a boot id: 1 to 64 hex digits and dashes.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The record as the file's bytes.
pub fn encode(r: &Record) -> Vec<u8> {
    format!("{FORMAT}\nid {}\nannounced {}\n", r.id, r.announced_ms).into_bytes()
}

/// The record of `bytes`, or `None` when they are torn, foreign or of another version.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    if bytes.len() as u64 > MAX_FILE_LEN {
        return None;
    }
    let text = core::str::from_utf8(bytes).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != FORMAT {
        return None;
    }
    let id = lines.next()?.strip_prefix("id ")?;
    let announced = lines.next()?.strip_prefix("announced ")?;
    if lines.next().is_some() || !valid_id(id) || !announced.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Record {
        id: id.to_string(),
        announced_ms: announced.parse().ok()?,
    })
}

/// The kernel's boot id under `root`, or `None` (no such file: a fixture root, an old
/// kernel; or not a boot id).
pub fn current(root: &Path) -> Option<String> {
    let path = root.join("proc/sys/kernel/random/boot_id");
    let bytes = state::read_regular(&path, MAX_ID_LEN as u64 + 1, true).ok()?;
    let id = core::str::from_utf8(&bytes).ok()?.trim();
    valid_id(id).then(|| id.to_ascii_lowercase())
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(BOOT_FILE)
}

/// The record in `state_dir`; a damaged or foreign file is moved aside (and is none).
pub fn recorded(state_dir: &Path) -> Option<Record> {
    let p = path(state_dir);
    let bytes = match state::read_regular(&p, MAX_FILE_LEN, false) {
        Ok(b) => b,
        Err(e) if state::is_foreign(&e) => {
            state::set_aside(&p, &format!("is {e}"));
            return None;
        }
        Err(_) => return None,
    };
    let r = decode(&bytes);
    if r.is_none() {
        state::set_aside(&p, "is damaged or of an unknown format");
    }
    r
}

/// Writes `r` to `state_dir/boot` atomically, 0600.
fn record(state_dir: &Path, r: &Record) {
    let write = || -> io::Result<()> {
        state::make_state_dir(state_dir)?;
        let p = path(state_dir);
        state::write_atomic(&p, &state_dir.join(".boot.tmp"), &encode(r))?;
        state::sync_dir(state_dir)
    };
    if let Err(e) = write() {
        crate::warn!(
            "cannot record the boot id in {}: {e}",
            state::shown(state_dir)
        );
    }
}

/// At start: the detail of the `reboot` event to send when the boot id under `root`
/// differs from the one recorded in `state_dir` (which is then replaced). Nothing recorded
/// is no event and one log line; no boot id under `root` is no event.
pub fn at_start(root: &Path, state_dir: &Path, now_ms: u64) -> Option<String> {
    let now = current(root)?;
    match recorded(state_dir) {
        None => {
            crate::info!(
                "no boot id recorded in {} (a first start, or the state was lost): no reboot event; recording {now}",
                state::shown(state_dir)
            );
            record(
                state_dir,
                &Record {
                    id: now,
                    announced_ms: 0,
                },
            );
            None
        }
        Some(r) if r.id == now => None,
        Some(r) => {
            record(
                state_dir,
                &Record {
                    id: now.clone(),
                    announced_ms: now_ms.max(1),
                },
            );
            Some(format!("boot id {now} (was {})", r.id))
        }
    }
}

/// When uptime went back under a running agent: whether to send a `reboot` — not when
/// one was announced already for the boot id under `root` (which is recorded as
/// announced otherwise). Without a boot id under `root`, uptime alone tells.
pub fn announce_once(root: &Path, state_dir: &Path, now_ms: u64) -> bool {
    let Some(now) = current(root) else {
        return true;
    };
    if recorded(state_dir).is_some_and(|r| r.id == now && r.announced_ms != 0) {
        crate::info!("uptime went back, but a reboot was announced for boot id {now} already");
        return false;
    }
    record(
        state_dir,
        &Record {
            id: now,
            announced_ms: now_ms.max(1),
        },
    );
    true
}

/// `TMPFS_MAGIC` and `RAMFS_MAGIC` of statfs(2).
const TMPFS_MAGIC: u32 = 0x0102_1994;
const RAMFS_MAGIC: u32 = 0x8584_58f6;

/// The filesystem `state_dir` is on when a reboot wipes it (`tmpfs`, `ramfs`): the
/// nearest existing directory of its path is asked (it is created on first write).
pub fn volatile_fs(state_dir: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt as _;
    // Bounded by the path's components.
    let dir = state_dir.ancestors().find(|d| d.is_dir())?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes only into the struct it is given; zeroed is a valid value.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid, writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    // f_type is a C long whose width varies by target: its low 32 bits are the magic.
    #[allow(clippy::unnecessary_cast)]
    match s.f_type as u32 {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    }
}

/// The warning for a `state_dir` on tmpfs or ramfs, if it is on one.
pub fn volatile_warning(state_dir: &Path) -> Option<String> {
    volatile_fs(state_dir).map(|fs| {
        format!(
            "state_dir {} is on {fs}: nothing tocsin promises survives a reboot (spooled events, the last-known-good config, the boot id)",
            state::shown(state_dir)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_anything_else_is_refused() {
        let r = Record {
            id: "5f0c2a9e-8d1b-4c3f-9a7e-1b2c3d4e5f60".into(),
            announced_ms: 1_795_339_813_000,
        };
        let bytes = encode(&r);
        assert_eq!(decode(&bytes), Some(r.clone()));
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), None, "torn at {n}");
        }
        let other = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("tocsin-boot 1", "tocsin-boot 2");
        assert_eq!(decode(other.as_bytes()), None, "another version");
        let mut long = bytes.clone();
        long.extend_from_slice(&[b'\n'; 300]);
        assert_eq!(decode(&long), None);
        assert_eq!(decode(b"tocsin-boot 1\nid ../x\nannounced 0\n"), None);
    }

    #[test]
    fn a_changed_boot_id_is_one_reboot_and_uptime_going_back_adds_none() {
        let dir = std::env::temp_dir().join(format!("tocsin-boot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, st) = (dir.join("root"), dir.join("state"));
        let put = |id: &str| {
            let p = root.join("proc/sys/kernel/random");
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("boot_id"), format!("{id}\n")).unwrap();
        };
        assert_eq!(at_start(&root, &st, 5), None, "no boot id: nothing");
        put("aaaa-1");
        assert_eq!(at_start(&root, &st, 5), None, "first start: nothing");
        assert_eq!(at_start(&root, &st, 6), None, "unchanged: nothing");
        assert!(announce_once(&root, &st, 7), "not announced yet");
        assert!(!announce_once(&root, &st, 8), "announced once");
        put("bbbb-2");
        assert_eq!(
            at_start(&root, &st, 9).as_deref(),
            Some("boot id bbbb-2 (was aaaa-1)")
        );
        assert!(!announce_once(&root, &st, 10), "announced at start");
        assert_eq!(at_start(&root, &st, 11), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
