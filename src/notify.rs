//! The systemd notification protocol (`sd_notify(3)`), written over `$NOTIFY_SOCKET`
//! without libsystemd: one datagram per message, `KEY=VALUE` lines.
//!
//! The service manager passes the socket's address in `$NOTIFY_SOCKET`: a path, or a
//! name in Linux's abstract namespace written with a leading `@`. A unit with
//! `Type=notify` waits for `READY=1`; with `WatchdogSec=` it passes `$WATCHDOG_USEC` and
//! restarts the service when no `WATCHDOG=1` arrives for that long. Outside systemd (no
//! `$NOTIFY_SOCKET`, e.g. under OpenWrt's procd) there is no [`Notifier`] and nothing is
//! sent.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when the variable is unset or empty
    /// (not started by systemd, or a unit type that does not listen).
    ///
    /// # Errors
    /// The variable is set but names no usable address, or no socket can be created.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::connect(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket `addr`: an absolute path, or `@name` for an abstract one.
    ///
    /// # Errors
    /// `addr` is neither, or no datagram socket can be created.
    pub fn connect(addr: &OsStr) -> io::Result<Notifier> {
        Ok(Notifier {
            addr: parse_addr(addr)?,
            sock: UnixDatagram::unbound()?,
        })
    }

    /// Sends one message (`KEY=VALUE` lines, newline-separated) in one datagram.
    ///
    /// # Errors
    /// The datagram could not be sent (the manager is gone, or the socket refuses it).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let n = self.sock.send_to_addr(msg.as_bytes(), &self.addr)?;
        if n != msg.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
        }
        Ok(())
    }

    /// Start-up is complete (`READY=1`), with a one-line `STATUS=`.
    ///
    /// # Errors
    /// See [`Notifier::send`].
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// A config reload has begun (`RELOADING=1`); [`Notifier::ready`] ends it.
    /// `MONOTONIC_USEC` is what systemd 253 and later expect with it.
    ///
    /// # Errors
    /// See [`Notifier::send`].
    pub fn reloading(&self) -> io::Result<()> {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()))
    }

    /// Shutdown has begun (`STOPPING=1`).
    ///
    /// # Errors
    /// See [`Notifier::send`].
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }

    /// Still alive (`WATCHDOG=1`).
    ///
    /// # Errors
    /// See [`Notifier::send`].
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }
}

/// `$NOTIFY_SOCKET` to a socket address: `@name` is abstract, `/path` a file system path.
fn parse_addr(addr: &OsStr) -> io::Result<SocketAddr> {
    let bytes = addr.as_bytes();
    match bytes.first() {
        Some(b'@') => abstract_addr(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(addr),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor @abstract",
        )),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt as _;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// recommends, when the watchdog is on and meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] on given values: `$WATCHDOG_USEC`, `$WATCHDOG_PID`, our pid.
/// A `$WATCHDOG_PID` naming another process means the watchdog is not ours.
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.parse::<u32>().ok()? != me {
            return None;
        }
    }
    let usec: u64 = usec?.parse().ok().filter(|&u| u > 0)?;
    // Never spin: at least 50 ms between pings even for an absurdly short WatchdogSec.
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(50)))
}

/// `CLOCK_MONOTONIC` in microseconds.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// A `STATUS=` value must stay on its line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn listener_path(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tocsin-notify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_each_message_as_one_datagram_to_a_path() {
        let path = listener_path("path");
        let manager = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.as_os_str()).unwrap();
        n.ready("2 rules, 1 webhook\nsecond line").unwrap();
        assert_eq!(
            recv(&manager),
            "READY=1\nSTATUS=2 rules, 1 webhook second line"
        );
        n.watchdog().unwrap();
        assert_eq!(recv(&manager), "WATCHDOG=1");
        n.reloading().unwrap();
        let msg = recv(&manager);
        let mut lines = msg.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec = lines
            .next()
            .unwrap()
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap();
        assert!(usec.parse::<u64>().unwrap() > 0);
        n.stopping().unwrap();
        assert_eq!(recv(&manager), "STOPPING=1");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn at_sign_means_the_abstract_namespace() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("tocsin-notify-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier::connect(&OsString::from(format!("@{name}"))).unwrap();
        n.ready("ok").unwrap();
        assert_eq!(recv(&manager), "READY=1\nSTATUS=ok");
        // No file was created for it.
        assert!(!std::path::Path::new(&format!("@{name}")).exists());
    }

    #[test]
    fn relative_or_empty_addresses_are_refused() {
        for bad in ["", "run/notify", "notify"] {
            assert!(Notifier::connect(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_manager_that_is_gone_is_an_error_not_a_panic() {
        let path = listener_path("gone");
        let n = Notifier::connect(path.as_os_str()).unwrap();
        assert!(n.ready("x").is_err());
    }

    #[test]
    fn watchdog_pings_at_half_the_period_and_only_for_this_process() {
        let me = 4242;
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval_from(Some("30000000"), None, me), half);
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("4242"), me),
            half
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("1"), me),
            None
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("x"), me),
            None
        );
        assert_eq!(watchdog_interval_from(None, None, me), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, me), None);
        assert_eq!(
            watchdog_interval_from(Some("10"), None, me),
            Some(Duration::from_millis(50))
        );
    }
}
