//! One webhook's outbox: a bounded queue and the task that delivers it, renders each event
//! in its own buffer, and is the only owner of the webhook's spool directory.
//!
//! [`Outbox::offer`] never blocks and never touches the disk: an event goes into the
//! queue, or, when the queue is full (the receiver is slow or down), into a second bounded
//! channel whose events the worker writes to the spool — also while a delivery is in
//! flight, and with the write (and its fsync) on the blocking pool, off the event loop.
//! When both are full the event is dropped, counted and announced. Spooled events are
//! offered again when the receiver answers, at most 10 a second, oldest first.

use super::client::Client;
use super::send::{send, Delivery, Outgoing};
use super::spool::{self, Spool};
use super::{tls_for, Env, Error, Failure, Mode, Record, SharedStats, SinkSpec, RECENT};
use crate::clock::Clock;
use crate::event::{Event, EventType};
use crate::limits::{MAX_BODY_LEN, OUTBOX_CAPACITY};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
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
    tx: mpsc::Sender<Event>,
    overflow: mpsc::Sender<Event>,
    /// What the worker did so far.
    pub stats: SharedStats,
    /// Events dropped because memory and spool were full.
    pub dropped: Arc<AtomicU64>,
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
        let (tx, rx) = mpsc::channel::<Event>(OUTBOX_CAPACITY);
        let (overflow, overflow_rx) = mpsc::channel::<Event>(OUTBOX_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            dropped: dropped.clone(),
            spool: Spool::new(&spec.state_dir, &spec.name),
            client: Client::new(spec.endpoint.url.clone(), tls, spec.endpoint.egress.clone()),
            buf: vec![0u8; MAX_BODY_LEN].into_boxed_slice(),
            index,
            clock: env.clock.clone(),
            failures: env.failures.clone(),
            stop: env.stop.clone(),
            gone: false,
            stats: SharedStats::default(),
            spec,
        };
        let stats = worker.stats.clone();
        let task = tokio::spawn(worker.run(rx, overflow_rx, env.mode));
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
        match self.tx.try_send(event.clone()) {
            Ok(()) => Offer::Queued,
            Err(TrySendError::Full(e)) => match self.overflow.try_send(e) {
                Ok(()) => Offer::Spooled,
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Offer::Dropped
                }
            },
            Err(TrySendError::Closed(_)) => Offer::Dropped,
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

/// The spool side of a worker: cloneable, so it can write while a delivery is in flight.
#[derive(Clone)]
struct Keeper {
    spool: Spool,
    name: String,
    index: usize,
    failures: mpsc::Sender<Failure>,
    dropped: Arc<AtomicU64>,
}

impl Keeper {
    /// Puts `event` in the spool on the blocking pool; evictions are logged and announced.
    /// Every event lost on the way (evicted, or not stored) counts in `dropped`.
    async fn keep(&self, event: Event) {
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
            return;
        };
        let name = &self.name;
        for (kind, id, level) in evicted.dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let detail = format!(
                "{name}: spool full, dropped {} {} ({})",
                kind.as_str(),
                id.to_text(),
                level.as_str()
            );
            crate::error!("webhook {detail}");
            let _ = self.failures.try_send(Failure {
                webhook: self.index,
                detail,
            });
        }
        match result {
            Ok(()) => {
                crate::warn!(
                    "webhook {name}: {} {} spooled ({waiting} waiting)",
                    event.kind.as_str(),
                    event.id.to_text()
                );
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::error!(
                    "webhook {name}: cannot spool {} {}: {e}; it is lost",
                    event.kind.as_str(),
                    event.id.to_text()
                );
            }
        }
    }
}

/// Awaits `fut`, spooling whatever overflows meanwhile.
async fn spooling<T>(
    fut: impl Future<Output = T>,
    overflow: &mut mpsc::Receiver<Event>,
    keeper: &Keeper,
) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            v = &mut fut => return v,
            Some(e) = overflow.recv() => keeper.keep(e).await,
        }
    }
}

/// One webhook's delivery task.
struct Worker {
    spec: Arc<SinkSpec>,
    index: usize,
    client: Client,
    spool: Spool,
    buf: Box<[u8]>,
    clock: Clock,
    failures: mpsc::Sender<Failure>,
    stop: watch::Receiver<bool>,
    /// The receiver answered 410 Gone: nothing more is sent until a reload.
    gone: bool,
    stats: SharedStats,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    fn keeper(&self) -> Keeper {
        Keeper {
            spool: self.spool.clone(),
            name: self.spec.name.clone(),
            index: self.index,
            failures: self.failures.clone(),
            dropped: self.dropped.clone(),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Event>,
        mut overflow: mpsc::Receiver<Event>,
        mode: Mode,
    ) {
        let keeper = self.keeper();
        let interval = self.spec.interval_ms;
        if mode == Mode::Send {
            let spool = self.spool.clone();
            let _ = tokio::task::spawn_blocking(move || spool.recover()).await;
        }
        let mut probe = (mode == Mode::Send && !self.spool.is_empty())
            .then(|| tokio::time::Instant::now() + splay(interval));
        if probe.is_some() {
            crate::info!(
                "webhook {}: {} spooled events wait; first try after a start-up splay",
                self.spec.name,
                self.spool.len()
            );
        }
        loop {
            let event = tokio::select! {
                biased;
                Some(e) = overflow.recv(), if mode == Mode::Send => {
                    keeper.keep(e).await;
                    probe = probe.or_else(|| Some(tokio::time::Instant::now() + probe_every(interval)));
                    continue;
                }
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                _ = tokio::time::sleep_until(probe.unwrap_or_else(tokio::time::Instant::now)), if probe.is_some() => {
                    self.drain(&mut overflow, &keeper).await;
                    probe = (!self.spool.is_empty()).then(|| tokio::time::Instant::now() + probe_every(interval));
                    continue;
                }
            };
            match mode {
                Mode::DryRun => self.print(&event),
                Mode::Send if self.gone => {
                    crate::warn!(
                        "webhook {}: {} {} not sent: the receiver answered 410 Gone; disabled until reload",
                        self.spec.name,
                        event.kind.as_str(),
                        event.id.to_text()
                    );
                }
                Mode::Send => {
                    let d = spooling(self.send(&event, u32::MAX), &mut overflow, &keeper).await;
                    if d.status == Some(410) {
                        // RFC 9110: the target is gone for good. Stop sending to it.
                        crate::error!("webhook {}: the receiver answered 410 Gone: webhook disabled until the config is reloaded", self.spec.name);
                        self.gone = true;
                    }
                    if d.delivered() {
                        if !self.spool.is_empty() {
                            self.drain(&mut overflow, &keeper).await;
                        }
                    } else {
                        if d.retryable() {
                            keeper.keep(event.clone()).await;
                        }
                        self.announce(&event, &d);
                        if !self.spool.is_empty() {
                            probe = probe.or_else(|| {
                                Some(tokio::time::Instant::now() + probe_every(interval))
                            });
                        }
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
                keeper.keep(e).await;
            }
            while let Ok(e) = rx.try_recv() {
                keeper.keep(e).await;
            }
        }
    }

    /// Renders and delivers one event.
    async fn send(&mut self, event: &Event, max_attempts: u32) -> Delivery {
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
    fn announce(&self, event: &Event, d: &Delivery) {
        // A failed `delivery_failed` is not announced again: no loops.
        if event.kind == EventType::DeliveryFailed {
            return;
        }
        let spooled = if d.retryable() { "; spooled" } else { "" };
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

    /// Offers spooled events again, oldest first, one try each, rate-limited; stops at the
    /// first that fails (the endpoint is still down).
    async fn drain(&mut self, overflow: &mut mpsc::Receiver<Event>, keeper: &Keeper) {
        for path in self.spool.list() {
            if *self.stop.borrow() {
                return;
            }
            let Some(event) = spool::load(&path) else {
                continue;
            };
            let d = spooling(self.send(&event, 1), overflow, keeper).await;
            if d.delivered() {
                if let Err(e) = self.spool.remove(&path) {
                    crate::error!(
                        "webhook {}: delivered {} but cannot remove its spool file: {e}",
                        self.spec.name,
                        path.display()
                    );
                }
            } else {
                if !d.retryable() {
                    // Rejected for good: keeping it would block the spool forever.
                    let _ = self.spool.remove(&path);
                }
                return;
            }
            spooling(tokio::time::sleep(SPOOL_RATE), overflow, keeper).await;
        }
    }
}
