//! Real Prometheus Alertmanager processes for tests and benches (Debian's
//! `prometheus-alertmanager`, installed by tests/run.sh): a cluster of `n` peers on
//! loopback, each with its own storage, and a tiny std-only HTTP/1.1 client for its API.
//!
//! Self-contained (std and serde_json, and skip.rs beside it as `super::skip`) so that
//! cross/bench/fleet.rs can include it with `#[path]` as well as `mod common` does.
//!
//! Processes never outlive their owner: every one is SIGKILLed when the [`Cluster`] is
//! dropped, when the thread that started it dies (`PR_SET_PDEATHSIG`), and by a watchdog
//! once the cluster's lifetime (default [`LIFETIME`]) has passed.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian installs it.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";
/// How long a peer may take to answer `GET /-/ready`.
pub const READY: Duration = Duration::from_secs(20);
/// Longest a cluster's processes live unless [`Cluster::start_for`] says otherwise.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// Socket timeouts of the HTTP client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Every peer's config: one route to a receiver that notifies nobody, and the inhibit rule
/// of README "Fleet" (a device's heartbeat mutes its "silent" alert).
pub const CONFIG: &str = r#"route:
  receiver: "null"
  group_by: [alertname, device_id]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: "null"
inhibit_rules:
  - source_matchers: [alertname="TocsinHeartbeat"]
    target_matchers: [alertname="TocsinDeviceSilent"]
    equal: [device_id]
"#;

/// The Alertmanager binary: `$TOCSIN_ALERTMANAGER` if set (a path; one that does not
/// exist shows the skip), else `prometheus-alertmanager` on `PATH`, else [`BINARY`].
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOCSIN_ALERTMANAGER") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("prometheus-alertmanager"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| Path::new(BINARY).is_file().then(|| PathBuf::from(BINARY)))
}

/// The binary, or `None` after skipping the calling test through [`skip`](super::skip::skip)
/// (which fails it under `CI=true`): `let Some(_) = am::require() else { return };`
pub fn require() -> Option<PathBuf> {
    let b = binary();
    if b.is_none() {
        super::skip::skip(
            "prometheus-alertmanager is not installed; bash tests/run.sh installs Debian's \
             prometheus-alertmanager (or point $TOCSIN_ALERTMANAGER at one)",
        );
    }
    b
}

/// `t` as RFC 3339 UTC with milliseconds, as Alertmanager's `startsAt`/`endsAt`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).expect("after 1970");
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_millis()
    )
}

/// Now plus `ms` milliseconds (negative: in the past), as [`rfc3339`].
pub fn at(ms: i64) -> String {
    let now = SystemTime::now();
    let d = Duration::from_millis(ms.unsigned_abs());
    rfc3339(if ms < 0 { now - d } else { now + d })
}

/// Milliseconds since 1970 of an RFC 3339 time as Alertmanager writes it
/// (`2026-01-02T03:04:05.678Z`, or with an offset `+01:00`; fraction optional).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        ms = format!("{f:0<3}")[..3].parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?) * 60
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1000 + ms)
}

/// Milliseconds since 1970, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago (all bound at once, so no
/// two are the same).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`, JSON body if any):
/// status and body, de-chunked.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: application/json\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad HTTP response: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut rest = &raw[split + 4..];
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, String::from_utf8_lossy(rest).into_owned()));
    }
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some((status, String::from_utf8_lossy(&body).into_owned()));
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// One Alertmanager of a [`Cluster`].
struct Peer {
    web: u16,
    gossip: u16,
    storage: PathBuf,
    log: PathBuf,
}

/// The processes, shared with the watchdog.
struct Procs {
    children: Vec<Option<Child>>,
    dropped: bool,
}

struct Shared {
    procs: Mutex<Procs>,
    cv: Condvar,
}

impl Shared {
    fn kill(&self, i: usize) {
        let mut p = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = p.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn kill_all(&self) {
        let n = self
            .procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .children
            .len();
        for i in 0..n {
            self.kill(i);
        }
    }
}

/// `n` Alertmanagers clustered over loopback, each on its own web and cluster port with
/// its own `--storage.path` under a temp dir (removed on drop) and the [`CONFIG`].
pub struct Cluster {
    binary: PathBuf,
    dir: PathBuf,
    peers: Vec<Peer>,
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts `n` peers and waits (bounded) until each answers `GET /-/ready`; panics,
    /// with their logs, if they do not. Needs the binary: check [`require`] first.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_for(n, LIFETIME)
    }

    /// As [`Cluster::start`], with the processes killed after `lifetime` at the latest.
    pub fn start_for(n: usize, lifetime: Duration) -> Cluster {
        assert!(n > 0);
        let binary = binary().expect("prometheus-alertmanager is installed");
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tocsin-am-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("am.yml"), CONFIG).expect("write am.yml");
        let shared = Arc::new(Shared {
            procs: Mutex::new(Procs {
                children: (0..n).map(|_| None).collect(),
                dropped: false,
            }),
            cv: Condvar::new(),
        });
        let watchdog = {
            let shared = shared.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + lifetime;
                let mut p = shared.procs.lock().unwrap_or_else(|e| e.into_inner());
                while !p.dropped && Instant::now() < deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    p = shared
                        .cv
                        .wait_timeout(p, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if !p.dropped {
                    eprintln!("am: cluster outlived its {lifetime:?}: killing its Alertmanagers");
                    for c in p.children.iter_mut().filter_map(Option::take) {
                        let mut c = c;
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                }
            })
        };
        let mut c = Cluster {
            binary,
            dir,
            peers: Vec::new(),
            shared,
            watchdog: Some(watchdog),
        };
        // A port found free can be taken before Alertmanager binds it: then try new ones.
        for attempt in 1..=3 {
            let ports = free_ports(2 * n);
            c.peers = (0..n)
                .map(|i| Peer {
                    web: ports[2 * i],
                    gossip: ports[2 * i + 1],
                    storage: c.dir.join(format!("am{i}")),
                    log: c.dir.join(format!("am{i}.log")),
                })
                .collect();
            for i in 0..n {
                c.spawn(i);
            }
            match (0..n).try_for_each(|i| c.try_ready(i)) {
                Ok(()) => return c,
                Err(e) if attempt < 3 && e.exited => {
                    eprintln!(
                        "am: a peer exited at start (port taken?), retrying:\n{}",
                        e.msg
                    );
                    c.shared.kill_all();
                }
                Err(e) => panic!("{}", e.msg),
            }
        }
        unreachable!()
    }

    fn spawn(&mut self, i: usize) {
        let others: Vec<String> = (0..self.peers.len())
            .filter(|&j| j != i)
            .map(|j| format!("--cluster.peer=127.0.0.1:{}", self.peers[j].gossip))
            .collect();
        let p = &self.peers[i];
        std::fs::create_dir_all(&p.storage).expect("storage dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .expect("log file");
        let mut cmd = Command::new(&self.binary);
        cmd.arg(format!(
            "--config.file={}",
            self.dir.join("am.yml").display()
        ))
        .arg(format!("--storage.path={}", p.storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", p.web))
        .arg(format!("--cluster.listen-address=127.0.0.1:{}", p.gossip))
        .arg(format!(
            "--cluster.advertise-address=127.0.0.1:{}",
            p.gossip
        ))
        .args(others)
        .arg("--cluster.settle-timeout=2s")
        .arg("--cluster.gossip-interval=100ms")
        .arg("--cluster.pushpull-interval=1s")
        .arg("--cluster.probe-interval=200ms")
        .arg("--cluster.reconnect-interval=1s")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours. The kernel
        // SIGKILLs the child when the thread that spawned it exits, so a test that dies
        // (or a killed test binary) takes its Alertmanagers with it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start prometheus-alertmanager");
        let mut procs = self.shared.procs.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!procs.dropped);
        procs.children[i] = Some(child);
    }

    fn try_ready(&self, i: usize) -> Result<(), NotReady> {
        let t0 = Instant::now();
        while t0.elapsed() < READY {
            if matches!(
                request(self.peers[i].web, "GET", "/-/ready", None),
                Ok((200, _))
            ) {
                return Ok(());
            }
            if !self.running(i) {
                return Err(NotReady {
                    exited: true,
                    msg: format!(
                        "alertmanager {i} exited before it was ready:\n{}",
                        self.log(i)
                    ),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(NotReady {
            exited: false,
            msg: format!("alertmanager {i} not ready in {READY:?}:\n{}", self.log(i)),
        })
    }

    /// Whether peer `i`'s process is alive.
    pub fn running(&self, i: usize) -> bool {
        let mut p = self.shared.procs.lock().unwrap_or_else(|e| e.into_inner());
        p.children[i]
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How many peers.
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// Peer `i`'s base URL, `http://127.0.0.1:PORT` (tocsin appends `/api/v2/alerts`).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.peers[i].web)
    }

    /// Peer `i`'s web port.
    pub fn port(&self, i: usize) -> u16 {
        self.peers[i].web
    }

    /// Peer `i`'s stderr so far (`--log.level=warn`).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.peers[i].log).unwrap_or_default()
    }

    /// `GET path` on peer `i`: status and body.
    pub fn get(&self, i: usize, path: &str) -> io::Result<(u16, String)> {
        request(self.peers[i].web, "GET", path, None)
    }

    /// `POST /api/v2/alerts` on peer `i` with `body` (a JSON array): status and body.
    pub fn post_alerts(&self, i: usize, body: &str) -> io::Result<(u16, String)> {
        request(self.peers[i].web, "POST", "/api/v2/alerts", Some(body))
    }

    /// `GET /api/v2/alerts` on peer `i` (its default filter: every alert that has not
    /// ended, whatever its state). Panics, with the peer's log, if it does not answer 200.
    pub fn alerts(&self, i: usize) -> Vec<Value> {
        match self.try_alerts(i) {
            Ok(a) => a,
            Err(e) => panic!("alertmanager {i}: GET /api/v2/alerts: {e}\n{}", self.log(i)),
        }
    }

    /// As [`Cluster::alerts`], without panicking.
    pub fn try_alerts(&self, i: usize) -> Result<Vec<Value>, String> {
        let (status, body) = self.get(i, "/api/v2/alerts").map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("status {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// Peer `i`'s alert whose `alertname` is `name` (the first, if several).
    pub fn alert(&self, i: usize, name: &str) -> Option<Value> {
        self.alerts(i)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == name)
    }

    /// How many members peer `i` sees in its cluster (`GET /api/v2/status`).
    pub fn members(&self, i: usize) -> usize {
        self.get(i, "/api/v2/status")
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["cluster"]["peers"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// Polls peer `i`'s alerts every 100 ms until `pred` holds (the alerts) or `timeout`
    /// passes (the last alerts seen, as the error).
    pub fn poll(
        &self,
        i: usize,
        timeout: Duration,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>, Vec<Value>> {
        let t0 = Instant::now();
        loop {
            let alerts = self.try_alerts(i).unwrap_or_default();
            if pred(&alerts) {
                return Ok(alerts);
            }
            if t0.elapsed() >= timeout {
                return Err(alerts);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// As [`Cluster::poll`], panicking on timeout with the alerts and the peer's log.
    pub fn wait_until(
        &self,
        i: usize,
        timeout: Duration,
        pred: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.poll(i, timeout, pred).unwrap_or_else(|alerts| {
            panic!(
                "alertmanager {i}: condition not met within {timeout:?}\nalerts: {alerts:#?}\n\
                 alertmanager {i} log:\n{}",
                self.log(i)
            )
        })
    }

    /// SIGKILLs peer `i` (no-op if it is not running).
    pub fn kill(&mut self, i: usize) {
        self.shared.kill(i);
    }

    /// Kills peer `i` if it runs and starts it again on the same ports with the same
    /// storage; waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        if let Err(e) = self.try_ready(i) {
            panic!("{}", e.msg);
        }
    }

    /// As [`Cluster::restart`], with peer `i`'s storage wiped first.
    pub fn restart_empty(&mut self, i: usize) {
        self.kill(i);
        let _ = std::fs::remove_dir_all(&self.peers[i].storage);
        self.restart(i);
    }
}

struct NotReady {
    exited: bool,
    msg: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shared.kill_all();
        self.shared
            .procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped = true;
        self.shared.cv.notify_all();
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
