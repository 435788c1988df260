//! Load-time proofs about a webhook's payloads: that they are valid for their content
//! type, and that they fit their fixed buffers for the longest possible values.
//!
//! The proof renders the webhook's real templates for synthetic events: every event type,
//! and worst cases whose every run-time value has its maximum length. Config-time values
//! (device id, host name, labels, rule names) are the real ones.
//!
//! Why the worst cases bound every event: a run-time string (the series' dimension value,
//! an agent event's detail) reaches the output only through transformations that work one
//! character at a time — `content` (control characters become `?`), a receiver's filter
//! (`|slack`), then the place's escaping. So a template's output grows by a sum, over the
//! string's characters, of what each character costs in all the places it lands, and for
//! a string of at most N bytes that sum is largest for N copies of the one character with
//! the highest cost per byte. That character is always ASCII: a non-ASCII character costs
//! at most 3 bytes per byte (percent-encoding) wherever it lands, and `"` costs as much in
//! every place and filter (3 percent-encoded, 2 in JSON where U+2028 costs 2 per byte,
//! 6 in XML; other non-ASCII characters cost 1 per byte in JSON, XML and text). So the
//! proof renders one worst case per ASCII character, 128 in all, and takes the largest.

use super::text::{Escape, FixedWriter};
use super::{Ctx, Origin};
use crate::event::{Event, EventId, EventType, Language, Name};
use crate::limits::MAX_DIM_VALUE_LEN;
use crate::metric::{DimValue, Metric};
use crate::rule::{AlertState, Condition, Level, Op};

/// A syntax check of a rendered payload.
pub type Validator = fn(&str) -> Result<(), String>;

/// The characters the worst cases are made of: every ASCII character (see the module
/// documentation for why no other can grow more).
pub const WORST_CHARS: core::ops::Range<u8> = 0..128;

/// The events a proof renders: each type with ordinary values.
pub fn sample_events(rule_name: &str) -> Vec<Event> {
    let now = 1_763_800_000_000;
    let id = EventId::new(now, [7; 10]);
    let mut out = Vec::new();
    for kind in EventType::ALL {
        let mut e = Event::agent(kind, id, now, "");
        if matches!(
            kind,
            EventType::Alarm | EventType::Recovery | EventType::NoData
        ) {
            e.rule = Some(0);
            e.rule_name = crate::event::truncated(rule_name);
            e.metric = Some(Metric::DiskUsed);
            e.dim = DimValue::try_from("/").unwrap_or_default();
            e.level = Level::Warn;
            e.prev_level = Level::Warn;
            e.state = match kind {
                EventType::Alarm => AlertState::Alert,
                EventType::NoData => AlertState::InsufficientData,
                _ => AlertState::Ok,
            };
            e.value = (kind != EventType::NoData).then_some(91.5);
            e.threshold = Some(Condition {
                op: Op::Gt,
                value: 90.0,
            });
            e.times = 3;
            e.rule_times = 3;
        }
        out.push(e);
    }
    out
}

/// The worst case made of `fill`: every run-time value at its longest, its strings
/// `MAX_DIM_VALUE_LEN` copies of `fill`.
pub fn worst_event(rule_name: &str, fill: char) -> Event {
    let mut worst = Event::agent(EventType::DeliveryFailed, EventId([0xff; 16]), u64::MAX, "");
    worst.kind = EventType::Alarm;
    worst.rule = Some(0);
    worst.rule_name = crate::event::truncated::<{ crate::limits::MAX_NAME_LEN }>(rule_name);
    worst.state = AlertState::InsufficientData;
    worst.level = Level::Critical;
    worst.prev_level = Level::Warn;
    // The metric and dimension key with the longest names.
    let (metric, key) = Metric::ALL
        .into_iter()
        .flat_map(|m| m.dimensions().iter().map(move |k| (m, *k)))
        .max_by_key(|(m, k)| m.name().len() + m.unit().len() + k.len())
        .map_or((None, None), |(m, k)| (Some(m), Some(k)));
    worst.metric = metric;
    worst.dim_key = key;
    let n = MAX_DIM_VALUE_LEN / fill.len_utf8();
    worst.dim = (0..n)
        .map(|_| fill)
        .collect::<String>()
        .as_str()
        .try_into()
        .unwrap_or_default();
    worst.detail = worst.dim.clone();
    worst.value = Some(f64::MIN);
    worst.threshold = Some(Condition {
        op: Op::Ge,
        value: f64::MIN,
    });
    // `$Average` / `$Maximum` / `$Minimum` are the longest names of the value.
    worst.aggregate = crate::event::Aggregate::Avg;
    worst.times = u32::MAX;
    worst.rule_times = u8::MAX;
    worst.first_trigger_ms = u64::MAX;
    worst.last_trigger_ms = u64::MAX;
    worst.replay_of = Some(EventId([0xff; 16]));
    worst
}

/// The longest rule name of a config (the worst case for `rule_id` / `alert_name`).
pub fn longest<'a>(names: impl Iterator<Item = &'a str>) -> Name {
    crate::event::truncated(names.max_by_key(|n| n.len()).unwrap_or(""))
}

/// Renders with `f` for every sample event and every worst case; returns the largest size.
///
/// # Errors
/// A message naming the event type that rendered invalid output or did not fit `limit`.
pub fn prove(
    origin: &Origin,
    language: Language,
    rule_name: &str,
    limit: usize,
    validate: Option<Validator>,
    f: &dyn Fn(&Ctx<'_>, &mut [u8]) -> Option<usize>,
) -> Result<usize, String> {
    let mut scratch = vec![0u8; 64 * 1024];
    let mut largest = 0;
    let samples = sample_events(rule_name).into_iter().map(|e| (e, None));
    let worst = WORST_CHARS.map(|b| (worst_event(rule_name, char::from(b)), Some(char::from(b))));
    for (event, fill) in samples.chain(worst) {
        let ctx = Ctx {
            event: &event,
            origin,
            language,
        };
        let n = f(&ctx, &mut scratch)
            .ok_or_else(|| "it does not fit even a 64 KiB buffer".to_string())?;
        largest = largest.max(n);
        if n > limit {
            return Err(format!(
                "it can reach {n} bytes for the longest possible values (event type {}); the limit is {limit}",
                event.kind.as_str()
            ));
        }
        if let Some(v) = validate {
            let text =
                core::str::from_utf8(&scratch[..n]).map_err(|_| "it is not UTF-8".to_string())?;
            v(text).map_err(|m| {
                let what = match fill {
                    Some(c) => format!("the longest possible values (made of {c:?})"),
                    None => format!("event type {}", event.kind.as_str()),
                };
                format!("it is not valid for {what}: {m}")
            })?;
        }
    }
    Ok(largest)
}

/// [`prove`] for a template in `escape`'s place: one without variables renders the same
/// for every event, so it is rendered once (most request targets and headers).
///
/// # Errors
/// As [`prove`].
pub fn prove_template(
    origin: &Origin,
    language: Language,
    rule_name: &str,
    t: &super::template::Template,
    escape: Escape,
    limit: usize,
) -> Result<usize, String> {
    let f = |ctx: &Ctx<'_>, buf: &mut [u8]| render_template(t, ctx, escape, buf);
    if !t.is_static() {
        return prove(origin, language, rule_name, limit, None, &f);
    }
    let event = worst_event(rule_name, 'x');
    let ctx = Ctx {
        event: &event,
        origin,
        language,
    };
    let mut scratch = vec![0u8; 64 * 1024];
    let n =
        f(&ctx, &mut scratch).ok_or_else(|| "it does not fit even a 64 KiB buffer".to_string())?;
    if n > limit {
        return Err(format!("it is {n} bytes; the limit is {limit}"));
    }
    Ok(n)
}

/// Renders a template into a fixed writer; `None` when it does not fit.
pub fn render_template(
    t: &super::template::Template,
    ctx: &Ctx<'_>,
    escape: Escape,
    buf: &mut [u8],
) -> Option<usize> {
    let mut w = FixedWriter::new(buf);
    t.render(&mut w, ctx, escape).ok()?;
    Some(w.len())
}

// ---- JSON ---------------------------------------------------------------------------------

/// Checks that `s` is one JSON value (RFC 8259), nested at most 64 deep.
///
/// # Errors
/// What is wrong, and the byte offset.
pub fn json(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut p = Json { b, i: 0 };
    p.ws();
    p.value(0)?;
    p.ws();
    if p.i != b.len() {
        return Err(format!(
            "unexpected `{}` after the JSON value at byte {}",
            p.peek_char(),
            p.i
        ));
    }
    Ok(())
}

struct Json<'a> {
    b: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek_char(&self) -> char {
        core::str::from_utf8(&self.b[self.i.min(self.b.len())..])
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('?')
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        if self.i >= self.b.len() {
            Err(format!("{what}, found the end at byte {}", self.i))
        } else {
            Err(format!(
                "{what}, found `{}` at byte {}",
                self.peek_char(),
                self.i
            ))
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return self.err("JSON nested too deep");
        }
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a string key");
                    }
                    self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return self.err("expected `:`");
                    }
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return self.err("expected `,` or `}`");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b']') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return self.err("expected `,` or `]`");
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'n') => self.word("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a JSON value"),
        }
    }

    fn word(&mut self, w: &str) -> Result<(), String> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(())
        } else {
            self.err(&format!("expected `{w}`"))
        }
    }

    fn string(&mut self) -> Result<(), String> {
        self.i += 1;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.b.get(self.i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u')
                            if self.b.len() >= self.i + 5
                                && self.b[self.i + 1..self.i + 5]
                                    .iter()
                                    .all(u8::is_ascii_hexdigit) =>
                        {
                            self.i += 5;
                        }
                        _ => return self.err("invalid escape in a JSON string"),
                    }
                }
                0..=0x1f => return self.err("control character in a JSON string (escape it)"),
                _ => self.i += 1,
            }
        }
        self.err("unterminated JSON string")
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.i;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - s
        };
        if self.b.get(self.i) == Some(&b'0') {
            self.i += 1;
        } else if digits(self) == 0 {
            self.i = start;
            return self.err("invalid number");
        }
        if self.eat(b'.') && digits(self) == 0 {
            return self.err("digits expected after `.`");
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if digits(self) == 0 {
                return self.err("digits expected in the exponent");
            }
        }
        Ok(())
    }
}

// ---- XML ----------------------------------------------------------------------------------

/// Checks that `s` is a well-formed XML document: an optional declaration, comments,
/// one root element, balanced tags, quoted attributes, known or numeric entities.
///
/// # Errors
/// What is wrong, and the byte offset.
pub fn xml(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut stack: heapless::Vec<&str, 64> = heapless::Vec::new();
    let mut roots = 0;
    let at = |i: usize, m: &str| Err(format!("{m} at byte {i}"));
    while i < b.len() {
        if b[i] == b'<' {
            let rest = &s[i..];
            if rest.starts_with("<?") {
                let end = rest.find("?>").ok_or("unterminated `<?`")?;
                i += end + 2;
            } else if let Some(comment) = rest.strip_prefix("<!--") {
                let end = comment.find("-->").ok_or("unterminated comment")?;
                i += 4 + end + 3;
            } else if rest.starts_with("<![CDATA[") {
                if stack.is_empty() {
                    return at(i, "CDATA outside the root element");
                }
                let end = rest.find("]]>").ok_or("unterminated CDATA section")?;
                i += end + 3;
            } else if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated closing tag")?;
                let name = r[..end].trim_end();
                match stack.pop() {
                    Some(open) if open == name => {}
                    Some(open) => return at(i, &format!("`</{name}>` closes `<{open}>`")),
                    None => return at(i, &format!("`</{name}>` closes nothing")),
                }
                i += 2 + end + 1;
            } else {
                let r = &rest[1..];
                let name_len = r
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .unwrap_or(r.len());
                let name = &r[..name_len];
                if name.is_empty()
                    || !name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
                {
                    return at(i, "invalid element name");
                }
                let mut j = i + 1 + name_len;
                // Attributes: name="value" or name='value'.
                loop {
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    match b.get(j) {
                        Some(b'>') => {
                            if stack.is_empty() {
                                roots += 1;
                            }
                            stack
                                .push(name)
                                .map_err(|_| "XML nested too deep".to_string())?;
                            j += 1;
                            break;
                        }
                        Some(b'/') if b.get(j + 1) == Some(&b'>') => {
                            if stack.is_empty() {
                                roots += 1;
                            }
                            j += 2;
                            break;
                        }
                        Some(_) => {
                            let eq = s[j..]
                                .find('=')
                                .ok_or_else(|| format!("attribute without `=` at byte {j}"))?;
                            j += eq + 1;
                            let q = *b.get(j).ok_or("unterminated tag")?;
                            if q != b'"' && q != b'\'' {
                                return at(j, "attribute value must be quoted");
                            }
                            let close = s[j + 1..]
                                .find(char::from(q))
                                .ok_or("unterminated attribute value")?;
                            check_text(&s[j + 1..j + 1 + close], j + 1, true)?;
                            j += 1 + close + 1;
                        }
                        None => return at(j, "unterminated tag"),
                    }
                }
                i = j;
            }
            if roots > 1 {
                return at(i, "more than one root element");
            }
        } else {
            let end = s[i..].find('<').map_or(b.len(), |e| i + e);
            let text = &s[i..end];
            if stack.is_empty() && !text.trim().is_empty() {
                return at(i, "text outside the root element");
            }
            check_text(text, i, false)?;
            i = end;
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("`<{open}>` is not closed"));
    }
    if roots == 0 {
        return Err("no root element".into());
    }
    Ok(())
}

/// Text and attribute values: entities well-formed, no `<`, no characters XML forbids.
fn check_text(t: &str, offset: usize, attribute: bool) -> Result<(), String> {
    let mut rest = t;
    let mut pos = offset;
    while let Some(i) = rest.find(['&', '<']) {
        if rest.as_bytes()[i] == b'<' && attribute {
            return Err(format!("`<` in an attribute value at byte {}", pos + i));
        }
        let r = &rest[i + 1..];
        let end = r
            .find(';')
            .ok_or_else(|| format!("bare `&` at byte {}", pos + i))?;
        let ent = &r[..end];
        let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
            || ent
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || ent
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(format!("unknown entity `&{ent};` at byte {}", pos + i));
        }
        pos += i + 2 + end;
        rest = &r[end + 1..];
    }
    if let Some(c) = t
        .chars()
        .find(|&c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "character U+{:04X} is not allowed in XML",
            c as u32
        ));
    }
    Ok(())
}

// ---- form ---------------------------------------------------------------------------------

/// Checks that `s` is `application/x-www-form-urlencoded`: `name=value` pairs joined by
/// `&`, every byte either unreserved, `+`, `*`, or a `%XX` escape.
///
/// # Errors
/// What is wrong, and the byte offset.
pub fn form(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    let mut offset = 0;
    for pair in s.split('&') {
        let Some((name, _)) = pair.split_once('=') else {
            return Err(format!("`{pair}` at byte {offset} has no `=`"));
        };
        if name.is_empty() {
            return Err(format!("a field without a name at byte {offset}"));
        }
        let b = pair.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            let ok = c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'*' | b'=')
                || (c == b'%' && hex(i + 1) && hex(i + 2));
            if !ok {
                return Err(format!(
                    "`{}` at byte {} must be percent-encoded",
                    char::from(c),
                    offset + i
                ));
            }
        }
        offset += pair.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_accepts_and_rejects() {
        for ok in [
            r#"{"a":[1,-2.5e3,true,null,"x\"\u00e9"],"b":{}}"#,
            " [] ",
            "0",
            r#""""#,
        ] {
            assert_eq!(json(ok), Ok(()), "{ok}");
        }
        for bad in [
            r#"{"a":}"#,
            r#"{"a" 1}"#,
            "[1,]",
            r#""a"#,
            "01",
            "1.",
            "-",
            r#"{"a":1}x"#,
            "\"a\u{1}\"",
            r#""\q""#,
            "",
            "{a:1}",
        ] {
            assert!(json(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(json(&"[".repeat(100)).is_err(), "depth is bounded");
    }

    #[test]
    fn xml_accepts_and_rejects() {
        for ok in [
            r#"<?xml version="1.0" encoding="utf-8"?><book><title a="1" b='&amp;'>x &lt; y</title><e/></book>"#,
            "<!-- c --><a><![CDATA[<raw>&]]></a>\n",
            "<a>&#233;&#xE9;</a>",
        ] {
            assert_eq!(xml(ok), Ok(()), "{ok}");
        }
        for bad in [
            "<a>",
            "<a></b>",
            "<a>&</a>",
            "<a>&nbsp;</a>",
            "<a x=1/>",
            "<a/><b/>",
            "text",
            "<a>\u{1}</a>",
            "<a x=\"<\"/>",
            "</a>",
            "",
        ] {
            assert!(xml(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn form_accepts_and_rejects() {
        for ok in ["a=1&b=x+y%20z", "k=", ""] {
            assert_eq!(form(ok), Ok(()), "{ok}");
        }
        for bad in ["a", "=1", "a=b c", "a=%zz", "a=é", "a=1&&b=2"] {
            assert!(form(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
