//! The one event type that flows from rules (and the agent itself) to delivery.
//!
//! An [`Event`] is plain fixed-size data: it is built once, copied into each webhook's
//! outbox, and rendered there. Nothing in it points to the heap.

use crate::limits::{MAX_DIM_VALUE_LEN, MAX_NAME_LEN};
use crate::metric::{DimValue, Metric};

use core::fmt::Write as _;

/// Milliseconds since the Unix epoch, passed in by the caller.
pub type Millis = u64;

/// Alert level, ordered INFO < WARN < CRITICAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Informational.
    Info,
    /// Warning.
    Warn,
    /// Critical.
    Critical,
}

impl Level {
    /// `CRITICAL`, `WARN` or `INFO`, as CloudMonitor's `triggerLevel` spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Critical => "CRITICAL",
        }
    }

    /// Parses the config spelling (`critical`, `warn`, `info`).
    pub fn from_config(s: &str) -> Option<Level> {
        match s {
            "critical" => Some(Level::Critical),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            _ => None,
        }
    }
}

/// The alert state, as CloudMonitor's `alertState` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// No active alert.
    Ok,
    /// Firing.
    Alert,
    /// The rule has had no data for `no_data_after` samples.
    InsufficientData,
}

impl AlertState {
    /// `OK`, `ALERT` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "OK",
            AlertState::Alert => "ALERT",
            AlertState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// A comparison operator: `>` `>=` `<` `<=` `==` `!=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// The operator as written in config and in expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// `op value`, e.g. `> 95`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    /// The comparison.
    pub op: Op,
    /// The right-hand side, finite.
    pub value: f64,
}

impl Condition {
    /// Whether `x op value` holds. `==`/`!=` compare exactly: they are meant for 0/1 metrics.
    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Eq => x == self.value,
            Op::Ne => x != self.value,
        }
    }
}

/// What a rule compares with its thresholds: the sample itself, or an aggregate of the
/// samples of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// The sample itself (no window).
    #[default]
    Last,
    /// The mean of the samples in the window.
    Avg,
    /// The largest sample in the window.
    Max,
    /// The smallest sample in the window.
    Min,
    /// The sum of the samples in the window (gaps under-count).
    Sum,
}

impl Aggregate {
    /// Every aggregate, in the order of their one-byte codes (`Last` is 0).
    pub const ALL: [Aggregate; 5] = [
        Aggregate::Last,
        Aggregate::Avg,
        Aggregate::Max,
        Aggregate::Min,
        Aggregate::Sum,
    ];

    /// Parses the config's name: `avg`, `max`, `min`, `sum`, `last`.
    pub fn from_config(s: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The config's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Sum => "sum",
        }
    }

    /// The variable an `expression` compares, as CloudMonitor names its statistics:
    /// `$Average`, `$Maximum`, `$Minimum`, `$Sum`, and `$value` for the sample itself.
    pub fn variable(self) -> &'static str {
        match self {
            Aggregate::Last => "$value",
            Aggregate::Avg => "$Average",
            Aggregate::Max => "$Maximum",
            Aggregate::Min => "$Minimum",
            Aggregate::Sum => "$Sum",
        }
    }

    /// The one-byte code stored files use (`Last` is 0, so files written before windows
    /// existed read as `Last`).
    pub fn code(self) -> u8 {
        Aggregate::ALL.iter().position(|a| *a == self).unwrap_or(0) as u8
    }

    /// The aggregate of a [`code`](Self::code).
    pub fn from_code(c: u8) -> Option<Aggregate> {
        Aggregate::ALL.get(usize::from(c)).copied()
    }
}

/// The kinds of event, as webhook `events` filters name them (the event types of the webhook-management screen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A rule fired, changed level, or repeats.
    Alarm,
    /// A rule recovered.
    Recovery,
    /// A rule has had no data.
    NoData,
    /// The agent started.
    AgentStart,
    /// The agent is stopping.
    AgentStop,
    /// The config was reloaded (or a fallback was used).
    ConfigReload,
    /// The device rebooted.
    Reboot,
    /// An event could not be delivered.
    DeliveryFailed,
    /// Dead-man's switch.
    Heartbeat,
    /// `tocsin test`.
    Test,
}

impl EventType {
    /// Every type, in the order the design lists them.
    pub const ALL: [EventType; 10] = [
        EventType::Alarm,
        EventType::Recovery,
        EventType::NoData,
        EventType::AgentStart,
        EventType::AgentStop,
        EventType::ConfigReload,
        EventType::Reboot,
        EventType::DeliveryFailed,
        EventType::Heartbeat,
        EventType::Test,
    ];

    /// The config / template spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Alarm => "alarm",
            EventType::Recovery => "recovery",
            EventType::NoData => "no_data",
            EventType::AgentStart => "agent_start",
            EventType::AgentStop => "agent_stop",
            EventType::ConfigReload => "config_reload",
            EventType::Reboot => "reboot",
            EventType::DeliveryFailed => "delivery_failed",
            EventType::Heartbeat => "heartbeat",
            EventType::Test => "test",
        }
    }

    /// Parses the config spelling.
    pub fn from_name(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// This type's bit in an [`EventMask`].
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMask(pub u16);

impl EventMask {
    /// The default for a webhook: every type but `heartbeat`.
    pub const DEFAULT: EventMask = EventMask(0x3ff & !(1 << EventType::Heartbeat as u16));

    /// Whether `t` is in the set.
    pub fn contains(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }
}

/// The language of human-readable content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Language {
    /// Parses `en` / `zh`.
    pub fn from_config(s: &str) -> Option<Language> {
        match s {
            "en" => Some(Language::En),
            "zh" => Some(Language::Zh),
            _ => None,
        }
    }
}

/// A 128-bit event id, unique across restarts: 48 bits of unix milliseconds and 80 random
/// bits, printed in the UUID version 7 layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EventId(pub [u8; 16]);

impl EventId {
    /// A new unique id for an event made at `now` (10 random bytes from the kernel).
    pub fn generate(now: Millis) -> EventId {
        let mut r = [0u8; 10];
        crate::util::random_fill(&mut r);
        EventId::new(now, r)
    }

    /// Builds a UUIDv7-shaped id from the time and 10 random bytes.
    pub fn new(now: Millis, random: [u8; 10]) -> EventId {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&now.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        b[6] = 0x70 | (b[6] & 0x0f);
        b[8] = 0x80 | (b[8] & 0x3f);
        EventId(b)
    }

    /// The 36-character hyphenated form.
    pub fn to_text(&self) -> heapless::String<36> {
        let mut s = heapless::String::new();
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                let _ = s.push('-');
            }
            let _ = write!(s, "{byte:02x}");
        }
        s
    }
}

/// Short text owned by an event (names).
pub type Name = heapless::String<MAX_NAME_LEN>;

/// One event, complete: everything a payload may need.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique id; the idempotency key every attempt carries.
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// Index of the rule in the config (rule events only).
    pub rule: Option<usize>,
    /// The rule's name, or empty.
    pub rule_name: Name,
    /// The alert state.
    pub state: AlertState,
    /// The level.
    pub level: Level,
    /// The level before (equal to `level` when it did not change).
    pub prev_level: Level,
    /// The metric, for rule events.
    pub metric: Option<Metric>,
    /// The dimension key of the series (`mount`, `iface`, `sensor`, …), if it has one.
    pub dim_key: Option<&'static str>,
    /// The dimension value of the series (empty if none).
    pub dim: DimValue,
    /// The value that caused the event.
    pub value: Option<f64>,
    /// The threshold of `level`.
    pub threshold: Option<Condition>,
    /// What `value` is: the sample, or an aggregate over the rule's window.
    pub aggregate: Aggregate,
    /// Breaches counted in this episode (HertzBeat's `times`).
    pub times: u32,
    /// The rule's configured `times` (the cloud monitor's `expression.times`); 0 for agent events.
    pub rule_times: u8,
    /// When the event was made (unix ms).
    pub timestamp_ms: Millis,
    /// First breach of this episode.
    pub first_trigger_ms: Millis,
    /// Latest breach.
    pub last_trigger_ms: Millis,
    /// Free text for agent events (e.g. the reason of a config reload), or empty.
    pub detail: heapless::String<MAX_DIM_VALUE_LEN>,
    /// The event a replay re-sends.
    pub replay_of: Option<EventId>,
}

impl Event {
    /// An agent event (`agent_start`, `test`, …) with an optional detail text.
    pub fn agent(kind: EventType, id: EventId, now: Millis, detail: &str) -> Event {
        Event {
            id,
            kind,
            rule: None,
            rule_name: Name::new(),
            state: AlertState::Ok,
            level: Level::Info,
            prev_level: Level::Info,
            metric: None,
            dim_key: None,
            dim: DimValue::new(),
            value: None,
            threshold: None,
            aggregate: Aggregate::Last,
            times: 0,
            rule_times: 0,
            timestamp_ms: now,
            first_trigger_ms: now,
            last_trigger_ms: now,
            detail: truncated(detail),
            replay_of: None,
        }
    }

    /// The dimension key of the series (`mount`, `iface`, `sensor`, …), if it has one: the
    /// event's own, else the metric's usual one.
    pub fn dimension_key(&self) -> Option<&'static str> {
        self.dim_key
            .or_else(|| self.metric.and_then(|m| m.dimension()))
    }

    /// The series this event is about, as a stable hash: rule name, metric and dimension
    /// value for rule events, the event type for agent events. Events of one series reach
    /// a webhook in the order they were raised.
    pub fn series_key(&self) -> u64 {
        match self.metric {
            Some(m) if self.rule.is_some() => crate::util::fnv1a(&[
                self.rule_name.as_bytes(),
                b"\0",
                m.name().as_bytes(),
                b"\0",
                self.dim.as_bytes(),
            ]),
            _ => crate::util::fnv1a(&[b"tocsin.", self.kind.as_str().as_bytes()]),
        }
    }

    /// Whether this event carries a level that `min_level` filters (rule events do).
    pub fn has_level(&self) -> bool {
        self.rule.is_some()
    }
}

/// Copies as much of `s` as fits, cutting at a character boundary.
pub fn truncated<const N: usize>(s: &str) -> heapless::String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    let _ = out.push_str(&s[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_uuid_v7_shaped() {
        let id = EventId::new(0x0123_4567_89ab, [0xff; 10]);
        assert_eq!(
            id.to_text().as_str(),
            "01234567-89ab-7fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn default_mask_excludes_heartbeat_only() {
        for t in EventType::ALL {
            assert_eq!(
                EventMask::DEFAULT.contains(t),
                t != EventType::Heartbeat,
                "{t:?}"
            );
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s: heapless::String<4> = truncated("aéé");
        assert_eq!(s.as_str(), "aé");
    }
}
