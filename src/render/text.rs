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
pub fn json_str_into(out: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    out.write_char('"')?;
    json_escape_into(out, s)?;
    out.write_char('"')
}

/// Writes `s` escaped for the inside of a JSON string (no quotes).
///
/// # Errors
/// When `out` is full.
pub fn json_escape_into(out: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
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
    out.write_str(&s[start..])
}

/// Where a value lands, and so how it is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string: RFC 8259 escaping.
    Json,
    /// A form-urlencoded value: percent-encoding, space as `+` (WHATWG).
    Form,
    /// A URL path or query: percent-encoding of all but unreserved characters.
    Url,
    /// XML text or attribute: `&amp; &lt; &gt; &quot; &apos;`, tab, LF and CR as character
    /// references; characters XML 1.0 cannot carry (other controls) become U+FFFD.
    Xml,
    /// A header value: one line, control characters become spaces.
    Header,
    /// Plain text: as it is.
    Text,
}

/// A `fmt::Write` that escapes everything written through it.
pub struct Escaped<'w, W: fmt::Write + ?Sized> {
    /// Where escaped text goes.
    pub inner: &'w mut W,
    /// How.
    pub escape: Escape,
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.escape {
            Escape::Json => json_escape_into(self.inner, s),
            Escape::Text => self.inner.write_str(s),
            Escape::Form => crate::util::percent_write(self.inner, s, true),
            Escape::Url => crate::util::percent_write(self.inner, s, false),
            Escape::Xml => {
                let mut start = 0;
                for (i, c) in s.char_indices() {
                    let rep = match c {
                        '&' => "&amp;",
                        '<' => "&lt;",
                        '>' => "&gt;",
                        '"' => "&quot;",
                        '\'' => "&apos;",
                        // As references, so neither line-end nor attribute
                        // normalisation changes them.
                        '\t' => "&#9;",
                        '\n' => "&#10;",
                        '\r' => "&#13;",
                        c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => "\u{fffd}",
                        _ => continue,
                    };
                    self.inner.write_str(&s[start..i])?;
                    self.inner.write_str(rep)?;
                    start = i + c.len_utf8();
                }
                self.inner.write_str(&s[start..])
            }
            Escape::Header => {
                for c in s.chars() {
                    self.inner
                        .write_char(if c.is_control() { ' ' } else { c })?;
                }
                Ok(())
            }
        }
    }
}

/// Slack's escaping of message text, applied before the place's own: `&`, `<`, `>` become
/// `&amp;`, `&lt;`, `&gt;` (Slack's "Formatting text for app surfaces": only these three,
/// which Slack itself would otherwise read as the start of an entity, a link or a mention).
pub struct SlackEscaped<'w, W: fmt::Write + ?Sized>(pub &'w mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for SlackEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let rep = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            self.0.write_str(rep)?;
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// Formats a metric value the way people read it: integers without a fraction,
/// everything else with at most two decimals (`97.39`, `0.5`, `1048576`).
pub fn fmt_value(v: f64) -> heapless::String<32> {
    use fmt::Write as _;
    let mut s = heapless::String::new();
    if !v.is_finite() {
        return s;
    }
    if v.abs() >= 1e15 {
        // Bounded length for any finite value: -1.7976931348623157e308 is 23 bytes.
        let _ = write!(s, "{v:e}");
        return s;
    }
    if v.fract() == 0.0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write as _;

    #[test]
    fn values() {
        for (v, s) in [
            (97.394, "97.39"),
            (0.5, "0.5"),
            (1048576.0, "1048576"),
            (95.0, "95"),
            (-0.001, "0"),
            (2.999, "3"),
            (1e20, "1e20"),
            (f64::MIN, "-1.7976931348623157e308"),
            (123456789012.125, "123456789012.12"),
        ] {
            assert_eq!(fmt_value(v).as_str(), s, "{v}");
        }
    }

    #[test]
    fn escaping_by_place() {
        let cases = [
            (Escape::Json, "a\"<&\n\u{1}", r#"a\"<&\n\u0001"#),
            (Escape::Form, "a b&c=d/é", "a+b%26c%3Dd%2F%C3%A9"),
            (Escape::Url, "a b&c", "a%20b%26c"),
            (
                Escape::Xml,
                "<a href=\"x\">'&'</a>]]>\u{1}\r\n\t",
                "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;]]&gt;\u{fffd}&#13;&#10;&#9;",
            ),
            (Escape::Header, "a\r\nb\tc", "a  b c"),
            (Escape::Text, "a\nb", "a\nb"),
        ];
        for (esc, input, want) in cases {
            let mut out = String::new();
            Escaped {
                inner: &mut out,
                escape: esc,
            }
            .write_str(input)
            .unwrap();
            assert_eq!(out, want, "{esc:?}");
        }
    }

    #[test]
    fn slack_escaping_comes_before_the_place() {
        let mut out = String::new();
        SlackEscaped(&mut Escaped {
            inner: &mut out,
            escape: Escape::Json,
        })
        .write_str("a&b<@U1>\"")
        .unwrap();
        assert_eq!(out, r#"a&amp;b&lt;@U1&gt;\""#);
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
