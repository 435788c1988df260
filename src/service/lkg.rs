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

/// The pointer file naming the current generation.
pub const POINTER: &str = "lkg.current";
/// The main file's name in a generation; the included copies are `NNN-name`.
pub const MAIN: &str = "config.toml";
/// The pointer's format and version, its first word and second.
const POINTER_FORMAT: &str = "tocsin-lkg";
const POINTER_VERSION: &str = "1";
/// Longest pointer file read: anything longer is foreign.
const MAX_POINTER_LEN: u64 = 64;
/// The first version's layout, converted once into a generation.
const V1_MAIN: &str = "last-good.toml";

/// The pointer's bytes for generation `n`: one line, `tocsin-lkg 1 lkg.N`.
pub fn encode_pointer(n: u32) -> Vec<u8> {
    format!("{POINTER_FORMAT} {POINTER_VERSION} lkg.{n}\n").into_bytes()
}

/// The generation a pointer names, or `None` when the bytes are torn, foreign or of
/// another version.
pub fn decode_pointer(bytes: &[u8]) -> Option<u32> {
    if bytes.len() as u64 > MAX_POINTER_LEN {
        return None;
    }
    let line = core::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let mut words = line.split(' ');
    if words.next()? != POINTER_FORMAT || words.next()? != POINTER_VERSION {
        return None;
    }
    let n = generation_number(words.next()?)?;
    words.next().is_none().then_some(n)
}

/// `N` of a directory name `lkg.N` (decimal, no sign, no leading zero, not 0).
fn generation_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("lkg.")?;
    if digits.is_empty() || digits.len() > 10 || digits.starts_with('0') {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn generation_dir(state_dir: &Path, n: u32) -> PathBuf {
    state_dir.join(format!("lkg.{n}"))
}

/// What the pointer says: the current generation, none (no pointer, or a damaged one,
/// moved aside), or unknown (it cannot be read now: nothing may be removed).
enum Current {
    Gen(u32),
    None,
    Unknown,
}

fn read_pointer(state_dir: &Path) -> Current {
    let p = state_dir.join(POINTER);
    match state::read_regular(&p, MAX_POINTER_LEN, false) {
        Ok(b) => match decode_pointer(&b) {
            Some(n) => Current::Gen(n),
            None => {
                state::set_aside(&p, "is damaged or of an unknown format");
                Current::None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Current::None,
        Err(e) if state::is_foreign(&e) => {
            state::set_aside(&p, &format!("is {e}"));
            Current::None
        }
        Err(e) => {
            crate::warn!("cannot read {}: {e}", state::shown(&p));
            Current::Unknown
        }
    }
}

/// Removes `path` whatever it is: a directory with its contents, or anything else itself
/// (a symbolic link is removed, never followed).
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tidies the generations: converts the first version's layout once, then removes every
/// `lkg.N` but the current one — older ones (a crash after the switch) quietly,
/// half-written ones (a crash before it) with a log line — and a pointer's temporary
/// file. Returns the current generation. Bounded by the entries of `state_dir`.
fn tidy(state_dir: &Path) -> Option<u32> {
    let current = match read_pointer(state_dir) {
        Current::Gen(n) => Some(n),
        Current::None => None,
        Current::Unknown => return None,
    };
    if let Some(n) = current {
        if !std::fs::symlink_metadata(generation_dir(state_dir, n)).is_ok_and(|m| m.is_dir()) {
            crate::warn!(
                "{} names lkg.{n}, which is missing: no last-known-good copy",
                state::shown(&state_dir.join(POINTER))
            );
            // Nothing is removed: the next copy written replaces the pointer.
            return None;
        }
    }
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return current;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = e.path();
        if name == ".lkg.current.tmp" {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(n) = generation_number(name) else {
            continue;
        };
        if Some(n) == current {
            continue;
        }
        let half = current.is_none_or(|c| n > c);
        match remove_any(&path) {
            Ok(()) if half => crate::warn!(
                "removed the half-written last-known-good generation {} (a crash or a full disk before it was made current)",
                state::shown(&path)
            ),
            Ok(()) => {}
            Err(e) => crate::warn!("cannot remove {}: {e}", state::shown(&path)),
        }
    }
    if current.is_none() && upgrade_v1(state_dir) {
        return tidy_after_upgrade(state_dir);
    }
    if current.is_some() {
        remove_v1(state_dir);
    }
    current
}

/// The pointer after a conversion (no recursion into [`tidy`]).
fn tidy_after_upgrade(state_dir: &Path) -> Option<u32> {
    match read_pointer(state_dir) {
        Current::Gen(n) => Some(n),
        _ => None,
    }
}

/// Removes the first version's `last-good.toml` and `last-good.d/` (once a generation is
/// current, they are never read).
fn remove_v1(state_dir: &Path) {
    let main = state_dir.join(V1_MAIN);
    let dir = state_dir.join(config::LAST_GOOD_DIR);
    let had = std::fs::symlink_metadata(&main).is_ok() || std::fs::symlink_metadata(&dir).is_ok();
    if had {
        let _ = remove_any(&dir);
        let _ = remove_any(&main);
        let _ = state::sync_dir(state_dir);
    }
}

/// Converts the first version's copy (`last-good.toml` + `last-good.d/NNN-name`) into a
/// generation, read as state files (regular files only, bounded); returns whether it did.
fn upgrade_v1(state_dir: &Path) -> bool {
    let main = state_dir.join(V1_MAIN);
    if std::fs::symlink_metadata(&main).is_err() {
        return false;
    }
    let copy = |p: &Path| state::read_regular(p, MAX_CONFIG_LEN as u64, false);
    let text = match copy(&main) {
        Ok(t) => t,
        Err(e) => {
            crate::warn!(
                "last-known-good copy {} of an older version not converted: {e}",
                state::shown(&main)
            );
            return false;
        }
    };
    let dir = state_dir.join(config::LAST_GOOD_DIR);
    let mut copies = Vec::new();
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .take(crate::limits::MAX_INCLUDES + 1)
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            match copy(&dir.join(&n)) {
                Ok(t) => copies.push((n, t)),
                Err(e) => {
                    crate::warn!(
                        "last-known-good copy {} of an older version not converted: {e}",
                        state::shown(&dir.join(&n))
                    );
                    return false;
                }
            }
        }
    }
    match write_generation(state_dir, &text, &copies, None) {
        Ok(n) => {
            crate::info!(
                "converted the last-known-good copy {} of an older version into {}",
                state::shown(&main),
                state::shown(&generation_dir(state_dir, n))
            );
            remove_v1(state_dir);
            true
        }
        Err(e) => {
            crate::warn!(
                "cannot convert the last-known-good copy {}: {e}",
                state::shown(&main)
            );
            false
        }
    }
}

/// Writes generation `current + 1` (the main file and `copies`), makes it current with
/// the pointer's rename, then removes generation `current`. A crash before the rename
/// leaves the new one unused (removed at the next start); after it, the old one.
fn write_generation(
    state_dir: &Path,
    text: &[u8],
    copies: &[(String, Vec<u8>)],
    current: Option<u32>,
) -> std::io::Result<u32> {
    let n = current.map_or(1, |c| c.checked_add(1).unwrap_or(1));
    let dir = generation_dir(state_dir, n);
    let put = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
        // A dot file: one left by a crash is never read back as an included copy.
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(path.file_name().unwrap_or_default());
        state::write_atomic(path, &path.with_file_name(tmp), bytes)
    };
    let fill = || -> std::io::Result<()> {
        state::make_state_dir(state_dir)?;
        remove_any(&dir)?;
        state::private_dir(&dir)?;
        for (name, t) in copies {
            put(&dir.join(name), t)?;
        }
        put(&dir.join(MAIN), text)?;
        state::sync_dir(&dir)?;
        // The generation's name is durable before the pointer names it.
        state::sync_dir(state_dir)
    };
    if let Err(e) = fill() {
        let _ = remove_any(&dir);
        return Err(e);
    }
    let pointer = state_dir.join(POINTER);
    if let Ok(m) = std::fs::symlink_metadata(&pointer) {
        if !m.is_file() {
            let why = format!("is not a regular file ({})", state::kind(m.file_type()));
            state::set_aside(&pointer, &why);
        }
    }
    if let Err(e) = state::write_atomic(
        &pointer,
        &state_dir.join(".lkg.current.tmp"),
        &encode_pointer(n),
    ) {
        let _ = remove_any(&dir);
        return Err(e);
    }
    state::sync_dir(state_dir)?;
    if let Some(old) = current.filter(|c| *c != n) {
        let old = generation_dir(state_dir, old);
        if let Err(e) = remove_any(&old) {
            crate::warn!("cannot remove {}: {e}", state::shown(&old));
        }
    }
    Ok(n)
}

/// The main file of the current last-known-good generation under `state_dir`, if there is
/// one. The generations are tidied first (the first version's copy converted, half-written
/// and older generations removed), so this may write.
pub fn last_good_path(state_dir: &Path) -> Option<PathBuf> {
    let n = tidy(state_dir)?;
    Some(generation_dir(state_dir, n).join(MAIN))
}

/// Keeps a copy of a config that validated, so a broken rollout does not take the device
/// down at its next start: a generation `state_dir/lkg.N/` holding the file as
/// `config.toml` and the files it included as `NNN-name` (so their order stays), made
/// current by the pointer `state_dir/lkg.current` (replaced with rename(2)). Written only
/// when something changed (flash wear), owner-only whatever the umask (the config may
/// hold a secret): files 0600, directories 0700, `state_dir` 0700 when this creates it.
/// The copies already there are read back as state files: a FIFO, a link or anything but
/// a regular file in their place is never opened the ordinary way (it could hold the
/// start forever); the generation is then replaced.
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
    let current = tidy(state_dir);
    if let Some(n) = current {
        let dir = generation_dir(state_dir, n);
        if same_generation(&dir, &text, &copies) {
            // Nothing to write; copies an older version made 0644 are made owner-only.
            state::tighten_dir(&dir);
            state::tighten_file(&dir.join(MAIN));
            for (name, _) in &copies {
                state::tighten_file(&dir.join(name));
            }
            return;
        }
    }
    if let Err(e) = write_generation(state_dir, &text, &copies, current) {
        crate::warn!(
            "cannot keep a last-known-good copy in {}: {e}",
            state_dir.display()
        );
    }
}

/// Whether generation `dir` holds exactly `text` as its main file and `copies`.
fn same_generation(dir: &Path, text: &[u8], copies: &[(String, Vec<u8>)]) -> bool {
    let copy = |p: &Path| state::read_regular(p, MAX_CONFIG_LEN as u64, false);
    let mut have: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != MAIN)
                .take(copies.len() + 1)
                .collect()
        })
        .unwrap_or_default();
    have.sort();
    have.len() == copies.len()
        && copies
            .iter()
            .zip(&have)
            .all(|((n, t), h)| n == h && copy(&dir.join(h)).is_ok_and(|o| &o == t))
        && copy(&dir.join(MAIN)).is_ok_and(|o| o == text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tocsin-lkg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_pointer_round_trips_and_anything_else_is_refused() {
        let bytes = encode_pointer(7);
        assert_eq!(bytes, b"tocsin-lkg 1 lkg.7\n");
        assert_eq!(decode_pointer(&bytes), Some(7));
        for n in 0..bytes.len() {
            assert_eq!(decode_pointer(&bytes[..n]), None, "torn at {n}");
        }
        for bad in [
            &b"tocsin-lkg 2 lkg.7\n"[..],
            b"tocsin-lkg 1 lkg.07\n",
            b"tocsin-lkg 1 lkg.0\n",
            b"tocsin-lkg 1 lkg.7 x\n",
            b"tocsin-lkg 1 ../lkg.7\n",
            b"tocsin-lkg 1 lkg.99999999999\n",
        ] {
            assert_eq!(
                decode_pointer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_pointer(&[b'x'; 100]), None);
    }

    #[test]
    fn one_generation_remains_and_an_unchanged_config_writes_nothing() {
        let dir = scratch("gens");
        let state = dir.join("state");
        let config = dir.join("tocsin.toml");
        let inc = dir.join("10-extra.toml");
        std::fs::write(&inc, "# extra\n").unwrap();
        for i in 0..4 {
            std::fs::write(&config, format!("token = \"s3cret\" # {i}\n")).unwrap();
            save_last_good(&config, std::slice::from_ref(&inc), &state);
            assert_eq!(names(&state), [&format!("lkg.{}", i + 1), POINTER]);
        }
        let main = last_good_path(&state).unwrap();
        assert_eq!(main, state.join("lkg.4/config.toml"));
        assert_eq!(names(&state.join("lkg.4")), ["000-10-extra.toml", MAIN]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&main), 0o600);
        assert_eq!(mode(&state.join(POINTER)), 0o600);
        assert_eq!(mode(&state.join("lkg.4")), 0o700);
        // Unchanged: no new generation; a copy left readable is made owner-only.
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_last_good(&config, &[inc], &state);
        assert_eq!(names(&state), ["lkg.4", POINTER]);
        assert_eq!(mode(&main), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_half_written_generation_is_never_used_and_removed() {
        let dir = scratch("half");
        let state = dir.join("state");
        let config = dir.join("tocsin.toml");
        std::fs::write(&config, "a = 1\n").unwrap();
        save_last_good(&config, &[], &state);
        // A crash while lkg.2 was written: the pointer still names lkg.1.
        std::fs::create_dir(state.join("lkg.2")).unwrap();
        std::fs::write(state.join("lkg.2/config.toml"), "a = ").unwrap();
        std::fs::write(state.join(".lkg.current.tmp"), "tocsin-lkg 1 lk").unwrap();
        assert_eq!(
            last_good_path(&state),
            Some(state.join("lkg.1/config.toml"))
        );
        assert_eq!(names(&state), ["lkg.1", POINTER]);
        // A crash after a switch to lkg.3, before lkg.1 was removed: lkg.3 is used.
        std::fs::create_dir(state.join("lkg.3")).unwrap();
        std::fs::write(state.join("lkg.3/config.toml"), "a = 3\n").unwrap();
        std::fs::write(state.join(POINTER), encode_pointer(3)).unwrap();
        let main = last_good_path(&state).unwrap();
        assert_eq!(std::fs::read_to_string(main).unwrap(), "a = 3\n");
        assert_eq!(names(&state), ["lkg.3", POINTER]);
        // A pointer naming a missing generation: none, never a crash.
        std::fs::write(state.join(POINTER), encode_pointer(9)).unwrap();
        assert_eq!(last_good_path(&state), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_first_versions_copy_is_converted_once() {
        let dir = scratch("v1");
        let state = dir.join("state");
        std::fs::create_dir_all(state.join("last-good.d")).unwrap();
        std::fs::write(state.join("last-good.toml"), "main = 1\n").unwrap();
        std::fs::write(state.join("last-good.d/000-a.toml"), "a = 1\n").unwrap();
        std::fs::write(state.join("last-good.d/001-b.conf"), "b = 1\n").unwrap();
        let main = last_good_path(&state).unwrap();
        assert_eq!(names(&state), ["lkg.1", POINTER]);
        assert_eq!(std::fs::read_to_string(&main).unwrap(), "main = 1\n");
        assert_eq!(
            names(&state.join("lkg.1")),
            ["000-a.toml", "001-b.conf", MAIN]
        );
        assert_eq!(last_good_path(&state), Some(main));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
