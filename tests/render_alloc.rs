//! Heap allocations while rendering a message: counted with a counting global allocator.
//! Rendering writes into fixed buffers, so after warm-up the count must be zero for every
//! format (the delivery edge — hyper's request, the body's `Bytes` — is not rendering).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tocsin::config::parse;
use tocsin::event::{Event, EventId, EventType};
use tocsin::metric::{DimValue, Metric};
use tocsin::render::{render, Ctx, Escape, FixedWriter};
use tocsin::rule::{AlertState, Condition, Level, Op};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"
[agent]
device_id = "gw-0042"
hostname = "edge"
labels = { site = "north-3", customer = "acme" }

[[webhook]]
name = "cloudmonitor-json"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"

[[webhook]]
name = "cloudmonitor-json-signed"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-json"
signing = { scheme = "cloudmonitor", secret = "k3y" }

[[webhook]]
name = "template-slack"
url = "http://127.0.0.1:9/"
format = "template"
body = '{"text": "${content|slack}"}'

[[webhook]]
name = "cloudmonitor-form"
url = "http://127.0.0.1:9/"
format = "cloudmonitor-form"
signing = { scheme = "cloudmonitor", secret = "k3y" }

[[webhook]]
name = "hertzbeat"
url = "http://127.0.0.1:9/"
format = "hertzbeat"

[[webhook]]
name = "template-json"
url = "http://127.0.0.1:9/${device_id}"
format = "template"
language = "zh"
headers = { X-Dev = "${device_id}" }
body = '{"text": "${content}", "alarm": ${alarm}, "at": "${time_iso}", "site": "${labels.site}"}'

[[webhook]]
name = "alertmanager"
url = "http://127.0.0.1:9093/"
format = "alertmanager"
generator_url = "http://192.168.1.1/luci?rule=${rule_id}"

[[webhook]]
name = "template-xml"
url = "http://127.0.0.1:9/"
format = "template"
content_type = "xml"
body = '<a d="${device_id}">${content}</a>'
"#;

#[test]
fn rendering_allocates_nothing() {
    // The counter counts: one boxed value is one allocation.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let probe = std::hint::black_box(Box::new(7u64));
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst) - before,
        1,
        "the counting allocator works"
    );
    drop(probe);
    let cfg = parse(CONFIG, "alloc.toml").unwrap();
    let origin = cfg.agent.origin();
    let mut e = Event::agent(
        EventType::Alarm,
        EventId::new(1_795_339_813_000, [9; 10]),
        1_795_339_813_000,
        "",
    );
    e.rule = Some(0);
    e.rule_name = "root-full".try_into().unwrap();
    e.state = AlertState::Alert;
    e.level = Level::Critical;
    e.prev_level = Level::Warn;
    e.metric = Some(Metric::DiskUsed);
    e.dim = DimValue::try_from("/data \"x\"").unwrap();
    e.value = Some(97.39);
    e.threshold = Some(Condition {
        op: Op::Ge,
        value: 95.0,
    });
    e.times = 4;
    e.rule_times = 2;
    let mut buf = vec![0u8; tocsin::limits::MAX_AM_BODY_LEN];
    let mut small = [0u8; 512];
    let mut total = 0usize;
    let mut report = Vec::new();
    for wh in &cfg.webhooks {
        let ctx = Ctx {
            event: &e,
            origin: &origin,
            language: wh.payload.language,
        };
        // Warm-up (nothing lazy is expected, but a first call may not count).
        render(&wh.payload, &ctx, &mut buf).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut bytes = 0;
        for _ in 0..1000 {
            bytes = render(&wh.payload, &ctx, &mut buf).unwrap();
            let mut w = FixedWriter::new(&mut small);
            wh.endpoint
                .target
                .render(&mut w, &ctx, Escape::Url)
                .unwrap();
            for (_, h) in &wh.endpoint.headers {
                let mut w = FixedWriter::new(&mut small);
                h.render(&mut w, &ctx, Escape::Header).unwrap();
            }
        }
        let n = ALLOCATIONS.load(Ordering::SeqCst) - before;
        report.push(format!(
            "{:<18} {bytes:>5} bytes, {n} allocations in 1000 renders",
            wh.name
        ));
        total += n;
    }
    println!("{}", report.join("\n"));
    assert_eq!(
        total,
        0,
        "rendering must not allocate:\n{}",
        report.join("\n")
    );
}
