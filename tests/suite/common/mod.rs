//! Test harness: a real HTTP/1.1 receiver on 127.0.0.1 (plain or TLS) that records every
//! request and answers from a script; fixture roots; running the real binary.

#[allow(
    dead_code,
    reason = "shared with cross/bench/fleet.rs (through #[path]); neither uses all of it"
)]
pub mod am;
pub mod skip;

pub use skip::skip;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which TCP connection (0, 1, …) it came on.
    pub connection: usize,
    /// When it was read whole.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the receiver does with the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status (and optional extra header lines).
    Status(u16, &'static str),
    /// Read the request, never answer (until the receiver stops).
    Silence,
    /// Read the request and close the connection without answering: what a client sees
    /// when a kept-alive connection died while idle (server timeout, NAT).
    Drop,
    /// Send the status line and headers one byte every `ms` milliseconds.
    SlowHeaders(u64),
    /// Send the headers at once, then the body one byte every `ms` milliseconds.
    SlowBody(u64),
    /// Send half a status line, then reset the connection (RST, via SO_LINGER 0).
    Reset,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    stop: AtomicBool,
    connections: AtomicUsize,
    peers: Mutex<Vec<std::net::SocketAddr>>,
}

/// A receiver. It stops when dropped, and by itself after `LIFETIME`.
pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
}

/// The longest a receiver lives: tests never leave servers behind.
const LIFETIME: Duration = Duration::from_secs(120);

#[cfg(feature = "tls")]
pub struct TlsFiles {
    #[allow(
        dead_code,
        reason = "where ca.pem was written, for a test that adds files"
    )]
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub server: Arc<rustls::ServerConfig>,
}

/// A private CA and a server certificate for `127.0.0.1` and `localhost`, made with rcgen.
#[cfg(feature = "tls")]
pub fn make_tls(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tocsin test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    TlsFiles {
        dir: dir.to_path_buf(),
        ca_pem,
        server: Arc::new(server),
    }
}

impl Receiver {
    /// A plain HTTP receiver answering 200 unless scripted otherwise.
    pub fn start() -> Receiver {
        Self::start_inner(None)
    }

    /// A TLS receiver.
    #[cfg(feature = "tls")]
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Receiver {
        Self::start_inner(Some(config))
    }

    #[cfg(feature = "tls")]
    fn start_inner(tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        Self::spawn(move |stream, shared, conn| match &tls {
            Some(cfg) => {
                let conn_tls = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let s = rustls::StreamOwned::new(conn_tls, stream);
                serve(s, &shared, conn);
            }
            None => serve(stream, &shared, conn),
        })
    }

    #[cfg(not(feature = "tls"))]
    fn start_inner(_tls: Option<()>) -> Receiver {
        Self::spawn(move |stream, shared, conn| serve(stream, &shared, conn))
    }

    /// A plain receiver on a given port: an endpoint that comes back.
    pub fn start_on(port: u16) -> Receiver {
        Self::spawn_on(port, LIFETIME, move |stream, shared, conn| {
            serve(stream, &shared, conn)
        })
    }

    /// A plain receiver that lives up to `lifetime` instead of `LIFETIME` (a long test).
    pub fn start_for(lifetime: Duration) -> Receiver {
        Self::spawn_on(0, lifetime, move |stream, shared, conn| {
            serve(stream, &shared, conn)
        })
    }

    fn spawn(handle: impl Fn(TcpStream, Arc<Shared>, usize) + Send + Sync + 'static) -> Receiver {
        Self::spawn_on(0, LIFETIME, handle)
    }

    fn spawn_on(
        port: u16,
        lifetime: Duration,
        handle: impl Fn(TcpStream, Arc<Shared>, usize) + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            peers: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let handle = Arc::new(handle);
        thread::spawn(move || {
            let born = Instant::now();
            while !s.stop.load(Ordering::Relaxed) && born.elapsed() < lifetime {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        s.peers.lock().unwrap().push(peer);
                        let conn = s.connections.fetch_add(1, Ordering::SeqCst);
                        let (s2, h) = (s.clone(), handle.clone());
                        thread::spawn(move || h(stream, s2, conn));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver { port, shared }
    }

    /// Queues replies for the next requests (200 once the script is used up).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// How many scripted replies are still to be used.
    pub fn scripted(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The address connection `conn` came from.
    pub fn peer(&self, conn: usize) -> std::net::SocketAddr {
        self.shared.peers.lock().unwrap()[conn]
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the received requests, or panics after `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let t0 = Instant::now();
        loop {
            let r = self.received();
            if pred(&r) {
                return r;
            }
            assert!(
                t0.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; received: {r:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// A port on 127.0.0.1 that refuses connections and that nothing else can take while this
/// is held: a socket bound to it without listening (and without `SO_REUSEADDR`), so
/// neither a `bind(…:0)` nor an outgoing connection of another test in this process is
/// handed the port. A port learnt from a listener that was then closed is free for
/// anyone: a receiver another test starts at the same moment could get it.
pub struct ClosedPort {
    fd: std::os::fd::OwnedFd,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::FromRawFd as _;
        // SAFETY: plain socket calls on a descriptor owned here, with correctly sized
        // addresses; the descriptor is wrapped in an OwnedFd at once.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let p = (&mut addr as *mut libc::sockaddr_in).cast::<libc::sockaddr>();
            assert_eq!(
                libc::bind(raw, p, len),
                0,
                "bind 127.0.0.1:0: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::getsockname(raw, p, &mut len), 0);
            ClosedPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Releases the port and starts a receiver on it at once: an endpoint that comes back.
    pub fn reopen(self) -> Receiver {
        let port = self.port;
        drop(self.fd);
        Receiver::start_on(port)
    }
}

/// A connection that can be reset (RST) instead of closed.
pub trait Abort {
    /// Makes the coming close a reset: SO_LINGER with a zero timeout.
    fn reset_on_close(&self);
}

impl Abort for TcpStream {
    fn reset_on_close(&self) {
        use std::os::fd::AsRawFd as _;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a correctly sized `linger`.
        unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(feature = "tls")]
impl Abort for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn reset_on_close(&self) {
        self.sock.reset_on_close();
    }
}

/// Serves requests on one connection until EOF, stop, or an error.
fn serve<S: Read + Write + Abort>(stream: S, shared: &Shared, conn: usize) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match read_line(&mut r, &mut line, shared) {
            Some(0) | None => return,
            Some(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match read_line(&mut r, &mut h, shared) {
                Some(0) | None => return,
                Some(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match r.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        shared.received.lock().unwrap().push(Received {
            method,
            target,
            headers,
            body,
            connection: conn,
            at: Instant::now(),
        });
        let reply = shared
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Status(200, ""));
        match reply {
            Reply::Status(code, extra) => {
                let resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\n{extra}\r\nok");
                if r.get_mut().write_all(resp.as_bytes()).is_err() || r.get_mut().flush().is_err() {
                    return;
                }
            }
            Reply::Drop => return,
            Reply::SlowHeaders(ms) | Reply::SlowBody(ms) => {
                let slow_head = matches!(reply, Reply::SlowHeaders(_));
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n";
                let body = b"01234567890123456789";
                let w = r.get_mut();
                let mut trickle = |bytes: &[u8], slow: bool| -> bool {
                    for b in bytes {
                        if shared.stop.load(Ordering::Relaxed)
                            || w.write_all(&[*b]).and_then(|_| w.flush()).is_err()
                        {
                            return false;
                        }
                        if slow {
                            thread::sleep(Duration::from_millis(ms));
                        }
                    }
                    true
                };
                if !trickle(head, slow_head) || !trickle(body, !slow_head) {
                    return;
                }
            }
            Reply::Reset => {
                let _ = r.get_mut().write_all(b"HTTP/1.1 2");
                let _ = r.get_mut().flush();
                r.get_ref().reset_on_close();
                return;
            }
            Reply::Silence => {
                while !shared.stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        }
    }
}

/// Reads a line, riding out read timeouts until data, EOF or stop.
fn read_line<R: BufRead>(r: &mut R, line: &mut String, shared: &Shared) -> Option<usize> {
    loop {
        match r.read_line(line) {
            Ok(n) => return Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if shared.stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tocsin-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `contents` to `root/rel` atomically (temp + rename), as a kernel file changes
/// between two reads.
pub fn put(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// A /proc/meminfo with `used_percent` of 1 GiB used.
pub fn meminfo(used_percent: u64) -> String {
    let total = 1_048_576u64;
    let avail = total * (100 - used_percent) / 100;
    format!(
        "MemTotal:       {total} kB\nMemFree:          {avail} kB\nMemAvailable:   {avail} kB\nBuffers:           1024 kB\nCached:           20480 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
    )
}

/// The built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tocsin")
}

/// libfaketime, which tests/run.sh installs (Debian's `faketime`).
pub const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A wall clock an agent started with [`Agent::start_with_clock`] reads from a file, so a
/// test can set it while the agent runs (a router's NTP sync coming late).
pub struct FakeClock(pub PathBuf);

impl FakeClock {
    /// A clock at `at` (`YYYY-MM-DD HH:MM:SS`) in `dir`; `None` when libfaketime is
    /// missing, after [`skip`]ping the calling test (which fails it under `CI=true`).
    pub fn new(dir: &Path, at: &str) -> Option<FakeClock> {
        if !Path::new(FAKETIME).exists() {
            skip(&format!(
                "{FAKETIME} is missing; tests/run.sh installs Debian's faketime"
            ));
            return None;
        }
        let path = dir.join("clock");
        std::fs::write(&path, format!("{at}\n")).unwrap();
        Some(FakeClock(path))
    }

    /// Sets the clock right (NTP did); returns the time set, `YYYY-MM-DD HH:MM:SS` UTC.
    pub fn set_now(&self) -> String {
        let out = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M:%S"])
            .output()
            .unwrap();
        let now = String::from_utf8(out.stdout).unwrap();
        std::fs::write(&self.0, &now).unwrap();
        now
    }
}

/// A running `tocsin run`; SIGTERMed (then killed) on drop. Its stderr goes to a file.
pub struct Agent {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Agent {
    pub fn start(config: &Path, dir: &Path) -> Agent {
        Agent::spawn(Command::new(bin()), config, dir)
    }

    /// An agent with `vars` added to its environment (the crash-point tests).
    #[cfg_attr(not(feature = "crash-points"), allow(dead_code))]
    pub fn start_env(config: &Path, dir: &Path, vars: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(bin());
        cmd.envs(vars.iter().copied());
        Agent::spawn(cmd, config, dir)
    }

    /// An agent whose wall clock is `clock`'s (the monotonic clock stays real).
    pub fn start_with_clock(config: &Path, dir: &Path, clock: &FakeClock) -> Agent {
        let mut cmd = Command::new(bin());
        cmd.env("LD_PRELOAD", FAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &clock.0)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        Agent::spawn(cmd, config, dir)
    }

    /// An agent with `args` after `run -c FILE` (`-q`, `-v`).
    pub fn start_args(config: &Path, dir: &Path, args: &[&str]) -> Agent {
        let mut cmd = Command::new(bin());
        cmd.args(["run", "-c"]).arg(config).args(args);
        Agent::spawn_ready(cmd, dir)
    }

    fn spawn(mut cmd: Command, config: &Path, dir: &Path) -> Agent {
        cmd.args(["run", "-c"]).arg(config);
        Agent::spawn_ready(cmd, dir)
    }

    fn spawn_ready(mut cmd: Command, dir: &Path) -> Agent {
        let stderr = dir.join("agent.stderr");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Agent { child, stderr }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and wait (bounded); returns whether it exited by itself in time.
    pub fn stop(&mut self) -> bool {
        unsafe_kill(self.child.id(), 15);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Sends `sig` to `pid` through the `kill` command (no libc in tests).
pub fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Standard base64 (padded), written here so tests do not lean on the code under test.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(A[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

/// Percent-decoding with `+` as a space (application/x-www-form-urlencoded), written here
/// so tests do not trust the encoder's own idea of it.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("two hex digits"));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// `name=value&…` decoded into pairs.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=value");
            (form_decode(k), form_decode(v))
        })
        .collect()
}
