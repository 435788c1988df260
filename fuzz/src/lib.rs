//! What every fuzz target shares: an allocator that counts, an in-memory host for the
//! config parser, and hostile events built from fuzz input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use tocsin::config::{Host, Node};
use tocsin::event::{Event, EventId, EventType};
use tocsin::metric::{DimValue, Metric};
use tocsin::rule::{AlertState, Condition, Level, Op};

// ---- a counting allocator -------------------------------------------------------------

/// Counts allocations and the bytes live above the start of a [`measure`], on this
/// thread (libFuzzer runs the target on one thread).
pub struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize, alloc: bool) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ON.try_with(|on| {
        if !on.get() {
            return;
        }
        if alloc {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
        let _ = LIVE.try_with(|l| {
            let v = l.get() + delta;
            l.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    });
}

// SAFETY: every call is passed to `System` unchanged; the counting touches only
// thread-locals of plain integers.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize, true);
        // SAFETY: as the caller promised for `l`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize), false);
        // SAFETY: as the caller promised for `p` and `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize, true);
        // SAFETY: as the caller promised for `l`.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize, true);
        // SAFETY: as the caller promised for `p`, `l` and `new`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What [`measure`] saw.
#[derive(Clone, Copy, Debug)]
pub struct Allocs {
    /// Allocations (and reallocations) made.
    pub count: usize,
    /// Most bytes live at once above what was live at the start.
    pub peak: usize,
}

/// Runs `f`, counting its heap use.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocs) {
    COUNT.with(|c| c.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|o| o.set(true));
    let r = f();
    ON.with(|o| o.set(false));
    let a = Allocs {
        count: COUNT.with(Cell::get),
        peak: PEAK.with(Cell::get).max(0) as usize,
    };
    (r, a)
}

/// Asserts that `f` does not allocate at all (the sampler's parsers run every cycle,
/// and a steady cycle makes no heap allocation).
pub fn no_alloc<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let (r, a) = measure(f);
    assert_eq!(a.count, 0, "{what} allocated {a:?}");
    r
}

// ---- an in-memory host ------------------------------------------------------------------

/// Files by path, and nothing else: no environment, no devices.
#[derive(Default)]
pub struct FakeHost {
    /// Path → content.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Host for FakeHost {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let names: Vec<OsString> = self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect();
        if names.is_empty() && !self.is_dir(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }
    fn file_id(&self, path: &Path) -> Option<(u64, u64)> {
        let i = self.files.keys().position(|p| p == path)?;
        Some((1, i as u64 + 1))
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|p| p.starts_with(path) && p != path)
    }
    fn open(&self, path: &Path) -> io::Result<()> {
        self.read_file(path).map(|_| ())
    }
    fn env(&self, _key: &str) -> Option<OsString> {
        None
    }
    fn node(&self, path: &Path) -> Node {
        if self.files.contains_key(path) || self.is_dir(path) {
            Node::Other
        } else {
            Node::Missing
        }
    }
}

// ---- hostile values --------------------------------------------------------------------

/// A string of at most `N` bytes (cut at a character boundary), from the input.
pub fn text<const N: usize>(u: &mut Unstructured<'_>) -> ArbResult<heapless::String<N>> {
    let s: &str = u.arbitrary()?;
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(heapless::String::try_from(&s[..end]).unwrap_or_default())
}

fn pick<T: Copy>(u: &mut Unstructured<'_>, all: &[T]) -> ArbResult<T> {
    Ok(*u.choose(all)?)
}

/// An event with every field taken from the input: any text in its names, any number
/// (NaN and infinities included) in its values.
pub fn event(u: &mut Unstructured<'_>) -> ArbResult<Event> {
    let id = EventId(u.arbitrary()?);
    let kind = pick(u, &EventType::ALL)?;
    let mut e = Event::agent(kind, id, u.arbitrary()?, "");
    e.rule = if u.arbitrary()? {
        Some(u.int_in_range(0..=3)?)
    } else {
        None
    };
    e.rule_name = text(u)?;
    e.state = pick(
        u,
        &[
            AlertState::Ok,
            AlertState::Alert,
            AlertState::InsufficientData,
        ],
    )?;
    let levels = [Level::Info, Level::Warn, Level::Critical];
    e.level = pick(u, &levels)?;
    e.prev_level = pick(u, &levels)?;
    e.metric = if u.arbitrary()? {
        Some(pick(u, &Metric::ALL)?)
    } else {
        None
    };
    e.dim_key = match e.metric {
        Some(m) if !m.dimensions().is_empty() => Some(pick(u, m.dimensions())?),
        _ => None,
    };
    e.dim = text::<{ tocsin::limits::MAX_DIM_VALUE_LEN }>(u)?;
    e.value = u.arbitrary()?;
    e.threshold = if u.arbitrary()? {
        Some(Condition {
            op: pick(u, &[Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq, Op::Ne])?,
            value: u.arbitrary()?,
        })
    } else {
        None
    };
    e.times = u.arbitrary()?;
    e.rule_times = u.arbitrary()?;
    e.first_trigger_ms = u.arbitrary()?;
    e.last_trigger_ms = u.arbitrary()?;
    e.detail = text(u)?;
    e.replay_of = if u.arbitrary()? {
        Some(EventId(u.arbitrary()?))
    } else {
        None
    };
    Ok(e)
}

/// A dimension value from the input.
pub fn dim(u: &mut Unstructured<'_>) -> ArbResult<DimValue> {
    text(u)
}

/// `bytes` as a hex dump line, for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `body` sealed as the state files are: its first 8 bytes of SHA-256 appended (so that
/// mutated input reaches the decoders past their checksum).
pub fn sealed(body: &[u8]) -> Vec<u8> {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = body.to_vec();
    out.extend_from_slice(&d.as_ref()[..8]);
    out
}
