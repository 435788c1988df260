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

/// Entry points for the fuzz targets (`fuzz/`) into parsers that are not part of the
/// public API: thin wrappers, so nothing here widens what other code may use, and the
/// binary links none of it.
#[doc(hidden)]
pub mod fuzzing {
    /// What a proxy's reply head to CONNECT says: `Ok` for a tunnel, else whether it
    /// asks for credentials (407) and the line to report.
    pub fn proxy_reply(head: &[u8]) -> Result<(), (bool, String)> {
        crate::deliver::client::proxy_reply(head).map_err(|r| (r.auth, r.line))
    }

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as unix seconds.
    pub fn parse_imf_fixdate(s: &str) -> Option<u64> {
        crate::deliver::retry::parse_imf_fixdate(s)
    }

    /// The first token of a small /proc or /sys file (conntrack count and max, hwmon
    /// and thermal inputs read as numbers) as a finite number.
    pub fn parse_number(text: &[u8]) -> Option<f64> {
        crate::source::parse_number(text)
    }

    /// The request line of what a control-socket client sent.
    pub fn control_request_line(bytes: &[u8]) -> Option<&str> {
        crate::control::request_line(bytes)
    }

    /// `/proc/stat`'s first line: whether it parses (at least four counters).
    pub fn parse_cpu_stat(text: &[u8]) -> bool {
        crate::source::parse_cpu_stat(text).is_some()
    }

    /// `/proc/meminfo`: MemTotal, MemFree, MemAvailable, Buffers, Cached, SwapTotal,
    /// SwapFree, in kB.
    pub fn parse_meminfo(text: &[u8]) -> [Option<u64>; 7] {
        let m = crate::source::parse_meminfo(text);
        [
            m.mem_total,
            m.mem_free,
            m.mem_available,
            m.buffers,
            m.cached,
            m.swap_total,
            m.swap_free,
        ]
    }

    /// `/proc/loadavg`.
    pub fn parse_loadavg(text: &[u8]) -> Option<[f64; 3]> {
        crate::source::parse_loadavg(text)
    }

    /// `/proc/uptime`.
    pub fn parse_uptime(text: &[u8]) -> Option<f64> {
        crate::source::parse_uptime(text)
    }

    /// Whether ECDSA P-256 with SHA-256 (RustCrypto's, which TLS uses on x86_64 and
    /// aarch64) accepts `signature` over `message` by the SEC1 `public_key`.
    #[cfg(all(
        feature = "tls",
        any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_endian = "little")
        )
    ))]
    pub fn p256_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        crate::deliver::p256::ECDSA_P256_SHA256
            .verify_signature(public_key, message, signature)
            .is_ok()
    }

    /// Whether a TLS key share for secp256r1 from a server is accepted (same builds).
    #[cfg(all(
        feature = "tls",
        any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_endian = "little")
        )
    ))]
    pub fn p256_accepts_key_share(peer: &[u8]) -> bool {
        crate::deliver::p256::accepts_key_share(peer)
    }

    /// A mounts file: the mount points kept, each with whether it is remote.
    pub fn parse_mounts(
        text: &[u8],
    ) -> heapless::Vec<(crate::metric::DimValue, bool), { crate::limits::MAX_MOUNTS }> {
        let mut mounts = heapless::Vec::new();
        crate::source::parse_mounts(text, &mut mounts);
        mounts.into_iter().map(|m| (m.point, m.remote)).collect()
    }
}
