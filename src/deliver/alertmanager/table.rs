//! The alerts an `alertmanager` webhook tells its peers about: what each event changes
//! ([`Table::apply`]), what is due for which peer, and what a full table evicts.

use crate::clock::PLAUSIBLE_SINCE_MS;
use crate::deliver::SinkSpec;
use crate::event::{Event, EventType, Level};
use crate::limits::{MAX_AM_ALERTS, MAX_AM_PEERS};
use crate::render::alertmanager::{expiry, Alert, AlertName, Batch};
use crate::render::Ctx;
use std::sync::{Arc, Mutex};

/// How many times a resolved alert is sent to each peer (`resend` apart), so that one
/// lost request does not leave it firing until its `endsAt`.
pub const RESOLVED_SENDS: u8 = 3;

/// `endsAt` of `TocsinDeviceSilent`: it outlives the heartbeat by this much, so that it
/// notifies once the heartbeat expires (24 h; Alertmanager's `repeat_interval` reminds
/// within it).
pub const SILENT_HOLD_MS: u64 = 24 * 3600 * 1000;

/// Not due for this peer any more.
const DONE: u64 = u64::MAX;

/// One alert the webhook tells its peers about.
#[derive(Clone, Debug)]
struct Tracked {
    name: AlertName,
    /// The rule (rule alerts only).
    rule: Option<usize>,
    /// The rule alert's level (its `severity`).
    level: Level,
    /// The series' `no_data="true"` alert.
    no_data: bool,
    /// The event whose values annotate it (its dimension identifies the series).
    event: Event,
    starts_ms: u64,
    /// When it resolved (unix ms); `None` while firing.
    resolved_ms: Option<u64>,
    /// Sent once to each peer, never re-sent (reboot, delivery_failed, test, …).
    one_shot: bool,
    /// Changes with every change of the entry (unique across the table's life).
    version: u64,
    /// Per peer: when it is next due (monotonic ms of the table), or [`DONE`].
    due: [u64; MAX_AM_PEERS],
    /// Per peer: how often it was sent since it resolved.
    resolved_sends: [u8; MAX_AM_PEERS],
    /// Bit `p`: peer `p` has this version (what it gets next is a plain re-send).
    told: u8,
}

impl Tracked {
    fn is_series(&self, rule: usize, e: &Event) -> bool {
        self.rule == Some(rule) && self.event.dim == e.dim
    }

    /// Its `endsAt` when sent at `now` (unix ms).
    fn ends_ms(&self, now: u64, resend_ms: u64) -> u64 {
        match (self.resolved_ms, self.name) {
            (Some(at), _) => at,
            (None, AlertName::DeviceSilent) => now.saturating_add(SILENT_HOLD_MS),
            (None, _) if self.one_shot => expiry(self.event.timestamp_ms, resend_ms),
            (None, _) => expiry(now, resend_ms),
        }
    }

    fn alert(&self, now: u64, resend_ms: u64) -> Alert<'_> {
        // Times taken before the clock was set (a router without RTC boots in 1970 or at
        // its firmware's date) say nothing: the first plausible time stands in for them.
        let plausible = |t: u64| {
            if t < PLAUSIBLE_SINCE_MS {
                now
            } else {
                t
            }
        };
        Alert {
            name: self.name,
            severity: self.name.severity(self.level),
            event: &self.event,
            starts_ms: plausible(self.starts_ms),
            ends_ms: plausible(self.ends_ms(now, resend_ms)),
            resolved: self.resolved_ms.is_some(),
        }
    }
}

/// What [`Table::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Something became due: wake the lanes.
    pub changed: bool,
    /// An alert that did not fit the table (its `alertname`, severity).
    pub dropped: Option<(String, &'static str)>,
}

/// The alerts of one `alertmanager` webhook.
pub struct Table {
    entries: Vec<Tracked>,
    peers: usize,
    resend_ms: u64,
    events: crate::event::EventMask,
    min_level: Level,
    /// Keep `TocsinHeartbeat` and `TocsinDeviceSilent` (the agent has `heartbeat` set and
    /// the webhook takes heartbeat events).
    heartbeat: bool,
    next_version: u64,
    /// The agent is stopping (or was replaced): lanes send what is due, then end.
    pub(super) closing: bool,
}

impl Table {
    /// An empty table for `spec`, with room for [`MAX_AM_ALERTS`]. Due times are on the
    /// agent's monotonic clock (they must not jump with the wall clock).
    pub fn new(spec: &SinkSpec, heartbeat: bool) -> Table {
        let events = spec.filter.events;
        Table {
            entries: Vec::with_capacity(MAX_AM_ALERTS),
            peers: spec.endpoint.peers.len().clamp(1, MAX_AM_PEERS),
            resend_ms: spec.payload.resend_ms,
            events,
            min_level: spec.filter.min_level,
            heartbeat: heartbeat && events.contains(EventType::Heartbeat),
            next_version: 1,
            closing: false,
        }
    }

    /// Alerts held: (firing, resolved but still being repeated).
    pub fn counts(&self) -> (usize, usize) {
        let firing = self
            .entries
            .iter()
            .filter(|e| e.resolved_ms.is_none())
            .count();
        (firing, self.entries.len() - firing)
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Marks entry `i` changed and due now for every peer.
    fn touch(&mut self, i: usize, mono: u64) {
        let v = self.bump();
        let e = &mut self.entries[i];
        e.version = v;
        e.due = [mono; MAX_AM_PEERS];
        e.resolved_sends = [0; MAX_AM_PEERS];
        e.told = 0;
    }

    fn resolve(&mut self, i: usize, now: u64, mono: u64, by: Option<&Event>) {
        if self.entries[i].resolved_ms.is_some() {
            return;
        }
        self.entries[i].resolved_ms = Some(now.max(self.entries[i].starts_ms));
        if let Some(e) = by {
            self.entries[i].event = e.clone();
        }
        self.touch(i, mono);
    }

    /// Applies one event at `now` (unix ms), monotonic time `mono`.
    pub fn apply(&mut self, e: &Event, now: u64, mono: u64) -> Applied {
        let mut out = Applied::default();
        let Some(name) = AlertName::of(e.kind) else {
            // agent_start: the heartbeat alerts exist from the start.
            if e.kind == EventType::AgentStart && self.heartbeat {
                self.heartbeat_alerts(e, now, mono, &mut out);
            }
            return out;
        };
        match name {
            AlertName::Rule => {
                let Some(rule) = e.rule else { return out };
                let fires = e.kind != EventType::Recovery
                    && self.events.contains(e.kind)
                    && e.level >= self.min_level;
                let no_data = e.kind == EventType::NoData;
                // Every other alert of the series resolves: a recovery, an escalation
                // (the old severity is another alert), no data (the state is unknown).
                for i in 0..self.entries.len() {
                    let x = &self.entries[i];
                    if !x.is_series(rule, e) || x.resolved_ms.is_some() {
                        continue;
                    }
                    if fires && x.level == e.level && x.no_data == no_data {
                        continue;
                    }
                    let by = (e.kind == EventType::Recovery).then_some(e);
                    self.resolve(i, now, mono, by);
                    out.changed = true;
                }
                if fires {
                    let starts = if e.kind == EventType::Alarm && e.prev_level == e.level {
                        e.first_trigger_ms.min(now)
                    } else {
                        now
                    };
                    self.fire(
                        name,
                        Some(rule),
                        e.level,
                        no_data,
                        e,
                        starts,
                        mono,
                        &mut out,
                    );
                }
            }
            AlertName::Heartbeat => {
                if self.heartbeat {
                    self.heartbeat_alerts(e, now, mono, &mut out);
                }
            }
            n => {
                if self.events.contains(e.kind) {
                    self.fire(n, None, e.level, false, e, now, mono, &mut out);
                }
            }
        }
        out
    }

    /// `TocsinHeartbeat` and `TocsinDeviceSilent`, firing. Refreshing them does not make
    /// them due: they go out with every `resend` like any firing alert.
    fn heartbeat_alerts(&mut self, e: &Event, now: u64, mono: u64, out: &mut Applied) {
        for name in [AlertName::Heartbeat, AlertName::DeviceSilent] {
            match self
                .entries
                .iter()
                .position(|x| x.name == name && x.resolved_ms.is_none())
            {
                Some(i) => self.entries[i].event = e.clone(),
                None => self.fire(name, None, Level::Info, false, e, now, mono, out),
            }
        }
    }

    /// Fires (or refreshes) an alert.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        name: AlertName,
        rule: Option<usize>,
        level: Level,
        no_data: bool,
        e: &Event,
        starts_ms: u64,
        mono: u64,
        out: &mut Applied,
    ) {
        let same = |x: &Tracked| {
            x.name == name
                && match rule {
                    Some(r) => x.is_series(r, e) && x.level == level && x.no_data == no_data,
                    None => true,
                }
        };
        if let Some(i) = self.entries.iter().position(same) {
            let x = &mut self.entries[i];
            if x.resolved_ms.take().is_some() || x.one_shot {
                x.starts_ms = starts_ms;
            }
            x.event = e.clone();
            self.touch(i, mono);
            out.changed = true;
            return;
        }
        let entry = Tracked {
            name,
            rule,
            level,
            no_data,
            event: e.clone(),
            starts_ms,
            resolved_ms: None,
            one_shot: rule.is_none()
                && !matches!(name, AlertName::Heartbeat | AlertName::DeviceSilent),
            version: 0,
            due: [mono; MAX_AM_PEERS],
            resolved_sends: [0; MAX_AM_PEERS],
            told: 0,
        };
        let slot = if self.entries.len() < MAX_AM_ALERTS {
            self.entries.push(entry);
            Some(self.entries.len() - 1)
        } else {
            let slot = self.evict_for(&entry);
            if let Some(i) = slot {
                self.entries[i] = entry;
            }
            slot
        };
        match slot {
            Some(i) => {
                self.touch(i, mono);
                out.changed = true;
            }
            None => {
                let alertname = match name {
                    AlertName::Rule => e.rule_name.as_str(),
                    n => n.as_str(),
                };
                out.dropped = Some((alertname.to_string(), name.severity(level)));
            }
        }
    }

    /// A slot for `new` in a full table: the oldest resolved alert, else a short-lived one,
    /// else a firing rule alert of lower level than `new`.
    fn evict_for(&self, new: &Tracked) -> Option<usize> {
        let resolved = (0..self.entries.len())
            .filter(|&i| self.entries[i].resolved_ms.is_some())
            .min_by_key(|&i| self.entries[i].resolved_ms);
        resolved
            .or_else(|| self.entries.iter().position(|x| x.one_shot))
            .or_else(|| {
                (0..self.entries.len())
                    .filter(|&i| {
                        let x = &self.entries[i];
                        x.rule.is_some() && new.rule.is_some() && x.level < new.level
                    })
                    .min_by_key(|&i| self.entries[i].level)
            })
    }

    /// Drops what no peer needs any more: resolved and one-shot alerts sent to every peer,
    /// and any whose `endsAt` (as told to a peer that never got the resolution) has passed,
    /// since Alertmanager resolved those itself.
    fn collect_garbage(&mut self, now: u64) {
        let (peers, resend) = (self.peers, self.resend_ms);
        self.entries.retain(|x| {
            let finished = x.resolved_ms.is_some() || x.one_shot;
            if !finished {
                return true;
            }
            let all_sent = x.due[..peers].iter().all(|&d| d == DONE);
            let expired = match x.resolved_ms {
                Some(at) => expiry(at, resend) < now,
                None => x.ends_ms(now, resend) < now,
            };
            !(all_sent || expired)
        });
    }

    #[allow(clippy::too_many_arguments)]
    /// Writes the alerts due for `peer` at `now` into `buf` (at most `max_batch`), and
    /// their (index, version) into `sent`. Firing alerts due within half a `resend` ride
    /// along. Returns the body length, how many of the alerts are news to the peer (new or
    /// changed since it last got them), and when something will be due (monotonic ms of
    /// the table).
    pub fn collect(
        &self,
        peer: usize,
        (now, mono): (u64, u64),
        spec: &SinkSpec,
        buf: &mut [u8],
        sent: &mut Vec<(usize, u64)>,
    ) -> (usize, usize, Option<u64>) {
        let max_batch = spec.endpoint.max_batch;
        let generator_url = spec.payload.generator_url.as_ref();
        let mut news = 0;
        sent.clear();
        let mut batch = Batch::new(buf);
        let soon = mono + self.resend_ms / 2;
        let mut any_due = false;
        let mut next = DONE;
        for x in &self.entries {
            let due = x.due[peer];
            any_due |= due <= mono;
            next = next.min(due);
        }
        if any_due {
            for (i, x) in self.entries.iter().enumerate() {
                let due = x.due[peer];
                let ride_along = x.resolved_ms.is_none() && !x.one_shot && due <= soon;
                if !(due <= mono || ride_along) || sent.len() >= max_batch {
                    continue;
                }
                let alert = x.alert(now, self.resend_ms);
                let ctx = Ctx {
                    event: &x.event,
                    origin: &spec.origin,
                    language: spec.payload.language,
                };
                if batch.push(&alert, &ctx, generator_url).is_err() {
                    break;
                }
                sent.push((i, x.version));
                news += usize::from(x.told & (1 << peer) == 0);
            }
        }
        let len = batch.finish().unwrap_or(0);
        let next = (next != DONE).then_some(next);
        (if sent.is_empty() { 0 } else { len }, news, next)
    }

    /// Records that `peer` accepted the alerts `sent` (as [`collect`](Self::collect) listed
    /// them); alerts changed since are left due.
    pub fn sent(&mut self, peer: usize, sent: &[(usize, u64)], now: u64, mono: u64) {
        let resend = self.resend_ms;
        for &(i, version) in sent {
            let Some(x) = self.entries.get_mut(i) else {
                continue;
            };
            if x.version != version {
                continue;
            }
            x.told |= 1 << peer;
            x.due[peer] = if x.resolved_ms.is_some() {
                x.resolved_sends[peer] = x.resolved_sends[peer].saturating_add(1);
                if x.resolved_sends[peer] >= RESOLVED_SENDS {
                    DONE
                } else {
                    mono + resend
                }
            } else if x.one_shot {
                DONE
            } else {
                mono + resend
            };
        }
        self.collect_garbage(now);
    }

    /// After a reload: takes over the alerts of `old` (the same webhook in the previous
    /// config). `rule_map[old index]` is the new index of a rule that kept its state;
    /// alerts of other rules resolve (their rule changed or is gone: nothing would resolve
    /// them later). Everything is sent to every peer again.
    pub fn adopt(&mut self, old: &mut Table, rule_map: &[Option<usize>], now: u64, mono: u64) {
        for mut x in old.entries.drain(..) {
            if self.entries.len() >= MAX_AM_ALERTS {
                break;
            }
            match x.rule {
                Some(r) => match rule_map.get(r).copied().flatten() {
                    Some(n) => {
                        x.rule = Some(n);
                        x.event.rule = Some(n);
                    }
                    None => {
                        x.rule = None;
                        if x.resolved_ms.is_none() {
                            x.resolved_ms = Some(now);
                        }
                    }
                },
                // The new config has no heartbeat: its alerts resolve.
                None if matches!(x.name, AlertName::Heartbeat | AlertName::DeviceSilent)
                    && !self.heartbeat
                    && x.resolved_ms.is_none() =>
                {
                    x.resolved_ms = Some(now);
                }
                None => {}
            }
            self.entries.push(x);
            let i = self.entries.len() - 1;
            self.touch(i, mono);
        }
    }

    /// Asks the lanes to send what is due and end.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Forgets every alert of rule `rule` without resolving it (the rule is muted): no
    /// longer re-sent, each lapses in Alertmanager when its `endsAt` passes. Returns how
    /// many were forgotten.
    pub fn lapse(&mut self, rule: usize) -> usize {
        let n = self.entries.len();
        self.entries.retain(|x| x.rule != Some(rule));
        n - self.entries.len()
    }
}

/// A table shared by the agent (which applies events) and the lanes (which send).
pub type SharedTable = Arc<Mutex<Table>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::endpoint::{Auth, Egress, Endpoint, Method, Signing, TlsOptions};
    use crate::event::{EventId, EventMask, Language};
    use crate::limits::MAX_AM_BODY_LEN;
    use crate::metric::{DimValue, Metric};
    use crate::render::alertmanager::write_time;
    use crate::render::template::{Segment, Template};
    use crate::render::{Format, Origin, Payload};
    use crate::route::Filter;

    const T0: u64 = 1_763_800_000_000;

    /// The webhook `am` of a device `gw-1` (`edge`, label site=north-3) with two peers,
    /// `resend = "10s"` and heartbeats, as the config would build it.
    fn spec(min_level: Level, max_batch: usize) -> SinkSpec {
        let url = |u: &str| crate::deliver::url::parse_url(u).expect("valid URL");
        SinkSpec {
            name: "am".into(),
            payload: Payload {
                format: Format::Alertmanager,
                content_type: None,
                body: None,
                language: Language::En,
                form_secret: None,
                resend_ms: 10_000,
                generator_url: None,
            },
            endpoint: Endpoint {
                url: url("http://127.0.0.1:9093"),
                peers: vec![url("http://127.0.0.1:9093"), url("http://127.0.0.1:9094")],
                target: Template {
                    segments: vec![Segment::Lit("/api/v2/alerts".into())],
                },
                method: Method::Post,
                headers: Vec::new(),
                auth: Auth::None,
                signing: Signing::None,
                tls: TlsOptions::default(),
                egress: Egress::default(),
                timeout_ms: 10_000,
                retries: 2,
                retry_interval_ms: 2000,
                retry_after_max_ms: 300_000,
                max_batch,
            },
            filter: Filter {
                enabled: true,
                events: EventMask(EventMask::DEFAULT.0 | EventType::Heartbeat.bit()),
                min_level,
            },
            origin: Origin {
                device_id: "gw-1".into(),
                hostname: "edge".into(),
                interval_ms: 5000,
                labels: vec![("site".into(), "north-3".into())],
            },
            state_dir: "/nonexistent".into(),
            interval_ms: 5000,
            heartbeat: true,
        }
    }

    fn default_spec() -> SinkSpec {
        spec(Level::Info, crate::limits::DEFAULT_MAX_BATCH)
    }

    fn event(kind: EventType, level: Level, prev: Level, mount: &str, value: f64) -> Event {
        let mut e = Event::agent(kind, EventId::new(T0, [1; 10]), T0, "");
        e.rule = Some(0);
        e.rule_name = crate::event::truncated("disk");
        e.metric = Some(Metric::DiskUsed);
        e.dim = DimValue::try_from(mount).unwrap();
        e.level = level;
        e.prev_level = prev;
        e.value = Some(value);
        e.threshold = Some(crate::rule::Condition {
            op: crate::rule::Op::Gt,
            value: match level {
                Level::Critical => 95.0,
                Level::Warn => 85.0,
                Level::Info => 70.0,
            },
        });
        e.first_trigger_ms = T0 - 5000;
        e
    }

    /// The alerts due for `peer` at `mono`, as Alertmanager would parse them; marked sent.
    fn send(t: &mut Table, spec: &SinkSpec, peer: usize, mono: u64) -> Vec<serde_json::Value> {
        let mut buf = vec![0u8; MAX_AM_BODY_LEN];
        let mut sent = Vec::new();
        let (len, _, _) = t.collect(peer, (T0 + mono, mono), spec, &mut buf, &mut sent);
        if len == 0 {
            return Vec::new();
        }
        t.sent(peer, &sent, T0 + mono, mono);
        let mut alerts: Vec<serde_json::Value> =
            serde_json::from_slice(&buf[..len]).expect("JSON array");
        let mut at = String::new();
        let _ = write_time(&mut at, T0 + mono);
        for a in &mut alerts {
            a["sentAt"] = serde_json::Value::String(at.trim_matches('"').to_string());
        }
        alerts
    }

    /// `alertname/severity`, and ` resolved` when `endsAt` is not in the future.
    fn names(alerts: &[serde_json::Value]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| {
                let l = &a["labels"];
                let resolved = a["endsAt"].as_str().unwrap() <= a["sentAt"].as_str().unwrap();
                format!(
                    "{}/{}{}",
                    l["alertname"].as_str().unwrap(),
                    l["severity"].as_str().unwrap(),
                    if resolved { " resolved" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn fires_resends_escalates_and_resolves_for_every_peer() {
        let cfg = default_spec();
        let mut t = Table::new(&cfg, false);
        let warn = event(EventType::Alarm, Level::Warn, Level::Warn, "/", 90.0);
        assert!(t.apply(&warn, T0, 0).changed);
        let a = send(&mut t, &cfg, 0, 0);
        assert_eq!(names(&a), ["disk/warning"]);
        let labels = &a[0]["labels"];
        assert_eq!(labels["device_id"], "gw-1");
        assert_eq!(labels["instance"], "edge");
        assert_eq!(labels["metric"], "disk.used_percent");
        assert_eq!(labels["mount"], "/");
        assert_eq!(labels["site"], "north-3");
        assert_eq!(a[0]["annotations"]["value"], "90");
        assert_eq!(a[0]["annotations"]["threshold"], "> 85");
        // Firing: endsAt = now + 4 × resend; startsAt = the first breach.
        assert_eq!(a[0]["startsAt"], "2025-11-22T08:26:35.000Z");
        assert_eq!(a[0]["endsAt"], "2025-11-22T08:27:20.000Z");
        // Peer 0 has it until the next resend; peer 1 still waits for it.
        assert!(send(&mut t, &cfg, 0, 1000).is_empty());
        assert_eq!(names(&send(&mut t, &cfg, 1, 1000)), ["disk/warning"]);
        assert_eq!(names(&send(&mut t, &cfg, 0, 10_000)), ["disk/warning"]);

        // Escalation: the warning alert resolves, the critical one fires.
        let crit = event(EventType::Alarm, Level::Critical, Level::Warn, "/", 97.0);
        t.apply(&crit, T0 + 11_000, 11_000);
        let a = send(&mut t, &cfg, 0, 11_000);
        assert_eq!(names(&a), ["disk/warning resolved", "disk/critical"]);
        assert_eq!(a[0]["endsAt"], "2025-11-22T08:26:51.000Z");

        // Recovery: the critical alert resolves and is repeated RESOLVED_SENDS times.
        let ok = event(
            EventType::Recovery,
            Level::Critical,
            Level::Critical,
            "/",
            50.0,
        );
        t.apply(&ok, T0 + 12_000, 12_000);
        let mut resolved_sends = 0;
        for s in 0..10 {
            let a = send(&mut t, &cfg, 0, 12_000 + s * 10_000);
            resolved_sends += names(&a)
                .iter()
                .filter(|n| *n == "disk/critical resolved")
                .count();
        }
        assert_eq!(resolved_sends, usize::from(RESOLVED_SENDS));
        // Peer 1 never got the resolutions: they stay until Alertmanager's own endsAt
        // for them passed, then go.
        assert_eq!(t.counts().1, 2);
        t.collect_garbage(T0 + 12_000 + 41_000);
        assert_eq!(t.counts(), (0, 0));
    }

    #[test]
    fn an_alarm_below_min_level_still_resolves_the_series() {
        let cfg = spec(Level::Warn, crate::limits::DEFAULT_MAX_BATCH);
        let mut t = Table::new(&cfg, false);
        t.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/", 90.0),
            T0,
            0,
        );
        send(&mut t, &cfg, 0, 0);
        // De-escalation to INFO: not sent as an alert, but WARN must not stay firing.
        t.apply(
            &event(EventType::Alarm, Level::Info, Level::Warn, "/", 75.0),
            T0 + 1000,
            1000,
        );
        assert_eq!(
            names(&send(&mut t, &cfg, 0, 1000)),
            ["disk/warning resolved"]
        );
        assert_eq!(t.counts().0, 0);
    }

    #[test]
    fn series_are_separate_alerts_and_no_data_has_its_own() {
        let cfg = default_spec();
        let mut t = Table::new(&cfg, false);
        t.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/", 90.0),
            T0,
            0,
        );
        t.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/data", 91.0),
            T0,
            0,
        );
        assert_eq!(t.counts(), (2, 0));
        let mut nd = event(EventType::NoData, Level::Warn, Level::Warn, "/data", 0.0);
        nd.value = None;
        t.apply(&nd, T0 + 1000, 1000);
        let a = send(&mut t, &cfg, 0, 1000);
        assert_eq!(
            names(&a),
            ["disk/warning", "disk/warning resolved", "disk/warning"]
        );
        assert_eq!(a[2]["labels"]["no_data"], "true");
        assert_eq!(a[2]["labels"]["mount"], "/data");
        assert_eq!(a[0]["labels"]["mount"], "/");
    }

    #[test]
    fn heartbeat_alerts_fire_from_start_and_are_resent_with_the_rest() {
        let cfg = default_spec();
        let mut t = Table::new(&cfg, true);
        let start = Event::agent(EventType::AgentStart, EventId::new(T0, [2; 10]), T0, "");
        t.apply(&start, T0, 0);
        let a = send(&mut t, &cfg, 0, 0);
        assert_eq!(
            names(&a),
            ["TocsinHeartbeat/none", "TocsinDeviceSilent/critical"]
        );
        // The silent alert outlives the heartbeat by a day.
        assert_eq!(a[1]["endsAt"], "2025-11-23T08:26:40.000Z");
        // A heartbeat event does not add a request; the next resend carries them.
        let hb = Event::agent(EventType::Heartbeat, EventId::new(T0, [3; 10]), T0, "");
        assert!(!t.apply(&hb, T0 + 3000, 3000).changed);
        assert!(send(&mut t, &cfg, 0, 3000).is_empty());
        assert_eq!(send(&mut t, &cfg, 0, 10_000).len(), 2);
    }

    #[test]
    fn one_shot_alerts_go_once_to_each_peer() {
        let cfg = default_spec();
        let mut t = Table::new(&cfg, false);
        let reboot = Event::agent(EventType::Reboot, EventId::new(T0, [4; 10]), T0, "x");
        t.apply(&reboot, T0, 0);
        assert_eq!(names(&send(&mut t, &cfg, 0, 0)), ["TocsinReboot/warning"]);
        assert!(send(&mut t, &cfg, 0, 60_000).is_empty());
        assert_eq!(t.counts().0, 1, "peer 1 has not had it yet");
        assert_eq!(names(&send(&mut t, &cfg, 1, 0)), ["TocsinReboot/warning"]);
        assert_eq!(t.counts(), (0, 0));
    }

    #[test]
    fn alerts_due_soon_ride_along_and_batches_are_bounded() {
        let cfg = spec(Level::Info, 2);
        let mut t = Table::new(&cfg, false);
        t.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/a", 90.0),
            T0,
            0,
        );
        send(&mut t, &cfg, 0, 0);
        // Fired 6 s later, within half a resend of /a's next send: both go together from
        // now on.
        t.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/b", 90.0),
            T0 + 6000,
            6000,
        );
        assert_eq!(send(&mut t, &cfg, 0, 6000).len(), 2);
        assert!(send(&mut t, &cfg, 0, 10_000).is_empty());
        assert_eq!(send(&mut t, &cfg, 0, 16_000).len(), 2);
        for m in ["/c", "/d", "/e"] {
            t.apply(
                &event(EventType::Alarm, Level::Warn, Level::Warn, m, 90.0),
                T0 + 21_000,
                21_000,
            );
        }
        // Three new ones, and the two due within half a resend: five, two per request.
        assert_eq!(send(&mut t, &cfg, 0, 21_000).len(), 2);
        assert_eq!(send(&mut t, &cfg, 0, 21_000).len(), 2);
        assert_eq!(send(&mut t, &cfg, 0, 21_000).len(), 1);
        assert!(send(&mut t, &cfg, 0, 21_000).is_empty());
    }

    #[test]
    fn a_full_table_evicts_resolved_then_lower_levels_and_reports_what_it_drops() {
        let cfg = default_spec();
        let mut t = Table::new(&cfg, false);
        for i in 0..MAX_AM_ALERTS {
            let level = if i == 0 { Level::Info } else { Level::Critical };
            let e = event(EventType::Alarm, level, level, &format!("/m{i}"), 99.0);
            assert_eq!(t.apply(&e, T0, 0).dropped, None);
        }
        assert_eq!(t.entries.capacity(), MAX_AM_ALERTS);
        let warn = event(EventType::Alarm, Level::Warn, Level::Warn, "/new", 90.0);
        assert_eq!(t.apply(&warn, T0, 0).dropped, None, "evicts the INFO one");
        let crit = event(
            EventType::Alarm,
            Level::Critical,
            Level::Critical,
            "/x",
            99.0,
        );
        // Nothing below CRITICAL but the WARN: it goes.
        assert_eq!(t.apply(&crit, T0, 0).dropped, None);
        let crit2 = event(
            EventType::Alarm,
            Level::Critical,
            Level::Critical,
            "/y",
            99.0,
        );
        assert_eq!(
            t.apply(&crit2, T0, 0).dropped,
            Some(("disk".into(), "critical"))
        );
        assert_eq!(t.entries.capacity(), MAX_AM_ALERTS, "never grown");
    }

    #[test]
    fn a_reload_keeps_alerts_of_unchanged_rules_and_resolves_the_others() {
        let cfg = default_spec();
        let mut old = Table::new(&cfg, true);
        old.apply(
            &event(EventType::Alarm, Level::Warn, Level::Warn, "/", 90.0),
            T0,
            0,
        );
        let mut other = event(EventType::Alarm, Level::Warn, Level::Warn, "/", 90.0);
        other.rule = Some(1);
        other.rule_name = crate::event::truncated("gone");
        old.apply(&other, T0, 0);
        let mut new = Table::new(&cfg, false);
        // Rule 0 is rule 3 now; rule 1 changed.
        new.adopt(&mut old, &[Some(3), None], T0 + 1000, 1000);
        assert_eq!(old.counts(), (0, 0));
        assert_eq!(new.counts(), (1, 1));
        assert_eq!(new.entries[0].rule, Some(3));
        assert_eq!(
            names(&send(&mut new, &cfg, 0, 1000)),
            ["disk/warning", "gone/warning resolved"]
        );
    }
}
