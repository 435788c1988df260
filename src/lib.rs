//! tocsin: a small static agent for routers and edge devices.
//!
//! Data flows one way:
//!
//! ```text
//! TOML ─► config ─► specs: RuleSpec + Probe, Payload, Endpoint, Filter, SinkSpec
//!
//! tick ─► source ─► samples ─► rule (state machines) ─► transitions ─► events
//!   (slow probes run on a capped pool;                                   │
//!    a result joins the next tick)                       route (notify, filters)
//!                                                                        │
//!                     ┌──────────── outbox (one per webhook) ◄─ offer ───┤
//!                     │  queue ─► worker: render (fixed buffer) ─► send  │
//!                     │  overflow / failure ─► spool (worker-owned)      │
//!                     └──────────── alertmanager: table ─► lane per peer ◄┘
//!                                      send: hyper + rustls, timeout, retries
//! ```
//!
//! Layers, bottom first; a module imports only its own layer and those below
//! (`tests/suite/layers.rs` checks it):
//!
//! 0. [`util`] (base64, HMAC, percent-encoding, civil dates, glob, secrets), [`clock`],
//!    [`limits`], [`log`]
//! 1. [`metric`], [`event`]
//! 2. [`source`] (/proc, /sys, statvfs, TCP connects, commands → samples), [`rule`] (the
//!    pure state machine: samples and `now` in, transitions out)
//! 3. [`render`]: payload formats, written into fixed buffers
//! 4. [`route`]: which webhooks an event goes to
//! 5. [`deliver`]: outboxes, spool, Alertmanager lanes, the HTTP(S) client, retries
//! 6. [`config`]: TOML text to a validated [`config::Config`] and every layer's spec;
//!    every problem with file:line:col
//! 7. [`service`] (the running agent: ticks, signals, reload, status), [`control`] (its
//!    socket), [`notify`] (sd_notify for systemd, without libsystemd)
//! 8. [`cli`], and `main`
//!
//! The core (parsing, evaluation, rendering, routing, retry decisions) does no I/O and
//! never reads the clock: time comes in through a [`clock::Clock`] or as a value.
//! Capacities are named once in [`limits`].

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
