//! `${alarm}`: the complete event as one JSON object, written into the output directly.

use super::template::{write_alert_name, write_var, Var};
use super::text::{json_str_into, Escape, Escaped};
use super::Ctx;
use core::fmt;

/// String-valued fields, in output order.
const STRING_FIELDS: &[(&str, Var)] = &[
    ("event_id", Var::EventId),
    ("event_type", Var::EventType),
    ("rule_id", Var::RuleId),
    ("state", Var::State),
    ("level", Var::Level),
    ("prev_level", Var::PrevLevel),
    ("metric", Var::Metric),
    ("namespace", Var::Namespace),
    ("unit", Var::Unit),
    ("threshold", Var::Threshold),
    ("expression", Var::Expression),
    ("device_id", Var::DeviceId),
    ("hostname", Var::Hostname),
    ("time_iso", Var::TimeIso),
    ("content", Var::Content),
    ("replay_of", Var::ReplayOf),
];

/// Number-valued fields, in output order.
const NUMBER_FIELDS: &[(&str, Var)] = &[
    ("times", Var::Times),
    ("timestamp", Var::Timestamp),
    ("timestamp_ms", Var::TimestampMs),
    ("first_trigger_ms", Var::FirstTriggerMs),
    ("last_trigger_ms", Var::LastTriggerMs),
    ("interval_ms", Var::IntervalMs),
];

/// Writes the event as a JSON object: every string field, `value` (a number or null), the
/// numbers, `dimensions` and `labels` as objects.
///
/// # Errors
/// When `out` is full.
pub fn write(out: &mut dyn fmt::Write, ctx: &Ctx<'_>) -> fmt::Result {
    let e = ctx.event;
    out.write_str("{\"alert_name\":\"")?;
    write_alert_name(
        &mut Escaped {
            inner: out,
            escape: Escape::Json,
        },
        e.kind,
        &e.rule_name,
    )?;
    out.write_char('"')?;
    for (name, var) in STRING_FIELDS {
        write!(out, ",\"{name}\":\"")?;
        write_var(
            &mut Escaped {
                inner: out,
                escape: Escape::Json,
            },
            *var,
            ctx,
        )?;
        out.write_char('"')?;
    }
    out.write_str(",\"value\":")?;
    match e.value {
        // JSON has no NaN or infinity: such a value (never sampled, but an event read
        // back from a state file may hold one) is written as no value.
        Some(v) if v.is_finite() => write!(out, "{}", super::fmt_value(v))?,
        _ => out.write_str("null")?,
    }
    for (name, var) in NUMBER_FIELDS {
        write!(out, ",\"{name}\":")?;
        write_var(out, *var, ctx)?;
    }
    out.write_str(",\"dimensions\":{")?;
    if let (Some(k), false) = (e.dimension_key(), e.dim.is_empty()) {
        json_str_into(out, k)?;
        out.write_char(':')?;
        json_str_into(out, &e.dim)?;
    }
    out.write_str("},\"labels\":{")?;
    for (i, (k, v)) in ctx.origin.labels.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        json_str_into(out, k)?;
        out.write_char(':')?;
        json_str_into(out, v)?;
    }
    out.write_str("}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventId, EventType, Language};

    /// Found by fuzzing (template_render): a value that is NaN or infinite was written
    /// as nothing (`"value":,`), so `${alarm}` was not JSON.
    #[test]
    fn a_non_finite_value_is_null_in_the_alarm_object() {
        let origin = super::super::Origin::default();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut e = Event::agent(EventType::Alarm, EventId::new(0, [1; 10]), 0, "");
            e.value = Some(v);
            let ctx = Ctx {
                event: &e,
                origin: &origin,
                language: Language::En,
            };
            let mut s = String::new();
            write(&mut s, &ctx).unwrap();
            let json: serde_json::Value = serde_json::from_str(&s).expect("JSON");
            assert!(json["value"].is_null(), "{s}");
        }
    }
}
