//! What tocsin keeps under `state_dir` against a hostile disk: foreign entries in the
//! spool and in place of the last-known-good copy (a FIFO, a directory, a symbolic link).

use crate::common::*;
use std::os::unix::fs::FileTypeExt as _;
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
    let lkg = state.join("last-good.toml");

    // A valid config and a FIFO where its copy goes: the agent starts and keeps a copy.
    mkfifo(&lkg);
    let mut agent = Agent::start(&cfg, dir.path());
    rcv.wait_for(WAIT, "the alarm", |r| !r.is_empty());
    assert!(agent.stop());
    assert!(
        std::fs::symlink_metadata(&lkg).unwrap().is_file(),
        "a regular copy replaced the FIFO: {}",
        agent.log()
    );
    assert_eq!(std::fs::read_to_string(&lkg).unwrap(), good);

    // An invalid config: the fallback reads no FIFO and follows no link, in last-good.toml
    // or among its included copies. Each run ends at once (exit 1: no config to run).
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
            std::fs::create_dir_all(state.join("last-good.d")).unwrap();
            mkfifo(&state.join("last-good.d/000-extra.toml"));
        }),
    ];
    for (i, (what, make)) in cases.iter().enumerate() {
        let _ = std::fs::remove_file(&lkg);
        let _ = std::fs::remove_dir_all(state.join("last-good.d"));
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
