//! Apache HertzBeat's webhook body.
//!
//! `id` and `alertDefineId` are int64 values of at most 53 bits, so that receivers that
//! parse JSON numbers as doubles (JavaScript's `JSON.parse`) keep them exact: the id is the
//! low 53 bits of the event id's random part, the definition id a stable hash of the rule
//! name masked to 53 bits (0 becomes 1 in both). `priority` 0/1/2 = CRITICAL/WARN/INFO;
//! `status` 0 = alarm (to be processed), 2 = recovered. The seed's example has `tag`, its
//! table `tags`: both are sent, equal. Times are milliseconds; `gmtCreate` (first trigger)
//! and `gmtUpdate` (this event) are `YYYY-MM-DDTHH:MM:SS` in UTC.

use super::template::write_alert_name;
use super::text::FixedWriter;
use super::{content, Ctx, RenderError};
use crate::event::EventType;
use crate::rule::Level;
use crate::util::utc_naive;
use serde::ser::{Serialize, SerializeMap, Serializer};

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    id: i64,
    target: &'a str,
    alert_define_id: i64,
    priority: u8,
    content: &'a str,
    tag: Tags<'a>,
    tags: Tags<'a>,
    status: u8,
    times: u32,
    first_trigger_time: u64,
    last_trigger_time: u64,
    next_eval_interval: u64,
    gmt_create: &'a str,
    gmt_update: &'a str,
}

/// The tag map: device, instance, metric, the series' dimension and the fleet labels.
/// Keys are identifiers (label names are validated), so they need no escaping.
#[derive(Clone, Copy)]
struct Tags<'a>(&'a Ctx<'a>);

impl Serialize for Tags<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, o) = (self.0.event, self.0.origin);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("device_id", &o.device_id)?;
        m.serialize_entry("instance", &o.hostname)?;
        if let Some(metric) = e.metric {
            m.serialize_entry("metric", metric.name())?;
            if let (Some(k), false) = (e.dimension_key(), e.dim.is_empty()) {
                m.serialize_entry(k, e.dim.as_str())?;
            }
        }
        for (k, v) in &o.labels {
            m.serialize_entry(k.as_str(), v.as_str())?;
        }
        m.end()
    }
}

/// HertzBeat's priority for a level.
pub fn priority(l: Level) -> u8 {
    match l {
        Level::Critical => 0,
        Level::Warn => 1,
        Level::Info => 2,
    }
}

/// The largest integer every JSON parser holds exactly: 2^53 − 1 (JavaScript's
/// `Number.MAX_SAFE_INTEGER`; beyond it a double loses digits).
pub const MAX_SAFE_ID: u64 = (1 << 53) - 1;

/// The low 53 bits of `bits`, 0 made 1: positive, exact as a double, never 0 (HertzBeat
/// reads an id of 0 as unset).
fn safe_id(bits: u64) -> i64 {
    match bits & MAX_SAFE_ID {
        0 => 1,
        v => v as i64,
    }
}

/// FNV-1a of the rule name (`tocsin.<type>` for agent events), in 53 bits: the same for a
/// rule on every device and across restarts.
pub fn define_id(name: &str, kind: EventType) -> i64 {
    let h = if name.is_empty() {
        crate::util::fnv1a(&[b"tocsin.", kind.as_str().as_bytes()])
    } else {
        crate::util::fnv1a(&[name.as_bytes()])
    };
    safe_id(h)
}

/// The low 53 bits of the event id's random part (its last 8 bytes hold 62 random bits
/// under the 2 variant bits).
pub fn alert_id(id: &crate::event::EventId) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[8..]);
    safe_id(u64::from_be_bytes(b))
}

pub(super) fn render(ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<usize, RenderError> {
    let e = ctx.event;
    let mut content_buf = [0u8; 1024];
    let mut text = FixedWriter::new(&mut content_buf);
    content::write(&mut text, ctx).map_err(|_| RenderError::BufferFull)?;
    let mut target = heapless::String::<80>::new();
    match e.metric {
        Some(m) => {
            let _ = target.push_str(m.name());
        }
        None => {
            let _ = write_alert_name(&mut target, e.kind, "");
        }
    }
    let body = Body {
        id: alert_id(&e.id),
        target: &target,
        alert_define_id: define_id(&e.rule_name, e.kind),
        priority: priority(e.level),
        content: text.as_str(),
        tag: Tags(ctx),
        tags: Tags(ctx),
        status: if e.kind == EventType::Recovery { 2 } else { 0 },
        times: e.times,
        first_trigger_time: e.first_trigger_ms,
        last_trigger_time: e.last_trigger_ms,
        next_eval_interval: ctx.origin.interval_ms,
        gmt_create: &utc_naive(e.first_trigger_ms),
        gmt_update: &utc_naive(e.timestamp_ms),
    };
    serde_json_core::to_slice(&body, buf).map_err(|_| RenderError::BufferFull)
}
