//! Is the clock to blame for a certificate error?
//!
//! Routers often boot with a wrong clock (no RTC: 1970, or the firmware's build date) until
//! NTP sets it. A certificate that is "not yet valid" or "expired" under such a clock says
//! nothing about the certificate. When the kernel reports the clock unsynchronised
//! (adjtimex: TIME_ERROR or STA_UNSYNC) or the year is before 2020, tocsin says "clock not
//! set" and keeps the event until the clock is right, as DESIGN.md's delivery contract asks.

/// Wall-clock milliseconds since the Unix epoch: the one place tocsin reads the clock
/// (0 before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 2020-01-01T00:00:00Z in unix milliseconds: any earlier wall clock is wrong.
pub const PLAUSIBLE_SINCE_MS: u64 = 1_577_836_800_000;

/// Whether the kernel says the clock is not synchronised.
pub fn kernel_unsynchronised() -> bool {
    // SAFETY: an all-zero timex is valid; with `modes == 0` adjtimex only reads into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable timex for the call's duration.
    let state = unsafe { libc::adjtimex(&mut t) };
    state == libc::TIME_ERROR || (t.status & libc::STA_UNSYNC) != 0
}

/// Whether the wall clock at `now_ms` may be wrong.
pub fn suspect(now_ms: u64) -> bool {
    now_ms < PLAUSIBLE_SINCE_MS || kernel_unsynchronised()
}

/// Whether `e` is a certificate failing on time (not yet valid, or expired).
#[cfg(feature = "tls")]
pub fn is_time_error(e: &super::client::SendError) -> bool {
    use rustls::CertificateError as C;
    let super::client::SendError::Tls(io) = e else {
        return false;
    };
    let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return false;
    };
    matches!(
        inner,
        rustls::Error::InvalidCertificate(
            C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. }
        )
    )
}

/// Without TLS there are no certificates.
#[cfg(not(feature = "tls"))]
pub fn is_time_error(_e: &super::client::SendError) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_before_2020_is_suspect() {
        assert!(suspect(0));
        assert!(suspect(PLAUSIBLE_SINCE_MS - 1));
        // After 2020 it depends on the kernel's word; it must at least answer.
        let _ = suspect(PLAUSIBLE_SINCE_MS + 1);
    }
}
