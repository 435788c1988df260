//! Property tests: for device names and dimension values full of quotes, backslashes,
//! `&`, `=`, `<`, `]]>`, newlines, controls and non-ASCII, every format's output is still
//! valid for its type and carries the values unchanged, read back with independent
//! parsers (serde_json, roxmltree, a form decoder written here, hyper's URI parser).

use crate::common::form_pairs;
use tocsin::config::{parse, Config};
use tocsin::event::{Event, EventId, EventType};
use tocsin::metric::{DimValue, Metric};
use tocsin::render::{render, Ctx, Escape, FixedWriter, Origin};
use tocsin::rule::{AlertState, Condition, Level, Op};

const CASES: usize = 400;

/// xorshift64*: deterministic, so a failure names its seed and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A string of up to `max` bytes drawn from the characters that break payloads.
    fn nasty(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "\"", "\\", "&", "=", "<", ">", "]]>", "\n", "\r", "\t", "'", "+", "%", "%2", "?", "#",
            " ", "\u{1}", "\u{7f}", "é", "中", "💥", "${x}", "{", "}", "[", "]", ",", ":", "a",
            "Z", "0", "/", "\u{2028}",
        ];
        let mut s = String::new();
        let n = (self.next() % 24) as usize;
        for _ in 0..n {
            let p = PIECES[(self.next() % PIECES.len() as u64) as usize];
            if s.len() + p.len() > max {
                break;
            }
            s.push_str(p);
        }
        s
    }
}

const CONFIG: &str = r#"
[agent]
hostname = "h"
labels = { site = "s" }

[[webhook]]
name = "cmj"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"

[[webhook]]
name = "cmf"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-form"

[[webhook]]
name = "hb"
url = "http://127.0.0.1:9/"
format = "hertzbeat"

[[webhook]]
name = "am"
url = "http://127.0.0.1:9093"
format = "alertmanager"
generator_url = "http://127.0.0.1/g?d=${device_id}"

[[webhook]]
name = "json"
url = "http://127.0.0.1:9/p/${device_id}?d=${dimensions}"
format = "template"
headers = { X-Device = "${device_id}", X-Dim = "${dimensions}" }
body = '{"device": "${device_id}", "dims": "${dimensions}", "text": "${content}", "alarm": ${alarm}}'

[[webhook]]
name = "form"
url = "http://127.0.0.1:9/"
format = "template"
content_type = "form"
body = 'device=${device_id}&dims=${dimensions}&text=${content}'

[[webhook]]
name = "xml"
url = "http://127.0.0.1:9/"
format = "template"
content_type = "xml"
body = '<?xml version="1.0"?><alarm device="${device_id}"><dims>${dimensions}</dims><text>${content}</text></alarm>'
"#;

fn event(dim: &str) -> Event {
    let mut e = Event::agent(
        EventType::Alarm,
        EventId::new(1_795_339_813_000, [3; 10]),
        1_795_339_813_000,
        "",
    );
    e.rule = Some(0);
    e.rule_name = "r".try_into().unwrap();
    e.state = AlertState::Alert;
    e.level = Level::Warn;
    e.prev_level = Level::Warn;
    e.metric = Some(Metric::DiskUsed);
    e.dim = DimValue::try_from(dim).unwrap();
    e.value = Some(91.5);
    e.threshold = Some(Condition {
        op: Op::Gt,
        value: 90.0,
    });
    e.times = 1;
    e
}

fn rendered(
    cfg: &Config,
    name: &str,
    ctx_of: &dyn Fn(&tocsin::config::Webhook) -> String,
) -> String {
    ctx_of(cfg.webhooks.iter().find(|w| w.name == name).unwrap())
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    &pairs
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

/// What XML 1.0 can carry of `s`: controls other than tab, CR and LF become U+FFFD (tab,
/// CR and LF travel as character references and come back unchanged).
fn xml_view(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn every_format_survives_hostile_values() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Parsed (and so proved) once: the config is the same for every case.
    let cfg = parse(CONFIG, "escaping.toml").unwrap();
    for case in 0..CASES {
        let device = rng.nasty(60);
        let dim = format!("/{}", rng.nasty(90)); // a mount point: never empty
        let labels = cfg.agent.labels.clone();
        let origin = Origin {
            device_id: device.clone(),
            hostname: "h".into(),
            interval_ms: 5000,
            labels: labels.clone(),
        };
        let e = event(&dim);
        let render_body = |wh: &tocsin::config::Webhook| {
            let ctx = Ctx {
                event: &e,
                origin: &origin,
                language: wh.payload.language,
            };
            let mut buf = vec![0u8; 64 * 1024];
            let n = render(&wh.payload, &ctx, &mut buf)
                .unwrap_or_else(|err| panic!("case {case}: {err}"));
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        let ctx_msg = || format!("case {case}: device {device:?}, dim {dim:?}");
        let dims_text = format!("mount={dim}");

        // cloudmonitor-json: JSON, and the nested JSON strings parse too.
        let b = rendered(&cfg, "cmj", &render_body);
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|err| panic!("{}: {err}: {b}", ctx_msg()));
        assert_eq!(v["userId"], device.as_str(), "{}", ctx_msg());
        let dims: serde_json::Value =
            serde_json::from_str(v["dimensions"].as_str().unwrap()).unwrap();
        assert_eq!(dims[0]["mount"], dim.as_str(), "{}", ctx_msg());

        // hertzbeat.
        let b = rendered(&cfg, "hb", &render_body);
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|err| panic!("{}: {err}: {b}", ctx_msg()));
        assert_eq!(
            (v["tag"]["device_id"].as_str(), v["tags"]["mount"].as_str()),
            (Some(device.as_str()), Some(dim.as_str()))
        );

        // alertmanager: labels and the generator URL read back.
        let b = rendered(&cfg, "am", &render_body);
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|err| panic!("{}: {err}: {b}", ctx_msg()));
        assert_eq!(
            (
                v[0]["labels"]["device_id"].as_str(),
                v[0]["labels"]["mount"].as_str()
            ),
            (Some(device.as_str()), Some(dim.as_str())),
            "{}",
            ctx_msg()
        );
        let g: hyper::Uri = v[0]["generatorURL"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            field(&form_pairs(g.query().unwrap()), "d"),
            device,
            "{}",
            ctx_msg()
        );

        // cloudmonitor-form round-trips.
        let b = rendered(&cfg, "cmf", &render_body);
        let pairs = form_pairs(&b);
        assert_eq!(field(&pairs, "userId"), device, "{}", ctx_msg());
        assert_eq!(
            field(&pairs, "dimensions"),
            format!("{{userId={device}, instanceId=h, mount={dim}}}")
        );

        // Template, JSON: every variable inside quotes, and ${alarm} bare.
        let b = rendered(&cfg, "json", &render_body);
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|err| panic!("{}: {err}: {b}", ctx_msg()));
        assert_eq!(
            (v["device"].as_str(), v["dims"].as_str()),
            (Some(device.as_str()), Some(dims_text.as_str()))
        );
        assert_eq!(v["alarm"]["device_id"], device.as_str());
        assert_eq!(v["alarm"]["dimensions"]["mount"], dim.as_str());
        assert_eq!(v["alarm"]["labels"]["site"], "s");

        // Template, form.
        let b = rendered(&cfg, "form", &render_body);
        let pairs = form_pairs(&b);
        assert_eq!(
            (field(&pairs, "device"), field(&pairs, "dims")),
            (device.as_str(), dims_text.as_str()),
            "{}",
            ctx_msg()
        );

        // Template, XML: parses, attribute and text read back.
        let b = rendered(&cfg, "xml", &render_body);
        let doc = roxmltree::Document::parse(&b)
            .unwrap_or_else(|err| panic!("{}: {err}: {b}", ctx_msg()));
        let root = doc.root_element();
        assert_eq!(
            root.attribute("device").map(str::to_string),
            Some(xml_view(&device)),
            "{}",
            ctx_msg()
        );
        let dims_node = root.children().find(|n| n.has_tag_name("dims")).unwrap();
        assert_eq!(
            dims_node.text().unwrap_or(""),
            xml_view(&dims_text),
            "{}",
            ctx_msg()
        );

        // Headers stay on one line; the URL target parses and decodes back.
        let wh = cfg.webhooks.iter().find(|w| w.name == "json").unwrap();
        let ctx = Ctx {
            event: &e,
            origin: &origin,
            language: wh.payload.language,
        };
        for (name, tpl) in &wh.endpoint.headers {
            let mut buf = [0u8; 1024];
            let mut w = FixedWriter::new(&mut buf);
            tpl.render(&mut w, &ctx, Escape::Header).unwrap();
            assert!(
                !w.as_str().chars().any(char::is_control),
                "header {name} is one line: {:?}",
                w.as_str()
            );
            assert!(
                hyper::header::HeaderValue::from_str(w.as_str()).is_ok(),
                "{}",
                ctx_msg()
            );
        }
        let mut buf = [0u8; 2048];
        let mut w = FixedWriter::new(&mut buf);
        wh.endpoint
            .target
            .render(&mut w, &ctx, Escape::Url)
            .unwrap();
        let uri: hyper::Uri = w
            .as_str()
            .parse()
            .unwrap_or_else(|err| panic!("{}: {err}: {}", ctx_msg(), w.as_str()));
        let query = form_pairs(uri.query().unwrap());
        assert_eq!(field(&query, "d"), dims_text, "{}", ctx_msg());
    }
}
