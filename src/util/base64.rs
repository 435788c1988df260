//! Standard base64 (RFC 4648 section 4), padded on output, padding optional on input.

use core::fmt;

/// Appends the standard base64 (RFC 4648, padded) encoding of `data`.
pub fn base64_into(data: &[u8], out: &mut String) {
    let _ = base64_write(data, out);
}

/// Writes the standard base64 (RFC 4648, padded) encoding of `data`.
///
/// # Errors
/// When `out` is full.
pub fn base64_write(data: &[u8], out: &mut (impl fmt::Write + ?Sized)) -> fmt::Result {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.write_char(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]))?;
            } else {
                out.write_char('=')?;
            }
        }
    }
    Ok(())
}

/// Decodes standard base64 (RFC 4648, padding optional). `None` on any invalid character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            base64_into(i.as_bytes(), &mut s);
            assert_eq!(s, o, "{i}");
            assert_eq!(base64_decode(o).as_deref(), Some(i.as_bytes()), "{o}");
        }
        assert_eq!(base64_decode("Zm9vYg"), Some(b"foob".to_vec()));
        assert_eq!(base64_decode("Zm9v!"), None);
    }
}
