//! An `alertmanager` webhook's table driven by hostile events and by what its peers
//! answer: each step applies an event, or sends a batch to a peer and takes the peer's
//! answer (a status and a `Retry-After`), as the lane does: a 2xx marks the batch sent,
//! anything else leaves it due, and the wait before the next try honours `Retry-After`
//! up to its cap.
//! Invariants: a batch is a JSON array (serde_json) of at most `max_batch` alerts that fits
//! its buffer, each with a string `alertname` label, only string labels and a
//! `startsAt`; the table never holds more than its capacity; the retry wait stays between
//! the interval and the cap.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use tocsin::deliver::alertmanager::Table;
use tocsin::deliver::retry::{classify, parse_retry_after, RetryPolicy, Verdict};
use tocsin::deliver::SinkSpec;
use tocsin::limits::{MAX_AM_ALERTS, MAX_AM_BODY_LEN};
use tocsin_fuzz::{event, FakeHost};

const T0: u64 = 1_763_800_000_000;
const CONFIG: &str = r#"
[agent]
device_id = "gw-1"
hostname = "edge"
interval = "5s"
heartbeat = "1m"
labels = { site = "north-3" }

[[rule]]
name = "disk"
metric = "disk.used_percent"
warn = "> 85"
critical = "> 95"
notify = ["am"]

[[rule]]
name = "mem"
metric = "mem.used_percent"
warn = "> 90"
notify = ["am"]

[[webhook]]
name = "am"
format = "alertmanager"
urls = ["http://127.0.0.1:9093", "http://127.0.0.1:9094"]
resend = "10s"
max_batch = 8
retries = 2
retry_interval = "2s"
retry_after_max = "5m"
events = ["alarm", "recovery", "no_data", "agent_start", "heartbeat"]
generator_url = "http://127.0.0.1/r?rule=${rule_id}&d=${dimensions}"
"#;

fn spec() -> &'static SinkSpec {
    static SPEC: OnceLock<SinkSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut host = FakeHost::default();
        host.files
            .insert("/etc/tocsin/tocsin.toml".into(), CONFIG.as_bytes().to_vec());
        let cfg = tocsin::config::load_with_host(Path::new("/etc/tocsin/tocsin.toml"), &host)
            .unwrap_or_else(|d| panic!("the target's own config: {d}"));
        cfg.sink(0)
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let spec = spec();
    let mut table = Table::new(spec, true);
    let peers = spec.endpoint.peers.len();
    let policy = RetryPolicy {
        retries: spec.endpoint.retries,
        interval_ms: spec.endpoint.retry_interval_ms,
        retry_after_max_ms: spec.endpoint.retry_after_max_ms,
    };
    let mut mono = 0u64;
    let mut buf = vec![0u8; MAX_AM_BODY_LEN];
    let mut sent = Vec::new();
    for _ in 0..u.int_in_range(1..=64)? {
        mono += u64::from(u.int_in_range(0..=30_000u32)?);
        let now = T0 + mono;
        if u.arbitrary()? {
            let mut e = event(u)?;
            e.rule = Some(u.int_in_range(0..=1)?);
            e.rule_name = if e.rule == Some(0) { "disk" } else { "mem" }
                .try_into()
                .unwrap();
            let _ = table.apply(&e, now, mono);
            let (firing, resolved) = table.counts();
            assert!(firing + resolved <= MAX_AM_ALERTS);
            continue;
        }
        let peer = u.int_in_range(0..=peers - 1)?;
        let (len, news, _next) = table.collect(peer, (now, mono), spec, &mut buf, &mut sent);
        assert!(news <= sent.len());
        assert!(
            sent.len() <= spec.endpoint.max_batch,
            "{} alerts",
            sent.len()
        );
        if sent.is_empty() {
            assert_eq!(len, 0);
            continue;
        }
        assert!(len <= buf.len());
        let body = &buf[..len];
        let alerts: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "batch is not a JSON array ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        assert_eq!(alerts.len(), sent.len());
        for a in &alerts {
            let labels = a["labels"].as_object().expect("labels");
            assert!(labels["alertname"].is_string(), "{a}");
            assert!(labels.values().all(|v| v.is_string()), "{a}");
            assert!(a["startsAt"].is_string(), "{a}");
        }
        // The peer's answer.
        let status: u16 = u.int_in_range(100..=599)?;
        let retry_after: &str = u.arbitrary()?;
        match classify(status) {
            Verdict::Delivered => table.sent(peer, &sent, now, mono),
            Verdict::Retry | Verdict::Final => {
                let ra = parse_retry_after(retry_after, now);
                let wait = policy.delay_ms(ra, u.arbitrary()?);
                assert!(wait >= policy.interval_ms, "{wait}");
                assert!(
                    wait <= (policy.interval_ms + policy.interval_ms / 4)
                        .max(policy.retry_after_max_ms),
                    "{wait} for Retry-After {retry_after:?}"
                );
            }
        }
    }
    table.close();
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
