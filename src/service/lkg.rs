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
/// each file atomically, owner-only whatever the umask (the config may hold a secret):
/// files 0600, `last-good.d/` 0700, `state_dir` 0700 when this creates it. The copies
/// already there are read back as state files: a FIFO, a link or anything but a regular
/// file in their place is never opened the ordinary way (it could hold the start
/// forever), and is moved aside or replaced.
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
        // Nothing to write; copies an older version made 0644 are made owner-only.
        state::tighten_file(&dest);
        if !copies.is_empty() {
            state::tighten_dir(&dir);
            for (n, _) in &copies {
                state::tighten_file(&dir.join(n));
            }
        }
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
        state::make_state_dir(state_dir)?;
        if !same_dir {
            // The copies go first: a last-good.toml never names files that are not there.
            let _ = match dir_type {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&dir),
                Ok(_) => std::fs::remove_file(&dir),
                Err(_) => Ok(()),
            };
            if !copies.is_empty() {
                state::private_dir(&dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn an_unchanged_copy_an_older_version_left_readable_is_made_owner_only() {
        let dir = std::env::temp_dir().join(format!("tocsin-lkg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let config = dir.join("tocsin.toml");
        std::fs::write(&config, "token = \"s3cret\"\n").unwrap();
        let copy = last_good_path(&state);
        std::fs::copy(&config, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_last_good(&config, &[], &state);
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(&config).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
