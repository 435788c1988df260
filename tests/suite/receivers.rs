//! Format fixes read back by independent parsers, as their receivers read them: the
//! `cloudmonitor-json` signature recomputed by Python from a captured request, HertzBeat ids
//! parsed by Node's `JSON.parse`, the shipped receiver templates decoded by each receiver's
//! documented rules, `${rule_id}` of agent events.

use crate::common::*;
use std::collections::HashSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;
use tocsin::config::{parse, Config};
use tocsin::event::{Event, EventId, EventType};
use tocsin::metric::{DimValue, Metric};
use tocsin::render::{render, Ctx};
use tocsin::rule::{AlertState, Condition, Level, Op};

const WAIT: Duration = Duration::from_secs(15);

/// A hostile device id: Slack's link and mention syntax, entities, quotes, a backslash,
/// non-ASCII, form and JSON metacharacters.
const DEVICE: &str = r#"gw <!channel> & <@U024BE7LH> &amp; "q" \ é=+%/"#;

/// Runs `program args` with `stdin`; `None` (after skip()) when the program is missing.
fn run_with_stdin(program: &str, args: &[&str], stdin: &[u8]) -> Option<String> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            skip(&format!(
                "{program} could not run ({e}); tests/run.sh installs it"
            ));
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The signature rule, written in Python from its definition (json keeps the members'
/// order with object_pairs_hook; quote_plus with no extra safe characters keeps letters,
/// digits and `-._~`, writes a space as `+` and every other byte as upper-case `%XX`).
const PY_SIGNATURE: &str = r#"
import base64, hashlib, hmac, json, sys, urllib.parse
pairs = json.loads(sys.stdin.read(), object_pairs_hook=list)
assert pairs[-1][0] == "signature", [k for k, _ in pairs]
assert all(isinstance(v, str) for _, v in pairs), pairs
enc = lambda s: urllib.parse.quote_plus(s, safe="")
s = "&".join(enc(k) + "=" + enc(v) for k, v in pairs[:-1])
sig = base64.b64encode(hmac.new(sys.argv[1].encode(), s.encode(), hashlib.sha256).digest()).decode()
print("ok" if sig == pairs[-1][1] else "MISMATCH computed %s, sent %s" % (sig, pairs[-1][1]))
"#;

#[test]
fn cloudmonitor_json_signature_recomputed_by_python_from_a_real_request() {
    let dir = TempDir::new("cmj-sig");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rx = Receiver::start();
    let cfg = format!(
        r#"[agent]
device_id = {device:?}
hostname = "edge 7"
interval = "100ms"
root = "{root}"
state_dir = "{root}/.state"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["cmj"]

[[webhook]]
name = "cmj"
url = "{url}"
format = "cloudmonitor-json"
signing = {{ scheme = "cloudmonitor", secret = "s3cr3t key" }}
events = ["alarm"]
"#,
        device = DEVICE,
        root = root.display(),
        url = rx.url("/cms"),
    );
    let path = dir.path().join("tocsin.toml");
    std::fs::write(&path, cfg).unwrap();
    let _agent = Agent::start(&path, dir.path());
    let got = rx.wait_for(WAIT, "the signed alarm", |r| !r.is_empty());
    let req = &got[0];
    let v = req.json();
    assert_eq!(v["userId"], DEVICE);
    assert_eq!(v["alertName"], "mem-high");
    let Some(out) = run_with_stdin("python3", &["-c", PY_SIGNATURE, "s3cr3t key"], &req.body)
    else {
        return;
    };
    assert_eq!(
        out.trim(),
        "ok",
        "body: {}",
        String::from_utf8_lossy(&req.body)
    );
    // The check can fail: a different key does not verify.
    let out = run_with_stdin("python3", &["-c", PY_SIGNATURE, "other"], &req.body).unwrap();
    assert!(out.starts_with("MISMATCH"), "{out}");
}

fn golden_config(extra: &str) -> Config {
    let src = format!(
        "[agent]\ndevice_id = {DEVICE:?}\nhostname = \"edge-7\"\ninterval = \"5s\"\n\n\
         [[rule]]\nname = \"root-full\"\nmetric = \"disk.used_percent\"\ncritical = \">= 95\"\n\n{extra}"
    );
    parse(&src, "receivers.toml").unwrap_or_else(|e| panic!("{e:?}\n{src}"))
}

fn alarm(dim: &str, rule: &str, id: EventId) -> Event {
    Event {
        id,
        kind: EventType::Alarm,
        rule: Some(0),
        rule_name: rule.try_into().unwrap(),
        state: AlertState::Alert,
        level: Level::Critical,
        prev_level: Level::Warn,
        metric: Some(Metric::DiskUsed),
        dim: DimValue::try_from(dim).unwrap(),
        dim_key: Some("mount"),
        value: Some(97.394),
        threshold: Some(Condition {
            op: Op::Ge,
            value: 95.0,
        }),
        times: 4,
        rule_times: 2,
        timestamp_ms: 1_795_339_813_000,
        first_trigger_ms: 1_795_339_803_000,
        last_trigger_ms: 1_795_339_813_000,
        detail: Default::default(),
        replay_of: None,
        aggregate: Default::default(),
    }
}

fn body_of(cfg: &Config, webhook: &str, e: &Event) -> String {
    let wh = cfg.webhooks.iter().find(|w| w.name == webhook).unwrap();
    let origin = cfg.agent.origin();
    let ctx = Ctx {
        event: e,
        origin: &origin,
        language: wh.payload.language,
    };
    let mut buf = vec![0u8; wh.payload.body_limit()];
    let n = render(&wh.payload, &ctx, &mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Node's reading of HertzBeat bodies, one per line: every `id` and `alertDefineId` is a
/// safe integer, exactly the digits sent, and no `id` repeats.
const JS_IDS: &str = r#"
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(l => l.length);
const ids = new Set();
for (const line of lines) {
  const v = JSON.parse(line);
  for (const k of ["id", "alertDefineId"]) {
    if (!Number.isSafeInteger(v[k]) || v[k] < 1) throw new Error(k + " not a safe positive integer: " + line);
    const sent = new RegExp('"' + k + '":(\\d+)').exec(line)[1];
    if (String(v[k]) !== sent) throw new Error(k + " parsed as " + v[k] + ", sent " + sent);
  }
  ids.add(v.id);
}
console.log(lines.length + " " + ids.size);
"#;

#[test]
fn hertzbeat_ids_are_exact_in_javascript_and_unique() {
    let cfg = golden_config(
        "[[webhook]]\nname = \"hb\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"hertzbeat\"\n",
    );
    const N: usize = 10_000;
    let mut lines = String::new();
    let mut ids = HashSet::new();
    for i in 0..N {
        // Real ids, from the kernel's random source as the agent makes them; a rule name per
        // render so alertDefineId is tried over many hashes too.
        let e = alarm(
            "/",
            &format!("rule-{i}"),
            EventId::generate(1_795_339_813_000 + i as u64),
        );
        let b = body_of(&cfg, "hb", &e);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let id = v["id"].as_u64().unwrap();
        assert!((1..1 << 53).contains(&id), "{id}");
        assert!((1..1 << 53).contains(&v["alertDefineId"].as_u64().unwrap()));
        ids.insert(id);
        lines.push_str(&b);
        lines.push('\n');
    }
    assert_eq!(ids.len(), N, "an id repeated");
    let Some(out) = run_with_stdin("node", &["-e", JS_IDS], lines.as_bytes()) else {
        return;
    };
    assert_eq!(out.trim(), format!("{N} {N}"));
    // The check can fail: a 63-bit id (what this format sent before) is not safe in Node.
    let old = r#"{"id":1229782938247303441,"alertDefineId":3279984683266222653}"#;
    let child = Command::new("node")
        .args(["-e", JS_IDS])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = child;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(old.as_bytes())
        .unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "Node accepted a 63-bit id"
    );
}

/// FNV-1a 64 of `name` masked to 53 bits (0 → 1), written here from its definition.
fn fnv53(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    match h & ((1 << 53) - 1) {
        0 => 1,
        v => v,
    }
}

#[test]
fn hertzbeat_alert_define_id_is_the_same_after_a_restart() {
    let dir = TempDir::new("hb-restart");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rx = Receiver::start();
    let cfg = format!(
        "[agent]\ndevice_id = \"gw-1\"\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{root}\"\nstate_dir = \"{root}/.state\"\n\n\
         [[rule]]\nname = \"mem-high\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"hb\"]\n\n\
         [[webhook]]\nname = \"hb\"\nurl = \"{url}\"\nformat = \"hertzbeat\"\nevents = [\"alarm\", \"recovery\"]\n",
        root = root.display(),
        url = rx.url("/hb"),
    );
    let path = dir.path().join("tocsin.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut agent = Agent::start(&path, dir.path());
    let first = rx.wait_for(WAIT, "the alarm", |r| !r.is_empty())[0].json();
    assert_eq!(first["status"], 0);
    assert!(agent.stop());
    // A new process: the recovery it sends carries the rule's alertDefineId again.
    put(&root, "proc/meminfo", &meminfo(40));
    let _agent = Agent::start(&path, dir.path());
    let got = rx.wait_for(WAIT, "the recovery after the restart", |r| {
        r.iter().any(|q| q.json()["status"] == 2)
    });
    let recovery = got
        .iter()
        .map(|q| q.json())
        .find(|v| v["status"] == 2)
        .unwrap();
    assert_eq!(recovery["alertDefineId"], first["alertDefineId"]);
    assert_eq!(first["alertDefineId"].as_u64(), Some(fnv53("mem-high")));
    assert_ne!(recovery["id"], first["id"], "each event has its own id");
}

/// The shipped receiver templates, each made parseable here (DingTalk's secret given inline).
fn shipped(name: &str) -> String {
    let path = format!(
        "{}/config/templates/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .replace("secret_env = \"DINGTALK_SECRET\"", "secret = \"SECtest\"")
        // The build without TLS refuses https URLs; the bodies do not depend on the scheme.
        .replace("https://", "http://")
}

/// Slack's documented reading of message text ("Formatting text for app surfaces"): `<…>`
/// is a link, a mention (`<@U…>`, `<!channel>`) or a date; `&amp;`, `&lt;` and `&gt;` are
/// the three escapes. Returns the text a user sees, or why it is not plain text.
fn slack_decode(text: &str) -> Result<String, String> {
    if let Some(i) = text.find(['<', '>']) {
        return Err(format!(
            "a bare `<` or `>` (a control sequence) at byte {i}: {text}"
        ));
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (ch, len) = if tail.starts_with("&amp;") {
            ('&', 5)
        } else if tail.starts_with("&lt;") {
            ('<', 4)
        } else if tail.starts_with("&gt;") {
            ('>', 4)
        } else {
            return Err(format!("a bare `&` Slack would read as an entity: {text}"));
        };
        out.push(ch);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn shipped_templates_meet_their_receivers_rules() {
    let dim = "/mnt/<!here>&amp;<@U1|x> \"q\"\\ é";
    let names = ["slack", "wecom", "dingtalk", "feishu", "ntfy"];
    let mut all = String::from(
        "[[webhook]]\nname = \"plain\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\ncontent_type = \"text\"\nbody = '${content}'\n\n\
         [[webhook]]\nname = \"plain_zh\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\ncontent_type = \"text\"\nlanguage = \"zh\"\nbody = '${content}'\n\n",
    );
    for n in names {
        all.push_str(&shipped(n));
        all.push('\n');
    }
    let cfg = golden_config(&all);
    let e = alarm(dim, "root-full", EventId::new(1_795_339_813_000, [3; 10]));
    let content = body_of(&cfg, "plain", &e);
    let content_zh = body_of(&cfg, "plain_zh", &e);
    assert!(
        content.contains(dim) && content.contains(DEVICE),
        "{content}"
    );

    // Slack: JSON, and `text` read by Slack's rules is the content, with no link or mention.
    let v: serde_json::Value = serde_json::from_str(&body_of(&cfg, "slack", &e)).unwrap();
    let text = v["text"].as_str().unwrap();
    assert_eq!(slack_decode(text).unwrap(), content);
    // The decoder can fail: the raw content would be read as mentions.
    assert!(slack_decode(&content).is_err());

    // WeCom group robot: msgtype text, text.content UTF-8 of at most 2048 bytes, sent as
    // it is (WeCom documents no escape for its `<@userid>` mentions).
    let v: serde_json::Value = serde_json::from_str(&body_of(&cfg, "wecom", &e)).unwrap();
    assert_eq!(v["msgtype"], "text");
    assert_eq!(v["text"]["content"], content_zh.as_str());
    assert!(content_zh.len() <= 2048);

    // DingTalk group robot: msgtype text, text.content as it is.
    let v: serde_json::Value = serde_json::from_str(&body_of(&cfg, "dingtalk", &e)).unwrap();
    assert_eq!(v["msgtype"], "text");
    assert_eq!(v["text"]["content"], content_zh.as_str());

    // Feishu custom bot: msg_type text, content.text as it is (Feishu documents no escape
    // for its `<at user_id>` tags); a request body at most 20 KB.
    let b = body_of(&cfg, "feishu", &e);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["msg_type"], "text");
    assert_eq!(v["content"]["text"], content_zh.as_str());
    assert!(b.len() <= 20 * 1024);

    // ntfy: the body is the message, as it is (at most 4096 bytes, else ntfy makes it an
    // attachment).
    let b = body_of(&cfg, "ntfy", &e);
    assert_eq!(b, content);
    assert!(b.len() <= 4096);

    // WeCom's 2048 bytes hold the longest content possible with this config, not only
    // this one: the load-time proof's figure for the content alone, as text.
    let origin = cfg.agent.origin();
    let wh = cfg.webhooks.iter().find(|w| w.name == "plain_zh").unwrap();
    let longest = tocsin::render::check::prove(
        &origin,
        wh.payload.language,
        "root-full",
        usize::MAX,
        None,
        &|ctx, buf| tocsin::render::Payload::render(&wh.payload, ctx, buf).ok(),
    )
    .unwrap();
    println!("the longest content (zh) with this device id: {longest} bytes");
    assert!(longest <= 2048, "{longest}");
}

#[test]
fn the_proof_counts_the_slack_filter_growth() {
    // Twelve contents fit 4096 bytes as they are; the same through Slack's escaping, whose
    // `&` grows by 4 bytes, do not.
    let tpl = |filter: &str| {
        let one = format!("${{content{filter}}}");
        format!(
            "[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\ncontent_type = \"text\"\nbody = '{}'\n",
            one.repeat(12)
        )
    };
    let src = |extra: &str| {
        format!("[agent]\ndevice_id = \"gw\"\nhostname = \"h\"\n\n[[rule]]\nname = \"r\"\nmetric = \"disk.used_percent\"\ncritical = \">= 95\"\nnotify = [\"w\"]\n\n{extra}")
    };
    parse(&src(&tpl("")), "plain.toml").expect("twelve plain contents fit");
    let err = parse(&src(&tpl("|slack")), "slack.toml").unwrap_err();
    let msg = format!("{err:?}");
    assert!(
        msg.contains("can reach") && msg.contains("the limit is 4096"),
        "{msg}"
    );
}

#[test]
fn rule_id_of_an_agent_event_is_tocsin_dot_its_type() {
    let cfg = golden_config(
        "[[webhook]]\nname = \"t\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\ncontent_type = \"text\"\nbody = '${rule_id}|${alert_name}'\n\n\
         [[webhook]]\nname = \"j\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"template\"\nbody = '${alarm}'\n\n\
         [[webhook]]\nname = \"am\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"alertmanager\"\ngenerator_url = \"http://192.168.1.1/cgi-bin/luci?rule=${rule_id}\"\n",
    );
    for kind in [EventType::Test, EventType::Reboot, EventType::ConfigReload] {
        let e = Event::agent(
            kind,
            EventId::new(1_795_339_813_000, [1; 10]),
            1_795_339_813_000,
            "",
        );
        let want = format!("tocsin.{}", kind.as_str());
        assert_eq!(body_of(&cfg, "t", &e), format!("{want}|{want}"));
        let v: serde_json::Value = serde_json::from_str(&body_of(&cfg, "j", &e)).unwrap();
        assert_eq!(v["rule_id"], want.as_str());
        let v: serde_json::Value = serde_json::from_str(&body_of(&cfg, "am", &e)).unwrap();
        assert_eq!(
            v[0]["generatorURL"],
            format!("http://192.168.1.1/cgi-bin/luci?rule={want}").as_str()
        );
    }
    // A rule event keeps its rule's name.
    let e = alarm("/", "root-full", EventId::new(1_795_339_813_000, [1; 10]));
    assert_eq!(body_of(&cfg, "t", &e), "root-full|root-full");
}

/// Unix milliseconds of a `java.time.Instant.parse` string (ISO-8601, `Z`, 0–9 fraction
/// digits), or why Java would refuse it.
fn java_instant_ms(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let t = s.get(r).ok_or("too short")?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            Ok(t.parse().unwrap())
        } else {
            Err(format!("not digits: {t}"))
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(format!("not ISO-8601: {s}"));
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let rest = &s[19..];
    let frac = match rest.strip_suffix('Z').ok_or("no Z")? {
        "" => 0,
        f => {
            let f = f.strip_prefix('.').ok_or("bad fraction")?;
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("bad fraction {f}"));
            }
            format!("{f:0<3}")[..3].parse::<i64>().unwrap()
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return Err(format!("out of range: {s}"));
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + frac)
}

/// What HertzBeat's PrometheusExternAlertService makes of one alert of a request to
/// /api/v2/alerts, checked against its DTO (PrometheusExternAlert): `status` as it decides
/// it (endsAt before its now → resolved), and the alert name, severity and content.
fn hertzbeat_reads(alert: &serde_json::Value, now_ms: i64) -> (String, String, String, String) {
    let o = alert.as_object().expect("each alert is an object");
    for k in o.keys() {
        assert!(
            [
                "labels",
                "annotations",
                "status",
                "startsAt",
                "endsAt",
                "generatorURL"
            ]
            .contains(&k.as_str()),
            "member `{k}` is not in HertzBeat's PrometheusExternAlert"
        );
    }
    for map in ["labels", "annotations"] {
        let m = o[map]
            .as_object()
            .unwrap_or_else(|| panic!("{map} is a Map<String, String>"));
        assert!(
            m.values().all(serde_json::Value::is_string),
            "{map}: every value a string: {m:?}"
        );
    }
    if let Some(g) = o.get("generatorURL") {
        assert!(g.is_string());
    }
    let starts = java_instant_ms(o["startsAt"].as_str().expect("startsAt is a string")).unwrap();
    let ends = java_instant_ms(o["endsAt"].as_str().expect("endsAt is a string")).unwrap();
    assert!(starts <= ends);
    let status = if ends < now_ms { "resolved" } else { "firing" };
    let labels = &o["labels"];
    let ann = &o["annotations"];
    // HertzBeat's content: annotations.description, else summary.
    let content = ann["description"]
        .as_str()
        .or(ann["summary"].as_str())
        .unwrap_or("");
    (
        status.to_string(),
        labels["alertname"].as_str().unwrap_or("").to_string(),
        labels["severity"].as_str().unwrap_or("").to_string(),
        content.to_string(),
    )
}

#[test]
fn the_shipped_hertzbeat_webhook_meets_hertzbeats_prometheus_endpoint() {
    // The reading of instants is right (checked against Python's datetime) and strict.
    assert_eq!(
        java_instant_ms("2026-11-22T09:23:58.966Z"),
        Ok(1_795_339_438_966)
    );
    assert_eq!(
        java_instant_ms("2026-11-22T09:23:58Z"),
        Ok(1_795_339_438_000)
    );
    assert!(java_instant_ms("2026-11-22 09:23:58Z").is_err());
    assert!(java_instant_ms("1795339438966").is_err());
    let dir = TempDir::new("hertzbeat-in");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let token = dir.path().join("hertzbeat.token");
    std::fs::write(&token, "eyJhbGciOiJIUzUxMiJ9.tok\n").unwrap();
    let rx = Receiver::start();
    let webhook = shipped("hertzbeat")
        .replace("http://hertzbeat.noc.example:1157", &rx.url(""))
        .replace("/etc/tocsin/hertzbeat.token", &token.display().to_string());
    assert!(webhook.contains(&rx.url("")));
    let cfg = format!(
        "[agent]\ndevice_id = \"gw-1\"\nhostname = \"edge\"\ninterval = \"100ms\"\nroot = \"{root}\"\nstate_dir = \"{root}/.state\"\nheartbeat = \"1s\"\nlabels = {{ site = \"north-3\" }}\n\n\
         [[rule]]\nname = \"mem-high\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"hertzbeat\"]\n\n{webhook}",
        root = root.display(),
    );
    let path = dir.path().join("tocsin.toml");
    std::fs::write(&path, cfg).unwrap();
    let agent = Agent::start(&path, dir.path());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let firing = rx.wait_for(WAIT, "the firing alert", |r| !r.is_empty());
    put(&root, "proc/meminfo", &meminfo(40));
    let got = rx.wait_for(WAIT, "the resolved alert", |r| {
        r.iter().any(|q| {
            q.json()
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| hertzbeat_reads(a, now()).0 == "resolved")
        })
    });
    assert!(!firing.is_empty());
    let mut seen = Vec::new();
    for q in &got {
        assert_eq!(
            (q.method.as_str(), q.target.as_str()),
            ("POST", "/api/v2/alerts")
        );
        assert_eq!(
            q.header("authorization"),
            Some("Bearer eyJhbGciOiJIUzUxMiJ9.tok")
        );
        assert!(q
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let v = q.json();
        let alerts = v.as_array().expect("a List<PrometheusExternAlert>");
        for a in alerts {
            seen.push(hertzbeat_reads(a, now()));
        }
    }
    // Only the rule's alert: no heartbeat or agent-event alert, which HertzBeat would
    // hold as firing for ever.
    assert!(
        seen.iter().all(|(_, name, _, _)| name == "mem-high"),
        "{seen:?}"
    );
    let (status, _, severity, content) = &seen[0];
    assert_eq!((status.as_str(), severity.as_str()), ("firing", "critical"));
    assert!(
        content.starts_with("[CRITICAL] mem-high on gw-1"),
        "{content}"
    );
    assert!(seen.iter().any(|(s, ..)| s == "resolved"));
    // HertzBeat's severities are emergency, critical, warning and info.
    assert!(seen.iter().all(
        |(_, _, sev, _)| ["critical", "warning", "info", "emergency"].contains(&sev.as_str())
    ));
    drop(agent);
}
