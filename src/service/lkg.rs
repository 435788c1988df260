//! The last-known-good copy of the config under `state_dir`, so that a broken rollout
//! does not take the device down at its next start.

use crate::config::{self, Host as _};
use crate::deliver::spool::state;
use crate::limits::MAX_CONFIG_LEN;
use std::path::{Path, PathBuf};

/// Where the running config came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// The file given.
    Given,
    /// The file given was invalid; this last-known-good copy runs instead.
    LastGood(PathBuf),
}

/// The last-known-good copy of the config under `state_dir`.
pub fn last_good_path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-good.toml")
}

/// Keeps a copy of a config that validated, so a broken rollout does not take the device
/// down at its next start: the file, and the files it included in `last-good.d/` (named
/// `NNN-name` so their order stays). Written only when something changed (flash wear),
/// each file atomically. The copies already there are read back as state files: a FIFO, a
/// link or anything but a regular file in their place is never opened the ordinary way
/// (it could hold the start forever), and is moved aside or replaced.
pub fn save_last_good(config: &Path, includes: &[PathBuf], state_dir: &Path) {
    let host = config::RealHost;
    let Ok(text) = host.read_file(config) else {
        return;
    };
    let mut copies = Vec::with_capacity(includes.len());
    for (i, p) in includes.iter().enumerate() {
        let Ok(t) = host.read_file(p) else { return };
        let name = p
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        copies.push((format!("{i:03}-{name}"), t));
    }
    let dest = last_good_path(state_dir);
    let dir = state_dir.join(config::LAST_GOOD_DIR);
    let copy = |p: &Path| state::read_regular(p, MAX_CONFIG_LEN as u64, false);
    let dir_type = std::fs::symlink_metadata(&dir).map(|m| m.file_type());
    let same_dir = match dir_type {
        Err(_) => copies.is_empty(),
        // A link or a file in place of the directory is replaced.
        Ok(t) if !t.is_dir() => false,
        Ok(_) => {
            let mut have: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            have.sort();
            have.len() == copies.len()
                && copies
                    .iter()
                    .zip(&have)
                    .all(|((n, t), h)| n == h && copy(&dir.join(h)).is_ok_and(|o| &o == t))
        }
    };
    if same_dir && copy(&dest).is_ok_and(|old| old == text) {
        return;
    }
    let put = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
        // A dot file: one left by a crash is never read back as an included copy. It is
        // removed when the write fails (a full disk), and replaced by the next one.
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(path.file_name().unwrap_or_default());
        state::write_atomic(path, &path.with_file_name(tmp), bytes)
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        if !same_dir {
            // The copies go first: a last-good.toml never names files that are not there.
            let _ = match dir_type {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&dir),
                Ok(_) => std::fs::remove_file(&dir),
                Err(_) => Ok(()),
            };
            if !copies.is_empty() {
                std::fs::create_dir_all(&dir)?;
                for (n, t) in &copies {
                    put(&dir.join(n), t)?;
                }
                state::sync_dir(&dir)?;
            }
        }
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if !m.is_file() {
                let why = format!("is not a regular file ({})", state::kind(m.file_type()));
                state::set_aside(&dest, &why);
            }
        }
        put(&dest, &text)?;
        state::sync_dir(state_dir)
    };
    if let Err(e) = write() {
        crate::warn!(
            "cannot keep a last-known-good copy in {}: {e}",
            state_dir.display()
        );
    }
}
