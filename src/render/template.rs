//! Templates: text with `${name}` variables, parsed once at load, rendered per event
//! into a fixed buffer with every value escaped for the place it lands in.
//!
//! `$$` writes a literal `$`. Variables are the event's fields (see [`Var`]); `labels.NAME`
//! names a fleet label. Inside a JSON body a variable is written inside the template's own
//! quotes (`"${device_id}"`); only `${alarm}`, the whole event as a JSON object, stands bare.

use super::text::{fmt_value, Escape, Escaped, SlackEscaped};
use super::{alarm, content, Ctx};
use crate::event::EventType;
use core::fmt;

/// A template variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `event_id`: unique across restarts; the idempotency key.
    EventId,
    /// `event_type`: alarm, recovery, no_data, agent_start, …
    EventType,
    /// `rule_id`: the rule's name, or `tocsin.<event_type>` for agent events.
    RuleId,
    /// `alert_name`: the rule's name, or `tocsin.<event_type>` for agent events.
    AlertName,
    /// `state`: OK, ALERT, INSUFFICIENT_DATA.
    State,
    /// `level`: CRITICAL, WARN, INFO.
    Level,
    /// `prev_level`: the level notified before.
    PrevLevel,
    /// `metric`: the metric's name.
    Metric,
    /// `namespace`: `tocsin`.
    Namespace,
    /// `value`: the sample that caused the event.
    Value,
    /// `unit`: `%`, `bytes`, `s` or empty.
    Unit,
    /// `threshold`: the number of the level's condition.
    Threshold,
    /// `expression`: `$value>95` (`$Average>95`, `$Maximum`, `$Minimum`, `$Sum` for a rule
    /// over a window, as CloudMonitor names its statistics).
    Expression,
    /// `times`: breaches counted in this episode.
    Times,
    /// `dimensions`: `mount=/`.
    Dimensions,
    /// `device_id`.
    DeviceId,
    /// `hostname`.
    Hostname,
    /// `timestamp`: unix seconds.
    Timestamp,
    /// `timestamp_ms`: unix milliseconds.
    TimestampMs,
    /// `time_iso`: `2026-11-22T07:30:00Z`.
    TimeIso,
    /// `first_trigger_ms`.
    FirstTriggerMs,
    /// `last_trigger_ms`.
    LastTriggerMs,
    /// `interval_ms`: the sampling interval.
    IntervalMs,
    /// `content`: the human-readable text, in the webhook's language.
    Content,
    /// `labels.NAME`: a fleet label (index into the config's labels).
    Label(u8),
    /// `replay_of`: the event a replay re-sends, or empty.
    ReplayOf,
    /// `alarm`: the complete event as a JSON object.
    Alarm,
}

const NAMES: &[(&str, Var)] = &[
    ("event_id", Var::EventId),
    ("event_type", Var::EventType),
    ("rule_id", Var::RuleId),
    ("alert_name", Var::AlertName),
    ("state", Var::State),
    ("level", Var::Level),
    ("prev_level", Var::PrevLevel),
    ("metric", Var::Metric),
    ("namespace", Var::Namespace),
    ("value", Var::Value),
    ("unit", Var::Unit),
    ("threshold", Var::Threshold),
    ("expression", Var::Expression),
    ("times", Var::Times),
    ("dimensions", Var::Dimensions),
    ("device_id", Var::DeviceId),
    ("hostname", Var::Hostname),
    ("timestamp", Var::Timestamp),
    ("timestamp_ms", Var::TimestampMs),
    ("time_iso", Var::TimeIso),
    ("first_trigger_ms", Var::FirstTriggerMs),
    ("last_trigger_ms", Var::LastTriggerMs),
    ("interval_ms", Var::IntervalMs),
    ("content", Var::Content),
    ("replay_of", Var::ReplayOf),
    ("alarm", Var::Alarm),
];

/// A receiver's escaping, applied to a variable before the place's own: `${content|slack}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Slack's message text: `&` `<` `>` as `&amp;` `&lt;` `&gt;`.
    Slack,
}

const FILTERS: &[(&str, Filter)] = &[("slack", Filter::Slack)];

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text written as it is: the template author's own structure.
    Lit(String),
    /// A variable, escaped for its place.
    Var(Var),
    /// A variable through a receiver's filter, then escaped for its place.
    Filtered(Var, Filter),
}

/// A parsed template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// Its pieces, in order.
    pub segments: Vec<Segment>,
}

/// A template error: byte offset in the template text, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Where in the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Template {
    /// Parses `text`; `labels` are the fleet label names `labels.NAME` may refer to.
    ///
    /// # Errors
    /// An unclosed `${`, or an unknown variable.
    pub fn parse(text: &str, labels: &[(String, String)]) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                lit.push('$');
                offset += i + 2;
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let close = r.find('}').ok_or_else(|| TemplateError {
                    offset: offset + i,
                    message: "`${` is not closed by `}` (write `$$` for a literal `$`)".into(),
                })?;
                let (name, filter) = match r[..close].split_once('|') {
                    Some((n, f)) => (n, Some(f)),
                    None => (&r[..close], None),
                };
                let var = lookup(name, labels).ok_or_else(|| TemplateError {
                    offset: offset + i,
                    message: unknown_var_message(name, labels),
                })?;
                let seg = match filter {
                    None => Segment::Var(var),
                    Some(f) => {
                        let at = offset + i + 2 + name.len() + 1;
                        let filter = FILTERS
                            .iter()
                            .find(|(n, _)| *n == f)
                            .map(|(_, f)| *f)
                            .ok_or_else(|| TemplateError {
                                offset: at,
                                message: format!(
                                    "unknown filter `{f}` in `${{{name}|{f}}}`; known: slack"
                                ),
                            })?;
                        if var == Var::Alarm {
                            return Err(TemplateError {
                                offset: at,
                                message: "`${alarm}` is a JSON object: a filter applies to text variables (`${content|slack}`)".into(),
                            });
                        }
                        Segment::Filtered(var, filter)
                    }
                };
                if !lit.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut lit)));
                }
                segments.push(seg);
                offset += i + 2 + close + 1;
                rest = &r[close + 1..];
            } else {
                lit.push('$');
                offset += i + 1;
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template { segments })
    }

    /// Whether the template has no variables.
    pub fn is_static(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Lit(_)))
    }

    /// Writes the template for `ctx`, each variable escaped by `escape`.
    ///
    /// # Errors
    /// When `out` is full.
    pub fn render(&self, out: &mut impl fmt::Write, ctx: &Ctx<'_>, escape: Escape) -> fmt::Result {
        for seg in &self.segments {
            match seg {
                Segment::Lit(s) => out.write_str(s)?,
                // In JSON, ${alarm} is a JSON value of its own, not string content.
                Segment::Var(Var::Alarm) if escape == Escape::Json => alarm::write(out, ctx)?,
                Segment::Var(v) => write_var(&mut Escaped { inner: out, escape }, *v, ctx)?,
                Segment::Filtered(v, Filter::Slack) => write_var(
                    &mut SlackEscaped(&mut Escaped { inner: out, escape }),
                    *v,
                    ctx,
                )?,
            }
        }
        Ok(())
    }
}

fn lookup(name: &str, labels: &[(String, String)]) -> Option<Var> {
    if let Some(label) = name.strip_prefix("labels.") {
        return labels
            .iter()
            .position(|(k, _)| k == label)
            .and_then(|i| u8::try_from(i).ok())
            .map(Var::Label);
    }
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn unknown_var_message(name: &str, labels: &[(String, String)]) -> String {
    if let Some(label) = name.strip_prefix("labels.") {
        let known: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        return format!(
            "no fleet label `{label}` in [agent] labels (known: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    format!(
        "unknown variable `${{{name}}}`; known: {}, labels.NAME",
        known.join(", ")
    )
}

/// Writes one variable's value (unescaped; callers wrap `out` in [`Escaped`]).
///
/// # Errors
/// When `out` is full.
pub fn write_var(out: &mut dyn fmt::Write, var: Var, ctx: &Ctx<'_>) -> fmt::Result {
    let e = ctx.event;
    match var {
        Var::EventId => out.write_str(&e.id.to_text()),
        Var::EventType => out.write_str(e.kind.as_str()),
        // Agent events have no rule: `tocsin.<event_type>`, so that a receiver keyed by
        // rule (an Alertmanager `generatorURL` of `…?rule=${rule_id}`) never gets an empty one.
        Var::RuleId | Var::AlertName => write_alert_name(out, e.kind, &e.rule_name),
        Var::State => out.write_str(e.state.as_str()),
        Var::Level => out.write_str(e.level.as_str()),
        Var::PrevLevel => out.write_str(e.prev_level.as_str()),
        Var::Metric => out.write_str(e.metric.map_or("", |m| m.name())),
        Var::Namespace => out.write_str(super::NAMESPACE),
        Var::Value => out.write_str(&e.value.map(fmt_value).unwrap_or_default()),
        Var::Unit => out.write_str(e.metric.map_or("", |m| m.unit())),
        Var::Threshold => {
            out.write_str(&e.threshold.map(|t| fmt_value(t.value)).unwrap_or_default())
        }
        Var::Expression => match e.threshold {
            Some(t) => write!(
                out,
                "{}{}{}",
                e.aggregate.variable(),
                t.op.as_str(),
                fmt_value(t.value)
            ),
            None => Ok(()),
        },
        Var::Times => write!(out, "{}", e.times),
        Var::Dimensions => match e.dimension_key() {
            Some(k) if !e.dim.is_empty() => write!(out, "{k}={}", e.dim),
            _ => Ok(()),
        },
        Var::DeviceId => out.write_str(&ctx.origin.device_id),
        Var::Hostname => out.write_str(&ctx.origin.hostname),
        Var::Timestamp => write!(out, "{}", e.timestamp_ms / 1000),
        Var::TimestampMs => write!(out, "{}", e.timestamp_ms),
        Var::TimeIso => out.write_str(&crate::util::iso8601(e.timestamp_ms)),
        Var::FirstTriggerMs => write!(out, "{}", e.first_trigger_ms),
        Var::LastTriggerMs => write!(out, "{}", e.last_trigger_ms),
        Var::IntervalMs => write!(out, "{}", ctx.origin.interval_ms),
        Var::Content => content::write(out, ctx),
        Var::Label(i) => out.write_str(
            ctx.origin
                .labels
                .get(usize::from(i))
                .map_or("", |(_, v)| v.as_str()),
        ),
        Var::ReplayOf => match e.replay_of {
            Some(id) => out.write_str(&id.to_text()),
            None => Ok(()),
        },
        Var::Alarm => alarm::write(out, ctx),
    }
}

/// The rule's name, or `tocsin.<type>` for agent events.
pub(crate) fn write_alert_name(
    out: &mut dyn fmt::Write,
    kind: EventType,
    rule_name: &str,
) -> fmt::Result {
    if rule_name.is_empty() {
        write!(out, "tocsin.{}", kind.as_str())
    } else {
        out.write_str(rule_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<(String, String)> {
        vec![("site".into(), "north-3".into())]
    }

    #[test]
    fn parses_variables_literals_and_dollars() {
        let t = Template::parse("a ${device_id}-$$x ${labels.site}$ {b}", &labels()).unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Lit("a ".into()),
                Segment::Var(Var::DeviceId),
                Segment::Lit("-$x ".into()),
                Segment::Var(Var::Label(0)),
                Segment::Lit("$ {b}".into()),
            ]
        );
        assert!(Template::parse("plain", &[]).unwrap().is_static());
    }

    #[test]
    fn filters() {
        let t = Template::parse("{\"text\": \"${content|slack}\"}", &[]).unwrap();
        assert_eq!(
            t.segments[1],
            Segment::Filtered(Var::Content, Filter::Slack)
        );
        assert!(!t.is_static());
        let e = Template::parse("ab ${content|mrkdwn}", &[]).unwrap_err();
        assert_eq!(e.offset, 13);
        assert!(
            e.message.starts_with("unknown filter `mrkdwn`"),
            "{}",
            e.message
        );
        let e = Template::parse("${alarm|slack}", &[]).unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = Template::parse("${nope|slack}", &[]).unwrap_err();
        assert!(
            e.message.starts_with("unknown variable `${nope}`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn errors_point_at_the_variable() {
        let e = Template::parse("ab ${nope} c", &labels()).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(
            e.message.starts_with("unknown variable `${nope}`"),
            "{}",
            e.message
        );
        let e = Template::parse("x $$ ${labels.zone}", &labels()).unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("no fleet label `zone`"), "{}", e.message);
        let e = Template::parse("é ${device_id", &[]).unwrap_err();
        assert_eq!(e.offset, 3);
    }
}
