//! Templates (`body`, `query`, header values, Alertmanager's `generatorURL`) parsed and
//! rendered for a hostile event in every escaping context.
//! Input: the template text, a NUL, then what picks the context, the language, the
//! device's names and labels and the event.
//! Invariants: a parse error points at the `${` it names (or the filter it names); every variable's value, escaped
//! for its context, parses back in that format (serde_json for JSON, a form decoder,
//! percent-decoding for URLs, roxmltree for XML text and attributes, header-value
//! rules) to the value itself; rendering into a fixed buffer never allocates, gives the
//! whole text when it fits and fails when it does not.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tocsin::event::{Event, Language};
use tocsin::render::template::{Segment, Template, Var};
use tocsin::render::{Ctx, Escape, FixedWriter, Origin};
use tocsin_fuzz::{event, measure, text};

const ESCAPES: [Escape; 6] = [
    Escape::Json,
    Escape::Form,
    Escape::Url,
    Escape::Xml,
    Escape::Header,
    Escape::Text,
];

/// Every variable, so each is checked in each context whatever the template holds.
const VARS: &[Var] = &[
    Var::EventId,
    Var::EventType,
    Var::RuleId,
    Var::AlertName,
    Var::State,
    Var::Level,
    Var::PrevLevel,
    Var::Metric,
    Var::Namespace,
    Var::Value,
    Var::Unit,
    Var::Threshold,
    Var::Expression,
    Var::Times,
    Var::Dimensions,
    Var::DeviceId,
    Var::Hostname,
    Var::Timestamp,
    Var::TimestampMs,
    Var::TimeIso,
    Var::FirstTriggerMs,
    Var::LastTriggerMs,
    Var::IntervalMs,
    Var::Content,
    Var::Label(0),
    Var::Label(1),
    Var::ReplayOf,
    Var::Alarm,
];

fn render(var: Var, ctx: &Ctx<'_>, escape: Escape) -> String {
    let t = Template {
        segments: vec![Segment::Var(var)],
    };
    let mut s = String::new();
    t.render(&mut s, ctx, escape).expect("a String never fills");
    s
}

/// What XML can carry of `raw`: the characters XML 1.0 cannot hold become U+FFFD.
fn xml_expect(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn check_var(var: Var, ctx: &Ctx<'_>, escape: Escape) {
    let raw = render(var, ctx, Escape::Text);
    let out = render(var, ctx, escape);
    match escape {
        Escape::Json if var == Var::Alarm => {
            let v: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("${{alarm}} is not JSON ({e}): {out}"));
            assert!(v.is_object(), "${{alarm}} is not an object: {out}");
        }
        Escape::Json => {
            let back: String = serde_json::from_str(&format!("\"{out}\""))
                .unwrap_or_else(|e| panic!("{var:?} in a JSON string ({e}): {out:?}"));
            assert_eq!(back, raw, "{var:?} in JSON");
        }
        Escape::Form => {
            let form = format!("k={out}&z=1");
            let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(
                pairs,
                vec![("k".to_string(), raw), ("z".to_string(), "1".to_string())],
                "{var:?} in a form: {out:?}"
            );
        }
        Escape::Url => {
            assert!(
                out.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{var:?} in a URL: {out:?}"
            );
            let back = percent_encoding::percent_decode_str(&out).decode_utf8_lossy();
            assert_eq!(back, raw, "{var:?} in a URL: {out:?}");
        }
        Escape::Xml => {
            let doc = format!("<a b=\"{out}\" c='{out}'>{out}</a>");
            let d = roxmltree::Document::parse(&doc)
                .unwrap_or_else(|e| panic!("{var:?} in XML ({e}): {doc:?}"));
            let a = d.root_element();
            let want = xml_expect(&raw);
            assert_eq!(
                a.attribute("b"),
                Some(want.as_str()),
                "{var:?} in an XML attribute"
            );
            assert_eq!(
                a.attribute("c"),
                Some(want.as_str()),
                "{var:?} in an XML attribute"
            );
            assert_eq!(a.text().unwrap_or(""), want, "{var:?} in XML text");
        }
        Escape::Header => {
            let want: String = raw
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            assert_eq!(out, want, "{var:?} in a header");
            // RFC 9110 field-value: visible ASCII, space, tab and obs-text only.
            assert!(
                out.bytes()
                    .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b) || b >= 0x80),
                "{var:?} in a header: {out:?}"
            );
        }
        Escape::Text => assert_eq!(out, raw),
    }
}

fuzz_target!(|data: &[u8]| {
    let (source, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let Ok(escape) = u.choose(&ESCAPES).copied() else {
        return;
    };
    let Ok(language) = u.choose(&[Language::En, Language::Zh]).copied() else {
        return;
    };
    let names = (|| -> libfuzzer_sys::arbitrary::Result<(Origin, Event)> {
        let origin = Origin {
            device_id: text::<64>(&mut u)?.as_str().to_owned(),
            hostname: text::<64>(&mut u)?.as_str().to_owned(),
            interval_ms: u.arbitrary()?,
            labels: vec![
                ("site".into(), text::<64>(&mut u)?.as_str().to_owned()),
                ("zone".into(), text::<64>(&mut u)?.as_str().to_owned()),
            ],
        };
        Ok((origin, event(&mut u)?))
    })();
    let Ok((origin, ev)) = names else {
        return;
    };
    let ctx = Ctx {
        event: &ev,
        origin: &origin,
        language,
    };
    let cap: u16 = u.arbitrary().unwrap_or(0);

    for &var in VARS {
        check_var(var, &ctx, escape);
    }

    let t = match Template::parse(source, &origin.labels) {
        Ok(t) => t,
        Err(e) => {
            assert!(source.is_char_boundary(e.offset), "{e:?}");
            // At the `${` it names, or at the filter name inside one (`${x|name}`).
            let at_filter = source[..e.offset].ends_with('|')
                && source[..e.offset]
                    .rfind("${")
                    .is_some_and(|open| !source[open..e.offset].contains('}'));
            assert!(
                source[e.offset..].starts_with("${") || at_filter,
                "error at {} of {source:?}: {}",
                e.offset,
                e.message
            );
            return;
        }
    };
    // Literal text is written as it is: a template without `$` renders as itself.
    if !source.contains('$') {
        assert!(t.is_static());
    }
    let mut whole = String::new();
    t.render(&mut whole, &ctx, escape)
        .expect("a String never fills");
    let mut buf = vec![0u8; usize::from(cap)];
    let (r, a) = measure(|| {
        let mut w = FixedWriter::new(&mut buf);
        let r = t.render(&mut w, &ctx, escape);
        (r, w.len())
    });
    assert_eq!(a.count, 0, "rendering into a fixed buffer allocated {a:?}");
    match r {
        (Ok(()), n) => assert_eq!(&buf[..n], whole.as_bytes()),
        (Err(_), _) => assert!(whole.len() > buf.len(), "failed with room to spare"),
    }
});
