//! Webhooks as the seeds describe them, end to end: the real binary, real receivers on
//! 127.0.0.1, one per webhook. A memory rule fires CRITICAL and recovers; a second rule
//! fires WARN.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

struct Setup {
    _dir: TempDir,
    root: std::path::PathBuf,
    agent: Agent,
    get: Receiver,
    form: Receiver,
    xml: Receiver,
    bearer: Receiver,
    basic: Receiver,
    off: Receiver,
    recov: Receiver,
    crit: Receiver,
}

fn setup() -> Setup {
    let dir = TempDir::new("webhooks");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let token = dir.path().join("bearer.token");
    std::fs::write(&token, "tok-3nS1tive\n").unwrap();
    let password = dir.path().join("basic.password");
    std::fs::write(&password, "opensesame").unwrap();
    let (get, form, xml, bearer, basic, off, recov, crit) = (
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
    );
    let cfg = format!(
        r#"[agent]
device_id = "gw <42> & \"co\""
hostname = "edge"
interval = "100ms"
root = "{root}"
state_dir = "{root}/.state"
labels = {{ site = "north 3" }}

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["get", "form", "xml", "bearer", "basic", "off", "recov", "crit"]

[[rule]]
name = "mem-warn"
metric = "mem.used_percent"
warn = "> 85"
notify = ["crit"]

[[webhook]]
name = "get"
url = "{get}?static=1"
format = "template"
query = {{ dev = "${{device_id}}", level = "${{level}}", site = "${{labels.site}}" }}
events = ["alarm", "recovery"]

[[webhook]]
name = "form"
url = "{form}"
format = "cloudmonitor-form"
signing = {{ scheme = "cloudmonitor", secret = "k3y" }}
events = ["alarm", "recovery"]

[[webhook]]
name = "xml"
url = "{xml}"
format = "template"
content_type = "xml"
language = "zh"
method = "PUT"
body = '''<?xml version="1.0" encoding="utf-8"?><alarm device="${{device_id}}" state="${{state}}"><text>${{content}}</text></alarm>'''
events = ["alarm", "recovery"]

[[webhook]]
name = "bearer"
url = "{bearer}"
format = "cloudmonitor-json"
auth = {{ type = "bearer", token_file = "{token}" }}
events = ["alarm", "recovery"]

[[webhook]]
name = "basic"
url = "{basic}"
format = "hertzbeat"
auth = {{ type = "basic", username = "aladdin", password_file = "{password}" }}
events = ["alarm", "recovery"]

[[webhook]]
name = "off"
url = "{off}"
format = "cloudmonitor-json"
enabled = false

[[webhook]]
name = "recov"
url = "{recov}"
format = "cloudmonitor-json"
events = ["recovery"]

[[webhook]]
name = "crit"
url = "{crit}"
format = "cloudmonitor-json"
min_level = "critical"
events = ["alarm"]
"#,
        root = root.display(),
        get = get.url("/notify"),
        form = form.url("/cms"),
        xml = xml.url("/x"),
        bearer = bearer.url("/b"),
        basic = basic.url("/hb"),
        off = off.url("/off"),
        recov = recov.url("/r"),
        crit = crit.url("/c"),
        token = token.display(),
        password = password.display(),
    );
    let path = dir.path().join("tocsin.toml");
    std::fs::write(&path, cfg).unwrap();
    let agent = Agent::start(&path, dir.path());
    Setup {
        root,
        agent,
        get,
        form,
        xml,
        bearer,
        basic,
        off,
        recov,
        crit,
        _dir: dir,
    }
}

fn query(target: &str) -> Vec<(String, String)> {
    form_pairs(target.split_once('?').map_or("", |(_, q)| q))
}

#[test]
fn the_seed_webhooks_end_to_end() {
    let s = setup();
    for (name, r) in [
        ("get", &s.get),
        ("form", &s.form),
        ("xml", &s.xml),
        ("bearer", &s.bearer),
        ("basic", &s.basic),
        ("crit", &s.crit),
    ] {
        r.wait_for(WAIT, &format!("the alarm at {name}"), |r| !r.is_empty());
    }

    // The generic HTTP-callback settings: GET with parameters, variables percent-encoded; no body.
    let g = &s.get.received()[0];
    assert_eq!(g.method, "GET");
    assert!(g.target.starts_with("/notify?static=1&"), "{}", g.target);
    let q = query(&g.target);
    assert!(
        q.contains(&("dev".into(), "gw <42> & \"co\"".into())),
        "{q:?}"
    );
    assert!(q.contains(&("level".into(), "CRITICAL".into())), "{q:?}");
    assert!(q.contains(&("site".into(), "north 3".into())), "{q:?}");
    assert!(g.body.is_empty() && g.header("content-type").is_none());

    // CloudMonitor's form callback: form-urlencoded, signed over the body before the signature.
    let f = &s.form.received()[0];
    assert_eq!(
        f.header("content-type"),
        Some("application/x-www-form-urlencoded; charset=UTF-8")
    );
    let body = String::from_utf8(f.body.clone()).unwrap();
    let (unsigned, sig) = body.split_once("&signature=").expect("signed");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k3y");
    let tag = ring::hmac::sign(&key, unsigned.as_bytes());
    let want = form_decode(sig);
    let got = base64(tag.as_ref());
    assert_eq!(
        got, want,
        "signature = base64(HMAC-SHA256(secret, body before it))"
    );
    let fields = query(&format!("?{unsigned}"));
    assert!(fields.contains(&("userId".into(), "gw <42> & \"co\"".into())));
    assert!(fields.contains(&("alertState".into(), "ALERT".into())));

    // The XML row of the generic HTTP-callback settings, with the message in Chinese (the
    // webhook-management screen's language).
    let x = &s.xml.received()[0];
    assert_eq!(
        (x.method.as_str(), x.header("content-type")),
        ("PUT", Some("text/xml; charset=utf-8"))
    );
    let text = String::from_utf8(x.body.clone()).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(
        doc.root_element().attribute("device"),
        Some("gw <42> & \"co\"")
    );
    let content = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("text"))
        .unwrap()
        .text()
        .unwrap()
        .to_string();
    assert!(
        content.starts_with("【严重】mem-high（gw <42> & \"co\"）：mem.used_percent = 97% > 95"),
        "{content}"
    );

    // Auth (the generic HTTP-callback settings and the webhook-management screen): bearer from a file, basic from a file (RFC 7617's example).
    assert_eq!(
        s.bearer.received()[0].header("authorization"),
        Some("Bearer tok-3nS1tive")
    );
    let hb = &s.basic.received()[0];
    assert_eq!(
        hb.header("authorization"),
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l")
    );
    let j = hb.json();
    assert_eq!(
        (
            j["priority"].as_i64(),
            j["status"].as_i64(),
            j["target"].as_str()
        ),
        (Some(0), Some(0), Some("mem.used_percent"))
    );
    assert_eq!(j["tags"]["site"], "north 3");

    // min_level = critical: the WARN rule's alarm is filtered, the CRITICAL one arrives.
    std::thread::sleep(Duration::from_millis(500));
    let c = s.crit.received();
    assert_eq!(
        c.len(),
        1,
        "only the critical alarm: {:?}",
        c.iter()
            .map(|r| r.json()["alertName"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(c[0].json()["alertName"], "mem-high");

    // Recovery: the `recovery`-only webhook gets exactly that; the disabled one nothing.
    assert!(
        s.recov.received().is_empty(),
        "no alarm for a recovery-only webhook"
    );
    put(&s.root, "proc/meminfo", &meminfo(40));
    let r = s.recov.wait_for(WAIT, "the recovery", |r| !r.is_empty());
    assert_eq!(r[0].json()["alertState"], "OK");
    s.xml
        .wait_for(WAIT, "the recovery in Chinese", |r| r.len() >= 2);
    let text = String::from_utf8(s.xml.received()[1].body.clone()).unwrap();
    assert!(text.contains("【恢复】mem-high"), "{text}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.off.received().is_empty(),
        "a disabled webhook stays silent"
    );
    assert_eq!(s.off.connections(), 0);

    let log = s.agent.log();
    for secret in ["tok-3nS1tive", "opensesame", "k3y"] {
        assert!(!log.contains(secret), "secrets never reach the log: {log}");
    }
}

#[test]
fn send_test_on_a_get_template_and_render_redacts() {
    let dir = TempDir::new("sendtest-get");
    let rcv = Receiver::start();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\nroot = \"{}\"\nstate_dir = \"{}/.state\"\n\n[[webhook]]\nname = \"w\"\nurl = \"{}\"\nformat = \"template\"\nquery = {{ e = \"${{event_type}}\" }}\nauth = {{ type = \"bearer\", token = \"s3cr3t\" }}\nenabled = false\n",
            dir.path().display(),
            dir.path().display(),
            rcv.url("/ping")
        ),
    )
    .unwrap();
    // "Send test" works on a disabled webhook of a config that is not installed.
    let out = Command::new(bin())
        .args(["test", "w", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = rcv.received();
    assert_eq!(
        (r[0].method.as_str(), r[0].target.as_str()),
        ("GET", "/ping?e=test")
    );

    let out = Command::new(bin())
        .args(["render", "w", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("GET /ping?e=test HTTP/1.1")
            && text.contains("Authorization: Bearer <redacted>"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"));
}

#[test]
fn a_failed_delivery_is_announced_to_the_other_webhooks_only() {
    let dir = TempDir::new("fallback");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let primary = Receiver::start();
    primary.script(std::iter::repeat_n(Reply::Status(503, ""), 20));
    let fallback = Receiver::start();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "100ms"
root = "{root}"
state_dir = "{root}/.state"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["primary"]

[[webhook]]
name = "primary"
url = "{primary}"
format = "cloudmonitor-json"
retries = 1
retry_interval = "100ms"

[[webhook]]
name = "fallback"
url = "{fallback}"
format = "template"
body = '{{"type": "${{event_type}}", "text": "${{content}}"}}'
events = ["delivery_failed"]
"#,
            root = root.display(),
            primary = primary.url("/p"),
            fallback = fallback.url("/f"),
        ),
    )
    .unwrap();
    let _agent = Agent::start(&cfg, dir.path());
    let r = fallback.wait_for(WAIT, "the delivery_failed event", |r| !r.is_empty());
    let j = r[0].json();
    assert_eq!(j["type"], "delivery_failed");
    let text = j["text"].as_str().unwrap();
    let first = &primary.received()[0];
    let id = first.header("x-tocsin-event-id").unwrap();
    // agent_start fails first (its default events include it), then the alarm; either names
    // the failing webhook, the event and the last error.
    assert!(
        text.contains("primary: ") && text.contains("HTTP 503"),
        "{text}"
    );
    assert!(
        fallback
            .received()
            .iter()
            .any(|x| x.json()["text"].as_str().unwrap().contains(id)),
        "the failed event's id is named"
    );
    std::thread::sleep(Duration::from_millis(500));
    // The failing webhook is never sent its own failure notices.
    assert!(primary
        .received()
        .iter()
        .all(|x| x.header("x-tocsin-event-type") != Some("delivery_failed")));
}

#[test]
fn heartbeat_events_go_to_the_webhooks_that_ask_for_them() {
    let dir = TempDir::new("heartbeat");
    let hb = Receiver::start();
    let other = Receiver::start();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ndevice_id = \"gw\"\nhostname = \"h\"\nroot = \"{0}\"\nstate_dir = \"{0}/state\"\nheartbeat = \"200ms\"\n\n[[webhook]]\nname = \"hb\"\nurl = \"{1}\"\nformat = \"cloudmonitor-json\"\nevents = [\"heartbeat\"]\n\n[[webhook]]\nname = \"other\"\nurl = \"{2}\"\nformat = \"cloudmonitor-json\"\n",
            dir.path().display(),
            hb.url("/hb"),
            other.url("/o")
        ),
    )
    .unwrap();
    let _agent = Agent::start(&cfg, dir.path());
    let r = hb.wait_for(WAIT, "three heartbeats", |r| r.len() >= 3);
    assert!(r
        .iter()
        .all(|x| x.header("x-tocsin-event-type") == Some("heartbeat")));
    assert_eq!(r[0].json()["alertName"], "tocsin.heartbeat");
    // The default `events` leave heartbeat out.
    assert!(other
        .received()
        .iter()
        .all(|x| x.header("x-tocsin-event-type") != Some("heartbeat")));
}
