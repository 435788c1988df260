//! Delivery: one bounded outbox and one task per webhook, so a slow or dead endpoint never
//! delays sampling or another webhook.
//!
//! Each attempt of an event carries the same `X-Tocsin-Event-Id`. 2xx is success; connect
//! errors, timeouts, 408, 429 and 5xx except 501 are retried up to `retries` more times,
//! `retry_interval` apart plus 0-25 % jitter, honouring `Retry-After` up to
//! `retry_after_max`; other statuses are final.

pub mod alertmanager;
pub mod client;
pub mod clock;
pub mod retry;
pub mod sign;
pub mod spool;
#[cfg(feature = "tls")]
pub mod tls;

use crate::config::{Auth, Config, Scheme, Webhook};
use crate::event::{Event, EventType};
use crate::limits::{MAX_BODY_LEN, MAX_HEADER_VALUE_LEN, MAX_URL_LEN, OUTBOX_CAPACITY};
use crate::render::{self, Ctx, Escape, FixedWriter, Origin};
use crate::util::base64_into;
use bytes::Bytes;
use client::{Client, TlsConfig};
use http_body_util::Full;
use hyper::Request;
use retry::{classify, parse_retry_after, RetryPolicy, Verdict};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("tocsin/", env!("CARGO_PKG_VERSION"));

/// Send for real, or print each request instead (`run --dry-run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver over the network.
    Send,
    /// Print the request to stdout (secrets redacted) and count it as delivered.
    DryRun,
}

/// The device's identity as payloads see it.
pub fn origin(cfg: &Config) -> Origin<'_> {
    Origin {
        device_id: &cfg.agent.device_id,
        hostname: &cfg.agent.hostname,
        interval_ms: cfg.agent.interval_ms,
        labels: &cfg.agent.labels,
    }
}

/// The request target (path and query) of `ctx.event` for `wh`; `now_ms` signs it where
/// the webhook's signing scheme puts a signature in the URL (DingTalk).
pub fn target(wh: &Webhook, ctx: &Ctx<'_>, now_ms: u64) -> String {
    let mut buf = [0u8; MAX_URL_LEN];
    let mut w = FixedWriter::new(&mut buf);
    // Proved at load to fit; a failure would leave a truncated target, so log it.
    if wh.target.render(&mut w, ctx, Escape::Url).is_err() {
        crate::error!(
            "webhook {}: request target longer than {MAX_URL_LEN} bytes, truncated",
            wh.name
        );
    }
    let mut t = w.as_str().to_string();
    if let crate::config::Signing::DingTalk(secret) = &wh.signing {
        t.push(if t.contains('?') { '&' } else { '?' });
        t.push_str(&sign::dingtalk_query(secret.expose(), now_ms));
    }
    t
}

/// The request headers of `ctx.event` for `wh`, in order. With `redact`, secrets are
/// replaced by `<redacted>`.
pub fn headers(wh: &Webhook, ctx: &Ctx<'_>, redact: bool) -> Vec<(String, String)> {
    let event = ctx.event;
    let mut h: Vec<(String, String)> = vec![("Host".into(), wh.url.host_header())];
    if !wh
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        h.push(("User-Agent".into(), USER_AGENT.into()));
    }
    if let Some(ct) = render::content_type(wh) {
        h.push(("Content-Type".into(), ct.into()));
    }
    h.push((
        "X-Tocsin-Event-Id".into(),
        event.id.to_text().as_str().into(),
    ));
    h.push(("X-Tocsin-Event-Type".into(), event.kind.as_str().into()));
    match &wh.auth {
        Auth::None => {}
        Auth::Bearer(token) => {
            let v = if redact { "<redacted>" } else { token.expose() };
            h.push(("Authorization".into(), format!("Bearer {v}")));
        }
        Auth::Basic { username, password } => {
            let mut v = String::from("Basic ");
            if redact {
                v.push_str("<redacted>");
            } else {
                base64_into(
                    format!("{username}:{}", password.expose()).as_bytes(),
                    &mut v,
                );
            }
            h.push(("Authorization".into(), v));
        }
    }
    for (name, tpl) in &wh.headers {
        let mut buf = [0u8; MAX_HEADER_VALUE_LEN];
        let mut w = FixedWriter::new(&mut buf);
        if tpl.render(&mut w, ctx, Escape::Header).is_err() {
            crate::error!(
                "webhook {}: header {name} longer than {MAX_HEADER_VALUE_LEN} bytes, truncated",
                wh.name
            );
        }
        h.push((name.clone(), w.as_str().to_string()));
    }
    h
}

/// The Standard Webhooks headers for one attempt, or none.
pub fn signature_headers(
    wh: &Webhook,
    id: &str,
    now_s: u64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    match &wh.signing {
        crate::config::Signing::StandardWebhooks(keys) => vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", now_s.to_string()),
            (
                "webhook-signature",
                sign::standard_webhooks_signature(&keys.0, id, now_s, body),
            ),
        ],
        _ => Vec::new(),
    }
}

/// The method, target and headers of an event's request: built (and checked) once per
/// event, cloned for every attempt.
#[derive(Clone, Debug)]
pub struct Head {
    method: hyper::Method,
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
}

impl Head {
    /// Builds the head for `ctx.event` to `wh`.
    ///
    /// # Errors
    /// A header or target that is not valid HTTP. Config validation rules this out; the
    /// error exists so that a gap there fails loudly instead of sending a broken request.
    pub fn new(wh: &Webhook, ctx: &Ctx<'_>) -> Result<Head, String> {
        let method =
            hyper::Method::from_bytes(wh.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
        let uri = hyper::Uri::try_from(target(wh, ctx, clock::now_ms()))
            .map_err(|e| format!("invalid request target: {e}"))?;
        let mut headers = hyper::HeaderMap::new();
        for (k, v) in self::headers(wh, ctx, false) {
            let name = hyper::header::HeaderName::try_from(k.as_str())
                .map_err(|e| format!("header `{k}`: {e}"))?;
            let value = hyper::header::HeaderValue::try_from(v)
                .map_err(|e| format!("header `{k}`: {e}"))?;
            headers.append(name, value);
        }
        Ok(Head {
            method,
            uri,
            headers,
        })
    }

    /// This head sent to another peer of the same webhook (an Alertmanager cluster): its
    /// `Host` and request target; `X-Tocsin-Event-Type` says it carries alerts.
    ///
    /// # Errors
    /// A target that is not a valid request target.
    pub fn retarget(&mut self, url: &crate::config::Url, target: &str) -> Result<(), String> {
        self.uri =
            hyper::Uri::try_from(target).map_err(|e| format!("invalid request target: {e}"))?;
        let host = hyper::header::HeaderValue::try_from(url.host_header())
            .map_err(|e| format!("Host: {e}"))?;
        self.headers.insert(hyper::header::HOST, host);
        self.headers.insert(
            "x-tocsin-event-type",
            hyper::header::HeaderValue::from_static("alerts"),
        );
        Ok(())
    }

    /// This head signed for one attempt at `now_s` (Standard Webhooks signs every attempt
    /// anew, with its own timestamp); unchanged for other schemes.
    pub fn signed(&self, wh: &Webhook, id: &str, now_s: u64, body: &[u8]) -> Head {
        let mut head = self.clone();
        for (k, v) in signature_headers(wh, id, now_s, body) {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::try_from(k),
                hyper::header::HeaderValue::try_from(v),
            ) {
                head.headers.insert(name, value);
            }
        }
        head
    }

    /// The request for one attempt.
    pub fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(body));
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// The request as text, secrets redacted: what `--dry-run` and `render` print.
pub fn format_request(wh: &Webhook, ctx: &Ctx<'_>, body: &[u8]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} HTTP/1.1",
        wh.method.as_str(),
        redact_sign(&target(wh, ctx, clock::now_ms()))
    );
    let id = ctx.event.id.to_text();
    let signed = signature_headers(wh, &id, clock::now_ms() / 1000, body);
    for (k, v) in headers(wh, ctx, true)
        .into_iter()
        .chain(signed.into_iter().map(|(k, v)| (k.to_string(), v)))
    {
        let _ = writeln!(s, "{k}: {v}");
    }
    if !body.is_empty() || wh.method != crate::config::Method::Get {
        let _ = writeln!(s, "Content-Length: {}", body.len());
    }
    let _ = writeln!(s);
    s.push_str(&String::from_utf8_lossy(body));
    s.push('\n');
    s
}

/// Hides a URL signature from printed output (it is a credential for its time window).
fn redact_sign(target: &str) -> String {
    match target.find("&sign=").or_else(|| target.find("?sign=")) {
        Some(i) => {
            let end = target[i + 1..]
                .find('&')
                .map_or(target.len(), |j| i + 1 + j);
            format!("{}sign=<redacted>{}", &target[..=i], &target[end..])
        }
        None => target.to_string(),
    }
}

/// The context for rendering `event` to `wh`.
pub fn ctx<'a>(wh: &Webhook, event: &'a Event, origin: &'a Origin<'a>) -> Ctx<'a> {
    Ctx {
        event,
        origin,
        language: wh.language,
    }
}

/// How one event's delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The last status received, if any.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// From the first attempt to the end.
    pub elapsed: Duration,
    /// Whether a 2xx arrived.
    pub delivered: bool,
    /// The last error or rejecting status, if not delivered.
    pub error: Option<String>,
    /// Whether a later try could succeed (network errors, 5xx; not a final 4xx): such an
    /// event is spooled.
    pub retryable: bool,
}

/// Runs `fut` unless `stop` is (or becomes) set; `None` when stopped.
async fn unless_stopped<T>(
    stop: &mut Option<watch::Receiver<bool>>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match stop {
        None => Some(fut.await),
        Some(rx) => {
            if *rx.borrow() {
                return None;
            }
            tokio::select! {
                v = fut => Some(v),
                _ = rx.wait_for(|s| *s) => None,
            }
        }
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_ne_bytes(b)
}

/// Delivers one rendered event with the webhook's retry policy, logging each outcome.
/// `max_attempts` caps attempts below the policy (`tocsin test` makes one).
/// With `stop`, it returns (undelivered, retryable) as soon as the agent stops.
pub async fn deliver(
    client: &mut Client,
    wh: &Webhook,
    ctx: &Ctx<'_>,
    body: Bytes,
    max_attempts: u32,
    stop: Option<watch::Receiver<bool>>,
) -> Delivery {
    let start = Instant::now();
    let head = match Head::new(wh, ctx) {
        Ok(h) => h,
        Err(e) => {
            crate::error!(
                "webhook {}: {} {} cannot be sent: {e}",
                wh.name,
                ctx.event.kind.as_str(),
                ctx.event.id.to_text()
            );
            return Delivery {
                status: None,
                attempts: 0,
                elapsed: start.elapsed(),
                delivered: false,
                error: Some(e),
                retryable: false,
            };
        }
    };
    let id = ctx.event.id.to_text();
    send_request(
        client,
        wh,
        &head,
        &id,
        ctx.event.kind.as_str(),
        false,
        body,
        max_attempts,
        stop,
    )
    .await
}

/// Sends one request (`head` + `body`, idempotency key `id`, logged as `kind id`) with
/// the webhook's retry policy, logging each outcome (a first-attempt success only unless
/// `quiet`: Alertmanager's steady re-sends). See [`deliver`].
#[allow(clippy::too_many_arguments)]
pub async fn send_request(
    client: &mut Client,
    wh: &Webhook,
    head: &Head,
    id: &str,
    kind: &str,
    quiet: bool,
    body: Bytes,
    max_attempts: u32,
    mut stop: Option<watch::Receiver<bool>>,
) -> Delivery {
    let policy = RetryPolicy {
        retries: wh.retries,
        interval_ms: wh.retry_interval_ms,
        retry_after_max_ms: wh.retry_after_max_ms,
    };
    let attempts_allowed = (1 + policy.retries).min(max_attempts.max(1));
    let timeout = Duration::from_millis(wh.timeout_ms);
    let start = Instant::now();
    let mut last_status = None;
    let stopped = |attempts: u32| Delivery {
        status: None,
        attempts,
        elapsed: start.elapsed(),
        delivered: false,
        error: Some("the agent is stopping".into()),
        retryable: true,
    };
    let mut attempt = 0;
    let mut held = false;
    loop {
        attempt += 1;
        let t0 = Instant::now();
        let attempt_head = head.signed(wh, id, clock::now_ms() / 1000, &body);
        let make = || attempt_head.request(body.clone());
        let sending = client.send(&make, timeout);
        let Some(result) = unless_stopped(&mut stop, sending).await else {
            return stopped(attempt - 1);
        };
        let ms = t0.elapsed().as_millis();
        // A certificate failing on time under a clock that may be wrong: hold the event,
        // without spending attempts, until the clock is set (the agent); `test` reports it.
        if let Err(e) = &result {
            if clock::is_time_error(e) && clock::suspect(clock::now_ms()) {
                let now = crate::util::iso8601(clock::now_ms());
                if max_attempts != u32::MAX {
                    return Delivery {
                        status: None,
                        attempts: attempt,
                        elapsed: start.elapsed(),
                        delivered: false,
                        error: Some(format!(
                            "clock not set (now {now}, kernel unsynchronised or before 2020): {e}"
                        )),
                        retryable: true,
                    };
                }
                if !held {
                    crate::error!(
                        "webhook {}: clock not set (now {now}, kernel unsynchronised or before 2020): {e}; holding {kind} {id} until the clock is set",
                        wh.name
                    );
                    held = true;
                }
                attempt -= 1;
                let wait =
                    tokio::time::sleep(Duration::from_millis(policy.delay_ms(None, random_u32())));
                if unless_stopped(&mut stop, wait).await.is_none() {
                    return stopped(attempt);
                }
                continue;
            }
        }
        let (verdict, retry_after, what) = match result {
            Ok(r) => {
                last_status = Some(r.status);
                let ra = r
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, clock::now_ms()));
                (classify(r.status), ra, format!("HTTP {}", r.status))
            }
            Err(e) => (Verdict::Retry, None, e.to_string()),
        };
        let done = |delivered: bool, error: Option<String>, retryable: bool| Delivery {
            status: last_status,
            attempts: attempt,
            elapsed: start.elapsed(),
            delivered,
            error,
            retryable,
        };
        match verdict {
            Verdict::Delivered if quiet && attempt == 1 => return done(true, None, false),
            Verdict::Delivered => {
                crate::info!(
                    "webhook {}: delivered {kind} {id}: {what} in {ms} ms (attempt {attempt})",
                    wh.name
                );
                return done(true, None, false);
            }
            Verdict::Final => {
                crate::error!(
                    "webhook {}: {kind} {id} rejected: {what}; not retried",
                    wh.name
                );
                return done(false, Some(what), false);
            }
            Verdict::Retry if attempt < attempts_allowed => {
                let delay = policy.delay_ms(retry_after, random_u32());
                crate::warn!(
                    "webhook {}: {kind} {id} attempt {attempt}/{attempts_allowed} failed: {what}; retrying in {} ms",
                    wh.name,
                    delay
                );
                if unless_stopped(&mut stop, tokio::time::sleep(Duration::from_millis(delay)))
                    .await
                    .is_none()
                {
                    return stopped(attempt);
                }
            }
            Verdict::Retry => {
                crate::error!(
                    "webhook {}: giving up on {kind} {id} after {attempt} attempts: {what}",
                    wh.name
                );
                return done(false, Some(what), true);
            }
        }
    }
}

/// The TLS settings `wh` needs: `None` for http.
///
/// # Errors
/// The TLS settings cannot be built (unreadable CA file, bad client key, …).
pub fn tls_for(wh: &Webhook) -> Result<TlsConfig, String> {
    match wh.url.scheme {
        Scheme::Http => Ok(None),
        #[cfg(feature = "tls")]
        Scheme::Https => {
            if wh.tls.insecure_skip_verify {
                crate::warn!(
                    "webhook {}: tls.insecure_skip_verify is set: ANY certificate is accepted, the receiver is NOT authenticated",
                    wh.name
                );
            }
            tls::client_config(&wh.tls)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "tls"))]
        Scheme::Https => Err("this build has no TLS".into()),
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
        if d.delivered {
            self.delivered += items;
        } else {
            self.failed += items;
            self.last_error = d.error.clone();
        }
        self.retried += u64::from(d.attempts.saturating_sub(1));
        if d.status.is_some() {
            self.last_status = d.status;
        }
    }
}

/// Stats shared between a worker and the control socket.
pub type SharedStats = Arc<std::sync::Mutex<Stats>>;

/// A webhook's outbox: the sending half, and the task draining it.
pub struct Outbox {
    /// Bounded queue of events for this webhook.
    pub tx: mpsc::Sender<Event>,
    /// What the worker did so far.
    pub stats: SharedStats,
    /// The worker; it ends when every sender is dropped and the queue is empty.
    pub task: JoinHandle<()>,
}

/// A running webhook: an event queue, or (`alertmanager`) a table of alerts with a lane per
/// peer.
pub enum Sink {
    /// Events, delivered one by one, spooled when undeliverable.
    Queue(Outbox),
    /// Alerts, re-sent while firing.
    Alerts(alertmanager::Alerts),
}

impl Sink {
    /// Starts webhook `index`.
    ///
    /// # Errors
    /// The webhook's TLS settings cannot be built.
    pub fn spawn(
        cfg: Arc<Config>,
        index: usize,
        mode: Mode,
        failures: mpsc::Sender<Failure>,
        stop: watch::Receiver<bool>,
    ) -> Result<Sink, String> {
        if cfg.webhooks[index].format == crate::config::Format::Alertmanager {
            alertmanager::Alerts::spawn(cfg, index, mode, failures, stop).map(Sink::Alerts)
        } else {
            spawn_outbox(cfg, index, mode, failures, stop).map(Sink::Queue)
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

/// Starts the worker of webhook `index`; it reports events it gives up on to `failures`.
///
/// # Errors
/// The webhook's TLS settings cannot be built.
pub fn spawn_outbox(
    cfg: Arc<Config>,
    index: usize,
    mode: Mode,
    failures: mpsc::Sender<Failure>,
    stop: watch::Receiver<bool>,
) -> Result<Outbox, String> {
    let tls = tls_for(&cfg.webhooks[index])?;
    let (tx, rx) = mpsc::channel::<Event>(OUTBOX_CAPACITY);
    let worker = Worker {
        spool: spool::Spool::new(&cfg.agent.state_dir, &cfg.webhooks[index].name),
        client: Client::new(
            cfg.webhooks[index].url.clone(),
            tls,
            cfg.webhooks[index].egress.clone(),
        ),
        buf: vec![0u8; MAX_BODY_LEN].into_boxed_slice(),
        cfg,
        index,
        failures,
        stop,
        gone: false,
        stats: SharedStats::default(),
    };
    let stats = worker.stats.clone();
    let task = tokio::spawn(worker.run(rx, mode));
    Ok(Outbox { tx, stats, task })
}

/// How often a non-empty spool is probed while no fresh event shows the endpoint is back:
/// ten sampling intervals, from one interval up to a minute.
fn probe_every(interval_ms: u64) -> Duration {
    Duration::from_millis((interval_ms * 10).clamp(interval_ms, 60_000))
}

/// A random wait before the first spool probe after start, up to six intervals and at most
/// 30 s, so that a fleet rebooting together does not stampede its receiver.
fn splay(interval_ms: u64) -> Duration {
    Duration::from_millis(u64::from(random_u32()) % (interval_ms * 6).clamp(1, 30_000))
}

/// Spooled events go out at most this often (10 per second).
const SPOOL_RATE: Duration = Duration::from_millis(100);

/// One webhook's delivery task.
struct Worker {
    cfg: Arc<Config>,
    index: usize,
    client: Client,
    spool: spool::Spool,
    buf: Box<[u8]>,
    failures: mpsc::Sender<Failure>,
    stop: watch::Receiver<bool>,
    /// The receiver answered 410 Gone: nothing more is sent until a reload.
    gone: bool,
    stats: SharedStats,
}

impl Worker {
    fn wh(&self) -> &Webhook {
        &self.cfg.webhooks[self.index]
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mode: Mode) {
        let interval = self.cfg.agent.interval_ms;
        let mut probe = (mode == Mode::Send && !self.spool.is_empty())
            .then(|| tokio::time::Instant::now() + splay(interval));
        if probe.is_some() {
            crate::info!(
                "webhook {}: {} spooled events wait; first try after a start-up splay",
                self.wh().name,
                self.spool.len()
            );
        }
        loop {
            let event = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                _ = tokio::time::sleep_until(probe.unwrap_or_else(tokio::time::Instant::now)), if probe.is_some() => {
                    self.drain().await;
                    probe = (!self.spool.is_empty()).then(|| tokio::time::Instant::now() + probe_every(interval));
                    continue;
                }
            };
            match mode {
                Mode::DryRun => self.print(&event),
                Mode::Send if self.gone => {
                    crate::warn!(
                        "webhook {}: {} {} not sent: the receiver answered 410 Gone; disabled until reload",
                        self.wh().name,
                        event.kind.as_str(),
                        event.id.to_text()
                    );
                }
                Mode::Send => {
                    let d = self.send(&event, u32::MAX).await;
                    if d.status == Some(410) {
                        // RFC 9110: the target is gone for good. Stop sending to it.
                        crate::error!("webhook {}: the receiver answered 410 Gone: webhook disabled until the config is reloaded", self.wh().name);
                        self.gone = true;
                    }
                    if d.delivered {
                        if !self.spool.is_empty() {
                            self.drain().await;
                        }
                    } else {
                        self.failed(&event, &d);
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
            while let Ok(e) = rx.try_recv() {
                self.keep(&e);
            }
        }
    }

    /// Renders and delivers one event.
    async fn send(&mut self, event: &Event, max_attempts: u32) -> Delivery {
        let cfg = self.cfg.clone();
        let wh = &cfg.webhooks[self.index];
        let origin = origin(&cfg);
        let ctx = ctx(wh, event, &origin);
        let n = match render::render(wh, &ctx, &mut self.buf) {
            Ok(n) => n,
            Err(e) => {
                crate::error!(
                    "webhook {}: {} {}: {e}",
                    wh.name,
                    event.kind.as_str(),
                    event.id.to_text()
                );
                return Delivery {
                    status: None,
                    attempts: 0,
                    elapsed: Duration::ZERO,
                    delivered: false,
                    error: Some(e.to_string()),
                    retryable: false,
                };
            }
        };
        let body = Bytes::copy_from_slice(&self.buf[..n]);
        let d = deliver(
            &mut self.client,
            wh,
            &ctx,
            body,
            max_attempts,
            Some(self.stop.clone()),
        )
        .await;
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
            delivered: d.delivered,
        });
    }

    fn print(&mut self, event: &Event) {
        use std::io::Write as _;
        let cfg = self.cfg.clone();
        let wh = &cfg.webhooks[self.index];
        let origin = origin(&cfg);
        let ctx = ctx(wh, event, &origin);
        if let Ok(n) = render::render(wh, &ctx, &mut self.buf) {
            let text = format!(
                "# webhook {} (dry run)\n{}\n",
                wh.name,
                format_request(wh, &ctx, &self.buf[..n])
            );
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }

    /// After a failed delivery: spool what a later try could deliver, announce the failure.
    fn failed(&mut self, event: &Event, d: &Delivery) {
        if d.retryable {
            self.keep(event);
        }
        // A failed `delivery_failed` is not announced again: no loops.
        if event.kind != EventType::DeliveryFailed {
            let spooled = if d.retryable { "; spooled" } else { "" };
            let detail = format!(
                "{}: {} {}: {}{spooled}",
                self.wh().name,
                event.kind.as_str(),
                event.id.to_text(),
                d.error.as_deref().unwrap_or("failed")
            );
            let _ = self.failures.try_send(Failure {
                webhook: self.index,
                detail,
            });
        }
    }

    /// Puts `event` in the spool; evictions are logged and announced.
    fn keep(&mut self, event: &Event) {
        let name = self.wh().name.clone();
        match self.spool.put(event) {
            Ok(evicted) => {
                crate::warn!(
                    "webhook {name}: {} {} spooled ({} waiting)",
                    event.kind.as_str(),
                    event.id.to_text(),
                    self.spool.len()
                );
                for (kind, id, level) in evicted.dropped {
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
            }
            Err(e) => crate::error!(
                "webhook {name}: cannot spool {} {}: {e}; it is lost",
                event.kind.as_str(),
                event.id.to_text()
            ),
        }
    }

    /// Offers spooled events again, oldest first, one try each, rate-limited; stops at the
    /// first that fails (the endpoint is still down).
    async fn drain(&mut self) {
        for path in self.spool.list() {
            if *self.stop.borrow() {
                return;
            }
            let Some(event) = spool::load(&path) else {
                continue;
            };
            let d = self.send(&event, 1).await;
            if d.delivered {
                if let Err(e) = self.spool.remove(&path) {
                    crate::error!(
                        "webhook {}: delivered {} but cannot remove its spool file: {e}",
                        self.wh().name,
                        path.display()
                    );
                }
            } else {
                if !d.retryable {
                    // Rejected for good: keeping it would block the spool forever.
                    let _ = self.spool.remove(&path);
                }
                return;
            }
            tokio::time::sleep(SPOOL_RATE).await;
        }
    }
}
