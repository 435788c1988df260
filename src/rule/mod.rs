//! Threshold rules: a pure state machine per rule and series.
//!
//! Samples and `now` go in, [`Transition`]s come out. Nothing here reads the clock or
//! touches files; the service turns transitions into events.

mod eval;
mod window;

pub use crate::util::glob_match;
pub use eval::Evaluator;
pub use window::{ring_bytes, ring_len};

pub use crate::event::{Aggregate, AlertState, Condition, Level, Millis, Op};
use crate::event::{Event, EventId, EventType};
use crate::metric::{DimValue, Metric};

/// What a rule does once it has had no sample for `no_data_after` cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// Go to INSUFFICIENT_DATA and send a `no_data` event.
    Alert,
    /// Treat missing data as OK: a firing rule recovers.
    Ok,
    /// Keep the current state, send nothing.
    Keep,
}

/// A validated rule, as the evaluator needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// The rule's unique name.
    pub name: heapless::String<{ crate::limits::MAX_NAME_LEN }>,
    /// The metric it watches.
    pub metric: Metric,
    /// Which dimension key `match_dim` applies to (`None`: any key the metric has).
    pub match_key: Option<&'static str>,
    /// Glob over the metric's dimension value (`None`: every series).
    pub match_dim: Option<DimValue>,
    /// Thresholds indexed by level: `[info, warn, critical]`.
    pub thresholds: [Option<Condition>; 3],
    /// Breaches needed before firing (consecutive, or out of `within`).
    pub times: u8,
    /// N-of-M: fire when `times` of the last `within` samples breach.
    pub within: Option<u8>,
    /// Separate recovery condition (hysteresis); `None`: recover when no threshold breaches.
    pub clear: Option<Condition>,
    /// Consecutive clear samples before recovery.
    pub clear_times: u8,
    /// Re-notify this often while firing.
    pub repeat_ms: Option<u64>,
    /// Missing-data handling.
    pub no_data: NoData,
    /// Missing cycles before `no_data` applies.
    pub no_data_after: u8,
    /// What the thresholds compare: the sample itself (`Last`), or an aggregate of the
    /// samples of the last `window_ms`.
    pub aggregate: Aggregate,
    /// The window of an aggregate, ms (0 with `Last`).
    pub window_ms: u64,
    /// The sampling interval the window's rings are sized for, ms (0 with `Last`).
    pub interval_ms: u64,
}

impl RuleSpec {
    /// Whether `other` is the same rule: name, metric and dimension key (`match_key`). A
    /// change of anything else (thresholds, `times`, `repeat`, `notify`, the match glob…)
    /// keeps a rule's episodes; a changed identity is a removed rule and a new one.
    pub fn same_identity(&self, other: &RuleSpec) -> bool {
        self.name == other.name && self.metric == other.metric && self.match_key == other.match_key
    }

    /// Whether `other` computes the same windows: the same aggregate, window and sampling
    /// interval. A reload that changes any of them restarts the rule's windows.
    pub fn same_window(&self, other: &RuleSpec) -> bool {
        (self.aggregate, self.window_ms, self.interval_ms)
            == (other.aggregate, other.window_ms, other.interval_ms)
    }

    /// The highest level whose threshold `x` breaches.
    pub fn level_of(&self, x: f64) -> Option<Level> {
        [Level::Critical, Level::Warn, Level::Info]
            .into_iter()
            .find(|&l| self.thresholds[l as usize].is_some_and(|c| c.holds(x)))
    }
}

/// What kind of notification a transition asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionKind {
    /// Firing, an escalation/de-escalation (`prev_level` differs), or a repeat (`prev_level` equal).
    Alarm,
    /// Back to OK.
    Recovery,
    /// Went to INSUFFICIENT_DATA.
    NoData,
}

/// One state change of one series of one rule, for the service to turn into an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Index of the rule in the config's rule list.
    pub rule: usize,
    /// The series' dimension key (`None` for metrics without a dimension).
    pub key: Option<&'static str>,
    /// The series' dimension value (empty for metrics without a dimension).
    pub dim: DimValue,
    /// What happened.
    pub kind: TransitionKind,
    /// The alert state after the transition.
    pub state: AlertState,
    /// The level now (for a recovery: the level that was firing).
    pub level: Level,
    /// The level notified before this transition (equal to `level` on first firing and repeats).
    pub prev_level: Level,
    /// The sample that caused it (`None` for no-data).
    pub value: Option<f64>,
    /// The threshold of `level`.
    pub threshold: Option<Condition>,
    /// When this episode first breached.
    pub first_trigger_ms: Millis,
    /// The latest breach.
    pub last_trigger_ms: Millis,
    /// Breaches counted in this episode.
    pub times: u32,
}

impl Transition {
    /// The event of this transition of `rule`, made at `now`.
    pub fn to_event(&self, rule: &RuleSpec, id: EventId, now: Millis) -> Event {
        let t = self;
        let kind = match t.kind {
            TransitionKind::Alarm => EventType::Alarm,
            TransitionKind::Recovery => EventType::Recovery,
            TransitionKind::NoData => EventType::NoData,
        };
        Event {
            id,
            kind,
            rule: Some(t.rule),
            rule_name: rule.name.clone(),
            state: t.state,
            level: t.level,
            prev_level: t.prev_level,
            metric: Some(rule.metric),
            dim_key: t.key.or(rule.match_key).or_else(|| rule.metric.dimension()),
            dim: t.dim.clone(),
            value: t.value,
            threshold: t.threshold,
            aggregate: rule.aggregate,
            times: t.times,
            rule_times: rule.times,
            timestamp_ms: now,
            first_trigger_ms: t.first_trigger_ms,
            last_trigger_ms: t.last_trigger_ms,
            detail: heapless::String::new(),
            replay_of: None,
        }
    }
}

/// A series as the firing-state file recorded it, for [`Evaluator::restore`].
#[derive(Clone, Debug, PartialEq)]
pub struct Restore {
    /// The samples' dimension key, as the series had it.
    pub key: Option<&'static str>,
    /// The dimension value.
    pub dim: DimValue,
    /// ALERT or INSUFFICIENT_DATA (OK is not restored).
    pub state: AlertState,
    /// The firing level, or the no-data event's.
    pub level: Level,
    /// The episode's first trigger.
    pub first_ms: Millis,
    /// The latest trigger.
    pub last_ms: Millis,
    /// Breaches counted in the episode.
    pub times: u32,
    /// When the next repeat counts from (the service picks it: see the module docs of
    /// `service::firing`).
    pub last_notified_ms: Millis,
}

/// A row of `tocsin once`: a series' current state.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesView {
    /// Index of the rule.
    pub rule: usize,
    /// Dimension value.
    pub dim: DimValue,
    /// Latest value, if any.
    pub value: Option<f64>,
    /// Level breached by the latest value, if any.
    pub level: Option<Level>,
    /// `OK`, `PENDING`, `ALERT` or `INSUFFICIENT_DATA`.
    pub state: &'static str,
}
