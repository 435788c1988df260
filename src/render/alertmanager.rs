//! Prometheus Alertmanager's v2 push API (`POST /api/v2/alerts`): a JSON array of alerts.
//!
//! An alert is identified by its labels: `alertname` (the rule name, or `Tocsin…` for the
//! agent's own alerts), `severity` (`critical` / `warning` / `info`; `none` for the
//! heartbeat), `instance` (the host name), `device_id`, `metric`, the series' dimension
//! (`mount="/"`), `no_data="true"` while a series has no data, and every fleet label.
//! Annotations: `summary`, `description` (the `content` text, in the webhook's language),
//! `value`, `threshold`. `startsAt` / `endsAt` are RFC 3339 with milliseconds; a firing
//! alert's `endsAt` lies in the future (Alertmanager resolves it by itself if it is not
//! re-sent), a resolved one's is the time it resolved.
//!
//! Everything is written straight into the caller's fixed buffer: no heap.

use super::text::{fmt_value, json_str_into, Escape, Escaped, FixedWriter};
use super::{content, Ctx, RenderError};
use crate::event::{Event, EventType, Language};
use crate::render::template::Template;
use crate::rule::Level;
use crate::util::iso8601;
use core::fmt::{self, Write as _};

/// What an alert is called: a rule's name, or one of the agent's own alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertName {
    /// A rule's alert (`alertname` = the rule name).
    Rule,
    /// Always firing while the agent runs: its absence says the device went silent.
    Heartbeat,
    /// Always firing and inhibited by `TocsinHeartbeat` of the same device: it notifies
    /// once the heartbeat expires (see README, "Fleet").
    DeviceSilent,
    /// The device rebooted under the agent (short-lived).
    Reboot,
    /// Another webhook could not deliver (short-lived).
    DeliveryFailed,
    /// The config was reloaded or a fallback copy runs (short-lived).
    ConfigReload,
    /// `tocsin test` (short-lived).
    Test,
}

impl AlertName {
    /// The `alertname` of an agent alert.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::Rule => "",
            AlertName::Heartbeat => "TocsinHeartbeat",
            AlertName::DeviceSilent => "TocsinDeviceSilent",
            AlertName::Reboot => "TocsinReboot",
            AlertName::DeliveryFailed => "TocsinDeliveryFailed",
            AlertName::ConfigReload => "TocsinConfigReload",
            AlertName::Test => "TocsinTest",
        }
    }

    /// The alert an event of `kind` maps to; `None` for `agent_start` and `agent_stop`
    /// (the heartbeat says whether an agent runs).
    pub fn of(kind: EventType) -> Option<AlertName> {
        Some(match kind {
            EventType::Alarm | EventType::Recovery | EventType::NoData => AlertName::Rule,
            EventType::Heartbeat => AlertName::Heartbeat,
            EventType::Reboot => AlertName::Reboot,
            EventType::DeliveryFailed => AlertName::DeliveryFailed,
            EventType::ConfigReload => AlertName::ConfigReload,
            EventType::Test => AlertName::Test,
            EventType::AgentStart | EventType::AgentStop => return None,
        })
    }

    /// The `severity` label of this alert for a rule event at `level`.
    pub fn severity(self, level: Level) -> &'static str {
        match self {
            AlertName::Rule => severity(level),
            AlertName::Heartbeat => "none",
            AlertName::DeviceSilent => "critical",
            AlertName::Reboot | AlertName::DeliveryFailed => "warning",
            AlertName::ConfigReload | AlertName::Test => "info",
        }
    }
}

/// The `severity` label of a level.
pub fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Warn => "warning",
        Level::Info => "info",
    }
}

/// Label names tocsin sets on every alert; fleet labels may not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "alertname",
    "severity",
    "instance",
    "device_id",
    "metric",
    "no_data",
];

/// One alert to write.
#[derive(Clone, Copy, Debug)]
pub struct Alert<'a> {
    /// Which alert.
    pub name: AlertName,
    /// Its `severity` label.
    pub severity: &'static str,
    /// The event whose values annotate it.
    pub event: &'a Event,
    /// `startsAt`, unix ms.
    pub starts_ms: u64,
    /// `endsAt`, unix ms.
    pub ends_ms: u64,
    /// Whether `endsAt` is the time it resolved (a recovery), not an expiry.
    pub resolved: bool,
}

impl<'a> Alert<'a> {
    /// The alert a single event stands for, as `render`, `test` and `--dry-run` show it:
    /// firing until `resend_ms × 4` after the event, or resolved at a recovery.
    pub fn of_event(event: &'a Event, resend_ms: u64) -> Option<Alert<'a>> {
        let name = AlertName::of(event.kind)?;
        let at = event.timestamp_ms;
        let resolved = event.kind == EventType::Recovery;
        let starts_ms = match event.kind {
            EventType::Alarm if event.prev_level == event.level => event.first_trigger_ms,
            EventType::Recovery => event.first_trigger_ms,
            _ => at,
        };
        Some(Alert {
            name,
            severity: name.severity(event.level),
            event,
            starts_ms: starts_ms.min(at),
            ends_ms: if resolved { at } else { expiry(at, resend_ms) },
            resolved,
        })
    }
}

/// `endsAt` of a firing alert sent at `now`: four re-send intervals later, as Prometheus
/// does, so a device that dies stops firing on its own.
pub fn expiry(now: u64, resend_ms: u64) -> u64 {
    now.saturating_add(resend_ms.saturating_mul(4))
}

/// RFC 3339 with milliseconds: `2026-11-22T10:00:00.123Z`.
pub(crate) fn write_time(out: &mut dyn fmt::Write, ms: u64) -> fmt::Result {
    let s = iso8601(ms);
    write!(out, "\"{}.{:03}Z\"", s.trim_end_matches('Z'), ms % 1000)
}

fn write_pair(out: &mut dyn fmt::Write, first: &mut bool, k: &str, v: &str) -> fmt::Result {
    if !core::mem::take(first) {
        out.write_char(',')?;
    }
    json_str_into(out, k)?;
    out.write_char(':')?;
    json_str_into(out, v)
}

/// Writes one alert object.
///
/// # Errors
/// When `out` is full.
pub fn write_alert(
    out: &mut dyn fmt::Write,
    alert: &Alert<'_>,
    ctx: &Ctx<'_>,
    generator_url: Option<&Template>,
) -> fmt::Result {
    let e = alert.event;
    let o = ctx.origin;
    out.write_str("{\"labels\":{")?;
    let first = &mut true;
    let alertname = match alert.name {
        AlertName::Rule => e.rule_name.as_str(),
        n => n.as_str(),
    };
    write_pair(out, first, "alertname", alertname)?;
    write_pair(out, first, "severity", alert.severity)?;
    write_pair(out, first, "instance", &o.hostname)?;
    write_pair(out, first, "device_id", &o.device_id)?;
    if let (AlertName::Rule, Some(metric)) = (alert.name, e.metric) {
        write_pair(out, first, "metric", metric.name())?;
        if let (Some(k), false) = (e.dimension_key(), e.dim.is_empty()) {
            write_pair(out, first, k, e.dim.as_str())?;
        }
        if e.kind == EventType::NoData {
            write_pair(out, first, "no_data", "true")?;
        }
    }
    for (k, v) in &o.labels {
        write_pair(out, first, k, v)?;
    }
    out.write_str("},\"annotations\":{\"summary\":\"")?;
    write_summary(
        &mut Escaped {
            inner: &mut *out,
            escape: Escape::Json,
        },
        alert,
        ctx,
    )?;
    out.write_str("\",\"description\":\"")?;
    {
        let mut esc = Escaped {
            inner: &mut *out,
            escape: Escape::Json,
        };
        if alert.name == AlertName::DeviceSilent {
            write_silent(&mut esc, ctx)?;
        } else {
            content::write(&mut esc, ctx)?;
        }
    }
    out.write_char('"')?;
    let first = &mut false;
    if alert.name == AlertName::Rule {
        if let Some(v) = e.value {
            write_pair(out, first, "value", &fmt_value(v))?;
        }
        if let Some(t) = e.threshold {
            let mut s = heapless::String::<40>::new();
            let _ = write!(s, "{} {}", t.op.as_str(), fmt_value(t.value));
            write_pair(out, first, "threshold", &s)?;
        }
    }
    out.write_str("},\"startsAt\":")?;
    write_time(out, alert.starts_ms.min(alert.ends_ms))?;
    out.write_str(",\"endsAt\":")?;
    write_time(out, alert.ends_ms)?;
    if let Some(g) = generator_url {
        out.write_str(",\"generatorURL\":\"")?;
        g.render(
            &mut Escaped {
                inner: &mut *out,
                escape: Escape::Json,
            },
            ctx,
            Escape::Url,
        )?;
        out.write_char('"')?;
    }
    out.write_char('}')
}

/// The one-line `summary`.
fn write_summary(out: &mut dyn fmt::Write, alert: &Alert<'_>, ctx: &Ctx<'_>) -> fmt::Result {
    let e = alert.event;
    let (dev, host) = (ctx.origin.device_id.as_str(), ctx.origin.hostname.as_str());
    let zh = ctx.language == Language::Zh;
    match alert.name {
        AlertName::Rule => {
            let state = match (e.kind, zh) {
                (EventType::Recovery, false) => "OK",
                (EventType::Recovery, true) => "恢复",
                (EventType::NoData, false) => "NO DATA",
                (EventType::NoData, true) => "无数据",
                (_, false) => e.level.as_str(),
                (_, true) => match e.level {
                    Level::Critical => "严重",
                    Level::Warn => "警告",
                    Level::Info => "提示",
                },
            };
            if zh {
                write!(out, "【{state}】{}（{dev}）", e.rule_name)
            } else {
                write!(out, "[{state}] {} on {dev}", e.rule_name)
            }
        }
        AlertName::DeviceSilent if zh => write!(out, "设备 {dev}（{host}）失联"),
        AlertName::DeviceSilent => write!(out, "device {dev} ({host}) went silent"),
        AlertName::Heartbeat if zh => write!(out, "tocsin 心跳（{dev}）"),
        AlertName::Heartbeat => write!(out, "tocsin heartbeat from {dev}"),
        _ => content::write(out, ctx),
    }
}

fn write_silent(out: &mut dyn fmt::Write, ctx: &Ctx<'_>) -> fmt::Result {
    let (dev, host) = (ctx.origin.device_id.as_str(), ctx.origin.hostname.as_str());
    if ctx.language == Language::Zh {
        write!(
            out,
            "设备 {dev}（{host}）的 tocsin 心跳已过期：设备、网络或代理已停止。"
        )
    } else {
        write!(
            out,
            "The tocsin heartbeat of device {dev} ({host}) expired: the device, its network or the agent is down."
        )
    }
}

/// A JSON array of alerts being filled in a fixed buffer: `[` … `]`.
pub struct Batch<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: usize,
}

impl<'b> Batch<'b> {
    /// An empty batch at the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Batch<'b> {
        Batch {
            buf,
            len: 0,
            count: 0,
        }
    }

    /// Alerts written so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends one alert; when it does not fit (with the closing `]`), the batch is left
    /// as it was.
    ///
    /// # Errors
    /// [`RenderError::BufferFull`] when the alert does not fit.
    pub fn push(
        &mut self,
        alert: &Alert<'_>,
        ctx: &Ctx<'_>,
        generator_url: Option<&Template>,
    ) -> Result<(), RenderError> {
        let room = self.buf.len().saturating_sub(1);
        let Some(rest) = self.buf.get_mut(self.len..room) else {
            return Err(RenderError::BufferFull);
        };
        let mut w = FixedWriter::new(rest);
        let sep = if self.count == 0 { '[' } else { ',' };
        w.write_char(sep)
            .and_then(|()| write_alert(&mut w, alert, ctx, generator_url))
            .map_err(|_| RenderError::BufferFull)?;
        self.len += w.len();
        self.count += 1;
        Ok(())
    }

    /// Closes the array; returns its length in bytes.
    ///
    /// # Errors
    /// [`RenderError::BufferFull`] when not even `[]` fits.
    pub fn finish(self) -> Result<usize, RenderError> {
        let close: &[u8] = if self.count == 0 { b"[]" } else { b"]" };
        let end = self.len + close.len();
        let dest = self
            .buf
            .get_mut(self.len..end)
            .ok_or(RenderError::BufferFull)?;
        dest.copy_from_slice(close);
        Ok(end)
    }
}

/// The body for one event: an array with the alert it stands for (empty for events
/// Alertmanager has no alert for: `agent_start`, `agent_stop`).
pub(super) fn render(
    ctx: &Ctx<'_>,
    resend_ms: u64,
    generator_url: Option<&Template>,
    buf: &mut [u8],
) -> Result<usize, RenderError> {
    let mut batch = Batch::new(buf);
    if let Some(alert) = Alert::of_event(ctx.event, resend_ms) {
        batch.push(&alert, ctx, generator_url)?;
    }
    batch.finish()
}
