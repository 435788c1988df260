//! Aliyun CloudMonitor's alarm callback, form-urlencoded.
//!
//! Fields in the order of CloudMonitor's parameter table; `dimensions` as `{userId=…, instanceId=…}`,
//! `expression` as `$value>=95` (`$Average>=95`, `$Maximum`, `$Minimum`, `$Sum` for a rule
//! over a window). With a secret, a `signature` field is appended: the seed
//! shows one but does not define it, so tocsin defines it as
//! `base64(HMAC-SHA256(secret, every byte of the body before "&signature="))`.

use super::template::write_alert_name;
use super::text::{fmt_value, Escape, Escaped, FixedWriter};
use super::{Ctx, RenderError, NAMESPACE};
use crate::util::base64_write;
use core::fmt::{self, Write as _};

/// Writes `name=value` (value form-escaped), preceded by `&` unless first.
fn field(out: &mut FixedWriter<'_>, name: &str, value: fmt::Arguments<'_>) -> fmt::Result {
    if !out.is_empty() {
        out.write_char('&')?;
    }
    out.write_str(name)?;
    out.write_char('=')?;
    Escaped {
        inner: out,
        escape: Escape::Form,
    }
    .write_fmt(value)
}

pub(super) fn render(
    ctx: &Ctx<'_>,
    secret: Option<&[u8]>,
    buf: &mut [u8],
) -> Result<usize, RenderError> {
    let (e, o) = (ctx.event, ctx.origin);
    let mut w = FixedWriter::new(buf);
    let mut name = heapless::String::<80>::new();
    let _ = write_alert_name(&mut name, e.kind, &e.rule_name);
    let cur = e.value.map(fmt_value).unwrap_or_default();
    (|| {
        field(&mut w, "alertName", format_args!("{name}"))?;
        field(&mut w, "alertState", format_args!("{}", e.state.as_str()))?;
        field(&mut w, "curValue", format_args!("{cur}"))?;
        match (e.dimension_key(), e.dim.is_empty()) {
            (Some(k), false) => field(
                &mut w,
                "dimensions",
                format_args!(
                    "{{userId={}, instanceId={}, {k}={}}}",
                    o.device_id, o.hostname, e.dim
                ),
            )?,
            _ => field(
                &mut w,
                "dimensions",
                format_args!("{{userId={}, instanceId={}}}", o.device_id, o.hostname),
            )?,
        }
        match e.threshold {
            Some(t) => field(
                &mut w,
                "expression",
                format_args!(
                    "{}{}{}",
                    e.aggregate.variable(),
                    t.op.as_str(),
                    fmt_value(t.value)
                ),
            )?,
            None => field(&mut w, "expression", format_args!(""))?,
        }
        field(&mut w, "instanceName", format_args!("{}", o.hostname))?;
        field(
            &mut w,
            "metricName",
            format_args!("{}", e.metric.map_or(e.kind.as_str(), |m| m.name())),
        )?;
        field(&mut w, "metricProject", format_args!("{NAMESPACE}"))?;
        field(&mut w, "namespace", format_args!("{NAMESPACE}"))?;
        field(
            &mut w,
            "preTriggerLevel",
            format_args!("{}", e.prev_level.as_str()),
        )?;
        field(&mut w, "ruleId", format_args!("{}", e.rule_name))?;
        field(
            &mut w,
            "timestamp",
            format_args!("{}", e.timestamp_ms / 1000),
        )?;
        field(&mut w, "triggerLevel", format_args!("{}", e.level.as_str()))?;
        field(&mut w, "userId", format_args!("{}", o.device_id))
    })()
    .map_err(|_| RenderError::BufferFull)?;
    if let Some(key) = secret {
        let tag = crate::util::hmac_sha256(key, w.as_str().as_bytes());
        let mut b64 = heapless::String::<44>::new();
        base64_write(tag.as_ref(), &mut b64).map_err(|_| RenderError::BufferFull)?;
        field(&mut w, "signature", format_args!("{b64}")).map_err(|_| RenderError::BufferFull)?;
    }
    Ok(w.len())
}
