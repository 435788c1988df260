//! The bottom layer: pure helpers every other layer may use, and nothing above them.
//!
//! Base64 ([RFC 4648](https://www.rfc-editor.org/rfc/rfc4648)), HMAC-SHA256
//! ([RFC 2104](https://www.rfc-editor.org/rfc/rfc2104)), percent-encoding
//! ([RFC 3986](https://www.rfc-editor.org/rfc/rfc3986) unreserved characters kept), civil
//! dates (proleptic Gregorian, UTC), glob matching, random bytes and [`Secret`]. No I/O but
//! the kernel's random source; no clock (see [`crate::clock`]).

mod base64;
pub mod crash;
mod date;
mod glob;

pub use base64::{base64_decode, base64_into, base64_write};
pub use date::{civil_from_secs, days_from_civil, iso8601, utc_naive};
pub use glob::glob_match;

use core::fmt;

/// FNV-1a (64 bits) of `parts` one after another: a stable hash of names, the same on
/// every device and across restarts.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> ring::hmac::Tag {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data)
}

/// HMAC-SHA256 over text written to it piece by piece (no buffer for the whole message).
pub struct HmacWriter(ring::hmac::Context);

impl HmacWriter {
    /// A MAC under `key`.
    pub fn new(key: &[u8]) -> HmacWriter {
        HmacWriter(ring::hmac::Context::with_key(&ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            key,
        )))
    }

    /// The tag of everything written.
    pub fn finish(self) -> ring::hmac::Tag {
        self.0.sign()
    }
}

impl fmt::Write for HmacWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// Writes `s` percent-encoded: ASCII letters, digits and `-._~` as they are, every other
/// byte as `%XX` (upper-case hex); with `space_plus`, a space as `+` (form encoding).
///
/// # Errors
/// When `out` is full.
pub fn percent_write(
    out: &mut (impl fmt::Write + ?Sized),
    s: &str,
    space_plus: bool,
) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.write_char(char::from(b))?;
        } else if b == b' ' && space_plus {
            out.write_char('+')?;
        } else {
            out.write_char('%')?;
            out.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(b & 15)]))?;
        }
    }
    Ok(())
}

/// Appends `s` percent-encoded (RFC 3986 unreserved characters stay as they are).
pub fn percent_encode_into(s: &str, out: &mut String) {
    let _ = percent_write(out, s, false);
}

/// Fills `out` from the kernel's random source (all zero if it cannot be read, which
/// only weakens uniqueness, never safety).
pub fn random_fill(out: &mut [u8]) {
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), out);
}

/// A random `u32` (jitter, splay).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    random_fill(&mut b);
    u32::from_ne_bytes(b)
}

/// A secret value; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foo", b"bar"]), fnv1a(&[b"foobar"]));
    }

    #[test]
    fn percent_encoding() {
        let mut s = String::new();
        percent_encode_into("a b&c=d/é~", &mut s);
        assert_eq!(s, "a%20b%26c%3Dd%2F%C3%A9~");
        let mut f = String::new();
        percent_write(&mut f, "a b", true).unwrap();
        assert_eq!(f, "a+b");
    }

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_rfc4231() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_writer_is_hmac_of_the_concatenation() {
        use core::fmt::Write as _;
        let mut w = HmacWriter::new(b"Jefe");
        w.write_str("what do ya ").unwrap();
        w.write_str("want for nothing?").unwrap();
        assert_eq!(
            w.finish().as_ref(),
            hmac_sha256(b"Jefe", b"what do ya want for nothing?").as_ref()
        );
    }

    #[test]
    fn secrets_do_not_debug() {
        assert_eq!(
            format!("{:?}", Secret::new("t0k".into())),
            "Secret(<redacted>)"
        );
    }
}
