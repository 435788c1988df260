//! `exec.value`: run a command (argv, never a shell), read at most
//! [`MAX_EXEC_OUTPUT`](crate::limits::MAX_EXEC_OUTPUT) bytes of its stdout, and parse the number it prints.
//!
//! The command runs in its own process group with stdin and stderr on /dev/null and a
//! cleared environment (only `PATH` and `LC_ALL=C`): the agent's environment may hold
//! webhook secrets (`token_env`), which a probe command has no business seeing. The
//! sampler runs it on a probe worker (see `pool`), which waits for it at most `timeout`:
//! when the time is up, or the output outgrows the buffer, the whole group gets SIGKILL
//! and the child is reaped, so nothing hangs and no zombie is left. The deadline bounds
//! waiting and never enters a value. Spawning allocates (std builds the argv and
//! environment for `execve`), on the worker thread, not on the sampling path.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a command gave no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// It could not be started (missing, not executable).
    Spawn,
    /// It ran past its timeout and was killed.
    Timeout,
    /// It printed more than the buffer holds and was killed.
    TooMuchOutput,
    /// It exited with a non-zero status or by a signal.
    Failed,
    /// Its output was not a number.
    NotANumber,
}

/// Parses a command's output: the first whitespace-separated token, a finite number
/// (`42`, `-0.5`, `1e3`; trailing text such as a unit is ignored).
pub fn parse_output(out: &[u8]) -> Option<f64> {
    let token = std::str::from_utf8(out)
        .ok()?
        .split_ascii_whitespace()
        .next()?;
    token.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Runs `argv` with a `timeout`, reading stdout into `buf` (at most its length, which is
/// [`MAX_EXEC_OUTPUT`](crate::limits::MAX_EXEC_OUTPUT) in the sampler).
///
/// # Errors
/// See [`ExecError`].
pub fn run(argv: &[String], timeout: Duration, buf: &mut [u8]) -> Result<f64, ExecError> {
    run_tracked(argv, timeout, buf, |_| true)
}

/// [`run`], telling `track` the child's PID (its process group) once it is started and
/// `None` just before it is reaped, so that someone else may SIGKILL the group in between
/// without hitting a reused PID. When `track` returns false the group is killed at once.
///
/// # Errors
/// See [`ExecError`]; a child killed because `track` said so is [`ExecError::Failed`].
pub fn run_tracked(
    argv: &[String],
    timeout: Duration,
    buf: &mut [u8],
    mut track: impl FnMut(Option<u32>) -> bool,
) -> Result<f64, ExecError> {
    let (prog, args) = argv.split_first().ok_or(ExecError::Spawn)?;
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .process_group(0)
        .spawn()
        .map_err(|_| ExecError::Spawn)?;
    let result = if track(Some(child.id())) {
        collect(&mut child, deadline, buf)
    } else {
        Err(ExecError::Failed)
    };
    track(None);
    if result.is_err() {
        kill_group(&child);
    }
    // Reap in every case; after SIGKILL this returns at once.
    let status = child.wait();
    let n = result?;
    match status {
        Ok(s) if s.success() => parse_output(&buf[..n]).ok_or(ExecError::NotANumber),
        _ => Err(ExecError::Failed),
    }
}

/// Reads stdout until EOF, then waits for the exit, both until `deadline`. Returns the
/// bytes read.
fn collect(child: &mut Child, deadline: Instant, buf: &mut [u8]) -> Result<usize, ExecError> {
    let mut stdout = child.stdout.take().ok_or(ExecError::Spawn)?;
    let mut n = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(stdout.as_raw_fd(), left) {
            return Err(ExecError::Timeout);
        }
        if n == buf.len() {
            // Full: one more byte means too much; EOF means it fit exactly.
            let mut probe = [0u8; 1];
            return match stdout.read(&mut probe) {
                Ok(0) => break,
                _ => Err(ExecError::TooMuchOutput),
            };
        }
        match stdout.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(stdout);
    // EOF: the child closed stdout; give it until the deadline to exit.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(n),
            Ok(None) => {}
            Err(_) => return Err(ExecError::Failed),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ExecError::Timeout);
        }
        std::thread::sleep(left.min(Duration::from_millis(2)));
    }
}

/// Waits up to `left` for `fd` to be readable (or at EOF / error, which read reports).
fn readable(fd: i32, left: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so a sub-millisecond remainder still waits.
    let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: `p` is one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            // A signal (SIGHUP for a reload) is not the timeout; the caller's deadline
            // still bounds the total because it recomputes `left` after each read.
            continue;
        }
        return r > 0;
    }
}

/// SIGKILL to the child's process group (it was made leader of its own group), so a
/// command's own children die with it.
fn kill_group(child: &Child) {
    kill_pgid(child.id());
}

/// SIGKILL to the process group `pgid` (a command started by [`run_tracked`], not yet
/// reaped).
pub(super) fn kill_pgid(pgid: u32) {
    if let Ok(pid) = i32::try_from(pgid) {
        if pid > 0 {
            // SAFETY: plain syscall; a stale group only yields ESRCH.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_EXEC_OUTPUT;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_first_token() {
        assert_eq!(parse_output(b"42\n"), Some(42.0));
        assert_eq!(parse_output(b"  -0.5 ms\n"), Some(-0.5));
        assert_eq!(parse_output(b""), None);
        assert_eq!(parse_output(b"nan"), None);
        assert_eq!(parse_output(b"abc"), None);
    }

    #[test]
    fn runs_reads_and_kills() {
        let mut buf = [0u8; MAX_EXEC_OUTPUT];
        let t = Duration::from_secs(5);
        assert_eq!(run(&argv(&["/bin/echo", "17.5"]), t, &mut buf), Ok(17.5));
        assert_eq!(
            run(&argv(&["/bin/sh", "-c", "echo 3; exit 1"]), t, &mut buf),
            Err(ExecError::Failed)
        );
        assert_eq!(
            run(&argv(&["/bin/echo", "x"]), t, &mut buf),
            Err(ExecError::NotANumber)
        );
        assert_eq!(
            run(&argv(&["/nonexistent/x"]), t, &mut buf),
            Err(ExecError::Spawn)
        );
        let start = Instant::now();
        assert_eq!(
            run(
                &argv(&["/bin/sleep", "10"]),
                Duration::from_millis(200),
                &mut buf
            ),
            Err(ExecError::Timeout)
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        // Closes stdout but keeps running: still killed at the timeout.
        let start = Instant::now();
        assert_eq!(
            run(
                &argv(&["/bin/sh", "-c", "echo 1; exec >&-; sleep 10"]),
                Duration::from_millis(200),
                &mut buf
            ),
            Err(ExecError::Timeout)
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        // The agent's environment (secrets in `*_env`) is not passed on: not even HOME
        // (set under cargo test); PATH is the fixed one.
        assert_eq!(
            run(
                &argv(&["/bin/sh", "-c", "test -z \"$HOME\" && echo 1 || echo 0"]),
                t,
                &mut buf
            ),
            Ok(1.0)
        );
        let mut small = [0u8; 8];
        assert_eq!(
            run(&argv(&["/bin/sh", "-c", "yes 1"]), t, &mut small),
            Err(ExecError::TooMuchOutput)
        );
    }
}
