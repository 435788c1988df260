//! Mutes set while the agent runs (`tocsin mute` / `tocsin unmute`): maintenance on a
//! device without a config change.
//!
//! A mute names a rule, a webhook or everything (`all`), and lasts until it is lifted or
//! expires. A rule mute suppresses that rule's `alarm`, `recovery` and `no_data` events;
//! a webhook mute and `all` suppress every event to the webhook(s) except `heartbeat` and
//! `test`. An event is suppressed when any mute applies. `alertmanager` webhooks keep
//! alert state themselves: they cannot be muted by name (an Alertmanager silence does
//! that) and `all` leaves them out; a rule mute lets the rule's alerts lapse there.
//! Suppressed events are not sent, not spooled and change no delivered state: when the
//! mute goes, each receiver it covered is reconciled — one event per series whose
//! delivered state differs from the current one.
//!
//! The mutes are kept in `state_dir/mute.state` (magic, format version, the mutes, an
//! 8-byte SHA-256 checksum), written atomically (temp + fsync + rename + directory fsync,
//! 0600) only when a mute is set, lifted or expires. Each mute stores its wall-clock set
//! and expiry times; the timer itself runs on the monotonic clock: at start, when the
//! wall clock is implausible (before 2020, or before the stored set time) or the stored
//! set time is, the whole duration counts again from this start.
//!
//! [`encode`] and [`decode`] are pure.

use super::Agent;
use crate::clock::PLAUSIBLE_SINCE_MS;
use crate::deliver::spool::state;
use crate::deliver::{Mode, Sink};
use crate::event::{Event, EventType, Name};
use crate::limits::{MAX_NAME_LEN, MAX_RULES, MAX_WEBHOOKS};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"TCSM";
const VERSION: u8 = 1;
const SUM_LEN: usize = 8;
/// Most mutes at once: one per rule and per webhook, and `all`.
pub const MAX_MUTES: usize = MAX_RULES + MAX_WEBHOOKS + 1;
/// How long a mute lasts when `--for` is not given.
pub const DEFAULT_FOR_MS: u64 = 3_600_000;
/// The longest mute: 7 days.
pub const MAX_FOR_MS: u64 = 7 * 24 * 3_600_000;
/// Longest file: header, count, and per mute its kind, name and two times.
pub const MAX_FILE_LEN: usize = 5 + 1 + MAX_MUTES * (1 + 1 + MAX_NAME_LEN + 16) + SUM_LEN;

/// What a mute covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One rule's events, to every webhook.
    Rule(Name),
    /// Every event but `heartbeat` and `test` to one webhook.
    Webhook(Name),
    /// Every event but `heartbeat` and `test` to every webhook (but `alertmanager` ones).
    All,
}

impl Target {
    /// Whether an event of `kind` (of rule `rule_name` when a rule event) to webhook
    /// `webhook` is covered; `stateful`: that webhook is an `alertmanager` one.
    pub fn covers(
        &self,
        kind: EventType,
        rule_name: Option<&str>,
        webhook: &str,
        stateful: bool,
    ) -> bool {
        if matches!(kind, EventType::Heartbeat | EventType::Test) {
            return false;
        }
        match self {
            Target::Rule(r) => {
                matches!(
                    kind,
                    EventType::Alarm | EventType::Recovery | EventType::NoData
                ) && rule_name == Some(r.as_str())
            }
            Target::Webhook(w) => w.as_str() == webhook,
            Target::All => !stateful,
        }
    }

    /// Whether the events of rule `rule_name`'s series to `webhook` are covered.
    pub fn covers_series(&self, rule_name: &str, webhook: &str, stateful: bool) -> bool {
        self.covers(EventType::Alarm, Some(rule_name), webhook, stateful)
    }

    /// The request words: `rule NAME`, `webhook NAME`, `all`.
    pub fn parse(words: &str) -> Option<Target> {
        let words = words.trim();
        if words == "all" {
            return Some(Target::All);
        }
        let (kind, name) = words.split_once(' ')?;
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let name = Name::try_from(name).ok()?;
        match kind {
            "rule" => Some(Target::Rule(name)),
            "webhook" => Some(Target::Webhook(name)),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Rule(n) => write!(f, "rule {n}"),
            Target::Webhook(n) => write!(f, "webhook {n}"),
            Target::All => f.write_str("all"),
        }
    }
}

/// One mute as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// What it covers.
    pub target: Target,
    /// When it was set (wall-clock unix ms).
    pub set_ms: u64,
    /// When it expires (wall-clock unix ms).
    pub until_ms: u64,
}

/// Why [`decode`] refused a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header and checksum, or longer than [`MAX_FILE_LEN`].
    Length,
    /// Not a mute file.
    Magic,
    /// A format version this one does not read.
    Version(u8),
    /// The checksum does not match (a torn write).
    Checksum,
    /// The content does not parse.
    Malformed,
}

impl DecodeError {
    /// What it means, for the log line that moves the file aside.
    pub fn what(self) -> &'static str {
        match self {
            DecodeError::Length => "has an impossible length",
            DecodeError::Magic => "is not a tocsin mute file",
            DecodeError::Version(_) => "has a format version this tocsin does not read",
            DecodeError::Checksum => "is damaged (checksum mismatch: a torn write?)",
            DecodeError::Malformed => "is damaged (does not parse)",
        }
    }
}

fn checksum(data: &[u8]) -> [u8; SUM_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; SUM_LEN];
    out.copy_from_slice(&d.as_ref()[..SUM_LEN]);
    out
}

/// The mutes as bytes: magic, version, count, per mute (kind, name, set, until), checksum.
pub fn encode(mutes: &[Stored]) -> Vec<u8> {
    let n = mutes.len().min(MAX_MUTES);
    let mut o = Vec::with_capacity(16 + n * 32);
    o.extend_from_slice(MAGIC);
    o.push(VERSION);
    o.push(n as u8);
    for m in &mutes[..n] {
        let (kind, name) = match &m.target {
            Target::Rule(r) => (0u8, r.as_str()),
            Target::Webhook(w) => (1, w.as_str()),
            Target::All => (2, ""),
        };
        o.push(kind);
        o.push(name.len() as u8);
        o.extend_from_slice(name.as_bytes());
        o.extend_from_slice(&m.set_ms.to_le_bytes());
        o.extend_from_slice(&m.until_ms.to_le_bytes());
    }
    let sum = checksum(&o);
    o.extend_from_slice(&sum);
    o
}

/// The mutes of `bytes` (a whole file).
///
/// # Errors
/// What is wrong with them ([`DecodeError`]).
pub fn decode(bytes: &[u8]) -> Result<Vec<Stored>, DecodeError> {
    if bytes.len() < MAGIC.len() + 2 + SUM_LEN || bytes.len() > MAX_FILE_LEN {
        return Err(DecodeError::Length);
    }
    if &bytes[..4] != MAGIC {
        return Err(DecodeError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::Version(bytes[4]));
    }
    let (body, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    if checksum(body) != sum {
        return Err(DecodeError::Checksum);
    }
    let n = usize::from(body[5]);
    if n > MAX_MUTES {
        return Err(DecodeError::Malformed);
    }
    let mut rest = &body[6..];
    let mut take = |k: usize| -> Result<&[u8], DecodeError> {
        if rest.len() < k {
            return Err(DecodeError::Malformed);
        }
        let (a, b) = rest.split_at(k);
        rest = b;
        Ok(a)
    };
    let mut out: Vec<Stored> = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = take(1)?[0];
        let len = usize::from(take(1)?[0]);
        if len > MAX_NAME_LEN {
            return Err(DecodeError::Malformed);
        }
        let name = core::str::from_utf8(take(len)?).map_err(|_| DecodeError::Malformed)?;
        let name = Name::try_from(name).map_err(|()| DecodeError::Malformed)?;
        let target = match (kind, name.is_empty()) {
            (0, false) => Target::Rule(name),
            (1, false) => Target::Webhook(name),
            (2, true) => Target::All,
            _ => return Err(DecodeError::Malformed),
        };
        let mut t = [0u64; 2];
        for v in &mut t {
            let b: [u8; 8] = take(8)?.try_into().map_err(|_| DecodeError::Malformed)?;
            *v = u64::from_le_bytes(b);
        }
        if t[1] < t[0] || out.iter().any(|m| m.target == target) {
            return Err(DecodeError::Malformed);
        }
        out.push(Stored {
            target,
            set_ms: t[0],
            until_ms: t[1],
        });
    }
    if !rest.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(out)
}

/// The mute file of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("mute.state")
}

/// Reads the file: empty when there is none; a damaged or foreign one is moved aside
/// (`*.bad`) with a log line and reads as empty.
pub fn load(state_dir: &Path) -> Vec<Stored> {
    let p = path(state_dir);
    let bytes = match state::read_regular(&p, MAX_FILE_LEN as u64, false) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) if state::is_foreign(&e) => {
            state::set_aside(&p, &format!("is {e}"));
            return Vec::new();
        }
        Err(e) => {
            crate::warn!("mutes: cannot read {}: {e}", state::shown(&p));
            return Vec::new();
        }
    };
    decode(&bytes).unwrap_or_else(|e| {
        state::set_aside(&p, e.what());
        Vec::new()
    })
}

/// Writes `bytes` as the file, atomically.
///
/// # Errors
/// A step failed; the previous file is as it was.
pub fn write(state_dir: &Path, bytes: &[u8]) -> io::Result<()> {
    state::make_state_dir(state_dir)?;
    state::write_atomic(&path(state_dir), &state_dir.join("mute.state.tmp"), bytes)?;
    state::sync_dir(state_dir)
}

/// The monotonic time left of `stored` at a start with wall clock `wall_now`: until its
/// stored expiry, or — the wall clock or the stored set time being implausible (before
/// 2020, or the clock earlier than the set time) — its whole duration again.
pub fn left_at_start(stored: &Stored, wall_now: u64) -> u64 {
    let implausible = wall_now < PLAUSIBLE_SINCE_MS
        || stored.set_ms < PLAUSIBLE_SINCE_MS
        || wall_now < stored.set_ms;
    let left = if implausible {
        stored.until_ms.saturating_sub(stored.set_ms)
    } else {
        stored.until_ms.saturating_sub(wall_now)
    };
    left.min(MAX_FOR_MS)
}

/// One mute in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mute {
    /// What the file keeps.
    pub stored: Stored,
    /// When it expires, on the agent's monotonic clock.
    pub deadline_mono: u64,
}

/// The mutes in force, and the events they suppressed per webhook.
#[derive(Debug, Default)]
pub struct Mutes {
    /// The mutes.
    pub list: Vec<Mute>,
    /// Per webhook name, the events suppressed since the agent started.
    pub suppressed: Vec<(Name, u64)>,
}

impl Mutes {
    /// Whether no mute is in force.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `event` to `webhook` is suppressed.
    pub fn suppresses(&self, event: &Event, webhook: &str, stateful: bool) -> bool {
        let rule = event.rule.map(|_| event.rule_name.as_str());
        self.list
            .iter()
            .any(|m| m.stored.target.covers(event.kind, rule, webhook, stateful))
    }

    /// Whether rule `rule_name`'s series events to `webhook` are suppressed.
    pub fn covers_series(&self, rule_name: &str, webhook: &str, stateful: bool) -> bool {
        self.list
            .iter()
            .any(|m| m.stored.target.covers_series(rule_name, webhook, stateful))
    }

    /// Counts one suppressed event to `webhook`.
    pub fn count(&mut self, webhook: &str) {
        match self.suppressed.iter_mut().find(|(n, _)| n == webhook) {
            Some((_, c)) => *c += 1,
            None => self.suppressed.push((crate::event::truncated(webhook), 1)),
        }
    }

    /// Events suppressed to `webhook`.
    pub fn suppressed_to(&self, webhook: &str) -> u64 {
        self.suppressed
            .iter()
            .find(|(n, _)| n == webhook)
            .map_or(0, |(_, c)| *c)
    }

    /// Sets (or, for a target already muted, replaces) a mute. `false`: no room.
    pub fn set(&mut self, stored: Stored, deadline_mono: u64) -> bool {
        let m = Mute {
            stored,
            deadline_mono,
        };
        if let Some(x) = self
            .list
            .iter_mut()
            .find(|x| x.stored.target == m.stored.target)
        {
            *x = m;
        } else if self.list.len() >= MAX_MUTES {
            return false;
        } else {
            self.list.push(m);
        }
        true
    }

    /// Lifts the mute of `target`, if there is one.
    pub fn lift(&mut self, target: &Target) -> Option<Mute> {
        let i = self.list.iter().position(|m| &m.stored.target == target)?;
        Some(self.list.remove(i))
    }

    /// Whether a mute is due to expire at `mono`.
    pub fn any_due(&self, mono: u64) -> bool {
        self.list.iter().any(|m| m.deadline_mono <= mono)
    }

    /// Removes the mutes due at `mono`, returning them.
    pub fn take_due(&mut self, mono: u64) -> Vec<Mute> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.list.len() {
            if self.list[i].deadline_mono <= mono {
                due.push(self.list.remove(i));
            } else {
                i += 1;
            }
        }
        due
    }

    /// What the file keeps.
    pub fn stored(&self) -> Vec<Stored> {
        self.list.iter().map(|m| m.stored.clone()).collect()
    }
}

/// `3h 2m 5s`, `42s`: a duration for `status` and answers.
pub fn human(ms: u64) -> String {
    use std::fmt::Write as _;
    let s = ms.div_ceil(1000);
    let mut out = String::new();
    let mut shown = false;
    for (v, u) in [
        (s / 86_400, "d "),
        (s / 3600 % 24, "h "),
        (s / 60 % 60, "m "),
    ] {
        shown |= v > 0;
        if shown {
            let _ = write!(out, "{v}{u}");
        }
    }
    let _ = write!(out, "{}s", s % 60);
    out
}

impl Agent {
    /// At start: the mutes of the file, their timers under the stored-time rule. Those
    /// that expired while the agent was down are dropped (the reconciliation at start
    /// covers what they owe) and the file rewritten.
    pub fn restore_mutes(&mut self) {
        if self.mode != Mode::Send {
            return;
        }
        let stored = load(&self.cfg.agent.state_dir);
        if stored.is_empty() {
            return;
        }
        let (wall, mono) = (self.clock.now_ms(), self.clock.mono_ms());
        let mut expired = 0;
        for s in stored {
            let left = left_at_start(&s, wall);
            let what = if left == 0 {
                expired += 1;
                "expired while the agent was not running".to_string()
            } else {
                format!("restored: {} left", human(left))
            };
            crate::info!("mute of {} {what}", s.target);
            if left > 0 {
                self.mutes.set(s, mono + left);
            }
        }
        if expired > 0 {
            self.save_mutes();
        }
    }

    /// Writes the mute file (only ever when a mute is set, lifted or expires).
    fn save_mutes(&self) -> Option<String> {
        if self.mode != Mode::Send {
            return None;
        }
        let dir = &self.cfg.agent.state_dir;
        match write(dir, &encode(&self.mutes.stored())) {
            Ok(()) => None,
            Err(e) => {
                let msg = format!("cannot write the mutes under {}: {e}", state::shown(dir));
                crate::error!("{msg}");
                Some(msg)
            }
        }
    }

    /// Each cycle with a mute in force: expires those that are due, and reconciles what
    /// they covered.
    pub(super) fn expire_mutes(&mut self) {
        let mono = self.clock.mono_ms();
        if !self.mutes.any_due(mono) {
            return;
        }
        let due = self.mutes.take_due(mono);
        self.save_mutes();
        for m in due {
            crate::info!(
                "mute of {} expired: reconciling the receivers it covered",
                m.stored.target
            );
            self.reconcile_where(false, Some(&m.stored.target));
        }
    }

    /// A control request `mute FOR_MS TARGET` or `unmute TARGET`: the answer.
    pub fn mute_request(&mut self, request: &str) -> String {
        let parsed = match request.strip_prefix("mute ") {
            Some(rest) => rest
                .split_once(' ')
                .and_then(|(ms, t)| Some((ms.parse::<u64>().ok(), Target::parse(t)?))),
            None => request
                .strip_prefix("unmute ")
                .and_then(Target::parse)
                .map(|t| (None, t)),
        };
        let result = match parsed {
            Some((Some(ms), t)) => self.mute(t, ms),
            Some((None, t)) if request.starts_with("unmute ") => self.unmute(&t),
            _ => Err("malformed mute or unmute request".into()),
        };
        result.unwrap_or_else(|e| format!("error: {e}\n"))
    }

    fn stateful(&self, webhook: usize) -> bool {
        self.cfg.webhooks[webhook].payload.format == crate::render::Format::Alertmanager
    }

    /// Sets a mute of `target` for `for_ms`.
    fn mute(&mut self, target: Target, for_ms: u64) -> Result<String, String> {
        if for_ms == 0 || for_ms > MAX_FOR_MS {
            return Err("--for must be more than 0 and at most 7 days (168h)".into());
        }
        let mut note = String::new();
        match &target {
            Target::Rule(r) => {
                let Some(idx) = self
                    .cfg
                    .rules
                    .iter()
                    .position(|x| x.spec.name.as_str() == r.as_str())
                else {
                    return Err(format!("no rule named `{r}` in the running config"));
                };
                // Its alerts lapse in Alertmanager (their endsAt passes); the
                // reconciliation at unmute fires them again with the episode's startsAt.
                for s in self.sinks.iter().flatten() {
                    if let Sink::Alerts(a) = s {
                        a.lapse(idx);
                    }
                }
            }
            Target::Webhook(w) => {
                let Some(i) = self.cfg.webhooks.iter().position(|x| x.name == w.as_str()) else {
                    return Err(format!("no webhook named `{w}` in the running config"));
                };
                if self.stateful(i) {
                    return Err(format!(
                        "webhook {w} sends to Alertmanager: use an Alertmanager silence instead"
                    ));
                }
            }
            Target::All => {
                for i in (0..self.cfg.webhooks.len()).filter(|&i| self.stateful(i)) {
                    note.push_str(if note.is_empty() {
                        " (not the Alertmanager webhooks "
                    } else {
                        ", "
                    });
                    note.push_str(&self.cfg.webhooks[i].name);
                }
                if !note.is_empty() {
                    note.push_str(": use an Alertmanager silence)");
                }
            }
        }
        let (wall, mono) = (self.clock.now_ms(), self.clock.mono_ms());
        let stored = Stored {
            target: target.clone(),
            set_ms: wall,
            until_ms: wall.saturating_add(for_ms),
        };
        let replaced = self.mutes.list.iter().any(|m| m.stored.target == target);
        if !self.mutes.set(stored, mono + for_ms) {
            return Err(format!("too many mutes (at most {MAX_MUTES})"));
        }
        let warn = self
            .save_mutes()
            .map(|e| format!("\nwarning: {e}; the mute ends with this agent"))
            .unwrap_or_default();
        let verb = if replaced {
            "muted again (the expiry replaced)"
        } else {
            "muted"
        };
        let line = format!(
            "{target}: {verb} for {}, until {}{note}",
            human(for_ms),
            crate::util::iso8601(wall.saturating_add(for_ms))
        );
        crate::info!("{line}");
        Ok(format!("{line}{warn}\n"))
    }

    /// Lifts the mute of `target` and reconciles what it covered.
    fn unmute(&mut self, target: &Target) -> Result<String, String> {
        if self.mutes.lift(target).is_none() {
            return Err(format!("{target} is not muted"));
        }
        let warn = self
            .save_mutes()
            .map(|e| format!("\nwarning: {e}"))
            .unwrap_or_default();
        crate::info!("{target}: unmuted; reconciling the receivers it covered");
        let before = self.owed_total;
        self.reconcile_where(false, Some(target));
        let owed = self.owed_total - before;
        Ok(format!(
            "{target}: unmuted; {owed} events owed to receivers sent{warn}\n"
        ))
    }

    /// The mute lines of `status` (none when nothing is muted or was suppressed).
    pub(super) fn mute_status(&self, s: &mut String) {
        use std::fmt::Write as _;
        let any = self.mutes.suppressed.iter().any(|(_, c)| *c > 0);
        if self.mutes.is_empty() && !any {
            return;
        }
        let _ = writeln!(s, "\n{:<40} {:<14} UNTIL", "MUTED", "TIME LEFT");
        let mono = self.clock.mono_ms();
        for m in &self.mutes.list {
            let known = match &m.stored.target {
                Target::Rule(r) => self
                    .cfg
                    .rules
                    .iter()
                    .any(|x| x.spec.name.as_str() == r.as_str()),
                Target::Webhook(w) => self.cfg.webhooks.iter().any(|x| x.name == w.as_str()),
                Target::All => true,
            };
            let what = format!(
                "{}{}",
                m.stored.target,
                if known { "" } else { " (not in config)" }
            );
            let _ = writeln!(
                s,
                "{:<40} {:<14} {}",
                what,
                human(m.deadline_mono.saturating_sub(mono)),
                crate::util::iso8601(m.stored.until_ms)
            );
        }
        s.push_str("suppressed while muted:");
        for (i, w) in self.cfg.webhooks.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(s, "{sep}{} {}", w.name, self.mutes.suppressed_to(&w.name));
        }
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::try_from(s).unwrap()
    }

    fn sample() -> Vec<Stored> {
        vec![
            Stored {
                target: Target::Rule(name("cpu")),
                set_ms: 1_700_000_000_000,
                until_ms: 1_700_003_600_000,
            },
            Stored {
                target: Target::Webhook(name("ops")),
                set_ms: 5,
                until_ms: 10,
            },
            Stored {
                target: Target::All,
                set_ms: 1,
                until_ms: 1,
            },
        ]
    }

    #[test]
    fn round_trip_and_every_torn_prefix_or_flipped_bit_is_refused() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes), Ok(sample()));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "bit flipped in byte {i}");
        }
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(decode(&v2), Err(DecodeError::Version(2)));
    }

    #[test]
    fn worst_case_fits_the_read_bound() {
        let long = "n".repeat(MAX_NAME_LEN);
        let all: Vec<Stored> = (0..MAX_MUTES)
            .map(|i| Stored {
                target: Target::Rule(name(&format!("{i:02}{}", &long[2..]))),
                set_ms: u64::MAX - 1,
                until_ms: u64::MAX,
            })
            .collect();
        let bytes = encode(&all);
        assert_eq!(bytes.len(), MAX_FILE_LEN);
        assert_eq!(decode(&bytes).map(|v| v.len()), Ok(MAX_MUTES));
    }

    #[test]
    fn what_each_target_covers() {
        let rule = Target::Rule(name("cpu"));
        let hook = Target::Webhook(name("ops"));
        for k in [EventType::Alarm, EventType::Recovery, EventType::NoData] {
            assert!(rule.covers(k, Some("cpu"), "any", false));
            assert!(
                rule.covers(k, Some("cpu"), "am", true),
                "a rule mute covers Alertmanager too"
            );
            assert!(!rule.covers(k, Some("mem"), "any", false));
        }
        assert!(!rule.covers(EventType::AgentStart, None, "any", false));
        for k in EventType::ALL {
            let never = matches!(k, EventType::Heartbeat | EventType::Test);
            assert_eq!(hook.covers(k, None, "ops", false), !never, "{k:?}");
            assert!(!hook.covers(k, None, "other", false));
            assert_eq!(
                Target::All.covers(k, Some("cpu"), "x", false),
                !never,
                "{k:?}"
            );
            assert!(
                !Target::All.covers(k, None, "am", true),
                "all leaves Alertmanager out"
            );
        }
    }

    #[test]
    fn requests_parse() {
        assert_eq!(Target::parse("rule cpu"), Some(Target::Rule(name("cpu"))));
        assert_eq!(
            Target::parse("webhook a b"),
            Some(Target::Webhook(name("a b")))
        );
        assert_eq!(Target::parse(" all "), Some(Target::All));
        for bad in [
            "",
            "rule",
            "rule ",
            "hook x",
            "all x",
            &format!("rule {}", "x".repeat(65)),
        ] {
            assert_eq!(Target::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_stored_time_rule() {
        let h = 3_600_000;
        let s = Stored {
            target: Target::All,
            set_ms: 1_700_000_000_000,
            until_ms: 1_700_000_000_000 + h,
        };
        // A plausible clock: what is left of the stored expiry.
        assert_eq!(left_at_start(&s, s.set_ms + h / 4), 3 * h / 4);
        assert_eq!(left_at_start(&s, s.until_ms + 1), 0);
        // Before 2020, or before the set time: the whole hour from this start.
        assert_eq!(left_at_start(&s, 1000), h);
        assert_eq!(left_at_start(&s, s.set_ms - 1), h);
        // Set while the clock was implausible: the same.
        let early = Stored {
            set_ms: 50_000,
            until_ms: 50_000 + h,
            ..s
        };
        assert_eq!(left_at_start(&early, 1_800_000_000_000), h);
    }

    #[test]
    fn mutes_overlap_replace_and_expire() {
        let mut m = Mutes::default();
        let at = |t: Target, until| Stored {
            target: t,
            set_ms: 0,
            until_ms: until,
        };
        assert!(m.set(at(Target::Rule(name("cpu")), 10), 10));
        assert!(m.set(at(Target::Webhook(name("ops")), 20), 20));
        assert!(m.covers_series("cpu", "other", false));
        assert!(m.covers_series("mem", "ops", false));
        assert!(!m.covers_series("mem", "other", false));
        // Re-muting replaces the expiry.
        assert!(m.set(at(Target::Rule(name("cpu")), 30), 30));
        assert_eq!(m.list.len(), 2);
        assert!(!m.any_due(19));
        let due = m.take_due(20);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].stored.target, Target::Webhook(name("ops")));
        assert!(m.covers_series("cpu", "x", false), "the rule mute stays");
        assert!(m.lift(&Target::Rule(name("cpu"))).is_some());
        assert!(m.lift(&Target::Rule(name("cpu"))).is_none());
        assert!(m.is_empty());
        m.count("ops");
        m.count("ops");
        assert_eq!(m.suppressed_to("ops"), 2);
        assert_eq!(m.suppressed_to("x"), 0);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(1), "1s");
        assert_eq!(human(3_600_000), "1h 0m 0s");
        assert_eq!(human(MAX_FOR_MS), "7d 0h 0m 0s");
    }
}
