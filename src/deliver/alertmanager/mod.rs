//! Delivery to a Prometheus Alertmanager cluster.
//!
//! Alertmanager keeps alerts as state, not as a stream of events: a firing alert must be
//! re-sent until it resolves, or Alertmanager resolves it by itself at its `endsAt`. So an
//! `alertmanager` webhook has no event queue and no spool. It has a [`Table`] of the alerts
//! it currently tells (firing ones, and resolved ones still being repeated), allocated
//! once with room for [`MAX_AM_ALERTS`], and one [`Lane`] per peer of `urls`:
//!
//! - An event changes the table ([`Table::apply`]): an alarm fires (or refreshes) the
//!   alert of its series and severity and resolves the series' other alerts (an
//!   escalation is a new alert in Alertmanager, since `severity` is a label); a recovery
//!   resolves them; `no_data` fires the series' `no_data="true"` alert.
//! - Each lane sends the alerts due for its peer in one request (up to `max_batch`, as
//!   many as fit [`MAX_AM_BODY_LEN`]): new and changed alerts at once, firing ones every
//!   `resend` (with `endsAt` = now + 4 × `resend`, as Prometheus does), resolved ones
//!   [`RESOLVED_SENDS`] times, `resend` apart. Alerts that will be due within half a
//!   `resend` ride along, so a device settles into one request per `resend`.
//! - Every peer gets every alert (Alertmanager peers do not share alerts, only silences
//!   and notification logs); each lane has its own client, retries and backoff, so a dead
//!   peer holds back no other. When a peer is back, everything it missed is due for it.
//! - A full table evicts resolved alerts first, then short-lived ones, then a firing
//!   alert of lower severity than the new one; otherwise the new alert is dropped and
//!   reported (`delivery_failed`).
//! - A restart loses the table, not the alerts: still-firing rules fire again after
//!   `times` samples, long before Alertmanager's `endsAt`; alerts that resolved while the
//!   agent was down expire there by themselves.

use super::client::{Client, TlsConfig};
use super::send::{send, Outgoing};
use super::url::Url;
use super::{alertmanager_target, Env, Error, Failure, Mode, SharedStats, SinkSpec};
use crate::clock::{Clock, PLAUSIBLE_SINCE_MS};
use crate::event::{Event, EventId};
use crate::limits::{MAX_AM_BODY_LEN, MAX_AM_PEERS, MAX_BATCH};
use bytes::Bytes;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

mod table;
pub use table::{Applied, SharedTable, Table, RESOLVED_SENDS, SILENT_HOLD_MS};

/// One peer's sender.
pub struct Lane {
    /// The webhook's alerts.
    pub table: SharedTable,
    /// Which peer of `urls`.
    pub peer: usize,
    /// Woken when the table changed.
    pub wake: Arc<Notify>,
    spec: Arc<SinkSpec>,
    index: usize,
    url: Url,
    client: Client,
    clock: Clock,
    buf: Box<[u8]>,
    sent: Vec<(usize, u64)>,
    failures: mpsc::Sender<Failure>,
    stop: watch::Receiver<bool>,
    stats: SharedStats,
    /// The last request failed (reported once per outage).
    failing: bool,
    /// Alerts are held because the wall clock is not set (logged once per episode).
    clock_held: bool,
}

impl Lane {
    /// A lane for peer `peer` of `spec` (webhook number `index`).
    fn new(
        spec: Arc<SinkSpec>,
        (index, peer): (usize, usize),
        table: SharedTable,
        tls: TlsConfig,
        env: &Env,
    ) -> Lane {
        let url = spec.endpoint.peers[peer].clone();
        Lane {
            client: Client::new(url.clone(), tls, spec.endpoint.egress.clone()),
            url,
            table,
            peer,
            wake: Arc::new(Notify::new()),
            index,
            clock: env.clock.clone(),
            buf: vec![0u8; MAX_AM_BODY_LEN].into_boxed_slice(),
            sent: Vec::with_capacity(MAX_BATCH),
            failures: env.failures.clone(),
            stop: env.stop.clone(),
            stats: SharedStats::default(),
            failing: false,
            clock_held: false,
            spec,
        }
    }

    /// Sends due alerts until the table closes (and nothing more is due) or the agent stops.
    pub async fn run(mut self, mode: Mode) {
        let spec = self.spec.clone();
        let mut backoff_until: Option<u64> = None;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let now = self.clock.now_ms();
            let mono = self.clock.mono_ms();
            let (len, news, next, closing) = {
                let Ok(table) = self.table.lock() else { return };
                let closing = table.closing;
                if backoff_until.is_some_and(|b| mono < b) && !closing {
                    (0, 0, backoff_until, closing)
                } else {
                    let (len, news, next) =
                        table.collect(self.peer, (now, mono), &spec, &mut self.buf, &mut self.sent);
                    (len, news, next, closing)
                }
            };
            if len == 0 {
                if closing {
                    return;
                }
                let wait = next.map_or(Duration::from_secs(3600), |n| {
                    Duration::from_millis(n.saturating_sub(mono).max(1))
                });
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            // A wall clock before 2020 would tell Alertmanager that every alert ended long
            // ago: hold until the clock is set.
            if now < PLAUSIBLE_SINCE_MS {
                if !self.clock_held {
                    crate::error!(
                        "webhook {}: clock not set (now {}): alerts held until it is",
                        spec.name,
                        crate::util::iso8601(now)
                    );
                    self.clock_held = true;
                }
                backoff_until = Some(mono + spec.endpoint.retry_interval_ms.max(1000));
                continue;
            }
            self.clock_held = false;
            let count = self.sent.len();
            let body = Bytes::copy_from_slice(&self.buf[..len]);
            let delivered = match mode {
                Mode::DryRun => {
                    self.print(&body);
                    true
                }
                Mode::Send => self.send(body, count, news).await,
            };
            let mono = self.clock.mono_ms();
            if let Ok(mut table) = self.table.lock() {
                if delivered {
                    table.sent(self.peer, &self.sent, self.clock.now_ms(), mono);
                    backoff_until = None;
                } else {
                    // Retries ran out: everything stays due; try again after a `resend`.
                    backoff_until = Some(mono + spec.payload.resend_ms.max(1000));
                }
            }
            if closing && !delivered {
                return;
            }
        }
    }

    async fn send(&mut self, body: Bytes, count: usize, news: usize) -> bool {
        let spec = self.spec.clone();
        let now = self.clock.now_ms();
        let id = EventId::generate(now);
        let head = match spec.alerts_head(&self.url, id, now) {
            Ok(h) => h,
            Err(e) => {
                crate::error!("webhook {}: {e}", spec.name);
                return false;
            }
        };
        let id_text = id.to_text();
        let what = format!(
            "{count} alerts ({news} new or changed) to {} {id_text}",
            self.url.host_header()
        );
        let out = Outgoing {
            head: &head,
            body,
            id: &id_text,
            what: &what,
            quiet: news == 0,
            max_attempts: u32::MAX,
            first_failure: None,
        };
        let d = send(
            &mut self.client,
            &spec,
            &self.clock,
            out,
            Some(self.stop.clone()),
        )
        .await;
        if let Ok(mut st) = self.stats.lock() {
            st.count(&d, count as u64);
        }
        if d.delivered() && self.failing {
            crate::info!(
                "webhook {}: peer {} accepts alerts again",
                spec.name,
                self.url.host_header()
            );
            self.failing = false;
        } else if !d.delivered() && !self.failing {
            self.failing = true;
            let why = d
                .error
                .as_ref()
                .map_or_else(|| "failed".into(), Error::to_string);
            let detail = format!(
                "{}: Alertmanager peer {}: {why}; its alerts are re-sent when it answers",
                spec.name,
                self.url.host_header(),
            );
            let _ = self.failures.try_send(Failure {
                webhook: self.index,
                detail,
            });
        }
        d.delivered()
    }

    fn print(&self, body: &[u8]) {
        use std::io::Write as _;
        let text = format!(
            "# webhook {} (dry run)\nPOST {} HTTP/1.1\nHost: {}\nContent-Type: application/json\nContent-Length: {}\n\n{}\n\n",
            self.spec.name,
            alertmanager_target(&self.url),
            self.url.host_header(),
            body.len(),
            String::from_utf8_lossy(body)
        );
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// A running peer lane, as the agent holds it.
pub struct LaneHandle {
    /// The peer.
    pub url: Url,
    /// Wakes the lane when the table changed.
    pub wake: Arc<Notify>,
    /// What it sent so far (alerts, not requests).
    pub stats: SharedStats,
    /// The lane's task.
    pub task: tokio::task::JoinHandle<()>,
}

/// An `alertmanager` webhook, running: its table and one lane per peer.
pub struct Alerts {
    /// The alerts.
    pub table: SharedTable,
    /// One per peer of `urls`.
    pub lanes: Vec<LaneHandle>,
    /// Alerts dropped because the table was full.
    pub dropped: AtomicUsize,
    clock: Clock,
}

impl Alerts {
    /// Starts a lane per peer of `spec` (webhook number `index`).
    ///
    /// # Errors
    /// [`Error::TlsSetup`]: the webhook's TLS settings cannot be built.
    pub fn spawn(spec: Arc<SinkSpec>, index: usize, env: &Env) -> Result<Alerts, Error> {
        let tls = super::tls_for(&spec)?;
        let table = Arc::new(Mutex::new(Table::new(&spec, spec.heartbeat)));
        let peers = spec.endpoint.peers.len().min(MAX_AM_PEERS);
        let mut lanes = Vec::with_capacity(peers);
        for peer in 0..peers {
            #[allow(clippy::clone_on_copy, reason = "Copy only in a build without TLS")]
            let lane = Lane::new(spec.clone(), (index, peer), table.clone(), tls.clone(), env);
            lanes.push(LaneHandle {
                url: lane.url.clone(),
                wake: lane.wake.clone(),
                stats: lane.stats.clone(),
                // Boxed, as the queue's worker is (deliver/outbox.rs).
                task: tokio::spawn(Box::pin(lane.run(env.mode))),
            });
        }
        Ok(Alerts {
            table,
            lanes,
            dropped: AtomicUsize::new(0),
            clock: env.clock.clone(),
        })
    }

    /// Applies an event to the table and wakes the lanes if something became due.
    pub fn apply(&self, e: &Event) -> Applied {
        let applied = match self.table.lock() {
            Ok(mut t) => t.apply(e, e.timestamp_ms, self.clock.mono_ms()),
            Err(_) => return Applied::default(),
        };
        if applied.dropped.is_some() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if applied.changed {
            self.wake();
        }
        applied
    }

    /// Takes over the alerts of `old` (see [`Table::adopt`]) and wakes the lanes.
    pub fn adopt(&self, old: &Alerts, rule_map: &[Option<usize>]) {
        if let (Ok(mut n), Ok(mut p)) = (self.table.lock(), old.table.lock()) {
            n.adopt(&mut p, rule_map, self.clock.now_ms(), self.clock.mono_ms());
        }
        self.wake();
    }

    /// Lets the alerts of rule `rule` lapse (see [`Table::lapse`]).
    pub fn lapse(&self, rule: usize) -> usize {
        self.table.lock().map_or(0, |mut t| t.lapse(rule))
    }

    /// Wakes every lane.
    pub fn wake(&self) {
        for l in &self.lanes {
            l.wake.notify_one();
        }
    }

    /// Lanes send what is due, then end.
    pub fn close(&self) {
        if let Ok(mut t) = self.table.lock() {
            t.close();
        }
        self.wake();
    }
}
