//! tocsin: a small static agent for routers and edge devices.
//!
//! Data flows one way:
//!
//! ```text
//! config (TOML) ─► validated Config (bounded, typed)
//! clock tick ─► source ─► samples ─► rule (state machines) ─► events
//!                                        routes (which webhooks) ◄─┘
//!               render (fixed buffer, per format) ─► outbox (bounded)
//!                        deliver (hyper + rustls, timeout, retries)
//! ```
//!
//! - [`config`]: TOML text to a validated [`config::Config`]; every problem with file:line:col.
//! - [`source`]: reads /proc and /sys (under a configurable root), probes TCP ports and runs
//!   commands, into [`metric::Sample`]s.
//! - [`rule`]: the pure per-rule state machine; samples and `now` in, transitions out.
//! - [`event`]: the one event type that flows to delivery.
//! - [`render`]: payload formats, written into fixed buffers.
//! - [`deliver`]: outboxes, the HTTP(S) client, the retry schedule.
//! - [`service`]: the running agent: ticks, signals, routing.
//! - [`notify`]: sd_notify (readiness, reload, watchdog) for systemd, without libsystemd.
//!
//! The core (parsing, evaluation, rendering, retry decisions) does no I/O and never reads the
//! clock: time is passed in. Capacities are named once in [`limits`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod deliver;
pub mod event;
pub mod limits;
pub mod log;
pub mod metric;
pub mod notify;
pub mod render;
pub mod route;
pub mod rule;
pub mod service;
pub mod source;
pub mod util;
