//! Why an event was not delivered, as a type: the retry loop, the spool and `tocsin test`
//! read the variant; the log edge prints its `Display`.

use super::client::SendError;
use super::retry::{classify, Verdict};
use crate::render::RenderError;
use core::fmt;

/// Why a delivery (or the start of a sink) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The body did not fit its buffer (the load-time proofs rule this out).
    Render(RenderError),
    /// The request head is not valid HTTP (a header or target the config should have
    /// refused): it fails loudly instead of sending a broken request.
    Build(String),
    /// The webhook's TLS settings could not be built (CA file, client key, …).
    TlsSetup(String),
    /// No response: name resolution, connect, TLS, timeout, proxy, connection reset.
    Send(SendError),
    /// The receiver answered with a status that is not 2xx.
    Status(u16),
    /// The agent stopped before the event was delivered.
    Stopped,
    /// A certificate failed on time while the wall clock may be wrong (before 2020, or
    /// the kernel says unsynchronised): `now_ms` is what the clock said.
    ClockNotSet {
        /// The wall clock at the failure.
        now_ms: u64,
        /// The certificate error.
        cause: SendError,
    },
}

impl Error {
    /// Whether a later try could succeed: network errors, retryable statuses (408, 429,
    /// 5xx but 501), the agent stopping, a clock not yet set. Such an event is spooled.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Send(_) | Error::Stopped | Error::ClockNotSet { .. } => true,
            Error::Status(code) => classify(*code) == Verdict::Retry,
            Error::Render(_) | Error::Build(_) | Error::TlsSetup(_) => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Render(e) => write!(f, "{e}"),
            Error::Build(m) => write!(f, "cannot build the request: {m}"),
            Error::TlsSetup(m) => write!(f, "TLS settings: {m}"),
            Error::Send(e) => write!(f, "{e}"),
            Error::Status(code) => write!(f, "HTTP {code}"),
            Error::Stopped => f.write_str("the agent is stopping"),
            Error::ClockNotSet { now_ms, cause } => write!(
                f,
                "clock not set (now {}, kernel unsynchronised or before 2020): {cause}",
                crate::util::iso8601(*now_ms)
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_decides_whether_to_keep_trying() {
        assert!(Error::Send(SendError::Timeout).retryable());
        assert!(Error::Status(503).retryable());
        assert!(Error::Status(429).retryable());
        assert!(!Error::Status(501).retryable());
        assert!(!Error::Status(404).retryable());
        assert!(Error::Stopped.retryable());
        assert!(!Error::Render(RenderError::BufferFull).retryable());
        let clock = Error::ClockNotSet {
            now_ms: 0,
            cause: SendError::Timeout,
        };
        assert!(clock.retryable());
        assert_eq!(
            clock.to_string(),
            "clock not set (now 1970-01-01T00:00:00Z, kernel unsynchronised or before 2020): timed out"
        );
    }
}
