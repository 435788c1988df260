//! Small no-allocation text helpers for rendering.

use core::fmt;

/// A `fmt::Write` over a fixed byte buffer; writing past the end fails (and sets `overflow`).
pub struct FixedWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// Set once a write did not fit.
    pub overflow: bool,
}

impl<'a> FixedWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        FixedWriter {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text written so far (always whole UTF-8: only `str`s are written).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for FixedWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes `s` as a JSON string literal, quotes included (RFC 8259 escaping).
///
/// # Errors
/// When `out` is full.
pub fn json_str_into(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => "",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(out, "\\u{:04x}", c as u32)?;
        } else {
            out.write_str(esc)?;
        }
        start = i + c.len_utf8();
    }
    out.write_str(&s[start..])?;
    out.write_char('"')
}

/// Formats a metric value the way people read it: integers without a fraction,
/// everything else with at most two decimals (`97.39`, `0.5`, `1048576`).
pub fn fmt_value(v: f64) -> heapless::String<32> {
    use fmt::Write as _;
    let mut s = heapless::String::new();
    if !v.is_finite() {
        return s;
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(s, "{}", v as i64);
        return s;
    }
    let _ = write!(s, "{v:.2}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s.as_str() == "-0" {
        s.clear();
        let _ = s.push('0');
    }
    s
}

/// Appends the standard base64 (RFC 4648, padded) encoding of `data`.
pub fn base64_into(data: &[u8], out: &mut String) {
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
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_rfc4648_vectors() {
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
        }
    }

    use super::*;
    use fmt::Write as _;

    #[test]
    fn values() {
        for (v, s) in [
            (97.394, "97.39"),
            (0.5, "0.5"),
            (1048576.0, "1048576"),
            (95.0, "95"),
            (-0.001, "0"),
            (2.999, "3"),
            (1e20, "100000000000000000000"),
        ] {
            assert_eq!(fmt_value(v).as_str(), s, "{v}");
        }
    }

    #[test]
    fn json_escaping() {
        let mut buf = [0u8; 64];
        let mut w = FixedWriter::new(&mut buf);
        json_str_into(&mut w, "a\"b\\c\n\u{1}é\u{2028}").unwrap();
        assert_eq!(w.as_str(), r#""a\"b\\c\n\u0001é\u2028""#);
    }

    #[test]
    fn writer_overflow_is_an_error_not_a_panic() {
        let mut buf = [0u8; 4];
        let mut w = FixedWriter::new(&mut buf);
        assert!(w.write_str("abcde").is_err());
        assert!(w.overflow);
        assert_eq!(w.len(), 0);
    }
}
