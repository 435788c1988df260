//! The control socket: `tocsin status`, `replay`, `mute` and `unmute` talk to the running
//! agent over a Unix socket that only its owner may use (mode 0600), and whose peer must
//! be the agent's user or root (SO_PEERCRED, [`check_peer`]).
//!
//! One request per connection, one line (at most [`MAX_REQUEST`] bytes, read within
//! [`REQUEST_TIMEOUT`]): `status`, `replay EVENT_ID`, `mute FOR_MS TARGET` or
//! `unmute TARGET` (TARGET: `rule NAME`, `webhook NAME` or `all`). The answer is text; the agent closes
//! the connection after it.
//!
//! A few connections are served at once ([`Admission`]). When all places are taken, the
//! connection that has waited longest without sending its request gives its place to the
//! newcomer and is answered [`BUSY`]: clients that connect and say nothing cannot lock a
//! real client out, because a real client sends its request at once. A client retries a
//! busy answer ([`Outcome::Busy`]).

use crate::config::MAX_SOCKET_PATH_LEN;
use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Longest request line, in bytes.
pub const MAX_REQUEST: usize = 256;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The least time between two evictions ([`Admission::admit`]).
pub const EVICT_PAUSE: Duration = Duration::from_millis(2);
/// The answer to a peer that is neither the agent's user nor root.
pub const DENIED: &str =
    "error: permission denied: only the agent's user and root may use this control socket\n";
/// The answer to a connection that got no place (or gave its place up).
pub const BUSY: &str = "error: busy: too many control clients; try again\n";

/// Binds the control socket at `path`, owner-only. Only a stale socket (one nobody
/// answers on) is removed to make room; a live one means another agent runs, and anything
/// else there — a file, a directory, a symbolic link — is left untouched: both are errors.
///
/// # Errors
/// The path is too long for a Unix socket, something other than a stale socket is there,
/// another agent answers there, or the socket cannot be created.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt as _;
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the path is {len} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH_LEN}"),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another tocsin answers on this control socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it exists and is not a socket; left untouched",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Reads one request line from `stream` (bounded in size and time).
pub async fn read_request(stream: &mut UnixStream) -> Option<String> {
    let mut buf = [0u8; MAX_REQUEST];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    n += k;
                    if buf[..n].contains(&b'\n') {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()?;
    request_line(&buf[..n]).map(str::to_string)
}

/// The request in what a client sent: its first line, trimmed. `None` when that line is
/// not UTF-8; whatever follows the newline is not looked at.
pub(crate) fn request_line(bytes: &[u8]) -> Option<&str> {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    Some(std::str::from_utf8(first).ok()?.trim())
}

/// A control request, parsed from its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `status`.
    Status,
    /// `replay EVENT_ID`: the id, trimmed.
    Replay(&'a str),
    /// `mute …` or `unmute …`: the whole line.
    Mute(&'a str),
    /// Anything else, as it was sent.
    Unknown(&'a str),
}

impl<'a> Request<'a> {
    /// Parses a request line (as [`read_request`] returns it).
    pub fn parse(line: &'a str) -> Request<'a> {
        match line {
            "status" => Request::Status,
            r if r.starts_with("replay ") => Request::Replay(r[7..].trim()),
            r if r.starts_with("mute ") || r.starts_with("unmute ") => Request::Mute(r),
            other => Request::Unknown(other),
        }
    }
}

/// Writes the answer and closes.
pub async fn answer(mut stream: UnixStream, text: String) {
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Answers [`BUSY`] and closes (see [`turn_away`]).
pub async fn refuse(stream: UnixStream) {
    turn_away(stream, None).await;
}

/// Answers [`BUSY`] — or, for a peer [`check_peer`] refused (`denied`: the agent's uid),
/// `permission denied` — and closes. What the client sent is read first (for a denied
/// peer its whole request line, bounded in size and time): closing a Unix socket with unread data
/// resets the connection, and the client would see a reset instead of the answer. One
/// function for both, so the agent spawns one kind of task for them.
pub async fn turn_away(mut stream: UnixStream, denied: Option<u32>) {
    if denied.is_some() {
        let _ = read_request(&mut stream).await;
    }
    let mut sink = [0u8; MAX_REQUEST];
    while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
    let text = if denied.is_some() { DENIED } else { BUSY };
    answer(stream, text.to_string()).await;
}

/// The effective user id of the agent.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether the peer of `stream` may use the control socket: its uid (SO_PEERCRED, what
/// the kernel recorded at connect) is `me` or 0.
///
/// # Errors
/// Who the peer is (`uid N (pid P)`), for the log line of the refusal.
pub fn check_peer(stream: &UnixStream, me: u32) -> Result<(), String> {
    match stream.peer_cred() {
        Ok(c) if c.uid() == me || c.uid() == 0 => Ok(()),
        Ok(c) => Err(format!(
            "uid {} (pid {}): not uid {me} or root",
            c.uid(),
            c.pid().unwrap_or(0)
        )),
        Err(e) => Err(format!("a peer whose credentials cannot be read ({e})")),
    }
}

/// Places for control connections: at most `n` at once, from accept until answered.
///
/// [`Admission::admit`] gives a newcomer a place; when every place is taken, the holder
/// that has waited longest without sending its request is told to give its place up
/// (its [`Ticket::read_request`] returns `Err(Evicted)`). Only when every place is held
/// by a connection whose request is already being answered is the newcomer refused.
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    waiting: Waiting,
    next: u64,
}

/// The connections that hold a place and have not sent their request yet, oldest first:
/// each one's id and how to tell it to give its place up.
type Waiting = Arc<Mutex<VecDeque<(u64, oneshot::Sender<()>)>>>;

/// One connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Ticket {
    place: Option<OwnedSemaphorePermit>,
    id: u64,
    evicted: oneshot::Receiver<()>,
    waiting: Waiting,
}

/// The connection gave its place to a newer one before it sent a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Evicted;

impl Admission {
    /// `n` places.
    pub fn new(n: usize) -> Admission {
        Admission {
            places: Arc::new(Semaphore::new(n)),
            waiting: Arc::new(Mutex::new(VecDeque::with_capacity(n))),
            next: 0,
        }
    }

    /// A place for a new connection; None when every place is held by a connection that
    /// sent its request (answer it [`refuse`]). Waits (at most [`REQUEST_TIMEOUT`]) only
    /// for an evicted holder to let its place go.
    pub async fn admit(&mut self) -> Option<Ticket> {
        let place = match self.places.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let oldest = lock(&self.waiting).pop_front();
                let (_, evict) = oldest?;
                let _ = evict.send(());
                // Clients that reconnect as fast as they are turned away would otherwise
                // have the agent accepting at full speed: one eviction per pause at most.
                tokio::time::sleep(EVICT_PAUSE).await;
                let freed = self.places.clone().acquire_owned();
                tokio::time::timeout(REQUEST_TIMEOUT, freed)
                    .await
                    .ok()?
                    .ok()?
            }
        };
        self.next += 1;
        let (tx, evicted) = oneshot::channel();
        lock(&self.waiting).push_back((self.next, tx));
        Some(Ticket {
            place: Some(place),
            id: self.next,
            evicted,
            waiting: self.waiting.clone(),
        })
    }
}

impl Ticket {
    /// [`read_request`], unless the place is claimed for a newer connection first: then
    /// the place is let go at once and the connection should be answered [`refuse`].
    ///
    /// # Errors
    /// [`Evicted`].
    pub async fn read_request(
        &mut self,
        stream: &mut UnixStream,
    ) -> Result<Option<String>, Evicted> {
        let read = tokio::select! {
            r = read_request(stream) => Ok(r),
            _ = &mut self.evicted => Err(Evicted),
        };
        let id = self.id;
        lock(&self.waiting).retain(|(i, _)| *i != id);
        if read.is_err() {
            self.place = None;
        }
        read
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let id = self.id;
        lock(&self.waiting).retain(|(i, _)| *i != id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one request to the agent got.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent's answer.
    Answer(String),
    /// The agent had no place for this client (it answered [`BUSY`], or closed or reset
    /// the connection before answering): try again shortly.
    Busy,
}

/// The client side: sends `request`, returns the answer.
///
/// # Errors
/// No agent answers at `path`.
pub fn request(path: &Path, request: &str) -> io::Result<Outcome> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let busy = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        )
    };
    match s.write_all(format!("{request}\n").as_bytes()) {
        Err(e) if busy(&e) => return Ok(Outcome::Busy),
        r => r?,
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        // A reset after the answer arrived still leaves the answer.
        Err(e) if busy(&e) && out.is_empty() => return Ok(Outcome::Busy),
        Err(e) if !busy(&e) => return Err(e),
        _ => {}
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    Ok(if out.is_empty() || out.starts_with("error: busy:") {
        Outcome::Busy
    } else {
        Outcome::Answer(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (control_request): `status` followed by a newline and bytes that
    /// are not UTF-8 was answered "no request within 1 s".
    #[test]
    fn a_request_line_is_read_whatever_follows_its_newline() {
        assert_eq!(request_line(b"status\n\xff\xfe"), Some("status"));
        assert_eq!(request_line(b"  replay abc \r\n\x80"), Some("replay abc"));
        assert_eq!(request_line(b"status"), Some("status"));
        assert_eq!(request_line(b"stat\xffus\n"), None);
        assert_eq!(Request::parse("status"), Request::Status);
        assert_eq!(Request::parse("replay  abc "), Request::Replay("abc"));
        assert_eq!(Request::parse("statu"), Request::Unknown("statu"));
        assert_eq!(
            Request::parse("mute disk 1h"),
            Request::Mute("mute disk 1h")
        );
        assert_eq!(Request::parse("unmute disk"), Request::Mute("unmute disk"));
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tocsin-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[tokio::test]
    async fn only_a_stale_socket_is_replaced() {
        let d = dir("bind");
        // A regular file, a directory and a symbolic link are refused and left as they are.
        let file = d.join("file");
        std::fs::write(&file, "keep me").expect("write");
        let sub = d.join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let link = d.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        for p in [&file, &sub, &link] {
            let e = bind(p).expect_err("not a socket");
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{}", p.display());
        }
        assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
        assert!(sub.is_dir());
        assert!(std::fs::symlink_metadata(&link).expect("link").is_symlink());
        // A live socket is another agent; a stale one is replaced.
        let sock = d.join("control.sock");
        let live = bind(&sock).expect("bind");
        assert_eq!(
            bind(&sock).expect_err("in use").kind(),
            io::ErrorKind::AddrInUse
        );
        drop(live);
        let again = bind(&sock).expect("a stale socket is replaced");
        drop(again);
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn the_longest_idle_holder_gives_its_place_to_a_newcomer() {
        let mut adm = Admission::new(2);
        let (mut a, _ca) = UnixStream::pair().expect("pair");
        let (mut b, cb) = UnixStream::pair().expect("pair");
        let mut ta = adm.admit().await.expect("a place");
        let mut tb = adm.admit().await.expect("a place");
        // b sends its request; a says nothing.
        let mut cb = cb;
        cb.write_all(b"status\n").await.expect("write");
        let read_a = tokio::spawn(async move { ta.read_request(&mut a).await });
        assert_eq!(tb.read_request(&mut b).await, Ok(Some("status".into())));
        // Full: the newcomer takes a's place (a, waiting longest without a request, is
        // told so), not b's, whose request is being answered.
        let tc = adm.admit().await.expect("a's place");
        assert_eq!(read_a.await.expect("task"), Err(Evicted));
        // Full again, and nobody is waiting without a request but c: c gives way.
        let (mut c, _cc) = UnixStream::pair().expect("pair");
        let mut tc = tc;
        let read_c = tokio::spawn(async move { tc.read_request(&mut c).await });
        tokio::task::yield_now().await;
        let td = adm.admit().await.expect("c's place");
        assert_eq!(read_c.await.expect("task"), Err(Evicted));
        // Both places held by connections past their request (b, and d once read): refused.
        let (mut d, cd) = UnixStream::pair().expect("pair");
        let mut cd = cd;
        cd.write_all(b"status\n").await.expect("write");
        let mut td = td;
        assert_eq!(td.read_request(&mut d).await, Ok(Some("status".into())));
        assert!(adm.admit().await.is_none(), "busy");
        drop(tb);
        assert!(
            adm.admit().await.is_some(),
            "a place freed by an answered client"
        );
    }

    #[tokio::test]
    async fn a_refused_client_reads_busy_not_a_reset() {
        let d = dir("refuse");
        let sock = d.join("s");
        let listener = bind(&sock).expect("bind");
        let client = {
            let sock = sock.clone();
            tokio::task::spawn_blocking(move || -> io::Result<String> {
                let mut s = std::os::unix::net::UnixStream::connect(&sock)?;
                s.write_all(b"status\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
        };
        let (conn, _) = listener.accept().await.expect("accept");
        // The request is there before the agent refuses: it is read, so no reset.
        tokio::time::sleep(Duration::from_millis(50)).await;
        refuse(conn).await;
        let got = client.await.expect("task").expect("an answer, not a reset");
        assert_eq!(got, BUSY);
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn a_path_longer_than_sun_path_is_refused() {
        let d = dir("long");
        let base = d.as_os_str().len() + 1;
        let name = |len: usize| d.join("s".repeat(len - base));
        let longest = name(MAX_SOCKET_PATH_LEN);
        assert_eq!(longest.as_os_str().len(), MAX_SOCKET_PATH_LEN);
        drop(bind(&longest).expect("107 bytes fit"));
        let e = bind(&name(MAX_SOCKET_PATH_LEN + 1)).expect_err("108 bytes do not");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&d).ok();
    }
}
