//! The window of one series of a rule with an `aggregate`: a fixed ring of its latest
//! samples, and the warm-up before the aggregate of a window means anything.
//!
//! # Geometry
//!
//! A rule with `window = W` sampled every `I` holds, per series, a ring of
//! `ceil(W / I) + 1` samples ([`Shape::of`]; the config refuses `W < I` and `W / I > 64`,
//! so a ring has 2 to 65 slots). A slot is an `f32` value and a `u16` time: the sample's
//! monotonic time as an offset from the ring's base, in units of [`Shape::unit_ms`] (1 ms
//! for windows under ~30 s, coarser for longer ones so that twice `W + I` fits in 16 bits).
//! When an offset would not fit, the samples that left the window are dropped and the base
//! moves to the oldest one kept. Six bytes a slot; the slots are allocated when the ring is
//! made (at load, or when a series first appears), never during a steady cycle.
//!
//! # Which samples are in the window
//!
//! At monotonic time `now`, a sample of age `a = now − t` is in the window when
//! `a + I/4 < W`: the last `W` with a quarter interval of slack for tick jitter, so that a
//! window of 2 s at 200 ms holds the 10 latest samples whether a tick came a few
//! milliseconds early or late. The aggregate is over those samples: `avg` their mean,
//! `max` / `min` the extremes, `sum` their sum (a gap leaves fewer samples: `sum`
//! under-counts over gaps).
//!
//! # Warm-up
//!
//! Once per ring (a new series, a start, a reset by a reload): until the first sample is at
//! least `W − I` old (the same quarter-interval slack), there are not enough samples for a
//! window, and the ring yields no aggregate; the evaluator counts those cycles for nothing.
//! Warm-up ends by time, so a series that vanishes while warming up reaches its no-data
//! count from then on.

use super::{Aggregate, RuleSpec};

/// One sample: the value and its time, packed into six bytes.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, packed)]
pub(super) struct Slot {
    value: f32,
    at: u16,
}

/// The window geometry of a rule (none for `aggregate = "last"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shape {
    /// What is computed over the window.
    pub(super) aggregate: Aggregate,
    /// `window` in ms.
    pub(super) window_ms: u64,
    /// The sampling interval in ms.
    pub(super) interval_ms: u64,
    /// Slots per ring: `ceil(window / interval) + 1`.
    pub(super) slots: usize,
    /// Milliseconds per unit of a slot's time offset.
    pub(super) unit_ms: u64,
}

impl Shape {
    /// The shape of `rule`'s windows, or `None` when it compares samples themselves.
    pub(super) fn of(rule: &RuleSpec) -> Option<Shape> {
        if rule.aggregate == Aggregate::Last || rule.window_ms == 0 || rule.interval_ms == 0 {
            return None;
        }
        let (w, i) = (rule.window_ms, rule.interval_ms);
        Some(Shape {
            aggregate: rule.aggregate,
            window_ms: w,
            interval_ms: i,
            slots: ring_len(w, i),
            unit_ms: (2 * (w + i)).div_ceil(u64::from(u16::MAX)).max(1),
        })
    }

    /// Slack for tick jitter: a quarter interval.
    fn slack(&self) -> u64 {
        self.interval_ms / 4
    }

    /// Whether a sample of age `age` ms is in the window.
    fn holds(&self, age: u64) -> bool {
        age + self.slack() < self.window_ms
    }
}

/// Slots of a ring for `window_ms` sampled every `interval_ms`: `ceil(window / interval) + 1`.
pub fn ring_len(window_ms: u64, interval_ms: u64) -> usize {
    (window_ms.div_ceil(interval_ms.max(1)) + 1) as usize
}

/// Bytes of one ring's slots ([`ring_len`] of six-byte slots).
pub fn ring_bytes(window_ms: u64, interval_ms: u64) -> usize {
    ring_len(window_ms, interval_ms) * core::mem::size_of::<Slot>()
}

/// [`Ring::first`] before the first sample.
const NO_SAMPLE: u64 = u64::MAX;

/// The latest samples of one series, and its warm-up.
///
/// The samples held are exactly those in the window at the latest push: each push first
/// drops, oldest first, the ones that left it (time only moves forward, so a sample that
/// left never comes back). The sum of the held values is kept as they come and go (and
/// summed afresh each time the ring wraps, so rounding cannot drift), so `avg` and `sum`
/// cost no scan; `max` and `min` scan the held values only.
#[derive(Clone, Debug)]
pub(super) struct Ring {
    /// Empty until the ring is made for a shape (then `shape.slots` long, never resized).
    slots: Box<[Slot]>,
    /// Monotonic ms of offset 0.
    base: u64,
    /// The slot the next sample goes to.
    head: u8,
    /// Samples held.
    len: u8,
    /// The sum of the held values.
    sum: f64,
    /// Monotonic ms of the first sample since the ring was made ([`NO_SAMPLE`]: none yet).
    first: u64,
    /// Warm-up is over.
    warm: bool,
}

impl Default for Ring {
    /// A ring without slots (for a rule without a window; allocates nothing).
    fn default() -> Ring {
        Ring {
            slots: Box::default(),
            base: 0,
            head: 0,
            len: 0,
            sum: 0.0,
            first: NO_SAMPLE,
            warm: false,
        }
    }
}

impl Ring {
    /// A ring for `shape`, empty, warming up: allocates its slots.
    pub(super) fn new(shape: &Shape) -> Ring {
        Ring {
            slots: vec![Slot::default(); shape.slots].into_boxed_slice(),
            ..Ring::default()
        }
    }

    /// Whether this ring was made for `shape`'s number of slots.
    pub(super) fn fits(&self, shape: &Shape) -> bool {
        self.slots.len() == shape.slots
    }

    /// Whether a sample at `now` would still be in the warm-up (false before the first
    /// sample: a series that never had one is not warming up).
    pub(super) fn warming(&self, now: u64, shape: &Shape) -> bool {
        !self.warm
            && self.first != NO_SAMPLE
            && now.saturating_sub(self.first) + shape.slack()
                < shape.window_ms.saturating_sub(shape.interval_ms)
    }

    /// Records a sample taken at monotonic `now`; returns the aggregate of the window, or
    /// `None` while warming up.
    pub(super) fn push(&mut self, now: u64, value: f64, shape: &Shape) -> Option<f64> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        self.expire(now, shape);
        if usize::from(self.len) == n {
            // Ticks came faster than the interval: the oldest makes room.
            self.drop_oldest();
        }
        if self.len == 0 {
            self.base = now;
            self.sum = 0.0;
        }
        let mut off = now.saturating_sub(self.base) / shape.unit_ms;
        if off > u64::from(u16::MAX) {
            self.rebase(shape);
            off = now.saturating_sub(self.base) / shape.unit_ms;
        }
        let at = off.min(u64::from(u16::MAX)) as u16;
        let head = usize::from(self.head) % n;
        let value = value as f32;
        self.slots[head] = Slot { value, at };
        self.head = ((head + 1) % n) as u8;
        self.len += 1;
        self.sum += f64::from(value);
        if self.head == 0 {
            self.sum = self.values().map(f64::from).sum();
        }
        if self.first == NO_SAMPLE {
            self.first = now;
        }
        if !self.warm {
            if self.warming(now, shape) {
                return None;
            }
            self.warm = true;
        }
        self.aggregate(shape)
    }

    /// The aggregate of the samples held (those in the window at the latest push).
    fn aggregate(&self, shape: &Shape) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        Some(match shape.aggregate {
            Aggregate::Avg => self.sum / f64::from(self.len),
            Aggregate::Sum | Aggregate::Last => self.sum,
            Aggregate::Max => f64::from(self.values().fold(f32::NEG_INFINITY, f32::max)),
            Aggregate::Min => f64::from(self.values().fold(f32::INFINITY, f32::min)),
        })
    }

    /// The index of the oldest sample held.
    fn oldest(&self) -> usize {
        let n = self.slots.len();
        (usize::from(self.head) + n - usize::from(self.len)) % n
    }

    /// The held values, oldest first, as two runs of the slots.
    fn values(&self) -> impl Iterator<Item = f32> + '_ {
        let (start, len, n) = (self.oldest(), usize::from(self.len), self.slots.len());
        let first = &self.slots[start..(start + len).min(n)];
        let wrapped = &self.slots[..(start + len).saturating_sub(n)];
        first.iter().chain(wrapped).map(|s| s.value)
    }

    /// Drops the oldest sample held.
    fn drop_oldest(&mut self) {
        let s = self.slots[self.oldest()];
        self.sum -= f64::from(s.value);
        self.len -= 1;
    }

    /// Drops, oldest first, the samples that are out of the window at `now`.
    fn expire(&mut self, now: u64, shape: &Shape) {
        while self.len > 0 {
            let s = self.slots[self.oldest()];
            let t = self.base + u64::from(s.at) * shape.unit_ms;
            if shape.holds(now.saturating_sub(t)) {
                break;
            }
            self.drop_oldest();
        }
        if self.len == 0 {
            self.sum = 0.0;
        }
    }

    /// Moves the base to the oldest sample held (all are in the window, after
    /// [`expire`](Self::expire)), so that a new offset fits 16 bits again.
    fn rebase(&mut self, shape: &Shape) {
        let n = self.slots.len();
        let start = self.oldest();
        let shift = self.slots[start].at;
        for i in 0..usize::from(self.len) {
            let s = &mut self.slots[(start + i) % n];
            s.at -= shift;
        }
        self.base += u64::from(shift) * shape.unit_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use crate::rule::NoData;

    fn shape(aggregate: Aggregate, window_ms: u64, interval_ms: u64) -> Shape {
        Shape::of(&RuleSpec {
            aggregate,
            window_ms,
            interval_ms,
            ..shape_rule()
        })
        .expect("an aggregate")
    }

    #[test]
    fn ring_lengths_and_sizes() {
        assert_eq!(ring_len(2000, 200), 11);
        assert_eq!(ring_len(60_000, 5000), 13);
        assert_eq!(ring_len(5000, 2000), 4);
        assert_eq!(ring_len(1000, 1000), 2);
        assert_eq!(ring_len(64_000, 1000), 65);
        assert_eq!(core::mem::size_of::<Slot>(), 6);
        assert_eq!(ring_bytes(64_000, 1000), 390);
        // The smallest unit that keeps twice window + interval in 16 bits.
        assert_eq!(shape(Aggregate::Avg, 2000, 200).unit_ms, 1);
        assert_eq!(shape(Aggregate::Avg, 3_840_000, 60_000).unit_ms, 120);
    }

    #[test]
    fn last_has_no_shape() {
        let mut rule = RuleSpec {
            aggregate: Aggregate::Last,
            ..shape_rule()
        };
        assert_eq!(Shape::of(&rule), None);
        rule.aggregate = Aggregate::Sum;
        assert!(Shape::of(&rule).is_some());
    }

    fn shape_rule() -> RuleSpec {
        RuleSpec {
            name: heapless::String::try_from("w").unwrap(),
            metric: Metric::CpuUsage,
            match_key: None,
            match_dim: None,
            thresholds: [None; 3],
            times: 1,
            within: None,
            clear: None,
            clear_times: 1,
            repeat_ms: None,
            no_data: NoData::Keep,
            no_data_after: 3,
            aggregate: Aggregate::Avg,
            window_ms: 2000,
            interval_ms: 200,
        }
    }

    /// Pushes `values` at `step` ms apart starting at `t0` (with `jitter(i)` ms added);
    /// returns what each push yielded.
    fn feed(
        ring: &mut Ring,
        sh: &Shape,
        t0: u64,
        step: u64,
        values: &[f64],
        jitter: impl Fn(usize) -> i64,
    ) -> Vec<Option<f64>> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = (t0 + i as u64 * step) as i64 + jitter(i);
                ring.push(t as u64, v, sh)
            })
            .collect()
    }

    #[test]
    fn warm_up_lasts_window_minus_interval_then_every_sample_yields() {
        let sh = shape(Aggregate::Avg, 2000, 200);
        let mut r = Ring::new(&sh);
        let out = feed(&mut r, &sh, 10_000, 200, &[50.0; 12], |_| 0);
        // Samples at ages 0..1600 ms: warming up; the 10th (first one 1800 ms old) yields.
        assert!(out[..9].iter().all(Option::is_none), "{out:?}");
        assert!(out[9..].iter().all(|v| *v == Some(50.0)), "{out:?}");
        // Warm-up is once: later gaps do not bring it back.
        assert_eq!(r.push(20_000, 10.0, &sh), Some(10.0));
        assert!(!r.warming(20_000, &sh));
    }

    #[test]
    fn a_window_equal_to_the_interval_needs_no_warm_up() {
        let sh = shape(Aggregate::Max, 1000, 1000);
        let mut r = Ring::new(&sh);
        assert_eq!(r.push(0, 3.0, &sh), Some(3.0));
        assert_eq!(r.push(1000, 2.0, &sh), Some(2.0));
    }

    #[test]
    fn the_window_holds_the_last_ten_of_twenty_whatever_the_jitter() {
        for jitter in [-7i64, 0, 9] {
            let sh = shape(Aggregate::Avg, 2000, 200);
            let mut r = Ring::new(&sh);
            // Ten 20s then ten 100s: the last window is all 100s, exactly.
            let mut v = vec![20.0; 10];
            v.extend([100.0; 10]);
            let out = feed(&mut r, &sh, 5000, 200, &v, |i| {
                if i % 2 == 0 {
                    jitter
                } else {
                    -jitter
                }
            });
            assert_eq!(out[19], Some(100.0), "jitter {jitter}: {out:?}");
            // One sample in: 19 × 20 and 100 in a window of ten → (9 × 20 + 100) / 10.
            assert_eq!(
                out[10],
                Some((9.0 * 20.0 + 100.0) / 10.0),
                "jitter {jitter}"
            );
        }
    }

    #[test]
    fn max_min_sum_over_the_window() {
        let values = [1.0, 5.0, 2.0, 4.0, 3.0];
        for (agg, want) in [
            (Aggregate::Max, 5.0),
            (Aggregate::Min, 1.0),
            (Aggregate::Sum, 15.0),
            (Aggregate::Avg, 3.0),
        ] {
            // window 5 s at 1 s: warm-up until the first sample is 4 s old.
            let sh = shape(agg, 5000, 1000);
            let mut r = Ring::new(&sh);
            let out = feed(&mut r, &sh, 0, 1000, &values, |_| 0);
            assert_eq!(out[4], Some(want), "{agg:?}: {out:?}");
            // The next sample pushes 1.0 out of the window.
            let next = r.push(5000, 0.0, &sh);
            let want_next = match agg {
                Aggregate::Max => 5.0,
                Aggregate::Min => 0.0,
                Aggregate::Sum => 14.0,
                _ => 14.0 / 5.0,
            };
            assert_eq!(next, Some(want_next), "{agg:?}");
        }
    }

    #[test]
    fn sum_under_counts_over_a_gap_and_a_long_gap_leaves_the_fresh_sample() {
        let sh = shape(Aggregate::Sum, 5000, 1000);
        let mut r = Ring::new(&sh);
        feed(&mut r, &sh, 0, 1000, &[1.0; 5], |_| 0);
        // Samples at 5 s and 6 s missing: at 7 s the window (2.25 s, 7 s] holds 3 s, 4 s and 7 s.
        assert_eq!(r.push(7000, 1.0, &sh), Some(3.0));
        // After ten minutes without samples only the fresh one is in the window.
        assert_eq!(r.push(607_000, 2.0, &sh), Some(2.0));
    }

    #[test]
    fn more_samples_than_slots_wrap_and_offsets_rebase() {
        // An hour at 60 s: 65 slots, 120 ms units; 10 000 samples span a week of offsets.
        let sh = shape(Aggregate::Avg, 3_840_000, 60_000);
        let mut r = Ring::new(&sh);
        let mut last = None;
        for i in 0..10_000u64 {
            last = r.push(1_000_000 + i * 60_000, (i % 10) as f64, &sh);
        }
        // The window holds the 64 latest: i = 9936..=9999, digits 6..9 then 0..9 six times.
        let latest: Vec<f64> = (9936..10_000u64).map(|i| (i % 10) as f64).collect();
        let want = latest.iter().sum::<f64>() / latest.len() as f64;
        assert_eq!(last, Some(want));
        // And at 1 s, 10 000 cycles of 2 s windows (offsets in ms pass 65 535 many times).
        let sh = shape(Aggregate::Min, 2000, 1000);
        let mut r = Ring::new(&sh);
        for i in 0..10_000u64 {
            last = r.push(i * 1000, (10_000 - i) as f64, &sh);
        }
        assert_eq!(last, Some(1.0));
    }

    #[test]
    fn a_ring_without_slots_yields_nothing() {
        let sh = shape(Aggregate::Avg, 2000, 200);
        let mut r = Ring::default();
        assert!(!r.fits(&sh));
        assert_eq!(r.push(0, 1.0, &sh), None);
    }
}

#[cfg(test)]
mod sizes {
    /// The figures README's memory bound is computed from (64-bit targets).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_sizes_readme_states() {
        assert_eq!(core::mem::size_of::<super::Ring>(), 48);
        assert_eq!(super::ring_bytes(64_000, 1000), 390);
    }
}
