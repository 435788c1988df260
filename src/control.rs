//! The control socket: `tocsin status` and `tocsin replay` talk to the running agent over
//! a Unix socket that only its owner may use (mode 0600).
//!
//! One request per connection, one line (at most [`MAX_REQUEST`] bytes, read within
//! [`REQUEST_TIMEOUT`]): `status` or `replay EVENT_ID`. The answer is text; the agent closes
//! the connection after it.

use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

/// Longest request line, in bytes.
pub const MAX_REQUEST: usize = 256;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds the control socket at `path`, owner-only. A stale socket file (no agent behind it)
/// is replaced; a live one means another agent runs, which is an error.
///
/// # Errors
/// Another agent answers there, or the socket cannot be created.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another tocsin answers on this control socket",
            ));
        }
        std::fs::remove_file(path)?;
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
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    Some(line.lines().next().unwrap_or("").trim().to_string())
}

/// Writes the answer and closes.
pub async fn answer(mut stream: UnixStream, text: String) {
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The client side: sends `request`, returns the answer.
///
/// # Errors
/// No agent answers at `path`.
pub fn request(path: &Path, request: &str) -> io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
