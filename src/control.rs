//! The control socket: `tocsin status` and `tocsin replay` talk to the running agent over
//! a Unix socket that only its owner may use (mode 0600).
//!
//! One request per connection, one line (at most [`MAX_REQUEST`] bytes, read within
//! [`REQUEST_TIMEOUT`]): `status` or `replay EVENT_ID`. The answer is text; the agent closes
//! the connection after it.

use crate::config::MAX_SOCKET_PATH_LEN;
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

#[cfg(test)]
mod tests {
    use super::*;

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
