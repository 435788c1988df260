//! One webhook's outbox: a bounded queue and the task that delivers it, renders each event
//! in its own buffer, and is the only owner of the webhook's spool directory.
//!
//! [`Outbox::offer`] never blocks and never touches the disk: an event goes into the
//! queue, or, when the queue is full (the receiver is slow or down), into a second bounded
//! channel whose events the worker writes to the spool — also while a delivery is in
//! flight, and with the write (and its fsync) on the blocking pool, off the event loop.
//! When both are full the event is dropped, counted and announced.
//!
//! Fresh events go first. Spooled events are offered again, oldest first, one attempt
//! each, in the gaps between fresh ones (at most 10 a second) once the receiver answers,
//! so a backlog never delays a new alarm and a healthy receiver empties it. Per series,
//! events reach the receiver in the order they were raised: a fresh event whose series
//! still has spooled events waits behind them (they go first; if they fail, it is
//! spooled after them). Nothing about a `delivery_failed` event — its failure, its drop,
//! its eviction — is announced again, so announcements cannot loop between webhooks.

use super::client::Client;
use super::send::{send, Delivery, Outgoing};
use super::spool::{self, Spool};
use super::{tls_for, Env, Error, Failure, Mode, Record, SharedStats, SinkSpec, RECENT};
use crate::clock::Clock;
use crate::event::{Event, EventType};
use crate::limits::{MAX_BODY_LEN, OUTBOX_CAPACITY};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What became of an offered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// In the queue.
    Queued,
    /// The queue was full: it goes to the spool.
    Spooled,
    /// Queue and spool hand-over were both full, or the outbox is closed: lost (counted).
    Dropped,
}

/// A webhook's outbox: the sending halves, and the task draining them.
pub struct Outbox {
    tx: mpsc::Sender<Box<Event>>,
    overflow: mpsc::Sender<Box<Event>>,
    /// What the worker did so far.
    pub stats: SharedStats,
    /// Events dropped because memory and spool were full.
    pub dropped: Arc<AtomicUsize>,
    /// The worker; it ends when every sender is dropped and the queue is empty.
    pub task: JoinHandle<()>,
}

impl Outbox {
    /// Starts the worker of `spec`.
    ///
    /// # Errors
    /// [`Error::TlsSetup`]: the webhook's TLS settings cannot be built.
    pub fn spawn(spec: Arc<SinkSpec>, index: usize, env: &Env) -> Result<Outbox, Error> {
        let tls = tls_for(&spec)?;
        // Boxed events: tokio's channel keeps its slots in blocks of 32 that are reused,
        // not freed, so a block of events by value (32 x 416 B) stays resident per channel
        // once touched; boxed, an idle queue holds 32 pointers and a full one only its events.
        let (tx, rx) = mpsc::channel::<Box<Event>>(OUTBOX_CAPACITY);
        let (overflow, overflow_rx) = mpsc::channel::<Box<Event>>(OUTBOX_CAPACITY);
        let dropped = Arc::new(AtomicUsize::new(0));
        let store = Store {
            keeper: Keeper {
                spool: Spool::new(&spec.state_dir, &spec.name),
                name: spec.name.clone(),
                index,
                failures: env.failures.clone(),
                dropped: dropped.clone(),
            },
            backlog: VecDeque::new(),
        };
        let worker = Worker {
            client: Client::new(spec.endpoint.url.clone(), tls, spec.endpoint.egress.clone()),
            buf: vec![0u8; MAX_BODY_LEN].into_boxed_slice(),
            index,
            clock: env.clock.clone(),
            failures: env.failures.clone(),
            acks: env.acks.clone(),
            stop: env.stop.clone(),
            gone: false,
            stats: SharedStats::default(),
            spec,
        };
        let stats = worker.stats.clone();
        // Boxed: the task then holds a pointer, and tokio's task code (spawning, storing the
        // output) no longer copies the whole future through the stack.
        let task = tokio::spawn(Box::pin(worker.run(store, rx, overflow_rx, env.mode)));
        Ok(Outbox {
            tx,
            overflow,
            stats,
            dropped,
            task,
        })
    }

    /// Hands `event` to the worker without waiting (see the module docs).
    pub fn offer(&self, event: &Event) -> Offer {
        match self.tx.try_send(Box::new(event.clone())) {
            Ok(()) => Offer::Queued,
            Err(TrySendError::Full(e)) => match self.overflow.try_send(e) {
                Ok(()) => Offer::Spooled,
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Offer::Dropped
                }
            },
            Err(TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
        }
    }

    /// Events waiting in memory.
    pub fn queued(&self) -> usize {
        (self.tx.max_capacity() - self.tx.capacity())
            + (self.overflow.max_capacity() - self.overflow.capacity())
    }
}

/// How often a non-empty spool is probed while no fresh event shows the endpoint is back:
/// ten sampling intervals, from one interval up to a minute.
fn probe_every(interval_ms: u64) -> Duration {
    Duration::from_millis((interval_ms * 10).clamp(interval_ms, 60_000))
}

/// A random wait before the first spool probe after start, up to six intervals and at most
/// 30 s, so that a fleet rebooting together does not stampede its receiver.
fn splay(interval_ms: u64) -> Duration {
    Duration::from_millis(u64::from(crate::util::random_u32()) % (interval_ms * 6).clamp(1, 30_000))
}

/// Spooled events go out at most this often (10 per second).
const SPOOL_RATE: Duration = Duration::from_millis(100);

/// The spool side of a worker: writes on the blocking pool, announces evictions.
#[derive(Clone)]
struct Keeper {
    spool: Spool,
    name: String,
    index: usize,
    failures: mpsc::Sender<Failure>,
    dropped: Arc<AtomicUsize>,
}

impl Keeper {
    /// Puts `event` in the spool on the blocking pool. Evictions are logged and announced
    /// (never those of `delivery_failed` events: no announcement about an announcement);
    /// every event lost on the way (evicted, or not stored) counts in `dropped`. Returns
    /// the ids evicted, and whether `event` was stored.
    async fn keep(&self, event: Event) -> (Vec<crate::event::EventId>, bool) {
        let spool = self.spool.clone();
        let put = tokio::task::spawn_blocking(move || {
            let mut evicted = spool::Evicted::default();
            let r = spool.put(&event, &mut evicted);
            let waiting = spool.len();
            (event, r, evicted, waiting)
        })
        .await;
        let Ok((event, result, evicted, waiting)) = put else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            crate::error!(
                "webhook {}: the spool writer failed; an event is lost",
                self.name
            );
            return (Vec::new(), false);
        };
        let name = &self.name;
        let mut ids = Vec::with_capacity(evicted.dropped.len());
        for (kind, id, level) in evicted.dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            ids.push(id);
            let detail = format!(
                "{name}: spool full, dropped {} {} ({})",
                kind.as_str(),
                id.to_text(),
                level.as_str()
            );
            crate::error!("webhook {detail}");
            if kind != EventType::DeliveryFailed {
                let _ = self.failures.try_send(Failure {
                    webhook: self.index,
                    detail,
                });
            }
        }
        match result {
            Ok(()) => {
                crate::warn!(
                    "webhook {name}: {} {} spooled ({waiting} waiting)",
                    event.kind.as_str(),
                    event.id.to_text()
                );
                (ids, true)
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::error!(
                    "webhook {name}: cannot spool {} {}: {e}; it is lost",
                    event.kind.as_str(),
                    event.id.to_text()
                );
                (ids, false)
            }
        }
    }
}

/// One spooled event, as the worker tracks it.
struct Spooled {
    path: PathBuf,
    series: u64,
}

/// The spool and the worker's index of it (oldest first): the worker is its only owner.
struct Store {
    keeper: Keeper,
    backlog: VecDeque<Spooled>,
}

impl Store {
    /// Reads the index from the spool directory (at start).
    fn load(&mut self) {
        self.backlog = self
            .keeper
            .spool
            .list()
            .into_iter()
            .filter_map(|path| {
                let e = spool::load(&path)?;
                Some(Spooled {
                    path,
                    series: e.series_key(),
                })
            })
            .collect();
    }

    fn is_empty(&self) -> bool {
        self.backlog.is_empty()
    }

    /// Spools `event` behind everything spooled before it; whether it was stored.
    async fn keep(&mut self, event: Event) -> bool {
        let path = self.keeper.spool.path_of(&event);
        let series = event.series_key();
        let (evicted, stored) = self.keeper.keep(event).await;
        if !evicted.is_empty() {
            self.backlog.retain(|s| {
                !evicted
                    .iter()
                    .any(|id| s.path.to_string_lossy().contains(id.to_text().as_str()))
            });
        }
        if stored {
            let at = self.backlog.partition_point(|s| s.path <= path);
            self.backlog.insert(at, Spooled { path, series });
        }
        stored
    }

    /// The oldest spooled event of `series` (any series with `None`).
    fn oldest(&self, series: Option<u64>) -> Option<usize> {
        match series {
            None => (!self.backlog.is_empty()).then_some(0),
            Some(k) => self.backlog.iter().position(|s| s.series == k),
        }
    }

    /// Forgets entry `i` and removes its file (delivered, or rejected for good).
    fn remove(&mut self, i: usize) {
        let Some(s) = self.backlog.remove(i) else {
            return;
        };
        if let Err(e) = self.keeper.spool.remove(&s.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                crate::error!(
                    "webhook {}: cannot remove the spool file {}: {e}",
                    self.keeper.name,
                    s.path.display()
                );
            }
        }
    }
}

/// Awaits `fut`, spooling whatever overflows meanwhile; with `early` = (the signal of the
/// first failed attempt, its event), spools that event as soon as the signal comes, while
/// its retries go on. Returns whether it was so spooled.
///
/// `fut` comes pinned by the caller, which holds it: taken by value, an `async fn` keeps
/// the future twice in its state (the argument, then the pinned local), and the attempt's
/// future is the largest part of a worker's.
async fn spooling<T>(
    mut fut: Pin<&mut impl Future<Output = T>>,
    overflow: &mut mpsc::Receiver<Box<Event>>,
    store: &mut Store,
    early: Option<(oneshot::Receiver<()>, &Event)>,
) -> (T, bool) {
    let (mut told, event) = match early {
        Some((rx, e)) => (Some(rx), Some(e)),
        None => (None, None),
    };
    let mut stored = false;
    loop {
        tokio::select! {
            v = fut.as_mut() => return (v, stored),
            Some(e) = overflow.recv() => {
                store.keep(*e).await;
            }
            r = async { match told.as_mut() { Some(rx) => rx.await, None => std::future::pending().await } }, if told.is_some() => {
                told = None;
                if let (Ok(()), Some(e)) = (r, event) {
                    stored = store.keep(e.clone()).await;
                }
            }
        }
    }
}

/// What the worker does next (short-lived: the event moves on at once).
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A fresh event from the queue.
    Fresh(Event),
    /// The oldest spooled event, one attempt (a drain step, or a probe of a receiver that
    /// failed).
    Spooled,
}

/// One webhook's delivery task.
struct Worker {
    spec: Arc<SinkSpec>,
    index: usize,
    client: Client,
    buf: Box<[u8]>,
    clock: Clock,
    failures: mpsc::Sender<Failure>,
    acks: mpsc::Sender<super::Ack>,
    stop: watch::Receiver<bool>,
    /// The receiver answered 410 Gone: nothing more is sent until a reload.
    gone: bool,
    stats: SharedStats,
}

impl Worker {
    async fn run(
        mut self,
        mut store: Store,
        mut rx: mpsc::Receiver<Box<Event>>,
        mut overflow: mpsc::Receiver<Box<Event>>,
        mode: Mode,
    ) {
        let interval = self.spec.interval_ms;
        let now = tokio::time::Instant::now;
        if mode == Mode::Send {
            let spool = store.keeper.spool.clone();
            let _ = tokio::task::spawn_blocking(move || spool.recover()).await;
            store.load();
        }
        // The receiver took the last request (spooled events may flow); when it did not,
        // the next spooled event is a probe, at `probe_at`.
        let mut healthy = false;
        let mut next_drain = now();
        let mut probe_at = now() + splay(interval);
        if !store.is_empty() {
            crate::info!(
                "webhook {}: {} spooled events wait; first try after a start-up splay",
                self.spec.name,
                store.backlog.len()
            );
        }
        loop {
            let spooled_due = if healthy { next_drain } else { probe_at };
            let next = tokio::select! {
                biased;
                Some(e) = overflow.recv(), if mode == Mode::Send => {
                    store.keep(*e).await;
                    continue;
                }
                e = rx.recv() => match e {
                    Some(e) => Next::Fresh(*e),
                    None => break,
                },
                _ = tokio::time::sleep_until(spooled_due), if mode == Mode::Send && !store.is_empty() && !self.gone => Next::Spooled,
            };
            match (next, mode) {
                (Next::Fresh(e), Mode::DryRun) => self.print(&e),
                (Next::Fresh(e), Mode::Send) if self.gone => {
                    crate::warn!(
                        "webhook {}: {} {} not sent: the receiver answered 410 Gone; disabled until reload",
                        self.spec.name,
                        e.kind.as_str(),
                        e.id.to_text()
                    );
                }
                (Next::Fresh(e), Mode::Send) => {
                    // Per series, in the order raised: its spooled events go first.
                    let series = Some(e.series_key());
                    let mut behind = false;
                    while store.oldest(series).is_some() {
                        if !self.send_spooled(&mut store, &mut overflow, series).await {
                            behind = true;
                            break;
                        }
                    }
                    if behind {
                        store.keep(e).await;
                        healthy = false;
                        probe_at = now() + probe_every(interval);
                    } else {
                        healthy = self.send_fresh(e, &mut store, &mut overflow).await;
                        if !healthy {
                            probe_at = now() + probe_every(interval);
                        }
                    }
                }
                (Next::Spooled, _) => {
                    healthy = self.send_spooled(&mut store, &mut overflow, None).await;
                    if healthy {
                        next_drain = now() + SPOOL_RATE;
                    } else {
                        probe_at = now() + probe_every(interval);
                    }
                }
            }
            if *self.stop.borrow() {
                break;
            }
        }
        // Stopping: what is still queued goes to the spool rather than being lost.
        if mode == Mode::Send {
            while let Ok(e) = overflow.try_recv() {
                store.keep(*e).await;
            }
            while let Ok(e) = rx.try_recv() {
                store.keep(*e).await;
            }
        }
    }

    /// Delivers a fresh event with the full retry policy. It is spooled at its first
    /// failed attempt, while the retries go on (a power cut during them loses nothing),
    /// and the file removed again when a retry gets through or the receiver rejects it
    /// for good. Returns whether the receiver took it.
    async fn send_fresh(
        &mut self,
        event: Event,
        store: &mut Store,
        overflow: &mut mpsc::Receiver<Box<Event>>,
    ) -> bool {
        let (tell, told) = oneshot::channel();
        let (d, early) = {
            let attempt = pin!(self.send(&event, u32::MAX, Some(tell)));
            spooling(attempt, overflow, store, Some((told, &event))).await
        };
        if d.status == Some(410) {
            // RFC 9110: the target is gone for good. Stop sending to it.
            crate::error!("webhook {}: the receiver answered 410 Gone: webhook disabled until the config is reloaded", self.spec.name);
            self.gone = true;
        }
        if early && !d.retryable() {
            // Delivered after all, or rejected for good: the spooled copy goes.
            crate::crash_point!("spool.before-remove");
            let path = store.keeper.spool.path_of(&event);
            if let Some(i) = store.backlog.iter().position(|s| s.path == path) {
                store.remove(i);
            }
        }
        if d.delivered() {
            return true;
        }
        let spooled = if early {
            d.retryable()
        } else {
            d.retryable() && store.keep(event.clone()).await
        };
        self.announce(&event, &d, spooled);
        false
    }

    /// One attempt at the oldest spooled event of `series` (of any with `None`); removes
    /// it when delivered or rejected for good. Returns whether the receiver took it.
    async fn send_spooled(
        &mut self,
        store: &mut Store,
        overflow: &mut mpsc::Receiver<Box<Event>>,
        series: Option<u64>,
    ) -> bool {
        let Some(i) = store.oldest(series) else {
            return true;
        };
        let Some(event) = spool::load(&store.backlog[i].path) else {
            // Damaged (moved aside) or gone: nothing to send.
            store.backlog.remove(i);
            return true;
        };
        let (d, _) = {
            let attempt = pin!(self.send(&event, 1, None));
            spooling(attempt, overflow, store, None).await
        };
        // The index may have moved while the attempt was in flight.
        let i = store
            .backlog
            .iter()
            .position(|s| s.path == store.keeper.spool.path_of(&event));
        if d.delivered() || !d.retryable() {
            // Rejected for good: keeping it would block the spool (and its series) forever.
            if let Some(i) = i {
                store.remove(i);
            }
        }
        d.delivered()
    }

    /// Renders and delivers one event.
    async fn send(
        &mut self,
        event: &Event,
        max_attempts: u32,
        first_failure: Option<oneshot::Sender<()>>,
    ) -> Delivery {
        let spec = self.spec.clone();
        let what = format!("{} {}", event.kind.as_str(), event.id.to_text());
        let d = match spec.prepare(event, self.clock.now_ms(), &mut self.buf) {
            Err(e) => {
                crate::error!("webhook {}: {what} cannot be sent: {e}", spec.name);
                Delivery::failed(e)
            }
            Ok(p) => {
                let id = event.id.to_text();
                let out = Outgoing {
                    head: &p.head,
                    body: p.body,
                    id: &id,
                    what: &what,
                    quiet: false,
                    max_attempts,
                    first_failure,
                };
                send(
                    &mut self.client,
                    &spec,
                    &self.clock,
                    out,
                    Some(self.stop.clone()),
                )
                .await
            }
        };
        self.record(event, &d);
        if d.delivered() && event.rule.is_some() {
            crate::crash_point!("ack.before-send");
            let _ = self.acks.try_send(super::Ack::of(self.index, event));
        }
        d
    }

    /// Counts a delivery and keeps it among the recent ones (for `status` and `replay`).
    fn record(&self, event: &Event, d: &Delivery) {
        let Ok(mut st) = self.stats.lock() else {
            return;
        };
        st.count(d, 1);
        if st.recent.len() == RECENT {
            st.recent.pop_front();
        }
        st.recent.push_back(Record {
            event: event.clone(),
            attempts: d.attempts,
            status: d.status,
            latency_ms: d.elapsed.as_millis() as u64,
            delivered: d.delivered(),
        });
    }

    fn print(&mut self, event: &Event) {
        use std::io::Write as _;
        if let Some(req) = self.spec.print(event, self.clock.now_ms(), &mut self.buf) {
            let text = format!("# webhook {} (dry run)\n{req}\n", self.spec.name);
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }

    /// After a failed delivery: announce it to the other webhooks.
    fn announce(&self, event: &Event, d: &Delivery, spooled: bool) {
        // A failed `delivery_failed` is not announced again: no loops.
        if event.kind == EventType::DeliveryFailed {
            return;
        }
        let spooled = if spooled { "; spooled" } else { "" };
        let why = d
            .error
            .as_ref()
            .map_or_else(|| "failed".into(), |e| e.to_string());
        let detail = format!(
            "{}: {} {}: {why}{spooled}",
            self.spec.name,
            event.kind.as_str(),
            event.id.to_text(),
        );
        let _ = self.failures.try_send(Failure {
            webhook: self.index,
            detail,
        });
    }
}
