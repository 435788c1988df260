//! Slow probes off the sampling tick: `tcp.up` connects, `exec.value` commands and statvfs
//! of network and FUSE mounts run on a few worker threads, so a tick never waits for them.
//!
//! Each series has one [`Task`]: what to run and the state of its current run, shared with
//! the workers. [`Task::poll`], called once per tick, hands over the result of the run that
//! finished since (the sample of this tick) and queues the next run. While a run is queued
//! or going it answers [`Poll::Busy`] and queues nothing: a series has at most one run in
//! flight, and no sample while it runs. A run started at tick N is therefore evaluated at
//! the first tick after it returns — N + 1 for a probe faster than the interval.
//!
//! The pool is one per process, because a reload builds a new sampler while the old one's
//! runs may still be going (a statvfs on a dead server never returns): at most
//! [`MAX_PROBE_WORKERS`] threads, started on demand and never ended, blocking every signal
//! (the main thread handles SIGHUP and SIGTERM, probes are never interrupted), and a fixed
//! queue of [`PROBE_QUEUE_LEN`] runs. A worker never starts a run equal to one already going
//! (the same mount, target or command from another sampler), and statvfs calls hold at most
//! all workers but one, so a few hung mounts cannot starve `tcp.up` and `exec.value`.
//!
//! Handing over is a mutex and two condition variables, not a channel: the queue is fixed
//! and a run is an `Arc` clone, so the sampling thread does not allocate per run. (Starting
//! a worker allocates, at most [`MAX_PROBE_WORKERS`] times per process; a worker's command
//! spawns allocate on that worker.) Lock order: the pool's mutex, then a task's; a task's
//! own mutex is only ever taken with the pool's held, so it is never contended.
//!
//! A dropped task (its sampler is gone: a reload, the end of `tocsin once`) is taken out
//! of the queue; a command it still runs gets SIGKILL; a connect or a statvfs it still runs
//! finishes on its worker and its result is dropped.

use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::disk::FsStats;
use super::{exec, tcp};
use crate::limits::{MAX_EXEC_OUTPUT, MAX_PROBE_WORKERS, PROBE_QUEUE_LEN, STATFS_HANG_MS};

/// statvfs of a NUL-terminated path; None when it fails. The sampler's host seam:
/// `libc::statvfs` in production, a stand-in in tests.
pub type StatFsFn = fn(&CStr) -> Option<FsStats>;

/// Stack of a worker thread: a connect, a statvfs, or spawning and reading a command.
const WORKER_STACK: usize = 128 * 1024;

/// How long past its own timeout `settle` still waits for a run (killing and reaping a
/// command that ran out of time).
const SETTLE_GRACE: Duration = Duration::from_millis(200);

/// What a task runs.
#[derive(Debug)]
pub(super) enum Job {
    /// `tcp.up`: a connect within `timeout`.
    Tcp {
        target: SocketAddr,
        timeout: Duration,
    },
    /// `exec.value`: a command run within `timeout`.
    Exec {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// `disk.*` of a network or FUSE mount: statvfs of `path` (under `root`).
    StatFs { path: CString, statfs: StatFsFn },
}

impl Job {
    /// The same series: runs of two equal jobs are never in flight together.
    fn same(&self, other: &Job) -> bool {
        match (self, other) {
            (Job::Tcp { target: a, .. }, Job::Tcp { target: b, .. }) => a == b,
            (Job::Exec { argv: a, .. }, Job::Exec { argv: b, .. }) => a == b,
            (Job::StatFs { path: a, .. }, Job::StatFs { path: b, .. }) => a == b,
            _ => false,
        }
    }

    fn is_statfs(&self) -> bool {
        matches!(self, Job::StatFs { .. })
    }

    /// How long a run may take: its timeout; a statvfs has none, so the time after which
    /// it counts as hanging.
    fn limit(&self) -> Duration {
        match self {
            Job::Tcp { timeout, .. } | Job::Exec { timeout, .. } => *timeout,
            Job::StatFs { .. } => Duration::from_millis(STATFS_HANG_MS),
        }
    }

    /// One run, on a worker.
    fn run(&self, slot: &Slot, buf: &mut [u8]) -> Outcome {
        match self {
            Job::Tcp { target, timeout } => Outcome::Value(Some(tcp::probe(target, *timeout))),
            Job::Exec { argv, timeout } => {
                let v = exec::run_tracked(argv, *timeout, buf, |pid| slot.track(pid));
                Outcome::Value(v.ok())
            }
            Job::StatFs { path, statfs } => Outcome::Fs(statfs(path)),
        }
    }
}

/// What a run found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Outcome {
    /// `tcp.up` (always a value) or `exec.value` (None: the command gave no number).
    Value(Option<f64>),
    /// statvfs (None: it failed).
    Fs(Option<FsStats>),
}

/// What [`Task::poll`] found.
#[derive(Debug, PartialEq)]
pub(super) enum Poll {
    /// The run queued at an earlier tick has returned: its result, this tick's sample.
    /// The next run is queued.
    Ready(Outcome),
    /// A run is queued or going, since `for_ms` (by the caller's clock): no sample.
    Busy { for_ms: u64 },
    /// Nothing had run yet (or the queue was full): a run is queued, no sample yet.
    Started,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Queued,
    Running,
    Done,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// The result, when `Done`.
    outcome: Outcome,
    /// The caller's `now_ms` when the run was queued.
    queued_ms: u64,
    /// When a worker started the run (bounds `settle`).
    started: Option<Instant>,
    /// False once the task is dropped: the result has nobody to go to.
    owned: bool,
    /// The command's process group while it runs and is not yet reaped.
    child: Option<u32>,
}

#[derive(Debug)]
struct Slot {
    job: Job,
    state: Mutex<State>,
}

impl Slot {
    /// This slot's state; the pool's mutex must be held (see the lock order above).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the command's process group (None: about to be reaped). False when the
    /// task is gone, so the command is killed at once.
    fn track(&self, child: Option<u32>) -> bool {
        let _pool = lock();
        let mut st = self.state();
        st.child = child;
        st.owned
    }
}

struct Inner {
    /// Runs waiting for a worker, oldest first.
    queue: heapless::Vec<Arc<Slot>, PROBE_QUEUE_LEN>,
    /// Runs going, one per busy worker.
    running: heapless::Vec<Arc<Slot>, MAX_PROBE_WORKERS>,
    /// Worker threads started (or being started).
    workers: usize,
    /// Of those, the ones being started, not yet looking for a run.
    starting: usize,
    /// Workers waiting for a run.
    idle: usize,
}

impl Inner {
    /// The oldest queued run a worker may start: not equal to one going, and not a statvfs
    /// when all workers but one are in statvfs already.
    fn next(&self) -> Option<usize> {
        let statfs_going = self.running.iter().filter(|s| s.job.is_statfs()).count();
        let statfs_ok = statfs_going + 1 < MAX_PROBE_WORKERS;
        self.queue.iter().position(|s| {
            (statfs_ok || !s.job.is_statfs()) && !self.running.iter().any(|r| r.job.same(&s.job))
        })
    }

    /// Whether to start one more worker: fewer than the cap, and more runs waiting than
    /// workers free for them (counted as started).
    fn claim_worker(&mut self) -> bool {
        let more = self.workers < MAX_PROBE_WORKERS && self.queue.len() > self.idle + self.starting;
        if more {
            self.workers += 1;
            self.starting += 1;
        }
        more
    }
}

struct Pool {
    inner: Mutex<Inner>,
    /// Signalled when a run is queued (or may have become startable).
    work: Condvar,
    /// Signalled when a run returns.
    done: Condvar,
}

static POOL: Pool = Pool {
    inner: Mutex::new(Inner {
        queue: heapless::Vec::new(),
        running: heapless::Vec::new(),
        workers: 0,
        starting: 0,
        idle: 0,
    }),
    work: Condvar::new(),
    done: Condvar::new(),
};

fn lock() -> MutexGuard<'static, Inner> {
    POOL.inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One series' probe: its job and the state of its current run.
pub(super) struct Task(Arc<Slot>);

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Task").field(&self.0.job).finish()
    }
}

impl Task {
    /// A task that has not run yet (allocates once).
    pub(super) fn new(job: Job) -> Task {
        Task(Arc::new(Slot {
            job,
            state: Mutex::new(State {
                phase: Phase::Idle,
                outcome: Outcome::Value(None),
                queued_ms: 0,
                started: None,
                owned: true,
                child: None,
            }),
        }))
    }

    /// Once per tick: the result of the run that returned since the previous tick, if
    /// any, and the next run queued; or [`Poll::Busy`] while a run is in flight. `now_ms`
    /// is the sampler's clock, only used to tell how long a run has been in flight.
    pub(super) fn poll(&self, now_ms: u64) -> Poll {
        let mut inner = lock();
        let mut st = self.0.state();
        let ready = match st.phase {
            Phase::Queued | Phase::Running => {
                return Poll::Busy {
                    for_ms: now_ms.saturating_sub(st.queued_ms),
                }
            }
            Phase::Done => Some(st.outcome),
            Phase::Idle => None,
        };
        st.phase = Phase::Idle;
        st.started = None;
        if inner.queue.push(self.0.clone()).is_ok() {
            st.phase = Phase::Queued;
            st.queued_ms = now_ms;
            POOL.work.notify_one();
        }
        drop(st);
        let spawn = inner.claim_worker();
        drop(inner);
        if spawn {
            start_worker();
        }
        ready.map_or(Poll::Started, Poll::Ready)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let mut inner = lock();
        let mut st = self.0.state();
        st.owned = false;
        if st.phase == Phase::Queued {
            if let Some(i) = inner.queue.iter().position(|s| Arc::ptr_eq(s, &self.0)) {
                inner.queue.remove(i);
            }
            st.phase = Phase::Idle;
        }
        if let Some(pgid) = st.child.take() {
            exec::kill_pgid(pgid);
        }
    }
}

/// Waits until none of `tasks` has a run in flight, except runs already past their own
/// timeout (a statvfs: [`STATFS_HANG_MS`]), or until `deadline`. True when none is in
/// flight any more.
pub(super) fn settle(tasks: &[&Task], deadline: Instant) -> bool {
    let mut inner = lock();
    loop {
        let now = Instant::now();
        let mut wake = deadline;
        let mut waiting = false;
        let mut in_flight = false;
        for t in tasks {
            let st = t.0.state();
            match (st.phase, st.started) {
                (Phase::Queued, _) | (Phase::Running, None) => {
                    in_flight = true;
                    waiting = true;
                }
                (Phase::Running, Some(started)) => {
                    in_flight = true;
                    let until = started + t.0.job.limit() + SETTLE_GRACE;
                    if until > now {
                        waiting = true;
                        wake = wake.min(until);
                    }
                }
                (Phase::Idle | Phase::Done, _) => {}
            }
        }
        if !waiting || now >= deadline {
            return !in_flight;
        }
        inner = POOL
            .done
            .wait_timeout(inner, wake.saturating_duration_since(now))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

fn start_worker() {
    let started = std::thread::Builder::new()
        .name("tocsin-probe".into())
        .stack_size(WORKER_STACK)
        .spawn(worker);
    if let Err(e) = started {
        let mut inner = lock();
        inner.workers -= 1;
        inner.starting -= 1;
        drop(inner);
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            crate::warn!(
                "cannot start a probe worker ({e}): tcp.up, exec.value and network-mount disk.* samples wait for one"
            );
        }
    }
}

/// A worker: takes the oldest startable run, runs it, records the result; forever.
fn worker() {
    block_signals();
    let mut buf = vec![0u8; MAX_EXEC_OUTPUT];
    let mut inner = lock();
    inner.starting -= 1;
    loop {
        let Some(i) = inner.next() else {
            inner.idle += 1;
            inner = POOL
                .work
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
            inner.idle -= 1;
            continue;
        };
        let slot = inner.queue.remove(i);
        {
            let mut st = slot.state();
            st.phase = Phase::Running;
            st.started = Some(Instant::now());
        }
        // Room for one run per worker.
        let _ = inner.running.push(slot.clone());
        drop(inner);
        let outcome = slot.job.run(&slot, &mut buf);
        inner = lock();
        if let Some(i) = inner.running.iter().position(|s| Arc::ptr_eq(s, &slot)) {
            inner.running.swap_remove(i);
        }
        {
            let mut st = slot.state();
            st.phase = Phase::Done;
            st.outcome = outcome;
            st.child = None;
        }
        // The last reference when the task was dropped meanwhile.
        drop(slot);
        POOL.done.notify_all();
        if !inner.queue.is_empty() {
            // A run equal to this one, or a statvfs, may be startable now.
            POOL.work.notify_all();
        }
    }
}

/// Every signal blocked on this thread: process signals go to the main thread, and a
/// probe's system call is never interrupted. (Commands start with an empty mask: std
/// resets it in the child.)
fn block_signals() {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initializes `set` before pthread_sigmask reads it; both only
    // touch this thread's signal mask and the local set.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(job: Job) -> Arc<Slot> {
        Task::new(job).0.clone()
    }

    fn statfs(path: &str) -> Job {
        Job::StatFs {
            path: CString::new(path).unwrap(),
            statfs: |_| None,
        }
    }

    fn exec(arg: &str) -> Job {
        Job::Exec {
            argv: vec!["/bin/echo".into(), arg.into()],
            timeout: Duration::from_secs(1),
        }
    }

    fn inner(queue: Vec<Arc<Slot>>, running: Vec<Arc<Slot>>) -> Inner {
        Inner {
            queue: queue.into_iter().collect(),
            running: running.into_iter().collect(),
            workers: MAX_PROBE_WORKERS,
            starting: 0,
            idle: 0,
        }
    }

    #[test]
    fn equal_runs_never_go_together() {
        let i = inner(
            vec![slot(exec("1")), slot(exec("2"))],
            vec![slot(exec("1"))],
        );
        assert_eq!(
            i.next(),
            Some(1),
            "the same command waits for the one going"
        );
        let i = inner(vec![slot(exec("1"))], vec![slot(exec("1"))]);
        assert_eq!(i.next(), None);
    }

    #[test]
    fn statvfs_leaves_one_worker_to_the_other_probes() {
        let going: Vec<_> = (0..MAX_PROBE_WORKERS - 1)
            .map(|n| slot(statfs(&format!("/mnt/{n}"))))
            .collect();
        let i = inner(vec![slot(statfs("/mnt/x")), slot(exec("1"))], going.clone());
        assert_eq!(i.next(), Some(1), "a statvfs waits; the command goes");
        let i = inner(vec![slot(statfs("/mnt/x"))], going[1..].to_vec());
        assert_eq!(i.next(), Some(0), "below the cap a statvfs goes");
    }

    #[test]
    fn claims_workers_up_to_the_cap() {
        let mut i = inner(vec![slot(exec("1")), slot(exec("2"))], vec![]);
        i.workers = 0;
        i.idle = 1;
        assert!(i.claim_worker());
        assert!(
            !i.claim_worker(),
            "one idle plus one new worker for two runs"
        );
        i.queue.extend((0..8).map(|n| slot(exec(&n.to_string()))));
        while i.claim_worker() {}
        assert_eq!(i.workers, MAX_PROBE_WORKERS, "never more than the cap");
    }
}
