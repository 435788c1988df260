//! Delivery: one sink per webhook, so a slow or dead endpoint never delays sampling or
//! another webhook.
//!
//! A sink is spawned from its own [`SinkSpec`] (what its bodies are, where they go, which
//! device sends them) and an [`Env`] (mode, clock, failure channel, stop signal); nothing
//! here reads the config. Two kinds:
//!
//! - [`outbox::Outbox`]: events, queued, rendered and delivered one by one by the worker
//!   ([`send::send`]: timeout, retries, `Retry-After`), spooled when undeliverable.
//! - [`alertmanager::Alerts`]: a table of alerts re-sent while firing, one lane per peer.
//!
//! Requests are built in one place ([`request`]); failures are typed ([`Error`]) and
//! printed only at the log edge.

pub mod alertmanager;
pub mod client;
pub mod endpoint;
mod error;
pub mod outbox;
#[cfg(all(
    feature = "tls",
    any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_endian = "little")
    )
))]
pub(crate) mod p256;
#[cfg(feature = "tls")]
mod provider;
pub mod request;
pub mod retry;
pub mod send;
pub mod sign;
pub mod spool;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;

pub use error::Error;
pub use outbox::{Offer, Outbox};
pub use request::{alertmanager_target, Head, Prepared, USER_AGENT};
pub use send::Delivery;

use crate::clock::Clock;
use crate::event::Event;
use crate::render::{Origin, Payload};
use crate::route::Filter;
use client::TlsConfig;
use endpoint::Endpoint;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Scheme;

/// Send for real, or print each request instead (`run --dry-run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver over the network.
    Send,
    /// Print the request to stdout (secrets redacted) and count it as delivered.
    DryRun,
}

/// Everything one sink needs, owned: built once per config load.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    /// The webhook's name (logs, spool directory, `status`).
    pub name: String,
    /// What its bodies are.
    pub payload: Payload,
    /// Where and how they go.
    pub endpoint: Endpoint,
    /// Which events it takes (an Alertmanager table filters itself with it).
    pub filter: Filter,
    /// The device, as payloads name it.
    pub origin: Origin,
    /// Where the spool lives (`state_dir`).
    pub state_dir: PathBuf,
    /// The sampling interval (paces spool probes).
    pub interval_ms: u64,
    /// The agent sends heartbeats (Alertmanager keeps its heartbeat alerts).
    pub heartbeat: bool,
}

/// What every sink of one agent shares.
#[derive(Clone, Debug)]
pub struct Env {
    /// Send or print.
    pub mode: Mode,
    /// Wall and monotonic time.
    pub clock: Clock,
    /// Where sinks report events they gave up on.
    pub failures: mpsc::Sender<Failure>,
    /// Where sinks report each 2xx of a rule event (the delivered state).
    pub acks: mpsc::Sender<Ack>,
    /// Set when the drain time is up: sinks spool what they still hold and end.
    pub stop: watch::Receiver<bool>,
}

/// The TLS settings `spec` needs: `None` for http.
///
/// # Errors
/// [`Error::TlsSetup`]: unreadable CA file, bad client key, or a build without TLS.
pub fn tls_for(spec: &SinkSpec) -> Result<TlsConfig, Error> {
    match spec.endpoint.url.scheme {
        Scheme::Http => Ok(None),
        #[cfg(feature = "tls")]
        Scheme::Https => {
            if spec.endpoint.tls.insecure_skip_verify {
                crate::warn!(
                    "webhook {}: tls.insecure_skip_verify is set: ANY certificate is accepted, the receiver is NOT authenticated",
                    spec.name
                );
            }
            tls::client_config(&spec.endpoint.tls)
                .map(Some)
                .map_err(|e| Error::TlsSetup(e.to_string()))
        }
        #[cfg(not(feature = "tls"))]
        Scheme::Https => Err(Error::TlsSetup("this build has no TLS".into())),
    }
}

/// How many recent deliveries each webhook remembers.
pub const RECENT: usize = 16;

/// One delivery, for `tocsin status` and `tocsin replay`.
#[derive(Clone, Debug)]
pub struct Record {
    /// The event (kept whole, so it can be replayed).
    pub event: Event,
    /// Attempts made.
    pub attempts: u32,
    /// The last status received.
    pub status: Option<u16>,
    /// From the first attempt to the end.
    pub latency_ms: u64,
    /// Whether it was delivered.
    pub delivered: bool,
}

/// A webhook's counters and recent deliveries.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events delivered.
    pub delivered: u64,
    /// Attempts beyond the first, summed.
    pub retried: u64,
    /// Events not delivered (spooled or rejected).
    pub failed: u64,
    /// The last status any attempt received.
    pub last_status: Option<u16>,
    /// The last error.
    pub last_error: Option<String>,
    /// The most recent deliveries, oldest first.
    pub recent: std::collections::VecDeque<Record>,
}

impl Stats {
    /// Counts one delivery of `items` events (or alerts): delivered or failed, the
    /// attempts beyond the first, the last status and error.
    pub fn count(&mut self, d: &Delivery, items: u64) {
        match &d.error {
            None => self.delivered += items,
            Some(e) => {
                self.failed += items;
                self.last_error = Some(e.to_string());
            }
        }
        self.retried += u64::from(d.attempts.saturating_sub(1));
        if d.status.is_some() {
            self.last_status = d.status;
        }
    }
}

/// Stats shared between a worker and the control socket.
pub type SharedStats = Arc<std::sync::Mutex<Stats>>;

/// A running webhook: an event queue, or (`alertmanager`) a table of alerts with a lane per
/// peer.
pub enum Sink {
    /// Events, delivered one by one, spooled when undeliverable.
    Queue(Outbox),
    /// Alerts, re-sent while firing.
    Alerts(alertmanager::Alerts),
}

impl Sink {
    /// Starts the sink of `spec`, webhook number `index` (as failures name it).
    ///
    /// # Errors
    /// [`Error::TlsSetup`]: the webhook's TLS settings cannot be built.
    pub fn spawn(spec: Arc<SinkSpec>, index: usize, env: &Env) -> Result<Sink, Error> {
        if spec.payload.format == crate::render::Format::Alertmanager {
            alertmanager::Alerts::spawn(spec, index, env).map(Sink::Alerts)
        } else {
            Outbox::spawn(spec, index, env).map(Sink::Queue)
        }
    }

    /// Hands `event` over: queued (or spooled) by an outbox, applied to an alert table.
    /// A drop is reported to `failures` with `name` and `index`.
    pub fn offer(&self, event: &Event, name: &str, index: usize, failures: &mpsc::Sender<Failure>) {
        let detail = match self {
            Sink::Queue(o) => match o.offer(event) {
                Offer::Queued | Offer::Spooled => return,
                Offer::Dropped => format!(
                    "{name}: outbox and spool hand-over full ({} events), dropped {} {} ({})",
                    2 * crate::limits::OUTBOX_CAPACITY,
                    event.kind.as_str(),
                    event.id.to_text(),
                    event.level.as_str()
                ),
            },
            Sink::Alerts(a) => match a.apply(event).dropped {
                None => return,
                Some((alert, severity)) => format!(
                    "{name}: alert table full ({} alerts), dropped {alert} ({severity})",
                    crate::limits::MAX_AM_ALERTS
                ),
            },
        };
        crate::error!("webhook {detail}");
        // Announcing the loss of an announcement could loop between webhooks.
        if event.kind != crate::event::EventType::DeliveryFailed {
            let _ = failures.try_send(Failure {
                webhook: index,
                detail,
            });
        }
    }

    /// Events (or alerts) this sink dropped for lack of room.
    pub fn dropped(&self) -> u64 {
        match self {
            Sink::Queue(o) => o.dropped.load(Ordering::Relaxed) as u64,
            Sink::Alerts(a) => a.dropped.load(Ordering::Relaxed) as u64,
        }
    }

    /// The queue, if this is one.
    pub fn queue(&self) -> Option<&Outbox> {
        match self {
            Sink::Queue(o) => Some(o),
            Sink::Alerts(_) => None,
        }
    }

    /// Its tasks (to wait for at shutdown); an alerts sink is told to close first.
    pub fn into_tasks(self) -> Vec<JoinHandle<()>> {
        match self {
            Sink::Queue(o) => vec![o.task],
            Sink::Alerts(a) => {
                a.close();
                a.lanes.into_iter().map(|l| l.task).collect()
            }
        }
    }
}

/// An event a webhook gave up on, reported so that a `delivery_failed` event can go to the
/// other webhooks (a fallback path).
#[derive(Clone, Debug)]
pub struct Failure {
    /// The webhook that failed.
    pub webhook: usize,
    /// One line: webhook, event type and id, last error.
    pub detail: String,
}

/// Capacity of the failure channel; failures past it are logged only.
pub const FAILURE_CAPACITY: usize = 16;

/// A receiver took a rule event (a 2xx): reported to the agent, which keeps per series and
/// webhook the *delivered state* (the firing-state file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The webhook that took it.
    pub webhook: usize,
    /// The event's [`Event::series_key`].
    pub series: u64,
    /// The event's id.
    pub id: crate::event::EventId,
    /// Its kind, state and level.
    pub kind: crate::event::EventType,
    /// The alert state it told.
    pub state: crate::event::AlertState,
    /// Its level.
    pub level: crate::event::Level,
}

impl Ack {
    /// The acknowledgement of `event` by webhook `webhook`.
    pub fn of(webhook: usize, event: &Event) -> Ack {
        Ack {
            webhook,
            series: event.series_key(),
            id: event.id,
            kind: event.kind,
            state: event.state,
            level: event.level,
        }
    }
}

/// Capacity of the acknowledgement channel: every event two full outboxes hold; an
/// acknowledgement past it is lost, which costs at most a re-send with the same id after
/// a restart.
pub const ACK_CAPACITY: usize = 2 * crate::limits::OUTBOX_CAPACITY;
