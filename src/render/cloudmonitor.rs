//! Aliyun CloudMonitor's alarm callback, JSON: the fields of its JSON callback plus those of its form callback.
//!
//! Every value is a string, as in the seeds' examples: `timestamp` is unix seconds,
//! `dimensions` a JSON array of objects inside a string, `expression` a JSON array inside
//! a string (`[{"expression":"$value>90","level":3,"times":2}]`; a rule over a window
//! names its statistic as CloudMonitor does: `$Average>90`, `$Maximum`, `$Minimum`,
//! `$Sum`). Levels map to the
//! cloud monitor's numbers: CRITICAL 2, WARN 3, INFO 4 (CloudMonitor: 4 = email, 3 = SMS + email).

use super::template::write_alert_name;
use super::text::{fmt_value, json_str_into, FixedWriter};
use super::{Ctx, RenderError, NAMESPACE};
use crate::rule::Level;
use core::fmt::Write as _;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    user_id: &'a str,
    alert_name: &'a str,
    timestamp: &'a str,
    alert_state: &'a str,
    dimensions: &'a str,
    expression: &'a str,
    cur_value: &'a str,
    metric_name: &'a str,
    metric_project: &'a str,
    instance_name: &'a str,
    namespace: &'a str,
    trigger_level: &'a str,
    pre_trigger_level: &'a str,
    rule_id: &'a str,
}

/// The cloud monitor's number for a level.
pub fn level_number(l: Level) -> u8 {
    match l {
        Level::Critical => 2,
        Level::Warn => 3,
        Level::Info => 4,
    }
}

pub(super) fn render_json(ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<usize, RenderError> {
    let (e, o) = (ctx.event, ctx.origin);
    let full = |_| RenderError::BufferFull;

    // `dimensions`: [{"userId":"…","instanceId":"…","mount":"/"}]
    let mut dims_buf = [0u8; 1024];
    let mut dims = FixedWriter::new(&mut dims_buf);
    (|| {
        dims.write_str("[{\"userId\":")?;
        json_str_into(&mut dims, &o.device_id)?;
        dims.write_str(",\"instanceId\":")?;
        json_str_into(&mut dims, &o.hostname)?;
        if let (Some(key), false) = (e.dimension_key(), e.dim.is_empty()) {
            dims.write_char(',')?;
            json_str_into(&mut dims, key)?;
            dims.write_char(':')?;
            json_str_into(&mut dims, &e.dim)?;
        }
        dims.write_str("}]")
    })()
    .map_err(full)?;

    // `expression`: [{"expression":"$value>90","level":3,"times":2}] — `times` is the
    // rule's configured count, as CloudMonitor defines it.
    let mut expr_buf = [0u8; 160];
    let mut expr = FixedWriter::new(&mut expr_buf);
    match e.threshold {
        Some(t) => write!(
            expr,
            "[{{\"expression\":\"{}{}{}\",\"level\":{},\"times\":{}}}]",
            e.aggregate.variable(),
            t.op.as_str(),
            fmt_value(t.value),
            level_number(e.level),
            e.rule_times.max(1)
        ),
        None => expr.write_str("[]"),
    }
    .map_err(full)?;

    let mut ts = heapless::String::<20>::new();
    let _ = write!(ts, "{}", e.timestamp_ms / 1000);
    let cur = e.value.map(fmt_value).unwrap_or_default();
    let mut name = heapless::String::<80>::new();
    let _ = write_alert_name(&mut name, e.kind, &e.rule_name);
    let body = Body {
        user_id: &o.device_id,
        alert_name: &name,
        timestamp: &ts,
        alert_state: e.state.as_str(),
        dimensions: dims.as_str(),
        expression: expr.as_str(),
        cur_value: &cur,
        metric_name: e.metric.map_or(e.kind.as_str(), |m| m.name()),
        metric_project: NAMESPACE,
        instance_name: &o.hostname,
        namespace: NAMESPACE,
        trigger_level: e.level.as_str(),
        pre_trigger_level: e.prev_level.as_str(),
        rule_id: &e.rule_name,
    };
    serde_json_core::to_slice(&body, buf).map_err(|_| RenderError::BufferFull)
}
