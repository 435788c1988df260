//! What tocsin keeps under `state_dir` against a hostile or full disk: foreign entries in
//! the spool and in place of the last-known-good copy (a FIFO, a directory, a symbolic
//! link), a full filesystem, and the permissions of what it writes whatever the umask.

use crate::common::*;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A config with one CRITICAL rule on memory and one webhook `rcv`; its control socket in
/// `dir`, its state in `state`.
fn config(dir: &Path, root: &Path, state: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join("tocsin.toml");
    std::fs::write(
        &path,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{state}"
control_socket = "{sock}"
{extra}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm", "recovery"]
retries = 1
retry_interval = "100ms"
timeout = "1s"
"#,
            root = root.display(),
            state = state.display(),
            sock = dir.join("control.sock").display(),
        ),
    )
    .unwrap();
    path
}

fn wait_log(agent: &Agent, what: &str, n: usize) -> String {
    let t0 = Instant::now();
    loop {
        let log = agent.log();
        if log.matches(what).count() >= n || t0.elapsed() > WAIT {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` to its end, at most `limit`; `None` (and the child killed) if it did not end.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<ExitStatus>, String, String) {
    let dir = TempDir::new("bounded");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out), read(&err))
}

/// `tocsin status`, bounded: its row for webhook `rcv`, split on white space.
fn status_row(cfg: &Path) -> Vec<String> {
    let (status, out, err) = run_bounded(
        Command::new(bin()).args(["status", "-c"]).arg(cfg),
        Duration::from_secs(5),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "status answers within 5 s: {status:?} {out} {err}"
    );
    out.lines()
        .find(|l| l.starts_with("rcv "))
        .unwrap_or_else(|| panic!("a row for rcv: {out}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A spool file as tocsin writes it: `level` event, `ts` ms old.
fn spool_file(spool: &Path, ts: u64, level: tocsin::event::Level) -> String {
    use tocsin::event::{Event, EventId, EventType};
    let mut e = Event::agent(EventType::Alarm, EventId::new(ts, [7; 10]), ts, "old");
    e.level = level;
    let name = format!("{ts:020}-{}.ev", e.id.to_text());
    std::fs::write(spool.join(&name), tocsin::deliver::spool::encode(&e)).unwrap();
    e.id.to_text().to_string()
}

#[test]
fn foreign_entries_in_the_spool_are_set_aside_never_waited_on() {
    let dir = TempDir::new("foreign");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(40));
    let closed = ClosedPort::new();
    let state = dir.path().join("state");
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    let cfg = config(dir.path(), &root, &state, &url, "");
    let spool = state.join("spool/rcv");
    std::fs::create_dir_all(&spool).unwrap();
    // A FIFO (whose name holds a newline: it must not start a second log line), a
    // directory, and a link to a FIFO elsewhere: opening any of them for reading the
    // ordinary way waits for a writer that never comes.
    let fifo = spool.join("00000000000000000001-fifo\nforged line.ev");
    mkfifo(&fifo);
    let subdir = spool.join("00000000000000000002-dir.ev");
    std::fs::create_dir(&subdir).unwrap();
    let elsewhere = dir.path().join("elsewhere.fifo");
    mkfifo(&elsewhere);
    let link = spool.join("00000000000000000003-link.ev");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    // And one real spooled event, which stays.
    let id = spool_file(&spool, 4, tocsin::event::Level::Critical);

    let mut agent = Agent::start(&cfg, dir.path());
    let log = wait_log(&agent, "moved aside", 3);
    let row = status_row(&cfg);
    assert_eq!(
        row[2], "1",
        "SPOOLED counts the one real event only: {row:?}\n{log}"
    );
    for p in [&fifo, &subdir, &link] {
        let bad = p.with_extension("bad");
        assert!(
            std::fs::symlink_metadata(&bad).is_ok() && std::fs::symlink_metadata(p).is_err(),
            "{} moved aside as {}: {log}",
            p.display(),
            bad.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(&elsewhere)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the link's target is left alone"
    );
    assert_eq!(
        log.matches("moved aside").count(),
        3,
        "one line each: {log}"
    );
    assert!(
        log.contains("fifo\\nforged line.ev") && !log.lines().any(|l| l.starts_with("forged")),
        "the newline in the name is escaped: {log}"
    );
    assert!(
        spool.join(format!("00000000000000000004-{id}.ev")).exists(),
        "the real event waits: {log}"
    );
    assert!(agent.stop(), "SIGTERM ends the agent: {}", agent.log());
}

#[test]
fn a_foreign_last_known_good_copy_is_refused_never_waited_on() {
    let dir = TempDir::new("lkg-foreign");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = config(dir.path(), &root, &state, &rcv.url("/l"), "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let pointer = state.join("lkg.current");
    let lkg = state.join("lkg.1/config.toml");

    // A valid config and a FIFO where the pointer to its copy goes: the agent starts and
    // keeps a copy.
    mkfifo(&pointer);
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    assert!(agent.stop());
    assert!(
        std::fs::symlink_metadata(&pointer).unwrap().is_file()
            && std::fs::symlink_metadata(&lkg).unwrap().is_file(),
        "a regular pointer replaced the FIFO: {}",
        agent.log()
    );
    assert_eq!(std::fs::read_to_string(&lkg).unwrap(), good);

    // An invalid config: the fallback reads no FIFO and follows no link, in the copy of
    // the main file or among its included copies. Each run ends at once (exit 1: no config to run).
    let broken = good.replace("critical = \"> 95\"", "critical = \"=> 95\"");
    std::fs::write(&cfg, &broken).unwrap();
    let copy = dir.path().join("copy.toml");
    std::fs::write(&copy, &good).unwrap();
    let included = good.replace(
        "control_socket",
        "include = \"/nonexistent/*.toml\"\ncontrol_socket",
    );
    let cases: [(&str, &dyn Fn()); 3] = [
        ("a FIFO", &|| mkfifo(&lkg)),
        ("a symbolic link", &|| {
            std::os::unix::fs::symlink(&copy, &lkg).unwrap();
        }),
        ("a FIFO", &|| {
            std::fs::write(&lkg, &included).unwrap();
            mkfifo(&state.join("lkg.1/000-extra.toml"));
        }),
    ];
    for (i, (what, make)) in cases.iter().enumerate() {
        let _ = std::fs::remove_file(&lkg);
        let _ = std::fs::remove_file(state.join("lkg.1/000-extra.toml"));
        make();
        let (status, _, err) = run_bounded(
            Command::new(bin()).args(["run", "-c"]).arg(&cfg),
            Duration::from_secs(10),
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "case {i}: the run ends, without a config to run: {err}"
        );
        assert!(
            err.contains(&format!("not a regular file ({what})")),
            "case {i}: says why the copy is not used: {err}"
        );
    }
}

/// Whether this test may mount a tmpfs in a private mount namespace (root, `unshare -m`).
fn can_mount_tmpfs(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg("mount -t tmpfs -o size=64k tocsin-probe \"$0\"")
        .arg(&probe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An agent whose `state` is a full 64 KiB tmpfs, in a mount namespace of its own: filled
/// with the contents of `prep`, then with zeros up to the last page. The test sees the
/// agent's tmpfs through `/proc/PID/root`.
fn agent_on_full_tmpfs(dir: &Path, cfg: &Path, state: &Path, prep: &Path) -> Agent {
    std::fs::create_dir_all(state).unwrap();
    let script = "mount -t tmpfs -o size=64k,mode=0700 tocsin-test \"$1\" && cp -a \"$2\"/. \"$1\"/ \
         && { dd if=/dev/zero of=\"$1\"/fill bs=4096 2>/dev/null; true; } && exec \"$0\" run -c \"$3\"";
    let stderr = dir.join("agent.stderr");
    let child = Command::new("unshare")
        .args(["-m", "sh", "-c", script, bin()])
        .args([state, prep, cfg])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Agent { child, stderr }
}

/// The entries of `dir` as the agent `pid` sees it.
fn names_in(pid: u32, dir: &Path) -> Vec<String> {
    let seen = PathBuf::from(format!("/proc/{pid}/root")).join(dir.strip_prefix("/").unwrap());
    let mut v: Vec<String> = std::fs::read_dir(&seen)
        .unwrap_or_else(|e| panic!("{}: {e}", seen.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_state_dir_makes_room_by_the_drop_order_and_leaves_no_temp_files() {
    let dir = TempDir::new("full");
    if !can_mount_tmpfs(dir.path()) {
        return skip("mounting a tmpfs needs root and `unshare -m` (CAP_SYS_ADMIN)");
    }
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let closed = ClosedPort::new();
    let state = dir.path().join("state");
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    let cfg = config(dir.path(), &root, &state, &url, "");
    // What the disk held before: older INFO and WARN events, and the empty temporary file
    // of a write that a crash (or the full disk) interrupted.
    let prep = dir.path().join("prep");
    let spool = prep.join("spool/rcv");
    std::fs::create_dir_all(&spool).unwrap();
    use tocsin::event::Level;
    let warn = spool_file(&spool, 1000, Level::Warn);
    let oldest_info = spool_file(&spool, 2000, Level::Info);
    let info = spool_file(&spool, 3000, Level::Info);
    std::fs::write(spool.join(".00000000000000004000-x.ev.tmp"), b"").unwrap();

    let mut agent = agent_on_full_tmpfs(dir.path(), &cfg, &state, &prep);
    let pid = agent.child.id();
    let log = wait_log(&agent, "spooled (", 1);
    let names = names_in(pid, &state.join("spool/rcv"));
    let row = status_row(&cfg);
    let log = format!("{log}{}", agent.log());
    assert!(agent.stop());
    assert!(
        log.contains(&format!("dropped alarm {oldest_info} (INFO)")),
        "the oldest INFO made room, announced: {log}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(&format!("{warn}.ev")))
            && names.iter().any(|n| n.ends_with(&format!("{info}.ev")))
            && !names.iter().any(|n| n.contains(&oldest_info)),
        "the WARN and the newer INFO stay: {names:?}\n{log}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".ev")).count(),
        3,
        "the new CRITICAL is kept: {names:?}\n{log}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with('.')),
        "no temporary file, old or new: {names:?}"
    );
    assert_eq!(row[6], "1", "DROPPED counts the eviction: {row:?}\n{log}");
}

#[test]
fn a_loss_on_a_full_state_dir_is_counted_and_leaves_nothing_behind() {
    let dir = TempDir::new("full-lost");
    if !can_mount_tmpfs(dir.path()) {
        return skip("mounting a tmpfs needs root and `unshare -m` (CAP_SYS_ADMIN)");
    }
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let closed = ClosedPort::new();
    let state = dir.path().join("state");
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    // A repeat every 300 ms: one event after another that the full disk cannot take.
    let cfg = config(dir.path(), &root, &state, &url, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "critical = \"> 95\"",
        "critical = \"> 95\"\nrepeat = \"300ms\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let prep = dir.path().join("prep");
    std::fs::create_dir_all(prep.join("spool/rcv")).unwrap();

    let mut agent = agent_on_full_tmpfs(dir.path(), &cfg, &state, &prep);
    let pid = agent.child.id();
    wait_log(&agent, "it is lost", 3);
    let spool_names = names_in(pid, &state.join("spool/rcv"));
    let state_names = names_in(pid, &state);
    let row = status_row(&cfg);
    assert!(agent.stop());
    let log = agent.log();
    let lost = log.matches("it is lost").count();
    assert!(lost >= 3, "{log}");
    let dropped: usize = row[6].parse().unwrap();
    assert!(
        dropped >= 3 && dropped <= lost,
        "DROPPED counts every event lost: {row:?}\n{log}"
    );
    assert!(
        spool_names.is_empty(),
        "no temporary file per failed write: {spool_names:?}"
    );
    assert_eq!(
        state_names,
        ["fill", "spool"],
        "nor of the last-known-good copy that did not fit"
    );
}

/// Starts `tocsin run -c cfg` under umask 022, as a shell or an init script would.
fn agent_with_umask_022(dir: &Path, cfg: &Path) -> Agent {
    let stderr = dir.join("agent.stderr");
    let child = Command::new("sh")
        .args(["-c", "umask 022; exec \"$0\" run -c \"$1\"", bin()])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Agent { child, stderr }
}

#[test]
fn what_tocsin_writes_under_state_dir_is_owner_only_whatever_the_umask() {
    let dir = TempDir::new("modes");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let closed = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/a", closed.port());
    // A config with a secret in it, owner-only, with an included file.
    let token = "auth = { type = \"bearer\", token = \"s3cret-token\" }";
    let with_token = |cfg: &Path| {
        let text = std::fs::read_to_string(cfg)
            .unwrap()
            .replace("timeout = \"1s\"", &format!("timeout = \"1s\"\n{token}"));
        std::fs::write(cfg, text).unwrap();
        std::fs::set_permissions(cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    };

    // state_dir a symbolic link (as systemd's DynamicUser makes it) to a 0755 directory
    // holding a 0755 spool/ from an older version.
    let a = dir.path().join("a");
    std::fs::create_dir_all(a.join("conf.d")).unwrap();
    std::fs::write(
        a.join("conf.d/10-extra.toml"),
        "[[rule]]\nname = \"load\"\nmetric = \"load.1\"\nwarn = \"> 1000\"\n",
    )
    .unwrap();
    let real = a.join("real");
    std::fs::create_dir_all(real.join("spool")).unwrap();
    for d in [&real, &real.join("spool")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink(&real, a.join("state")).unwrap();
    let cfg_a = config(
        &a,
        &root,
        &a.join("state"),
        &url,
        "include = \"conf.d/*.toml\"",
    );
    with_token(&cfg_a);
    // A state_dir that does not exist yet, nor its parent.
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    let fresh = b.join("var/state");
    let cfg_b = config(&b, &root, &fresh, &url, "");
    with_token(&cfg_b);

    let agent_a = agent_with_umask_022(&a, &cfg_a);
    let agent_b = agent_with_umask_022(&b, &cfg_b);
    for agent in [&agent_a, &agent_b] {
        let log = wait_log(agent, "spooled (", 1);
        assert!(log.contains("spooled ("), "{log}");
    }
    drop((agent_a, agent_b));

    let lkg = std::fs::read_to_string(real.join("lkg.1/config.toml")).unwrap();
    assert!(lkg.contains("s3cret-token"), "the copy holds the secret");
    let mut checked = Vec::new();
    for (path, want) in [
        (real.join("lkg.current"), 0o600),
        (real.join("lkg.1"), 0o700),
        (real.join("lkg.1/config.toml"), 0o600),
        (real.join("lkg.1/000-10-extra.toml"), 0o600),
        (real.join("spool"), 0o700),
        (real.join("spool/rcv"), 0o700),
        (fresh.clone(), 0o700),
        (fresh.join("lkg.current"), 0o600),
        (fresh.join("lkg.1/config.toml"), 0o600),
        (fresh.join("spool"), 0o700),
        (fresh.join("spool/rcv"), 0o700),
    ] {
        checked.push((path.display().to_string(), mode(&path), want));
    }
    for spool in [real.join("spool/rcv"), fresh.join("spool/rcv")] {
        for e in std::fs::read_dir(&spool).unwrap() {
            let p = e.unwrap().path();
            checked.push((p.display().to_string(), mode(&p), 0o600));
        }
    }
    let wrong: Vec<String> = checked
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(p, got, want)| format!("{p}: {got:o}, want {want:o}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        mode(&real),
        0o755,
        "a state_dir that is a link is not changed"
    );
}
