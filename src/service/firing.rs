//! The firing-state file: every series that is not OK (ALERT or INSUFFICIENT_DATA) or
//! whose recovery a webhook still owes, so that alert state survives a restart, a reboot
//! or a power cut.
//!
//! Per series: its identity (rule name, metric, dimension key and value), state, level,
//! episode start, last trigger, `times`, when it last notified (repeats excepted), the
//! rule's `notify` at the time, and per webhook the *delivered state* (state, level and id
//! of the last event that webhook answered with 2xx) and the last event routed to it,
//! whole, so it can be sent again. A webhook *owes* an event when its delivered state
//! differs from the series' state.
//!
//! The file is `state_dir/firing.state`: magic, format version, the device id, the
//! series, an 8-byte checksum (SHA-256) over the rest. It is rewritten whole with
//! write-temp + fsync + rename + directory fsync, on the blocking pool, at most once per
//! cycle and only in a cycle with a transition or a new 2xx that changed a delivered
//! state — never otherwise. A torn or foreign file is moved aside as `*.bad`.
//!
//! Encoding and decoding are pure; [`Firing`] is the agent's in-memory copy.

use crate::deliver::spool::{self, state};
use crate::deliver::Ack;
use crate::event::{AlertState, Event, EventId, Level, Millis, Name};
use crate::limits::{MAX_NAME_LEN, MAX_NOTIFY, MAX_RULES, MAX_SERIES_PER_RULE};
use crate::metric::{DimValue, Metric};
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"TCSF";
const VERSION: u8 = 1;
const SUM_LEN: usize = 8;
/// Most series in the file.
pub const MAX_ENTRIES: usize = MAX_RULES * MAX_SERIES_PER_RULE;
/// Most webhooks recorded per series (the rule's `notify`).
pub const MAX_HOOKS: usize = MAX_NOTIFY;
/// Longest encoded event (the spool's encoding).
const MAX_EVENT_LEN: usize = 1024;
/// Longest encoded series: identity and counters, `notify`, and per webhook its name,
/// delivered state and last event.
pub const MAX_ENTRY_LEN: usize = (1 + MAX_NAME_LEN) * (1 + MAX_NOTIFY)
    + 1
    + 1
    + 97
    + 2
    + 4 * 8
    + 4
    + 2
    + MAX_HOOKS * ((1 + MAX_NAME_LEN) + 19 + 2 + MAX_EVENT_LEN);
/// Longest file read.
pub const MAX_FILE_LEN: usize = 8 + 1 + MAX_NAME_LEN + 2 + MAX_ENTRIES * MAX_ENTRY_LEN + SUM_LEN;

/// What a webhook acknowledged last for a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The state it told.
    pub state: AlertState,
    /// Its level.
    pub level: Level,
    /// The event's id.
    pub id: EventId,
}

/// One webhook of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// The webhook's name (indices change between configs).
    pub webhook: Name,
    /// What it acknowledged last, if anything.
    pub delivered: Option<Delivered>,
    /// The last event routed to it.
    pub last: Event,
}

/// One series.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The rule's name.
    pub rule_name: Name,
    /// Its metric.
    pub metric: Metric,
    /// The samples' dimension key, as the series has it.
    pub key: Option<&'static str>,
    /// The dimension value.
    pub dim: DimValue,
    /// The series' state.
    pub state: AlertState,
    /// Its level.
    pub level: Level,
    /// The episode's first trigger.
    pub first_ms: Millis,
    /// The latest trigger.
    pub last_ms: Millis,
    /// Breaches counted.
    pub times: u32,
    /// The last notification that was not a repeat.
    pub notified_ms: Millis,
    /// The rule's `notify` (webhook names) when it was written.
    pub notify: Vec<Name>,
    /// The webhooks events of this series went to.
    pub hooks: Vec<Hook>,
}

impl Entry {
    /// The series key its events have ([`Event::series_key`]).
    pub fn series(&self) -> u64 {
        crate::util::fnv1a(&[
            self.rule_name.as_bytes(),
            b"\0",
            self.metric.name().as_bytes(),
            b"\0",
            self.dim.as_bytes(),
        ])
    }

    /// Whether `hook` owes an event: its delivered state differs from the series' state.
    pub fn owes(&self, hook: &Hook) -> bool {
        match hook.delivered {
            None => true,
            Some(d) => {
                d.state != self.state || (self.state != AlertState::Ok && d.level != self.level)
            }
        }
    }

    /// Whether nothing about it needs keeping: OK, and every webhook told so.
    pub fn settled(&self) -> bool {
        self.state == AlertState::Ok && self.hooks.iter().all(|h| !self.owes(h))
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FiringSet {
    /// The device the events were made for.
    pub device_id: String,
    /// The series.
    pub entries: Vec<Entry>,
}

// ---- encoding ---------------------------------------------------------------------------

fn checksum(data: &[u8]) -> [u8; SUM_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; SUM_LEN];
    out.copy_from_slice(&d.as_ref()[..SUM_LEN]);
    out
}

fn put_str(o: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    o.push(end as u8);
    o.extend_from_slice(&s.as_bytes()[..end]);
}

fn state_byte(s: AlertState) -> u8 {
    match s {
        AlertState::Ok => 0,
        AlertState::Alert => 1,
        AlertState::InsufficientData => 2,
    }
}

/// The set as bytes: magic, version, device id, series, checksum.
pub fn encode(set: &FiringSet) -> Vec<u8> {
    let mut o = Vec::with_capacity(64 + set.entries.len() * 512);
    o.extend_from_slice(MAGIC);
    o.push(VERSION);
    put_str(&mut o, &set.device_id);
    let n = set.entries.len().min(MAX_ENTRIES);
    o.extend_from_slice(&(n as u16).to_le_bytes());
    for e in &set.entries[..n] {
        put_str(&mut o, &e.rule_name);
        o.push(Metric::ALL.iter().position(|m| *m == e.metric).unwrap_or(0) as u8);
        let key = e
            .key
            .and_then(|k| e.metric.dimensions().iter().position(|d| *d == k));
        o.push(key.map_or(255, |i| i as u8));
        put_str(&mut o, &e.dim);
        o.push(state_byte(e.state));
        o.push(e.level as u8);
        for t in [e.first_ms, e.last_ms, e.notified_ms] {
            o.extend_from_slice(&t.to_le_bytes());
        }
        o.extend_from_slice(&e.times.to_le_bytes());
        let notify = &e.notify[..e.notify.len().min(MAX_NOTIFY)];
        o.push(notify.len() as u8);
        for w in notify {
            put_str(&mut o, w);
        }
        let hooks = &e.hooks[..e.hooks.len().min(MAX_HOOKS)];
        o.push(hooks.len() as u8);
        for h in hooks {
            put_str(&mut o, &h.webhook);
            match h.delivered {
                None => o.push(0),
                Some(d) => {
                    o.push(1);
                    o.push(state_byte(d.state));
                    o.push(d.level as u8);
                    o.extend_from_slice(&d.id.0);
                }
            }
            let ev = spool::encode(&h.last);
            o.extend_from_slice(&(ev.len() as u16).to_le_bytes());
            o.extend_from_slice(&ev);
        }
    }
    let sum = checksum(&o);
    o.extend_from_slice(&sum);
    o
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str<const N: usize>(&mut self) -> Option<heapless::String<N>> {
        let n = usize::from(self.u8()?);
        let s = core::str::from_utf8(self.take(n)?).ok()?;
        heapless::String::try_from(s).ok()
    }
    fn state(&mut self) -> Option<AlertState> {
        [
            AlertState::Ok,
            AlertState::Alert,
            AlertState::InsufficientData,
        ]
        .get(usize::from(self.u8()?))
        .copied()
    }
    fn level(&mut self) -> Option<Level> {
        [Level::Info, Level::Warn, Level::Critical]
            .get(usize::from(self.u8()?))
            .copied()
    }
}

/// The set of `bytes`, or `None` when they are torn, foreign or of another version.
pub fn decode(bytes: &[u8]) -> Option<FiringSet> {
    if bytes.len() < MAGIC.len() + 1 + SUM_LEN || bytes.len() > MAX_FILE_LEN {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    if checksum(body) != sum || &body[..4] != MAGIC || body[4] != VERSION {
        return None;
    }
    let mut r = Reader(&body[5..]);
    let device_id: heapless::String<255> = r.str()?;
    let n = usize::from(r.u16()?);
    if n > MAX_ENTRIES {
        return None;
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let rule_name = r.str()?;
        let metric = *Metric::ALL.get(usize::from(r.u8()?))?;
        let key = match r.u8()? {
            255 => None,
            i => Some(*metric.dimensions().get(usize::from(i))?),
        };
        let dim = r.str()?;
        let state = r.state()?;
        let level = r.level()?;
        let (first_ms, last_ms, notified_ms) = (r.u64()?, r.u64()?, r.u64()?);
        let times = r.u32()?;
        let nn = usize::from(r.u8()?);
        if nn > MAX_NOTIFY {
            return None;
        }
        let mut notify = Vec::with_capacity(nn);
        for _ in 0..nn {
            notify.push(r.str()?);
        }
        let nh = usize::from(r.u8()?);
        if nh > MAX_HOOKS {
            return None;
        }
        let mut hooks = Vec::with_capacity(nh);
        for _ in 0..nh {
            let webhook = r.str()?;
            let delivered = match r.u8()? {
                0 => None,
                1 => Some(Delivered {
                    state: r.state()?,
                    level: r.level()?,
                    id: EventId(r.take(16)?.try_into().ok()?),
                }),
                _ => return None,
            };
            let len = usize::from(r.u16()?);
            let last = spool::decode(r.take(len)?)?;
            hooks.push(Hook {
                webhook,
                delivered,
                last,
            });
        }
        entries.push(Entry {
            rule_name,
            metric,
            key,
            dim,
            state,
            level,
            first_ms,
            last_ms,
            times,
            notified_ms,
            notify,
            hooks,
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(FiringSet {
        device_id: device_id.as_str().to_owned(),
        entries,
    })
}

// ---- the file ---------------------------------------------------------------------------

/// The firing-state file of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("firing.state")
}

/// Reads the file: `None` when there is none; a torn, foreign or unreadable-as-regular
/// file is moved aside (`*.bad`) with a log line and reads as none.
pub fn load(state_dir: &Path) -> Option<FiringSet> {
    let p = path(state_dir);
    let bytes = match state::read_regular(&p, MAX_FILE_LEN as u64, false) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) if state::is_foreign(&e) => {
            state::set_aside(&p, &format!("is {e}"));
            return None;
        }
        Err(e) => {
            crate::warn!("firing state: cannot read {}: {e}", state::shown(&p));
            return None;
        }
    };
    let set = decode(&bytes);
    if set.is_none() {
        state::set_aside(&p, "is damaged (torn write or foreign file)");
    }
    set
}

/// Writes `bytes` as the file (blocking: run it on the blocking pool).
///
/// # Errors
/// A step failed; the previous file is as it was.
pub fn write(state_dir: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::crash_point!("firing.before-write");
    state::make_state_dir(state_dir)?;
    let p = path(state_dir);
    let tmp = state_dir.join("firing.state.tmp");
    state::write_atomic_steps(&p, &tmp, bytes, &mut |step| {
        crate::crash_point!("firing", step);
    })?;
    state::sync_dir(state_dir)?;
    crate::crash_point!("firing.after-dirsync");
    Ok(())
}

// ---- in memory --------------------------------------------------------------------------

/// The agent's copy of the set, and whether it must be written.
#[derive(Debug, Default)]
pub struct Firing {
    /// The series.
    pub set: FiringSet,
    /// Changed since the last write.
    pub dirty: bool,
}

impl Firing {
    /// The entry of `event`'s series, if any.
    pub fn find(&mut self, event: &Event) -> Option<usize> {
        let series = event.series_key();
        self.set.entries.iter().position(|e| {
            e.series() == series
                && e.rule_name == event.rule_name
                && Some(e.metric) == event.metric
                && e.dim == event.dim
        })
    }

    /// A rule event was routed to `hooks` (webhook names; `stateful[i]`: that webhook keeps
    /// alert state itself and counts as told). `key` is the series' sample key, `notify`
    /// the rule's webhook names. A repeat changes nothing stored.
    pub fn on_event(
        &mut self,
        event: &Event,
        key: Option<&'static str>,
        notify: &[&str],
        hooks: &[(&str, bool)],
    ) {
        self.on_event_muted(event, key, notify, hooks, &[]);
    }

    /// [`on_event`](Self::on_event), where the webhooks of `hooks` named in `muted` had
    /// the event suppressed by a mute: what they were told stays as it was (a webhook new
    /// to the series counts as told OK, as it was told nothing), so the reconciliation at
    /// unmute sends each of them what it owes then.
    pub fn on_event_muted(
        &mut self,
        event: &Event,
        key: Option<&'static str>,
        notify: &[&str],
        hooks: &[(&str, bool)],
        muted: &[&str],
    ) {
        let at = self.find(event);
        if let Some(i) = at {
            let e = &mut self.set.entries[i];
            let repeat = event.kind == crate::event::EventType::Alarm
                && e.state == AlertState::Alert
                && e.level == event.level
                && event.prev_level == event.level;
            if repeat {
                e.times = event.times;
                e.last_ms = event.last_trigger_ms;
                return;
            }
        }
        let i = match at {
            Some(i) => i,
            None => {
                if event.state == AlertState::Ok || self.set.entries.len() >= MAX_ENTRIES {
                    return;
                }
                self.set.entries.push(Entry {
                    rule_name: event.rule_name.clone(),
                    metric: event.metric.unwrap_or(Metric::Uptime),
                    key,
                    dim: event.dim.clone(),
                    state: event.state,
                    level: event.level,
                    first_ms: event.first_trigger_ms,
                    last_ms: event.last_trigger_ms,
                    times: event.times,
                    notified_ms: event.timestamp_ms,
                    notify: Vec::new(),
                    hooks: Vec::new(),
                });
                self.set.entries.len() - 1
            }
        };
        let e = &mut self.set.entries[i];
        e.state = event.state;
        e.level = event.level;
        e.first_ms = event.first_trigger_ms;
        e.last_ms = event.last_trigger_ms;
        e.times = event.times;
        e.key = key;
        if event.kind == crate::event::EventType::Alarm {
            e.notified_ms = event.timestamp_ms;
        }
        e.notify = notify.iter().map(|n| crate::event::truncated(n)).collect();
        // A webhook this state was not routed to (its filter) owes nothing for it.
        e.hooks
            .retain(|h| hooks.iter().any(|(n, _)| h.webhook == *n));
        for (name, stateful) in hooks.iter().take(MAX_HOOKS) {
            let suppressed = muted.contains(name);
            let told = (*stateful && !suppressed).then_some(Delivered {
                state: event.state,
                level: event.level,
                id: event.id,
            });
            match e.hooks.iter_mut().find(|h| h.webhook == *name) {
                Some(_) if suppressed => {}
                Some(h) => {
                    h.last = event.clone();
                    if told.is_some() {
                        h.delivered = told;
                    }
                }
                None => e.hooks.push(Hook {
                    webhook: crate::event::truncated(name),
                    // Told nothing of this series is told OK; the id is the last event's,
                    // so the reconciliation makes a new event rather than send this one.
                    delivered: if suppressed {
                        Some(Delivered {
                            state: AlertState::Ok,
                            level: event.level,
                            id: event.id,
                        })
                    } else {
                        told
                    },
                    last: event.clone(),
                }),
            }
        }
        self.dirty = true;
        self.prune();
    }

    /// A 2xx from webhook `name`: its delivered state for the series. Marks the set dirty
    /// only when the delivered state changed (a repeat's 2xx changes nothing stored).
    pub fn on_ack(&mut self, ack: &Ack, name: &str) {
        for e in &mut self.set.entries {
            if e.series() != ack.series {
                continue;
            }
            let Some(h) = e.hooks.iter_mut().find(|h| h.webhook == name) else {
                continue;
            };
            let before = h.delivered.map(|d| (d.state, d.level));
            h.delivered = Some(Delivered {
                state: ack.state,
                level: ack.level,
                id: ack.id,
            });
            if before != Some((ack.state, ack.level)) {
                self.dirty = true;
            }
        }
        crate::crash_point!("ack.after-apply");
        self.prune();
    }

    /// Drops settled series.
    pub fn prune(&mut self) {
        let n = self.set.entries.len();
        self.set.entries.retain(|e| !e.settled());
        if self.set.entries.len() != n {
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn alarm(dim: &str) -> Event {
        let mut e = Event::agent(
            EventType::Alarm,
            EventId::new(1_700_000_000_000, [7; 10]),
            1_700_000_000_000,
            "",
        );
        e.rule = Some(0);
        e.rule_name = "disk".try_into().unwrap();
        e.metric = Some(Metric::DiskUsed);
        e.dim = dim.try_into().unwrap();
        e.state = AlertState::Alert;
        e.level = Level::Critical;
        e.prev_level = Level::Critical;
        e.first_trigger_ms = 1_699_999_990_000;
        e.times = 3;
        e
    }

    #[test]
    fn round_trip_and_every_torn_prefix_is_rejected() {
        let mut f = Firing::default();
        f.on_event(&alarm("/"), None, &["a", "b"], &[("a", false), ("b", true)]);
        f.on_event(&alarm("/overlay"), None, &["a"], &[("a", false)]);
        f.set.device_id = "gw-1".into();
        let bytes = encode(&f.set);
        assert_eq!(decode(&bytes).as_ref(), Some(&f.set));
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_none(), "prefix {n}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(decode(&flipped).is_none());
    }

    #[test]
    fn owed_until_acknowledged_and_settled_series_go() {
        let mut f = Firing::default();
        let a = alarm("/");
        f.on_event(&a, None, &["a"], &[("a", false)]);
        assert!(f.dirty);
        let e = &f.set.entries[0];
        assert!(e.owes(&e.hooks[0]));
        f.dirty = false;
        // A repeat is not stored.
        let mut rep = a.clone();
        rep.id = EventId::new(1, [1; 10]);
        rep.times = 9;
        f.on_event(&rep, None, &["a"], &[("a", false)]);
        assert!(!f.dirty);
        f.on_ack(&Ack::of(0, &a), "a");
        assert!(f.dirty);
        assert!(!f.set.entries[0].owes(&f.set.entries[0].hooks[0]));
        f.dirty = false;
        // The repeat's 2xx changes no delivered state: nothing to write.
        f.on_ack(&Ack::of(0, &rep), "a");
        assert!(!f.dirty);
        let mut rec = a.clone();
        rec.kind = EventType::Recovery;
        rec.state = AlertState::Ok;
        rec.id = EventId::new(2, [2; 10]);
        f.on_event(&rec, None, &["a"], &[("a", false)]);
        assert_eq!(f.set.entries.len(), 1, "the recovery is owed");
        f.on_ack(&Ack::of(0, &rec), "a");
        assert!(f.set.entries.is_empty());
    }

    #[test]
    fn worst_case_fits_the_read_bound() {
        let mut f = Firing::default();
        let long = "x".repeat(MAX_NAME_LEN);
        let names: Vec<String> = (0..MAX_NOTIFY)
            .map(|i| format!("{i}{}", &long[1..]))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let hooks: Vec<(&str, bool)> = refs.iter().map(|n| (*n, false)).collect();
        let mut e = alarm(&"d".repeat(crate::limits::MAX_DIM_VALUE_LEN));
        e.rule_name = long.as_str().try_into().unwrap();
        f.on_event(&e, None, &refs, &hooks);
        let one = encode(&f.set).len();
        assert!(one < MAX_ENTRY_LEN, "{one} >= {MAX_ENTRY_LEN}");
    }
}
