//! `content`: the human-readable line of an event, in English or Chinese (the webhook-management screen's alarm
//! message language). Fixed strings, written straight into the output: no heap.

use super::text::fmt_value;
use super::Ctx;
use crate::event::{EventType, Language};
use crate::rule::Level;
use core::fmt;

fn level_word(l: Level, lang: Language) -> &'static str {
    match (lang, l) {
        (Language::En, _) => l.as_str(),
        (Language::Zh, Level::Critical) => "严重",
        (Language::Zh, Level::Warn) => "警告",
        (Language::Zh, Level::Info) => "提示",
    }
}

/// Writes the metric, its dimension and value: `disk.used_percent{mount=/} = 97%`.
/// Control characters in a dimension (a mount point may hold any byte) become `?`.
fn write_reading(out: &mut dyn fmt::Write, ctx: &Ctx<'_>) -> fmt::Result {
    let e = ctx.event;
    let Some(m) = e.metric else { return Ok(()) };
    out.write_str(m.name())?;
    if let (Some(k), false) = (e.dimension_key(), e.dim.is_empty()) {
        write!(out, "{{{k}=")?;
        for c in e.dim.chars() {
            out.write_char(if c.is_control() { '?' } else { c })?;
        }
        out.write_char('}')?;
    }
    if let Some(v) = e.value {
        write!(out, " = {}{}", fmt_value(v), m.unit())?;
    }
    Ok(())
}

fn write_threshold(out: &mut dyn fmt::Write, ctx: &Ctx<'_>) -> fmt::Result {
    match ctx.event.threshold {
        Some(t) => write!(out, " {} {}", t.op.as_str(), fmt_value(t.value)),
        None => Ok(()),
    }
}

/// Writes the `content` text of `ctx.event` in `ctx.language`.
///
/// # Errors
/// When `out` is full.
pub fn write(out: &mut dyn fmt::Write, ctx: &Ctx<'_>) -> fmt::Result {
    let e = ctx.event;
    let (lang, dev, host) = (
        ctx.language,
        ctx.origin.device_id.as_str(),
        ctx.origin.hostname.as_str(),
    );
    let rule = e.rule_name.as_str();
    match (e.kind, lang) {
        (EventType::Alarm, Language::En) => {
            write!(out, "[{}] {rule} on {dev}: ", e.level.as_str())?;
            write_reading(out, ctx)?;
            write_threshold(out, ctx)?;
            write!(out, " ({} times)", e.times)?;
            if e.prev_level != e.level {
                write!(out, ", was {}", e.prev_level.as_str())?;
            }
            Ok(())
        }
        (EventType::Alarm, Language::Zh) => {
            write!(out, "【{}】{rule}（{dev}）：", level_word(e.level, lang))?;
            write_reading(out, ctx)?;
            write_threshold(out, ctx)?;
            write!(out, "，累计 {} 次", e.times)?;
            if e.prev_level != e.level {
                write!(out, "，此前为{}", level_word(e.prev_level, lang))?;
            }
            Ok(())
        }
        (EventType::Recovery, Language::En) => {
            write!(out, "[OK] {rule} on {dev}: ")?;
            write_reading(out, ctx)?;
            write!(out, ", recovered from {}", e.level.as_str())
        }
        (EventType::Recovery, Language::Zh) => {
            write!(out, "【恢复】{rule}（{dev}）：")?;
            write_reading(out, ctx)?;
            write!(out, "，已从{}恢复", level_word(e.level, lang))
        }
        (EventType::NoData, Language::En) => {
            write!(out, "[NO DATA] {rule} on {dev}: no ")?;
            write_reading(out, ctx)?;
            write!(out, " data for {} samples", e.times)
        }
        (EventType::NoData, Language::Zh) => {
            write!(out, "【无数据】{rule}（{dev}）：")?;
            write_reading(out, ctx)?;
            write!(out, " 连续 {} 个周期无数据", e.times)
        }
        (kind, Language::En) => {
            let what = match kind {
                EventType::AgentStart => "agent started",
                EventType::AgentStop => "agent stopping",
                EventType::ConfigReload => "configuration reloaded",
                EventType::Reboot => "device rebooted",
                EventType::DeliveryFailed => "an alert could not be delivered",
                EventType::Heartbeat => "heartbeat",
                _ => "test message",
            };
            write!(out, "[INFO] tocsin on {dev} ({host}): {what}")?;
            write_detail(out, e.detail.as_str())
        }
        (kind, Language::Zh) => {
            let what = match kind {
                EventType::AgentStart => "代理已启动",
                EventType::AgentStop => "代理正在停止",
                EventType::ConfigReload => "配置已重新加载",
                EventType::Reboot => "设备已重启",
                EventType::DeliveryFailed => "告警未能送达",
                EventType::Heartbeat => "心跳",
                _ => "测试消息",
            };
            write!(out, "【提示】tocsin（{dev}，{host}）：{what}")?;
            write_detail(out, e.detail.as_str())
        }
    }
}

fn write_detail(out: &mut dyn fmt::Write, detail: &str) -> fmt::Result {
    if detail.is_empty() {
        return Ok(());
    }
    out.write_str(" — ")?;
    for c in detail.chars() {
        out.write_char(if c.is_control() { '?' } else { c })?;
    }
    Ok(())
}
