//! Delivery: one bounded outbox and one task per webhook, so a slow or dead endpoint never
//! delays sampling or another webhook.
//!
//! Each attempt of an event carries the same `X-Tocsin-Event-Id`. 2xx is success; connect
//! errors, timeouts, 408, 429 and 5xx except 501 are retried up to `retries` more times,
//! `retry_interval` apart plus 0-25 % jitter, honouring `Retry-After` up to
//! `retry_after_max`; other statuses are final.

pub mod client;
pub mod clock;
pub mod retry;
pub mod sign;
#[cfg(feature = "tls")]
pub mod tls;

use crate::config::{Auth, Config, Scheme, Webhook};
use crate::event::{Event, EventType};
use crate::limits::{MAX_BODY_LEN, MAX_HEADER_VALUE_LEN, MAX_URL_LEN, OUTBOX_CAPACITY};
use crate::render::{self, base64_into, Ctx, Escape, FixedWriter, Origin};
use bytes::Bytes;
use client::{Client, TlsConfig};
use http_body_util::Full;
use hyper::Request;
use retry::{classify, parse_retry_after, RetryPolicy, Verdict};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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
        let uri = hyper::Uri::try_from(target(wh, ctx, unix_ms()))
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
        redact_sign(&target(wh, ctx, unix_ms()))
    );
    let id = ctx.event.id.to_text();
    let signed = signature_headers(wh, &id, unix_ms() / 1000, body);
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
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_ne_bytes(b)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Delivers one rendered event with the webhook's retry policy, logging each outcome.
/// `max_attempts` caps attempts below the policy (`tocsin test` makes one).
pub async fn deliver(
    client: &mut Client,
    wh: &Webhook,
    ctx: &Ctx<'_>,
    body: Bytes,
    max_attempts: u32,
) -> Delivery {
    let event = ctx.event;
    let policy = RetryPolicy {
        retries: wh.retries,
        interval_ms: wh.retry_interval_ms,
        retry_after_max_ms: wh.retry_after_max_ms,
    };
    let attempts_allowed = (1 + policy.retries).min(max_attempts.max(1));
    let id = event.id.to_text();
    let kind = event.kind.as_str();
    let timeout = Duration::from_millis(wh.timeout_ms);
    let start = Instant::now();
    let mut last_status = None;
    let head = match Head::new(wh, ctx) {
        Ok(h) => h,
        Err(e) => {
            crate::error!("webhook {}: {kind} {id} cannot be sent: {e}", wh.name);
            return Delivery {
                status: None,
                attempts: 0,
                elapsed: start.elapsed(),
                delivered: false,
                error: Some(e),
            };
        }
    };
    let mut attempt = 0;
    let mut held = false;
    loop {
        attempt += 1;
        let t0 = Instant::now();
        let attempt_head = head.signed(wh, &id, unix_ms() / 1000, &body);
        let result = client
            .send(&|| attempt_head.request(body.clone()), timeout)
            .await;
        let ms = t0.elapsed().as_millis();
        // A certificate failing on time under a clock that may be wrong: hold the event,
        // without spending attempts, until the clock is set (the agent); `test` reports it.
        if let Err(e) = &result {
            if clock::is_time_error(e) && clock::suspect(unix_ms()) {
                let now = render::iso8601(unix_ms());
                if max_attempts != u32::MAX {
                    return Delivery {
                        status: None,
                        attempts: attempt,
                        elapsed: start.elapsed(),
                        delivered: false,
                        error: Some(format!(
                            "clock not set (now {now}, kernel unsynchronised or before 2020): {e}"
                        )),
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
                tokio::time::sleep(Duration::from_millis(policy.delay_ms(None, random_u32())))
                    .await;
                continue;
            }
        }
        let (verdict, retry_after, what) = match result {
            Ok(r) => {
                last_status = Some(r.status);
                let ra = r
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, unix_ms()));
                (classify(r.status), ra, format!("HTTP {}", r.status))
            }
            Err(e) => (Verdict::Retry, None, e.to_string()),
        };
        let done = |delivered: bool, error: Option<String>| Delivery {
            status: last_status,
            attempts: attempt,
            elapsed: start.elapsed(),
            delivered,
            error,
        };
        match verdict {
            Verdict::Delivered => {
                crate::info!(
                    "webhook {}: delivered {kind} {id}: {what} in {ms} ms (attempt {attempt})",
                    wh.name
                );
                return done(true, None);
            }
            Verdict::Final => {
                crate::error!(
                    "webhook {}: {kind} {id} rejected: {what}; not retried",
                    wh.name
                );
                return done(false, Some(what));
            }
            Verdict::Retry if attempt < attempts_allowed => {
                let delay = policy.delay_ms(retry_after, random_u32());
                crate::warn!(
                    "webhook {}: {kind} {id} attempt {attempt}/{attempts_allowed} failed: {what}; retrying in {} ms",
                    wh.name,
                    delay
                );
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Verdict::Retry => {
                crate::error!(
                    "webhook {}: giving up on {kind} {id} after {attempt} attempts: {what}",
                    wh.name
                );
                return done(false, Some(what));
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

/// A webhook's outbox: the sending half, and the task draining it.
pub struct Outbox {
    /// Bounded queue of events for this webhook.
    pub tx: mpsc::Sender<Event>,
    /// The worker; it ends when every sender is dropped and the queue is empty.
    pub task: JoinHandle<()>,
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
) -> Result<Outbox, String> {
    let tls = tls_for(&cfg.webhooks[index])?;
    let (tx, mut rx) = mpsc::channel::<Event>(OUTBOX_CAPACITY);
    let task = tokio::spawn(async move {
        let wh = &cfg.webhooks[index];
        let mut client = Client::new(wh.url.clone(), tls, wh.egress.clone());
        let mut buf = vec![0u8; MAX_BODY_LEN].into_boxed_slice();
        let origin = origin(&cfg);
        while let Some(event) = rx.recv().await {
            let ctx = ctx(wh, &event, &origin);
            let n = match render::render(wh, &ctx, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    crate::error!(
                        "webhook {}: {} {}: {e}",
                        wh.name,
                        event.kind.as_str(),
                        event.id.to_text()
                    );
                    continue;
                }
            };
            match mode {
                Mode::DryRun => {
                    use std::io::Write as _;
                    let text = format!(
                        "# webhook {} (dry run)\n{}\n",
                        wh.name,
                        format_request(wh, &ctx, &buf[..n])
                    );
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
                Mode::Send => {
                    let body = Bytes::copy_from_slice(&buf[..n]);
                    let d = deliver(&mut client, wh, &ctx, body, u32::MAX).await;
                    // A failed `delivery_failed` is not announced again: no loops.
                    if !d.delivered && event.kind != EventType::DeliveryFailed {
                        let detail = format!(
                            "{}: {} {}: {}",
                            wh.name,
                            event.kind.as_str(),
                            event.id.to_text(),
                            d.error.as_deref().unwrap_or("failed")
                        );
                        let _ = failures.try_send(Failure {
                            webhook: index,
                            detail,
                        });
                    }
                }
            }
        }
    });
    Ok(Outbox { tx, task })
}
