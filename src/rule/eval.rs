//! The threshold-rule state machine.
//!
//! [`Evaluator::evaluate`] is called once per sampling cycle with every sample of the cycle
//! and the current time; it calls `emit` once per [`Transition`]. It never reads the clock,
//! never panics and never allocates: all state lives in fixed-capacity `heapless` vectors
//! allocated by [`Evaluator::new`].
//!
//! # Series
//!
//! For each rule, every sample with `metric == rule.metric` whose `dim` matches
//! `rule.match_dim` (a glob, see [`glob_match`]; `None` matches every dim) belongs to the
//! series keyed by that `dim`. A rule tracks at most [`MAX_SERIES_PER_RULE`] series;
//! samples of further new series are ignored and counted by
//! [`Evaluator::series_overflow`] (once per ignored sample per cycle). When the rule names
//! a dimension key (`rule.match_key`, e.g. `sensor` for `temp.celsius`, whose samples carry
//! `type` or `sensor`), only samples with that key match; series are keyed by key and dim. Series are never
//! forgotten: one that stops getting samples goes through the no-data handling below.
//!
//! A rule that has never seen a matching sample has one *placeholder* series with an empty
//! dim, so that no-data works for it. For a metric without a dimension the first sample
//! (dim `""`) simply lands in the placeholder, which becomes a real series and keeps its
//! state. Otherwise the placeholder is dropped when the first real series appears; if it
//! was INSUFFICIENT_DATA a `Recovery` (dim `""`, value `None`, the no-data level) is
//! emitted first so the receiver learns data came back. (A placeholder can never be
//! ALERT: it never receives a sample.)
//!
//! # States and inputs
//!
//! Each series is OK, PENDING (breached, count not reached), ALERT at a level, or
//! INSUFFICIENT_DATA. The input of a sample is `breach = rule.level_of(value)`, the highest
//! level whose threshold it breaches. Below, `times`, `clear_times` and `no_data_after`
//! are taken as at least 1, and `within` is clamped to `1..=64`.
//!
//! # Firing (OK/PENDING → ALERT)
//!
//! * Without `within`: a breaching sample (any level) increments a consecutive count, a
//!   non-breaching one resets it; a PENDING series whose count is reset goes back to OK
//!   silently. When the count reaches `times` the series fires.
//! * With `within = Some(m)`: a bit history of the last `m` samples (u64 bitmask) records
//!   which breached. The series fires on a breaching sample when at least `times` of the
//!   last `m` breached; a non-breaching sample never fires. The series is PENDING while
//!   the window holds a breach and goes back to OK silently when it holds none.
//!
//! The *episode* starts with the first breach after OK: `first_trigger_ms` is its time.
//! Firing emits `Alarm` with `state: Alert`, `level = prev_level =` the current sample's
//! level, its threshold, `last_trigger_ms = now` and `times` = the breaches counted (the
//! consecutive count, or the breaches in the window). While ALERT, every further breaching
//! sample adds one to the episode's `times` and sets `last_trigger_ms`.
//!
//! # Level changes while ALERT at level L
//!
//! A sample breaching at a level `l != L` counts toward a change to `l`; after `times`
//! consecutive samples at the same `l` an `Alarm` with `level = l, prev_level = L` is
//! emitted (escalation or de-escalation) and the series is ALERT at `l`. A sample at `L`, at
//! a different new level (which restarts the count at 1 for that level) or not breaching
//! at all resets the count.
//!
//! # Recovery (ALERT → OK)
//!
//! A sample *clears* if it breaches no threshold and (`rule.clear` is `None` or
//! `rule.clear` holds). After `clear_times` consecutive clearing samples a `Recovery` is
//! emitted (`state: Ok`, `level = prev_level =` the firing level, its threshold, the
//! sample's value, the episode's first/last trigger and `times`) and the series goes to OK
//! with every counter and the history reset. Any sample that does not clear — a breaching
//! one, or with hysteresis one that neither breaches nor satisfies `clear` — resets the
//! clear count and keeps ALERT.
//!
//! # Repeat
//!
//! At the end of each cycle, a series that is ALERT, for which no `Alarm` was emitted in
//! this cycle, with `repeat_ms = Some(r)` and `now - last_notified >= r` (less a slack of
//! 5 % of `r`, at most 1 s, for tick jitter), emits an `Alarm`
//! with `prev_level == level` (a repeat). Every `Alarm` (firing, level change, repeat) sets
//! `last_notified = now`. A repeat carries the latest value (`None` if the series had no
//! sample this cycle).
//!
//! # No data
//!
//! A series with no sample in a cycle increments its `missing` count; any sample resets it.
//! Missing cycles do not touch the breach counts. When `missing` reaches `no_data_after`
//! (exactly once per outage):
//!
//! * [`NoData::Alert`]: emit `NoData` with `state: InsufficientData`, `level` = the firing
//!   level if ALERT, else the lowest level the rule configures (INFO if none), that level's
//!   threshold, `value: None`, `first_trigger_ms` = the episode's if ALERT else `now`,
//!   `last_trigger_ms = now`, `times` = the missing cycles (`no_data_after`); the series
//!   goes INSUFFICIENT_DATA with its counters reset.
//! * [`NoData::Ok`]: if ALERT emit `Recovery` (`value: None`, otherwise as above) and go
//!   OK; if PENDING go OK silently; if OK nothing.
//! * [`NoData::Keep`]: nothing; the state is kept (an ALERT series keeps repeating).
//!
//! When a sample reaches an INSUFFICIENT_DATA series, it is evaluated from a fresh OK
//! state. If it fires (`times == 1`), only that `Alarm` is emitted; otherwise a `Recovery`
//! (`state: Ok`, `level = prev_level =` the level of the no-data event, the sample's value,
//! and the no-data event's first/last trigger and `times`) tells the receiver data came
//! back, and the series is OK or PENDING per that sample.
//!
//! # Windows
//!
//! A rule with an `aggregate` other than `last` keeps, per series, a ring of its latest
//! samples (see `rule::window` for its size, which samples are in the window, and the
//! warm-up). Its sample's input is then the aggregate of the window, not the sample: the
//! rules above apply to the aggregate as to a sample (`value` of every transition is the
//! aggregate). While a series warms up its cycles count for nothing: no breach count, no
//! `within` shift, no missing sample. After the warm-up, a cycle without a sample is a
//! missing sample and is not evaluated. The ring of a new series is allocated at its first
//! sample (the placeholder's at construction), never again for that series.
//!
//! # View
//!
//! [`Evaluator::view`] reports every series (including a placeholder) with state `"OK"`,
//! `"PENDING"`, `"ALERT"` or `"INSUFFICIENT_DATA"`; `value`/`level` are those of the
//! latest sample, or `None` if the series had no sample in the latest cycle.
//!
//! The `rules` slice given to `evaluate`/`view` must be the one given to `new`; rules
//! beyond the ones `new` saw are ignored.
//!
//! [`glob_match`]: super::glob_match
//! [`MAX_SERIES_PER_RULE`]: crate::limits::MAX_SERIES_PER_RULE

use super::window::{Ring, Shape};
use super::{
    glob_match, AlertState, Level, Millis, NoData, Restore, RuleSpec, SeriesView, Transition,
    TransitionKind,
};
use crate::limits::MAX_SERIES_PER_RULE;
use crate::metric::{DimValue, Sample};

/// Where a series is in the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ok,
    Pending,
    Alert,
    NoData,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Ok => "OK",
            Phase::Pending => "PENDING",
            Phase::Alert => "ALERT",
            Phase::NoData => "INSUFFICIENT_DATA",
        }
    }
}

/// The state of one series of one rule.
#[derive(Clone, Debug)]
struct Series {
    /// The dimension key of the samples (`type` or `sensor` for `temp.celsius`), if any.
    key: Option<&'static str>,
    dim: DimValue,
    /// Stands in for a rule that has never seen a matching sample.
    placeholder: bool,
    phase: Phase,
    /// The firing level (ALERT) or the level of the no-data event (INSUFFICIENT_DATA).
    level: Level,
    /// Consecutive breaches (mode without `within`).
    consec: u32,
    /// Breach bits of the last `within` samples, newest in bit 0.
    history: u64,
    /// Breaches counted in this episode.
    episode: u32,
    /// First breach of this episode (for INSUFFICIENT_DATA: that event's first trigger).
    first_ms: Millis,
    /// Latest breach (for INSUFFICIENT_DATA: the no-data event's time).
    last_ms: Millis,
    /// While ALERT: the new level being counted toward a level change, and its count.
    change: Option<Level>,
    change_count: u32,
    /// While ALERT: consecutive clearing samples.
    clear_count: u32,
    last_notified: Millis,
    /// Consecutive cycles without a sample.
    missing: u32,
    /// Got a sample in the current cycle.
    seen: bool,
    /// An `Alarm` was emitted in the current cycle.
    notified: bool,
    last_value: Option<f64>,
    last_level: Option<Level>,
    /// The window of a rule with an aggregate (no slots otherwise).
    ring: Ring,
    /// The last `carry_over` restarted this series' window and so ended its episode.
    window_restarted: bool,
}

/// Everything a step needs to emit a transition.
struct Step<'a, 'e> {
    idx: usize,
    rule: &'a RuleSpec,
    now: Millis,
    /// Monotonic ms, for windows.
    mono: u64,
    /// The rule's window geometry (`None`: it compares samples themselves).
    shape: Option<Shape>,
    emit: &'e mut dyn FnMut(Transition),
}

impl Series {
    fn new(key: Option<&'static str>, dim: DimValue, placeholder: bool, ring: Ring) -> Series {
        Series {
            key,
            dim,
            placeholder,
            phase: Phase::Ok,
            level: Level::Info,
            consec: 0,
            history: 0,
            episode: 0,
            first_ms: 0,
            last_ms: 0,
            change: None,
            change_count: 0,
            clear_count: 0,
            last_notified: 0,
            missing: 0,
            seen: false,
            notified: false,
            last_value: None,
            last_level: None,
            ring,
            window_restarted: false,
        }
    }

    /// A sample of a rule with a window: recorded, and evaluated as the aggregate once the
    /// warm-up is over. A warm-up cycle counts for nothing (no `times`, no `within` shift).
    fn on_window_sample(&mut self, cx: &mut Step<'_, '_>, shape: &Shape, value: f64) {
        if !self.ring.fits(shape) {
            // A series' first sample (or the first after a reload resized its window).
            self.ring = Ring::new(shape);
        }
        match self.ring.push(cx.mono, value, shape) {
            Some(aggregate) => self.on_sample(cx, aggregate),
            None => {
                self.seen = true;
                self.last_value = None;
                self.last_level = None;
            }
        }
    }

    /// A reload changed the rule's aggregate, window or interval: the window starts over
    /// (warm-up again, with `shape`'s slots). An ALERT or PENDING series goes back to OK
    /// (its alarm was about another window: the service owes its recovery, see
    /// [`Evaluator::window_restarted`]); an INSUFFICIENT_DATA one stays so until data comes.
    fn restart_window(&mut self, shape: Option<&Shape>) {
        self.window_restarted = self.phase == Phase::Alert;
        if self.phase != Phase::NoData {
            self.reset();
        }
        self.missing = 0;
        self.last_value = None;
        self.last_level = None;
        self.ring = shape.map(Ring::new).unwrap_or_default();
    }

    /// Back to OK with every counter and the history cleared.
    fn reset(&mut self) {
        self.phase = Phase::Ok;
        self.consec = 0;
        self.history = 0;
        self.episode = 0;
        self.first_ms = 0;
        self.last_ms = 0;
        self.change = None;
        self.change_count = 0;
        self.clear_count = 0;
    }

    /// A transition of this series with the episode's trigger times and count.
    fn transition(
        &self,
        cx: &Step<'_, '_>,
        kind: TransitionKind,
        state: AlertState,
        level: Level,
        prev_level: Level,
        value: Option<f64>,
    ) -> Transition {
        Transition {
            rule: cx.idx,
            key: self.key,
            dim: self.dim.clone(),
            kind,
            state,
            level,
            prev_level,
            value,
            threshold: cx.rule.thresholds[level as usize],
            first_trigger_ms: self.first_ms,
            last_trigger_ms: self.last_ms,
            times: self.episode,
        }
    }

    fn alarm(&mut self, cx: &mut Step<'_, '_>, level: Level, prev: Level, value: Option<f64>) {
        let t = self.transition(
            cx,
            TransitionKind::Alarm,
            AlertState::Alert,
            level,
            prev,
            value,
        );
        (cx.emit)(t);
        self.last_notified = cx.now;
        self.notified = true;
    }

    fn recovery(&mut self, cx: &mut Step<'_, '_>, value: Option<f64>) {
        let t = self.transition(
            cx,
            TransitionKind::Recovery,
            AlertState::Ok,
            self.level,
            self.level,
            value,
        );
        (cx.emit)(t);
        self.reset();
    }

    /// One sample of this series.
    fn on_sample(&mut self, cx: &mut Step<'_, '_>, value: f64) {
        self.missing = 0;
        self.seen = true;
        let breach = cx.rule.level_of(value);
        self.last_value = Some(value);
        self.last_level = breach;

        if self.phase == Phase::NoData {
            // Data came back: start over from a fresh OK state.
            let nd_level = self.level;
            let (first, last, times) = (self.first_ms, self.last_ms, self.episode);
            self.reset();
            self.step(cx, breach, value);
            if self.phase != Phase::Alert {
                let mut t = self.transition(
                    cx,
                    TransitionKind::Recovery,
                    AlertState::Ok,
                    nd_level,
                    nd_level,
                    Some(value),
                );
                t.first_trigger_ms = first;
                t.last_trigger_ms = last;
                t.times = times;
                (cx.emit)(t);
            }
        } else {
            self.step(cx, breach, value);
        }
    }

    /// The state machine proper, for an OK, PENDING or ALERT series.
    fn step(&mut self, cx: &mut Step<'_, '_>, breach: Option<Level>, value: f64) {
        let rule = cx.rule;
        let now = cx.now;
        let times = u32::from(rule.times.max(1));
        match self.phase {
            Phase::Ok | Phase::Pending | Phase::NoData => {
                let count = match rule.within {
                    None => {
                        if breach.is_some() {
                            self.consec = self.consec.saturating_add(1);
                        } else {
                            self.consec = 0;
                        }
                        self.consec
                    }
                    Some(m) => {
                        let m = u32::from(m.clamp(1, 64));
                        let mask = if m >= 64 { u64::MAX } else { (1u64 << m) - 1 };
                        self.history = ((self.history << 1) | u64::from(breach.is_some())) & mask;
                        self.history.count_ones()
                    }
                };
                match breach {
                    Some(level) => {
                        if self.phase != Phase::Pending {
                            self.first_ms = now;
                            self.episode = 0;
                        }
                        self.episode = self.episode.saturating_add(1);
                        self.last_ms = now;
                        if count >= times {
                            self.phase = Phase::Alert;
                            self.level = level;
                            self.episode = count;
                            self.change = None;
                            self.change_count = 0;
                            self.clear_count = 0;
                            self.alarm(cx, level, level, Some(value));
                        } else {
                            self.phase = Phase::Pending;
                        }
                    }
                    None => {
                        if count == 0 {
                            // PENDING that clears goes back to OK silently.
                            self.reset();
                        }
                    }
                }
            }
            Phase::Alert => match breach {
                Some(l) => {
                    self.clear_count = 0;
                    self.episode = self.episode.saturating_add(1);
                    self.last_ms = now;
                    if l == self.level {
                        self.change = None;
                        self.change_count = 0;
                    } else {
                        if self.change == Some(l) {
                            self.change_count = self.change_count.saturating_add(1);
                        } else {
                            self.change = Some(l);
                            self.change_count = 1;
                        }
                        if self.change_count >= times {
                            let prev = self.level;
                            self.level = l;
                            self.change = None;
                            self.change_count = 0;
                            self.alarm(cx, l, prev, Some(value));
                        }
                    }
                }
                None => {
                    self.change = None;
                    self.change_count = 0;
                    let clears = rule.clear.is_none_or(|c| c.holds(value));
                    if clears {
                        self.clear_count = self.clear_count.saturating_add(1);
                        if self.clear_count >= u32::from(rule.clear_times.max(1)) {
                            self.recovery(cx, Some(value));
                        }
                    } else {
                        self.clear_count = 0;
                    }
                }
            },
        }
    }

    /// A cycle without a sample for this series.
    fn on_missing(&mut self, cx: &mut Step<'_, '_>) {
        self.missing = self.missing.saturating_add(1);
        if self.missing != u32::from(cx.rule.no_data_after.max(1)) {
            return;
        }
        match cx.rule.no_data {
            NoData::Alert => {
                if self.phase == Phase::NoData {
                    return;
                }
                let (level, first) = if self.phase == Phase::Alert {
                    (self.level, self.first_ms)
                } else {
                    (lowest_level(cx.rule), cx.now)
                };
                self.reset();
                self.phase = Phase::NoData;
                self.level = level;
                self.first_ms = first;
                self.last_ms = cx.now;
                self.episode = self.missing;
                let t = self.transition(
                    cx,
                    TransitionKind::NoData,
                    AlertState::InsufficientData,
                    level,
                    level,
                    None,
                );
                (cx.emit)(t);
            }
            NoData::Ok => match self.phase {
                Phase::Alert => self.recovery(cx, None),
                Phase::Pending => self.reset(),
                Phase::Ok | Phase::NoData => {}
            },
            NoData::Keep => {}
        }
    }

    /// The end-of-cycle repeat check.
    fn maybe_repeat(&mut self, cx: &mut Step<'_, '_>) {
        if self.phase != Phase::Alert || self.notified {
            return;
        }
        let Some(every) = cx.rule.repeat_ms else {
            return;
        };
        // Ticks drift by milliseconds: a repeat due within 5 % of its period (at most 1 s)
        // is due now, or `repeat = interval` would skip every cycle that came a hair early.
        let slack = (every / 20).min(1000);
        if cx.now.saturating_sub(self.last_notified) + slack >= every {
            let value = if self.seen { self.last_value } else { None };
            self.alarm(cx, self.level, self.level, value);
        }
    }
}

/// The lowest level `rule` configures a threshold for (INFO if it has none).
fn lowest_level(rule: &RuleSpec) -> Level {
    [Level::Info, Level::Warn, Level::Critical]
        .into_iter()
        .find(|&l| rule.thresholds[l as usize].is_some())
        .unwrap_or(Level::Info)
}

/// The series of one rule.
#[derive(Clone, Debug)]
struct RuleState {
    series: heapless::Vec<Series, MAX_SERIES_PER_RULE>,
}

impl RuleState {
    /// The placeholder series, with its window's ring allocated here for a rule with an
    /// aggregate (it becomes the series of a metric without a dimension).
    fn new(rule: &RuleSpec) -> RuleState {
        let mut series = heapless::Vec::new();
        let ring = Shape::of(rule).map(|s| Ring::new(&s)).unwrap_or_default();
        // Capacity is at least 1, so this cannot fail.
        let _ = series.push(Series::new(None, DimValue::new(), true, ring));
        RuleState { series }
    }
}

/// Per-rule, per-series alert state; the module documentation of `rule::eval` gives the
/// exact semantics.
#[derive(Clone, Debug)]
pub struct Evaluator {
    rules: Vec<RuleState>,
    series_overflow: u64,
}

impl Evaluator {
    /// State for `rules` (allocated once here; no heap allocation after construction in evaluate()).
    pub fn new(rules: &[RuleSpec]) -> Evaluator {
        let mut states = Vec::with_capacity(rules.len());
        states.extend(rules.iter().map(RuleState::new));
        Evaluator {
            rules: states,
            series_overflow: 0,
        }
    }

    /// After a reload: takes over the state (series, counters, firing level) of every rule
    /// of `old` with the same identity ([`RuleSpec::same_identity`]: name, metric, dimension
    /// key), so a reload neither re-fires nor forgets alerts; a rule whose thresholds,
    /// `times`, `repeat` or `notify` changed keeps its episode and is re-evaluated under
    /// the new spec from the next sample. A rule whose aggregate, window or sampling
    /// interval changed ([`RuleSpec::same_window`]) restarts its windows: every series
    /// warms up again, and one that was ALERT is OK now and reported by
    /// [`window_restarted`](Self::window_restarted), so that its recovery is sent (never
    /// dropped silently). Returns how many rules kept their state.
    pub fn carry_over(
        &mut self,
        rules: &[RuleSpec],
        old: Evaluator,
        old_rules: &[RuleSpec],
    ) -> usize {
        let mut old_states: Vec<Option<RuleState>> = old.rules.into_iter().map(Some).collect();
        let mut kept = 0;
        for (i, spec) in rules.iter().enumerate() {
            let Some(j) = old_rules.iter().position(|o| o.same_identity(spec)) else {
                continue;
            };
            if let (Some(mut state), Some(slot)) = (
                old_states.get_mut(j).and_then(Option::take),
                self.rules.get_mut(i),
            ) {
                let restart = !old_rules[j].same_window(spec);
                for s in state.series.iter_mut() {
                    s.window_restarted = false;
                    if restart {
                        s.restart_window(Shape::of(spec).as_ref());
                    }
                }
                *slot = state;
                kept += 1;
            }
        }
        kept
    }

    /// At start: puts back a series of rule `rule` as the firing-state file recorded it,
    /// so that it continues its episode instead of firing anew. Only ALERT and
    /// INSUFFICIENT_DATA are restored (an OK series needs nothing). An ALERT series keeps
    /// repeating `repeat` after `r.last_notified_ms`; with clearing samples it recovers
    /// after `clear_times` as usual, carrying `r.first_ms`; an INSUFFICIENT_DATA series
    /// recovers when data returns. Returns whether it was restored (the rule exists, the
    /// rule has room). Allocates nothing: the series go into the fixed vectors.
    pub fn restore(&mut self, rule: usize, r: &Restore) -> bool {
        let phase = match r.state {
            AlertState::Alert => Phase::Alert,
            AlertState::InsufficientData => Phase::NoData,
            AlertState::Ok => return false,
        };
        let Some(st) = self.rules.get_mut(rule) else {
            return false;
        };
        let pos = match st
            .series
            .iter()
            .position(|s| s.dim == r.dim && (s.placeholder || s.key == r.key))
        {
            Some(p) => p,
            None => {
                if let Some(ph) = st.series.iter().position(|s| s.placeholder) {
                    if st.series[ph].phase == Phase::Ok {
                        st.series.remove(ph);
                    }
                }
                if st
                    .series
                    .push(Series::new(r.key, r.dim.clone(), false, Ring::default()))
                    .is_err()
                {
                    return false;
                }
                st.series.len() - 1
            }
        };
        let s = &mut st.series[pos];
        if !(s.placeholder && r.dim.is_empty() && phase == Phase::NoData) {
            s.placeholder = false;
            s.key = r.key;
        }
        s.reset();
        s.phase = phase;
        s.level = r.level;
        s.first_ms = r.first_ms;
        s.last_ms = r.last_ms;
        s.episode = r.times;
        s.last_notified = r.last_notified_ms;
        // An ALERT series counts as breaching: N-of-M needs no fresh history to stay.
        s.history = if phase == Phase::Alert { 1 } else { 0 };
        true
    }

    /// Whether the last [`carry_over`](Self::carry_over) restarted the window of this
    /// series of rule `rule` and so ended its ALERT: the receivers are owed its recovery.
    pub fn window_restarted(&self, rule: usize, key: Option<&'static str>, dim: &DimValue) -> bool {
        self.rules.get(rule).is_some_and(|st| {
            st.series
                .iter()
                .any(|s| s.window_restarted && s.dim == *dim && (s.placeholder || s.key == key))
        })
    }

    /// Samples ignored because their rule already tracked [`MAX_SERIES_PER_RULE`] series
    /// (counted once per ignored sample per cycle).
    ///
    /// [`MAX_SERIES_PER_RULE`]: crate::limits::MAX_SERIES_PER_RULE
    pub fn series_overflow(&self) -> u64 {
        self.series_overflow
    }

    /// One cycle: `samples` are all samples of this cycle (any metrics); `now` is unix ms
    /// (for events), `mono` the process-wide monotonic ms (for windows: it never goes back,
    /// and a reload does not reset it). Calls `emit` once per transition.
    pub fn evaluate(
        &mut self,
        rules: &[RuleSpec],
        samples: &[Sample],
        now: Millis,
        mono: u64,
        emit: &mut dyn FnMut(Transition),
    ) {
        for (idx, (rule, st)) in rules.iter().zip(self.rules.iter_mut()).enumerate() {
            let mut cx = Step {
                idx,
                rule,
                now,
                mono,
                shape: Shape::of(rule),
                emit: &mut *emit,
            };
            for s in st.series.iter_mut() {
                s.seen = false;
                s.notified = false;
                s.window_restarted = false;
            }
            for sample in samples {
                if sample.metric != rule.metric {
                    continue;
                }
                if let Some(pattern) = &rule.match_dim {
                    let other_key = rule.match_key.is_some() && sample.key != rule.match_key;
                    if other_key || !glob_match(pattern, &sample.dim) {
                        continue;
                    }
                }
                let pos = match st
                    .series
                    .iter()
                    .position(|s| s.dim == sample.dim && (s.placeholder || s.key == sample.key))
                {
                    Some(pos) => pos,
                    None => {
                        if let Some(ph) = st.series.iter().position(|s| s.placeholder) {
                            let placeholder = st.series.remove(ph);
                            if placeholder.phase == Phase::NoData {
                                let level = placeholder.level;
                                let t = placeholder.transition(
                                    &cx,
                                    TransitionKind::Recovery,
                                    AlertState::Ok,
                                    level,
                                    level,
                                    None,
                                );
                                (cx.emit)(t);
                            }
                        }
                        match st.series.push(Series::new(
                            sample.key,
                            sample.dim.clone(),
                            false,
                            Ring::default(),
                        )) {
                            Ok(()) => st.series.len() - 1,
                            Err(_) => {
                                self.series_overflow = self.series_overflow.saturating_add(1);
                                continue;
                            }
                        }
                    }
                };
                if let Some(series) = st.series.get_mut(pos) {
                    series.placeholder = false;
                    series.key = sample.key;
                    match cx.shape {
                        Some(shape) => series.on_window_sample(&mut cx, &shape, sample.value),
                        None => series.on_sample(&mut cx, sample.value),
                    }
                }
            }
            for series in st.series.iter_mut() {
                // A cycle of the warm-up counts for nothing, a missing sample neither.
                let warming = cx
                    .shape
                    .is_some_and(|shape| series.ring.warming(mono, &shape));
                if !series.seen && !warming {
                    series.on_missing(&mut cx);
                }
                series.maybe_repeat(&mut cx);
            }
        }
    }

    /// Current state of every tracked series, for `tocsin once` / status.
    pub fn view(&self, rules: &[RuleSpec], out: &mut dyn FnMut(SeriesView)) {
        for (idx, (_, st)) in rules.iter().zip(self.rules.iter()).enumerate() {
            for s in &st.series {
                let fresh = s.missing == 0;
                out(SeriesView {
                    rule: idx,
                    dim: s.dim.clone(),
                    value: if fresh { s.last_value } else { None },
                    level: if fresh { s.last_level } else { None },
                    state: s.phase.as_str(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use crate::rule::{Condition, Op};
    use std::vec::Vec;

    const STEP_MS: u64 = 5000;

    fn cond(op: Op, value: f64) -> Option<Condition> {
        Some(Condition { op, value })
    }

    fn dim(s: &str) -> DimValue {
        DimValue::try_from(s).unwrap()
    }

    /// `mem.used_percent`: critical > 95, warn > 85; times 1, clear_times 1, no repeat,
    /// no_data keep after 3.
    fn mem_rule() -> RuleSpec {
        RuleSpec {
            name: heapless::String::try_from("mem").unwrap(),
            metric: Metric::MemUsed,
            match_key: None,
            match_dim: None,
            thresholds: [None, cond(Op::Gt, 85.0), cond(Op::Gt, 95.0)],
            times: 1,
            within: None,
            clear: None,
            clear_times: 1,
            repeat_ms: None,
            no_data: NoData::Keep,
            no_data_after: 3,
            aggregate: Default::default(),
            window_ms: 0,
            interval_ms: 0,
        }
    }

    fn mem(value: f64) -> Sample {
        Sample {
            metric: Metric::MemUsed,
            key: None,
            dim: DimValue::new(),
            value,
        }
    }

    fn disk(mount: &str, value: f64) -> Sample {
        Sample {
            metric: Metric::DiskUsed,
            key: None,
            dim: dim(mount),
            value,
        }
    }

    /// Drives an evaluator cycle by cycle at now = 0, 5000, 10000, …
    struct Harness {
        rules: Vec<RuleSpec>,
        ev: Evaluator,
        step: u64,
    }

    impl Harness {
        fn new(rules: Vec<RuleSpec>) -> Harness {
            let ev = Evaluator::new(&rules);
            Harness { rules, ev, step: 0 }
        }

        /// One cycle; returns its transitions.
        fn cycle(&mut self, samples: &[Sample]) -> Vec<Transition> {
            let mut out = Vec::new();
            let now = self.step * STEP_MS;
            self.ev
                .evaluate(&self.rules, samples, now, now, &mut |t| out.push(t));
            self.step += 1;
            out
        }

        fn view(&self) -> Vec<SeriesView> {
            let mut out = Vec::new();
            self.ev.view(&self.rules, &mut |v| out.push(v));
            out
        }

        /// The state string of rule 0's series `d`.
        fn state(&self, d: &str) -> &'static str {
            self.view()
                .into_iter()
                .find(|v| v.rule == 0 && v.dim == d)
                .map(|v| v.state)
                .unwrap_or("<none>")
        }
    }

    /// Feeds `script` (None = no sample that cycle) to a single mem rule; returns
    /// (cycle index, transition) pairs.
    fn run(rule: RuleSpec, script: &[Option<f64>]) -> Vec<(usize, Transition)> {
        let mut h = Harness::new(vec![rule]);
        let mut all = Vec::new();
        for (i, v) in script.iter().enumerate() {
            let samples: Vec<Sample> = v.iter().map(|&v| mem(v)).collect();
            all.extend(h.cycle(&samples).into_iter().map(|t| (i, t)));
        }
        all
    }

    fn vals(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    /// (cycle, kind, level, prev_level) of each transition.
    fn summary(ts: &[(usize, Transition)]) -> Vec<(usize, TransitionKind, Level, Level)> {
        ts.iter()
            .map(|(i, t)| (*i, t.kind, t.level, t.prev_level))
            .collect()
    }

    use Level::{Critical as C, Info as I, Warn as W};
    use TransitionKind::{Alarm, NoData as ND, Recovery as Rec};

    /// `mem_rule` averaged over 20 s at the harness's 5 s steps: a ring of 5, warm-up
    /// until the first sample is 15 s old (the 4th sample is the first evaluated).
    fn avg_rule() -> RuleSpec {
        RuleSpec {
            aggregate: crate::rule::Aggregate::Avg,
            window_ms: 20_000,
            interval_ms: STEP_MS,
            ..mem_rule()
        }
    }

    #[test]
    fn a_window_fires_on_its_average_and_not_on_a_spike() {
        // A spike of 100 among 20s: the average of four samples never passes 85.
        let ts = run(
            avg_rule(),
            &vals(&[20.0, 20.0, 20.0, 20.0, 100.0, 20.0, 20.0, 20.0]),
        );
        assert!(ts.is_empty(), "{ts:?}");
        // The same samples compared one by one fire on the spike.
        let ts = run(mem_rule(), &vals(&[20.0, 20.0, 20.0, 20.0, 100.0]));
        assert_eq!(summary(&ts), vec![(4, Alarm, C, C)]);
        // A sustained 96–98: fires on the first evaluated cycle, carrying the average.
        let ts = run(avg_rule(), &vals(&[96.0, 98.0, 96.0, 98.0, 97.0]));
        assert_eq!(summary(&ts), vec![(3, Alarm, C, C)]);
        assert_eq!(ts[0].1.value, Some(97.0));
    }

    #[test]
    fn warm_up_cycles_count_for_nothing() {
        // times = 2: the three warm-up breaches do not count; the 4th and 5th do.
        let mut r = avg_rule();
        r.times = 2;
        let ts = run(r.clone(), &vals(&[99.0; 6]));
        assert_eq!(summary(&ts), vec![(4, Alarm, C, C)]);
        assert_eq!(ts[0].1.times, 2);
        // within = 3 (times 2): the warm-up does not shift the history either.
        r.within = Some(3);
        let ts = run(r.clone(), &vals(&[99.0; 6]));
        assert_eq!(summary(&ts), vec![(4, Alarm, C, C)]);
        // Missing cycles inside the warm-up are not missing samples: no_data_after 1
        // reaches no_data only once the warm-up is over.
        r.no_data = NoData::Alert;
        r.no_data_after = 1;
        r.within = None;
        let ts = run(r, &[Some(50.0), None, None, None, None]);
        assert_eq!(
            ts.iter().map(|(i, t)| (*i, t.kind)).collect::<Vec<_>>(),
            vec![(3, ND)]
        );
    }

    #[test]
    fn a_vanished_series_of_a_window_reaches_no_data_and_a_gap_is_missing() {
        let mut r = avg_rule();
        r.aggregate = crate::rule::Aggregate::Max;
        r.no_data = NoData::Alert;
        r.no_data_after = 2;
        r.times = 2;
        // Warm at cycle 3 (max 80), one breach at 4, a gap at 5 (one missing sample: not
        // evaluated, the consecutive count stays), a breach at 6 fires; then the series
        // vanishes and reaches no_data after two missing cycles.
        let script = [
            Some(60.0),
            Some(60.0),
            Some(60.0),
            Some(80.0),
            Some(99.0),
            None,
            Some(50.0),
            None,
            None,
        ];
        let ts = run(r, &script);
        let kinds: Vec<_> = ts.iter().map(|(i, t)| (*i, t.kind)).collect();
        assert_eq!(kinds, vec![(6, Alarm), (8, ND)], "{ts:?}");
        // Cycle 6's maximum is cycle 4's 99, still in the window.
        assert_eq!(ts[0].1.value, Some(99.0));
    }

    #[test]
    fn a_restored_series_of_a_window_warms_up_or_reaches_no_data() {
        let mut r = avg_rule();
        r.no_data = NoData::Alert;
        let rules = vec![r];
        let restore = Restore {
            key: None,
            dim: dim("/"),
            state: AlertState::Alert,
            level: C,
            first_ms: 1_000,
            last_ms: 2_000,
            times: 7,
            last_notified_ms: 0,
        };
        // No sample after the start: a series that has none is not warming up, so the
        // missing cycles count (a monotonic clock that starts at 0, as the agent's does).
        let mut ev = Evaluator::new(&rules);
        assert!(ev.restore(0, &restore));
        let mut out = Vec::new();
        for i in 0..3u64 {
            ev.evaluate(&rules, &[], i * STEP_MS, i * STEP_MS, &mut |t| out.push(t));
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].kind, out[0].first_trigger_ms), (ND, 1_000));
        // Samples: the episode goes on through the warm-up (no alarm), then recovers on
        // the first evaluated average that clears, carrying its first trigger.
        let mut ev = Evaluator::new(&rules);
        assert!(ev.restore(
            0,
            &Restore {
                dim: DimValue::new(),
                ..restore
            }
        ));
        let mut out = Vec::new();
        for i in 0..4u64 {
            ev.evaluate(&rules, &[mem(50.0)], i * STEP_MS, i * STEP_MS, &mut |t| {
                out.push(t)
            });
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].kind, out[0].first_trigger_ms), (Rec, 1_000));
        assert_eq!(out[0].value, Some(50.0));
    }

    #[test]
    fn a_reload_that_changes_the_window_restarts_it_and_reports_the_alert() {
        let mut plain = mem_rule();
        plain.name = heapless::String::try_from("plain").unwrap();
        let old_rules = vec![avg_rule(), plain.clone()];
        let mut h = Harness::new(old_rules.clone());
        for _ in 0..4 {
            h.cycle(&[mem(99.0)]);
        }
        assert_eq!(h.state(""), "ALERT");
        // The same window under a new threshold: the episode goes on.
        let mut same = avg_rule();
        same.thresholds[2] = cond(Op::Gt, 96.0);
        let rules = vec![same, plain.clone()];
        let mut ev = Evaluator::new(&rules);
        ev.carry_over(&rules, h.ev.clone(), &old_rules);
        assert!(!ev.window_restarted(0, None, &DimValue::new()));
        // A longer window: back to OK, reported, warming up again; the rule without a
        // window is untouched.
        let mut longer = avg_rule();
        longer.window_ms = 30_000;
        let rules = vec![longer, plain];
        let mut ev = Evaluator::new(&rules);
        assert_eq!(ev.carry_over(&rules, h.ev, &old_rules), 2);
        assert!(ev.window_restarted(0, None, &DimValue::new()));
        assert!(!ev.window_restarted(1, None, &DimValue::new()));
        let mut out = Vec::new();
        for i in 0..6u64 {
            let now = 100_000 + i * STEP_MS;
            ev.evaluate(&rules, &[mem(99.0)], now, now, &mut |t| out.push(t));
            if i == 0 {
                assert!(!ev.window_restarted(0, None, &DimValue::new()));
            }
        }
        // Warm-up of 25 s: the 6th sample is the first evaluated, and fires anew.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].rule, out[0].kind, out[0].first_trigger_ms),
            (0, Alarm, 125_000)
        );
        // The interval alone counts as a change too.
        let mut slower = avg_rule();
        slower.interval_ms = 10_000;
        assert!(!slower.same_window(&avg_rule()));
    }

    #[test]
    fn carry_over_keeps_rules_of_the_same_identity() {
        let a = rule_spec_for_carry("a", 90.0);
        let b = rule_spec_for_carry("b", 90.0);
        let old_rules = vec![a.clone(), b.clone()];
        let mut old = Evaluator::new(&old_rules);
        let s = [Sample {
            metric: Metric::MemUsed,
            key: None,
            dim: DimValue::new(),
            value: 95.0,
        }];
        let mut fired = 0;
        old.evaluate(&old_rules, &s, 0, 0, &mut |_| fired += 1);
        assert_eq!(fired, 2);
        // Reload: `a` unchanged (and moved), `b` with a new threshold, `c` is `b`'s old
        // spec under a new name (a new identity).
        let new_rules = vec![
            rule_spec_for_carry("b", 80.0),
            a.clone(),
            rule_spec_for_carry("c", 90.0),
        ];
        let mut new = Evaluator::new(&new_rules);
        assert_eq!(new.carry_over(&new_rules, old, &old_rules), 2);
        let mut out = Vec::new();
        new.evaluate(&new_rules, &s, 5000, 5000, &mut |t| out.push(t));
        // `a` and `b` keep firing (no new alarm); `c` starts fresh and fires.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].rule, 2);
        // `b` is re-evaluated under its new threshold: 85 still breaches > 80, 70 clears.
        let low = |v| {
            [Sample {
                metric: Metric::MemUsed,
                key: None,
                dim: DimValue::new(),
                value: v,
            }]
        };
        let mut out = Vec::new();
        new.evaluate(&new_rules, &low(85.0), 10_000, 10_000, &mut |t| out.push(t));
        assert!(out.iter().all(|t| t.rule != 0), "{out:?}");
        new.evaluate(&new_rules, &low(70.0), 15_000, 15_000, &mut |t| out.push(t));
        let rec: Vec<_> = out.iter().filter(|t| t.rule == 0).collect();
        assert_eq!(rec.len(), 1, "{out:?}");
        assert_eq!(rec[0].kind, Rec);
        assert_eq!(rec[0].first_trigger_ms, 0);
    }

    #[test]
    fn a_restored_series_continues_its_episode() {
        let mut r = mem_rule();
        r.repeat_ms = Some(60_000);
        r.clear_times = 2;
        let rules = vec![r];
        let mut ev = Evaluator::new(&rules);
        let restore = Restore {
            key: None,
            dim: DimValue::new(),
            state: AlertState::Alert,
            level: C,
            first_ms: 1_000,
            last_ms: 2_000,
            times: 7,
            last_notified_ms: 100_000,
        };
        assert!(ev.restore(0, &restore));
        let mut out = Vec::new();
        // Still breaching: no alarm, and no repeat before 100 000 + 60 000.
        ev.evaluate(&rules, &[mem(97.0)], 105_000, 105_000, &mut |t| out.push(t));
        ev.evaluate(&rules, &[mem(97.0)], 150_000, 150_000, &mut |t| out.push(t));
        assert!(out.is_empty(), "{out:?}");
        ev.evaluate(&rules, &[mem(97.0)], 160_000, 160_000, &mut |t| out.push(t));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].kind, out[0].level, out[0].prev_level),
            (Alarm, C, C)
        );
        assert_eq!(out[0].first_trigger_ms, 1_000);
        assert_eq!(out[0].times, 10);
        // Clears after clear_times, carrying the episode's first trigger.
        out.clear();
        ev.evaluate(&rules, &[mem(50.0)], 165_000, 165_000, &mut |t| out.push(t));
        ev.evaluate(&rules, &[mem(50.0)], 170_000, 170_000, &mut |t| out.push(t));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, Rec);
        assert_eq!((out[0].first_trigger_ms, out[0].times), (1_000, 10));

        // INSUFFICIENT_DATA: its OK comes when data returns.
        let mut ev = Evaluator::new(&rules);
        let nd = Restore {
            state: AlertState::InsufficientData,
            ..restore
        };
        assert!(ev.restore(0, &nd));
        let mut out = Vec::new();
        ev.evaluate(&rules, &[mem(50.0)], 105_000, 105_000, &mut |t| out.push(t));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].kind, out[0].state), (Rec, AlertState::Ok));
        assert_eq!(out[0].first_trigger_ms, 1_000);
        // OK is not restored, nor a rule that does not exist.
        let ok = Restore {
            state: AlertState::Ok,
            ..nd.clone()
        };
        assert!(!ev.restore(0, &ok));
        assert!(!ev.restore(5, &nd));
    }

    fn rule_spec_for_carry(name: &str, warn: f64) -> RuleSpec {
        RuleSpec {
            name: name.try_into().unwrap(),
            metric: Metric::MemUsed,
            match_dim: None,
            match_key: None,
            thresholds: [
                None,
                Some(Condition {
                    op: Op::Gt,
                    value: warn,
                }),
                None,
            ],
            times: 1,
            within: None,
            clear: None,
            clear_times: 1,
            repeat_ms: None,
            no_data: NoData::Keep,
            no_data_after: 3,
            aggregate: Default::default(),
            window_ms: 0,
            interval_ms: 0,
        }
    }

    #[test]
    fn times3_fires_exactly_once_on_third_breach() {
        let mut r = mem_rule();
        r.times = 3;
        let ts = run(r, &vals(&[96.0, 97.0, 98.0, 99.0, 99.0, 99.0]));
        assert_eq!(summary(&ts), vec![(2, Alarm, C, C)]);
        let t = &ts[0].1;
        assert_eq!(t.state, AlertState::Alert);
        assert_eq!(t.value, Some(98.0));
        assert_eq!(t.threshold, cond(Op::Gt, 95.0));
        assert_eq!(t.first_trigger_ms, 0);
        assert_eq!(t.last_trigger_ms, 2 * STEP_MS);
        assert_eq!(t.times, 3);
        assert_eq!(t.rule, 0);
        assert_eq!(t.dim, "");
    }

    #[test]
    fn fires_at_level_of_current_sample() {
        let mut r = mem_rule();
        r.times = 3;
        // Breaches at mixed levels count together; the third is WARN.
        let ts = run(r, &vals(&[96.0, 96.0, 90.0]));
        assert_eq!(summary(&ts), vec![(2, Alarm, W, W)]);
        assert_eq!(ts[0].1.threshold, cond(Op::Gt, 85.0));
    }

    #[test]
    fn pending_resets_on_non_breaching_sample() {
        let mut r = mem_rule();
        r.times = 3;
        let mut h = Harness::new(vec![r]);
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        assert_eq!(h.state(""), "PENDING");
        assert!(h.cycle(&[mem(50.0)]).is_empty());
        assert_eq!(h.state(""), "OK");
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        let ts = h.cycle(&[mem(96.0)]);
        assert_eq!(ts.len(), 1);
        // The episode started at the first breach after the reset (cycle 3).
        assert_eq!(ts[0].first_trigger_ms, 3 * STEP_MS);
        assert_eq!(ts[0].times, 3);
    }

    #[test]
    fn n_of_m_fires_on_flapping_sequence() {
        let flapping = vals(&[96.0, 50.0, 96.0, 50.0, 96.0, 50.0, 50.0]);
        let mut consecutive = mem_rule();
        consecutive.times = 3;
        assert!(run(consecutive.clone(), &flapping).is_empty());

        let mut nofm = consecutive;
        nofm.within = Some(5);
        nofm.clear_times = 3;
        let ts = run(nofm, &flapping);
        assert_eq!(summary(&ts), vec![(4, Alarm, C, C)]);
        assert_eq!(ts[0].1.times, 3);
        assert_eq!(ts[0].1.first_trigger_ms, 0);
        assert_eq!(ts[0].1.last_trigger_ms, 4 * STEP_MS);
    }

    #[test]
    fn n_of_m_window_slides() {
        let mut r = mem_rule();
        r.times = 3;
        r.within = Some(4);
        let mut h = Harness::new(vec![r]);
        // B N B N N: the window of 4 never holds 3 breaches.
        for v in [96.0, 50.0, 96.0, 50.0, 50.0] {
            assert!(h.cycle(&[mem(v)]).is_empty());
        }
        assert_eq!(h.state(""), "PENDING");
        // Window now B N N; one more N leaves B N N N, the next empties it: back to OK.
        assert!(h.cycle(&[mem(50.0)]).is_empty());
        assert_eq!(h.state(""), "PENDING");
        assert!(h.cycle(&[mem(50.0)]).is_empty());
        assert_eq!(h.state(""), "OK");
        // The old breaches are gone: needs 3 fresh ones.
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        assert!(h.cycle(&[mem(96.0)]).is_empty());
        let ts = h.cycle(&[mem(90.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].level, W);
        assert_eq!(ts[0].first_trigger_ms, 7 * STEP_MS);
    }

    #[test]
    fn n_of_m_does_not_fire_on_non_breaching_sample() {
        let mut r = mem_rule();
        r.times = 2;
        r.within = Some(3);
        let ts = run(r, &vals(&[96.0, 50.0, 50.0, 50.0, 96.0, 50.0, 96.0]));
        assert_eq!(summary(&ts), vec![(6, Alarm, C, C)]);
    }

    #[test]
    fn within_64_uses_full_mask() {
        let mut r = mem_rule();
        r.times = 3;
        r.within = Some(64);
        let mut script = vals(&[96.0]);
        script.extend(vals(&[50.0; 61]));
        script.extend(vals(&[96.0, 96.0])); // 64 samples: the first breach still counts
        let ts = run(r.clone(), &script);
        assert_eq!(summary(&ts), vec![(63, Alarm, C, C)]);
        let mut script = vals(&[96.0]);
        script.extend(vals(&[50.0; 62]));
        script.extend(vals(&[96.0, 96.0])); // now it has slid out
        assert!(run(r, &script).is_empty());
    }

    #[test]
    fn recovery_without_clear() {
        let mut r = mem_rule();
        r.times = 2;
        r.clear_times = 2;
        let ts = run(r, &vals(&[96.0, 96.0, 50.0, 96.0, 50.0, 50.0, 50.0]));
        assert_eq!(summary(&ts), vec![(1, Alarm, C, C), (5, Rec, C, C)]);
        let t = &ts[1].1;
        assert_eq!(t.state, AlertState::Ok);
        assert_eq!(t.value, Some(50.0));
        assert_eq!(t.threshold, cond(Op::Gt, 95.0));
        assert_eq!(t.first_trigger_ms, 0);
        assert_eq!(t.last_trigger_ms, 3 * STEP_MS);
        assert_eq!(t.times, 3);
    }

    #[test]
    fn hysteresis_keeps_firing_until_clear() {
        let mut r = mem_rule();
        r.thresholds = [None, None, cond(Op::Gt, 85.0)];
        r.clear = cond(Op::Lt, 80.0);
        r.clear_times = 2;
        let mut h = Harness::new(vec![r.clone()]);
        let seq = [90.0, 82.0, 82.0, 79.0, 82.0, 79.0];
        for (i, v) in seq.into_iter().enumerate() {
            let ts = h.cycle(&[mem(v)]);
            assert_eq!(ts.len(), usize::from(i == 0), "cycle {i}");
            assert_eq!(h.state(""), "ALERT", "cycle {i}");
        }
        let ts = h.cycle(&[mem(79.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].kind, Rec);
        assert_eq!(ts[0].value, Some(79.0));
        assert_eq!(h.state(""), "OK");

        // A breaching sample resets the clear count too.
        let ts = run(r.clone(), &vals(&[90.0, 79.0, 90.0, 79.0, 79.0]));
        assert_eq!(summary(&ts), vec![(0, Alarm, C, C), (4, Rec, C, C)]);

        // Control: without `clear`, 82 would already count toward recovery.
        r.clear = None;
        let ts = run(r, &vals(&[90.0, 82.0, 82.0]));
        assert_eq!(summary(&ts), vec![(0, Alarm, C, C), (2, Rec, C, C)]);
    }

    #[test]
    fn repeat_on_schedule_and_not_before() {
        let mut r = mem_rule();
        r.repeat_ms = Some(30_000);
        let ts = run(r, &vals(&[96.0; 20]));
        // Fires at 0 s, repeats at 30, 60, 90 s (cycles 6, 12, 18).
        assert_eq!(
            summary(&ts),
            vec![
                (0, Alarm, C, C),
                (6, Alarm, C, C),
                (12, Alarm, C, C),
                (18, Alarm, C, C)
            ]
        );
        for (_, t) in &ts {
            assert_eq!(t.first_trigger_ms, 0);
            assert_eq!(t.value, Some(96.0));
        }
        assert_eq!(ts[1].1.last_trigger_ms, 30_000);
        assert_eq!(ts[1].1.times, 7);
    }

    #[test]
    fn repeat_every_cycle_despite_tick_jitter() {
        let mut r = mem_rule();
        r.repeat_ms = Some(2000);
        let rules = [r];
        let mut ev = Evaluator::new(&rules);
        let mut n = 0;
        // Ticks a millisecond early each time, as a real timer's are.
        for now in [0, 1999, 3998, 5997, 7996] {
            let s = [Sample {
                metric: Metric::MemUsed,
                key: None,
                dim: DimValue::new(),
                value: 96.0,
            }];
            ev.evaluate(&rules, &s, now, now, &mut |_| n += 1);
        }
        assert_eq!(n, 5, "the alarm and a repeat at every tick");
    }

    #[test]
    fn repeat_schedule_restarts_at_any_alarm() {
        let mut r = mem_rule();
        r.repeat_ms = Some(30_000);
        // Fire WARN at 0 s, escalate at 15 s; next repeat 30 s after that (45 s = cycle 9).
        let mut script = vals(&[90.0, 90.0, 90.0]);
        script.extend(vals(&[96.0; 10]));
        let ts = run(r, &script);
        assert_eq!(
            summary(&ts),
            vec![(0, Alarm, W, W), (3, Alarm, C, W), (9, Alarm, C, C)]
        );
    }

    #[test]
    fn repeat_while_missing_data_with_keep() {
        let mut r = mem_rule();
        r.repeat_ms = Some(10_000);
        let ts = run(r, &[Some(96.0), None, None, None]);
        assert_eq!(summary(&ts), vec![(0, Alarm, C, C), (2, Alarm, C, C)]);
        assert_eq!(ts[1].1.value, None);
    }

    #[test]
    fn escalation_warn_to_critical() {
        let mut r = mem_rule();
        r.times = 2;
        let ts = run(r.clone(), &vals(&[90.0, 90.0, 96.0, 96.0, 96.0]));
        assert_eq!(summary(&ts), vec![(1, Alarm, W, W), (3, Alarm, C, W)]);
        let t = &ts[1].1;
        assert_eq!(t.state, AlertState::Alert);
        assert_eq!(t.threshold, cond(Op::Gt, 95.0));
        assert_eq!(t.value, Some(96.0));
        assert_eq!(t.first_trigger_ms, 0);
        assert_eq!(t.last_trigger_ms, 3 * STEP_MS);
        assert_eq!(t.times, 4);

        // A sample at the firing level resets the change count.
        let ts = run(r, &vals(&[90.0, 90.0, 96.0, 90.0, 96.0, 96.0]));
        assert_eq!(summary(&ts), vec![(1, Alarm, W, W), (5, Alarm, C, W)]);
    }

    #[test]
    fn escalation_count_reset_by_non_breaching_sample() {
        let mut r = mem_rule();
        r.times = 2;
        r.clear_times = 3;
        let ts = run(r, &vals(&[90.0, 90.0, 96.0, 50.0, 96.0, 96.0]));
        assert_eq!(summary(&ts), vec![(1, Alarm, W, W), (5, Alarm, C, W)]);
    }

    #[test]
    fn de_escalation_then_recovery_at_new_level() {
        let mut r = mem_rule();
        r.times = 2;
        let ts = run(r, &vals(&[96.0, 96.0, 90.0, 90.0, 90.0, 50.0]));
        assert_eq!(
            summary(&ts),
            vec![(1, Alarm, C, C), (3, Alarm, W, C), (5, Rec, W, W)]
        );
        assert_eq!(ts[1].1.threshold, cond(Op::Gt, 85.0));
        assert_eq!(ts[2].1.threshold, cond(Op::Gt, 85.0));
    }

    #[test]
    fn no_data_alert_once_then_recovery_when_data_returns() {
        let mut r = mem_rule();
        r.no_data = NoData::Alert;
        r.no_data_after = 3;
        let mut h = Harness::new(vec![r]);
        assert!(h.cycle(&[mem(50.0)]).is_empty());
        assert!(h.cycle(&[]).is_empty());
        assert!(h.cycle(&[]).is_empty());
        let ts = h.cycle(&[]);
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        assert_eq!(t.kind, ND);
        assert_eq!(t.state, AlertState::InsufficientData);
        assert_eq!(t.level, W, "lowest configured level");
        assert_eq!(t.prev_level, W);
        assert_eq!(t.threshold, cond(Op::Gt, 85.0));
        assert_eq!(t.value, None);
        assert_eq!(t.first_trigger_ms, 3 * STEP_MS);
        assert_eq!(t.last_trigger_ms, 3 * STEP_MS);
        assert_eq!(t.times, 3);
        assert_eq!(h.state(""), "INSUFFICIENT_DATA");
        for _ in 0..10 {
            assert!(h.cycle(&[]).is_empty(), "no-data fires once per outage");
        }
        let ts = h.cycle(&[mem(50.0)]);
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        assert_eq!(t.kind, Rec);
        assert_eq!(t.state, AlertState::Ok);
        assert_eq!(t.level, W);
        assert_eq!(t.value, Some(50.0));
        assert_eq!(h.state(""), "OK");
        // A second outage fires again.
        for _ in 0..2 {
            assert!(h.cycle(&[]).is_empty());
        }
        assert_eq!(h.cycle(&[])[0].kind, ND);
    }

    #[test]
    fn no_data_alert_while_firing_keeps_level_and_data_return_refires() {
        let mut r = mem_rule();
        r.no_data = NoData::Alert;
        r.no_data_after = 2;
        let ts = run(r.clone(), &[Some(96.0), None, None, Some(96.0)]);
        // times = 1: the returning breaching sample fires right away, no recovery.
        assert_eq!(
            summary(&ts),
            vec![(0, Alarm, C, C), (2, ND, C, C), (3, Alarm, C, C)]
        );
        assert_eq!(ts[1].1.first_trigger_ms, 0);
        assert_eq!(ts[1].1.threshold, cond(Op::Gt, 95.0));

        // times = 2: the returning sample only reaches PENDING, so a recovery is sent,
        // and the next breach fires.
        r.times = 2;
        let mut h = Harness::new(vec![r]);
        h.cycle(&[mem(96.0)]);
        assert_eq!(h.cycle(&[mem(96.0)])[0].kind, Alarm);
        h.cycle(&[]);
        assert_eq!(h.cycle(&[])[0].kind, ND);
        let ts = h.cycle(&[mem(96.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!(
            (ts[0].kind, ts[0].state, ts[0].level),
            (Rec, AlertState::Ok, C)
        );
        assert_eq!(h.state(""), "PENDING");
        let ts = h.cycle(&[mem(96.0)]);
        assert_eq!((ts[0].kind, ts[0].times), (Alarm, 2));
    }

    #[test]
    fn no_data_for_rule_that_never_saw_a_sample() {
        let mut r = mem_rule();
        r.no_data = NoData::Alert;
        r.no_data_after = 2;
        r.thresholds = [cond(Op::Gt, 50.0), None, cond(Op::Gt, 95.0)];
        let ts = run(r, &[None, None, None]);
        assert_eq!(summary(&ts), vec![(1, ND, I, I)]);
        assert_eq!(ts[0].1.dim, "");
    }

    #[test]
    fn no_data_ok_recovers_firing_rule() {
        let mut r = mem_rule();
        r.no_data = NoData::Ok;
        r.no_data_after = 3;
        let ts = run(r.clone(), &[Some(96.0), None, None, None, None, None]);
        assert_eq!(summary(&ts), vec![(0, Alarm, C, C), (3, Rec, C, C)]);
        let t = &ts[1].1;
        assert_eq!(t.state, AlertState::Ok);
        assert_eq!(t.value, None);
        assert_eq!(t.threshold, cond(Op::Gt, 95.0));

        // OK or PENDING: nothing is sent; PENDING goes back to OK.
        r.times = 2;
        let mut h = Harness::new(vec![r]);
        h.cycle(&[mem(96.0)]);
        assert_eq!(h.state(""), "PENDING");
        for _ in 0..5 {
            assert!(h.cycle(&[]).is_empty());
        }
        assert_eq!(h.state(""), "OK");
        assert!(h.cycle(&[mem(96.0)]).is_empty(), "count restarted");
    }

    #[test]
    fn no_data_keep_does_nothing() {
        let r = mem_rule(); // no_data = Keep
        let mut h = Harness::new(vec![r]);
        assert_eq!(h.cycle(&[mem(96.0)]).len(), 1);
        for _ in 0..20 {
            assert!(h.cycle(&[]).is_empty());
        }
        assert_eq!(h.state(""), "ALERT");
        // Data returning continues the episode: 50 recovers it.
        let ts = h.cycle(&[mem(50.0)]);
        assert_eq!(ts[0].kind, Rec);
    }

    #[test]
    fn missing_cycles_do_not_break_consecutive_count() {
        let mut r = mem_rule();
        r.times = 3;
        let ts = run(r, &[Some(96.0), None, Some(96.0), None, Some(96.0)]);
        assert_eq!(summary(&ts), vec![(4, Alarm, C, C)]);
    }

    fn disk_rule(pattern: Option<&str>) -> RuleSpec {
        let mut r = mem_rule();
        r.name = heapless::String::try_from("disk").unwrap();
        r.metric = Metric::DiskUsed;
        r.match_dim = pattern.map(dim);
        r
    }

    #[test]
    fn glob_over_two_mounts_gives_independent_series() {
        let mut r = disk_rule(Some("/mnt/*"));
        r.times = 2;
        let mut h = Harness::new(vec![r]);
        let ts = h.cycle(&[
            disk("/", 99.0),
            disk("/mnt/a", 96.0),
            disk("/mnt/b", 50.0),
            mem(99.0),
        ]);
        assert!(ts.is_empty());
        let ts = h.cycle(&[disk("/", 99.0), disk("/mnt/a", 96.0), disk("/mnt/b", 96.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!((ts[0].dim.as_str(), ts[0].kind), ("/mnt/a", Alarm));
        let ts = h.cycle(&[disk("/", 99.0), disk("/mnt/a", 50.0), disk("/mnt/b", 90.0)]);
        assert_eq!(ts.len(), 2);
        assert_eq!((ts[0].dim.as_str(), ts[0].kind), ("/mnt/a", Rec));
        assert_eq!(
            (ts[1].dim.as_str(), ts[1].kind, ts[1].level),
            ("/mnt/b", Alarm, W)
        );

        let view = h.view();
        let rows: Vec<(&str, &str)> = view.iter().map(|v| (v.dim.as_str(), v.state)).collect();
        assert_eq!(rows, vec![("/mnt/a", "OK"), ("/mnt/b", "ALERT")]);
    }

    #[test]
    fn rule_without_match_tracks_every_mount() {
        let mut h = Harness::new(vec![disk_rule(None)]);
        let ts = h.cycle(&[disk("/", 99.0), disk("/tmp", 99.0)]);
        let dims: Vec<&str> = ts.iter().map(|t| t.dim.as_str()).collect();
        assert_eq!(dims, vec!["/", "/tmp"]);
        assert_eq!(h.view().len(), 2, "placeholder dropped");
    }

    #[test]
    fn placeholder_in_no_data_recovers_when_real_series_appear() {
        let mut r = disk_rule(Some("/mnt/*"));
        r.no_data = NoData::Alert;
        r.no_data_after = 2;
        let mut h = Harness::new(vec![r]);
        h.cycle(&[]);
        let ts = h.cycle(&[]);
        assert_eq!((ts[0].kind, ts[0].dim.as_str()), (ND, ""));
        assert_eq!(h.state(""), "INSUFFICIENT_DATA");
        let ts = h.cycle(&[disk("/mnt/a", 10.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!((ts[0].kind, ts[0].dim.as_str(), ts[0].level), (Rec, "", W));
        let rows: Vec<(DimValue, &str)> = h.view().into_iter().map(|v| (v.dim, v.state)).collect();
        assert_eq!(rows, vec![(dim("/mnt/a"), "OK")]);
    }

    #[test]
    fn vanished_series_goes_no_data_independently() {
        let mut r = disk_rule(None);
        r.no_data = NoData::Alert;
        r.no_data_after = 2;
        let mut h = Harness::new(vec![r]);
        h.cycle(&[disk("/", 10.0), disk("/usb", 10.0)]);
        h.cycle(&[disk("/", 10.0)]);
        let ts = h.cycle(&[disk("/", 10.0)]);
        assert_eq!(ts.len(), 1);
        assert_eq!((ts[0].kind, ts[0].dim.as_str()), (ND, "/usb"));
        assert_eq!(h.state("/"), "OK");
        assert_eq!(h.state("/usb"), "INSUFFICIENT_DATA");
    }

    #[test]
    fn series_overflow_counted() {
        let mut h = Harness::new(vec![disk_rule(None)]);
        let samples: Vec<Sample> = (0..MAX_SERIES_PER_RULE + 4)
            .map(|i| disk(&format!("/m{i}"), 99.0))
            .collect();
        let ts = h.cycle(&samples);
        assert_eq!(ts.len(), MAX_SERIES_PER_RULE);
        assert_eq!(h.ev.series_overflow(), 4);
        assert_eq!(h.view().len(), MAX_SERIES_PER_RULE);
        let ts = h.cycle(&samples);
        assert!(ts.is_empty());
        assert_eq!(h.ev.series_overflow(), 8);
        // Tracked series keep working.
        let ts = h.cycle(&[disk("/m0", 10.0)]);
        assert_eq!((ts[0].kind, ts[0].dim.as_str()), (Rec, "/m0"));
    }

    #[test]
    fn eq_and_ne_operators() {
        // e.g. "net.up == 0" as a 0/1 metric.
        let mut r = mem_rule();
        r.thresholds = [None, None, cond(Op::Eq, 0.0)];
        let ts = run(r.clone(), &vals(&[1.0, 0.0, 0.0, 1.0, 0.5]));
        assert_eq!(summary(&ts), vec![(1, Alarm, C, C), (3, Rec, C, C)]);
        assert_eq!(ts[0].1.threshold, cond(Op::Eq, 0.0));

        r.thresholds = [None, cond(Op::Ne, 1.0), None];
        let ts = run(r, &vals(&[1.0, 0.0, 1.0, 2.0]));
        assert_eq!(
            summary(&ts),
            vec![(1, Alarm, W, W), (2, Rec, W, W), (3, Alarm, W, W)]
        );
    }

    #[test]
    fn ge_le_lt_operators() {
        let mut r = mem_rule();
        // Low free memory: critical < 10, warn <= 20.
        r.metric = Metric::MemAvailable;
        r.thresholds = [None, cond(Op::Le, 20.0), cond(Op::Lt, 10.0)];
        let samples = |v: f64| Sample {
            metric: Metric::MemAvailable,
            key: None,
            dim: DimValue::new(),
            value: v,
        };
        let mut h = Harness::new(vec![r.clone()]);
        assert!(h.cycle(&[samples(21.0)]).is_empty());
        assert_eq!(h.cycle(&[samples(20.0)])[0].level, W);
        assert_eq!(h.cycle(&[samples(9.0)])[0].level, C);
        r.thresholds = [None, None, cond(Op::Ge, 95.0)];
        r.metric = Metric::MemUsed;
        let ts = run(r, &vals(&[94.9, 95.0]));
        assert_eq!(summary(&ts), vec![(1, Alarm, C, C)]);
    }

    #[test]
    fn view_reports_states_values_and_levels() {
        let mut mem_r = mem_rule();
        mem_r.times = 2;
        let mut nd = disk_rule(None);
        nd.no_data = NoData::Alert;
        nd.no_data_after = 1;
        let alert = {
            let mut r = mem_rule();
            r.name = heapless::String::try_from("mem2").unwrap();
            r
        };
        let mut h = Harness::new(vec![mem_r, nd, alert]);
        let before = h.view();
        assert_eq!(before.len(), 3, "one placeholder per rule");
        assert!(before.iter().all(|v| v.state == "OK" && v.value.is_none()));

        h.cycle(&[mem(90.0)]);
        let v = h.view();
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].rule, v[0].state, v[0].value, v[0].level),
            (0, "PENDING", Some(90.0), Some(W))
        );
        assert_eq!(
            (v[1].rule, v[1].state, v[1].value, v[1].level),
            (1, "INSUFFICIENT_DATA", None, None)
        );
        assert_eq!(
            (v[2].rule, v[2].state, v[2].value, v[2].level),
            (2, "ALERT", Some(90.0), Some(W))
        );

        h.cycle(&[mem(50.0)]);
        let v = h.view();
        assert_eq!(
            (v[0].state, v[0].value, v[0].level),
            ("OK", Some(50.0), None)
        );
        assert_eq!(
            (v[2].state, v[2].value, v[2].level),
            ("OK", Some(50.0), None)
        );

        // No sample this cycle: no current value.
        h.cycle(&[]);
        let v = h.view();
        assert_eq!((v[0].state, v[0].value), ("OK", None));
    }

    #[test]
    fn thirty_rules_empty_samples_do_not_panic() {
        let rules: Vec<RuleSpec> = (0..30)
            .map(|i| {
                let mut r = if i % 2 == 0 {
                    mem_rule()
                } else {
                    disk_rule(Some("/*"))
                };
                r.no_data = [NoData::Alert, NoData::Ok, NoData::Keep][i % 3];
                r.no_data_after = (i % 4) as u8; // includes 0
                r.times = (i % 5) as u8; // includes 0
                r.within = if i % 7 == 0 { Some(0) } else { None };
                r.clear_times = 0;
                r.repeat_ms = Some(0);
                r
            })
            .collect();
        let mut h = Harness::new(rules);
        let mut nodata = 0;
        for _ in 0..100 {
            nodata += h.cycle(&[]).iter().filter(|t| t.kind == ND).count();
        }
        assert_eq!(nodata, 10, "each no_data=alert rule fires once");
        assert_eq!(h.view().len(), 30);
        // Data for every rule afterwards doesn't panic either.
        for _ in 0..10 {
            h.cycle(&[mem(99.0), disk("/", 99.0), disk("/x", f64::NAN)]);
        }
    }

    #[test]
    fn mismatched_rule_slices_do_not_panic() {
        let mut ev = Evaluator::new(&[mem_rule()]);
        let more = vec![mem_rule(), mem_rule(), mem_rule()];
        let mut n = 0;
        ev.evaluate(&more, &[mem(99.0)], 0, 0, &mut |_| n += 1);
        assert_eq!(n, 1, "rules new() never saw are ignored");
        ev.evaluate(&[], &[mem(99.0)], 0, 0, &mut |_| n += 1);
        let mut rows = 0;
        ev.view(&more, &mut |_| rows += 1);
        assert_eq!(rows, 1);
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_repeat() {
        let mut r = mem_rule();
        r.repeat_ms = Some(1000);
        let rules = vec![r];
        let mut ev = Evaluator::new(&rules);
        let mut out = Vec::new();
        ev.evaluate(&rules, &[mem(99.0)], 100_000, 100_000, &mut |t| out.push(t));
        ev.evaluate(&rules, &[mem(99.0)], 50_000, 50_000, &mut |t| out.push(t));
        assert_eq!(out.len(), 1);
        ev.evaluate(&rules, &[mem(99.0)], 101_000, 101_000, &mut |t| out.push(t));
        assert_eq!(out.len(), 2);
    }

    mod alloc_free {
        //! `evaluate` and `view` must not touch the heap: count allocations per thread.
        use super::*;
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        struct Counting;

        std::thread_local! {
            static ALLOCS: Cell<u64> = const { Cell::new(0) };
        }

        // SAFETY: forwards to the system allocator unchanged; only counts calls.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
                // SAFETY: same contract as the caller's.
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: same contract as the caller's.
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
                // SAFETY: same contract as the caller's.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;

        fn allocs() -> u64 {
            ALLOCS.with(|c| c.get())
        }

        #[test]
        fn evaluate_and_view_do_not_allocate() {
            let mut r0 = mem_rule();
            r0.repeat_ms = Some(10_000);
            r0.times = 2;
            let mut r1 = disk_rule(Some("/mnt/*"));
            r1.no_data = NoData::Alert;
            r1.no_data_after = 2;
            r1.within = Some(3);
            r1.times = 2;
            let rules = vec![r0, r1];
            let mut ev = Evaluator::new(&rules);
            let cycles: Vec<Vec<Sample>> = vec![
                vec![],
                vec![],
                vec![mem(96.0), disk("/mnt/a", 96.0)],
                vec![mem(96.0), disk("/mnt/a", 50.0), disk("/mnt/b", 99.0)],
                vec![mem(90.0), disk("/mnt/a", 96.0), disk("/mnt/b", 99.0)],
                vec![mem(90.0)],
                vec![],
                vec![],
                vec![mem(10.0), disk("/mnt/a", 10.0), disk("/mnt/b", 10.0)],
            ];
            let mut kinds = [0usize; 3];
            let mut rows = 0usize;
            let before = allocs();
            for (i, samples) in cycles.iter().enumerate() {
                ev.evaluate(
                    &rules,
                    samples,
                    i as u64 * STEP_MS,
                    i as u64 * STEP_MS,
                    &mut |t| {
                        kinds[t.kind as usize] += 1;
                    },
                );
                ev.view(&rules, &mut |_| rows += 1);
            }
            let after = allocs();
            assert_eq!(after - before, 0, "heap allocations in evaluate/view");
            // The counter itself works.
            let b = std::hint::black_box(Box::new(1u64));
            assert!(allocs() > after);
            drop(b);
            assert!(
                kinds.iter().all(|&k| k > 0),
                "exercised every kind: {kinds:?}"
            );
            assert!(rows > 0);
        }
    }
}
