//! A probe that hangs does not hold up the agent: the real binary, with an `exec.value`
//! command, a `tcp.up` connect or a statvfs (a real FUSE mount whose daemon never answers)
//! stuck for many intervals, still delivers a memory alarm within a couple of ticks and
//! answers `tocsin status` at once.
//!
//! Run with `cargo test --test probe_hang -- --nocapture` to see the measured latencies.
//! A test whose precondition this machine lacks (FUSE, an accept queue that drops SYNs)
//! prints a SKIPPED banner, or fails under `CI=true`.

use crate::common::*;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the probes hang: their `timeout` (the statvfs forever).
const HANG: Duration = Duration::from_secs(20);
/// The bounds the tests hold the agent to.
const ALARM_WITHIN: Duration = Duration::from_secs(3);
const STATUS_WITHIN: Duration = Duration::from_secs(1);

/// This machine cannot run a test: a failure under CI, a loud skip elsewhere.
fn cannot_run(test: &str, why: &str) {
    crate::common::skip(&format!("{test}: {why}"));
}

/// A fixture root with /proc/meminfo at 50 % and the config of one agent: a memory rule
/// notifying `rcv`, plus `extra` rules; interval 1 s; its own control socket.
struct Setup {
    dir: TempDir,
    root: PathBuf,
    config: PathBuf,
}

fn setup(tag: &str, url: &str, extra: &str) -> Setup {
    let dir = TempDir::new(tag);
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(50));
    let config = dir.path().join("tocsin.toml");
    let text = format!(
        r#"[agent]
device_id = "gw-hang"
hostname = "h"
interval = "1s"
root = "{root}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 90"
notify = ["rcv"]

{extra}

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm"]
retry_interval = "100ms"
"#,
        root = root.display(),
        dir = dir.path().display(),
    );
    std::fs::write(&config, text).unwrap();
    Setup { dir, root, config }
}

/// `tocsin status` against the running agent: its output and how long it took.
fn status(config: &Path) -> (String, Duration) {
    let t0 = Instant::now();
    let out = Command::new(bin())
        .args(["status", "-c"])
        .arg(config)
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// Waits (bounded) until the agent answers on its control socket.
fn wait_until_up(config: &Path, agent: &mut Agent) {
    let t0 = Instant::now();
    loop {
        let out = Command::new(bin())
            .args(["status", "-c"])
            .arg(config)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "the agent exited: {}",
            agent.log()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the agent did not answer within 10 s: {}",
            agent.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `cond` every 20 ms until it holds, or panics after `limit`.
fn wait(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The measurements while the probe hangs: `tocsin status` three times, then memory
/// crossing the threshold and the alarm reaching the receiver. Returns (slowest status,
/// alarm latency) after asserting both bounds.
fn measure(test: &str, s: &Setup, rcv: &Receiver) -> (Duration, Duration) {
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let (text, took) = status(&s.config);
        assert!(text.lines().any(|l| l.starts_with("mem-high")), "{text}");
        slowest = slowest.max(took);
        thread::sleep(Duration::from_millis(300));
    }
    assert!(rcv.received().is_empty(), "memory is fine so far");
    put(&s.root, "proc/meminfo", &meminfo(97));
    let t0 = Instant::now();
    let r = rcv.wait_for(Duration::from_secs(15), "the memory alarm", |r| {
        !r.is_empty()
    });
    let alarm = t0.elapsed();
    let j = r[0].json();
    assert_eq!(j["alertName"], "mem-high");
    assert_eq!(j["alertState"], "ALERT");
    eprintln!(
        "{test}: during the hang `tocsin status` took at most {} ms (3 calls); the memory alarm reached the receiver {} ms after the crossing (interval 1000 ms)",
        slowest.as_millis(),
        alarm.as_millis()
    );
    assert!(
        slowest < STATUS_WITHIN,
        "{test}: status took {slowest:?} during the hang"
    );
    assert!(
        alarm < ALARM_WITHIN,
        "{test}: the alarm took {alarm:?} after the crossing"
    );
    (slowest, alarm)
}

#[test]
fn a_hanging_exec_value_command_does_not_delay_a_memory_alarm() {
    let rcv = Receiver::start();
    // Each run outlives its 20 s timeout and is killed then; a new one starts right after.
    let dir = TempDir::new("hang-script");
    let runs = dir.path().join("runs");
    let script = dir.path().join("hang.sh");
    std::fs::write(
        &script,
        format!("echo $$ >> {}\nexec /bin/sleep 25\n", runs.display()),
    )
    .unwrap();
    let rule = format!(
        r#"[[rule]]
name = "slow-cmd"
metric = "exec.value"
command = ["/bin/sh", "{}"]
timeout = "{}s"
critical = "> 100""#,
        script.display(),
        HANG.as_secs()
    );
    let s = setup("hang-exec", &rcv.url("/alarm"), &rule);
    let started = Instant::now();
    let mut agent = Agent::start(&s.config, s.dir.path());
    wait_until_up(&s.config, &mut agent);
    let pids = || -> Vec<u32> {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait(Duration::from_secs(5), "the command to start", || {
        !pids().is_empty()
    });
    let pid = pids()[0];
    // A few ticks into the hang.
    thread::sleep(Duration::from_millis(1500));
    measure("exec.value", &s, &rcv);
    assert!(
        started.elapsed() < HANG,
        "measured within the first run's hang"
    );
    assert_eq!(pids(), [pid], "one run of the command at a time");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the command still hangs"
    );
    assert!(agent.stop(), "SIGTERM stops the agent during the hang");
    // The stopping agent killed the command it was running.
    wait(Duration::from_secs(5), "the command to be gone", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// A loopback listener that never accepts, with a backlog of 0, whose accept queue is
/// filled first: the kernel then drops every further SYN, so a connect hangs until its
/// timeout. None when this kernel answers instead (tcp_abort_on_overflow).
struct FullListener {
    fd: i32,
    addr: SocketAddr,
    _queued: Vec<TcpStream>,
}

impl FullListener {
    fn new() -> Option<FullListener> {
        // SAFETY: plain socket calls on a socket this function owns; `sa` is a valid,
        // correctly sized sockaddr_in for bind and getsockname.
        let (fd, port) = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket");
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let p = (&mut sa as *mut libc::sockaddr_in).cast::<libc::sockaddr>();
            assert_eq!(libc::bind(fd, p, len), 0, "bind");
            assert_eq!(libc::listen(fd, 0), 0, "listen");
            assert_eq!(libc::getsockname(fd, p, &mut len), 0, "getsockname");
            (fd, u16::from_be(sa.sin_port))
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut queued = Vec::new();
        let full =
            (0..16).any(
                |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                    Ok(c) => {
                        queued.push(c);
                        false
                    }
                    Err(_) => true,
                },
            );
        let l = FullListener {
            fd,
            addr,
            _queued: queued,
        };
        // Once more, to be sure SYNs are dropped rather than refused.
        let t0 = Instant::now();
        let hangs = full && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err();
        (hangs && t0.elapsed() >= Duration::from_millis(400)).then_some(l)
    }
}

impl Drop for FullListener {
    fn drop(&mut self) {
        // SAFETY: closing the socket this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Whether a socket of this host is in SYN-SENT towards `addr` (IPv4, /proc/net/tcp).
fn syn_sent_to(addr: &SocketAddr) -> bool {
    let want = format!("0100007F:{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == want && f[3] == "02"
        })
}

#[test]
fn a_hanging_tcp_up_connect_does_not_delay_a_memory_alarm() {
    let Some(full) = FullListener::new() else {
        cannot_run(
            "tcp.up",
            "a loopback listener with a full accept queue does not drop SYNs here",
        );
        return;
    };
    let rcv = Receiver::start();
    let rule = format!(
        r#"[[rule]]
name = "dead-port"
metric = "tcp.up"
target = "{}"
timeout = "{}s"
critical = "< 1""#,
        full.addr,
        HANG.as_secs()
    );
    let s = setup("hang-tcp", &rcv.url("/alarm"), &rule);
    let started = Instant::now();
    let mut agent = Agent::start(&s.config, s.dir.path());
    wait_until_up(&s.config, &mut agent);
    wait(
        Duration::from_secs(5),
        "the connect to hang in SYN-SENT",
        || syn_sent_to(&full.addr),
    );
    thread::sleep(Duration::from_millis(1500));
    measure("tcp.up", &s, &rcv);
    assert!(
        started.elapsed() < HANG,
        "measured within the first connect's hang"
    );
    assert!(syn_sent_to(&full.addr), "the connect still hangs");
    let (text, _) = status(&s.config);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("dead-port") && l.contains("ALERT")),
        "no tcp.up sample yet, so no alarm for it: {text}"
    );
    assert!(agent.stop(), "SIGTERM stops the agent during the hang");
}

/// An agent started in a private mount namespace where `root/mnt/stall` is a FUSE mount
/// nobody serves: this test holds the /dev/fuse end and never reads it, so the kernel's
/// first request (INIT) is never answered and every statvfs there waits — a FUSE daemon
/// that stopped answering, or a dead network filesystem server. The mount exists only in
/// the agent's namespace and goes with it.
fn agent_over_stalled_fuse(s: &Setup, fuse: &std::fs::File) -> std::io::Result<Agent> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::process::CommandExt as _;
    let point = s.root.join("mnt/stall");
    std::fs::create_dir_all(&point).unwrap();
    let target = CString::new(point.as_os_str().as_bytes()).unwrap();
    // SAFETY: getuid and getgid only read this process's ids.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let opts = CString::new(format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid}",
        fuse.as_raw_fd()
    ))
    .unwrap();
    let stderr = s.dir.path().join("agent.stderr");
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-c"])
        .arg(&s.config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    // SAFETY: the closure runs in the forked child before exec and only makes system
    // calls on memory prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            let err = std::io::Error::last_os_error;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(err());
            }
            let none = std::ptr::null();
            let slash = c"/".as_ptr();
            if libc::mount(
                none,
                slash,
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ) != 0
            {
                return Err(err());
            }
            // The /dev/fuse descriptor is still open here (close-on-exec): the mount
            // takes it, the agent does not inherit it.
            let (src, kind) = (c"tocsin-stall".as_ptr(), c"fuse.tocsinstall".as_ptr());
            if libc::mount(src, target.as_ptr(), kind, 0, opts.as_ptr().cast()) != 0 {
                return Err(err());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(Agent { child, stderr })
}

#[test]
fn a_hanging_statvfs_of_a_fuse_mount_does_not_delay_a_memory_alarm() {
    let fuse = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(f) => f,
        Err(e) => {
            cannot_run("statvfs", &format!("/dev/fuse cannot be opened ({e})"));
            return;
        }
    };
    let rcv = Receiver::start();
    let rules = r#"[[rule]]
name = "disk-root"
metric = "disk.used_percent"
match = { mount = "/" }
critical = "> 100"

[[rule]]
name = "disk-stall"
metric = "disk.used_percent"
match = { mount = "/mnt/stall" }
critical = "> 90""#;
    let s = setup("hang-fuse", &rcv.url("/alarm"), rules);
    // What the agent's mounts file lists: its root (local, sampled on the tick) and the
    // FUSE mount (on a probe worker).
    put(
        &s.root,
        "proc/self/mounts",
        "/dev/vda / ext4 rw,relatime 0 0\ntocsin-stall /mnt/stall fuse.tocsinstall rw,relatime,user_id=0,group_id=0 0 0\n",
    );
    let mut agent = match agent_over_stalled_fuse(&s, &fuse) {
        Ok(a) => a,
        Err(e) => {
            cannot_run(
                "statvfs",
                &format!("no FUSE mount in a private mount namespace here ({e})"),
            );
            return;
        }
    };
    wait_until_up(&s.config, &mut agent);
    thread::sleep(Duration::from_millis(1500));
    measure("statvfs (FUSE)", &s, &rcv);
    let (text, _) = status(&s.config);
    assert!(
        text.lines()
            .any(|l| l.starts_with("disk-root") && l.contains('%')),
        "the local mount is still sampled: {text}"
    );
    assert!(
        !text.lines().any(|l| l.contains("/mnt/stall")),
        "no sample of the stalled mount: {text}"
    );
    let hang_line = |log: &str| {
        log.lines()
            .filter(|l| l.contains("statvfs of /mnt/stall"))
            .count()
    };
    wait(Duration::from_secs(10), "the hang to be logged", || {
        hang_line(&agent.log()) > 0
    });
    // Three more ticks: still one line, one call in flight.
    thread::sleep(Duration::from_secs(3));
    let log = agent.log();
    assert_eq!(hang_line(&log), 1, "one log line for the hang: {log}");
    eprintln!(
        "statvfs (FUSE): {}",
        log.lines()
            .find(|l| l.contains("statvfs of /mnt/stall"))
            .unwrap_or_default()
    );
    assert!(agent.stop(), "SIGTERM stops the agent during the hang");
}

#[test]
fn once_waits_for_its_probes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Slower than the 1 s between the two samples of `once`.
    let rules = format!(
        r#"[[rule]]
name = "slow-value"
metric = "exec.value"
command = ["/bin/sh", "-c", "sleep 1.5; echo 42"]
timeout = "5s"
critical = "> 100"

[[rule]]
name = "port"
metric = "tcp.up"
target = "{}"
critical = "< 1""#,
        listener.local_addr().unwrap()
    );
    let s = setup("once-probes", "http://127.0.0.1:9/", &rules);
    let t0 = Instant::now();
    let out = Command::new(bin())
        .args(["once", "--metrics", "-c"])
        .arg(&s.config)
        .output()
        .unwrap();
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // METRIC DIMENSION VALUE UNIT; these two have no unit, so the value is last.
    let line = |metric: &str| {
        text.lines()
            .find(|l| l.starts_with(metric))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_string)
    };
    assert_eq!(line("exec.value").as_deref(), Some("42"), "{text}");
    assert_eq!(line("tcp.up").as_deref(), Some("1"), "{text}");
    eprintln!("once with a 1.5 s exec.value: {} ms", took.as_millis());
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
