//! The spool: events a webhook could not deliver, kept on persistent storage until it
//! answers again — across restarts and power loss.
//!
//! One directory per webhook under `state_dir/spool/`, one file per event, named
//! `<timestamp_ms>-<event_id>.ev` so that name order is age order. A file is written only
//! when something failed (retries ran out, or the agent stopped with the event queued):
//! a healthy device writes nothing, which matters on flash. Each file is written to a
//! temporary name, fsynced, renamed and the directory fsynced, so a power cut leaves the
//! old state or the new one. The content ends with a checksum: a torn or foreign file is
//! detected, moved aside as `*.bad` and skipped, never a crash. So is a `*.ev` that is not
//! a regular file (a FIFO, a directory, a symbolic link, a device): it is never opened the
//! ordinary way, so it can neither block the agent nor pass for a spooled event.
//!
//! Bounded in events and bytes per webhook; when full, the oldest INFO goes first, then
//! WARN, then CRITICAL (the documented drop order). The same order makes room when the
//! filesystem itself is full (ENOSPC, EDQUOT): older events of the new one's level or
//! below are evicted until it fits, or it is lost — counted either way. A failed write
//! leaves no temporary file behind, and those a crash left are removed at start.
//!
//! Files are 0600 and directories 0700 whatever the umask: see [`state`].

use crate::event::{Aggregate, Event, EventId, EventType};
use crate::metric::{DimValue, Metric};
use crate::rule::{AlertState, Condition, Level, Op};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Most events spooled per webhook.
pub const MAX_SPOOL_EVENTS: usize = 256;
/// Most bytes spooled per webhook.
pub const MAX_SPOOL_BYTES: u64 = 256 * 1024;

const MAGIC: &[u8; 4] = b"TCSN";
/// The spool format this version writes: byte 4 of every file, after [`MAGIC`]. The first
/// version wrote 1 too (the layout has not changed since), and [`decode`] reads every
/// version listed in its `match`: this one and the previous, so that an upgrade delivers
/// what the old binary spooled. A version it does not know is set aside, never guessed.
const VERSION: u8 = 1;
/// Checksum length: the first bytes of SHA-256 over everything before it.
const SUM_LEN: usize = 8;
/// Longest spool file read: an encoded event is under 1 KiB, so anything longer is foreign.
const MAX_FILE_LEN: u64 = 4096;

/// One webhook's spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    state_dir: PathBuf,
    dir: PathBuf,
}

/// A spooled event that may be evicted to make room.
struct Victim {
    level: Level,
    path: PathBuf,
    kind: EventType,
    id: EventId,
}

/// Whether `e` says the filesystem (or the user's quota on it) is full.
fn no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// What `put` had to do to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Events dropped to stay within the bounds (oldest of the lowest level first).
    pub dropped: Vec<(EventType, EventId, Level)>,
}

impl Spool {
    /// The spool of `webhook` under `state_dir` (created on first write).
    pub fn new(state_dir: &Path, webhook: &str) -> Spool {
        Spool {
            state_dir: state_dir.to_path_buf(),
            dir: state_dir.join("spool").join(webhook),
        }
    }

    /// Where `event` is (or would be) spooled: `<timestamp>-<id>.ev`, so names sort oldest
    /// first.
    pub fn path_of(&self, event: &Event) -> PathBuf {
        self.dir.join(format!(
            "{:020}-{}.ev",
            event.timestamp_ms,
            event.id.to_text()
        ))
    }

    /// Tidies the spool the first time this process opens it (its worker starting): the
    /// temporary files (`.*.tmp`) that a crash left are removed, every `*.ev` that is not a
    /// regular file is moved aside as `*.bad`, with one log line each, and `spool/` and
    /// this spool's directory are tightened to 0700 (an older version made them 0755).
    /// Later openings leave it alone: after a reload the old worker may still be writing
    /// its temporary files. Nothing is created: a healthy device writes nothing.
    pub fn recover(&self) {
        static OPENED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        {
            let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
            if opened.contains(&self.dir) {
                return;
            }
            opened.push(self.dir.clone());
        }
        state::tighten_dir(&self.state_dir.join("spool"));
        state::tighten_dir(&self.dir);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut removed = 0;
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let Ok(t) = e.file_type() else { continue };
            let temp = e.file_name().to_str().is_some_and(|n| n.starts_with('.'))
                && path.extension().is_some_and(|x| x == "tmp");
            if temp && !t.is_dir() {
                removed += usize::from(fs::remove_file(&path).is_ok());
            } else if path.extension().is_some_and(|x| x == "ev") && !t.is_file() {
                state::set_aside(
                    &path,
                    &format!("is not a regular file ({})", state::kind(t)),
                );
            }
        }
        if removed > 0 {
            crate::info!(
                "{}: removed {removed} unfinished temporary files (a crash or a full disk)",
                state::shown(&self.dir)
            );
        }
    }

    /// The spooled files, oldest first: the regular `*.ev` files of the directory (a
    /// symbolic link or anything else of that name is not an event).
    pub fn list(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "ev"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `event` durably, evicting as the bounds require and, when the filesystem is
    /// full, as the room it needs requires: the oldest of the lowest level first, among the
    /// spooled events of `event`'s level or below (it counts as the newest of its level, so
    /// a CRITICAL goes only after every INFO and WARN, and never for a lower one). What was
    /// evicted is in `evicted` whether or not `event` could be stored.
    ///
    /// # Errors
    /// The directory or file cannot be written (no temporary file is left behind).
    pub fn put(&self, event: &Event, evicted: &mut Evicted) -> io::Result<()> {
        state::make_state_dir(&self.state_dir)?;
        state::private_dir(&self.state_dir.join("spool"))?;
        state::private_dir(&self.dir)?;
        let bytes = encode(event);
        self.make_room(bytes.len() as u64, event.level, evicted)?;
        let path = self.path_of(event);
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut victims: Option<Vec<Victim>> = None;
        // Bounded: each round past the first evicts a victim, and there are finitely many.
        loop {
            match state::write_atomic(&path, &tmp, &bytes) {
                Ok(()) => break,
                Err(e) if no_space(&e) => {
                    let v = victims.get_or_insert_with(|| self.victims(event.level));
                    let Some(victim) = v.pop() else {
                        return Err(e);
                    };
                    if fs::remove_file(&victim.path).is_ok() {
                        evicted.dropped.push((victim.kind, victim.id, victim.level));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // The event is in place; a directory that cannot be fsynced does not lose it.
        if let Err(e) = state::sync_dir(&self.dir) {
            crate::warn!("cannot fsync {}: {e}", state::shown(&self.dir));
        }
        Ok(())
    }

    /// The spooled events that may make room for one of `level` on a full filesystem, the
    /// next to go last: those of `level` or below, lowest level first, oldest first.
    fn victims(&self, level: Level) -> Vec<Victim> {
        let mut v: Vec<Victim> = self
            .list()
            .into_iter()
            .filter_map(|path| {
                let e = load(&path)?;
                (e.level <= level).then_some(Victim {
                    level: e.level,
                    path,
                    kind: e.kind,
                    id: e.id,
                })
            })
            .collect();
        v.sort_by(|a, b| (b.level, &b.path).cmp(&(a.level, &a.path)));
        v
    }

    /// Evicts within the bounds for an incoming event of `level` and `incoming` bytes: the
    /// oldest of the lowest level goes first, but never one above `level` (the incoming
    /// event is then the one to lose: an error).
    fn make_room(&self, incoming: u64, level: Level, evicted: &mut Evicted) -> io::Result<()> {
        loop {
            let files = self.list();
            let bytes: u64 = files
                .iter()
                .filter_map(|p| fs::symlink_metadata(p).ok())
                .map(|m| m.len())
                .sum();
            if files.is_empty()
                || (files.len() < MAX_SPOOL_EVENTS && bytes + incoming <= MAX_SPOOL_BYTES)
            {
                return Ok(());
            }
            // The oldest of the lowest level present goes first.
            let mut victim: Option<(Level, PathBuf, EventType, EventId)> = None;
            for p in &files {
                let Some(e) = load(p) else {
                    // Unreadable files go aside first (`load` moved it); they can never be sent.
                    if fs::symlink_metadata(p).is_ok() {
                        fs::remove_file(p)?;
                    }
                    victim = None;
                    break;
                };
                if victim.as_ref().is_none_or(|(l, ..)| e.level < *l) {
                    victim = Some((e.level, p.clone(), e.kind, e.id));
                }
            }
            if let Some((victim_level, path, kind, id)) = victim {
                if victim_level > level {
                    return Err(io::Error::other(format!(
                        "the spool is full ({MAX_SPOOL_EVENTS} events or {MAX_SPOOL_BYTES} bytes) of events above {}",
                        level.as_str()
                    )));
                }
                fs::remove_file(&path)?;
                evicted.dropped.push((kind, id, victim_level));
            }
        }
    }

    /// Removes a delivered event's file.
    ///
    /// # Errors
    /// The file cannot be removed.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        state::sync_dir(&self.dir)
    }
}

/// Reads a spooled event; a torn or foreign file, or one that is not a regular file, is
/// moved aside as `.bad` and skipped.
pub fn load(path: &Path) -> Option<Event> {
    let bytes = match state::read_regular(path, MAX_FILE_LEN, false) {
        Ok(b) => b,
        Err(e) if state::is_foreign(&e) => {
            state::set_aside(path, &format!("is {e}"));
            return None;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            crate::warn!("spool: cannot read {}: {e}", state::shown(path));
            return None;
        }
    };
    match decode(&bytes) {
        Some(e) => Some(e),
        None => {
            let why = match format_version(&bytes) {
                Some(v) if v != VERSION => {
                    format!("is of spool format version {v}, which this version does not read")
                }
                _ => "is damaged (torn write or foreign file)".into(),
            };
            state::set_aside(path, &why);
            None
        }
    }
}

pub mod state;

// ---- encoding -------------------------------------------------------------------------------

fn checksum(data: &[u8]) -> [u8; SUM_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; SUM_LEN];
    out.copy_from_slice(&d.as_ref()[..SUM_LEN]);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn put_f64(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        None => out.push(0),
    }
}

/// The event as bytes: magic, version, fields, checksum.
pub fn encode(e: &Event) -> Vec<u8> {
    let mut o = Vec::with_capacity(256);
    o.extend_from_slice(MAGIC);
    o.push(VERSION);
    o.extend_from_slice(&e.id.0);
    o.push(
        EventType::ALL
            .iter()
            .position(|k| *k == e.kind)
            .unwrap_or(0) as u8,
    );
    match e.rule {
        Some(r) => {
            o.push(1);
            o.extend_from_slice(&(r as u32).to_le_bytes());
        }
        None => o.push(0),
    }
    put_str(&mut o, &e.rule_name);
    o.push(match e.state {
        AlertState::Ok => 0,
        AlertState::Alert => 1,
        AlertState::InsufficientData => 2,
    });
    o.push(e.level as u8);
    o.push(e.prev_level as u8);
    o.push(
        e.metric
            .and_then(|m| Metric::ALL.iter().position(|x| *x == m))
            .map_or(255, |i| i as u8),
    );
    put_str(&mut o, &e.dim);
    // The dimension key as its index among the metric's keys (255: none).
    let key = e
        .metric
        .zip(e.dim_key)
        .and_then(|(m, k)| m.dimensions().iter().position(|d| *d == k));
    o.push(key.map_or(255, |i| i as u8));
    put_f64(&mut o, e.value);
    match e.threshold {
        Some(t) => {
            // Low nibble: 1 + the operator; high nibble: the aggregate the value is (0, the
            // sample itself, is what files written before windows existed hold).
            o.push(
                (1 + [Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq, Op::Ne]
                    .iter()
                    .position(|x| *x == t.op)
                    .unwrap_or(0) as u8)
                    | (e.aggregate.code() << 4),
            );
            o.extend_from_slice(&t.value.to_bits().to_le_bytes());
        }
        None => o.push(0),
    }
    o.extend_from_slice(&e.times.to_le_bytes());
    o.push(e.rule_times);
    for t in [e.timestamp_ms, e.first_trigger_ms, e.last_trigger_ms] {
        o.extend_from_slice(&t.to_le_bytes());
    }
    put_str(&mut o, &e.detail);
    match e.replay_of {
        Some(id) => {
            o.push(1);
            o.extend_from_slice(&id.0);
        }
        None => o.push(0),
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
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn str<const N: usize>(&mut self) -> Option<heapless::String<N>> {
        let n = usize::from(self.u8()?);
        let s = core::str::from_utf8(self.take(n)?).ok()?;
        heapless::String::try_from(s).ok()
    }
    fn f64(&mut self) -> Option<Option<f64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(f64::from_bits(self.u64()?))),
            _ => None,
        }
    }
    fn level(&mut self) -> Option<Level> {
        [Level::Info, Level::Warn, Level::Critical]
            .get(usize::from(self.u8()?))
            .copied()
    }
}

/// The format version of a spool file's bytes (checksum and magic right), or `None` when
/// they are torn or foreign. Pure and bounded, as [`decode`].
pub fn format_version(bytes: &[u8]) -> Option<u8> {
    if bytes.len() < MAGIC.len() + 1 + SUM_LEN || bytes.len() as u64 > MAX_FILE_LEN {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    (checksum(body) == sum && &body[..4] == MAGIC).then_some(body[4])
}

/// The event of `bytes`, or `None` when they are torn, foreign or of a version this one
/// does not read. Pure (no I/O) and bounded: at most [`MAX_FILE_LEN`] bytes are looked at.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    match format_version(bytes)? {
        // Version 1: the first version's format, and this one's.
        VERSION => decode_v1(&bytes[MAGIC.len() + 1..bytes.len() - SUM_LEN]),
        _ => None,
    }
}

/// The fields of a version-1 file, between the version byte and the checksum.
fn decode_v1(fields: &[u8]) -> Option<Event> {
    let mut r = Reader(fields);
    let id = EventId(r.take(16)?.try_into().ok()?);
    let kind = *EventType::ALL.get(usize::from(r.u8()?))?;
    let rule = match r.u8()? {
        0 => None,
        1 => Some(r.u32()? as usize),
        _ => return None,
    };
    let rule_name = r.str()?;
    let state = [
        AlertState::Ok,
        AlertState::Alert,
        AlertState::InsufficientData,
    ]
    .get(usize::from(r.u8()?))
    .copied()?;
    let level = r.level()?;
    let prev_level = r.level()?;
    let metric = match r.u8()? {
        255 => None,
        i => Some(*Metric::ALL.get(usize::from(i))?),
    };
    let dim: DimValue = r.str()?;
    let dim_key = match r.u8()? {
        255 => None,
        i => Some(*metric?.dimensions().get(usize::from(i))?),
    };
    let value = r.f64()?;
    let mut aggregate = Aggregate::Last;
    let threshold = match r.u8()? {
        0 => None,
        i => {
            aggregate = Aggregate::from_code(i >> 4)?;
            let op = *[Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq, Op::Ne]
                .get(usize::from(i & 0x0f).checked_sub(1)?)?;
            Some(Condition {
                op,
                value: f64::from_bits(r.u64()?),
            })
        }
    };
    let times = r.u32()?;
    let rule_times = r.u8()?;
    let (timestamp_ms, first_trigger_ms, last_trigger_ms) = (r.u64()?, r.u64()?, r.u64()?);
    let detail = r.str()?;
    let replay_of = match r.u8()? {
        0 => None,
        1 => Some(EventId(r.take(16)?.try_into().ok()?)),
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(Event {
        id,
        kind,
        rule,
        rule_name,
        state,
        level,
        prev_level,
        metric,
        dim,
        dim_key,
        value,
        threshold,
        aggregate,
        times,
        rule_times,
        timestamp_ms,
        first_trigger_ms,
        last_trigger_ms,
        detail,
        replay_of,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: u64, level: Level) -> Event {
        let mut e = Event::agent(
            EventType::Alarm,
            EventId::new(ts, [ts as u8; 10]),
            ts,
            "why",
        );
        e.rule = Some(3);
        e.rule_name = "root-full".try_into().unwrap();
        e.state = AlertState::Alert;
        e.level = level;
        e.prev_level = Level::Warn;
        e.metric = Some(Metric::DiskUsed);
        e.dim = "/data".try_into().unwrap();
        e.dim_key = Some("mount");
        e.value = Some(97.5);
        e.threshold = Some(Condition {
            op: Op::Ge,
            value: 95.0,
        });
        e.times = 7;
        e.rule_times = 2;
        e.replay_of = Some(EventId([9; 16]));
        e
    }

    #[test]
    fn the_aggregate_round_trips_and_old_files_read_as_the_sample() {
        for a in Aggregate::ALL {
            let mut e = event(1_795_339_813_000, Level::Critical);
            e.aggregate = a;
            assert_eq!(decode(&encode(&e)).map(|d| d.aggregate), Some(a));
        }
        // A file written before windows existed has 0 in the high nibble: the sample.
        let e = event(1_795_339_813_000, Level::Critical);
        let bytes = encode(&e);
        assert_eq!(decode(&bytes).map(|d| d.aggregate), Some(Aggregate::Last));
    }

    #[test]
    fn round_trip_and_every_torn_prefix_is_rejected() {
        let e = event(1_795_339_813_000, Level::Critical);
        let bytes = encode(&e);
        assert_eq!(decode(&bytes), Some(e));
        for n in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..n]),
                None,
                "a file torn at {n} bytes is detected"
            );
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(decode(&flipped), None, "a flipped bit is detected");
    }

    #[test]
    fn the_first_versions_spool_files_decode_and_an_unknown_version_is_refused() {
        let v1: [&[u8]; 3] = [
            include_bytes!("../../tests/fixtures/state-v1/state/spool/rcv/00000001796122704635-01a23141-7afb-784c-a3fb-920e1aa14489.ev"),
            include_bytes!("../../tests/fixtures/state-v1/state/spool/rcv/00000001796122704636-01a23141-7afc-738a-a4ec-f1a7eca82656.ev"),
            include_bytes!("../../tests/fixtures/state-v1/state/spool/rcv/00000001796122708631-01a23141-8a97-7468-ae6b-efd7a6b19307.ev"),
        ];
        let kinds: Vec<EventType> = v1.iter().map(|b| decode(b).unwrap().kind).collect();
        assert_eq!(
            kinds,
            [
                EventType::AgentStart,
                EventType::Alarm,
                EventType::AgentStop
            ]
        );
        let alarm = decode(v1[1]).unwrap();
        assert_eq!(alarm.rule_name.as_str(), "mem-high-v1");
        assert_eq!(alarm.timestamp_ms, 1_796_122_704_636);
        // The same bytes re-encoded: the format did not change.
        assert_eq!(encode(&alarm), v1[1]);
        // A file of a later version, checksum right: refused, its version told.
        let mut later = v1[1][..v1[1].len() - SUM_LEN].to_vec();
        later[4] = 2;
        let sum = checksum(&later);
        later.extend_from_slice(&sum);
        assert_eq!(format_version(&later), Some(2));
        assert_eq!(decode(&later), None);
    }

    #[test]
    fn oldest_first_bounded_and_lowest_level_evicted_first() {
        let dir = std::env::temp_dir().join(format!("tocsin-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = Spool::new(&dir, "ops");
        assert!(s.is_empty());
        let mut evicted = Evicted::default();
        s.put(&event(3000, Level::Warn), &mut evicted).unwrap();
        s.put(&event(1000, Level::Critical), &mut evicted).unwrap();
        s.put(&event(2000, Level::Info), &mut evicted).unwrap();
        assert_eq!(evicted, Evicted::default());
        let order: Vec<u64> = s
            .list()
            .iter()
            .map(|p| load(p).unwrap().timestamp_ms)
            .collect();
        assert_eq!(order, [1000, 2000, 3000], "oldest first");
        // Fill to the bound with CRITICAL events: INFO goes first, then WARN.
        let mut evicted = Evicted::default();
        for i in 0..MAX_SPOOL_EVENTS as u64 {
            s.put(&event(10_000 + i, Level::Critical), &mut evicted)
                .unwrap();
        }
        let levels: Vec<Level> = evicted.dropped.iter().map(|d| d.2).collect();
        assert_eq!(&levels[..2], [Level::Info, Level::Warn], "INFO, then WARN");
        assert!(levels[2..].iter().all(|l| *l == Level::Critical));
        assert_eq!(s.len(), MAX_SPOOL_EVENTS);
        // Full of CRITICAL events: a new INFO is the one to lose, not an older CRITICAL.
        let mut evicted = Evicted::default();
        assert!(s.put(&event(20_000, Level::Info), &mut evicted).is_err());
        assert_eq!(evicted, Evicted::default());
        assert_eq!(s.len(), MAX_SPOOL_EVENTS);
        // A torn file is moved aside, never a crash.
        let first = s.list()[0].clone();
        let bytes = fs::read(&first).unwrap();
        fs::write(&first, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(load(&first), None);
        assert!(first.with_extension("bad").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn room_on_a_full_disk_goes_by_the_drop_order_never_to_a_lower_level() {
        let dir = std::env::temp_dir().join(format!("tocsin-spool-room-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = Spool::new(&dir, "ops");
        for (ts, level) in [
            (500, Level::Critical),
            (1000, Level::Warn),
            (2000, Level::Info),
            (3000, Level::Info),
        ] {
            s.put(&event(ts, level), &mut Evicted::default()).unwrap();
        }
        let order = |level| -> Vec<u64> {
            let mut v = s.victims(level);
            std::iter::from_fn(|| v.pop())
                .map(|v| load(&v.path).unwrap().timestamp_ms)
                .collect()
        };
        assert_eq!(order(Level::Critical), [2000, 3000, 1000, 500]);
        assert_eq!(order(Level::Warn), [2000, 3000, 1000]);
        assert_eq!(order(Level::Info), [2000, 3000]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_regular_files_are_events_and_anything_else_is_set_aside() {
        let dir = std::env::temp_dir().join(format!("tocsin-spool-foreign-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = Spool::new(&dir, "ops");
        s.put(&event(1000, Level::Info), &mut Evicted::default())
            .unwrap();
        let real = s.list()[0].clone();
        let subdir = s.dir.join("00000000000000000002-dir.ev");
        fs::create_dir(&subdir).unwrap();
        let link = s.dir.join("00000000000000000003-link.ev");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            s.list(),
            vec![real.clone()],
            "a directory or a link is no event"
        );
        assert_eq!(load(&link), None, "a link is not followed");
        assert!(fs::symlink_metadata(link.with_extension("bad")).is_ok_and(|m| m.is_symlink()));
        assert!(load(&real).is_some(), "its target is left alone");
        s.recover();
        assert!(
            subdir.with_extension("bad").is_dir(),
            "the directory is set aside"
        );
        assert_eq!(s.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
