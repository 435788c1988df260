//! Golden tests: the exact bytes of each format for one fixed event, and the field lists
//! of the documents each format comes from (CloudMonitor's callback, HertzBeat's webhook).

use tocsin::config::{parse, Config};
use tocsin::event::{Event, EventId, EventType};
use tocsin::metric::{DimValue, Metric};
use tocsin::render::*;
use tocsin::rule::{AlertState, Condition, Level, Op};

const CONFIG: &str = r#"
[agent]
device_id = "gw-0042"
hostname = "edge-7"
interval = "5s"
labels = { site = "north-3" }

[[rule]]
name = "root-full"
metric = "disk.used_percent"
match = { mount = "/" }
critical = ">= 95"
warn = ">= 85"
times = 2

[[webhook]]
name = "cmj"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"

[[webhook]]
name = "cmjs"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"
signing = { scheme = "cloudmonitor", secret = "k3y" }

[[webhook]]
name = "cmf"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-form"
signing = { scheme = "cloudmonitor", secret = "k3y" }

[[webhook]]
name = "hb"
url = "http://127.0.0.1:9/"
format = "hertzbeat"

[[webhook]]
name = "tpl"
url = "http://127.0.0.1:9/"
format = "template"
body = '{"device": "${device_id}", "site": "${labels.site}", "text": "${content}", "at": "${time_iso}"}'

[[webhook]]
name = "zh"
url = "http://127.0.0.1:9/"
format = "template"
content_type = "text"
language = "zh"
body = '${content}'
"#;

fn config() -> Config {
    parse(CONFIG, "golden.toml").expect("the golden config is valid")
}

/// An escalation WARN → CRITICAL of `/` at 97.39 %, 2026-11-22T09:30:13Z.
fn event() -> Event {
    Event {
        id: EventId::new(1_795_339_813_000, [0x11; 10]),
        kind: EventType::Alarm,
        rule: Some(0),
        rule_name: "root-full".try_into().unwrap(),
        state: AlertState::Alert,
        level: Level::Critical,
        prev_level: Level::Warn,
        metric: Some(Metric::DiskUsed),
        dim: DimValue::try_from("/").unwrap(),
        dim_key: Some("mount"),
        value: Some(97.394),
        threshold: Some(Condition {
            op: Op::Ge,
            value: 95.0,
        }),
        aggregate: Default::default(),
        times: 4,
        rule_times: 2,
        timestamp_ms: 1_795_339_813_000,
        first_trigger_ms: 1_795_339_803_000,
        last_trigger_ms: 1_795_339_813_000,
        detail: Default::default(),
        replay_of: None,
    }
}

fn body(cfg: &Config, webhook: &str, e: &Event) -> String {
    let wh = cfg.webhooks.iter().find(|w| w.name == webhook).unwrap();
    let origin = cfg.agent.origin();
    let ctx = Ctx {
        event: e,
        origin: &origin,
        language: wh.payload.language,
    };
    let mut buf = [0u8; tocsin::limits::MAX_BODY_LEN];
    let n = render(&wh.payload, &ctx, &mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn cloudmonitor_json_golden() {
    let b = body(&config(), "cmj", &event());
    assert_eq!(
        b,
        r#"{"userId":"gw-0042","alertName":"root-full","timestamp":"1795339813","alertState":"ALERT","dimensions":"[{\"userId\":\"gw-0042\",\"instanceId\":\"edge-7\",\"mount\":\"/\"}]","expression":"[{\"expression\":\"$value>=95\",\"level\":2,\"times\":2}]","curValue":"97.39","metricName":"disk.used_percent","metricProject":"tocsin","instanceName":"edge-7","namespace":"tocsin","triggerLevel":"CRITICAL","preTriggerLevel":"WARN","ruleId":"root-full"}"#
    );
    // The fields of CloudMonitor's alarm callback (JSON and form documentation), the JSON-able ones, all strings, nothing else.
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut seeds = vec![
        "userId",
        "alertName",
        "timestamp",
        "alertState",
        "dimensions",
        "expression",
        "curValue",
        "metricName",
        "metricProject", // 001
        "instanceName",
        "namespace",
        "triggerLevel",
        "preTriggerLevel",
        "ruleId", // 003
    ];
    seeds.sort_unstable();
    assert_eq!(keys, seeds);
    assert!(v
        .as_object()
        .unwrap()
        .values()
        .all(serde_json::Value::is_string));
}

/// README's test vector for the `cloudmonitor-json` signature: S and the signature were
/// computed with Python's json (object_pairs_hook keeps the order), urllib.parse.quote_plus,
/// hmac and base64 from the golden body above, not with tocsin.
const JSON_SIGNATURE_S: &str = "userId=gw-0042&alertName=root-full&timestamp=1795339813&alertState=ALERT&dimensions=%5B%7B%22userId%22%3A%22gw-0042%22%2C%22instanceId%22%3A%22edge-7%22%2C%22mount%22%3A%22%2F%22%7D%5D&expression=%5B%7B%22expression%22%3A%22%24value%3E%3D95%22%2C%22level%22%3A2%2C%22times%22%3A2%7D%5D&curValue=97.39&metricName=disk.used_percent&metricProject=tocsin&instanceName=edge-7&namespace=tocsin&triggerLevel=CRITICAL&preTriggerLevel=WARN&ruleId=root-full";
const JSON_SIGNATURE: &str = "5Fu2/vSAMzmm2CEU6Q/WfGbMOIk9PzS6ZiQqMkUHPgE=";

#[test]
fn cloudmonitor_json_signature_is_readmes_vector() {
    let cfg = config();
    let unsigned = body(&cfg, "cmj", &event());
    let signed = body(&cfg, "cmjs", &event());
    // The same members, then `signature` last.
    assert_eq!(
        signed,
        format!(
            "{},\"signature\":\"{JSON_SIGNATURE}\"}}",
            unsigned.strip_suffix('}').unwrap()
        )
    );
    // README carries the vector: the secret, S and the signature.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for part in ["secret `k3y`", JSON_SIGNATURE_S, JSON_SIGNATURE] {
        assert!(readme.contains(part), "README lacks the vector's {part:?}");
    }
    // And the vector is HMAC-SHA256 of S (a second, Rust-side check of the Python figures,
    // through ring directly rather than tocsin's helpers).
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k3y");
    let tag = ring::hmac::sign(&key, JSON_SIGNATURE_S.as_bytes());
    assert_eq!(crate::common::base64(tag.as_ref()), JSON_SIGNATURE);
}

#[test]
fn cloudmonitor_form_golden_with_signature() {
    let b = body(&config(), "cmf", &event());
    let unsigned = "alertName=root-full&alertState=ALERT&curValue=97.39&dimensions=%7BuserId%3Dgw-0042%2C+instanceId%3Dedge-7%2C+mount%3D%2F%7D&expression=%24value%3E%3D95&instanceName=edge-7&metricName=disk.used_percent&metricProject=tocsin&namespace=tocsin&preTriggerLevel=WARN&ruleId=root-full&timestamp=1795339813&triggerLevel=CRITICAL&userId=gw-0042";
    // base64(HMAC-SHA256("k3y", unsigned)), percent-encoded, computed independently with
    // Python's hmac, base64 and urllib.parse.quote.
    assert_eq!(
        b,
        format!("{unsigned}&signature=2ebNPzQjzYdA5YDQk4qmzwRG0sPey%2B%2BU0Zgm680ov4g%3D")
    );
    // The parameter table of CloudMonitor's form callback, plus the signature of its sample request.
    let keys: Vec<&str> = b
        .split('&')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "alertName",
            "alertState",
            "curValue",
            "dimensions",
            "expression",
            "instanceName",
            "metricName",
            "metricProject",
            "namespace",
            "preTriggerLevel",
            "ruleId",
            "timestamp",
            "triggerLevel",
            "userId",
            "signature"
        ]
    );
}

#[test]
fn hertzbeat_golden() {
    let b = body(&config(), "hb", &event());
    assert_eq!(
        b,
        r#"{"id":4803839602528529,"target":"disk.used_percent","alertDefineId":1364154540501565,"priority":0,"content":"[CRITICAL] root-full on gw-0042: disk.used_percent{mount=/} = 97.39% >= 95 (4 times), was WARN","tag":{"device_id":"gw-0042","instance":"edge-7","metric":"disk.used_percent","mount":"/","site":"north-3"},"tags":{"device_id":"gw-0042","instance":"edge-7","metric":"disk.used_percent","mount":"/","site":"north-3"},"status":0,"times":4,"firstTriggerTime":1795339803000,"lastTriggerTime":1795339813000,"nextEvalInterval":5000,"gmtCreate":"2026-11-22T09:30:03","gmtUpdate":"2026-11-22T09:30:13"}"#
    );
    // id is the low 53 bits of the event id's last 8 bytes (0x11 each); alertDefineId is
    // FNV-1a 64 of "root-full" masked to 53 bits (both checked in Python).
    // Apache HertzBeat's webhook table (plus its example's `tag`), with its types.
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    for k in [
        "id",
        "alertDefineId",
        "priority",
        "status",
        "times",
        "firstTriggerTime",
        "lastTriggerTime",
        "nextEvalInterval",
    ] {
        assert!(v[k].is_i64(), "{k} is an integer");
    }
    for k in ["target", "content", "gmtCreate", "gmtUpdate"] {
        assert!(v[k].is_string(), "{k} is a string");
    }
    assert_eq!(v["tag"], v["tags"]);
    assert_eq!(v.as_object().unwrap().len(), 14);
}

#[test]
fn hertzbeat_maps_levels_and_recovery() {
    let cfg = config();
    for (level, priority) in [(Level::Critical, 0), (Level::Warn, 1), (Level::Info, 2)] {
        let mut e = event();
        e.level = level;
        let v: serde_json::Value = serde_json::from_str(&body(&cfg, "hb", &e)).unwrap();
        assert_eq!(v["priority"], priority);
        assert_eq!(v["status"], 0);
    }
    let mut e = event();
    e.kind = EventType::Recovery;
    e.state = AlertState::Ok;
    let v: serde_json::Value = serde_json::from_str(&body(&cfg, "hb", &e)).unwrap();
    assert_eq!(v["status"], 2, "recovered");
}

#[test]
fn template_golden_and_language() {
    let cfg = config();
    assert_eq!(
        body(&cfg, "tpl", &event()),
        r#"{"device": "gw-0042", "site": "north-3", "text": "[CRITICAL] root-full on gw-0042: disk.used_percent{mount=/} = 97.39% >= 95 (4 times), was WARN", "at": "2026-11-22T09:30:13Z"}"#
    );
    assert_eq!(body(&cfg, "zh", &event()), "【严重】root-full（gw-0042）：disk.used_percent{mount=/} = 97.39% >= 95，累计 4 次，此前为警告");
    let mut e = event();
    e.kind = EventType::Recovery;
    e.state = AlertState::Ok;
    e.value = Some(80.0);
    assert_eq!(
        body(&cfg, "zh", &e),
        "【恢复】root-full（gw-0042）：disk.used_percent{mount=/} = 80%，已从严重恢复"
    );
    let start = Event::agent(EventType::AgentStart, EventId::default(), 0, "");
    assert_eq!(
        body(&cfg, "zh", &start),
        "【提示】tocsin（gw-0042，edge-7）：代理已启动"
    );
}

#[test]
fn agent_events_in_the_fixed_formats() {
    let cfg = config();
    let e = Event::agent(
        EventType::Test,
        EventId::new(1_795_339_813_000, [0; 10]),
        1_795_339_813_000,
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&body(&cfg, "cmj", &e)).unwrap();
    assert_eq!(
        (
            v["alertName"].as_str(),
            v["metricName"].as_str(),
            v["alertState"].as_str()
        ),
        (Some("tocsin.test"), Some("test"), Some("OK"))
    );
    assert_eq!(
        (v["curValue"].as_str(), v["expression"].as_str()),
        (Some(""), Some("[]"))
    );
}
